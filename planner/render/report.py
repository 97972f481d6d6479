"""The compliance report of a plan, in Markdown and as one self-contained HTML file.

``render_markdown(result)`` and ``render_html(result)`` are pure: the same
:class:`~planner.pipeline.PlanResult` gives the same text, every list is
sorted, and no clock is read (a ``timestamp`` is printed only when given).
Both templates (``templates/report/``) read one view built by
:func:`report_view`. Spec text is escaped on the way out: HTML by Jinja's
autoescape, Markdown by a ``finalize`` hook that escapes every ``{{ }}``
value unless the code marked it :class:`Markdown` after escaping it itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

import jinja2

from planner import __version__
from planner.graph import PERSONAL
from planner.policy.findings import Finding, Status
from planner.policy.waivers import WAIVER_EXPIRED, WAIVER_UNUSED, normalise_subject
from planner.resources import templates_dir
from planner.spec.models import Severity

__all__ = [
    "ControlVerdict",
    "Markdown",
    "assess_controls",
    "md_escape",
    "render_html",
    "render_markdown",
    "report_view",
]

SECTIONS: tuple[tuple[str, str], ...] = (
    ("scope", "1. Scope and inputs"),
    ("verdict", "2. Verdict"),
    ("capacity", "3. Sites and capacity"),
    ("placements", "4. Placements and rationale"),
    ("data-flows", "5. PHI data-flow map"),
    ("findings", "6. Findings by control"),
    ("waivers", "7. Waivers"),
    ("hopper-blackwell", "8. Hopper or Blackwell"),
    ("sign-off", "9. Sign-off"),
)

SIGN_OFF_ROLES = (
    "Privacy officer (HIPAA)",
    "Information security officer",
    "Data protection officer (GDPR)",
    "Clinical / ML system owner",
    "Infrastructure owner",
)

# How the map colours a flow, and the words the legend uses for it.
ENCRYPTION_CLASSES: dict[str, tuple[str, str]] = {
    "encrypted": ("#2e7d32", "encrypted in transit (declared on the flow)"),
    "link-only": ("#00838f", "not declared on the flow; every link crossed is encrypted"),
    "on-site": ("#78909c", "within one site, not declared"),
    "unencrypted": ("#c62828", "unencrypted (declared none, or crosses an unencrypted link)"),
    "unplaced": ("#9e9e9e", "an end is a workload that is not placed"),
}

# A pool this full, shared by more than one team, is where teams compete.
BUSY_POOL = 0.8
# A latency margin under this share of max_latency_ms is called tight.
TIGHT_LATENCY = 0.2
REFERENCE_GPUS = {"hopper": "H200", "blackwell": "B200"}


# --------------------------------------------------------------------------- escaping


class Markdown(str):
    """Markdown that is already escaped; the Markdown template prints it as is."""


_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{0,31});")
_MD_PUNCT = re.compile(r"([\\`*_\[\]|~$])")
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto|file|javascript|data)(:)")
_BLOCK_START = re.compile(r"^(#|[-+=](?=\s))")
_LIST_NUMBER = re.compile(r"^(\d+)([.)])(?=\s|$)")


def md_escape(value: object) -> str:
    """One line of Markdown that shows ``value`` literally, safe in a table cell.

    Newlines collapse to spaces (a cell is one line); ``<``, ``>`` and
    entity-like ``&name;`` become entities so no HTML survives; Markdown
    punctuation and ``|`` are backslash-escaped; URL schemes lose their
    autolink; a leading ``#``, ``-``, ``+`` or ``1.`` cannot start a block.
    """
    text = " ".join(str(value).split())
    text = _ENTITY.sub(lambda m: "&amp;" + m.group(0)[1:], text)
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_PUNCT.sub(r"\\\1", text)
    text = _AUTOLINK.sub(r"\1\\\2", text)
    text = re.sub(r"(?i)\bwww\.", r"www\\.", text)
    text = _BLOCK_START.sub(r"\\\1", text)
    return _LIST_NUMBER.sub(r"\1\\\2", text)


def _md_finalize(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Markdown):
        return value
    return md_escape(value)


def md_code_block(text: str, info: str = "text") -> Markdown:
    """A fenced block whose fence is longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text.rstrip("\n")
    return Markdown(f"{fence}{info}\n{body}\n{fence}")


_MERMAID_SAFE = re.compile(r"[^A-Za-z0-9 .,:()/_~\u2192-]")


def _mermaid_text(text: str) -> str:
    # Ids follow ID_PATTERN already; this only guards against a future change.
    return _MERMAID_SAFE.sub("_", " ".join(str(text).split()))


def _mermaid_id(*parts: str) -> str:
    return "n_" + "__".join(re.sub(r"[^a-z0-9]", "_", p.lower()) for p in parts)


# --------------------------------------------------------------------------- formatting


def _usd(value: float | None, unit: str = "") -> str:
    return "no price" if value is None else f"${value:,.2f}{unit}"


def _gb(value: float) -> str:
    return f"{value:,.1f} GB"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4g} ms"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _natural(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def _value(item: object) -> str:
    return str(getattr(item, "value", item))


# --------------------------------------------------------------------------- controls


@dataclass(frozen=True)
class ControlVerdict:
    """What the run says about one control (a HIPAA section or a GDPR article).

    ``not-satisfied`` when a finding that cites it is open: status fail or
    error, not waived, severity above info. Info-severity rules report facts
    ("EU data stored outside the EU is visible"), not failures, so they do not
    decide a control. Otherwise ``satisfied``: the rules citing it ran.
    """

    control: str
    state: str  # satisfied | not-satisfied
    rules: tuple[str, ...]
    open: tuple[Finding, ...]
    waived: tuple[Finding, ...]
    informational: tuple[Finding, ...]

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(sorted((*self.open, *self.waived, *self.informational), key=Finding.sort_key))


