# Where PHI workloads may run. Placement rules see classes of workloads and
# sites (input.workloads and input.sites keyed by class id), never ids, and
# yield one denial per forbidden (workload class, site class) pair.
package medplan.hipaa

import rego.v1

# Each rule below reads the classes on each side once (the helper rules) and
# then does work only for the pairs it denies, not for every pair of classes.
# The denials are an array: the pairs are distinct already, and a set of tens
# of thousands of objects costs the engines three times as much to order.

phi_workload_classes contains wclass if {
	some wclass, workload in input.workloads
	workload.phi
}

# METADATA
# title: PHI workloads run only where a BAA covers the site
# description: >-
#   A workload that reads PHI brings PHI to the site it runs on, so a
#   third-party site without a signed BAA (none or pending) cannot run it.
# custom:
#   id: MP-HIPAA-PLACE-001
#   severity: high
#   controls: ["HIPAA 164.308(b)(1)", "HIPAA 164.314(a)"]
#   remediation: >-
#     Execute the BAA with the site's operator, or let the workload run on
#     other sites.
#   stage: placement
deny_phi_workload_without_baa := [denial |
	some sclass, message in sites_without_baa
	some wclass in phi_workload_classes
	denial := {"workload": wclass, "site": sclass, "message": message}
]

sites_without_baa[sclass] := message if {
	some sclass, site in input.sites
	site.third_party
	site.baa in baa_missing
	message := sprintf("site is operated by a third party (%s) and has no executed BAA (baa: %s)", [site.kind, site.baa])
}

# METADATA
# title: PHI workloads run only where storage is encrypted at rest
# description: >-
#   A workload that reads PHI caches and writes it at the site it runs on, so
#   the site encrypts data at rest.
# custom:
#   id: MP-HIPAA-PLACE-002
#   severity: high
#   controls: ["HIPAA 164.312(a)(2)(iv)"]
#   remediation: >-
#     Enable encryption at rest at the site (controls.encryption_at_rest:
#     true), or let the workload run on other sites.
#   stage: placement
deny_phi_workload_without_encryption_at_rest := [denial |
	some sclass in sites_without_encryption_at_rest
	some wclass in phi_workload_classes
	denial := {
		"workload": wclass,
		"site": sclass,
		"message": "site does not encrypt data at rest (encryption_at_rest: false)",
	}
]

sites_without_encryption_at_rest contains sclass if {
	some sclass, site in input.sites
	not site.controls.encryption_at_rest
}

# METADATA
# title: PHI workloads run only where access is audit-logged
# description: >-
#   A workload that reads PHI runs only on a site that records access to its
#   systems and data.
# custom:
#   id: MP-HIPAA-PLACE-003
#   severity: high
#   controls: ["HIPAA 164.312(b)"]
#   remediation: >-
#     Turn on audit logging at the site (controls.audit_logging: true), or let
#     the workload run on other sites.
#   stage: placement
deny_phi_workload_without_audit_logging := [denial |
	some sclass in sites_without_audit_logging
	some wclass in phi_workload_classes
	denial := {
		"workload": wclass,
		"site": sclass,
		"message": "site does not audit-log access (audit_logging: false)",
	}
]

sites_without_audit_logging contains sclass if {
	some sclass, site in input.sites
	not site.controls.audit_logging
}
