# GDPR Chapter V: personal data of EU data subjects leaving the EU.
# The input document computes eu_subjects from lineage, so data that already
# left the EU keeps it: an onward transfer from a non-EU site counts too.
package medplan.gdpr

import rego.v1

# The residency zone that GDPR protects (sites and datasets name zones).
eu_zone := "eu"

declared(value) if is_string(value)

# A flow is a transfer when its target is at a known site outside the EU and
# it is not a move within one site. A source that is an unplaced workload
# (no site yet) could be anywhere, so it counts.
transfer(flow) if {
	is_string(flow.to.zone)
	flow.to.zone != eu_zone
	not same_site(flow)
}

same_site(flow) if {
	is_string(flow.from.site)
	flow.from.site == flow.to.site
}

# METADATA
# title: Transfers of EU personal data out of the EU have a legal basis
# description: >-
#   A flow of personal data about EU data subjects to a site outside the EU
#   (including an onward transfer from a non-EU site) declares its Chapter V
#   basis: an adequacy decision, standard contractual clauses, binding
#   corporate rules or an Art. 49 derogation.
# custom:
#   id: MP-GDPR-XFER-001
#   severity: high
#   controls: ["GDPR Art. 44", "GDPR Art. 45", "GDPR Art. 46"]
#   remediation: >-
#     Put the transfer under a mechanism (usually scc or adequacy) and set
#     transfer_mechanism on the flow, or keep the target in the EU.
#   stage: validate
deny_transfer_without_mechanism contains violation if {
	some id, flow in input.flows
	flow.personal
	flow.eu_subjects
	transfer(flow)
	not declared(flow.transfer_mechanism)
	violation := {
		"subject": sprintf("flow/%s", [id]),
		"message": sprintf("flow %s moves personal data of EU data subjects from %s %s (zone %s) to site %s in zone %s without a transfer mechanism", [id, flow.from.kind, flow.from.id, zone_name(flow.from.zone), flow.to.site, flow.to.zone]),
	}
}

zone_name(zone) := zone if is_string(zone)

zone_name(zone) := "not yet placed" if not is_string(zone)

# METADATA
# title: Art. 49 derogations are used for occasional transfers only
# description: >-
#   The Art. 49 derogations (explicit consent, contract necessity, public
#   interest, legal claims, vital interests) cover occasional transfers. A
#   continuous or scheduled transfer needs safeguards under Art. 46 or an
#   adequacy decision.
# custom:
#   id: MP-GDPR-XFER-002
#   severity: medium
#   controls: ["GDPR Art. 49", "GDPR Art. 46"]
#   remediation: >-
#     Put the transfer under standard contractual clauses or binding corporate
#     rules (transfer_mechanism: scc or bcr), or make it a one-off.
#   stage: validate
deny_repeated_derogation contains violation if {
	some id, flow in input.flows
	flow.transfer_mechanism == "derogation"
	flow.frequency != "one-off"
	violation := {
		"subject": sprintf("flow/%s", [id]),
		"message": sprintf("flow %s relies on an Art. 49 derogation but is a repeated transfer (frequency: %s), not a one-off", [id, flow.frequency]),
	}
}

# METADATA
# title: EU personal data stored outside the EU is visible
# description: >-
#   A dataset of personal data about EU data subjects stored at a site outside
#   the EU. GDPR has no storage-location rule, so this is information, not a
#   failure: the transfer that put it there is checked by MP-GDPR-XFER-001,
#   and the residency matters for transfer impact assessments and for
#   national health-data rules.
# custom:
#   id: MP-GDPR-RES-001
#   severity: info
#   controls: ["GDPR Art. 44"]
#   remediation: >-
#     Nothing to change if a transfer mechanism covers the data; otherwise
#     store the dataset at an EU site.
#   stage: validate
deny_eu_data_stored_outside_eu contains violation if {
	some id, dataset in input.datasets
	dataset.personal
	dataset.eu_subjects
	dataset.zone != eu_zone
	violation := {
		"subject": sprintf("dataset/%s", [id]),
		"message": sprintf("dataset %s holds %s data of EU data subjects at site %s in zone %s, outside the EU", [id, dataset.classification, dataset.site, dataset.zone]),
	}
}