def _is_open(f: Finding) -> bool:
    return f.status in (Status.fail, Status.error) and f.severity is not Severity.info


def assess_controls(validation) -> list[ControlVerdict]:
    """Every control cited by a rule that ran (or by a finding), in natural order."""
    rules: dict[str, set[str]] = {}
    for rule in validation.rules:
        for control in rule.controls:
            rules.setdefault(control, set()).add(rule.id)
    for f in validation.findings:
        for control in f.controls:
            rules.setdefault(control, set()).add(f.rule)
    out = []
    for control in sorted(rules, key=_natural):
        cited = [f for f in validation.findings if control in f.controls]
        open_ = tuple(f for f in cited if _is_open(f))
        waived = tuple(f for f in cited if f.status is Status.waived)
        info = tuple(f for f in cited if f not in open_ and f not in waived)
        out.append(
            ControlVerdict(
                control=control,
                state="not-satisfied" if open_ else "satisfied",
                rules=tuple(sorted(rules[control])),
                open=open_,
                waived=waived,
                informational=info,
            )
        )
    return out


# --------------------------------------------------------------------------- the view


@dataclass
class FlowRow:
    """One movement of data on the map: a declared flow or a workload input, per placed site."""

    label: str
    origin: str  # declared | input
    source: tuple[str, str, str | None]  # kind, id, site
    target: tuple[str, str, str | None]
    classification: str
    personal: bool
    encryption: str | None  # declared encryption_in_transit; None for an input
    purpose: str | None = None
    transfer_mechanism: str | None = None
    frequency: str | None = None
    description: str | None = None
    sites: tuple[str, ...] = ()
    links: tuple[dict, ...] = ()
    latency_ms: float | None = None
    state: str = "placed"  # placed | unplaced | unreachable
    encryption_class: str = "on-site"

    @property
    def colour(self) -> str:
        return ENCRYPTION_CLASSES[self.encryption_class][0]


def _links_by_key(spec) -> dict[str, object]:
    return {link.key: link for link in spec.links}


def _flow_row(result, label, origin, source, target, classification, flow=None) -> FlowRow:
    links = _links_by_key(result.spec)
    personal = classification in {c.value for c in PERSONAL}
    encryption = _value(flow.encryption_in_transit) if flow is not None else None
    row = FlowRow(
        label=label,
        origin=origin,
        source=source,
        target=target,
        classification=classification,
        personal=personal,
        encryption=encryption,
        purpose=_value(flow.purpose) if flow is not None and flow.purpose is not None else None,
        transfer_mechanism=(
            _value(flow.transfer_mechanism) if flow is not None and flow.transfer_mechanism is not None else None
        ),
        frequency=_value(flow.frequency) if flow is not None else None,
        description=flow.description if flow is not None else None,
    )
    if source[2] is None or target[2] is None:
        row.state, row.encryption_class = "unplaced", "unplaced"
        return row
    route = result.facts.graph.route(source[2], target[2])
    if not route.reachable:
        row.state, row.encryption_class = "unreachable", "unencrypted"
        row.sites = (source[2], target[2])
        return row
    row.sites = tuple(route.sites)
    row.latency_ms = route.latency_ms
    row.links = tuple(
        {
            "key": key,
            "encryption": _value(links[key].encryption) if key in links else "none",
            "latency_ms": links[key].latency_ms if key in links else None,
            "carrier": links[key].carrier if key in links else None,
        }
        for key in route.links
    )
    link_encrypted = bool(row.links) and all(link["encryption"] != "none" for link in row.links)
    if encryption not in (None, "none"):
        row.encryption_class = "encrypted"
    elif link_encrypted:
        row.encryption_class = "link-only"
    elif encryption == "none" or row.links:
        row.encryption_class = "unencrypted"
    else:
        row.encryption_class = "on-site"
    return row


@dataclass(frozen=True)
class _End:
    kind: str
    id: str
    site: str | None = None


def _ends(result, end) -> list[tuple[str, str, str | None]]:
    if end.kind == "workload":
        sites = result.plan.sites_of(end.id)
        return [("workload", end.id, s) for s in sites] or [("workload", end.id, None)]
    return [(end.kind, end.id, end.site)]


def _flows(result) -> list[FlowRow]:
    rows: list[FlowRow] = []
    for rf in result.facts.flows:
        for source in _ends(result, rf.source):
            for target in _ends(result, rf.target):
                rows.append(_flow_row(result, rf.flow.id, "declared", source, target, _value(rf.flow.classification), rf.flow))
    datasets = {d.id: d for d in result.spec.datasets}
    for w in result.spec.workloads:
        for name in w.inputs:
            d = datasets.get(name)
            if d is None:
                continue
            source = ("dataset", d.id, d.site)
            for target in _ends(result, _End("workload", w.id)):
                rows.append(_flow_row(result, f"{d.id} \u2192 {w.id}", "input", source, target, _value(d.classification)))
    order = {"declared": 0, "input": 1}
    rows.sort(key=lambda r: (order[r.origin], r.label, r.source[2] or "", r.target[2] or ""))
    return rows


def _spec_pools(spec) -> dict[str, object]:
    return {f"{site.id}/{pool.id}": pool for site in spec.sites for pool in site.pools}


