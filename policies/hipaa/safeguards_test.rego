package medplan.hipaa_test

import rego.v1


without(control) := site({"controls": {control: false}})

receiver := site({"stores_phi": false, "phi_datasets": [], "receives_phi_flows": ["f1"]})

no_phi := site({"holds_phi": false, "stores_phi": false, "phi_datasets": []})

test_phi_at_rest_unencrypted_fails if {
	sites := {
		"a": without("encryption_at_rest"),
		"b": object.union(receiver, {"controls": {"encryption_at_rest": false}}),
	}
	found := data.medplan.hipaa.deny_phi_at_rest_unencrypted with input as {"sites": sites}
	subjects(found) == {"site/a", "site/b"}
}

test_phi_at_rest_unencrypted_passes if {
	sites := {"a": site({}), "b": object.union(no_phi, {"controls": {"encryption_at_rest": false}})}
	found := data.medplan.hipaa.deny_phi_at_rest_unencrypted with input as {"sites": sites}
	count(found) == 0
}

test_phi_without_audit_logging_fails if {
	found := data.medplan.hipaa.deny_phi_without_audit_logging with input as {"sites": {"a": without("audit_logging")}}
	subjects(found) == {"site/a"}
}

test_phi_without_audit_logging_passes if {
	sites := {"a": site({}), "b": object.union(no_phi, {"controls": {"audit_logging": false}})}
	found := data.medplan.hipaa.deny_phi_without_audit_logging with input as {"sites": sites}
	count(found) == 0
}

test_phi_without_mfa_fails if {
	found := data.medplan.hipaa.deny_phi_without_mfa with input as {"sites": {"a": without("mfa")}}
	subjects(found) == {"site/a"}
}

test_phi_without_mfa_passes if {
	sites := {"a": site({}), "b": object.union(no_phi, {"controls": {"mfa": false}})}
	found := data.medplan.hipaa.deny_phi_without_mfa with input as {"sites": sites}
	count(found) == 0
}

test_phi_with_shared_accounts_fails if {
	found := data.medplan.hipaa.deny_phi_with_shared_accounts with input as {"sites": {"a": without("unique_user_ids")}}
	subjects(found) == {"site/a"}
}

test_phi_with_shared_accounts_passes if {
	sites := {"a": site({}), "b": object.union(no_phi, {"controls": {"unique_user_ids": false}})}
	found := data.medplan.hipaa.deny_phi_with_shared_accounts with input as {"sites": sites}
	count(found) == 0
}

test_phi_without_backup_fails if {
	found := data.medplan.hipaa.deny_phi_without_backup with input as {"sites": {"a": site({"controls": {"backup": null}})}}
	subjects(found) == {"site/a"}
}

test_phi_without_backup_passes if {
	# Backup is about stored PHI: a site that only receives flows is not asked.
	sites := {"a": site({}), "b": object.union(receiver, {"controls": {"backup": null}})}
	found := data.medplan.hipaa.deny_phi_without_backup with input as {"sites": sites}
	count(found) == 0
}
