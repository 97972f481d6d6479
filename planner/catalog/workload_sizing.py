"""Sizing of a spec's workloads on the GPU models of its pools, and what each pool would cost.

This joins the spec to the pure sizing functions of :mod:`planner.catalog.sizing`:

- :func:`request_for` turns a spec ``Workload`` into a ``SizingRequest``
  (``None`` when the spec gives no model size: then only the workload's own
  ``gpus`` and ``gpu_memory_gb`` apply);
- :func:`size_workloads` sizes every workload on every GPU model found in the
  spec's pools and in the workload's ``accelerators``;
- :func:`pool_options` prices one replica, and all replicas, of every workload
  on every pool, checks the node shape and marks the cheapest option that fits.

Cost of a pool option (USD per hour):

- ``cost_per_replica_hour`` = GPUs per replica x the pool's cost per GPU hour
  (owned pools: ``cost_per_gpu_hour``; cloud pools: instance price / GPUs per
  instance). This is what a replica costs when it shares instances with others.
- ``instance_cost_per_hour`` (elastic cloud pools only) = whole instances one
  replica occupies x the instance price: what a replica alone pays, since a
  cloud provider bills whole instances.
- ``total_cost_per_hour`` = ``cost_per_replica_hour`` x replicas;
  ``instance_total_per_hour`` = instances all replicas need, packed together,
  x the instance price.
- ``billed_per_hour`` is what the workload alone pays: the instance total on
  elastic pools, the per-GPU total elsewhere. The cheapest option is the one
  with the lowest ``billed_per_hour`` among options that fit and that the
  workload's ``placement`` allows (pools with room for every replica first).

Everything here is pure and deterministic: the same spec and catalog give the
same results in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from planner.catalog import Catalog, GpuModel
from planner.catalog.additions import ResolvedPool, resolve_pools
from planner.catalog.sizing import GpuSizing, ModelShape, SizingRequest, size_for_gpu

__all__ = [
    "GENERATION_ORDER",
    "PoolOption",
    "WorkloadSizing",
    "gpu_order_key",
    "pool_options",
    "request_for",
    "size_workloads",
]

GENERATION_ORDER: tuple[str, ...] = ("ampere", "ada", "hopper", "blackwell")
_TRAINING_KINDS = frozenset({"training", "fine-tuning"})
_EPSILON = 1e-9


def _value(item: object) -> object:
    """The plain value of a spec enum member (or the item itself)."""
    return getattr(item, "value", item)


def _num(value: float) -> str:
    return f"{value:,.10g}"


def _gb(value: float) -> str:
    return f"{value:,.1f} GB"


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def gpu_order_key(gpu: GpuModel) -> tuple[int, float, str]:
    """Order GPU models from older to newer: generation, then memory, then id."""
    rank = GENERATION_ORDER.index(gpu.generation) if gpu.generation in GENERATION_ORDER else len(GENERATION_ORDER)
    return (rank, gpu.memory_gb, gpu.id)


# --------------------------------------------------------------------------- requests


def request_for(workload) -> SizingRequest | None:
    """The sizing request for a spec workload, or None when the spec gives no model size.

    ``gpus`` becomes a floor on GPUs per replica and ``gpu_memory_gb`` a
    minimum of usable memory per GPU. Without ``model.params_b`` memory cannot
    be estimated, so there is no request: :func:`size_workloads` then uses the
    workload's ``gpus`` (default 1) and checks ``gpu_memory_gb`` alone.
    """
    model = workload.model
    if model is None or model.params_b is None:
        return None
    kind = str(_value(workload.kind))
    method = workload.training_method
    return SizingRequest(
        kind=kind,
        model=ModelShape(
            name=model.name,
            params_b=model.params_b,
            precision=str(_value(model.precision)),
            layers=model.layers,
            kv_heads=model.kv_heads,
            head_dim=model.head_dim,
            context_tokens=model.context_tokens,
        ),
        concurrency=workload.concurrency,
        training_method=str(_value(method)) if method is not None and kind in _TRAINING_KINDS else None,
        gpus=workload.gpus,
        gpu_memory_gb=workload.gpu_memory_gb,
        throughput=dict(workload.throughput),
        demand=workload.demand,
        replicas=workload.replicas,
    )


# --------------------------------------------------------------------------- sizing


@dataclass(frozen=True)
class WorkloadSizing:
    """How one workload sizes on each GPU model considered for it (iterating yields the GpuSizing)."""

    workload: str
    kind: str
    basis: str  # "model": estimated from the model size; "given": the spec's gpus and gpu_memory_gb
    request: SizingRequest | None
    accelerators: tuple[str, ...]  # canonical GPU ids the workload allows; empty means any
    gpus: tuple[GpuSizing, ...]  # one per GPU model, older generations first
    memory_known: bool = True  # False without a model size and without gpu_memory_gb
    generations: dict[str, str] = field(default_factory=dict)  # GPU id -> generation
    measured: dict[str, float] = field(default_factory=dict)  # GPU id -> the user's throughput, when demand is set

    def __iter__(self) -> Iterator[GpuSizing]:
        return iter(self.gpus)

    def __len__(self) -> int:
        return len(self.gpus)

    @property
    def by_gpu(self) -> dict[str, GpuSizing]:
        return {sizing.gpu: sizing for sizing in self.gpus}

    def for_gpu(self, gpu_id: str) -> GpuSizing | None:
        return self.by_gpu.get(gpu_id)


def _measured(throughput: dict[str, float], gpu: GpuModel) -> float | None:
    names = {name.casefold() for name in (gpu.id, *gpu.aliases)}
    for key in sorted(throughput):
        if key.strip().casefold() in names:
            return throughput[key]
    return None


def _given_replicas(workload, gpu: GpuModel, steps: list[str]) -> int:
    """Replicas of a workload without a model size: the same rule as sizing.size_for_gpu."""
    given = workload.replicas
    measured = _measured(dict(workload.throughput), gpu)
    if measured is not None and workload.demand is not None:
        ratio = workload.demand / measured
        needed = max(math.ceil(ratio - _EPSILON), 1)
        steps.append(
            f"replicas = demand {_num(workload.demand)} / measured {_num(measured)} per replica on {gpu.id} "
            f"(user measurement) = {ratio:.4g} -> {needed} replicas"
        )
        if given > needed:
            steps.append(f"replicas = max(given {given}, {needed}) = {given} (the given replicas are a floor)")
            return given
        return needed
    if workload.demand is not None:
        steps.append(
            f"replicas = {given} as given: no throughput measurement for {gpu.id}, "
            "and no speed-up between GPU models is assumed"
        )
    else:
        steps.append(f"replicas = {given} as given")
    return given


def _size_given(workload, gpu: GpuModel) -> GpuSizing:
    """A workload without a model size: the spec's gpus (default 1) and gpu_memory_gb."""
    usable = gpu.memory_gb
    steps = ["memory not estimated: the spec gives no model.params_b for this workload"]
    if workload.gpus is not None:
        gpus = workload.gpus
        steps.append(f"gpus: {gpus} (given in the spec)")
    else:
        gpus = 1
        steps.append("gpus: 1 (default: the spec gives neither gpus nor a model size)")
    reason = None
    minimum = workload.gpu_memory_gb
    if minimum is not None:
        if usable + _EPSILON < minimum:
            reason = f"needs {_num(minimum)} GB per GPU, {gpu.id} has {_num(usable)}"
            steps.append(f"given minimum per GPU = {_gb(minimum)}; {gpu.id} has {_gb(usable)}: too small")
        else:
            steps.append(f"given minimum per GPU = {_gb(minimum)}; {gpu.id} has {_gb(usable)}: enough")
        per_gpu = minimum
        steps.append(f"per GPU = {_gb(minimum)} (the given minimum) of {_num(usable)} GB, {_gb(usable - minimum)} free")
    else:
        per_gpu = 0.0
        steps.append(f"per GPU = not known (no gpu_memory_gb given); {gpu.id} has {_gb(usable)}")
    replicas = _given_replicas(workload, gpu, steps)
    return GpuSizing(
        gpu=gpu.id,
        fits=reason is None,
        reason=reason,
        gpus_per_replica=gpus,
        tp_degree=1,
        memory_required_gb=per_gpu * gpus,
        memory_per_gpu_gb=per_gpu,
        usable_per_gpu_gb=usable,
        headroom_gb=usable - per_gpu,
        replicas=replicas,
        total_gpus=gpus * replicas,
        arithmetic=tuple(steps),
    )