def _price(pool) -> str:
    if pool.cost_per_gpu_hour is None:
        return "no price"
    text = f"{_usd(pool.cost_per_gpu_hour)}/GPU-h"
    if pool.instance is not None and pool.price_per_node_hour is not None:
        text += f" ({_usd(pool.price_per_node_hour)}/instance-h)"
    return text


def _price_origin(pool) -> str:
    if pool.price_origin == "none":
        return "none"
    origin = {"spec": "spec", "catalog": "catalog list price"}.get(pool.price_origin, pool.price_origin)
    return f"{origin}, as of {pool.price_as_of}" if pool.price_as_of else origin


def _teams(result) -> dict[str, str]:
    return {w.id: (w.team or "(no team)") for w in result.spec.workloads}


def _sites(result) -> list[dict]:
    usage = result.plan.pools
    spec_pools = _spec_pools(result.spec)
    teams = _teams(result)
    out = []
    for site in sorted(result.spec.sites, key=lambda s: s.id):
        c = site.controls
        controls = [
            ("encryption at rest", c.encryption_at_rest),
            ("customer-managed keys", c.customer_managed_keys),
            ("audit logging", c.audit_logging),
            ("MFA", c.mfa),
            ("unique user ids", c.unique_user_ids),
        ]
        pools = []
        for p in sorted((p for p in result.facts.pools if p.site == site.id), key=lambda p: p.key):
            u = usage.get(p.key)
            placed = [x for x in result.plan.placements if x.pool_key == p.key]
            workloads = sorted({x.workload for x in placed})
            used = u.gpus_used if u else 0
            pools.append(
                {
                    "key": p.key,
                    "id": p.id,
                    "gpu": p.gpu,
                    "generation": p.generation,
                    "shape": f"{p.nodes} x {p.gpus_per_node}",
                    "elastic": p.elastic,
                    "instance": p.instance,
                    "capacity_gpus": p.capacity_gpus,
                    "price": _price(p),
                    "price_origin": _price_origin(p),
                    "isolation": _value(spec_pools[p.key].isolation) if p.key in spec_pools else "-",
                    "gpus_used": used,
                    "utilisation": _pct(used / p.capacity_gpus) if p.capacity_gpus else "-",
                    "nodes_used": (
                        f"{u.instances} of {p.nodes} instances"
                        if u and p.elastic
                        else f"{u.nodes_used if u else 0} of {p.nodes} nodes"
                    ),
                    "cost": _usd(u.cost_per_hour, "/h") if u else "-",
                    "workloads": ", ".join(f"{w} ({teams.get(w, '(no team)')})" for w in workloads) or "-",
                }
            )
        out.append(
            {
                "id": site.id,
                "kind": _value(site.kind),
                "provider": _value(site.provider) if site.provider else None,
                "region": site.region,
                "jurisdiction": site.jurisdiction,
                "zone": site.zone,
                "baa": _value(site.baa),
                "certifications": ", ".join(sorted(site.certifications)) or "none",
                "orchestrator": _value(site.orchestrator),
                "controls": ", ".join(name for name, on in controls if on) or "none declared",
                "missing_controls": ", ".join(name for name, on in controls if not on),
                "backup": (
                    f"RPO {c.backup.rpo_hours:g} h, RTO {c.backup.rto_hours:g} h" if c.backup else "not declared"
                ),
                "pools": pools,
            }
        )
    return out


def _scope(result, timestamp) -> dict:
    v = result.validation
    o = result.plan.objective
    m = result.spec.metadata
    unit = {"cost": ("$", "/h"), "gpus": ("", " GPUs"), "latency": ("", " (replica-ms)")}.get(o.kind, ("", ""))

    def amount(x: float) -> str:
        return f"{unit[0]}{x:,.2f}{unit[1]}"

    return {
        "name": m.name,
        "owner": m.owner,
        "description": m.description,
        "timestamp": timestamp,
        "medplan": __version__,
        "inputs": [{"path": i.path, "sha256": i.sha256} for i in sorted(v.inputs, key=lambda i: i.path)],
        "bundles": [
            {"name": b["name"], "revision": b.get("revision") or "-"} for b in sorted(v.bundles, key=lambda b: b["name"])
        ],
        "engine": v.engine.get("name", "none"),
        "engine_version": v.engine.get("version") or "-",
        "bundle_revision": v.engine.get("bundle_revision") or "-",
        "rules": len(v.rules),
        "fail_on": v.fail_on.value,
        "solver": o.solver,
        "status": o.status,
        "objective": f"minimize {o.kind}",
        "value": amount(o.value),
        "bound": amount(o.bound),
        "gap": f"{o.gap * 100:.2f}%",
        "time_limit": f"{o.time_limit_s:g} s",
        "notes": list(o.notes),
        "unpriced_pools": list(o.unpriced_pools),
    }


def _verdict(result, controls: list[ControlVerdict]) -> dict:
    v = result.validation
    s = v.summary
    unplaced = sorted(result.plan.unplaced, key=lambda u: u.workload)
    totals = result.plan.as_dict()["totals"]
    return {
        "compliant": not v.failed,
        "plan_complete": result.plan.feasible,
        "failed": result.failed,
        "fail_on": v.fail_on.value,
        "failing": len(v.failing),
        "by_severity": [(sev.value, s["by_severity"][sev.value]) for sev in Severity],
        "waived": sum(1 for f in v.findings if f.status is Status.waived),
        "errors": sum(1 for f in v.findings if f.status is Status.error),
        "rules": s["rules"],
        "rules_failed": s["failed"],
        "rules_passed": s["passed"],
        "controls_not_satisfied": [c.control for c in controls if c.state == "not-satisfied"],
        "controls": len(controls),
        "unplaced": [
            {"workload": u.workload, "missing": f"{u.replicas_unplaced} of {u.replicas}", "summary": u.summary} for u in unplaced
        ],
        "cost": _usd(totals["cost_per_hour"], "/h"),
        "gpus": totals["gpus"],
        "replicas_placed": totals["replicas_placed"],
        "replicas_unplaced": totals["replicas_unplaced"],
    }


