package medplan.platform_test

import rego.v1


plan_input(plan) := {
	"sites": {"dc1": {"pools": ["dc1/h100"]}, "dc2": {"pools": ["dc2/h100"]}},
	"workloads": {
		"triage": {"phi": true, "criticality": "high"},
		"notes": {"phi": true, "criticality": "medium"},
		"forecast": {"phi": true, "criticality": "low"},
		"train": {"phi": false, "criticality": "low"},
	},
	"plan": plan,
}

spread_plan := {
	"placements": [],
	"workloads": {
		"triage": {"sites": ["dc1", "dc2"], "pools": ["dc1/h100", "dc2/h100"], "replicas": 2, "placed": 2},
		"notes": {"sites": ["dc2"], "pools": ["dc2/h100"], "replicas": 1, "placed": 1},
		"forecast": {"sites": ["dc1"], "pools": ["dc1/h100"], "replicas": 1, "placed": 1},
		"train": {"sites": ["dc1"], "pools": ["dc1/h100"], "replicas": 1, "placed": 1},
	},
	"sites": {
		"dc1": {"workloads": ["forecast", "train", "triage"], "phi_workloads": ["forecast", "triage"], "gpus_used": 10},
		"dc2": {"workloads": ["notes", "triage"], "phi_workloads": ["notes", "triage"], "gpus_used": 2},
	},
	"pools": {
		"dc1/h100": {"gpus_used": 10, "capacity_gpus": 16, "utilisation": 0.625},
		"dc2/h100": {"gpus_used": 2, "capacity_gpus": 16, "utilisation": 0.125},
	},
}

concentrated_plan := {
	"placements": [],
	"workloads": {
		"triage": {"sites": ["dc1"], "pools": ["dc1/h100"], "replicas": 2, "placed": 2},
		"notes": {"sites": ["dc1"], "pools": ["dc1/h100"], "replicas": 1, "placed": 1},
		"forecast": {"sites": ["dc1"], "pools": ["dc1/h100"], "replicas": 1, "placed": 1},
		"train": {"sites": ["dc2"], "pools": ["dc2/h100"], "replicas": 1, "placed": 1},
	},
	"sites": {
		"dc1": {"workloads": ["forecast", "notes", "triage"], "phi_workloads": ["forecast", "notes", "triage"], "gpus_used": 15},
		"dc2": {"workloads": ["train"], "phi_workloads": [], "gpus_used": 8},
	},
	"pools": {
		"dc1/h100": {"gpus_used": 15, "capacity_gpus": 16, "utilisation": 0.9375},
		"dc2/h100": {"gpus_used": 8, "capacity_gpus": 16, "utilisation": 0.5},
	},
}

test_high_criticality_single_site_fails if {
	found := data.medplan.platform.deny_high_criticality_single_site with input as plan_input(concentrated_plan)
	subjects(found) == {"workload/triage"}
	some v in found
	v.message == "workload triage has criticality high but the plan runs 2 replicas on one site only (dc1)"
}

test_high_criticality_single_site_fails_when_unplaced if {
	found := data.medplan.platform.deny_high_criticality_single_site with input as plan_input({"placements": [], "workloads": {}, "sites": {}, "pools": {}})
	subjects(found) == {"workload/triage"}
}

test_high_criticality_single_site_passes if {
	found := data.medplan.platform.deny_high_criticality_single_site with input as plan_input(spread_plan)
	count(found) == 0
}

test_pool_without_headroom_fails if {
	found := data.medplan.platform.deny_pool_without_headroom with input as plan_input(concentrated_plan)
	subjects(found) == {"pool/dc1/h100"}
	some v in found
	v.message == "pool dc1/h100 is 94% used by the plan (15 of 16 GPUs)"
}

test_pool_without_headroom_passes if {
	found := data.medplan.platform.deny_pool_without_headroom with input as plan_input(spread_plan)
	count(found) == 0
}

test_phi_concentration_fails if {
	found := data.medplan.platform.deny_phi_concentration with input as plan_input(concentrated_plan)
	subjects(found) == {"site/dc1"}
}

test_phi_concentration_passes if {
	found := data.medplan.platform.deny_phi_concentration with input as plan_input(spread_plan)
	count(found) == 0
}

test_phi_concentration_passes_with_one_gpu_site if {
	one_site := object.union(plan_input(concentrated_plan), {"sites": {"dc2": {"pools": []}}})
	found := data.medplan.platform.deny_phi_concentration with input as one_site
	count(found) == 0
}
