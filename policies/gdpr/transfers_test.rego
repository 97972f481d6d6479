package medplan.gdpr_test

import rego.v1


subjects(violations) := {v.subject | some v in violations}

pairs(denials) := {[d.workload, d.site] | some d in denials}

# A flow of EU subjects' personal data from an EU site to a US site.
flow(overrides) := object.union(
	{
		"from": {"kind": "dataset", "id": "crf", "site": "fra", "zone": "eu"},
		"to": {"kind": "site", "id": "use1", "site": "use1", "zone": "us"},
		"classification": "limited-data-set",
		"personal": true,
		"eu_subjects": true,
		"transfer_mechanism": null,
		"frequency": "scheduled",
	},
	overrides,
)

test_transfer_without_mechanism_fails if {
	flows := {
		"export": flow({}),
		# Onward: the data already sits in the US and moves to another US site.
		"onward": flow({"from": {"kind": "dataset", "id": "pooled", "site": "use1", "zone": "us"}, "to": {"id": "usw2", "site": "usw2"}}),
		# From a workload not yet placed: it may run in the EU.
		"results": flow({"from": {"kind": "workload", "id": "signal", "site": null, "zone": null}}),
	}
	found := data.medplan.gdpr.deny_transfer_without_mechanism with input as {"flows": flows}
	subjects(found) == {"flow/export", "flow/onward", "flow/results"}
}

test_transfer_without_mechanism_passes if {
	flows := {
		"scc": flow({"transfer_mechanism": "scc"}),
		"in-eu": flow({"to": {"id": "par", "site": "par", "zone": "eu"}}),
		"same-site": flow({"from": {"site": "use1", "zone": "us"}}),
		"to-workload": flow({"to": {"kind": "workload", "id": "nlp", "site": null, "zone": null}}),
		"us-subjects": flow({"eu_subjects": false}),
		"deidentified": flow({"classification": "deidentified", "personal": false}),
	}
	found := data.medplan.gdpr.deny_transfer_without_mechanism with input as {"flows": flows}
	count(found) == 0
}

test_repeated_derogation_fails if {
	flows := {
		"weekly": flow({"transfer_mechanism": "derogation", "frequency": "scheduled"}),
		"stream": flow({"transfer_mechanism": "derogation", "frequency": "continuous"}),
	}
	found := data.medplan.gdpr.deny_repeated_derogation with input as {"flows": flows}
	subjects(found) == {"flow/weekly", "flow/stream"}
}

test_repeated_derogation_passes if {
	flows := {
		"once": flow({"transfer_mechanism": "derogation", "frequency": "one-off"}),
		"scc": flow({"transfer_mechanism": "scc"}),
	}
	found := data.medplan.gdpr.deny_repeated_derogation with input as {"flows": flows}
	count(found) == 0
}

dataset(overrides) := object.union(
	{"site": "use1", "zone": "us", "classification": "limited-data-set", "personal": true, "eu_subjects": true},
	overrides,
)

test_eu_data_stored_outside_eu_fails if {
	found := data.medplan.gdpr.deny_eu_data_stored_outside_eu with input as {"datasets": {"pooled": dataset({})}}
	subjects(found) == {"dataset/pooled"}
}

test_eu_data_stored_outside_eu_passes if {
	datasets := {
		"crf": dataset({"site": "fra", "zone": "eu"}),
		"us-ehr": dataset({"eu_subjects": false}),
		"compounds": dataset({"classification": "public", "personal": false}),
	}
	found := data.medplan.gdpr.deny_eu_data_stored_outside_eu with input as {"datasets": datasets}
	count(found) == 0
}