def _placements(result) -> list[dict]:
    teams = _teams(result)
    data = result.facts.workload_data
    unplaced = {u.workload: u for u in result.plan.unplaced}
    out = []
    for w in sorted(result.spec.workloads, key=lambda w: w.id):
        placed = result.plan.placed(w.id)
        by_pool: dict[str, int] = {}
        for p in placed:
            by_pool[p.pool_key] = by_pool.get(p.pool_key, 0) + 1
        cost = [p.cost_per_hour for p in placed]
        u = unplaced.get(w.id)
        out.append(
            {
                "id": w.id,
                "kind": _value(w.kind),
                "team": teams[w.id],
                "description": w.description,
                "criticality": _value(w.criticality),
                "phi": data[w.id].phi if w.id in data else False,
                "classifications": ", ".join(data[w.id].classifications) if w.id in data else "",
                "inputs": ", ".join(sorted(w.inputs)) or "none",
                "placed": len(placed),
                "replicas": len(placed) + (u.replicas_unplaced if u else 0),
                "where": ", ".join(f"{k} x{n}" for k, n in sorted(by_pool.items())) or "not placed",
                "cost": _usd(sum(cost), "/h") if cost and None not in cost else ("-" if not cost else "partly unpriced"),
                "summary": result.plan.summary(w.id),
                "explain": result.plan.explain(w.id).rstrip("\n"),
                "replicas_table": [
                    {
                        "replica": p.replica,
                        "pool": p.pool_key,
                        "gpu": p.gpu,
                        "gpus": p.gpus,
                        "nodes": ", ".join(str(n) for n in p.nodes),
                        "cost": _usd(p.cost_per_hour, "/h"),
                    }
                    for p in placed
                ],
                "unplaced": (
                    {
                        "missing": f"{u.replicas_unplaced} of {u.replicas}",
                        "reasons": sorted(
                            f"{r.site}{'/' + r.pool if r.pool else ''}: {r.code}: {r.message}" for r in u.reasons
                        ),
                        "remedies": sorted(result.plan.remedies(w.id)),
                    }
                    if u
                    else None
                ),
            }
        )
    return out


def _findings(controls: list[ControlVerdict], validation) -> dict:
    def row(f: Finding) -> dict:
        loc = f.location
        return {
            "rule": f.rule,
            "title": f.title,
            "severity": f.severity.value,
            "status": f.status.value,
            "open": _is_open(f),
            "subject": str(f.subject),
            "message": f.message,
            "location": f"{loc.file}:{loc.line}:{loc.column}" if loc else "-",
            "remediation": f.remediation,
            "waiver": (
                f"waived by {f.waiver.approved_by} until {f.waiver.expires}" if f.status is Status.waived and f.waiver else None
            ),
        }

    groups = [
        {
            "control": c.control,
            "state": c.state,
            "rules": ", ".join(c.rules),
            "open": len(c.open),
            "waived": len(c.waived),
            "informational": len(c.informational),
            "findings": [row(f) for f in c.findings],
        }
        for c in controls
    ]
    uncited = [row(f) for f in sorted(validation.findings, key=Finding.sort_key) if not f.controls]
    return {"groups": groups, "with_findings": [g for g in groups if g["findings"]], "uncited": uncited}


def _waivers(result) -> list[dict]:
    findings = result.validation.findings
    out = []
    for i, w in enumerate(result.spec.waivers):
        subject = normalise_subject(w.subject)
        meta = {f.rule for f in findings if str(f.subject) == f"waiver/{i}"}
        covered = sorted(
            (f for f in findings if f.status is Status.waived and f.rule == w.rule and str(f.subject) == subject),
            key=Finding.sort_key,
        )
        if WAIVER_EXPIRED.id in meta:
            status = "expired"
        elif WAIVER_UNUSED.id in meta:
            status = "unused"
        elif covered:
            status = "applied"
        else:
            status = "not applied"
        out.append(
            {
                "rule": w.rule,
                "subject": w.subject,
                "approved_by": w.approved_by,
                "justification": w.justification,
                "expires": w.expires.isoformat(),
                "ticket": w.ticket or "-",
                "status": status,
                "covers": ", ".join(f"{f.rule} {f.subject}" for f in covered) or "-",
            }
        )
    out.sort(key=lambda x: (x["status"] != "expired", x["expires"], x["rule"], x["subject"]))
    return out


# --------------------------------------------------------------------------- Hopper or Blackwell


def _input_latency(result, workload, site: str) -> float | None:
    """Worst network latency from the workload's inputs to ``site`` (None: no inputs)."""
    datasets = {d.id: d for d in result.spec.datasets}
    worst = None
    for name in workload.inputs:
        d = datasets.get(name)
        if d is None:
            continue
        route = result.facts.graph.route(d.site, site)
        latency = route.latency_ms if route.reachable else math.inf
        worst = latency if worst is None else max(worst, latency)
    return worst


