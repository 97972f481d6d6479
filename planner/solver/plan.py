"""The plan: where every replica runs, what could not be placed and why.

``solve(spec, facts, policy_denials)`` runs admissibility and the MILP and
returns a :class:`Plan`. ``Plan.as_json()`` is byte-identical for the same
inputs: lists are sorted, floats are rounded to 6 places, and nothing that
depends on the clock (solve time) is in it; that lives in ``Plan.stats``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from planner.process import Meanwhile
from planner.solver.admissibility import Admissibility, Reason, admissibility, gc_paused
from planner.solver.model import SolveResult, optimise, pool_prices

__all__ = ["Objective", "Placement", "Plan", "PoolUsage", "Unplaced", "solve"]

DIGITS = 6


def _r(value: float | None) -> float | None:
    if value is None:
        return None
    out = round(float(value), DIGITS)
    return 0.0 if out == 0 else out


@dataclass(frozen=True)
class Placement:
    workload: str
    replica: int  # 1-based, per workload
    site: str
    pool: str  # pool id (unique within its site)
    gpu: str
    gpus: int
    cost_per_hour: float | None  # None for a pool without a price
    nodes: tuple[int, ...]  # node (or instance) numbers within the pool, 1-based

    @property
    def pool_key(self) -> str:
        return f"{self.site}/{self.pool}"

    def as_dict(self) -> dict:
        return {
            "workload": self.workload,
            "replica": self.replica,
            "site": self.site,
            "pool": self.pool,
            "gpu": self.gpu,
            "gpus": self.gpus,
            "cost_per_hour": _r(self.cost_per_hour),
            "nodes": list(self.nodes),
        }


@dataclass(frozen=True)
class Unplaced:
    workload: str
    replicas_unplaced: int
    replicas: int
    reasons: tuple[Reason, ...]
    summary: str

    def as_dict(self) -> dict:
        return {
            "workload": self.workload,
            "replicas_unplaced": self.replicas_unplaced,
            "replicas": self.replicas,
            "reasons": [r.as_dict() for r in self.reasons],
            "summary": self.summary,
        }


@dataclass(frozen=True)
class PoolUsage:
    key: str
    site: str
    pool: str
    gpu: str
    elastic: bool
    gpus_used: int
    capacity_gpus: int
    nodes_used: int
    nodes: int  # owned nodes, or max_nodes of an elastic pool
    gpus_per_node: int
    instances: int | None  # elastic pools: instances paid for
    cost_per_hour: float | None

    def as_dict(self) -> dict:
        out = {
            "gpus_used": self.gpus_used,
            "capacity_gpus": self.capacity_gpus,
            "nodes_used": self.nodes_used,
            "cost_per_hour": _r(self.cost_per_hour),
        }
        if self.elastic:
            out["instances"] = self.instances
        return out


@dataclass(frozen=True)
class Objective:
    kind: str
    value: float
    bound: float
    gap: float
    status: str  # optimal | feasible (a plan and a proven bound, gap not closed) | time-limit | no-solution | error
    solver: str
    time_limit_s: float
    notes: tuple[str, ...] = ()
    unpriced_pools: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        out: dict[str, Any] = {
            "kind": self.kind,
            "value": _r(self.value),
            "bound": _r(self.bound),
            "gap": _r(self.gap),
            "status": self.status,
            "solver": self.solver,
            "time_limit_s": _r(self.time_limit_s),
        }
        if self.notes:
            out["notes"] = list(self.notes)
        if self.unpriced_pools:
            out["unpriced_pools"] = list(self.unpriced_pools)
        return out


@dataclass(frozen=True)
class Plan:
    placements: tuple[Placement, ...]
    unplaced: tuple[Unplaced, ...]
    objective: Objective
    pools: Mapping[str, PoolUsage]
    stats: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # timings: not in as_json
    context: Any = field(default=None, compare=False, repr=False)  # what explain() needs

    @property
    def feasible(self) -> bool:
        """Every replica of every workload is placed."""
        return not self.unplaced

    @property
    def cost_per_hour(self) -> float:
        return sum(u.cost_per_hour or 0.0 for u in self.pools.values())

    def placed(self, workload: str) -> list[Placement]:
        return [p for p in self.placements if p.workload == workload]

    def sites_of(self, workload: str) -> list[str]:
        return sorted({p.site for p in self.placements if p.workload == workload})

    def as_dict(self) -> dict:
        return {
            "placements": [p.as_dict() for p in self.placements],
            "unplaced": [u.as_dict() for u in self.unplaced],
            "objective": self.objective.as_dict(),
            "pools": {key: self.pools[key].as_dict() for key in sorted(self.pools)},
            "totals": {
                "cost_per_hour": _r(self.cost_per_hour),
                "gpus": sum(p.gpus for p in self.placements),
                "replicas_placed": len(self.placements),
                "replicas_unplaced": sum(u.replicas_unplaced for u in self.unplaced),
            },
        }

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def summary(self, workload: str) -> str:
        from planner.solver.explain import summary

        return summary(self, workload)

    def explain(self, workload: str) -> str:
        from planner.solver.explain import explain

        return explain(self, workload)

    def remedies(self, workload: str) -> list[str]:
        from planner.solver.explain import remedies

        return remedies(self, workload)


@dataclass(frozen=True)
class Context:
    spec: Any
    facts: Any
    admissibility: Admissibility
    result: SolveResult
    cost_per_gpu: Mapping[str, float]
    free: Mapping[str, "PoolFree"]
    site_room: dict = field(default_factory=dict, compare=False, repr=False)  # cache per admissibility class
    index: dict = field(default_factory=dict, compare=False, repr=False)  # lookups for explanations, built once


@dataclass(frozen=True)
class PoolFree:
    """Room left in a pool after the plan."""

    gpus: int  # free GPUs (elastic: in paid instances plus instances not bought)
    per_node: tuple[int, ...]  # free GPUs on each used node that holds no whole-node replica
    idle_nodes: int  # nodes (instances) with nothing on them
    gpus_per_node: int
    _rooms: dict = field(default_factory=dict, compare=False, repr=False)

    def room(self, gpus: int, nodes_per_replica: int) -> int:
        """How many more replicas of this shape fit."""
        key = (gpus, nodes_per_replica)
        if key not in self._rooms:
            if nodes_per_replica:
                self._rooms[key] = self.idle_nodes // nodes_per_replica
            else:
                self._rooms[key] = sum(f // gpus for f in self.per_node) + self.idle_nodes * (self.gpus_per_node // gpus)
        return self._rooms[key]


def _free(facts, result: SolveResult) -> dict[str, PoolFree]:
    out = {}
    for p in facts.pools:
        nodes = result.layout.get(p.key, [])
        per_node = []
        for content in nodes:
            if any(x > p.gpus_per_node for _, x in content):
                continue  # part of a whole-node replica
            per_node.append(p.gpus_per_node - sum(x for _, x in content))
        idle = max(p.nodes - len(nodes), 0)
        out[p.key] = PoolFree(
            gpus=sum(per_node) + idle * p.gpus_per_node,
            per_node=tuple(per_node),
            idle_nodes=idle,
            gpus_per_node=p.gpus_per_node,
        )
    return out


def _capacity_reasons(ctx: Context, workload: str, missing: int) -> list[Reason]:
    wa = ctx.admissibility.workloads[workload]
    result = ctx.result
    out: list[Reason] = []
    if workload in result.ha_blocked:
        for site in wa.admissible_sites:
            out.append(
                Reason(
                    site,
                    "ha-spread",
                    f"criticality high needs replicas on at least 2 sites; only {site} is admissible",
                )
            )
        return out
    cached = ctx.site_room.get(wa.class_id)
    if cached is None:  # workloads of one class share candidates: compute per class once
        by_site: dict[str, list] = {}
        for c in wa.candidates:
            by_site.setdefault(c.site, []).append(c)
        rooms = {site: sum(ctx.free[c.pool].room(c.gpus, c.nodes_per_replica) for c in cs) for site, cs in by_site.items()}
        cached = ctx.site_room[wa.class_id] = (by_site, rooms)
    by_site, rooms = cached
    spec_w = ctx.facts.index["workload"][workload]
    fully = missing >= wa.replicas
    ha = spec_w.criticality.value == "high" and wa.replicas >= 2
    with_room = [s for s in wa.admissible_sites if rooms.get(s, 0) > 0]
    for site, cs in by_site.items():
        room = rooms[site]
        pool_id = cs[0].pool.split("/", 1)[1] if len(cs) == 1 else None
        if ha and fully and room > 0:
            names = ", ".join(with_room)
            verb = "has" if len(with_room) == 1 else "have"
            message = f"criticality high needs replicas on at least 2 sites; only {names} {verb} room"
            out.append(Reason(site, "ha-spread", message, pool=pool_id))
            continue
        free_gpus = sum(ctx.free[c.pool].gpus for c in cs)
        g = min(c.gpus for c in cs)
        if all(c.nodes_per_replica for c in cs):
            k = min(c.nodes_per_replica for c in cs)
            message = f"needs {missing} x {k} whole nodes, {sum(ctx.free[c.pool].idle_nodes for c in cs)} free"
        elif room < missing and free_gpus >= missing * g:
            message = f"needs {missing} x {g} GPUs on one node each; {free_gpus} GPUs free but room for {room}"
        elif room < missing:
            message = f"needs {missing * g} GPUs, {free_gpus} free"
        else:
            message = f"needs {missing * g} GPUs, {free_gpus} free; not placed by the solver ({result.status})"
        out.append(Reason(site, "capacity", message, pool=pool_id))
    return out


def solve(
    spec,
    facts,
    policy_denials: Mapping[str, Mapping[str, Sequence[tuple[str, str]]]] | None = None,
    adm: Admissibility | None = None,
    sizing=None,
    meanwhile: Callable[[], object] | None = None,
) -> Plan:
    """Place every workload's replicas; see :mod:`planner.solver.model` for the formulation.

    ``adm`` may pass the admissibility already decided for these denials,
    ``sizing`` the workloads' sizing (:func:`~planner.solver.admissibility.size_workloads_for`).
    ``meanwhile()`` is Python work that does not need the plan: it runs in a
    thread while HiGHS solves the first LP or MILP, which lets go of the GIL
    (or here, if HiGHS is not run), and has ended when this returns."""
    beside = Meanwhile(meanwhile)
    try:
        with gc_paused():
            planned = _solve(spec, facts, adm or admissibility(spec, facts, policy_denials, sizing), beside)
    except BaseException:
        beside.join()
        raise
    beside.end()
    return planned


def _solve(spec, facts, adm: Admissibility, beside: Meanwhile | None = None) -> Plan:
    result = optimise(spec, facts, adm, beside)
    cost_per_gpu, imputed = pool_prices(facts)
    pools = {p.key: p for p in facts.pools}
    pool_order = {p.key: n for n, p in enumerate(facts.pools)}

    usage: dict[str, PoolUsage] = {}
    gpus_used: dict[str, int] = {}
    cand = {k: result.candidates.get(k) or adm.workloads[k[0]].candidate(k[1]) for k in result.x}
    for (w, key), n in result.x.items():
        gpus_used[key] = gpus_used.get(key, 0) + n * cand[(w, key)].gpus
    for p in facts.pools:
        used = gpus_used.get(p.key, 0)
        priced = p.cost_per_gpu_hour is not None
        if p.elastic:
            instances = result.instances.get(p.key, 0)
            cost = instances * p.gpus_per_node * p.cost_per_gpu_hour if priced else None
        else:
            instances = None
            cost = used * p.cost_per_gpu_hour if priced else None
        usage[p.key] = PoolUsage(
            key=p.key,
            site=p.site,
            pool=p.id,
            gpu=p.gpu,
            elastic=p.elastic,
            gpus_used=used,
            capacity_gpus=p.capacity_gpus,
            nodes_used=result.nodes_used.get(p.key, 0),
            nodes=p.nodes,
            gpus_per_node=p.gpus_per_node,
            instances=instances,
            cost_per_hour=cost,
        )

    placements: list[Placement] = []
    keys_of: dict[str, list[tuple[str, str]]] = {}
    for k in result.x:
        keys_of.setdefault(k[0], []).append(k)
    for w in spec.workloads:
        keys = sorted(keys_of.get(w.id, []), key=lambda k: pool_order[k[1]])
        number = 0
        for key in keys:
            p = pools[key[1]]
            c = cand[key]
            spans = sorted(result.replica_nodes.get(key, []))
            u = usage[key[1]]
            for span in spans:
                number += 1
                if u.cost_per_hour is None:
                    cost = None
                elif p.elastic:
                    cost = u.cost_per_hour * c.gpus / u.gpus_used if u.gpus_used else 0.0
                else:
                    cost = c.gpus * p.cost_per_gpu_hour
                placements.append(Placement(w.id, number, p.site, p.id, p.gpu, c.gpus, cost, tuple(span)))
    placements.sort(key=lambda p: (p.workload, p.replica))

    ctx = Context(spec, facts, adm, result, cost_per_gpu, _free(facts, result))
    objective = Objective(
        kind=spec.objective.minimize.value,
        value=result.value,
        bound=result.bound,
        gap=result.gap,
        status=result.status,
        solver=result.solver,
        time_limit_s=float(spec.objective.time_limit_s),
        notes=tuple(result.notes),
        unpriced_pools=tuple(sorted(k for k in pools if pools[k].cost_per_gpu_hour is None)),
    )
    plan = Plan(
        placements=tuple(placements),
        unplaced=(),
        objective=objective,
        pools=usage,
        stats={
            "seconds": result.seconds,
            "variables": result.variables,
            "constraints": result.constraints,
            "pairs": adm.pair_count,
            "workload_classes": len(adm.classes),
            "phases": [vars(p) for p in result.phases],
            "imputed_prices": dict(imputed),
        },
        context=ctx,
    )
    unplaced: list[Unplaced] = []
    from planner.solver.explain import summary

    for w in sorted(result.unplaced):
        missing = result.unplaced[w]
        wa = adm.workloads[w]
        reasons = [r for site in adm.sites for r in wa.site_reasons.get(site, ())]
        reasons += _capacity_reasons(ctx, w, missing)
        reasons = sorted(set(reasons), key=Reason.sort_key)
        unplaced.append(Unplaced(w, missing, wa.replicas, tuple(reasons), ""))
    plan = _with_unplaced(plan, unplaced)
    unplaced = [Unplaced(u.workload, u.replicas_unplaced, u.replicas, u.reasons, summary(plan, u.workload)) for u in unplaced]
    return _with_unplaced(plan, unplaced)


def _with_unplaced(plan: Plan, unplaced: list[Unplaced]) -> Plan:
    return Plan(plan.placements, tuple(unplaced), plan.objective, plan.pools, plan.stats, plan.context)

