package medplan.hipaa_test

import rego.v1


test_unencrypted_phi_flow_fails if {
	flows := {
		"hl7": flow({"encryption_in_transit": "none", "encrypted": false}),
		"lds": flow({"classification": "limited-data-set", "encryption_in_transit": "none", "encrypted": false}),
	}
	found := data.medplan.hipaa.deny_unencrypted_phi_flow with input as {"flows": flows}
	subjects(found) == {"flow/hl7", "flow/lds"}
}

test_unencrypted_phi_flow_passes if {
	flows := {
		"tls": flow({}),
		"public": flow({"classification": "public", "phi": false, "personal": false, "encryption_in_transit": "none", "encrypted": false}),
	}
	found := data.medplan.hipaa.deny_unencrypted_phi_flow with input as {"flows": flows}
	count(found) == 0
}

test_unencrypted_phi_link_fails if {
	doc := {
		"flows": {"f1": flow({"encryption_in_transit": "none", "encrypted": false}), "f2": flow({})},
		"links": {"a~b": link({"encryption": "none", "encrypted": false, "phi_flows": ["f1", "f2"]})},
	}
	found := data.medplan.hipaa.deny_unencrypted_phi_link with input as doc
	subjects(found) == {"link/a~b"}
	some v in found
	contains(v.message, "(flows f1)")
}

test_unencrypted_phi_link_passes_when_flows_are_encrypted_end_to_end if {
	doc := {
		"flows": {"f1": flow({"encryption_in_transit": "mtls"})},
		"links": {"a~b": link({"encryption": "none", "encrypted": false})},
	}
	found := data.medplan.hipaa.deny_unencrypted_phi_link with input as doc
	count(found) == 0
}

test_unencrypted_phi_link_passes_when_link_is_encrypted if {
	doc := {
		"flows": {"f1": flow({"encryption_in_transit": "none", "encrypted": false})},
		"links": {"a~b": link({"encryption": "macsec"})},
	}
	found := data.medplan.hipaa.deny_unencrypted_phi_link with input as doc
	count(found) == 0
}