def _generation_gpus(result) -> tuple[list[str], set[str]]:
    """Hopper and Blackwell models to compare: the spec's own, else a catalog reference model."""
    from planner.catalog.workload_sizing import gpu_order_key

    catalog = result.facts.catalog
    pool_gpus = {catalog.gpu(p.gpu).id for p in result.facts.pools}
    chosen: list[str] = []
    reference: set[str] = set()
    for generation, fallback in REFERENCE_GPUS.items():
        own = sorted(g for g in pool_gpus if catalog.gpus[g].generation == generation)
        if own:
            chosen += own
        elif fallback in catalog.gpus:
            chosen.append(fallback)
            reference.add(fallback)
    chosen.sort(key=lambda g: gpu_order_key(catalog.gpus[g]))
    return chosen, reference


def _memory_answer(cells: list[dict], known: bool) -> tuple[str, bool | None]:
    if not known:
        return "unknown: the spec gives neither model.params_b nor gpu_memory_gb", None
    hopper = [c for c in cells if c["generation"] == "hopper"]
    blackwell = [c for c in cells if c["generation"] == "blackwell"]
    h_fit = [c for c in hopper if c["fits"]]
    b_fit = [c for c in blackwell if c["fits"]]
    if not h_fit and not b_fit:
        return "does not fit on any compared model", True
    if not h_fit:
        best = min(b_fit, key=lambda c: c["gpus_per_replica"])
        return (
            f"yes: does not fit on {', '.join(c['gpu'] for c in hopper)}; "
            f"fits on {best['gpu']} with {_plural(best['gpus_per_replica'], 'GPU')} per replica"
        ), True
    if not b_fit:
        return "no: fits on Hopper but not on the compared Blackwell models", False
    h_best = min(h_fit, key=lambda c: (c["gpus_per_replica"], -c["headroom"]))
    b_best = min(b_fit, key=lambda c: (c["gpus_per_replica"], -c["headroom"]))
    if b_best["gpus_per_replica"] < h_best["gpus_per_replica"]:
        return (
            f"yes: {_plural(h_best['gpus_per_replica'], 'GPU')} per replica on {h_best['gpu']}, "
            f"{b_best['gpus_per_replica']} on {b_best['gpu']}"
        ), True
    tight = min(h_fit, key=lambda c: c["headroom"])
    return (
        f"no: {_plural(h_best['gpus_per_replica'], 'GPU')} per replica on both; "
        f"least headroom {_gb(tight['headroom'])} per GPU on {tight['gpu']}"
    ), False


def _latency_answer(workload, placed_sites: list[str], result) -> tuple[str, float | None, bool | None]:
    if workload.max_latency_ms is None:
        return "no bound: max_latency_ms is not set", None, None
    if not workload.inputs:
        return "no inputs to reach", None, None
    if not placed_sites:
        return "not placed, so no margin to measure", None, None
    worst_site, worst = max(((s, _input_latency(result, workload, s) or 0.0) for s in placed_sites), key=lambda x: (x[1], x[0]))
    margin = workload.max_latency_ms - worst
    tight = margin < TIGHT_LATENCY * workload.max_latency_ms
    word = "tight" if tight else "within bound"
    return (
        f"{word}: {_ms(worst)} of {_ms(workload.max_latency_ms)} to inputs at {worst_site}, margin {_ms(margin)}; "
        "this is network latency, which a GPU upgrade does not change"
    ), margin, tight


def _sizing_text(s, ws, allowed: set[str]) -> str:
    """One cell of the comparison: GPUs, memory and replicas of a workload on one GPU model."""
    if not s.fits:
        text = f"does not fit: {s.reason}"
    else:
        memory = f"{_gb(s.memory_per_gpu_gb)} used, {_gb(s.headroom_gb)} free per GPU" if ws.memory_known else "memory not known"
        text = f"{_plural(s.gpus_per_replica, 'GPU')}/replica, {memory}, {_plural(s.replicas, 'replica')}"
        if s.gpu in ws.measured:
            text += f" (measured {ws.measured[s.gpu]:g}/replica)"
    if allowed and s.gpu not in allowed:
        text += "; not in the workload's accelerators"
    return text


