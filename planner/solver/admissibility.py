"""Which (site, pool) pairs each workload may use, and why every other site is out.

A site is admissible for a workload when no site-level check rejects it
(user placement constraints, placement-stage policy denials, latency to each
input dataset) and at least one of its pools passes the pool-level checks
(GPU model in ``accelerators``, memory per GPU, node shape). Everything that
rejects a site is recorded, not only the first reason, so that explanations
can say what would make the site admissible.

Reason codes are a contract (they appear in plan.json and in reports):

- ``placement``  the workload's ``placement.sites`` / ``avoid`` / ``kinds``
- ``latency``    latency from an input dataset's site, or no route at all
- ``accelerator`` the pool's GPU model is not in the workload's accelerators
- ``gpu-memory`` the model does not fit on this GPU model (sizing's reason)
- ``node-shape`` a replica needs more whole nodes than the pool has
- ``capacity``   decided by the solver (no free GPUs, or a site without pools)
- ``ha-spread``  decided by the solver (criticality high needs two sites)
- policy denials carry their rule id (``rule: MP-...``) instead of a constraint.

Policy denials are an input (workload -> site -> [(rule id, message)]), so
this module does not depend on the policy engine; :func:`expand_denials` turns
the class-level output of ``evaluate_placement`` into that mapping.

Workloads that agree on everything these checks read are evaluated once per
class. Latency depends on where the inputs are, so the inputs (dataset and
site) are part of the class key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from planner.spec.models import Spec, Workload

__all__ = [
    "CONSTRAINTS",
    "Admissibility",
    "Candidate",
    "Reason",
    "SizeInfo",
    "WorkloadAdmissibility",
    "admissibility",
    "expand_denials",
    "fmt_ms",
    "size_workloads_for",
]

CONSTRAINTS = ("placement", "latency", "accelerator", "gpu-memory", "node-shape", "capacity", "ha-spread")
_PRIMARY_ORDER = {name: n for n, name in enumerate(CONSTRAINTS)}
POOL_LEVEL = frozenset({"accelerator", "gpu-memory", "node-shape"})

PolicyDenials = Mapping[str, Mapping[str, Sequence[tuple[str, str]]]]


def fmt_ms(value: float) -> str:
    """A latency for messages: 24, 24.5, 0.125 (no float noise)."""
    return f"{round(float(value), 3):g}"


@dataclass(frozen=True, order=True)
class Reason:
    """Why one site (or one pool of it) cannot run a workload."""

    site: str
    code: str  # a rule id (kind "rule") or a constraint name (kind "constraint")
    message: str
    kind: str = "constraint"  # constraint | rule
    pool: str | None = None  # pool id, for pool-level constraints

    @property
    def is_rule(self) -> bool:
        return self.kind == "rule"

    def as_dict(self) -> dict:
        out = {"site": self.site, self.kind: self.code, "message": self.message}
        if self.pool is not None:
            out["pool"] = self.pool
        return out

    def sort_key(self) -> tuple:
        return (self.site, 0 if self.is_rule else 1, self.code, self.pool or "", self.message)


@dataclass(frozen=True)
class SizeInfo:
    """What the solver needs from sizing for one workload on one GPU model."""

    gpu: str
    fits: bool
    reason: str | None
    gpus_per_replica: int
    replicas: int
    headroom_gb: float | None = None


@dataclass(frozen=True)
class Candidate:
    """An admissible (workload, pool) pair with what placing there costs."""

    pool: str  # pool key "site/pool"
    site: str
    gpu: str
    gpus: int  # GPUs per replica on this GPU model
    replicas: int  # replicas needed if every replica runs on this GPU model
    nodes_per_replica: int  # > 0 only for replicas larger than one node (whole nodes)
    latency_ms: float  # sum of the latencies from each input dataset's site


@dataclass(frozen=True)
class WorkloadAdmissibility:
    workload: str
    class_id: str
    replicas: int  # replicas to place (the most any admissible GPU model needs)
    candidates: tuple[Candidate, ...]
    site_reasons: Mapping[str, tuple[Reason, ...]]  # every rejected site -> all its reasons
    pool_reasons: Mapping[str, tuple[Reason, ...]]  # rejected pools at admissible sites, by pool key
    latency: Mapping[str, float | None]  # site -> summed latency to the inputs (None: unreachable)
    sizing: Mapping[str, SizeInfo]  # every catalog GPU model

    @property
    def admissible_sites(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for c in self.candidates:
            seen.setdefault(c.site, None)
        return tuple(seen)

    def primary(self, site: str) -> Reason | None:
        """The reason a summary counts for a rejected site."""
        reasons = self.site_reasons.get(site)
        if not reasons:
            return None
        return min(reasons, key=lambda r: (0 if r.is_rule else 1, _PRIMARY_ORDER.get(r.code, 99), r.sort_key()))


@dataclass(frozen=True)
class Admissibility:
    workloads: Mapping[str, WorkloadAdmissibility]
    classes: Mapping[str, tuple[str, ...]]  # class id -> member workloads
    sites: tuple[str, ...]
    pair_count: int  # admissible (workload, pool) pairs built
    considered: int  # (workload class, pool) pairs examined
    notes: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------- sizing


def _own_size(workload: Workload, catalog, gpu_ids: Iterable[str]) -> dict[str, SizeInfo]:
    """Sizing through planner.catalog.sizing (used until workload_sizing is available)."""
    from planner.catalog.sizing import ModelShape, SizingRequest, size_for_gpu

    out: dict[str, SizeInfo] = {}
    model = workload.model
    if model is not None and model.params_b is not None:
        request = SizingRequest(
            kind=workload.kind.value,
            model=ModelShape(
                name=model.name,
                params_b=model.params_b,
                precision=model.precision.value,
                layers=model.layers,
                kv_heads=model.kv_heads,
                head_dim=model.head_dim,
                context_tokens=model.context_tokens,
            ),
            concurrency=workload.concurrency,
            training_method=workload.training_method.value if workload.training_method else None,
            gpus=workload.gpus,
            gpu_memory_gb=workload.gpu_memory_gb,
            throughput=dict(workload.throughput),
            demand=workload.demand,
            replicas=workload.replicas,
        )
        for gpu_id in gpu_ids:
            s = size_for_gpu(request, catalog.gpu(gpu_id))
            out[s.gpu] = SizeInfo(s.gpu, s.fits, s.reason, s.gpus_per_replica, s.replicas, s.headroom_gb)
        return out
    # No model to size: the given GPU count (default 1) and the given memory floor.
    gpus = workload.gpus or 1
    for gpu_id in gpu_ids:
        gpu = catalog.gpu(gpu_id)
        reason = None
        if workload.gpu_memory_gb is not None and gpu.memory_gb + 1e-9 < workload.gpu_memory_gb:
            reason = f"needs {workload.gpu_memory_gb:,.10g} GB per GPU, {gpu.id} has {gpu.memory_gb:,.10g}"
        replicas = workload.replicas
        measured = _measured(workload.throughput, gpu)
        if measured is not None and workload.demand is not None:
            replicas = max(replicas, math.ceil(workload.demand / measured - 1e-9), 1)
        out[gpu.id] = SizeInfo(gpu.id, reason is None, reason, gpus, replicas, None)
    return out


def _measured(throughput: Mapping[str, float], gpu) -> float | None:
    names = {n.casefold() for n in (gpu.id, *gpu.aliases)}
    for key in sorted(throughput):
        if key.strip().casefold() in names:
            return throughput[key]
    return None


def _sizing_key(w: Workload) -> str:
    fields = {"kind", "model", "gpus", "gpu_memory_gb", "replicas", "concurrency", "training_method", "throughput", "demand"}
    return json.dumps(w.model_dump(mode="json", include=fields), sort_keys=True)


def _from_shared(spec: Spec, catalog, representatives: dict[str, Workload]) -> dict[str, dict[str, SizeInfo]] | None:
    """Sizing from planner.catalog.workload_sizing, on every catalog GPU model.

    Accelerators are checked here (as their own ``accelerator`` reason), so
    the workloads are sized without them; one representative per distinct
    sizing input is enough.
    """
    try:
        from planner.catalog.workload_sizing import size_workloads
    except ImportError:
        return None
    unrestricted = [w.model_copy(update={"accelerators": []}) for w in representatives.values()]
    stripped = spec.model_copy(update={"workloads": unrestricted})
    result = size_workloads(stripped, catalog, gpu_ids=catalog.gpu_ids())
    out: dict[str, dict[str, SizeInfo]] = {}
    for key, w in representatives.items():
        out[key] = {
            s.gpu: SizeInfo(s.gpu, bool(s.fits), s.reason, int(s.gpus_per_replica), int(s.replicas), s.headroom_gb)
            for s in result[w.id]
        }
    return out


def size_workloads_for(spec: Spec, catalog) -> dict[str, dict[str, SizeInfo]]:
    """Per workload, per catalog GPU model: fits, reason, GPUs per replica, replicas.

    Uses :func:`planner.catalog.workload_sizing.size_workloads` (the same
    sizing reports show); falls back to :mod:`planner.catalog.sizing` directly
    where that module is not installed.
    """
    representatives: dict[str, Workload] = {}
    key_of: dict[str, str] = {}
    for w in spec.workloads:
        key = _sizing_key(w)
        representatives.setdefault(key, w)
        key_of[w.id] = key
    by_key = _from_shared(spec, catalog, representatives)
    if by_key is None:
        gpu_ids = catalog.gpu_ids()
        by_key = {key: _own_size(w, catalog, gpu_ids) for key, w in representatives.items()}
    return {w.id: by_key[key_of[w.id]] for w in spec.workloads}


# --------------------------------------------------------------------------- denials


def expand_denials(denials: Iterable, placement_doc: Mapping) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """Class-level placement denials -> workload -> site -> [(rule id, message)].

    ``denials`` are objects with ``rule`` (having ``id``), ``workload_class``,
    ``site_class`` and ``message`` (``evaluate_placement``'s output);
    ``placement_doc`` is the document they were evaluated on, whose classes
    list their ``members``.
    """
    out: dict[str, dict[str, list[tuple[str, str]]]] = {}
    workloads = placement_doc["workloads"]
    sites = placement_doc["sites"]
    for d in denials:
        rule_id = getattr(d.rule, "id", d.rule)
        for w in workloads[d.workload_class]["members"]:
            for s in sites[d.site_class]["members"]:
                entry = (str(rule_id), str(d.message))
                bucket = out.setdefault(w, {}).setdefault(s, [])
                if entry not in bucket:
                    bucket.append(entry)
    for per in out.values():
        for s in per:
            per[s].sort()
    return out


# --------------------------------------------------------------------------- checks


def _canonical_gpu(catalog, name: str) -> str:
    try:
        return catalog.gpu(name).id
    except KeyError:
        return name


def _placement_reasons(workload: Workload, site) -> list[Reason]:
    p = workload.placement
    out = []
    if p.sites and site.id not in p.sites:
        out.append(Reason(site.id, "placement", f"placement.sites allows only {', '.join(p.sites)}"))
    if site.id in p.avoid:
        out.append(Reason(site.id, "placement", f"placement.avoid lists {site.id}"))
    if p.kinds and site.kind not in p.kinds:
        kinds = ", ".join(k.value for k in p.kinds)
        out.append(Reason(site.id, "placement", f"placement.kinds allows only {kinds}; {site.id} is {site.kind.value}"))
    return out


def _pool_reasons(accelerators: tuple[str, ...], sizing: Mapping[str, SizeInfo], pool) -> list[Reason]:
    out = []
    if accelerators and pool.gpu not in accelerators:
        out.append(
            Reason(pool.site, "accelerator", f"{pool.gpu} is not in accelerators ({', '.join(accelerators)})", pool=pool.id)
        )
    info = sizing.get(pool.gpu)
    if info is None:
        out.append(Reason(pool.site, "gpu-memory", f"no sizing for {pool.gpu}", pool=pool.id))
        return out
    if not info.fits:
        out.append(Reason(pool.site, "gpu-memory", info.reason or f"does not fit on {pool.gpu}", pool=pool.id))
    g = info.gpus_per_replica
    if g > pool.gpus_per_node:
        k = math.ceil(g / pool.gpus_per_node)
        if k > pool.nodes:
            what = "max_nodes is" if pool.elastic else "the pool has"
            out.append(
                Reason(
                    pool.site,
                    "node-shape",
                    f"a replica of {g} GPUs needs {k} whole nodes of {pool.gpus_per_node} GPUs; {what} {pool.nodes}",
                    pool=pool.id,
                )
            )
    return out


def admissibility(spec: Spec, facts, policy_denials: PolicyDenials | None = None, sizing=None) -> Admissibility:
    """Admissible (site, pool) pairs per workload, and every rejected site's reasons."""
    policy_denials = policy_denials or {}
    catalog = facts.catalog
    if sizing is None:
        sizing = size_workloads_for(spec, catalog)
    datasets = {d.id: d for d in spec.datasets}
    pools_at: dict[str, list] = {}
    for p in facts.pools:
        pools_at.setdefault(p.site, []).append(p)
    site_ids = tuple(s.id for s in spec.sites)
    pool_gpus = sorted({p.gpu for p in facts.pools})

    # Latency from each dataset site to every site, computed once per source site.
    lat_from: dict[str, dict[str, float]] = {}

    def latencies(src: str) -> dict[str, float]:
        if src not in lat_from:
            lat_from[src] = dict(facts.graph.latencies_from(src))
        return lat_from[src]

    classes: dict[str, list[str]] = {}
    keys: dict[str, str] = {}
    for w in spec.workloads:
        accel = tuple(sorted({_canonical_gpu(catalog, a) for a in w.accelerators}))
        sz = sizing[w.id]
        signature = {
            "accelerators": accel,
            "sizing": [(g, sz[g].fits, sz[g].reason, sz[g].gpus_per_replica, sz[g].replicas) for g in pool_gpus if g in sz],
            "placement": w.placement.model_dump(mode="json"),
            "inputs": [(name, datasets[name].site) for name in w.inputs if name in datasets],
            "max_latency_ms": w.max_latency_ms,
            "denials": sorted((s, sorted(v)) for s, v in policy_denials.get(w.id, {}).items()),
        }
        key = json.dumps(signature, sort_keys=True, default=str)
        if key not in keys:
            keys[key] = f"ac{len(keys) + 1}"
            classes[keys[key]] = []
        classes[keys[key]].append(w.id)

    by_id = {w.id: w for w in spec.workloads}
    out: dict[str, WorkloadAdmissibility] = {}
    pairs = 0
    considered = 0
    for class_id, members in classes.items():
        w = by_id[members[0]]
        accel = tuple(sorted({_canonical_gpu(catalog, a) for a in w.accelerators}))
        sz = sizing[w.id]
        denials = policy_denials.get(w.id, {})
        inputs = [datasets[name] for name in w.inputs if name in datasets]
        candidates: list[Candidate] = []
        site_reasons: dict[str, tuple[Reason, ...]] = {}
        pool_reasons: dict[str, tuple[Reason, ...]] = {}
        latency: dict[str, float | None] = {}
        for site in spec.sites:
            reasons: list[Reason] = []
            reasons += _placement_reasons(w, site)
            for rule_id, message in sorted(set(denials.get(site.id, ()))):
                reasons.append(Reason(site.id, rule_id, message, kind="rule"))
            total = 0.0
            reachable = True
            for d in inputs:
                dist = latencies(d.site).get(site.id)
                if dist is None:
                    reachable = False
                    reasons.append(Reason(site.id, "latency", f"no route from {d.id} site {d.site}"))
                    continue
                total += dist
                if w.max_latency_ms is not None and dist > w.max_latency_ms + 1e-9:
                    reasons.append(
                        Reason(site.id, "latency", f"{fmt_ms(dist)} ms > {fmt_ms(w.max_latency_ms)} ms from {d.id} at {d.site}")
                    )
            latency[site.id] = total if reachable else None
            site_pools = pools_at.get(site.id, [])
            if not site_pools:
                reasons.append(Reason(site.id, "capacity", "site has no GPU pools"))
            ok_pools = []
            bad_pool_reasons: list[Reason] = []
            for pool in site_pools:
                considered += 1
                pr = _pool_reasons(accel, sz, pool)
                if pr:
                    bad_pool_reasons += pr
                    pool_reasons[pool.key] = tuple(pr)
                else:
                    ok_pools.append(pool)
            if reasons or not ok_pools:
                site_reasons[site.id] = tuple(sorted(set(reasons + bad_pool_reasons), key=Reason.sort_key))
                for pool in site_pools:
                    pool_reasons.pop(pool.key, None)
                continue
            for pool in ok_pools:
                info = sz[pool.gpu]
                g = info.gpus_per_replica
                k = math.ceil(g / pool.gpus_per_node) if g > pool.gpus_per_node else 0
                candidates.append(Candidate(pool.key, site.id, pool.gpu, g, info.replicas, k, total))
        cands = tuple(candidates)
        for wid in members:
            own = sizing[wid]
            fitting = [own[g].replicas for g in own if own[g].fits and (not accel or g in accel)]
            replicas = max((c.replicas for c in cands), default=max(fitting, default=by_id[wid].replicas))
            out[wid] = WorkloadAdmissibility(
                workload=wid,
                class_id=class_id,
                replicas=replicas,
                candidates=cands,
                site_reasons=dict(site_reasons),
                pool_reasons=dict(pool_reasons),
                latency=dict(latency),
                sizing=sizing[wid],
            )
            pairs += len(cands)
    return Admissibility(
        workloads=out,
        classes={k: tuple(v) for k, v in classes.items()},
        sites=site_ids,
        pair_count=pairs,
        considered=considered,
    )
