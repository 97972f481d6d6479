# Uses and disclosures: de-identification and minimum necessary.
package medplan.hipaa

import rego.v1

# METADATA
# title: De-identified data leaving a covered site names its method
# description: >-
#   A flow declared de-identified that comes out of PHI (or out of an on-prem,
#   covered site) and leaves the site is only outside HIPAA if the data was
#   de-identified by Safe Harbor or Expert Determination. The method is
#   declared on the flow or on the de-identified dataset it fills.
# custom:
#   id: MP-HIPAA-DEID-001
#   severity: high
#   controls: ["HIPAA 164.514(b)"]
#   remediation: >-
#     Set deidentification: safe-harbor or expert-determination on the flow
#     (or on its target dataset), or classify the flow as phi.
#   stage: validate
deny_deidentified_flow_without_method contains violation if {
	some id, flow in input.flows
	flow.classification == "deidentified"
	flow.leaves_site
	from_covered_data(flow)
	not deidentification_declared(flow)
	violation := {
		"subject": sprintf("flow/%s", [id]),
		"message": sprintf("flow %s moves data declared de-identified from %s %s (site %s) to site %s without naming the de-identification method", [id, flow.from.kind, flow.from.id, flow.from.site, flow.to.site]),
	}
}

from_covered_data(flow) if flow.source_phi

from_covered_data(flow) if flow.from_covered_site

deidentification_declared(flow) if declared(flow.deidentification)

deidentification_declared(flow) if {
	flow.to.kind == "dataset"
	declared(input.datasets[flow.to.id].deidentification)
}

# METADATA
# title: De-identified datasets name their method
# description: >-
#   A dataset classified deidentified is only outside HIPAA if it was
#   de-identified by Safe Harbor (the 18 identifiers removed) or Expert
#   Determination. Without a declared method it may still be PHI.
# custom:
#   id: MP-HIPAA-DEID-002
#   severity: high
#   controls: ["HIPAA 164.514(b)"]
#   remediation: >-
#     Set deidentification: safe-harbor or expert-determination on the
#     dataset, or classify it as phi or limited-data-set.
#   stage: validate
deny_deidentified_dataset_without_method contains violation if {
	some id, dataset in input.datasets
	dataset.classification == "deidentified"
	not declared(dataset.deidentification)
	violation := {
		"subject": sprintf("dataset/%s", [id]),
		"message": sprintf("dataset %s at site %s is classified deidentified but names no de-identification method", [id, dataset.site]),
	}
}

# METADATA
# title: Every PHI flow declares its purpose
# description: >-
#   A flow of PHI states why the data moves (treatment, payment, operations,
#   research, ...), so the minimum necessary standard can be applied to it;
#   treatment disclosures are exempt from that standard, but only a declared
#   purpose shows it.
# custom:
#   id: MP-HIPAA-MIN-001
#   severity: medium
#   controls: ["HIPAA 164.502(b)", "HIPAA 164.514(d)"]
#   remediation: Set purpose on the flow.
#   stage: validate
deny_phi_flow_without_purpose contains violation if {
	some id, flow in input.flows
	flow.phi
	not declared(flow.purpose)
	violation := {
		"subject": sprintf("flow/%s", [id]),
		"message": sprintf("flow %s carries %s data from %s %s to %s %s without a declared purpose", [id, flow.classification, flow.from.kind, flow.from.id, flow.to.kind, flow.to.id]),
	}
}
