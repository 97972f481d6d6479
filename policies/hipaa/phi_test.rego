# Unit-test inputs shared by the HIPAA tests, and tests of the shared helpers.
package medplan.hipaa_test

import rego.v1


subjects(violations) := {v.subject | some v in violations}

pairs(denials) := {[d.workload, d.site] | some d in denials}

# A third-party site holding PHI with every control in place.
site(overrides) := object.union(
	{
		"kind": "cloud",
		"third_party": true,
		"baa": "executed",
		"holds_phi": true,
		"stores_phi": true,
		"phi_datasets": ["pacs"],
		"receives_phi_flows": [],
		"pools": [],
		"controls": {
			"encryption_at_rest": true,
			"customer_managed_keys": false,
			"audit_logging": true,
			"mfa": true,
			"unique_user_ids": true,
			"backup": {"rpo_hours": 1, "rto_hours": 4},
		},
	},
	overrides,
)

# An encrypted PHI flow with a declared purpose between two sites.
flow(overrides) := object.union(
	{
		"from": {"kind": "dataset", "id": "pacs", "site": "dc1", "zone": "us"},
		"to": {"kind": "site", "id": "cloud", "site": "cloud", "zone": "us"},
		"classification": "phi",
		"phi": true,
		"personal": true,
		"encryption_in_transit": "tls1.3",
		"encrypted": true,
		"purpose": "treatment",
		"deidentification": null,
		"source_phi": true,
		"from_covered_site": true,
		"leaves_site": true,
		"frequency": "continuous",
	},
	overrides,
)

link(overrides) := object.union(
	{
		"encryption": "ipsec",
		"encrypted": true,
		"carrier": null,
		"third_party": false,
		"baa": "not-required",
		"phi_flows": ["f1"],
		"carries_phi": true,
	},
	overrides,
)

test_phi_held_names_datasets_and_flows if {
	data.medplan.hipaa.phi_held(site({"phi_datasets": ["a", "b"], "receives_phi_flows": ["f"]})) == "datasets a, b; received by flows f"
	data.medplan.hipaa.phi_held(site({"phi_datasets": [], "receives_phi_flows": ["f"]})) == "received by flows f"
	data.medplan.hipaa.phi_held(site({})) == "datasets pacs"
}