def _generations(result) -> dict:
    from planner.catalog.workload_sizing import size_workloads

    spec = result.spec
    catalog = result.facts.catalog
    gpus, reference = _generation_gpus(result)
    # Size without the workloads' accelerators so memory alone decides the fit;
    # whether the spec allows a model is shown next to it.
    unrestricted = spec.model_copy(
        update={"workloads": [w.model_copy(update={"accelerators": []}) for w in spec.workloads]}
    )
    sizing = size_workloads(unrestricted, catalog, gpus) if gpus else {}
    rows = []
    for w in sorted(spec.workloads, key=lambda w: w.id):
        ws = sizing.get(w.id)
        allowed = {catalog.gpu(a).id for a in w.accelerators}
        cells = []
        for s in ws or ():
            cells.append(
                {
                    "gpu": s.gpu,
                    "generation": catalog.gpus[s.gpu].generation,
                    "fits": s.fits,
                    "reason": s.reason,
                    "gpus_per_replica": s.gpus_per_replica,
                    "memory_per_gpu": s.memory_per_gpu_gb,
                    "headroom": s.headroom_gb,
                    "replicas": s.replicas,
                    "measured": ws.measured.get(s.gpu),
                    "allowed": not allowed or s.gpu in allowed,
                    "reference": s.gpu in reference,
                    "text": _sizing_text(s, ws, allowed),
                }
            )
        placed = result.plan.placed(w.id)
        placed_sites = sorted({p.site for p in placed})
        memory, memory_bound = _memory_answer(cells, ws.memory_known if ws else False)
        latency, margin, tight = _latency_answer(w, placed_sites, result)
        measured = {c["gpu"]: c for c in cells if c["measured"] is not None}
        rows.append(
            {
                "id": w.id,
                "team": w.team or "(no team)",
                "placed_on": ", ".join(sorted({f"{p.pool_key} ({p.gpu})" for p in placed})) or "not placed",
                "cells": cells,
                "memory": memory,
                "memory_bound": memory_bound,
                "latency": latency,
                "latency_margin": _ms(margin) if margin is not None else "-",
                "latency_tight": tight,
                "throughput": ", ".join(
                    f"{g} {c['measured']:g} \u2192 {_plural(c['replicas'], 'replica')}" for g, c in measured.items()
                )
                or None,
            }
        )
    teams = _teams(result)
    pools = []
    for key in sorted(result.plan.pools):
        u = result.plan.pools[key]
        names = sorted({p.workload for p in result.plan.placements if p.pool_key == key})
        pool_teams = sorted({teams.get(n, "(no team)") for n in names})
        share = u.gpus_used / u.capacity_gpus if u.capacity_gpus else 0.0
        pools.append(
            {
                "key": key,
                "gpu": u.gpu,
                "generation": catalog.gpus[catalog.gpu(u.gpu).id].generation,
                "used": f"{u.gpus_used} of {u.capacity_gpus}",
                "utilisation": _pct(share),
                "busy": share >= BUSY_POOL,
                "teams": len(pool_teams),
                "team_names": ", ".join(pool_teams) or "none",
                "workloads": ", ".join(names) or "-",
                "contended": share >= BUSY_POOL and len(pool_teams) > 1,
            }
        )
    contended = [p for p in pools if p["contended"]]
    busy = [p for p in pools if p["busy"] and not p["contended"]]
    shared = [p for p in pools if p["teams"] > 1]
    if contended:
        contention = "yes: " + "; ".join(f"{p['key']} is {p['utilisation']} used by {p['teams']} teams" for p in contended)
    elif busy:
        contention = "not between teams: " + "; ".join(
            f"{p['key']} is {p['utilisation']} used by {p['team_names']}" for p in busy
        )
    else:
        contention = f"no: no pool is {_pct(BUSY_POOL)} or more used"
    if shared and not contended:
        contention += "; shared by several teams: " + ", ".join(f"{p['key']} ({p['utilisation']})" for p in shared)
    memory_yes = [r["id"] for r in rows if r["memory_bound"]]
    memory_unknown = [r["id"] for r in rows if r["memory_bound"] is None]
    known = len(rows) - len(memory_unknown)
    if memory_yes:
        memory = "yes for " + ", ".join(memory_yes)
    elif known:
        memory = "no workload of known size needs fewer GPUs per replica on Blackwell"
    else:
        memory = "not known"
    if memory_unknown:
        memory += "; not known for " + ", ".join(memory_unknown) + " (no model size or gpu_memory_gb in the spec)"
    if not rows:
        memory = "no workloads"
    latency_tight = [r["id"] for r in rows if r["latency_tight"]]
    measured = [f"{r['id']} ({r['throughput']})" for r in rows if r["throughput"]]
    return {
        "gpus": [
            {
                "id": g,
                "generation": catalog.gpus[g].generation,
                "memory": _gb(catalog.gpus[g].memory_gb),
                "reference": g in reference,
            }
            for g in gpus
        ],
        "rows": rows,
        "pools": pools,
        "questions": [
            ("Is memory the bottleneck?", memory),
            (
                "Is latency the bottleneck?",
                ("the network margin is tight for " + ", ".join(latency_tight) + "; a GPU upgrade does not shorten it")
                if latency_tight
                else "no placed workload has a tight network latency margin",
            ),
            (
                "Do your own measurements favour a newer model?",
                ("replicas from measured throughput: " + "; ".join(measured))
                if measured
                else "the spec gives no throughput measurements, so replica counts are the same on every model",
            ),
            ("Are many teams competing for the same pool?", contention),
        ],
    }


# --------------------------------------------------------------------------- the data-flow diagram


@dataclass
class _Box:
    key: tuple[str, str, str | None]
    x: float
    y: float
    w: float
    h: float
    title: str
    subtitle: str
    css: str
    tooltip: str


@dataclass
class Diagram:
    """The map laid out: every coordinate decided here, drawn by the template."""

    width: float
    height: float
    columns: list[dict] = field(default_factory=list)
    boxes: list[_Box] = field(default_factory=list)
    arrows: list[dict] = field(default_factory=list)


COLUMN_W, COLUMN_GAP, BOX_H, BOX_GAP, HEADER_H, MARGIN = 210.0, 140.0, 40.0, 16.0, 58.0, 20.0
HEADER_TOP, HEADER_BOX_H = 12.0, 46.0


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _r(value: float) -> float:
    return round(value, 1)


def _bezier(p0, p1, p2, p3, t: float) -> tuple[float, float]:
    u = 1 - t
    x = u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0]
    y = u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1]
    return x, y


def _label_spot(mid: tuple[float, float], label: str, taken: list) -> tuple[float, float]:
    """Where a flow's label goes: at the curve's middle, nudged down past labels already placed."""
    if not label:
        return mid
    width, height = 5.8 * len(label) + 6, 13.0
    x, y = mid[0], mid[1] - 4
    for _ in range(12):
        box = (x - width / 2, y - height + 3, x + width / 2, y + 3)
        if not any(box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3] for t in taken):
            break
        y += height
    taken.append(box)
    return x, y


