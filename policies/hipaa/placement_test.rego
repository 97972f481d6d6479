package medplan.hipaa_test

import rego.v1


# Placement input: workload and site classes, never ids.
classes(site_overrides) := {
	"workloads": {
		"wc1": {"kind": "inference", "phi": true, "members": ["triage"]},
		"wc2": {"kind": "training", "phi": false, "members": ["train"]},
	},
	"sites": {
		"sc1": object.remove(site({"kind": "on-prem", "third_party": false, "baa": "not-required"}), ["phi_datasets", "receives_phi_flows", "holds_phi", "stores_phi", "pools"]),
		"sc2": object.remove(site(site_overrides), ["phi_datasets", "receives_phi_flows", "holds_phi", "stores_phi", "pools"]),
	},
}

test_phi_workload_without_baa_fails if {
	found := data.medplan.hipaa.deny_phi_workload_without_baa with input as classes({"baa": "pending"})
	pairs(found) == {["wc1", "sc2"]}
	some d in found
	d.message == "site is operated by a third party (cloud) and has no executed BAA (baa: pending)"
}

test_phi_workload_without_baa_passes if {
	found := data.medplan.hipaa.deny_phi_workload_without_baa with input as classes({})
	count(found) == 0
}

test_phi_workload_without_encryption_at_rest_fails if {
	found := data.medplan.hipaa.deny_phi_workload_without_encryption_at_rest with input as classes({"controls": {"encryption_at_rest": false}})
	pairs(found) == {["wc1", "sc2"]}
}

test_phi_workload_without_encryption_at_rest_passes if {
	found := data.medplan.hipaa.deny_phi_workload_without_encryption_at_rest with input as classes({})
	count(found) == 0
}

test_phi_workload_without_audit_logging_fails if {
	found := data.medplan.hipaa.deny_phi_workload_without_audit_logging with input as classes({"controls": {"audit_logging": false}})
	pairs(found) == {["wc1", "sc2"]}
}

test_phi_workload_without_audit_logging_passes if {
	found := data.medplan.hipaa.deny_phi_workload_without_audit_logging with input as classes({})
	count(found) == 0
}
