"""The plan's policy results as an OSCAL 1.1 Assessment Results document (JSON).

``render_oscal(result)`` is pure and deterministic. How medplan maps onto OSCAL:

- ``metadata.last-modified`` and the result's ``start``/``end`` and every
  observation's ``collected`` are the ``timestamp`` given (normalised to UTC,
  ``YYYY-MM-DDTHH:MM:SSZ``), else the fixed epoch ``1970-01-01T00:00:00Z``,
  so that a document written without a timestamp is byte-identical per input.
- Every UUID is a UUID 5 in :data:`NAMESPACE` over the spec's
  ``metadata.name`` and a stable key (rule fingerprint, control, subject), so
  the same deployment keeps its UUIDs across revisions of the document.
- ``import-ap`` points at a back-matter resource that stands for the
  assessment plan: the policy bundles with their revisions (medplan writes no
  separate OSCAL assessment plan). Spec files are back-matter resources with
  their SHA-256.
- One observation per finding (rule x subject): method ``TEST``, the subject
  as a local inventory item, evidence ``FILE#LLINE`` in the spec.
- One OSCAL finding per control cited by a rule that ran (HIPAA section or
  GDPR article), target type ``statement-id`` whose id is the citation as an
  OSCAL token (``HIPAA 164.312(e)(1)`` -> ``hipaa-164.312-e-1``). State as in
  :func:`planner.render.report.assess_controls`: ``not-satisfied`` when an
  open finding (fail or error, not waived, above info) cites it, else
  ``satisfied``.
- A waived finding becomes a risk with status ``deviation-approved``: the
  justification is its statement, who approved it and until when are in its
  props and description, and its deadline is the end of the expiry day (UTC).
- Free text from the spec is kept exactly in multi-line fields (description,
  statement, remarks); one-line fields (titles, prop values) get it with
  whitespace collapsed, as OSCAL requires.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from urllib.parse import quote

from planner import __version__
from planner.policy.findings import Finding, Status
from planner.render.report import ControlVerdict, assess_controls

__all__ = ["EPOCH", "NAMESPACE", "OSCAL_VERSION", "assessment_results", "control_token", "render_oscal"]

OSCAL_VERSION = "1.1.2"
EPOCH = "1970-01-01T00:00:00Z"
NS = "https://medplan.dev/ns/oscal"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://medplan.dev/oscal/assessment-results")


def _line(text: object) -> str:
    """A one-line OSCAL string: no newlines, no leading or trailing space, never empty."""
    return " ".join(str(text).split()) or "-"


def control_token(control: str) -> str:
    """An OSCAL token for a control citation: ``GDPR Art. 44`` -> ``gdpr-art-44``."""
    parts = [p.strip(".") for p in re.findall(r"[A-Za-z0-9.]+", control)]
    token = "-".join(p for p in parts if p).lower() or "control"
    return token if token[0].isalpha() else f"control-{token}"


def _timestamp(value: str | None) -> str:
    if value is None:
        return EPOCH
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"timestamp must be ISO 8601, e.g. 2026-01-31T12:00:00Z; got {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)  # a bare time is read as UTC
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Ids:
    """Deterministic UUIDs: one namespace, keyed by the deployment and a stable key."""

    def __init__(self, root: str):
        self.root = root
        self._made: dict[tuple[str, ...], str] = {}  # an observation's UUID is asked for again by each finding citing it

    def __call__(self, *key: str) -> str:
        found = self._made.get(key)
        if found is None:
            found = self._made[key] = uuid5_text("\x00".join((self.root, *key)))
        return found


_NAMESPACE_BYTES = NAMESPACE.bytes


def uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))`` without the UUID object: a large
    plan asks for tens of thousands, and making each object took most of the
    time."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _prop(name: str, value: object) -> dict:
    return {"name": name, "ns": NS, "value": _line(value)}


def _evidence_href(f: Finding) -> str:
    loc = f.location
    return f"{quote(loc.file, safe='/')}#L{loc.line}" if loc else "#"


def _observation(f: Finding, ids: _Ids, collected: str) -> dict:
    obs: dict = {
        "uuid": ids("observation", f.fingerprint),
        "title": _line(f"{f.rule} on {f.subject}"),
        "description": f.message,
        "props": [
            _prop("rule", f.rule),
            _prop("rule-title", f.title),
            _prop("severity", f.severity.value),
            _prop("status", f.status.value),
            _prop("stage", f.stage),
            _prop("fingerprint", f.fingerprint),
        ],
        "methods": ["TEST"],
        "types": ["finding"],
        "subjects": [{"subject-uuid": ids("subject", str(f.subject)), "type": "inventory-item", "title": _line(f.subject)}],
        "collected": collected,
    }
    if f.location is not None:
        loc = f.location
        obs["relevant-evidence"] = [
            {"href": _evidence_href(f), "description": f"The spec at {loc.file}:{loc.line}:{loc.column}."}
        ]
    if f.remediation:
        obs["remarks"] = f"Remediation: {f.remediation}"
    return obs


def _risk(f: Finding, ids: _Ids) -> dict:
    w = f.waiver
    risk: dict = {
        "uuid": ids("risk", f.fingerprint),
        "title": _line(f"Accepted risk: {f.rule} on {f.subject}"),
        "description": f.message,
        "statement": w.justification if w else "Waived.",
        "props": [_prop("rule", f.rule), _prop("severity", f.severity.value)],
        "status": "deviation-approved",
        "related-observations": [{"observation-uuid": ids("observation", f.fingerprint)}],
    }
    if w is not None:
        risk["props"] += [_prop("approved-by", w.approved_by), _prop("waiver-expires", w.expires)]
        if w.ticket:
            risk["props"].append(_prop("ticket", w.ticket))
        risk["deadline"] = f"{w.expires}T23:59:59Z"
        # A risk has no remarks; who accepted it goes after the finding it accepts.
        ticket = f" (ticket {w.ticket})" if w.ticket else ""
        risk["description"] += f"\n\nWaived by {w.approved_by} until {w.expires}{ticket}."
    return risk


def _finding(c: ControlVerdict, ids: _Ids) -> dict:
    token = control_token(c.control)
    open_ = len(c.open)
    description = (
        f"{c.control} is cited by {', '.join(c.rules)}. "
        f"{open_} open, {len(c.waived)} waived and {len(c.informational)} informational finding(s)."
    )
    finding: dict = {
        "uuid": ids("finding", c.control),
        "title": _line(c.control),
        "description": description,
        "props": [_prop("control", c.control)] + [_prop("rule", r) for r in c.rules],
        "target": {
            "type": "statement-id",
            "target-id": token,
            "title": _line(c.control),
            "status": {"state": c.state, "reason": "fail" if c.state == "not-satisfied" else "pass"},
        },
    }
    cited = c.findings
    if cited:
        finding["related-observations"] = [{"observation-uuid": ids("observation", f.fingerprint)} for f in cited]
    if c.waived:
        finding["related-risks"] = [{"risk-uuid": ids("risk", f.fingerprint)} for f in c.waived]
        finding["remarks"] = "\n\n".join(
            f"Waived: {f.rule} on {f.subject}"
            + (f", approved by {f.waiver.approved_by} until {f.waiver.expires}." if f.waiver else ".")
            for f in c.waived
        )
    if c.informational:
        info = ", ".join(f"{f.rule} on {f.subject}" for f in c.informational)
        finding["target"]["status"]["remarks"] = f"Informational findings do not change the state: {info}."
    return finding


def _back_matter(result, ids: _Ids) -> tuple[dict, str]:
    v = result.validation
    plan_uuid = ids("assessment-plan")
    resources = [
        {
            "uuid": plan_uuid,
            "title": "Assessment plan: the medplan policy bundles",
            "description": (
                "medplan writes no separate OSCAL assessment plan. The plan is the policy bundles listed in this "
                f"back-matter, run by {v.engine.get('name', 'none')} {v.engine.get('version') or ''}".rstrip()
                + f" at combined revision {v.engine.get('bundle_revision') or 'none'}, failing at {v.fail_on.value} and above."
            ),
        }
    ]
    for b in sorted(v.bundles, key=lambda b: b["name"]):
        resources.append(
            {
                "uuid": ids("bundle", b["name"]),
                "title": _line(f"Policy bundle {b['name']}"),
                "props": [_prop("bundle", b["name"]), _prop("revision", b.get("revision") or "none")],
            }
        )
    for i in sorted(v.inputs, key=lambda i: i.path):
        resources.append(
            {
                "uuid": ids("input", i.path),
                "title": _line(f"Spec file {i.path}"),
                "rlinks": [
                    {
                        "href": quote(i.path, safe="/"),
                        "media-type": "application/yaml",
                        "hashes": [{"algorithm": "SHA-256", "value": i.sha256}],
                    }
                ],
            }
        )
    return {"resources": resources}, plan_uuid


def assessment_results(result, timestamp: str | None = None) -> dict:
    """The Assessment Results document as a Python value (see :func:`render_oscal`)."""
    when = _timestamp(timestamp)
    spec = result.spec
    v = result.validation
    ids = _Ids(spec.metadata.name)
    findings = sorted(v.findings, key=Finding.sort_key)
    controls = assess_controls(v)
    back_matter, plan_uuid = _back_matter(result, ids)

    subjects = sorted({str(f.subject) for f in findings})
    verdict = "fail" if result.failed else "pass"
    outcome: dict = {
        "uuid": ids("result"),
        "title": _line(f"Policy evaluation of the plan for {spec.metadata.name}"),
        "description": (
            f"medplan {__version__} evaluated {len(v.rules)} rules over the spec and the plan "
            f"(stages validate, placement and plan). Verdict: {verdict}; fail-on {v.fail_on.value}."
        ),
        "start": when,
        "end": when,
        "props": [
            _prop("engine", v.engine.get("name", "none")),
            _prop("engine-version", v.engine.get("version") or "none"),
            _prop("bundle-revision", v.engine.get("bundle_revision") or "none"),
            _prop("fail-on", v.fail_on.value),
            _prop("verdict", verdict),
            _prop("solver", result.plan.objective.solver),
            _prop("solver-status", result.plan.objective.status),
        ],
        "reviewed-controls": {
            "control-selections": [
                {"include-controls": [{"control-id": control_token(c.control)} for c in controls]}
                if controls
                else {"include-all": {}}
            ]
        },
    }
    if subjects:
        outcome["local-definitions"] = {
            "inventory-items": [
                {
                    "uuid": ids("subject", s),
                    "description": _line(f"medplan subject {s}"),
                    "props": [_prop("subject", s)],
                }
                for s in subjects
            ]
        }
    if findings:
        outcome["observations"] = [_observation(f, ids, when) for f in findings]
    waived = [f for f in findings if f.status is Status.waived]
    if waived:
        outcome["risks"] = [_risk(f, ids) for f in waived]
    if controls:
        outcome["findings"] = [_finding(c, ids) for c in controls]

    m = spec.metadata
    about = [f"Deployment: {m.name}"]
    if m.owner:
        about.append(f"Owner: {m.owner}")
    if m.description:
        about.append(m.description)
    return {
        "assessment-results": {
            "uuid": ids("assessment-results"),
            "metadata": {
                "title": _line(f"medplan assessment results: {m.name}"),
                "last-modified": when,
                "version": __version__,
                "oscal-version": OSCAL_VERSION,
                "props": [_prop("deployment", m.name)],
                "remarks": "\n\n".join(about),
            },
            "import-ap": {"href": f"#{plan_uuid}"},
            "results": [outcome],
            "back-matter": back_matter,
        }
    }


def render_oscal(result, *, timestamp: str | None = None) -> str:
    """OSCAL 1.1 Assessment Results as JSON text (``oscal/assessment-results.json``)."""
    from planner.render.jsontext import dumps_indented
    from planner.render.report import paused_gc

    with paused_gc():
        return dumps_indented(assessment_results(result, timestamp)) + "\n"
