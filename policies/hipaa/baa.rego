# Business associate agreements: every third party that stores, receives or
# carries PHI on the organisation's behalf signs one.
package medplan.hipaa

import rego.v1

# METADATA
# title: Third-party sites holding PHI have an executed BAA
# description: >-
#   A colocation or cloud operator that stores or receives PHI is a business
#   associate and needs a signed business associate agreement before PHI
#   arrives. A pending agreement is not signed. Encrypting the data, even with
#   keys the operator never sees ("no-view" hosting), does not remove the need.
# custom:
#   id: MP-HIPAA-BAA-001
#   severity: high
#   controls: ["HIPAA 164.308(b)(1)", "HIPAA 164.314(a)"]
#   remediation: >-
#     Execute the BAA with the site's operator and set baa: executed, or move
#     the PHI (datasets and flows that target the site) to a covered site.
#   stage: validate
deny_site_without_baa contains violation if {
	some id, site in input.sites
	site.third_party
	site.holds_phi
	site.baa in baa_missing
	violation := {
		"subject": sprintf("site/%s", [id]),
		"message": sprintf("site %s (%s, operated by a third party) holds PHI (%s) but has no executed BAA (baa: %s)", [id, site.kind, phi_held(site), site.baa]),
	}
}

# METADATA
# title: Carrier links carrying PHI have an executed BAA or are conduits
# description: >-
#   A link operated by a carrier that a PHI flow crosses needs a BAA with the
#   carrier. A carrier that only transports data, with no more than transient
#   storage, is a conduit and needs none: declare that with baa:
#   not-required. A pending agreement is not signed.
# custom:
#   id: MP-HIPAA-BAA-002
#   severity: high
#   controls: ["HIPAA 164.308(b)(1)", "HIPAA 164.314(a)"]
#   remediation: >-
#     Execute a BAA with the carrier (baa: executed), declare baa:
#     not-required if the carrier is a mere conduit, or route the PHI flows
#     over another link.
#   stage: validate
deny_link_without_baa contains violation if {
	some key, link in input.links
	link.third_party
	link.carries_phi
	link.baa in baa_missing
	violation := {
		"subject": sprintf("link/%s", [key]),
		"message": sprintf("link %s is operated by %s and carries PHI (flows %s) but has no executed BAA with the carrier (baa: %s)", [key, link.carrier, concat(", ", link.phi_flows), link.baa]),
	}
}

# METADATA
# title: Third-party sites claiming no BAA is needed for PHI are reviewed
# description: >-
#   baa: not-required on a colocation or cloud site that holds PHI claims the
#   operator is not a business associate for that data, for example because
#   the data is not PHI of a covered entity (a non-covered trial sponsor's EU
#   records). HHS treats a provider that maintains PHI as a business associate
#   even when it cannot read it, so the claim is reported until a waiver
#   records who confirmed it and why.
# custom:
#   id: MP-HIPAA-BAA-003
#   severity: medium
#   controls: ["HIPAA 164.308(b)(1)", "HIPAA 164.314(a)"]
#   remediation: >-
#     Execute a BAA with the operator (baa: executed), or record in a waiver
#     why HIPAA does not reach the PHI at this site.
#   stage: validate
deny_site_baa_claimed_not_required contains violation if {
	some id, site in input.sites
	site.third_party
	site.holds_phi
	site.baa == "not-required"
	violation := {
		"subject": sprintf("site/%s", [id]),
		"message": sprintf("site %s (%s, operated by a third party) holds PHI (%s) and declares that no BAA is required", [id, site.kind, phi_held(site)]),
	}
}
