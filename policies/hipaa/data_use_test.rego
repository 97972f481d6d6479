package medplan.hipaa_test

import rego.v1


deid_flow(overrides) := flow(object.union({"classification": "deidentified", "phi": false, "personal": false}, overrides))

test_deidentified_flow_without_method_fails if {
	flows := {
		"export": deid_flow({}),
		"from-covered-site": deid_flow({"source_phi": false, "from": {"kind": "site", "id": "dc1"}}),
		"to-plain-dataset": deid_flow({"to": {"kind": "dataset", "id": "copy", "site": "cloud"}}),
	}
	doc := {"flows": flows, "datasets": {"copy": {"classification": "deidentified", "deidentification": null}}}
	found := data.medplan.hipaa.deny_deidentified_flow_without_method with input as doc
	subjects(found) == {"flow/export", "flow/from-covered-site", "flow/to-plain-dataset"}
}

test_deidentified_flow_without_method_passes if {
	flows := {
		"on-flow": deid_flow({"deidentification": "safe-harbor"}),
		"on-target": deid_flow({"to": {"kind": "dataset", "id": "deid", "site": "cloud"}}),
		"same-site": deid_flow({"leaves_site": false}),
		"not-from-phi": deid_flow({"source_phi": false, "from_covered_site": false}),
		"phi": flow({}),
	}
	doc := {"flows": flows, "datasets": {"deid": {"classification": "deidentified", "deidentification": "expert-determination"}}}
	found := data.medplan.hipaa.deny_deidentified_flow_without_method with input as doc
	count(found) == 0
}

test_deidentified_dataset_without_method_fails if {
	datasets := {"deid": {"site": "cloud", "classification": "deidentified", "deidentification": null}}
	found := data.medplan.hipaa.deny_deidentified_dataset_without_method with input as {"datasets": datasets}
	subjects(found) == {"dataset/deid"}
}

test_deidentified_dataset_without_method_passes if {
	datasets := {
		"deid": {"site": "cloud", "classification": "deidentified", "deidentification": "safe-harbor"},
		"pacs": {"site": "dc1", "classification": "phi", "deidentification": null},
	}
	found := data.medplan.hipaa.deny_deidentified_dataset_without_method with input as {"datasets": datasets}
	count(found) == 0
}

test_phi_flow_without_purpose_fails if {
	found := data.medplan.hipaa.deny_phi_flow_without_purpose with input as {"flows": {"f1": flow({"purpose": null})}}
	subjects(found) == {"flow/f1"}
}

test_phi_flow_without_purpose_passes if {
	flows := {"f1": flow({}), "public": flow({"classification": "public", "phi": false, "purpose": null})}
	found := data.medplan.hipaa.deny_phi_flow_without_purpose with input as {"flows": flows}
	count(found) == 0
}
