# Platform checks on the spec itself: what can never be placed or reached.
package medplan.platform

import rego.v1

# METADATA
# title: A workload's allowed GPU models exist in some pool
# description: >-
#   A workload that lists accelerators can run only on pools of those GPU
#   models. When no pool anywhere has one, the workload can never be placed.
# custom:
#   id: MP-PLAT-GPU-001
#   severity: high
#   controls: []
#   remediation: >-
#     Add a GPU model that a pool offers to the workload's accelerators, or
#     add a pool of one of the listed models.
#   stage: validate
deny_workload_without_matching_gpu contains violation if {
	some id, workload in input.workloads
	count(workload.accelerators) > 0
	count({a | some a in workload.accelerators; lower(a) in offered_gpus}) == 0
	violation := {
		"subject": sprintf("workload/%s", [id]),
		"message": sprintf("workload %s allows only GPU models %s but the pools offer %s", [id, concat(", ", workload.accelerators), gpu_list]),
	}
}

# The GPU models the pools offer, lower-cased, computed once for all
# workloads rather than once per workload (quadratic on large specs).
offered_gpus := {lower(pool.gpu) | some pool in input.pools}

gpu_list := "none" if count(input.pools) == 0

# regorus cannot evaluate a comprehension in the value of a rule with a body,
# so the list is built in the body.
gpu_list := concat(", ", names) if {
	names := sort({pool.gpu | some pool in input.pools})
	count(names) > 0
}

# METADATA
# title: PHI flows have a network path
# description: >-
#   A flow of PHI between sites that no chain of links joins cannot happen as
#   declared, and the links it really uses escape the transmission and BAA
#   checks. Declare the network it uses.
# custom:
#   id: MP-PLAT-NET-001
#   severity: high
#   controls: []
#   remediation: >-
#     Add the links the flow uses between its sites, or correct its from or
#     to.
#   stage: validate
deny_phi_flow_unreachable contains violation if {
	some id, flow in input.flows
	flow.phi
	flow.route.reachable == false
	violation := {
		"subject": sprintf("flow/%s", [id]),
		"message": sprintf("flow %s carries %s data from site %s to site %s but no links join them", [id, flow.classification, flow.from.site, flow.to.site]),
	}
}
