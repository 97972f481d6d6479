"""Turn rule violations into located Findings and apply waivers.

A waived finding stays visible with status ``waived``; an expired waiver
fails as its own finding and no longer waives; a waiver that matches
nothing is a low-severity finding of its own.
"""

from __future__ import annotations

import datetime as dt

from planner.errors import Location
from planner.policy.evaluate import Violation
from planner.policy.findings import AppliedWaiver, Finding, FindingLocation, Status, Subject, fingerprint
from planner.policy.rules import Rule
from planner.spec.loader import sources_of
from planner.spec.models import Severity, Spec

WAIVER_EXPIRED = Rule(
    id="MP-WAIVER-001",
    title="Waivers are current",
    severity=Severity.high,
    controls=("HIPAA 164.308(a)(1)(ii)(B)",),
    description="An accepted risk must be re-approved when its waiver expires; an expired waiver no longer waives.",
    remediation="Renew the waiver with a new expiry and approval, or fix the finding it covered.",
    language="python",
    bundle="medplan",
    name="waiver_expired",
    location=Location("<medplan>"),
)
WAIVER_UNUSED = Rule(
    id="MP-WAIVER-002",
    title="Waivers match a finding",
    severity=Severity.low,
    controls=(),
    description="A waiver that matches no finding is stale or mistyped and hides nothing; remove or correct it.",
    remediation="Check the waiver's rule id and subject, or remove it.",
    language="python",
    bundle="medplan",
    name="waiver_unused",
    location=Location("<medplan>"),
)
META_RULES = (WAIVER_EXPIRED, WAIVER_UNUSED)


def subject_paths(spec: Spec) -> dict[str, tuple]:
    """Subject string -> the path of its YAML node in the merged spec."""
    out: dict[str, tuple] = {}
    for i, site in enumerate(spec.sites):
        out[f"site/{site.id}"] = ("sites", i)
        for j, pool in enumerate(site.pools):
            out[f"pool/{site.id}/{pool.id}"] = ("sites", i, "pools", j)
    for i, link in enumerate(spec.links):
        out[f"link/{link.key}"] = ("links", i)
    for section in ("datasets", "workloads", "flows"):
        for i, item in enumerate(getattr(spec, section)):
            out[f"{section[:-1]}/{item.id}"] = (section, i)
    for i, _ in enumerate(spec.waivers):
        out[f"waiver/{i}"] = ("waivers", i)
    return out


def normalise_subject(subject: str) -> str:
    """link/B~A and link/A~B are the same link."""
    kind, _, ident = subject.partition("/")
    if kind == "link" and "~" in ident:
        a, _, b = ident.partition("~")
        return f"link/{'~'.join(sorted((a, b)))}"
    return subject


class FindingBuilder:
    """Locates violations in the spec and applies its waivers."""

    def __init__(self, spec: Spec, today: dt.date, use_waivers: bool = True):
        self.spec = spec
        self.today = today
        self.use_waivers = use_waivers
        self.sources = sources_of(spec)
        self.paths = subject_paths(spec)
        self.waivers = {
            (w.rule, normalise_subject(w.subject)): (i, w) for i, w in enumerate(spec.waivers)
        } if use_waivers else {}
        self.used: set[int] = set()

    def locate(self, subject: str) -> FindingLocation | None:
        path = self.paths.get(subject)
        if path is None or not self.sources.inputs:
            return None
        loc = self.sources.locate(path)
        return FindingLocation(file=loc.file, line=loc.line, column=loc.column)

    def finding(self, rule: Rule, subject: str, message: str, *, error: bool = False, stage: str | None = None) -> Finding:
        subject = normalise_subject(subject)
        status = Status.error if error else Status.fail
        applied = None
        match = self.waivers.get((rule.id, subject))
        if match is not None and not error:
            index, waiver = match
            self.used.add(index)
            if waiver.expires >= self.today:
                status = Status.waived
                applied = AppliedWaiver(
                    justification=waiver.justification,
                    approved_by=waiver.approved_by,
                    expires=waiver.expires.isoformat(),
                    ticket=waiver.ticket,
                )
        parsed = Subject.parse(subject)
        return Finding(
            fingerprint=fingerprint(rule.id, parsed),
            rule=rule.id,
            title=rule.title,
            severity=rule.severity,
            status=status,
            controls=list(rule.controls),
            subject=parsed,
            message=message,
            location=self.locate(subject),
            remediation=rule.remediation,
            stage=stage or rule.stage,
            waiver=applied,
        )

    def from_violations(self, violations: list[Violation]) -> list[Finding]:
        return [self.finding(v.rule, v.subject, v.message, error=v.error) for v in violations]

    def waiver_findings(self, known_rules: dict[str, str], stages: set[str]) -> list[Finding]:
        """Expired and unmatched waivers, each a finding at the waiver.

        ``known_rules`` maps rule ids to their stage; a waiver of a rule whose
        stage did not run (a plan-stage rule during validate) is not unused.
        """
        if not self.use_waivers:
            return []
        out = []
        for i, waiver in enumerate(self.spec.waivers):
            subject = f"waiver/{i}"
            if waiver.expires < self.today:
                out.append(
                    self.finding(
                        WAIVER_EXPIRED,
                        subject,
                        f"waiver of {waiver.rule} for {waiver.subject} expired on {waiver.expires.isoformat()} "
                        f"(approved by {waiver.approved_by})",
                    )
                )
            elif i not in self.used and known_rules.get(waiver.rule, "validate") in stages:
                why = "no rule has that id" if waiver.rule not in known_rules else "the rule found nothing to waive there"
                out.append(
                    self.finding(WAIVER_UNUSED, subject, f"waiver of {waiver.rule} for {waiver.subject} matches no finding: {why}")
                )
        return out
