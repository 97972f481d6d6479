"""The compliance report of a plan, in Markdown and as one self-contained HTML file.

``render_markdown(result)`` and ``render_html(result)`` are pure: the same
:class:`~planner.pipeline.PlanResult` gives the same text, every list is
sorted, and no clock is read (a ``timestamp`` is printed only when given).
Both templates (``templates/report/``) read one view built by
:func:`report_view`. Spec text is escaped on the way out: HTML by Jinja's
autoescape, Markdown by a ``finalize`` hook that escapes every ``{{ }}``
value unless the code marked it :class:`Markdown` after escaping it itself.

A large plan keeps the report readable and its cost linear (see the limits
below ``REFERENCE_GPUS``): every workload, dataset, pool, link and finding is
still listed, but the full per-site rationale is given for a few workloads
(the unplaced first, then criticality high), the flow map draws sites,
jurisdictions or zones instead of every dataset and workload, the flow table
counts the flows and lists those that cross unencrypted or have no site, and
the Hopper or Blackwell table has a row per sizing profile.
"""

from __future__ import annotations

import gc
import math
import re
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache

import jinja2
import markupsafe

from planner import __version__
from planner.graph import PERSONAL
from planner.policy.findings import Finding, Status
from planner.policy.waivers import WAIVER_EXPIRED, WAIVER_UNUSED, normalise_subject
from planner.resources import template_cache, templates_dir
from planner.spec.models import Severity

__all__ = [
    "ControlVerdict",
    "Markdown",
    "assess_controls",
    "kept_view",
    "md_escape",
    "plan_sections",
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

# Large plans. A report lists every workload, dataset, finding and pool, but
# text that grows with workloads x sites (a workload's full rationale names
# every site) or that a reader cannot take in (a map with thousands of boxes)
# is kept for the workloads and flows that need attention.
RATIONALE_LIMIT = 100  # up to this many workloads, each gets its full rationale ...
RATIONALE_SITE_BUDGET = 1000  # ... while all of them name at most this many sites (workloads x sites)
RATIONALE_AT_SCALE = 20  # beyond: full rationale for at most this many (unplaced first, then high criticality)
MAP_BOX_LIMIT = 60  # the flow map draws datasets and workloads up to this many boxes ...
MAP_ARROW_LIMIT = 200  # ... and this many arrows; beyond, it draws sites, jurisdictions or zones
MAP_LABEL_LIMIT = 40  # an aggregated map labels its arrows with their counts up to this many arrows
MAP_SITE_LIMIT = 16  # an aggregated map has a box per site up to this many sites ...
MAP_JURISDICTION_LIMIT = 20  # ... else per jurisdiction up to this many, else per zone (mermaid draws 500 edges at most)
FLOW_ROW_LIMIT = 500  # flow table rows listed one by one; beyond, counts and the rows needing attention
FLOW_ATTENTION_LIMIT = 500  # rows needing attention listed in a large plan
GENERATION_ROW_LIMIT = 100  # Hopper or Blackwell rows per workload; beyond, one row per sizing profile
LIST_LIMIT = 20  # names in one sentence before "and N more"


# --------------------------------------------------------------------------- escaping


class Markdown(str):
    """Markdown that is already escaped; the Markdown template prints it as is."""


_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{0,31});")
_MD_PUNCT = re.compile(r"([\\`*_\[\]|~$])")
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto|file|javascript|data)(:)")
_BLOCK_START = re.compile(r"^(#|[-+=])")
_LIST_NUMBER = re.compile(r"^(\d+)([.)])(?=\s|$)")
_WWW = re.compile(r"(?i)\bwww\.")


# Text made only of these cannot hold anything md_escape changes, except for a
# leading block marker, a list number, "www." or a URL scheme (checked separately).
_MD_PLAIN = re.compile(r"[A-Za-z0-9 ,./()%'\"!?@^{}+=;:\u2192-]*")
# What _MD_PUNCT's substitution does, character by character.
_MD_PUNCT_ESCAPES = str.maketrans({c: "\\" + c for c in "\\`*_[]|~$"})


def md_escape(value: object) -> str:
    """One line of Markdown that shows ``value`` literally, safe in a table cell.

    Newlines collapse to spaces (a cell is one line); ``<``, ``>`` and
    entity-like ``&name;`` become entities so no HTML survives; Markdown
    punctuation and ``|`` are backslash-escaped; URL schemes lose their
    autolink; a leading ``#``, ``-``, ``+``, ``=`` or ``1.`` cannot start a
    block (``---`` alone would be a thematic break or a setext underline).
    """
    return _md_escape_line(" ".join(str(value).split()))


@lru_cache(maxsize=1 << 16)
def _md_escape_line(text: str) -> str:
    www = "www." in text.lower()
    if (
        _MD_PLAIN.fullmatch(text)
        and not _BLOCK_START.match(text)
        and not _LIST_NUMBER.match(text)
        and not www
        and (":" not in text or not _AUTOLINK.search(text))
    ):
        return text
    if "&" in text:
        text = _ENTITY.sub(lambda m: "&amp;" + m.group(0)[1:], text)
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    text = text.translate(_MD_PUNCT_ESCAPES)  # = _MD_PUNCT.sub(r"\\\1", text)
    if ":" in text:
        text = _AUTOLINK.sub(r"\1\\\2", text)
    if www:
        text = _WWW.sub(r"www\\.", text)
    if _BLOCK_START.match(text):
        text = _BLOCK_START.sub(r"\\\1", text)
    return _LIST_NUMBER.sub(r"\1\\\2", text) if _LIST_NUMBER.match(text) else text


def _md_finalize(value: object) -> str:
    if value is None:
        return ""
    if type(value) is str:
        return _md_escape_str(value)
    if type(value) is int and value >= 0:
        return str(value)  # digits alone: nothing to escape
    if isinstance(value, Markdown):
        return value
    return md_escape(value)