def _restrict(sizing: GpuSizing, allowed: tuple[str, ...]) -> GpuSizing:
    """Mark a GPU model the workload's accelerators exclude as not fitting."""
    if not allowed or sizing.gpu in allowed:
        return sizing
    why = f"not in the workload's accelerators ({', '.join(allowed)})"
    reason = why if sizing.reason is None else f"{why}; {sizing.reason}"
    return sizing.model_copy(
        update={"fits": False, "reason": reason, "arithmetic": (f"accelerators: {sizing.gpu} is {why}", *sizing.arithmetic)}
    )


def _canonical(catalog: Catalog, names: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        gpu_id = catalog.gpu(name).id  # raises UnknownCatalogName with a suggestion
        if gpu_id not in out:
            out.append(gpu_id)
    return tuple(out)


def size_workloads(spec, catalog: Catalog, gpu_ids: Iterable[str] | None = None) -> dict[str, WorkloadSizing]:
    """Every workload of the spec, sized on each GPU model that could run it, in spec order.

    The GPU models are those of the spec's pools plus the workload's own
    ``accelerators`` (or exactly ``gpu_ids``, which may use aliases), ordered
    older generation first. ``catalog`` must hold the spec's own additions:
    use :func:`planner.catalog.additions.catalog_with_spec`.
    """
    if gpu_ids is not None:
        fixed: tuple[str, ...] | None = _canonical(catalog, gpu_ids)
        pool_gpus: tuple[str, ...] = ()
    else:
        fixed = None
        pool_gpus = _canonical(catalog, (pool.gpu for pool in resolve_pools(spec, catalog)))

    result: dict[str, WorkloadSizing] = {}
    for workload in spec.workloads:
        allowed = _canonical(catalog, workload.accelerators)
        for key in sorted(workload.throughput):
            catalog.gpu(key)  # a typo in a throughput key is an error, not a silent miss
        ids = fixed if fixed is not None else tuple(dict.fromkeys((*pool_gpus, *allowed)))
        models = sorted((catalog.gpus[gpu_id] for gpu_id in ids), key=gpu_order_key)
        request = request_for(workload)
        sizings = []
        for gpu in models:
            sizing = size_for_gpu(request, gpu) if request is not None else _size_given(workload, gpu)
            sizings.append(_restrict(sizing, allowed))
        result[workload.id] = WorkloadSizing(
            workload=workload.id,
            kind=str(_value(workload.kind)),
            basis="model" if request is not None else "given",
            request=request,
            accelerators=allowed,
            gpus=tuple(sizings),
            memory_known=request is not None or workload.gpu_memory_gb is not None,
            generations={gpu.id: gpu.generation for gpu in models},
            measured={
                gpu.id: value
                for gpu in models
                if workload.demand is not None and (value := _measured(dict(workload.throughput), gpu)) is not None
            },
        )
    return result


# --------------------------------------------------------------------------- pool options


@dataclass(frozen=True)
class PoolOption:
    """One workload on one pool: node shape, replicas and cost per hour."""

    workload: str
    pool: str  # "site/pool"
    site: str
    gpu: str
    generation: str
    instance: str | None
    elastic: bool
    gpus_per_node: int
    pool_nodes: int  # owned or reserved nodes; for elastic pools the most that may be used
    fits: bool  # one replica fits the GPU model and the node shape
    reason: str | None
    allowed: bool  # the workload's placement (sites, avoid, kinds) allows this pool's site
    placement_reason: str | None
    gpus_per_replica: int
    nodes_per_replica: int  # nodes one replica spans (1 when it fits in one node)
    replicas: int
    replicas_measured: bool  # replicas follow from a throughput measurement for this GPU model
    capacity_replicas: int  # replicas the pool holds at most
    memory_per_gpu_gb: float
    headroom_gb: float
    cost_per_gpu_hour: float | None
    cost_per_replica_hour: float | None  # at the per-GPU rate
    total_cost_per_hour: float | None  # cost_per_replica_hour x replicas
    instance_cost_per_hour: float | None  # elastic pools: whole instances of one replica alone
    instances_for_all: int | None  # elastic pools: instances all replicas need, packed together
    instance_total_per_hour: float | None  # instances_for_all x the instance price
    price_origin: str  # catalog | spec | none
    price_as_of: str | None
    arithmetic: tuple[str, ...]
    cheapest: bool = False

    @property
    def billed_per_hour(self) -> float | None:
        """What the workload alone pays per hour: whole instances on elastic pools, GPU hours elsewhere."""
        if self.elastic and self.instance_total_per_hour is not None:
            return self.instance_total_per_hour
        return self.total_cost_per_hour

    @property
    def holds_all_replicas(self) -> bool:
        return self.fits and self.capacity_replicas >= self.replicas

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_replica * self.replicas


def _placement(workload, site) -> str | None:
    placement = workload.placement
    if placement.sites and site.id not in placement.sites:
        return f"placement.sites ({', '.join(placement.sites)}) does not include {site.id}"
    if site.id in placement.avoid:
        return f"placement.avoid lists {site.id}"
    kinds = [str(_value(kind)) for kind in placement.kinds]
    if kinds and str(_value(site.kind)) not in kinds:
        return f"placement.kinds ({', '.join(kinds)}) does not include {_value(site.kind)} ({site.id})"
    return None


def _price_label(pool: ResolvedPool) -> str:
    if pool.price_origin == "none":
        return "no price"
    return f"{pool.price_origin} price" + (f" as of {pool.price_as_of}" if pool.price_as_of else "")


def _option(workload, site, pool: ResolvedPool, sizing: GpuSizing, measured: bool) -> PoolOption:
    steps: list[str] = []
    reasons: list[str] = [sizing.reason] if not sizing.fits and sizing.reason else []
    gpr = sizing.gpus_per_replica
    gpn = pool.gpus_per_node
    nodes = pool.nodes
    where = "at most" if pool.elastic else ""

    if gpr <= gpn:
        nodes_per_replica = 1
        per_node = gpn // gpr
        capacity = nodes * per_node
        steps.append(
            f"node shape: a replica of {_plural(gpr, 'GPU')} fits one {gpn}-GPU node "
            f"({per_node} per node); {_plural(nodes, 'node')}{' ' + where if where else ''} "
            f"-> room for {_plural(capacity, 'replica')}"
        )
    elif gpr % gpn:
        nodes_per_replica = math.ceil(gpr / gpn)
        capacity = 0
        reasons.append(f"{gpr} GPUs per replica are not a whole number of {gpn}-GPU nodes")
        steps.append(
            f"node shape: {gpr} GPUs per replica span more than one {gpn}-GPU node "
            f"and are not a whole number of nodes: does not fit"
        )
    else:
        nodes_per_replica = gpr // gpn
        capacity = nodes // nodes_per_replica
        if nodes_per_replica > nodes:
            reasons.append(
                f"a replica takes {nodes_per_replica} whole {gpn}-GPU nodes; the pool has {_plural(nodes, 'node')}"
                f"{' at most' if pool.elastic else ''}"
            )
            steps.append(
                f"node shape: {gpr} GPUs per replica = ceil({gpr} / {gpn}) = {nodes_per_replica} whole nodes; "
                f"pool has {nodes}{' at most' if pool.elastic else ''}: does not fit"
            )
        else:
            steps.append(
                f"node shape: {gpr} GPUs per replica = ceil({gpr} / {gpn}) = {nodes_per_replica} whole nodes; "
                f"pool has {nodes}{' at most' if pool.elastic else ''} -> room for {_plural(capacity, 'replica')}"
            )

    replicas = sizing.replicas
    if capacity and replicas > capacity:
        steps.append(f"capacity: {_plural(replicas, 'replica')} needed, this pool holds {capacity}; the rest go elsewhere")

    price_label = _price_label(pool)
    rate = pool.cost_per_gpu_hour
    per_replica = total = instance_cost = instance_total = None
    instances_for_all = None
    if rate is None:
        steps.append(f"cost: not known ({pool.site}/{pool.id} has no price)")
    else:
        if pool.instance is not None:
            steps.append(
                f"cost per GPU hour = {pool.instance} {_usd(pool.price_per_node_hour or 0.0)}/h / {gpn} GPUs "
                f"= {_usd(rate)} ({price_label})"
            )
        else:
            steps.append(f"cost per GPU hour = {_usd(rate)} ({price_label})")
        per_replica = gpr * rate
        total = per_replica * replicas
        steps.append(
            f"cost per replica = {_plural(gpr, 'GPU')} x {_usd(rate)} = {_usd(per_replica)}/h; "
            f"x {_plural(replicas, 'replica')} = {_usd(total)}/h"
        )
        if pool.elastic and pool.price_per_node_hour is not None:
            price = pool.price_per_node_hour
            instance_cost = nodes_per_replica * price
            if gpr <= gpn:
                per_instance = gpn // gpr
                instances_for_all = math.ceil(replicas / per_instance)
                packing = f"{per_instance} per instance"
            else:
                instances_for_all = replicas * nodes_per_replica
                packing = f"{nodes_per_replica} instances each"
            instance_total = instances_for_all * price
            steps.append(
                f"billed by the instance: one replica alone pays {_plural(nodes_per_replica, 'instance')} x "
                f"{_usd(price)} = {_usd(instance_cost)}/h; {_plural(replicas, 'replica')}, {packing}: "
                f"{_plural(instances_for_all, 'instance')} x {_usd(price)} = {_usd(instance_total)}/h"
            )

    placement_reason = _placement(workload, site)
    return PoolOption(
        workload=workload.id,
        pool=pool.key,
        site=pool.site,
        gpu=pool.gpu,
        generation=pool.generation,
        instance=pool.instance,
        elastic=pool.elastic,
        gpus_per_node=gpn,
        pool_nodes=nodes,
        fits=not reasons,
        reason="; ".join(reasons) if reasons else None,
        allowed=placement_reason is None,
        placement_reason=placement_reason,
        gpus_per_replica=gpr,
        nodes_per_replica=nodes_per_replica,
        replicas=replicas,
        replicas_measured=measured,
        capacity_replicas=capacity,
        memory_per_gpu_gb=sizing.memory_per_gpu_gb,
        headroom_gb=sizing.headroom_gb,
        cost_per_gpu_hour=rate,
        cost_per_replica_hour=per_replica,
        total_cost_per_hour=total,
        instance_cost_per_hour=instance_cost,
        instances_for_all=instances_for_all,
        instance_total_per_hour=instance_total,
        price_origin=pool.price_origin,
        price_as_of=pool.price_as_of,
        arithmetic=tuple(steps),
    )


def pool_options(spec, catalog: Catalog, sizing: dict[str, WorkloadSizing]) -> list[PoolOption]:
    """Every (workload, pool) pair, workloads and pools in spec order, the cheapest fit marked.

    Pools whose GPU model was not sized for a workload (see ``gpu_ids`` of
    :func:`size_workloads`) are left out. The cheapest option of a workload is
    the fitting, placement-allowed option with the lowest ``billed_per_hour``
    (ties: lower per-GPU total, then pool key), preferring pools with room for
    all replicas when there are any; none is marked when no fitting option
    has a price.
    """
    pools = resolve_pools(spec, catalog)
    sites = {site.id: site for site in spec.sites}
    out: list[PoolOption] = []
    for workload in spec.workloads:
        sized = sizing.get(workload.id)
        if sized is None:
            continue
        by_gpu = sized.by_gpu
        options = [
            _option(workload, sites[pool.site], pool, by_gpu[pool.gpu], pool.gpu in sized.measured)
            for pool in pools if pool.gpu in by_gpu
        ]
        candidates = [o for o in options if o.fits and o.allowed and o.billed_per_hour is not None]
        if any(o.holds_all_replicas for o in candidates):
            candidates = [o for o in candidates if o.holds_all_replicas]
        if candidates:
            best = min(candidates, key=lambda o: (o.billed_per_hour, o.total_cost_per_hour, o.pool))
            options = [replace(o, cheapest=True) if o is best else o for o in options]
        out.extend(options)
    return out
