package medplan.hipaa_test

import rego.v1


shared_pool(isolation) := {
	"workloads": {"triage": {"phi": true}, "train": {"phi": false}, "notes": {"phi": true}},
	"pools": {"dc1/h100": {"isolation": isolation}, "dc1/b200": {"isolation": "none"}},
	"plan": {"placements": [
		{"workload": "triage", "replica": 0, "site": "dc1", "pool": "h100", "gpu": "H100", "gpus": 1},
		{"workload": "train", "replica": 0, "site": "dc1", "pool": "h100", "gpu": "H100", "gpus": 8},
		{"workload": "notes", "replica": 0, "site": "dc1", "pool": "b200", "gpu": "B200", "gpus": 4},
	],
	"pools": {"dc1/h100": {"workloads": ["train", "triage"]}, "dc1/b200": {"workloads": ["notes"]}}},
}

test_shared_pool_without_isolation_fails if {
	found := data.medplan.hipaa.deny_shared_pool_without_isolation with input as shared_pool("none")
	subjects(found) == {"pool/dc1/h100"}
	some v in found
	v.message == "pool dc1/h100 (isolation: none) runs PHI workloads (triage) next to non-PHI workloads (train)"
}

test_shared_pool_without_isolation_fails_with_time_slicing if {
	found := data.medplan.hipaa.deny_shared_pool_without_isolation with input as shared_pool("time-slicing")
	subjects(found) == {"pool/dc1/h100"}
}

test_shared_pool_without_isolation_passes if {
	found := data.medplan.hipaa.deny_shared_pool_without_isolation with input as shared_pool("mig")
	count(found) == 0
	found_nodes := data.medplan.hipaa.deny_shared_pool_without_isolation with input as shared_pool("dedicated-nodes")
	count(found_nodes) == 0
}
