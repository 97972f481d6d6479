package medplan.gdpr_test

import rego.v1


placement(mechanisms) := {
	"workloads": {
		"wc1": {"eu_subjects": true, "transfer_mechanisms": mechanisms, "members": ["signal"]},
		"wc2": {"eu_subjects": false, "transfer_mechanisms": [], "members": ["nlp"]},
	},
	"sites": {
		"sc1": {"zone": "eu", "members": ["fra"]},
		"sc2": {"zone": "us", "members": ["use1"]},
	},
}

test_eu_workload_outside_eu_fails if {
	found := data.medplan.gdpr.deny_eu_workload_outside_eu with input as placement([])
	pairs(found) == {["wc1", "sc2"]}
}

test_eu_workload_outside_eu_passes if {
	found := data.medplan.gdpr.deny_eu_workload_outside_eu with input as placement(["scc"])
	count(found) == 0
}