@lru_cache(maxsize=1 << 16)
def _md_escape_str(value: str) -> str:
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
    if isinstance(item, Enum):
        return str(item._value_)  # what .value returns, without the descriptor
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
    citing: dict[str, list[Finding]] = {}
    for f in validation.findings:
        for control in dict.fromkeys(f.controls):
            citing.setdefault(control, []).append(f)
    out = []
    for control in sorted(rules, key=_natural):
        cited = citing.get(control, [])
        open_ = tuple(f for f in cited if _is_open(f))
        waived = tuple(f for f in cited if f.status is Status.waived)
        info = tuple(f for f in cited if not _is_open(f) and f.status is not Status.waived)
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


@dataclass(slots=True)
class FlowRow:
    """One movement of data on the map: a declared flow or a workload input, per placed site.

    The route (sites, links, latency) and the declared flow's details are
    filled in by :meth:`_Index.complete` when a table lists the row; the map
    and the counts need only the class.
    """

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
    flow: object = field(default=None, repr=False)  # the declared flow, until its details are filled in
    routed: bool = False  # sites, links and latency filled in

    @property
    def colour(self) -> str:
        return ENCRYPTION_CLASSES[self.encryption_class][0]


class _Index:
    """Lookups every section needs, built once per report (nothing scans the plan per workload)."""

    def __init__(self, result):
        self.result = result
        spec, plan = result.spec, result.plan
        self.placed: dict[str, list] = {}  # workload -> placements, in plan order
        self.at_pool: dict[str, list] = {}
        self.at_site: dict[str, list] = {}
        for p in plan.placements:
            self.placed.setdefault(p.workload, []).append(p)
            self.at_pool.setdefault(p.pool_key, []).append(p)
            self.at_site.setdefault(p.site, []).append(p)
        self.sites: dict[str, list[str]] = {w: sorted({p.site for p in ps}) for w, ps in self.placed.items()}
        self.unplaced = {u.workload: u for u in plan.unplaced}
        self.datasets = {d.id: d for d in spec.datasets}
        self.datasets_at: dict[str, list] = {}
        for d in sorted(spec.datasets, key=lambda d: d.id):
            self.datasets_at.setdefault(d.site, []).append(d)
        self.readers: dict[str, list[str]] = {}
        for w in spec.workloads:
            for name in dict.fromkeys(w.inputs):
                self.readers.setdefault(name, []).append(w.id)
        self.links = {link.key: link for link in spec.links}
        self.teams = {w.id: (w.team or "(no team)") for w in spec.workloads}
        self._routes: dict[tuple[str, str], tuple] = {}
        self._hops: dict[str, dict] = {}
        self._encrypted = {key: _value(link.encryption) != "none" for key, link in self.links.items()}

    def sites_of(self, workload: str) -> list[str]:
        return self.sites.get(workload, [])

    def reachable(self, source: str, target: str) -> bool:
        """Whether a route joins the two sites."""
        return self.result.facts.graph.connected(source, target)

    def latency(self, source: str, target: str) -> float | None:
        """Latency of the lowest-latency route (None: no route)."""
        (found,) = self.result.facts.graph.latency_list(source, (target,))  # no mapping of every site built
        return None if found == math.inf else found

    def route(self, source: str, target: str) -> tuple:
        """(reachable, sites, latency, link keys, every link encrypted) of the lowest-latency route."""
        key = (source, target)
        found = self._routes.get(key)
        if found is None:
            route = self.result.facts.graph.route(source, target)
            encrypted = bool(route.links) and all(self._encrypted.get(k, False) for k in route.links)
            found = (route.reachable, tuple(route.sites), route.latency_ms, route.links, encrypted)
            self._routes[key] = found
        return found

    def _hop(self, key: str) -> dict:
        hop = self._hops.get(key)
        if hop is None:
            link = self.links.get(key)
            hop = {
                "key": key,
                "encryption": _value(link.encryption) if link is not None else "none",
                "latency_ms": link.latency_ms if link is not None else None,
                "carrier": link.carrier if link is not None else None,
            }
            self._hops[key] = hop
        return hop

    def complete(self, row: FlowRow) -> FlowRow:
        """Fill in what only a table prints: the declared flow's details and the route."""
        if row.flow is not None:
            flow, row.flow = row.flow, None
            row.purpose = _value(flow.purpose) if flow.purpose is not None else None
            row.transfer_mechanism = _value(flow.transfer_mechanism) if flow.transfer_mechanism is not None else None
            row.frequency = _value(flow.frequency)
            row.description = flow.description
        if row.state == "placed" and not row.routed:
            _, row.sites, row.latency_ms, keys, _ = self.route(row.source[2], row.target[2])
            row.links = tuple(self._hop(k) for k in keys)
            row.routed = True
        return row


_PERSONAL_VALUES = frozenset(c.value for c in PERSONAL)


def _flow_row(index: _Index, label, origin, source, target, classification, encryption, flow) -> FlowRow:
    row = FlowRow(label, origin, source, target, classification, classification in _PERSONAL_VALUES, encryption, flow=flow)
    if source[2] is None or target[2] is None:
        row.state, row.encryption_class = "unplaced", "unplaced"
        return row
    if not index.reachable(source[2], target[2]):
        row.state, row.encryption_class = "unreachable", "unencrypted"
        row.sites = (source[2], target[2])
        return row
    if encryption not in (None, "none"):
        # Encrypted whatever the route: the route waits until a table lists the row.
        row.encryption_class = "encrypted"
        return row
    _, _, _, keys, link_encrypted = index.route(source[2], target[2])
    if link_encrypted:
        row.encryption_class = "link-only"
    elif encryption == "none" or keys:
        row.encryption_class = "unencrypted"
    else:
        row.encryption_class = "on-site"
    return row


@dataclass(frozen=True)
class _End:
    kind: str
    id: str
    site: str | None = None


def _ends(index: _Index, end) -> list[tuple[str, str, str | None]]:
    if end.kind == "workload":
        sites = index.sites_of(end.id)
        return [("workload", end.id, s) for s in sites] or [("workload", end.id, None)]
    return [(end.kind, end.id, end.site)]


