# Platform checks on a finished plan: availability, headroom, concentration.
package medplan.platform

import rego.v1

# Share of PHI workloads on one site above which concentration is reported.
phi_concentration_limit := 0.8

# METADATA
# title: High-criticality workloads spread over at least two sites
# description: >-
#   A workload with criticality high keeps running when one site is lost only
#   if the plan places its replicas on two sites or more.
# custom:
#   id: MP-PLAT-HA-001
#   severity: high
#   controls: ["HIPAA 164.308(a)(7)(ii)(C)"]
#   remediation: >-
#     Give the workload at least two replicas and a second site it may run on
#     (capacity, placement constraints, latency), or lower its criticality.
#   stage: plan
deny_high_criticality_single_site contains violation if {
	some id, workload in input.workloads
	workload.criticality == "high"
	sites := planned_sites(id)
	count(sites) < 2
	violation := {
		"subject": sprintf("workload/%s", [id]),
		"message": sprintf("workload %s has criticality high but the plan runs %d replicas on %s", [id, placed_replicas(id), site_phrase(sites)]),
	}
}

planned_sites(id) := {s | some s in object.get(input.plan.workloads, [id, "sites"], [])}

placed_replicas(id) := object.get(input.plan.workloads, [id, "placed"], 0)

site_phrase(sites) := "no site" if count(sites) == 0

site_phrase(sites) := sprintf("one site only (%s)", [concat(", ", sort(sites))]) if count(sites) == 1

# METADATA
# title: GPU pools keep capacity headroom
# description: >-
#   A pool that the plan fills above 90% leaves no room for a failed node, a
#   burst of demand or the next workload.
# custom:
#   id: MP-PLAT-CAP-001
#   severity: low
#   controls: []
#   remediation: >-
#     Add nodes to the pool (or raise max_nodes), or let workloads run on
#     other pools.
#   stage: plan
deny_pool_without_headroom contains violation if {
	some key, pool in input.plan.pools
	pool.utilisation > 0.9
	violation := {
		"subject": sprintf("pool/%s", [key]),
		"message": sprintf("pool %s is %d%% used by the plan (%d of %d GPUs)", [key, round(pool.utilisation * 100), pool.gpus_used, pool.capacity_gpus]),
	}
}

# METADATA
# title: PHI workloads are not concentrated on one site
# description: >-
#   When more than 80% of the workloads that read PHI run on one site, losing
#   that site stops most clinical AI at once. Reported only when at least two
#   PHI workloads are placed and at least two sites have GPUs, so that the
#   concentration is a choice.
# custom:
#   id: MP-PLAT-CONC-001
#   severity: info
#   controls: ["HIPAA 164.308(a)(7)(i)"]
#   remediation: >-
#     Allow some PHI workloads to run on another site, or accept the
#     concentration in a waiver.
#   stage: plan
deny_phi_concentration contains violation if {
	placed := {id |
		some id, entry in input.plan.workloads
		input.workloads[id].phi
		count(entry.sites) > 0
	}
	count(placed) >= 2
	count({id | some id, site in input.sites; count(site.pools) > 0}) >= 2
	some site_id, site in input.plan.sites
	here := {w | some w in site.phi_workloads; w in placed}
	count(here) > phi_concentration_limit * count(placed)
	violation := {
		"subject": sprintf("site/%s", [site_id]),
		"message": sprintf("site %s runs %d of the %d placed PHI workloads (%s)", [site_id, count(here), count(placed), concat(", ", sort(here))]),
	}
}
