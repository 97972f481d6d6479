# Plan-stage checks on how a finished plan shares GPUs between workloads.
package medplan.hipaa

import rego.v1

# METADATA
# title: GPU pools shared by PHI and non-PHI workloads isolate them
# description: >-
#   When a plan puts workloads that read PHI and workloads that do not in one
#   GPU pool, the pool isolates them with MIG partitions or dedicated nodes.
#   Without isolation (none) or with time-slicing, tenants share GPU memory
#   and nodes, and one workload's data may be exposed to another's code.
# custom:
#   id: MP-HIPAA-ISO-001
#   severity: medium
#   controls: ["HIPAA 164.312(a)(1)", "HIPAA 164.308(a)(4)(i)"]
#   remediation: >-
#     Set isolation: mig or dedicated-nodes on the pool (after configuring
#     it), or keep PHI and non-PHI workloads in separate pools.
#   stage: plan
deny_shared_pool_without_isolation contains violation if {
	some key, pool in input.pools
	not pool.isolation in isolating
	phi := {w | some w in pool_workloads(key); input.workloads[w].phi}
	other := {w | some w in pool_workloads(key); not input.workloads[w].phi}
	count(phi) > 0
	count(other) > 0
	violation := {
		"subject": sprintf("pool/%s", [key]),
		"message": sprintf("pool %s (isolation: %s) runs PHI workloads (%s) next to non-PHI workloads (%s)", [key, pool.isolation, concat(", ", sort(phi)), concat(", ", sort(other))]),
	}
}

# input.plan.pools lists each pool's workloads: one lookup per pool instead
# of a scan of every placement, which is quadratic on large plans.
pool_workloads(key) := object.get(input.plan.pools, [key, "workloads"], [])
