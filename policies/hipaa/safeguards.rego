# Technical and contingency safeguards at every site where PHI is held.
package medplan.hipaa

import rego.v1

# METADATA
# title: PHI at rest is encrypted
# description: >-
#   A site that stores PHI datasets or receives PHI flows encrypts the storage
#   that holds them.
# custom:
#   id: MP-HIPAA-ENC-001
#   severity: high
#   controls: ["HIPAA 164.312(a)(2)(iv)"]
#   remediation: >-
#     Enable storage encryption at the site and set
#     controls.encryption_at_rest: true, or keep the PHI elsewhere.
#   stage: validate
deny_phi_at_rest_unencrypted contains violation if {
	some id, site in input.sites
	site.holds_phi
	not site.controls.encryption_at_rest
	violation := {
		"subject": sprintf("site/%s", [id]),
		"message": sprintf("site %s holds PHI (%s) without encryption at rest", [id, phi_held(site)]),
	}
}

# METADATA
# title: Access to PHI is audit-logged
# description: >-
#   A site that holds PHI records who accessed which systems and data, so
#   that access can be reviewed and incidents investigated.
# custom:
#   id: MP-HIPAA-AUDIT-001
#   severity: high
#   controls: ["HIPAA 164.312(b)"]
#   remediation: >-
#     Turn on audit logging for systems and storage at the site and set
#     controls.audit_logging: true.
#   stage: validate
deny_phi_without_audit_logging contains violation if {
	some id, site in input.sites
	site.holds_phi
	not site.controls.audit_logging
	violation := {
		"subject": sprintf("site/%s", [id]),
		"message": sprintf("site %s holds PHI (%s) but access is not audit-logged", [id, phi_held(site)]),
	}
}

# METADATA
# title: Access to PHI requires multi-factor authentication
# description: >-
#   People who reach systems at a site that holds PHI prove who they are with
#   more than a password.
# custom:
#   id: MP-HIPAA-ACCESS-001
#   severity: high
#   controls: ["HIPAA 164.312(d)"]
#   remediation: >-
#     Enforce MFA for every interactive and administrative login at the site
#     and set controls.mfa: true.
#   stage: validate
deny_phi_without_mfa contains violation if {
	some id, site in input.sites
	site.holds_phi
	not site.controls.mfa
	violation := {
		"subject": sprintf("site/%s", [id]),
		"message": sprintf("site %s holds PHI (%s) but does not enforce multi-factor authentication", [id, phi_held(site)]),
	}
}

# METADATA
# title: Every user of PHI systems has a unique identity
# description: >-
#   Shared accounts at a site that holds PHI make access impossible to trace
#   to a person.
# custom:
#   id: MP-HIPAA-ACCESS-002
#   severity: high
#   controls: ["HIPAA 164.312(a)(2)(i)"]
#   remediation: >-
#     Replace shared accounts with personal ones and set
#     controls.unique_user_ids: true.
#   stage: validate
deny_phi_with_shared_accounts contains violation if {
	some id, site in input.sites
	site.holds_phi
	not site.controls.unique_user_ids
	violation := {
		"subject": sprintf("site/%s", [id]),
		"message": sprintf("site %s holds PHI (%s) but users do not have unique identities (unique_user_ids: false)", [id, phi_held(site)]),
	}
}

# METADATA
# title: Stored PHI is backed up with declared recovery objectives
# description: >-
#   A site that stores PHI datasets declares its backup with a recovery point
#   objective (how much data may be lost) and a recovery time objective (how
#   long restoring takes). Medium, not high: the backup may exist outside what
#   the spec describes, but the plan cannot show it.
# custom:
#   id: MP-HIPAA-BACKUP-001
#   severity: medium
#   controls: ["HIPAA 164.308(a)(7)(ii)(A)", "HIPAA 164.308(a)(7)(ii)(B)"]
#   remediation: >-
#     Declare controls.backup with rpo_hours and rto_hours for the site, after
#     confirming the backup and a tested restore exist.
#   stage: validate
deny_phi_without_backup contains violation if {
	some id, site in input.sites
	site.stores_phi
	not backup_declared(site)
	violation := {
		"subject": sprintf("site/%s", [id]),
		"message": sprintf("site %s stores PHI (datasets %s) but declares no backup with RPO and RTO", [id, concat(", ", site.phi_datasets)]),
	}
}
