# Where workloads that read EU personal data may run (placement stage: classes,
# never ids).
package medplan.gdpr

import rego.v1

# METADATA
# title: Workloads on EU personal data run in the EU unless a transfer is covered
# description: >-
#   A workload that reads personal data of EU data subjects runs at EU sites.
#   It may run outside the EU only if a flow into it declares a transfer
#   mechanism.
# custom:
#   id: MP-GDPR-PLACE-001
#   severity: high
#   controls: ["GDPR Art. 44", "GDPR Art. 46"]
#   remediation: >-
#     Declare a flow into the workload with a transfer_mechanism (for example
#     scc), or let it run only at EU sites.
#   stage: placement
deny_eu_workload_outside_eu := [denial |
	some sclass, message in outside_eu_sites
	some wclass in eu_bound_workloads
	denial := {"workload": wclass, "site": sclass, "message": message}
]

# Workload classes that read EU personal data with no transfer mechanism.
eu_bound_workloads contains wclass if {
	some wclass, workload in input.workloads
	workload.eu_subjects
	count(workload.transfer_mechanisms) == 0
}

# Site classes outside the EU, with the reason given for each. Both sides are
# computed once, so the rule does work only for the pairs it denies instead of
# for every pair of classes. The denials are an array: the pairs of two
# selections are distinct already, and a set of tens of thousands of objects
# costs the engines about three times as much to order and deduplicate.
outside_eu_sites[sclass] := message if {
	some sclass, site in input.sites
	site.zone != eu_zone
	message := sprintf("site is in zone %s, outside the EU, and no transfer mechanism covers the EU personal data the workload reads", [site.zone])
}