def _flows(index: _Index) -> list[FlowRow]:
    result = index.result
    rows: list[FlowRow] = []
    for rf in result.facts.flows:
        flow = rf.flow
        classification, encryption = _value(flow.classification), _value(flow.encryption_in_transit)
        for source in _ends(index, rf.source):
            for target in _ends(index, rf.target):
                rows.append(_flow_row(index, flow.id, "declared", source, target, classification, encryption, flow))
    datasets = index.datasets
    for w in result.spec.workloads:
        targets = _ends(index, _End("workload", w.id))
        for name in w.inputs:
            d = datasets.get(name)
            if d is None:
                continue
            source = ("dataset", d.id, d.site)
            classification = _value(d.classification)
            for target in targets:
                rows.append(_flow_row(index, f"{d.id} \u2192 {w.id}", "input", source, target, classification, None, None))
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


def _sites(index: _Index) -> list[dict]:
    result = index.result
    usage = result.plan.pools
    spec_pools = _spec_pools(result.spec)
    teams = index.teams
    pools_at: dict[str, list] = {}
    for p in result.facts.pools:
        pools_at.setdefault(p.site, []).append(p)
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
        for p in sorted(pools_at.get(site.id, ()), key=lambda p: p.key):
            u = usage.get(p.key)
            placed = index.at_pool.get(p.key, ())
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
    placements = result.plan.placements
    totals = {
        "cost_per_hour": round(float(result.plan.cost_per_hour), 6) or 0.0,  # as Plan.as_dict() rounds it
        "gpus": sum(p.gpus for p in placements),
        "replicas_placed": len(placements),
        "replicas_unplaced": sum(u.replicas_unplaced for u in result.plan.unplaced),
    }
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


def _workload_row(index: _Index, w) -> dict:
    """What the report says about a workload in one row: where, how many, what it costs."""
    data = index.result.facts.workload_data
    placed = index.placed.get(w.id, [])
    by_pool: dict[str, int] = {}
    for p in placed:
        key = p.pool_key
        by_pool[key] = by_pool.get(key, 0) + 1
    cost = [p.cost_per_hour for p in placed]
    u = index.unplaced.get(w.id)
    return {
        "id": w.id,
        "kind": _value(w.kind),
        "team": index.teams[w.id],
        "description": w.description,
        "criticality": _value(w.criticality),
        "phi": data[w.id].phi if w.id in data else False,
        "classifications": ", ".join(data[w.id].classifications) if w.id in data else "",
        "inputs": ", ".join(sorted(w.inputs)) or "none",
        "placed": len(placed),
        "replicas": len(placed) + (u.replicas_unplaced if u else 0),
        "where": ", ".join(f"{k} x{n}" for k, n in sorted(by_pool.items())) or "not placed",
        "cost": _usd(sum(cost), "/h") if cost and None not in cost else ("-" if not cost else "partly unpriced"),
        "is_unplaced": u is not None,
    }


def _rationale(index: _Index, w) -> dict:
    """A workload's row with its full rationale: summary, replicas, and why here and not elsewhere."""
    plan = index.result.plan
    row = _workload_row(index, w)
    u = index.unplaced.get(w.id)
    row.update(
        {
            "summary": plan.summary(w.id),
            "explain": plan.explain(w.id).rstrip("\n"),
            "replicas_table": [
                {
                    "replica": p.replica,
                    "pool": p.pool_key,
                    "gpu": p.gpu,
                    "gpus": p.gpus,
                    "nodes": ", ".join(str(n) for n in p.nodes),
                    "cost": _usd(p.cost_per_hour, "/h"),
                }
                for p in index.placed.get(w.id, [])
            ],
            "unplaced": (
                {
                    "missing": f"{u.replicas_unplaced} of {u.replicas}",
                    "reasons": sorted(f"{r.site}{'/' + r.pool if r.pool else ''}: {r.code}: {r.message}" for r in u.reasons),
                    "remedies": sorted(plan.remedies(w.id)),
                }
                if u
                else None
            ),
        }
    )
    return row


