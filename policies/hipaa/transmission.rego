# Transmission security: PHI is encrypted wherever it moves.
package medplan.hipaa

import rego.v1

# METADATA
# title: PHI in transit is encrypted
# description: >-
#   Every flow of PHI (including limited data sets) declares encryption in
#   transit. Link encryption between sites does not replace it: the flow also
#   crosses the networks inside both sites, where the link does not reach.
# custom:
#   id: MP-HIPAA-TX-001
#   severity: high
#   controls: ["HIPAA 164.312(e)(1)", "HIPAA 164.312(e)(2)(ii)"]
#   remediation: >-
#     Set encryption_in_transit on the flow to tls1.3 (or tls1.2, mtls,
#     ipsec), after enabling it on both ends.
#   stage: validate
deny_unencrypted_phi_flow contains violation if {
	some id, flow in input.flows
	flow.phi
	not flow.encrypted
	violation := {
		"subject": sprintf("flow/%s", [id]),
		"message": sprintf("flow %s carries %s data from %s %s to %s %s without encryption in transit (encryption_in_transit: %s)", [id, flow.classification, flow.from.kind, flow.from.id, flow.to.kind, flow.to.id, flow.encryption_in_transit]),
	}
}

# METADATA
# title: PHI never crosses a link in clear text
# description: >-
#   A link between sites that a PHI flow crosses is encrypted (ipsec, macsec,
#   tls or mtls) unless every PHI flow on it is encrypted end to end. A flow
#   with its own encryption already protects the data on an unencrypted link,
#   so such a link is not reported; a PHI flow without encryption makes the
#   link a place where PHI travels in clear text, and both the flow
#   (MP-HIPAA-TX-001) and the link are reported.
# custom:
#   id: MP-HIPAA-TX-002
#   severity: high
#   controls: ["HIPAA 164.312(e)(1)", "HIPAA 164.312(e)(2)(ii)"]
#   remediation: >-
#     Encrypt the link (encryption: ipsec or macsec) or encrypt each PHI flow
#     that crosses it.
#   stage: validate
deny_unencrypted_phi_link contains violation if {
	some key, link in input.links
	link.carries_phi
	not link.encrypted
	clear := [id | some id in link.phi_flows; not input.flows[id].encrypted]
	count(clear) > 0
	violation := {
		"subject": sprintf("link/%s", [key]),
		"message": sprintf("link %s has no encryption (encryption: %s) and PHI flows cross it in clear text (flows %s)", [key, link.encryption, concat(", ", clear)]),
	}
}
