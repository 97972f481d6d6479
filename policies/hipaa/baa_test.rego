package medplan.hipaa_test

import rego.v1


test_site_without_baa_fails_when_pending if {
	found := data.medplan.hipaa.deny_site_without_baa with input as {"sites": {"aws": site({"baa": "pending"})}}
	subjects(found) == {"site/aws"}
}

test_site_without_baa_fails_when_none if {
	found := data.medplan.hipaa.deny_site_without_baa with input as {"sites": {"colo": site({"kind": "colocation", "baa": "none"})}}
	subjects(found) == {"site/colo"}
}

test_site_without_baa_fails_for_no_view_hosting if {
	# Encrypted with keys the operator never holds: still a business associate.
	no_view := site({"baa": "none", "controls": {"encryption_at_rest": true, "customer_managed_keys": true}})
	found := data.medplan.hipaa.deny_site_without_baa with input as {"sites": {"aws": no_view}}
	subjects(found) == {"site/aws"}
}

test_site_without_baa_fails_for_received_phi_only if {
	receiver := site({"baa": "none", "stores_phi": false, "phi_datasets": [], "receives_phi_flows": ["export"]})
	found := data.medplan.hipaa.deny_site_without_baa with input as {"sites": {"aws": receiver}}
	subjects(found) == {"site/aws"}
}

test_site_without_baa_passes_when_executed if {
	found := data.medplan.hipaa.deny_site_without_baa with input as {"sites": {"aws": site({})}}
	count(found) == 0
}

test_site_without_baa_passes_on_prem_and_without_phi if {
	sites := {
		"dc1": site({"kind": "on-prem", "third_party": false, "baa": "not-required"}),
		"aws": site({"baa": "none", "holds_phi": false, "stores_phi": false, "phi_datasets": []}),
	}
	found := data.medplan.hipaa.deny_site_without_baa with input as {"sites": sites}
	count(found) == 0
}

test_site_baa_claimed_not_required_fails if {
	found := data.medplan.hipaa.deny_site_baa_claimed_not_required with input as {"sites": {"colo": site({"kind": "colocation", "baa": "not-required"})}}
	subjects(found) == {"site/colo"}
}

test_site_baa_claimed_not_required_passes if {
	sites := {
		"dc1": site({"kind": "on-prem", "third_party": false, "baa": "not-required"}),
		"aws": site({}),
	}
	found := data.medplan.hipaa.deny_site_baa_claimed_not_required with input as {"sites": sites}
	count(found) == 0
}

test_link_without_baa_fails if {
	links := {
		"a~b": link({"carrier": "Carrier A", "third_party": true, "baa": "none"}),
		"b~c": link({"carrier": "Carrier B", "third_party": true, "baa": "pending"}),
	}
	found := data.medplan.hipaa.deny_link_without_baa with input as {"links": links}
	subjects(found) == {"link/a~b", "link/b~c"}
}

test_link_without_baa_passes if {
	links := {
		"a~b": link({"carrier": "Carrier A", "third_party": true, "baa": "executed"}),
		"b~c": link({"carrier": "Conduit", "third_party": true, "baa": "not-required"}),
		"c~d": link({}),
		"d~e": link({"carrier": "Carrier B", "third_party": true, "baa": "none", "phi_flows": [], "carries_phi": false}),
	}
	found := data.medplan.hipaa.deny_link_without_baa with input as {"links": links}
	count(found) == 0
}