def _placements(index: _Index) -> dict:
    """Section 4: every workload's full rationale; in a large plan, a table of all and the rationale of a few.

    A full rationale names every site, so its length (and the time to work it
    out) grows with workloads x sites. A plan of more than RATIONALE_LIMIT
    workloads, or whose rationales would name more than RATIONALE_SITE_BUDGET
    sites in all, gets a table of every workload and the full rationale of as
    many as that budget allows (at least one, at most RATIONALE_AT_SCALE): the
    unplaced first, then those of criticality high, then the others, each by id.
    ``medplan explain --workload ID`` gives any other.
    """
    workloads = sorted(index.result.spec.workloads, key=lambda w: w.id)
    sites = max(len(index.result.spec.sites), 1)
    if len(workloads) <= RATIONALE_LIMIT and len(workloads) * sites <= RATIONALE_SITE_BUDGET:
        return {"detailed": [_rationale(index, w) for w in workloads], "table": None, "note": None}
    table = [_workload_row(index, w) for w in workloads]
    unplaced = [w for w in workloads if w.id in index.unplaced]
    high = [w for w in workloads if w.id not in index.unplaced and _value(w.criticality) == "high"]
    limit = max(1, min(RATIONALE_AT_SCALE, RATIONALE_SITE_BUDGET // sites))
    first = {w.id for w in unplaced + high}
    chosen = (unplaced + high + [w for w in workloads if w.id not in first])[:limit]
    ids = {w.id for w in chosen}
    for row in table:
        row["detailed"] = row["id"] in ids
    note = (
        f"{len(workloads):,} workloads on {sites:,} site{'' if sites == 1 else 's'}: {len(unplaced):,} not fully "
        f"placed, {len(high):,} placed with criticality high. The table lists every workload. A full rationale "
        f"names every site, so it follows for {len(chosen):,} of them only (at most {limit} in a plan with this "
        "many sites): the unplaced first, then those of criticality high, then the others, by id. "
        "medplan explain --workload ID gives the rationale of any other."
    )
    return {"detailed": [_rationale(index, w) for w in chosen], "table": table, "note": note}


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
    by_subject: dict[str, list[Finding]] = {}
    if result.spec.waivers:
        for f in result.validation.findings:
            by_subject.setdefault(str(f.subject), []).append(f)
    out = []
    for i, w in enumerate(result.spec.waivers):
        subject = normalise_subject(w.subject)
        meta = {f.rule for f in by_subject.get(f"waiver/{i}", ())}
        covered = sorted(
            (f for f in by_subject.get(subject, ()) if f.status is Status.waived and f.rule == w.rule),
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


def _input_latency(index: _Index, workload, site: str) -> float | None:
    """Worst network latency from the workload's inputs to ``site`` (None: no inputs)."""
    datasets = index.datasets
    worst = None
    for name in workload.inputs:
        d = datasets.get(name)
        if d is None:
            continue
        latency = index.latency(d.site, site)
        if latency is None:
            latency = math.inf
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


def _latency_answer(workload, placed_sites: list[str], index: _Index) -> tuple[str, float | None, bool | None]:
    if workload.max_latency_ms is None:
        return "no bound: max_latency_ms is not set", None, None
    if not workload.inputs:
        return "no inputs to reach", None, None
    if not placed_sites:
        return "not placed, so no margin to measure", None, None
    worst_site, worst = max(((s, _input_latency(index, workload, s) or 0.0) for s in placed_sites), key=lambda x: (x[1], x[0]))
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


def _some(items: list[str], sep: str = ", ") -> str:
    """``items`` joined, the first LIST_LIMIT of them and a count of the rest."""
    if len(items) <= LIST_LIMIT:
        return sep.join(items)
    return sep.join(items[:LIST_LIMIT]) + f"{sep}and {len(items) - LIST_LIMIT:,} more"


def _profiles(rows: list[dict]) -> list[dict]:
    """Workloads that compare the same on every GPU model, one row per such profile, largest first."""
    groups: dict[tuple, list[dict]] = {}
    texts: dict[int, tuple] = {}  # rows share their cells lists: each is read once
    for r in rows:
        cells = r["cells"]
        text = texts.get(id(cells))
        if text is None:
            text = texts[id(cells)] = tuple((c["text"], c["fits"]) for c in cells)
        key = (text, r["memory"])
        group = groups.get(key)
        if group is None:
            groups[key] = [r]
        else:
            group.append(r)
    out = []
    for members in sorted(groups.values(), key=lambda m: (-len(m), m[0]["id"])):
        teams = sorted({r["team"] for r in members})
        out.append(
            {
                "workloads": f"{len(members):,} workload{'' if len(members) == 1 else 's'}: {_some([r['id'] for r in members])}",
                "teams": _some(teams) if len(teams) <= 3 else f"{len(teams)} teams",
                "cells": members[0]["cells"],
                "memory": members[0]["memory"],
            }
        )
    return out


def _sizing_key(w) -> tuple:
    """What sizing reads of a workload (planner.catalog.workload_sizing.request_for and _size_given)."""
    return (
        _value(w.kind),
        w.model,  # frozen: hashable, equal when every field is
        w.gpus,
        w.gpu_memory_gb,
        w.replicas,
        w.concurrency,
        _value(w.training_method) if w.training_method is not None else None,
        tuple(sorted(w.throughput.items())),
        w.demand,
    )


def _sizing(spec, catalog, gpus: list[str]) -> dict:
    """Every workload sized on ``gpus``, without its accelerators so memory alone decides the fit
    (whether the spec allows a model is shown next to it). Workloads that size alike are sized once."""
    from planner.catalog.workload_sizing import size_workloads

    first: dict[tuple, object] = {}
    same: dict[str, object] = {}
    for w in spec.workloads:
        rep = first.setdefault(_sizing_key(w), w)
        same[w.id] = rep
    unrestricted = spec.model_copy(
        update={"workloads": [w.model_copy(update={"accelerators": []}) for w in first.values()]}
    )
    sized = size_workloads(unrestricted, catalog, gpus)
    return {wid: sized[rep.id] for wid, rep in same.items()}


def _generations(index: _Index) -> dict:
    result = index.result
    spec = result.spec
    catalog = result.facts.catalog
    gpus, reference = _generation_gpus(result)
    sizing = _sizing(spec, catalog, gpus) if gpus else {}
    rows = []
    # Workloads that size alike and allow the same models share cells, and with them
    # the measured throughput and the memory answer.
    known: dict[tuple, tuple] = {}
    accelerators: dict[tuple, tuple[set[str], tuple[str, ...]]] = {}
    for w in sorted(spec.workloads, key=lambda w: w.id):
        ws = sizing.get(w.id)
        names = tuple(w.accelerators)
        found = accelerators.get(names)
        if found is None:
            ids = {catalog.gpu(a).id for a in names}
            found = accelerators[names] = (ids, tuple(sorted(ids)))
        allowed = found[0]
        key = (id(ws), found[1])
        shared = known.get(key)
        if shared is None:
            cells = [
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
                for s in ws or ()
            ]
            measured = {c["gpu"]: c for c in cells if c["measured"] is not None}
            throughput = ", ".join(
                f"{g} {c['measured']:g} \u2192 {_plural(c['replicas'], 'replica')}" for g, c in measured.items()
            )
            shared = known[key] = (cells, _memory_answer(cells, ws.memory_known if ws else False), throughput or None)
        cells, (memory, memory_bound), throughput = shared
        placed = index.placed.get(w.id, ())
        latency, margin, tight = _latency_answer(w, index.sites_of(w.id), index)
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
                "throughput": throughput,
            }
        )
    teams = index.teams
    pools = []
    for key in sorted(result.plan.pools):
        u = result.plan.pools[key]
        names = sorted({p.workload for p in index.at_pool.get(key, ())})
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
        contention = "yes: " + _some([f"{p['key']} is {p['utilisation']} used by {p['teams']} teams" for p in contended], "; ")
    elif busy:
        contention = "not between teams: " + _some(
            [f"{p['key']} is {p['utilisation']} used by {p['team_names']}" for p in busy], "; "
        )
    else:
        contention = f"no: no pool is {_pct(BUSY_POOL)} or more used"
    if shared and not contended:
        contention += "; shared by several teams: " + _some([f"{p['key']} ({p['utilisation']})" for p in shared])
    memory_yes = [r["id"] for r in rows if r["memory_bound"]]
    memory_unknown = [r["id"] for r in rows if r["memory_bound"] is None]
    known = len(rows) - len(memory_unknown)
    if memory_yes:
        memory = "yes for " + _some(memory_yes)
    elif known:
        memory = "no workload of known size needs fewer GPUs per replica on Blackwell"
    else:
        memory = "not known"
    if memory_unknown:
        memory += "; not known for " + _some(memory_unknown) + " (no model size or gpu_memory_gb in the spec)"
    if not rows:
        memory = "no workloads"
    latency_tight = [r["id"] for r in rows if r["latency_tight"]]
    measured = [f"{r['id']} ({r['throughput']})" for r in rows if r["throughput"]]
    large = len(rows) > GENERATION_ROW_LIMIT
    tight_rows = [r for r in rows if r["latency_tight"]]
    bounded = sum(1 for r in rows if r["latency_tight"] is not None)
    return {
        # A large plan compares sizing profiles, not workloads, and lists only tight latency margins.
        "profiles": _profiles(rows) if large else None,
        "note": (
            f"{len(rows):,} workloads, grouped by how they size on each model "
            f"(more than {GENERATION_ROW_LIMIT} workloads: one row per group)."
            if large
            else None
        ),
        "latency_rows": tight_rows[:GENERATION_ROW_LIMIT] if large else rows,
        "latency_note": (
            f"Latency margins: {bounded:,} placed workloads have a latency bound and inputs, "
            f"{len(tight_rows):,} of them with a tight margin (under {_pct(TIGHT_LATENCY)} of max_latency_ms)"
            + (
                f"; the first {GENERATION_ROW_LIMIT} are listed."
                if len(tight_rows) > GENERATION_ROW_LIMIT
                else (":" if tight_rows else ".")
            )
            if large
            else None
        ),
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
                ("the network margin is tight for " + _some(latency_tight) + "; a GPU upgrade does not shorten it")
                if latency_tight
                else "no placed workload has a tight network latency margin",
            ),
            (
                "Do your own measurements favour a newer model?",
                ("replicas from measured throughput: " + _some(measured, "; "))
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


def _layout(
    columns: list[tuple[str | None, str, str]], items: list[list[tuple]], gap: float = COLUMN_GAP
) -> tuple[Diagram, dict]:
    """Columns side by side, each a header box over a stack of boxes: (diagram, boxes by key)."""
    diagram = Diagram(width=0, height=0)
    boxes: dict[tuple, _Box] = {}
    heights = []
    for n, ((site, title, subtitle), column_items) in enumerate(zip(columns, items)):
        x = MARGIN + n * (COLUMN_W + gap)
        diagram.columns.append(
            {
                "x": x, "y": HEADER_TOP, "w": COLUMN_W, "h": HEADER_BOX_H,
                "title": _short(title), "subtitle": subtitle, "tooltip": title,
            }
        )
        header = _Box(("site", title, site), x, HEADER_TOP, COLUMN_W, HEADER_BOX_H, title, subtitle, "site", title)
        boxes[("site", site, site)] = header
        y = MARGIN + HEADER_H
        for key, name, sub, css in column_items:
            boxes[key] = _Box(key, x + 10, y, COLUMN_W - 20, BOX_H, _short(name, 26), sub, css, name)
            y += BOX_H + BOX_GAP
        heights.append(y)
    diagram.boxes = [b for k, b in boxes.items() if k[0] != "site"]
    diagram.width = MARGIN * 2 + len(columns) * COLUMN_W + max(len(columns) - 1, 0) * gap + 60
    diagram.height = max(heights or [MARGIN + HEADER_H]) + MARGIN
    return diagram, boxes


def _draw_arrows(diagram: Diagram, columns: list, arrows: list[tuple]) -> None:
    """Curves between boxes: (source box, target box, label, colour, class, personal, tooltip) each."""
    column_of = {c[0]: i for i, c in enumerate(columns)}
    pair_count: dict[tuple, int] = {}
    taken: list[tuple[float, float, float, float]] = []
    for src, dst, label, colour, encryption_class, personal, tooltip in arrows:
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
        mid = _label_spot(_bezier(p0, p1, p2, p3, 0.5), label, taken)
        diagram.arrows.append(
            {
                "d": f"M{_r(p0[0])},{_r(p0[1])} C{_r(p1[0])},{_r(p1[1])} {_r(p2[0])},{_r(p2[1])} {_r(p3[0])},{_r(p3[1])}",
                "colour": colour,
                "marker": f"arrow-{encryption_class}",
                "dash": "" if personal else "6 4",
                "width": 2.4 if personal else 1.4,
                "label": label,
                "label_x": _r(mid[0]),
                "label_y": _r(mid[1]),
                "tooltip": tooltip,
            }
        )


def _map_items(index: _Index) -> tuple[list, list, list[str]]:
    """The detailed map's columns (sites, then 'not placed') and their boxes (datasets, placed workloads)."""
    spec = index.result.spec
    sites = sorted(spec.sites, key=lambda s: s.id)
    columns: list[tuple[str | None, str, str]] = [
        (s.id, s.id, f"{_value(s.kind)}, {s.jurisdiction}, zone {s.zone}") for s in sites
    ]
    unplaced = sorted(w.id for w in spec.workloads if not index.sites_of(w.id))
    if unplaced:
        columns.append((None, "not placed", "workloads without a site"))
    items: list[list[tuple]] = []
    for site, _, _ in columns:
        column: list[tuple] = []
        if site is not None:
            for d in index.datasets_at.get(site, ()):
                personal = d.classification in PERSONAL
                column.append(
                    (("dataset", d.id, site), d.id, f"dataset, {_value(d.classification)}, {_value(d.system)}",
                     "dataset personal" if personal else "dataset")
                )
            count: dict[str, int] = {}
            for p in index.at_site.get(site, ()):
                count[p.workload] = count.get(p.workload, 0) + 1
            for wid in sorted(count):
                column.append((("workload", wid, site), wid, f"workload, {_plural(count[wid], 'replica')} here", "workload"))
        else:
            for wid in unplaced:
                column.append((("workload", wid, None), wid, "workload, not placed", "workload unplaced"))
        items.append(column)
    return columns, items, unplaced


def flow_diagram(index: _Index, rows: list[FlowRow]) -> Diagram:
    """Sites as columns (sorted by id, then 'not placed'), datasets and workloads as boxes."""
    columns, items, _ = _map_items(index)
    diagram, boxes = _layout(columns, items)
    arrows = []
    for row in rows:
        src = boxes.get(row.source if row.source[0] != "site" else ("site", row.source[1], row.source[1]))
        dst = boxes.get(row.target if row.target[0] != "site" else ("site", row.target[1], row.target[1]))
        if src is None or dst is None:
            continue
        # Inputs read as dataset -> workload already; only declared flows carry a name.
        label = _short(row.label, 30) if row.origin == "declared" else ""
        tooltip = f"{row.label}: {row.classification}, {ENCRYPTION_CLASSES[row.encryption_class][1]}"
        arrows.append((src, dst, label, row.colour, row.encryption_class, row.personal, tooltip))
    _draw_arrows(diagram, columns, arrows)
    return diagram


# How an aggregated arrow is coloured: by the least protected of the flows it stands for.
_CLASS_RANK = ("unencrypted", "unplaced", "link-only", "on-site", "encrypted")


@dataclass
class _Aggregate:
    """The flow map of a large plan: places (sites, jurisdictions or zones) and the flows between them."""

    level: str  # site | jurisdiction | zone
    places: list[tuple]  # (key, zone or None, title, subtitle), by zone then name; 'not placed' last
    edges: list[dict]  # source and target place keys, count, count per map class, any personal data


def _aggregate(index: _Index, rows: list[FlowRow]) -> _Aggregate:
    spec = index.result.spec
    sites = sorted(spec.sites, key=lambda s: s.id)
    if len(sites) <= MAP_SITE_LIMIT:
        level = "site"
        place = {s.id: (s.zone, s.id) for s in sites}
    elif len({(s.zone, s.jurisdiction) for s in sites}) <= MAP_JURISDICTION_LIMIT:
        level = "jurisdiction"
        place = {s.id: (s.zone, s.jurisdiction) for s in sites}
    else:
        level = "zone"
        place = {s.id: (s.zone, f"zone {s.zone}") for s in sites}
    members: dict[tuple, dict[str, set]] = {}
    for s in sites:
        entry = members.setdefault(place[s.id], {"sites": set(), "datasets": set(), "workloads": set()})
        entry["sites"].add(s.id)
        entry["datasets"].update(d.id for d in index.datasets_at.get(s.id, ()))
        entry["workloads"].update(p.workload for p in index.at_site.get(s.id, ()))
    kind = {s.id: _value(s.kind) for s in sites}
    places = []
    for key in sorted(members):
        m = members[key]
        counts = f"{_plural(len(m['datasets']), 'dataset')}, {_plural(len(m['workloads']), 'workload')}"
        if level == "site":
            title, sub = f"{key[1]} ({kind[key[1]]})", counts
        else:
            title, sub = f"{key[1]} ({_plural(len(m['sites']), 'site')})", counts
        places.append((key, key[0], title, sub))
    unplaced_key = (None, "not placed")
    # Rows counted by (source place, target place, map class, personal) first: few, however many rows.
    tally: dict[tuple, int] = {}
    get = place.get
    for row in rows:
        key = (get(row.source[2], unplaced_key), get(row.target[2], unplaced_key), row.encryption_class, row.personal)
        tally[key] = tally.get(key, 0) + 1
    edges: dict[tuple, dict] = {}
    for (src, dst, cls, personal), n in tally.items():
        edge = edges.get((src, dst))
        if edge is None:
            edge = edges[(src, dst)] = {"source": src, "target": dst, "count": 0, "classes": {}, "personal": False}
        edge["count"] += n
        edge["classes"][cls] = edge["classes"].get(cls, 0) + n
        edge["personal"] = edge["personal"] or personal
    unplaced = sum(1 for w in spec.workloads if not index.sites_of(w.id))
    if unplaced or any(unplaced_key in pair for pair in edges):
        places.append((unplaced_key, None, "not placed", _plural(unplaced, "workload")))
    order = {p[0]: i for i, p in enumerate(places)}
    ordered = sorted(edges.values(), key=lambda e: (order[e["source"]], order[e["target"]]))
    return _Aggregate(level=level, places=places, edges=ordered)


def _edge_class(edge: dict) -> str:
    return next(c for c in _CLASS_RANK if c in edge["classes"])


def _edge_text(edge: dict) -> str:
    parts = ", ".join(f"{edge['classes'][c]:,} {c}" for c in _CLASS_RANK if c in edge["classes"])
    what = "personal data among them" if edge["personal"] else "no personal data"
    return f"{edge['count']:,} flows and inputs ({parts}); {what}"


AGGREGATE_GAP = 360.0  # room between the two columns of an aggregated map, for its labels


def aggregate_diagram(agg: _Aggregate) -> Diagram:
    """The map of a large plan: where data leaves on the left, where it arrives on the right, and
    one arrow per pair of places, labelled with the number of flows and inputs it stands for."""
    columns = [
        ("from", "from", f"where data leaves, by {agg.level}"),
        ("to", "to", f"where data arrives, by {agg.level}"),
    ]
    items = [
        [
            (("place", key, side), title, sub, "workload unplaced" if zone is None else "place")
            for key, zone, title, sub in agg.places
        ]
        for side in ("from", "to")
    ]
    diagram, boxes = _layout(columns, items, gap=AGGREGATE_GAP)
    arrows = []
    rank = {c: i for i, c in enumerate(_CLASS_RANK)}
    # The least protected are drawn last, over the others.
    for edge in sorted(agg.edges, key=lambda e: -rank[_edge_class(e)]):
        src, dst = boxes[("place", edge["source"], "from")], boxes[("place", edge["target"], "to")]
        cls = _edge_class(edge)
        tooltip = f"{src.tooltip} \u2192 {dst.tooltip}: {_edge_text(edge)}"
        label = f"{edge['count']:,}" if len(agg.edges) <= MAP_LABEL_LIMIT else ""
        arrows.append((src, dst, label, ENCRYPTION_CLASSES[cls][0], cls, edge["personal"], tooltip))
    _draw_arrows(diagram, columns, arrows)
    return diagram


def _mermaid(index: _Index, rows: list[FlowRow]) -> Markdown:
    spec = index.result.spec
    lines = ["flowchart LR"]
    for site in sorted(spec.sites, key=lambda s: s.id):
        label = _mermaid_text(f"{site.id} ({_value(site.kind)}, zone {site.zone})")
        lines.append(f'  subgraph {_mermaid_id("site", site.id)}["{label}"]')
        for d in index.datasets_at.get(site.id, ()):
            lines.append(f'    {_mermaid_id("dataset", d.id)}[("{_mermaid_text(d.id)} ({_value(d.classification)})")]')
        for wid in sorted({p.workload for p in index.at_site.get(site.id, ())}):
            lines.append(f'    {_mermaid_id("workload", wid, site.id)}["{_mermaid_text(wid)}"]')
        lines.append("  end")
    unplaced = sorted(w.id for w in spec.workloads if not index.sites_of(w.id))
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


def _mermaid_aggregate(agg: _Aggregate) -> Markdown:
    lines = ["flowchart LR"]

    def node(key) -> str:
        return _mermaid_id("place", key[0] or "none", key[1])

    for zone in dict.fromkeys(zone for _, zone, _, _ in agg.places):
        title = f"zone {zone}" if zone else "not placed"
        lines.append(f'  subgraph {_mermaid_id("zone", zone or "none")}["{_mermaid_text(title)}"]')
        for key, z, name, sub in agg.places:
            if z == zone:
                lines.append(f'    {node(key)}["{_mermaid_text(f"{name}: {sub}")}"]')
        lines.append("  end")
    styles = []
    for n, edge in enumerate(agg.edges):
        arrow = "-->" if edge["personal"] else "-.->"
        cls = _edge_class(edge)
        label = _mermaid_text(f"{_plural(edge['count'], 'flow')}, least protected: {cls}")
        lines.append(f'  {node(edge["source"])} {arrow}|"{label}"| {node(edge["target"])}')
        styles.append(f"  linkStyle {n} stroke:{ENCRYPTION_CLASSES[cls][0]},stroke-width:{'3' if edge['personal'] else '1.5'}px")
    return md_code_block("\n".join(lines + styles), "mermaid")


def _flow_table_row(index: _Index, row: FlowRow) -> dict:
    index.complete(row)
    if row.state == "unplaced":
        route = "not placed"
    elif row.state == "unreachable":
        route = "no route between the sites"
    elif not row.links:
        route = f"within {row.sites[0]}"
    else:
        route = "; ".join(f"{link['key']} ({link['encryption']}, {_ms(link['latency_ms'])})" for link in row.links)
    return {
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


# Rows a large plan still lists one by one: data that crosses unencrypted, or has no site to go to.
_ATTENTION = ("unencrypted", "unplaced")


def _flow_table(index: _Index, rows: list[FlowRow]) -> tuple[list[dict], list[dict] | None, str | None]:
    """(rows to list, counts by kind/data/encryption for a large plan or None, a note or None)."""
    if len(rows) <= FLOW_ROW_LIMIT:
        return [_flow_table_row(index, row) for row in rows], None, None
    counts: dict[tuple, int] = {}
    for row in rows:
        key = (row.origin, row.classification, row.encryption or "not declared", row.encryption_class)
        counts[key] = counts.get(key, 0) + 1
    rank = {c: i for i, c in enumerate(_CLASS_RANK)}
    summary = [
        {
            "origin": origin,
            "classification": classification,
            "encryption": encryption,
            "class": cls,
            "colour": ENCRYPTION_CLASSES[cls][0],
            "count": f"{n:,}",
        }
        for (origin, classification, encryption, cls), n in sorted(
            counts.items(), key=lambda kv: (rank[kv[0][3]], kv[0][0] != "declared", kv[0][1], kv[0][2])
        )
    ]
    attention = [row for row in rows if row.encryption_class in _ATTENTION]
    attention.sort(key=lambda r: (not r.personal, r.encryption_class != "unencrypted"))  # stable: table order within
    listed = attention[:FLOW_ATTENTION_LIMIT]
    note = (
        f"{len(rows):,} data movements (declared flows and workload inputs, per site placed), more than "
        f"{FLOW_ROW_LIMIT}: counted below by kind, data and encryption. Listed one by one are the "
        f"{len(attention):,} that cross unencrypted or have an end that is not placed"
        + (f" (the first {FLOW_ATTENTION_LIMIT}, personal data first)." if len(attention) > FLOW_ATTENTION_LIMIT else ".")
    )
    return [_flow_table_row(index, row) for row in listed], summary, note


def _data_map(index: _Index) -> dict:
    result = index.result
    rows = _flows(index)
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
            "readers": ", ".join(sorted(index.readers.get(d.id, ()))) or "-",
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
    table, summary, note = _flow_table(index, rows)
    spec = result.spec
    boxes = (
        sum(len(index.datasets_at.get(s.id, ())) for s in spec.sites)
        + sum(len({p.workload for p in placed}) for placed in index.at_site.values())
        + sum(1 for w in spec.workloads if not index.sites_of(w.id))
    )
    if boxes <= MAP_BOX_LIMIT and len(rows) <= MAP_ARROW_LIMIT:
        diagram, mermaid, map_note = flow_diagram(index, rows), _mermaid(index, rows), None
    else:
        agg = _aggregate(index, rows)
        diagram, mermaid = aggregate_diagram(agg), _mermaid_aggregate(agg)
        labelled = (
            "labelled with the number of flows and inputs it stands for"
            if len(agg.edges) <= MAP_LABEL_LIMIT
            else "its tooltip giving the number of flows and inputs it stands for"
        )
        map_note = (
            f"The map would have {boxes:,} datasets and placed workloads and {len(rows):,} flows and inputs, more "
            f"than {MAP_BOX_LIMIT} boxes or {MAP_ARROW_LIMIT} arrows, so it draws one box per {agg.level} "
            "(in the HTML map, where data leaves on the left and where it arrives on the right) and one arrow per "
            f"pair of them, {labelled} "
            "and coloured by the least protected of them (unencrypted, not placed, link-only, on-site, encrypted)."
        )
    return {
        "datasets": datasets,
        "links": links,
        "flows": table,
        "flow_summary": summary,
        "flow_note": note,
        "diagram": diagram,
        "mermaid": mermaid,
        "map_note": map_note,
        "legend": [{"class": k, "colour": c, "text": t} for k, (c, t) in ENCRYPTION_CLASSES.items()],
    }


class _Last:
    """The last value worked out from an object (held weakly, so the value
    goes with it) and the ids of the other objects it read: asked again with
    the same, it is not worked out again."""

    def __init__(self) -> None:
        self._kept: tuple | None = None

    def get(self, anchor: object, ids: tuple, work: Callable[[], object]):
        if self._kept is not None:
            ref, kept_ids, value = self._kept
            if ref() is anchor and kept_ids == ids:
                return value
        value = work()
        try:
            self._kept = (weakref.ref(anchor, self._forget), ids, value)
        except TypeError:  # an object without weak references: nothing kept
            self._kept = None
        return value

    def _forget(self, ref) -> None:
        if self._kept is not None and self._kept[0] is ref:
            self._kept = None


# A plan directory renders Markdown and HTML from one plan, and a large plan's
# view is most of the work: the last view, and the last plan's sections (a
# forked copy may work those out before the findings are in), are kept while
# that result and that plan are alive.
_last_view = _Last()
_last_sections = _Last()


def plan_sections(result) -> dict:
    """The sections of the view that show the plan itself: sites, placements,
    rationale, data map and GPU generations. They read the spec, facts and
    plan, never the findings, so they may be worked out before the plan-stage
    rules have run (most of a large report's work); the last plan's are kept."""
    return _last_sections.get(result.plan, (id(result.spec), id(result.facts)), lambda: _plan_sections(result))


def _plan_sections(result) -> dict:
    index = _Index(result)
    placements = _placements(index)
    return {
        "sites": _sites(index),
        "placements": placements["detailed"],
        "rationale": {"table": placements["table"], "note": placements["note"]},
        "data": _data_map(index),
        "generations": _generations(index),
    }


def report_view(result, timestamp: str | None = None) -> dict:
    """Everything both report formats print, computed once and sorted."""
    controls = assess_controls(result.validation)
    shown = plan_sections(result)
    return {
        # Constant titles; Markdown() only spares them the leading "1." escape.
        "sections": {key: Markdown(title) for key, title in SECTIONS},
        "scope": _scope(result, timestamp),
        "verdict": _verdict(result, controls),
        "sites": shown["sites"],
        "placements": shown["placements"],
        "rationale": shown["rationale"],
        "data": shown["data"],
        "findings": _findings(controls, result.validation),
        "waivers": _waivers(result),
        "generations": shown["generations"],
        "sign_off": SIGN_OFF_ROLES,
    }


@contextmanager
def paused_gc():
    """No cyclic garbage collection while a renderer builds many small objects next to a large plan.

    Each collection would walk every object of the plan (millions in a large
    one); what a renderer allocates is freed by reference counting anyway.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def kept_view(result, timestamp: str | None = None) -> dict:
    """:func:`report_view`, worked out once for a result and timestamp and
    kept while the result lives (both formats print it)."""
    ids = tuple(map(id, (result.spec, result.validation, result.plan, result.facts))) + (timestamp,)
    return _last_view.get(result, ids, lambda: report_view(result, timestamp))


# --------------------------------------------------------------------------- rendering


class _Environment(jinja2.Environment):
    """Looks ``row.key`` up in a view dict first, as ``row["key"]``.

    Jinja tries the attribute first and the item after a failed getattr,
    which is most of the time spent on a table of thousands of rows. The
    result is the same: no view dict has a key named like a dict method that
    a template calls.
    """

    def getattr(self, obj, attribute):
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


@lru_cache(maxsize=None)
def _environment(kind: str) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(templates_dir() / "report"))
    common = dict(
        loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        auto_reload=False, bytecode_cache=template_cache(),
    )
    if kind == "html":
        return _Environment(autoescape=True, **common)
    env = _Environment(autoescape=False, finalize=_md_finalize, **common)
    env.filters["code"] = lambda text, info="text": md_code_block(str(text), info)
    return env


def render_markdown(result, *, timestamp: str | None = None) -> str:
    """The report as GitHub-flavoured Markdown (with a mermaid data-flow diagram)."""
    with paused_gc():
        return _environment("md").get_template("report.md.j2").render(view=kept_view(result, timestamp))


def render_html(result, *, timestamp: str | None = None) -> str:
    """The report as one HTML file: inline CSS and SVG, nothing fetched."""
    with paused_gc():
        try:
            return _html_template().render(view=kept_view(result, timestamp))
        finally:
            _escaped.clear()


def _html_template() -> jinja2.Template:
    """The HTML report's template, which escapes with :func:`_escape`."""
    template = _environment("html").get_template("report.html.j2")
    names = template.root_render_func.__globals__  # the compiled template's module (its macros' too)
    if names.get("escape") is markupsafe.escape:
        names["escape"] = _escape
    return template


# Each string escaped while an HTML report renders: a large plan's report
# escapes 200,000 cells and more, four in five of them a string seen before.
_escaped: dict[str, markupsafe.Markup] = {}


def _escape(value: object) -> markupsafe.Markup:
    """:func:`markupsafe.escape`, each string escaped once per report."""
    if type(value) is str:
        found = _escaped.get(value)
        if found is None:
            found = _escaped[value] = markupsafe.escape(value)
        return found
    return markupsafe.escape(value)