def flow_diagram(result, rows: list[FlowRow]) -> Diagram:
    """Sites as columns (sorted by id, then 'not placed'), datasets and workloads as boxes."""
    spec = result.spec
    sites = sorted(spec.sites, key=lambda s: s.id)
    columns: list[tuple[str | None, str, str]] = [
        (s.id, s.id, f"{_value(s.kind)}, {s.jurisdiction}, zone {s.zone}") for s in sites
    ]
    unplaced = sorted(w.id for w in spec.workloads if not result.plan.sites_of(w.id))
    if unplaced:
        columns.append((None, "not placed", "workloads without a site"))
    diagram = Diagram(width=0, height=0)
    boxes: dict[tuple, _Box] = {}
    heights = []
    for n, (site, title, subtitle) in enumerate(columns):
        x = MARGIN + n * (COLUMN_W + COLUMN_GAP)
        diagram.columns.append(
            {
                "x": x, "y": HEADER_TOP, "w": COLUMN_W, "h": HEADER_BOX_H,
                "title": _short(title), "subtitle": subtitle, "tooltip": title,
            }
        )
        header = _Box(("site", title, site), x, HEADER_TOP, COLUMN_W, HEADER_BOX_H, title, subtitle, "site", title)
        boxes[("site", site, site)] = header
        items: list[tuple] = []
        if site is not None:
            for d in sorted((d for d in spec.datasets if d.site == site), key=lambda d: d.id):
                personal = d.classification in PERSONAL
                items.append(
                    (("dataset", d.id, site), d.id, f"dataset, {_value(d.classification)}, {_value(d.system)}",
                     "dataset personal" if personal else "dataset")
                )
            placed = sorted({p.workload for p in result.plan.placements if p.site == site})
            for wid in placed:
                count = sum(1 for p in result.plan.placements if p.site == site and p.workload == wid)
                items.append((("workload", wid, site), wid, f"workload, {_plural(count, 'replica')} here", "workload"))
        else:
            for wid in unplaced:
                items.append((("workload", wid, None), wid, "workload, not placed", "workload unplaced"))
        y = MARGIN + HEADER_H
        for key, name, sub, css in items:
            boxes[key] = _Box(key, x + 10, y, COLUMN_W - 20, BOX_H, _short(name, 26), sub, css, name)
            y += BOX_H + BOX_GAP
        heights.append(y)
    diagram.boxes = [b for k, b in boxes.items() if k[0] != "site"]
    column_of = {c[0]: i for i, c in enumerate(columns)}
    pair_count: dict[tuple, int] = {}
    taken: list[tuple[float, float, float, float]] = []
    for row in rows:
        src = boxes.get(row.source if row.source[0] != "site" else ("site", row.source[1], row.source[1]))
        dst = boxes.get(row.target if row.target[0] != "site" else ("site", row.target[1], row.target[1]))
        if src is None or dst is None:
            continue
        # Flows both ways between two boxes would share one curve: spread them apart.
        pair = tuple(sorted((src.key, dst.key), key=str))
        nth = pair_count.get(pair, 0)
        pair_count[pair] = nth + 1
        cs, ct = column_of.get(src.key[2]), column_of.get(dst.key[2])
        sy, ty = src.y + src.h / 2 + nth * 6, dst.y + dst.h / 2 + nth * 6
        if cs is not None and ct is not None and cs < ct:
            p0, p3 = (src.x + src.w, sy), (dst.x, ty)
            bend = max(40.0, (p3[0] - p0[0]) / 2)
            p1, p2 = (p0[0] + bend, sy), (p3[0] - bend, ty)
        elif cs is not None and ct is not None and cs > ct:
            p0, p3 = (src.x, sy), (dst.x + dst.w, ty)
            bend = max(40.0, (p0[0] - p3[0]) / 2)
            p1, p2 = (p0[0] - bend, sy), (p3[0] + bend, ty)
        else:
            # Same column: loop out to the right, wider for boxes further apart.
            p0, p3 = (src.x + src.w, sy), (dst.x + dst.w, ty)
            bend = 28.0 + min(abs(ty - sy), 200.0) * 0.25 + nth * 18
            p1, p2 = (p0[0] + bend, sy), (p3[0] + bend, ty)
        label = _short(row.label, 30) if row.origin == "declared" else ""
        mid = _label_spot(_bezier(p0, p1, p2, p3, 0.5), label, taken)
        diagram.arrows.append(
            {
                "d": f"M{_r(p0[0])},{_r(p0[1])} C{_r(p1[0])},{_r(p1[1])} {_r(p2[0])},{_r(p2[1])} {_r(p3[0])},{_r(p3[1])}",
                "colour": row.colour,
                "marker": f"arrow-{row.encryption_class}",
                "dash": "" if row.personal else "6 4",
                "width": 2.4 if row.personal else 1.4,
                # Inputs read as dataset -> workload already; only declared flows carry a name.
                "label": label,
                "label_x": _r(mid[0]),
                "label_y": _r(mid[1]),
                "tooltip": f"{row.label}: {row.classification}, {ENCRYPTION_CLASSES[row.encryption_class][1]}",
            }
        )
    diagram.width = MARGIN * 2 + len(columns) * COLUMN_W + max(len(columns) - 1, 0) * COLUMN_GAP + 60
    diagram.height = max(heights or [MARGIN + HEADER_H]) + MARGIN
    return diagram


