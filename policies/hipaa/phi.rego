# Shared definitions of the HIPAA bundle: where PHI is, what a BAA covers.
# HIPAA treats a limited data set as PHI, so "PHI" below is the input
# document's phi flag (classification phi or limited-data-set).
package medplan.hipaa

import rego.v1

# BAA states that leave a business associate without a signed agreement.
# not-required is the on-prem default; on a third-party site it is an explicit
# claim that rule MP-HIPAA-BAA-003 asks a reviewer to confirm.
baa_missing := {"none", "pending"}

# Pool isolation that keeps one workload's GPU memory and processes away from
# another's. Time-slicing shares the same GPU memory between tenants.
isolating := {"mig", "dedicated-nodes"}

# What PHI a site holds, for messages: "datasets a, b; received by flows x".
phi_held(site) := concat("; ", array.concat(
	[part | count(site.phi_datasets) > 0; part := sprintf("datasets %s", [concat(", ", site.phi_datasets)])],
	[part | count(site.receives_phi_flows) > 0; part := sprintf("received by flows %s", [concat(", ", site.receives_phi_flows)])],
))

backup_declared(site) if {
	backup := site.controls.backup
	is_number(backup.rpo_hours)
	is_number(backup.rto_hours)
}

declared(value) if is_string(value)
