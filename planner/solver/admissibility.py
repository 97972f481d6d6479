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
this module does not depend on the policy engine; :func:`denials_from_outcomes`
turns the class-level output of ``placement_outcomes`` into that mapping (and
:func:`expand_denials` that of ``evaluate_placement``), keeping the
classes underneath (a :class:`DenialMap`) so that nothing is expanded per
(workload, site) unless someone asks for it.

Workloads that agree on everything these checks read are evaluated once per
class. Latency depends on where the inputs are, so the inputs (dataset and
site) are part of the class key. The checks themselves run as boolean masks
over all sites and pools, and the pieces are shared between classes: a
placement constraint, a set of denials, the latency from one set of input
sites under one budget, one sizing. Only the admissible pairs are kept, as
arrays (:class:`CandidateArrays`); ``Candidate`` objects, per-site reasons and
latencies are built when first read (explanations read a few workloads, the
solver reads arrays).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from planner.spec.models import Spec, Workload

__all__ = [
    "CONSTRAINTS",
    "Admissibility",
    "Candidate",
    "CandidateArrays",
    "DenialMap",
    "Reason",
    "SizeInfo",
    "WorkloadAdmissibility",
    "admissibility",
    "denials_from_outcomes",
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


class CandidateArrays:
    """The admissible pools of a class as arrays, aligned with ``Admissibility.pools``.

    ``shape`` numbers the distinct (pools, gpus, replicas, nodes) tuples and
    ``inputs`` the distinct input-site lists (which decide ``latency``): two
    classes with the same ``shape`` are interchangeable for every objective
    but latency, and with the same ``inputs`` too for that one. Arrays are
    shared between classes: do not modify them.
    """

    __slots__ = ("pools", "gpus", "replicas", "nodes", "shape", "inputs", "_latsum", "_pool_site", "_latency")

    def __init__(self, pools, gpus, replicas, nodes, shape: int, inputs: int, latsum: np.ndarray, pool_site: np.ndarray) -> None:
        self.pools = pools  # int32 pool indices, ascending (spec order)
        self.gpus = gpus  # int64 GPUs per replica
        self.replicas = replicas  # int64 replicas needed on this pool's GPU model
        self.nodes = nodes  # int64 whole nodes per replica (0: the replica fits on one node)
        self.shape = shape
        self.inputs = inputs
        self._latsum = latsum
        self._pool_site = pool_site
        self._latency: np.ndarray | None = None

    @property
    def latency(self) -> np.ndarray:
        """float64 summed latency to the inputs, per candidate."""
        if self._latency is None:
            self._latency = self._latsum[self._pool_site[self.pools]]
        return self._latency

    def latency_of(self, pool: int) -> float:
        """Summed latency to the inputs from one pool's site."""
        return float(self._latsum[self._pool_site[pool]])

    def __len__(self) -> int:
        return len(self.pools)


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


def _sizing_key(w: Workload) -> tuple:
    """Everything sizing reads from a workload, as a hashable value."""
    model = w.model
    model_key = None
    if model is not None:
        model_key = tuple(sorted(vars(model).items()))
        try:
            hash(model_key)
        except TypeError:
            model_key = repr(model)
    return (
        w.kind,
        model_key,
        w.gpus,
        w.gpu_memory_gb,
        w.replicas,
        w.concurrency,
        w.training_method,
        tuple(sorted(w.throughput.items())),
        w.demand,
    )


def _from_shared(spec: Spec, catalog, representatives: dict) -> dict[object, dict[str, SizeInfo]] | None:
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
    out: dict[object, dict[str, SizeInfo]] = {}
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
    where that module is not installed. Workloads with the same sizing inputs
    share one (read-only) mapping.
    """
    representatives: dict[object, Workload] = {}
    key_of: dict[str, object] = {}
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


class DenialMap(Mapping):
    """Placement denials, workload -> site -> [(rule id, message)], stored by class.

    The placement rules decide per (workload class, site class); expanding
    that to every (workload, site) costs workloads x sites, so the classes are
    kept and a workload's mapping is built when it is read. Reading gives a
    fresh dict (sites in the order the denials name them, each list sorted);
    :func:`admissibility` reads the classes directly.
    """

    def __init__(
        self,
        by_class: Mapping[str, Mapping[str, Sequence[tuple[str, str]]]],
        members: Mapping[str, Sequence[str]],
        site_members: Mapping[str, Sequence[str]],
    ) -> None:
        kept: dict[tuple, tuple] = {}  # equal denial lists, kept once
        self._by_class = {
            wc: {sc: kept.setdefault(t := tuple(sorted(v)), t) for sc, v in per.items()} for wc, per in by_class.items()
        }
        self._site_members = {sc: tuple(v) for sc, v in site_members.items()}
        classes_of: dict[str, list[str]] = {}
        for wc in self._by_class:
            for w in members.get(wc, ()):
                classes_of.setdefault(w, []).append(wc)
        self._classes_of = {w: tuple(dict.fromkeys(v)) for w, v in classes_of.items()}
        self._merged: dict[tuple[str, ...], dict[str, tuple[tuple[str, str], ...]]] = {}

    def key(self, workload: str) -> tuple[str, ...]:
        """The workload classes whose denials apply (equal keys, equal denials)."""
        return self._classes_of.get(workload, ())

    def sites(self, key: tuple[str, ...]) -> dict[str, tuple[tuple[str, str], ...]]:
        """Denied sites of a key -> sorted (rule id, message) pairs; shared, do not modify."""
        found = self._merged.get(key)
        if found is None:
            merged: dict[str, list[tuple[str, str]]] = {}
            for wc in key:
                for sc, entries in self._by_class.get(wc, {}).items():
                    for s in self._site_members.get(sc, ()):
                        bucket = merged.setdefault(s, [])
                        bucket.extend(e for e in entries if e not in bucket)
            found = self._merged[key] = {s: tuple(sorted(v)) for s, v in merged.items()}
        return found

    def denied_sites(self, key: tuple[str, ...]) -> list[str]:
        """The sites a key denies (without building their messages)."""
        out: list[str] = []
        for wc in key:
            for sc, entries in self._by_class.get(wc, {}).items():
                if entries:
                    out += self._site_members.get(sc, ())
        return out

    def __getitem__(self, workload: str) -> dict[str, list[tuple[str, str]]]:
        key = self._classes_of[workload]
        per = self.sites(key)
        if not per:
            raise KeyError(workload)
        return {s: list(v) for s, v in per.items()}

    def __contains__(self, workload: object) -> bool:
        return workload in self._classes_of and bool(self.sites(self._classes_of[workload]))

    def __iter__(self) -> Iterator[str]:
        return (w for w, key in self._classes_of.items() if self.sites(key))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"DenialMap({len(self._by_class)} workload classes, {len(self._classes_of)} workloads)"


def expand_denials(denials: Iterable, placement_doc: Mapping) -> DenialMap:
    """Class-level placement denials -> workload -> site -> [(rule id, message)].

    ``denials`` are objects with ``rule`` (having ``id``), ``workload_class``,
    ``site_class`` and ``message`` (``evaluate_placement``'s output);
    ``placement_doc`` is the document they were evaluated on, whose classes
    list their ``members``. The result is a read-only mapping that keeps the
    classes (see :class:`DenialMap`).
    """
    return _grouped(((str(getattr(d.rule, "id", d.rule)), d.workload_class, d.site_class, str(d.message)) for d in denials), placement_doc)


def denials_from_outcomes(outcomes: Iterable[tuple[object, Sequence[Mapping]]], placement_doc: Mapping) -> DenialMap:
    """:func:`expand_denials` of the placement rules' outcomes as they come
    (``placement_outcomes``): per rule (having ``id`` and ``title``), the
    objects it yielded, each with a ``workload`` and a ``site`` class and
    perhaps a ``message``; read without an object per denial (tens of
    thousands on a large spec)."""

    def denials() -> Iterator[tuple[str, str, str, str]]:
        for rule, items in outcomes:
            rule_id, title = str(rule.id), rule.title  # type: ignore[attr-defined]
            for item in items:
                yield rule_id, item["workload"], item["site"], str(item.get("message") or title)

    return _grouped(denials(), placement_doc)


def _grouped(denials: Iterable[tuple[str, str, str, str]], placement_doc: Mapping) -> DenialMap:
    """The :class:`DenialMap` of (rule id, workload class, site class, message) denials."""
    by_class: dict[str, dict[str, list[tuple[str, str]]]] = {}
    # Tens of thousands of denials repeat a few messages and class names:
    # each is kept once, which also keeps the map small to send to another process.
    kept: dict = {}
    for rule_id, workload_class, site_class, message in denials:
        entry = (rule_id, message)
        entry = kept.setdefault(entry, entry)
        site_class = kept.setdefault(site_class, site_class)
        per = by_class.get(workload_class)
        if per is None:
            per = by_class[workload_class] = {}
        bucket = per.get(site_class)
        if bucket is None:
            per[site_class] = [entry]
        elif entry not in bucket:
            bucket.append(entry)
    workloads = placement_doc["workloads"]
    sites = placement_doc["sites"]
    members = {wc: workloads[wc]["members"] for wc in by_class}
    site_members = {sc: sites[sc]["members"] for per in by_class.values() for sc in per}
    return DenialMap(by_class, members, site_members)


class _Denials:
    """Per workload: a key (equal keys, equal denials) and the denied sites of a key."""

    def __init__(self, policy_denials: PolicyDenials | None) -> None:
        self.source = {} if policy_denials is None else policy_denials
        self.by_class = isinstance(self.source, DenialMap)
        self._plain: dict[tuple, dict[str, tuple[tuple[str, str], ...]]] = {}

    def key(self, workload: str) -> tuple:
        if self.by_class:
            return ("classes", *self.source.key(workload))
        per = self.source.get(workload) or {}
        frozen = tuple(sorted((s, tuple(sorted(set(v)))) for s, v in per.items() if v))
        self._plain.setdefault(frozen, dict(frozen))
        return frozen

    def sites(self, key: tuple) -> Mapping[str, tuple[tuple[str, str], ...]]:
        if self.by_class:
            return self.source.sites(key[1:])
        return self._plain[key]

    def denied_sites(self, key: tuple) -> Iterable[str]:
        if self.by_class:
            return self.source.denied_sites(key[1:])
        return self._plain[key].keys()


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


class _Tables:
    """Sites and pools as index arrays (pool order is the facts' order: spec order)."""

    def __init__(self, spec: Spec, facts) -> None:
        self.sites = tuple(spec.sites)
        self.site_ids = tuple(s.id for s in spec.sites)
        self.site_index = {s: n for n, s in enumerate(self.site_ids)}
        self.pools = list(facts.pools)
        self.pool_keys = tuple(p.key for p in self.pools)
        self.pool_site = np.array([self.site_index.get(p.site, -1) for p in self.pools], dtype=np.int32)
        self.gpu_models = tuple(sorted({p.gpu for p in self.pools}))
        gidx = {g: n for n, g in enumerate(self.gpu_models)}
        self.pool_gpu = np.array([gidx[p.gpu] for p in self.pools], dtype=np.int32)
        self.pool_per_node = np.array([p.gpus_per_node for p in self.pools], dtype=np.int64)
        self.pool_nodes = np.array([p.nodes for p in self.pools], dtype=np.int64)
        self.pools_at: dict[int, list[int]] = {}
        for n, p in enumerate(self.pools):
            self.pools_at.setdefault(self.site_index.get(p.site, -1), []).append(n)
        self.has_pools = np.zeros(len(self.site_ids), dtype=bool)
        for s in self.pools_at:
            if s >= 0:
                self.has_pools[s] = True
        self.pool_index = {key: n for n, key in enumerate(self.pool_keys)}


class _Class:
    """One admissibility class: its arrays, and its reasons and candidates when first read."""

    def __init__(self, tables, rep: Workload, accel, sizing, denials, denial_key, inputs, arrays, latsum) -> None:
        self.tables = tables
        self.rep = rep
        self.accel = accel
        self.sizing = sizing
        self._denials = denials
        self._denial_key = denial_key
        self.inputs = inputs  # (dataset, latencies from its site)
        self.arrays = arrays
        self.latsum = latsum  # summed latency per site, nan where an input is unreachable
        self._site_ok: np.ndarray | None = None
        self._candidates: tuple[Candidate, ...] | None = None
        self._by_pool: dict[str, Candidate] | None = None
        self._admissible: tuple[str, ...] | None = None
        self._site_reasons: _SiteReasons | None = None
        self._pool_reasons: Mapping[str, tuple[Reason, ...]] | None = None
        self._latency: _Latency | None = None

    @property
    def site_ok(self) -> np.ndarray:
        """Admissible sites (bool per site)."""
        if self._site_ok is None:
            ok = np.zeros(len(self.tables.site_ids), dtype=bool)
            ok[self.tables.pool_site[self.arrays.pools]] = True
            self._site_ok = ok
        return self._site_ok

    @property
    def denied(self) -> Mapping[str, tuple[tuple[str, str], ...]]:
        """Site -> sorted (rule id, message) pairs."""
        return self._denials.sites(self._denial_key)

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        if self._candidates is None:
            t = self.tables
            a = self.arrays
            out = []
            for j, p in enumerate(a.pools.tolist()):
                pool = t.pools[p]
                out.append(
                    Candidate(
                        t.pool_keys[p], pool.site, pool.gpu, int(a.gpus[j]), int(a.replicas[j]), int(a.nodes[j]), float(a.latency[j])
                    )
                )
            self._candidates = tuple(out)
        return self._candidates

    def candidate(self, pool_key: str) -> Candidate:
        if self._candidates is not None:
            if self._by_pool is None:
                self._by_pool = {c.pool: c for c in self._candidates}
            return self._by_pool[pool_key]
        t = self.tables
        a = self.arrays
        p = t.pool_index[pool_key]
        j = int(np.searchsorted(a.pools, p))
        if j >= len(a.pools) or a.pools[j] != p:
            raise KeyError(pool_key)
        pool = t.pools[p]
        return Candidate(pool_key, pool.site, pool.gpu, int(a.gpus[j]), int(a.replicas[j]), int(a.nodes[j]), float(a.latency[j]))

    @property
    def admissible_sites(self) -> tuple[str, ...]:
        if self._admissible is None:
            ids = self.tables.site_ids
            self._admissible = tuple(ids[s] for s in np.flatnonzero(self.site_ok).tolist())
        return self._admissible

    @property
    def site_reasons(self) -> Mapping[str, tuple[Reason, ...]]:
        if self._site_reasons is None:
            self._site_reasons = _SiteReasons(self)
        return self._site_reasons

    @property
    def pool_reasons(self) -> Mapping[str, tuple[Reason, ...]]:
        if self._pool_reasons is None:
            t = self.tables
            out: dict[str, tuple[Reason, ...]] = {}
            for s in np.flatnonzero(self.site_ok).tolist():
                for p in t.pools_at.get(s, ()):
                    pr = _pool_reasons(self.accel, self.sizing, t.pools[p])
                    if pr:
                        out[t.pool_keys[p]] = tuple(pr)
            self._pool_reasons = out
        return self._pool_reasons

    @property
    def latency(self) -> Mapping[str, float | None]:
        if self._latency is None:
            self._latency = _Latency(self.tables, self.latsum)
        return self._latency

    def reasons_at(self, s: int) -> tuple[Reason, ...]:
        """Every reason site ``s`` is rejected (it must be rejected)."""
        t = self.tables
        site = t.sites[s]
        w = self.rep
        reasons = _placement_reasons(w, site)
        for rule_id, message in sorted(set(self.denied.get(site.id, ()))):
            reasons.append(Reason(site.id, rule_id, message, kind="rule"))
        for d, lat in self.inputs:
            dist = lat.get(site.id)
            if dist is None:
                reasons.append(Reason(site.id, "latency", f"no route from {d.id} site {d.site}"))
            elif w.max_latency_ms is not None and dist > w.max_latency_ms + 1e-9:
                reasons.append(
                    Reason(site.id, "latency", f"{fmt_ms(dist)} ms > {fmt_ms(w.max_latency_ms)} ms from {d.id} at {d.site}")
                )
        at = t.pools_at.get(s, ())
        if not at:
            reasons.append(Reason(site.id, "capacity", "site has no GPU pools"))
        for p in at:
            reasons += _pool_reasons(self.accel, self.sizing, t.pools[p])
        return tuple(sorted(set(reasons), key=Reason.sort_key))


class _LatenciesFrom:
    """Latencies from one site, looked up only when a rejection is explained."""

    __slots__ = ("graph", "source")

    def __init__(self, graph, source: str) -> None:
        self.graph, self.source = graph, source

    def get(self, site: str) -> float | None:
        return self.graph.latencies_from(self.source).get(site)


class _SiteReasons(Mapping):
    """Rejected site -> all its reasons, computed per site when read."""

    def __init__(self, cls: _Class) -> None:
        self._cls = cls
        ids = cls.tables.site_ids
        self._rejected = {ids[s]: s for s in np.flatnonzero(~cls.site_ok).tolist()}
        self._cache: dict[str, tuple[Reason, ...]] = {}

    def __getitem__(self, site: str) -> tuple[Reason, ...]:
        found = self._cache.get(site)
        if found is None:
            found = self._cache[site] = self._cls.reasons_at(self._rejected[site])
        return found

    def __contains__(self, site: object) -> bool:
        return site in self._rejected

    def __iter__(self) -> Iterator[str]:
        return iter(self._rejected)

    def __len__(self) -> int:
        return len(self._rejected)


class _Latency(Mapping):
    """Site -> summed latency to the inputs (None: some input unreachable)."""

    def __init__(self, tables: _Tables, latsum: np.ndarray) -> None:
        self._tables = tables
        self._latsum = latsum

    def __getitem__(self, site: str) -> float | None:
        value = self._latsum[self._tables.site_index[site]]
        return None if math.isnan(value) else float(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables.site_ids)

    def __len__(self) -> int:
        return len(self._tables.site_ids)


class WorkloadAdmissibility:
    """One workload's admissible pools (``candidates``) and every rejected site's reasons.

    Workloads of one class share everything but ``workload``, ``replicas``
    (sizing may differ on GPU models that no pool has) and ``sizing``.
    """

    __slots__ = ("workload", "class_id", "replicas", "sizing", "_cls")

    def __init__(self, workload: str, class_id: str, replicas: int, sizing: Mapping[str, SizeInfo], cls: _Class) -> None:
        self.workload = workload
        self.class_id = class_id
        self.replicas = replicas  # replicas to place (the most any admissible GPU model needs)
        self.sizing = sizing  # every catalog GPU model
        self._cls = cls

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return self._cls.candidates

    @property
    def arrays(self) -> CandidateArrays:
        return self._cls.arrays

    @property
    def site_reasons(self) -> Mapping[str, tuple[Reason, ...]]:
        """Every rejected site -> all its reasons."""
        return self._cls.site_reasons

    @property
    def pool_reasons(self) -> Mapping[str, tuple[Reason, ...]]:
        """Rejected pools at admissible sites, by pool key."""
        return self._cls.pool_reasons

    @property
    def latency(self) -> Mapping[str, float | None]:
        """Site -> summed latency to the inputs (None: unreachable)."""
        return self._cls.latency

    @property
    def admissible_sites(self) -> tuple[str, ...]:
        return self._cls.admissible_sites

    def candidate(self, pool: str) -> Candidate:
        """The candidate on one pool key (KeyError when that pool is not admissible)."""
        return self._cls.candidate(pool)

    def primary(self, site: str) -> Reason | None:
        """The reason a summary counts for a rejected site."""
        reasons = self.site_reasons.get(site)
        if not reasons:
            return None
        return min(reasons, key=lambda r: (0 if r.is_rule else 1, _PRIMARY_ORDER.get(r.code, 99), r.sort_key()))

    def __repr__(self) -> str:
        return f"WorkloadAdmissibility({self.workload!r}, class {self.class_id}, {len(self._cls.arrays)} candidates)"


@dataclass(frozen=True)
class Admissibility:
    workloads: Mapping[str, WorkloadAdmissibility]
    classes: Mapping[str, tuple[str, ...]]  # class id -> member workloads
    sites: tuple[str, ...]
    pair_count: int  # admissible (workload, pool) pairs
    considered: int  # (workload class, pool) pairs examined
    notes: tuple[str, ...] = field(default=())
    pools: tuple[str, ...] = field(default=())  # pool keys, the index space of CandidateArrays.pools


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: a large spec makes every full collection scan it all.

    The solver builds many small objects and no reference cycles, so the
    collections it would trigger only cost time (seconds at 10,000 workloads).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def admissibility(spec: Spec, facts, policy_denials: PolicyDenials | None = None, sizing=None) -> Admissibility:
    """Admissible (site, pool) pairs per workload, and every rejected site's reasons."""
    with gc_paused():
        return _admissibility(spec, facts, policy_denials, sizing)


def _admissibility(spec: Spec, facts, policy_denials: PolicyDenials | None, sizing) -> Admissibility:
    denials = _Denials(policy_denials)
    catalog = facts.catalog
    if sizing is None:
        sizing = size_workloads_for(spec, catalog)
    t = _Tables(spec, facts)
    n_sites = len(t.site_ids)
    datasets = {d.id: d for d in spec.datasets}

    lat_rows: dict[str, np.ndarray] = {}

    def latencies(src: str) -> np.ndarray:
        """Latency from ``src`` per site (nan: no route)."""
        found = lat_rows.get(src)
        if found is None:
            found = np.array(facts.graph.latency_list(src, t.site_ids), dtype=float)
            found[np.isinf(found)] = np.nan
            lat_rows[src] = found
        return found

    accel_of: dict[tuple[str, ...], tuple[str, ...]] = {}
    sizing_sig: dict[int, tuple] = {}

    def accel_for(w: Workload) -> tuple[str, ...]:
        raw = tuple(w.accelerators)
        found = accel_of.get(raw)
        if found is None:
            found = accel_of[raw] = tuple(sorted({_canonical_gpu(catalog, a) for a in raw}))
        return found

    def sizing_key(sz: Mapping[str, SizeInfo]) -> tuple:
        found = sizing_sig.get(id(sz))
        if found is None:
            found = tuple(
                (g, sz[g].fits, sz[g].reason, sz[g].gpus_per_replica, sz[g].replicas) if g in sz else (g,) for g in t.gpu_models
            )
            sizing_sig[id(sz)] = found
        return found

    # classes, in order of first member
    keys: dict[tuple, str] = {}
    classes: dict[str, list[str]] = {}
    class_key: dict[str, tuple] = {}
    for w in spec.workloads:
        p = w.placement
        key = (
            accel_for(w),
            sizing_key(sizing[w.id]),
            (tuple(p.sites), tuple(p.avoid), tuple(k.value for k in p.kinds)),
            tuple((name, datasets[name].site) for name in w.inputs if name in datasets),
            w.max_latency_ms,
            denials.key(w.id),
        )
        class_id = keys.get(key)
        if class_id is None:
            class_id = keys[key] = f"ac{len(keys) + 1}"
            classes[class_id] = []
            class_key[class_id] = key
        classes[class_id].append(w.id)

    # The checks as masks. Rows are shared: per (accelerators, sizing) over pools, per
    # placement constraint, per set of denials and per (input sites, budget) over sites.
    def intern(table: dict, key) -> int:
        found = table.get(key)
        if found is None:
            found = table[key] = len(table)
        return found

    pk_keys: dict[tuple, int] = {}
    pl_keys: dict[tuple, int] = {}
    dn_keys: dict[tuple, int] = {}
    lk_keys: dict[tuple, int] = {}
    n_classes = len(classes)
    c_pk = np.zeros(n_classes, dtype=np.int64)
    c_pl = np.zeros(n_classes, dtype=np.int64)
    c_dn = np.zeros(n_classes, dtype=np.int64)
    c_lk = np.zeros(n_classes, dtype=np.int64)
    for c, class_id in enumerate(classes):
        accel, sig, place_key, inputs_key, budget, denial_key = class_key[class_id]
        c_pk[c] = intern(pk_keys, (accel, sig))
        c_pl[c] = intern(pl_keys, place_key)
        c_dn[c] = intern(dn_keys, denial_key)
        c_lk[c] = intern(lk_keys, (tuple(site for _, site in inputs_key), budget))

    n_pools = len(t.pools)
    ok_pool = np.zeros((len(pk_keys), n_pools), dtype=bool)
    g_pool = np.ones((len(pk_keys), n_pools), dtype=np.int64)
    r_pool = np.ones((len(pk_keys), n_pools), dtype=np.int64)
    k_pool = np.zeros((len(pk_keys), n_pools), dtype=np.int64)
    for (accel, sig), i in pk_keys.items():
        n = len(t.gpu_models)
        ok_gpu = np.zeros(n, dtype=bool)
        gpus = np.ones(n, dtype=np.int64)
        replicas = np.ones(n, dtype=np.int64)
        for gi, entry in enumerate(sig):
            if len(entry) == 1:  # no sizing for this GPU model
                continue
            g, fits, _, per, reps = entry
            ok_gpu[gi] = fits and (not accel or g in accel)
            gpus[gi] = per
            replicas[gi] = reps
        g_pool[i] = gpus[t.pool_gpu]
        r_pool[i] = replicas[t.pool_gpu]
        k_pool[i] = np.where(g_pool[i] > t.pool_per_node, -(-g_pool[i] // t.pool_per_node), 0)
        ok_pool[i] = ok_gpu[t.pool_gpu] & (k_pool[i] <= t.pool_nodes)

    placement_bad = np.zeros((len(pl_keys), n_sites), dtype=bool)
    for (only, avoid, kinds), i in pl_keys.items():
        only, avoid, kinds = set(only), set(avoid), set(kinds)
        placement_bad[i] = [
            bool((only and site.id not in only) or site.id in avoid or (kinds and site.kind.value not in kinds)) for site in t.sites
        ]
    denied_bad = np.zeros((len(dn_keys), n_sites), dtype=bool)
    for key, i in dn_keys.items():
        at = [t.site_index[s] for s in denials.denied_sites(key) if s in t.site_index]
        denied_bad[i, at] = True
    latency_bad = np.zeros((len(lk_keys), n_sites), dtype=bool)
    latsum = np.zeros((len(lk_keys), n_sites), dtype=float)
    for (srcs, budget), i in lk_keys.items():
        for src in srcs:
            row = latencies(src)
            latsum[i] += row  # nan where unreachable; in input order, like a running sum
            latency_bad[i] |= np.isnan(row)
            if budget is not None:
                latency_bad[i] |= row > budget + 1e-9

    # admissible pools per class, a chunk of classes at a time; equal rows share arrays
    shapes: dict[tuple[int, bytes], tuple] = {}
    arrays_of: dict[tuple[int, int], CandidateArrays] = {}
    class_arrays: list[CandidateArrays] = []
    chunk = max(1, 2_000_000 // max(n_pools + n_sites, 1))
    for c0 in range(0, n_classes, chunk):
        part = slice(c0, min(c0 + chunk, n_classes))
        site_level = ~(placement_bad[c_pl[part]] | denied_bad[c_dn[part]] | latency_bad[c_lk[part]]) & t.has_pools
        cand = ok_pool[c_pk[part]] & site_level[:, t.pool_site]
        packed = np.packbits(cand, axis=1)
        for i in range(cand.shape[0]):
            c = c0 + i
            pk = int(c_pk[c])
            key = (pk, packed[i].tobytes())
            found = shapes.get(key)
            if found is None:
                pools = np.flatnonzero(cand[i]).astype(np.int32)
                found = shapes[key] = (len(shapes), pools, g_pool[pk, pools], r_pool[pk, pools], k_pool[pk, pools])
            shape, pools, gpus, replicas, nodes = found
            lk = int(c_lk[c])
            arrays = arrays_of.get((shape, lk))
            if arrays is None:
                arrays = arrays_of[(shape, lk)] = CandidateArrays(pools, gpus, replicas, nodes, shape, lk, latsum[lk], t.pool_site)
            class_arrays.append(arrays)

    out: dict[str, WorkloadAdmissibility] = {}
    by_id = {w.id: w for w in spec.workloads}
    pairs = 0
    best_of: dict[int, int | None] = {}
    for c, (class_id, members) in enumerate(classes.items()):
        accel, _, _, inputs_key, _, denial_key = class_key[class_id]
        w = by_id[members[0]]
        arrays = class_arrays[c]
        ins = [(datasets[name], _LatenciesFrom(facts.graph, datasets[name].site)) for name, _ in inputs_key]
        cls = _Class(t, w, accel, sizing[w.id], denials, denial_key, ins, arrays, latsum[c_lk[c]])
        best = best_of.get(arrays.shape, -1)
        if best == -1:
            best = best_of[arrays.shape] = int(arrays.replicas.max()) if len(arrays) else None
        for wid in members:
            own = sizing[wid]
            if best is not None:
                replicas = best
            else:
                fitting = [own[g].replicas for g in own if own[g].fits and (not accel or g in accel)]
                replicas = max(fitting, default=by_id[wid].replicas)
            out[wid] = WorkloadAdmissibility(wid, class_id, replicas, own, cls)
        pairs += len(arrays) * len(members)
    return Admissibility(
        workloads=out,
        classes={k: tuple(v) for k, v in classes.items()},
        sites=t.site_ids,
        pair_count=pairs,
        considered=len(classes) * len(t.pools),
        pools=t.pool_keys,
    )