def _mermaid(result, rows: list[FlowRow]) -> Markdown:
    spec = result.spec
    lines = ["flowchart LR"]
    for site in sorted(spec.sites, key=lambda s: s.id):
        label = _mermaid_text(f"{site.id} ({_value(site.kind)}, zone {site.zone})")
        lines.append(f'  subgraph {_mermaid_id("site", site.id)}["{label}"]')
        for d in sorted((d for d in spec.datasets if d.site == site.id), key=lambda d: d.id):
            lines.append(f'    {_mermaid_id("dataset", d.id)}[("{_mermaid_text(d.id)} ({_value(d.classification)})")]')
        for wid in sorted({p.workload for p in result.plan.placements if p.site == site.id}):
            lines.append(f'    {_mermaid_id("workload", wid, site.id)}["{_mermaid_text(wid)}"]')
        lines.append("  end")
    unplaced = sorted(w.id for w in spec.workloads if not result.plan.sites_of(w.id))
    if unplaced:
        lines.append('  subgraph n_unplaced["not placed"]')
        lines += [f'    {_mermaid_id("workload", wid, "none")}["{_mermaid_text(wid)}"]' for wid in unplaced]
        lines.append("  end")

    def node(end) -> str:
        kind, ident, site = end
        if kind == "dataset":
            return _mermaid_id("dataset", ident)
        if kind == "site":
            return _mermaid_id("site", ident)
        return _mermaid_id("workload", ident, site or "none")

    styles = []
    for n, row in enumerate(rows):
        arrow = "-->" if row.personal else "-.->"
        label = _mermaid_text(f"{row.label}: {row.encryption or 'not declared'}")
        lines.append(f'  {node(row.source)} {arrow}|"{label}"| {node(row.target)}')
        styles.append(f"  linkStyle {n} stroke:{row.colour},stroke-width:{'3' if row.personal else '1.5'}px")
    return md_code_block("\n".join(lines + styles), "mermaid")


def _data_map(result) -> dict:
    rows = _flows(result)
    datasets = [
        {
            "id": d.id,
            "site": d.site,
            "system": _value(d.system),
            "classification": _value(d.classification),
            "personal": d.classification in PERSONAL,
            "subjects_zone": d.subjects_zone or "-",
            "size": f"{d.size_tb:,.6g} TB" if d.size_tb is not None else "-",
            "deidentification": _value(d.deidentification) if d.deidentification else "-",
            "readers": ", ".join(sorted(w.id for w in result.spec.workloads if d.id in w.inputs)) or "-",
            "description": d.description,
        }
        for d in sorted(result.spec.datasets, key=lambda d: d.id)
    ]
    links = [
        {
            "key": link.key,
            "latency": _ms(link.latency_ms),
            "bandwidth": f"{link.bandwidth_gbps:g} Gbit/s" if link.bandwidth_gbps else "-",
            "encryption": _value(link.encryption),
            "carrier": link.carrier or "own network",
            "baa": _value(link.baa),
        }
        for link in sorted(result.spec.links, key=lambda link: link.key)
    ]
    table = []
    for row in rows:
        if row.state == "unplaced":
            route = "not placed"
        elif row.state == "unreachable":
            route = "no route between the sites"
        elif not row.links:
            route = f"within {row.sites[0]}"
        else:
            route = "; ".join(
                f"{link['key']} ({link['encryption']}, {_ms(link['latency_ms'])})" for link in row.links
            )
        table.append(
            {
                "label": row.label,
                "origin": row.origin,
                "source": f"{row.source[0]} {row.source[1]}" + (f" @ {row.source[2]}" if row.source[2] else ""),
                "target": f"{row.target[0]} {row.target[1]}" + (f" @ {row.target[2]}" if row.target[2] else ""),
                "classification": row.classification,
                "personal": row.personal,
                "encryption": row.encryption or "not declared",
                "route": route,
                "class": row.encryption_class,
                "class_text": ENCRYPTION_CLASSES[row.encryption_class][1],
                "colour": row.colour,
                "basis": ", ".join(
                    x
                    for x in (
                        row.purpose and f"purpose {row.purpose}",
                        row.transfer_mechanism and f"transfer {row.transfer_mechanism}",
                        row.frequency,
                    )
                    if x
                )
                or "-",
                "description": row.description,
            }
        )
    return {
        "datasets": datasets,
        "links": links,
        "flows": table,
        "diagram": flow_diagram(result, rows),
        "mermaid": _mermaid(result, rows),
        "legend": [{"class": k, "colour": c, "text": t} for k, (c, t) in ENCRYPTION_CLASSES.items()],
    }


def report_view(result, timestamp: str | None = None) -> dict:
    """Everything both report formats print, computed once and sorted."""
    controls = assess_controls(result.validation)
    return {
        # Constant titles; Markdown() only spares them the leading "1." escape.
        "sections": {key: Markdown(title) for key, title in SECTIONS},
        "scope": _scope(result, timestamp),
        "verdict": _verdict(result, controls),
        "sites": _sites(result),
        "placements": _placements(result),
        "data": _data_map(result),
        "findings": _findings(controls, result.validation),
        "waivers": _waivers(result),
        "generations": _generations(result),
        "sign_off": SIGN_OFF_ROLES,
    }


# --------------------------------------------------------------------------- rendering


@lru_cache(maxsize=None)
def _environment(kind: str) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(templates_dir() / "report"))
    common = dict(
        loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True
    )
    if kind == "html":
        return jinja2.Environment(autoescape=True, **common)
    env = jinja2.Environment(autoescape=False, finalize=_md_finalize, **common)
    env.filters["code"] = lambda text, info="text": md_code_block(str(text), info)
    return env


def render_markdown(result, *, timestamp: str | None = None) -> str:
    """The report as GitHub-flavoured Markdown (with a mermaid data-flow diagram)."""
    return _environment("md").get_template("report.md.j2").render(view=report_view(result, timestamp))


def render_html(result, *, timestamp: str | None = None) -> str:
    """The report as one HTML file: inline CSS and SVG, nothing fetched."""
    return _environment("html").get_template("report.html.j2").render(view=report_view(result, timestamp))
