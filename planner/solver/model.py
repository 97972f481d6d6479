"""The placement MILP, solved exactly with HiGHS.

Variables (integer unless noted; only admissible pairs are built):

- ``x[w,p]``  replicas of workload ``w`` on pool ``p``. Identical replicas of a
  workload are one integer count, never one boolean per replica.
- ``u[w]``    replicas of ``w`` left unplaced.
- ``y[p]``    instances bought in an elastic pool (``0..max_nodes``).
- ``m[p,k]``  nodes of pool ``p`` filled with pattern ``k`` (only for pools
  whose replica sizes need the pattern node model, see "Node shape").
- ``k[w]``, ``t[w]`` for ``criticality: high`` workloads with two or more
  replicas: ``k`` = placed at all (0/1; members placed for pooled units, see
  "Scale"), ``t`` = replicas placed.

Constraints:

- cover: ``sum_p a[w,p] x[w,p] + u[w] = R[w]`` (``a = 1``). When sizing gives
  different replica counts per GPU model (demand / measured throughput),
  ``a[w,p] = R[w] / R[w,gpu(p)]`` and the row is ``>=``: each replica covers
  its share of the demand.
- node shape, per pool (``N`` = nodes of an owned pool; ``y[p]`` for an
  elastic pool): a replica of ``g > G`` GPUs (``G`` = GPUs per node) takes
  ``k = ceil(g/G)`` whole nodes of its own; smaller replicas never straddle
  nodes. Owned GPU capacity follows from it.
- HA spread: ``t[w] = sum_p x[w,p]``, ``2 k[w] <= t[w] <= R k[w]`` and, for
  every admissible site ``s``, ``sum_{p at s} x[w,p] <= t[w] - k[w]``: with
  ``k = 1`` no single site holds all placed replicas, so a high-criticality workload runs on at
  least two sites or not at all (then it is reported unplaced with ``ha-spread``); it
  never silently runs on one site.

Node shape. Replicas smaller than a node must not be split across nodes, so
summing GPUs per pool is not enough (two 3-GPU replicas and one 4-GPU replica
do not fit 2 x 5-GPU nodes although 10 <= 10). Per pool, over the distinct
replica sizes ``s_1 < ... < s_k <= G`` that may land there:

- *divisible*: when each size divides the next and ``s_k`` divides ``G``
  (the usual 1/2/4/8 GPUs on 8-GPU nodes), one row is exact:
  ``sum_small g x + G sum_whole k x <= G N``. Packing in decreasing size
  order keeps every node's free space a multiple of the current size, so the
  small replicas need exactly ``ceil(volume / G)`` nodes, and for integers
  ``ceil(v / G) <= N - sum k x`` is the same as ``v <= G (N - sum k x)``.
- *patterns*: otherwise, every maximal way to fill one node (a count per
  size) is a pattern; ``m[p,k]`` nodes use pattern ``k`` and
  ``sum_{w: g=s} x[w,p] <= sum_k c[k,s] m[p,k]`` per size. Any real packing
  fills each node with a sub-pattern of a maximal one and vice versa, so this
  is exact; ``sum_k m[p,k] + sum_whole k x <= N``. At most ``MAX_PATTERNS``
  patterns per pool.
- *rounded*: past that limit sizes are rounded up to a divisor chain of ``G``
  (1, 2, 4, 8, 24, 72 for 72-GPU nodes) and the divisible model applies: a
  safe bound (every plan found packs), possibly wasting GPUs. Plans say so in
  ``objective.notes``.

After the solve every replica is packed onto numbered nodes, so the plan
shows node assignments that a reader can check.

Scale. Workloads with the same admissible pools (and GPUs, replicas and node
shape there: ``CandidateArrays.shape``; for the latency objective also the
same input sites), the same criticality and one replica count on every GPU
model are pooled into one unit (their replicas summed; HA units get ``k`` =
members placed, ``2k <= t <= R k`` and ``sum_{p at s} x <= t - k``) and
dealt back to members after the solve, so 5,000 workloads from a few dozen
templates are a few dozen units. Pairs that admissibility rejected are never
built. HiGHS starts from a feasible plan: the LP relaxation's placement
rounded down, completed greedily (critical and small replicas first) and
packed on real nodes; a time limit therefore never returns less than that
start.

Past ``EXACT_PAIRS`` (unit, pool) pairs this lexicographic MILP is not built:
:mod:`planner.solver.relaxation` solves the LP relaxation by column
generation for the bound and rounds and repairs its solution into the plan
(the same units, with each HA workload a unit of its own), which takes
seconds where branch-and-bound would not close the gap in minutes; it runs
branch-and-bound only when rounding leaves more than 1 % on a model of
moderate size.

Objective, lexicographic, one HiGHS solve per level, each level fixing the
one before it (warm-started from the previous solution):

1. unplaced replicas, weighted by criticality (high 4, medium 2, low 1);
2. the spec's objective: ``cost`` (owned: GPUs used x cost per GPU hour;
   elastic: instances x instance price, whole instances are paid),
   ``gpus`` (GPUs allocated) or ``latency`` (replicas x summed latency to
   their inputs). Its value, HiGHS's proven bound (``mip_dual_bound``) and gap
   are what the plan reports;
3. cost, when the objective is not cost;
4. ``prefer_kinds`` rank, then pool order (deterministic tie-break).

Unpriced pools: an owned pool without ``cost_per_gpu_hour`` costs 0 (the
hardware is paid for); a cloud pool without a price is charged the highest
known per-GPU price, so an unknown price never looks cheap.
HiGHS runs with one thread and a fixed seed; the same model gives the same
plan (unless a time limit cuts a level short).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from planner.process import Meanwhile
from planner.solver.admissibility import Admissibility, Candidate, CandidateArrays, WorkloadAdmissibility

__all__ = ["EXACT_PAIRS", "MAX_PATTERNS", "NodeModel", "SolveResult", "node_model", "optimise"]

MAX_PATTERNS = 400
UNPLACED_WEIGHT = {"high": 4.0, "medium": 2.0, "low": 1.0}
MIP_REL_GAP = 1e-4  # the spec's objective (and cost as its tie-break) are solved to this gap
# Placement counts (level 1) and the pool-order tie-break are looser: their objectives are
# integral counts where 1e-3 is a handful of replicas, and proving the last one can cost
# HiGHS seconds of root separation that the spec's objective needs more.
LEVEL_GAP = {"unplaced": 1e-3, "objective": MIP_REL_GAP, "cost": MIP_REL_GAP, "order": 1e-3}
EXACT_PAIRS = 4000  # (unit, pool) pairs up to which the MILP runs; larger models go to .relaxation
MIN_OBJECTIVE_SHARE = 0.2  # the spec's objective always gets this share of the time limit
RANDOM_SEED = 20240917


def _highs():
    """A silent HiGHS instance (the Python wrapper prints a banner to stdout)."""
    import highspy

    core = getattr(highspy, "_core", None)
    cls = getattr(core, "_Highs", None) or highspy.Highs
    h = cls()
    h.setOptionValue("output_flag", False)
    return h, highspy


def highs_version() -> str:
    h, _ = _highs()
    return h.version()


# --------------------------------------------------------------------------- node models


@dataclass(frozen=True)
class NodeModel:
    """How replicas smaller than a node are packed in one pool."""

    mode: str  # none | divisible | patterns | rounded
    sizes: tuple[int, ...] = ()  # distinct small replica sizes (ascending)
    rounded: dict[int, int] = field(default_factory=dict)  # size -> size charged (rounded mode)
    patterns: tuple[tuple[int, ...], ...] = ()  # counts per size, same order as sizes

    @property
    def exact(self) -> bool:
        return self.mode != "rounded"

    def charged(self, size: int) -> int:
        return self.rounded.get(size, size)


def _divisible(sizes: list[int], per_node: int) -> bool:
    chain = sorted(sizes) + [per_node]
    return all(b % a == 0 for a, b in zip(chain, chain[1:]))


def _patterns(sizes: list[int], per_node: int, limit: int) -> list[tuple[int, ...]] | None:
    """Maximal node fillings (counts per size, ``sizes`` ascending); None past ``limit``."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    smallest = min(sizes)
    out: list[tuple[int, ...]] = []
    counts = [0] * len(sizes)

    def rec(pos: int, free: int) -> bool:
        if pos == len(order):
            if free < smallest:  # maximal: nothing else fits
                out.append(tuple(counts))
            elif all(sizes[i] > free for i in range(len(sizes))):
                out.append(tuple(counts))
            return len(out) <= limit
        i = order[pos]
        for c in range(free // sizes[i], -1, -1):
            counts[i] = c
            if not rec(pos + 1, free - c * sizes[i]):
                return False
        counts[i] = 0
        return True

    if not rec(0, per_node):
        return None
    return sorted(set(out), reverse=True)


def _divisor_chain(per_node: int) -> list[int]:
    chain = [1]
    while chain[-1] < per_node:
        current = chain[-1]
        chain.append(next(d for d in range(current + 1, per_node + 1) if d % current == 0 and per_node % d == 0))
    return chain


def node_model(sizes: list[int], per_node: int, limit: int = MAX_PATTERNS) -> NodeModel:
    sizes = sorted(set(s for s in sizes if s <= per_node))
    if not sizes:
        return NodeModel("none")
    if _divisible(sizes, per_node):
        return NodeModel("divisible", tuple(sizes))
    patterns = _patterns(sizes, per_node, limit)
    if patterns is not None:
        return NodeModel("patterns", tuple(sizes), patterns=tuple(patterns))
    chain = _divisor_chain(per_node)
    rounded = {s: next(c for c in chain if c >= s) for s in sizes}
    return NodeModel("rounded", tuple(sizes), rounded=rounded)


# --------------------------------------------------------------------------- model


class _Lp:
    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.names: list[str] = []
        self.rows: list[tuple[float, float, list[int], list[float]]] = []

    def col(self, name: str, lb: float, ub: float) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.names.append(name)
        return len(self.lb) - 1

    def row(self, lb: float, ub: float, idx: list[int], val: list[float]) -> None:
        self.rows.append((lb, ub, idx, val))


@dataclass
class Phase:
    name: str
    status: str  # optimal | time-limit | no-solution | error | skipped
    value: float | None
    bound: float | None
    gap: float | None
    seconds: float


@dataclass
class SolveResult:
    x: dict[tuple[str, str], int]  # (workload, pool key) -> replicas
    unplaced: dict[str, int]  # workload -> replicas unplaced (only > 0)
    ha_blocked: dict[str, tuple[str, ...]]  # HA workloads with < 2 admissible sites -> those sites
    layout: dict[str, list[list[tuple[str, int]]]]  # pool -> nodes -> [(workload, replica slot id)]
    replica_nodes: dict[tuple[str, str], list[list[int]]]  # (workload, pool) -> per replica its node numbers
    instances: dict[str, int]  # elastic pools -> instances used
    nodes_used: dict[str, int]
    node_models: dict[str, NodeModel]
    phases: list[Phase]
    status: str
    value: float
    bound: float
    gap: float
    solver: str
    variables: int
    constraints: int
    seconds: float
    imputed: dict[str, float]  # unpriced cloud pools -> price per GPU hour used
    notes: list[str]
    candidates: dict[tuple[str, str], Candidate] = field(default_factory=dict)  # the placed (workload, pool) pairs


def pool_prices(facts) -> tuple[dict[str, float], dict[str, float]]:
    """Per pool: cost per GPU hour used by the model, and the imputed ones."""
    known = [p.cost_per_gpu_hour for p in facts.pools if p.cost_per_gpu_hour is not None]
    fallback = max(known) if known else 1.0
    cost: dict[str, float] = {}
    imputed: dict[str, float] = {}
    for p in facts.pools:
        if p.cost_per_gpu_hour is not None:
            cost[p.key] = p.cost_per_gpu_hour
        elif p.instance is not None:
            cost[p.key] = fallback
            imputed[p.key] = fallback
        else:
            cost[p.key] = 0.0
    return cost, imputed


def _ha(spec_workload, replicas: int) -> bool:
    return spec_workload.criticality.value == "high" and replicas >= 2


@dataclass
class _Unit:
    """What the model places: one workload, or interchangeable workloads pooled together."""

    id: str
    members: list[tuple[str, int]]  # (workload, replicas) in spec order
    replicas: int
    arrays: CandidateArrays  # admissible pools (shared by the members)
    ha: bool
    uniform: bool
    weight: float
    per_member: int  # replicas of each member (members of a unit agree)
    admissibility: WorkloadAdmissibility  # of the first member
    candidates: list[tuple[Candidate, int]] = field(default_factory=list)  # (candidate, upper bound of x); exact model


def _units(
    spec, adm: Admissibility, kind: str, pool_ha: bool = True
) -> tuple[list[_Unit], dict[str, int], dict[str, tuple[str, ...]]]:
    """Model units; workloads with nothing admissible (or HA with one site) are unplaced up front.

    Workloads with the same admissible pools, GPUs, replicas and node shape
    there (the same ``CandidateArrays.shape``; for the latency objective also
    the same input sites), the same criticality and one replica count on
    every GPU model are interchangeable: they become one unit whose replicas
    are the members' sum, split back after the solve. Exact: any per-pool
    counts can be dealt out to the members, and for HA units the spread rows
    on the pooled counts are exactly what a dealing with every member on two
    sites needs (see :func:`_deal_ha`). With ``pool_ha`` false every HA
    workload is a unit of its own.
    """
    unplaced: dict[str, int] = {}
    ha_blocked: dict[str, tuple[str, ...]] = {}
    units: list[_Unit] = []
    groups: dict[tuple, _Unit] = {}
    uniform_of: dict[tuple[int, int], bool] = {}
    two_sites: dict[int, bool] = {}  # per shape: pools on two sites or more
    for w in spec.workloads:
        wa = adm.workloads[w.id]
        arrays = wa.arrays
        if not len(arrays):
            unplaced[w.id] = wa.replicas
            continue
        ha = _ha(w, wa.replicas)
        if ha and arrays.shape not in two_sites:
            two_sites[arrays.shape] = len(wa.admissible_sites) >= 2
        if ha and not two_sites[arrays.shape]:
            ha_blocked[w.id] = wa.admissible_sites
            unplaced[w.id] = wa.replicas
            continue
        uniform = uniform_of.get((arrays.shape, wa.replicas))
        if uniform is None:
            uniform = uniform_of[(arrays.shape, wa.replicas)] = bool(np.all(arrays.replicas == wa.replicas))
        weight = UNPLACED_WEIGHT.get(w.criticality.value, 1.0)
        key = None
        if uniform and (pool_ha or not ha):
            key = (arrays.shape, arrays.inputs if kind == "latency" else -1, w.criticality.value, wa.replicas)
            unit = groups.get(key)
            if unit is not None:
                unit.members.append((w.id, wa.replicas))
                unit.replicas += wa.replicas
                continue
        unit = _Unit(w.id, [(w.id, wa.replicas)], wa.replicas, arrays, ha, uniform, weight, wa.replicas, wa)
        units.append(unit)
        if key is not None:
            groups[key] = unit
    return units, unplaced, ha_blocked


def _with_candidates(units: list[_Unit], pools) -> tuple[list[_Unit], dict[str, int]]:
    """Fill every unit's (candidate, upper bound) list; units left with none are unplaced."""
    unplaced: dict[str, int] = {}
    for unit in units:
        for c in unit.admissibility.candidates:
            p = pools[c.pool]
            cap = p.nodes // c.nodes_per_replica if c.nodes_per_replica else p.nodes * (p.gpus_per_node // c.gpus)
            ub = min(unit.replicas if unit.uniform else c.replicas, cap)
            if ub > 0:
                unit.candidates.append((c, ub))
        if not unit.candidates:
            for w_id, r in unit.members:
                unplaced[w_id] = r
    return [u for u in units if u.candidates], unplaced


class _PoolState:
    """Nodes of one pool during the greedy start: free GPUs per opened node."""

    def __init__(self, pool, nm: NodeModel) -> None:
        self.G = pool.gpus_per_node
        self.N = pool.nodes
        self.nm = nm
        self.free: list[int] = []
        self.content: list[list[int]] = []  # sizes on each node; [-1] for a whole-node replica

    def _charge(self, gpus: int) -> int:
        return gpus if self.nm.mode == "patterns" else self.nm.charged(gpus)

    def place(self, gpus: int, nodes_per_replica: int) -> list[int] | None:
        """Put one replica on nodes; the node indices, or None when it does not fit."""
        if nodes_per_replica:
            empty = [i for i, c in enumerate(self.content) if not c][:nodes_per_replica]
            if len(self.free) + nodes_per_replica - len(empty) > self.N:
                return None
            while len(empty) < nodes_per_replica:
                self.free.append(self.G)
                self.content.append([])
                empty.append(len(self.free) - 1)
            for i in empty:
                self.free[i] = 0
                self.content[i] = [-1]
            return empty
        charge = self._charge(gpus)
        for i, f in enumerate(self.free):
            if f >= charge and self.content[i] != [-1]:
                self.free[i] -= charge
                self.content[i].append(gpus)
                return [i]
        if len(self.free) < self.N:
            self.free.append(self.G - charge)
            self.content.append([gpus])
            return [len(self.free) - 1]
        return None

    def remove(self, gpus: int, nodes: list[int]) -> None:
        for i in nodes:
            if self.content[i] == [-1]:
                self.free[i] = self.G
                self.content[i] = []
            else:
                self.free[i] += self._charge(gpus)
                self.content[i].remove(gpus)

    def used(self) -> int:
        return sum(1 for c in self.content if c)

    def pattern_counts(self) -> list[int]:
        counts = [0] * len(self.nm.patterns)
        for content in self.content:
            if content == [-1] or not content:
                continue
            need = [content.count(s) for s in self.nm.sizes]
            k = next(i for i, pat in enumerate(self.nm.patterns) if all(a <= b for a, b in zip(need, pat)))
            counts[k] += 1
        return counts


def _greedy(units, pools, models, rank_key, hint=None):
    """A quick feasible placement to start HiGHS from.

    First every unit takes the whole part of the LP relaxation's placement
    (``hint``); then, most critical and smallest replicas first (the first
    level counts unplaced replicas), every missing replica goes on the
    best-ranked pool with room, HA groups capped at ``n (R - 1)`` replicas per
    site; HA units are then repaired until their spread rows hold.
    Returns (x per (unit, pool), pool states, members placed per HA unit).
    """
    states = {key: _PoolState(pools[key], models[key]) for key in models}
    hint = hint or {}
    order = sorted(units, key=lambda u: (-u.weight, min(c.gpus for c, _ in u.candidates), u.id))
    ranked = {u.id: sorted(u.candidates, key=lambda cu, ref=u.replicas: rank_key(cu[0], ref)) for u in units}
    tokens: dict[str, list[tuple[Candidate, list[int]]]] = {u.id: [] for u in units}

    def share(unit, c) -> float:
        return 1.0 if unit.uniform else unit.replicas / c.replicas

    for unit in order:
        have = 0.0
        for c, ub in ranked[unit.id]:
            for _ in range(min(int(math.floor(hint.get((unit.id, c.pool), 0.0) + 1e-6)), ub)):
                if have >= unit.replicas - 1e-9:
                    break
                nodes = states[c.pool].place(c.gpus, c.nodes_per_replica)
                if nodes is None:
                    break
                tokens[unit.id].append((c, nodes))
                have += share(unit, c)
    members_placed: dict[str, int] = {}
    for unit in order:
        have = sum(share(unit, c) for c, _ in tokens[unit.id])
        counts = {c.pool: 0 for c, _ in ranked[unit.id]}
        for c, _ in tokens[unit.id]:
            counts[c.pool] += 1
        at_site: dict[str, int] = {}
        for c, _ in tokens[unit.id]:
            at_site[c.site] = at_site.get(c.site, 0) + 1
        n = len(unit.members)
        site_cap = n * (unit.per_member - 1) if unit.ha and unit.uniform else None
        while have < unit.replicas - 1e-9:
            options = ranked[unit.id]
            if unit.ha and site_cap is None and len(at_site) == 1:
                options = [cu for cu in options if cu[0].site not in at_site] or options
            for c, ub in options:
                if counts[c.pool] >= ub or (site_cap is not None and at_site.get(c.site, 0) >= site_cap):
                    continue
                nodes = states[c.pool].place(c.gpus, c.nodes_per_replica)
                if nodes is not None:
                    tokens[unit.id].append((c, nodes))
                    counts[c.pool] += 1
                    at_site[c.site] = at_site.get(c.site, 0) + 1
                    have += share(unit, c)
                    break
            else:
                break
        if unit.ha:
            members_placed[unit.id] = _repair_ha(unit, tokens[unit.id], states)
    placed_k = members_placed
    placed: dict[tuple[str, str], int] = {}
    for unit in units:
        for c, _ in tokens[unit.id]:
            placed[(unit.id, c.pool)] = placed.get((unit.id, c.pool), 0) + 1
    return placed, states, placed_k


def _deal_ha(unit, counts: list[tuple[Candidate, int]], k: int):
    """Deal an HA unit's pooled replicas to its members, each placed member on two sites or more.

    The first ``k`` members (spec order) are placed; with ``P = q k + r``
    replicas, members ``0..r-1`` get ``q + 1`` and the others ``q``. Replica
    slots are listed site by site, the site with most replicas first, and slot
    ``j`` goes to member ``j mod k``. No member ends on one site when the
    unit's rows hold (``2k <= P <= R k``, every site ``C_s <= P - k``): its
    slots span ``(p_i - 1) k + 1 >= k + 1`` positions starting before ``k``,
    so only the first site's block could hold them all, and that block ends
    before ``(q - 1) k + r``, short of member ``i``'s last slot in both cases.
    Returns ((member, pool) -> (candidate, n), member -> unplaced, replicas not dealt).
    """
    total = sum(n for _, n in counts)
    missing = {w_id: r for w_id, r in unit.members}
    k = min(k, len(unit.members), total // 2)
    if total == 0 or k == 0:
        return {}, missing, total
    by_site: dict[str, list[tuple[Candidate, int]]] = {}
    for c, n in counts:
        by_site.setdefault(c.site, []).append((c, n))
    first = {site: n for n, site in enumerate(by_site)}
    order = sorted(by_site, key=lambda site: (-sum(n for _, n in by_site[site]), first[site]))
    slots = [c for site in order for c, n in by_site[site] for _ in range(n)]
    share = [total // k + (1 if i < total % k else 0) for i in range(k)]
    dealt: dict[tuple[str, str], tuple[Candidate, int]] = {}
    for j, c in enumerate(slots):
        w_id = unit.members[j % k][0]
        old = dealt.get((w_id, c.pool), (c, 0))[1]
        dealt[(w_id, c.pool)] = (c, old + 1)
    for i in range(k):
        missing[unit.members[i][0]] -= share[i]
    # a dealing that leaves a member on one site means the rows did not hold: drop that member
    dropped = 0
    for i in range(k):
        w_id = unit.members[i][0]
        mine = [key for key in dealt if key[0] == w_id]
        if len({dealt[key][0].site for key in mine}) < 2:
            for key in mine:
                dropped += dealt.pop(key)[1]
            missing[w_id] = unit.members[i][1]
    return dealt, missing, dropped


def _ha_members(unit, t: int, largest: int) -> int | None:
    """Members an HA unit's ``t`` replicas (``largest`` on one site) can be dealt to, or None."""
    if t == 0:
        return 0
    n = len(unit.members)
    low = -(-t // unit.per_member) if unit.uniform else 1
    high = min(n, t // 2, t - largest)
    return high if high >= low else None


def _repair_ha(unit, tokens: list, states) -> int:
    """Drop replicas from the busiest site until the HA spread rows hold; members placed."""
    while True:
        at_site: dict[str, int] = {}
        for c, _ in tokens:
            at_site[c.site] = at_site.get(c.site, 0) + 1
        largest = max(at_site.values(), default=0)
        k = _ha_members(unit, len(tokens), largest)
        if k is not None:
            return k
        busiest = min(s for s, n in at_site.items() if n == largest)
        i = max(i for i, (c, _) in enumerate(tokens) if c.site == busiest)
        c, nodes = tokens.pop(i)
        states[c.pool].remove(c.gpus, nodes)


def _relaxation(h, highspy, lp: _Lp, costs: np.ndarray, seconds: float) -> np.ndarray | None:
    """The LP relaxation's solution (used to steer the greedy start), or None."""
    _pass_model(h, highspy, lp, integer=False)
    h.changeColsCost(len(costs), np.arange(len(costs), dtype=np.int32), costs)
    h.setOptionValue("time_limit", max(seconds, 0.01))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.array(h.getSolution().col_value)


def optimise(spec, facts, adm: Admissibility, beside: Meanwhile | None = None) -> SolveResult:
    """The plan for ``adm``: the exact MILP when the model is small, else :mod:`.relaxation`.
    ``beside`` is started as HiGHS starts its main solve (see :func:`~planner.solver.solve`)."""
    started = time.perf_counter()
    kind = spec.objective.minimize.value
    units, unplaced_fixed, ha_blocked = _units(spec, adm, kind, pool_ha=False)
    if sum(len(u.arrays) for u in units) > EXACT_PAIRS:
        from planner.solver.relaxation import optimise_large

        return optimise_large(spec, facts, adm, started, units, unplaced_fixed, ha_blocked, beside)
    return _optimise_exact(spec, facts, *_units(spec, adm, kind), started, beside)


def _optimise_exact(spec, facts, units, unplaced_fixed, ha_blocked, started, beside: Meanwhile | None = None) -> SolveResult:
    objective = spec.objective
    kind = objective.minimize.value
    time_limit = float(objective.time_limit_s)
    pools = {p.key: p for p in facts.pools}
    pool_index = {p.key: n for n, p in enumerate(facts.pools)}
    site_kind = {s.id: s.kind.value for s in spec.sites}
    prefer = [k.value for k in objective.prefer_kinds]
    rank = {k: prefer.index(k) if k in prefer else len(prefer) for k in ("on-prem", "colocation", "cloud")}
    cost_per_gpu, imputed = pool_prices(facts)
    notes: list[str] = []

    units, more_unplaced = _with_candidates(units, pools)
    unplaced_fixed = {**unplaced_fixed, **more_unplaced}
    lp = _Lp()
    xcol: dict[tuple[str, str], int] = {}
    cand_of: dict[tuple[str, str], Candidate] = {}
    ucol: dict[str, int] = {}
    by_pool: dict[str, list[tuple[str, Candidate]]] = {}
    for unit in units:
        for c, ub in unit.candidates:
            xcol[(unit.id, c.pool)] = lp.col(f"x[{unit.id},{c.pool}]", 0, ub)
            cand_of[(unit.id, c.pool)] = c
            by_pool.setdefault(c.pool, []).append((unit.id, c))

    # cover rows and HA rows
    ha_cols: dict[str, tuple[int, int]] = {}  # unit -> (k, t)
    for unit in units:
        cols = [(xcol[(unit.id, c.pool)], c) for c, _ in unit.candidates]
        ref = unit.replicas
        u = lp.col(f"u[{unit.id}]", 0, ref)
        ucol[unit.id] = u
        idx = [j for j, _ in cols] + [u]
        val = [1.0 if unit.uniform else ref / c.replicas for _, c in cols] + [1.0]
        lp.row(ref, ref if unit.uniform else math.inf, idx, val)
        if unit.ha:
            # k = members placed, t = replicas placed: 2k <= t <= R k, and for every site
            # sum_{p at s} x <= t - k: no single site holds all of any member's replicas.
            n = len(unit.members)
            k = lp.col(f"k[{unit.id}]", 0, n)
            t = lp.col(f"t[{unit.id}]", 0, sum(lp.ub[j] for j, _ in cols))
            lp.row(0, 0, [j for j, _ in cols] + [t], [1.0] * len(cols) + [-1.0])
            per = float(unit.per_member if unit.uniform else lp.ub[t])
            lp.row(-math.inf, 0, [t, k], [1.0, -per])
            lp.row(0, math.inf, [t, k], [1.0, -2.0])
            at_site: dict[str, list[int]] = {}
            for j, c in cols:
                at_site.setdefault(c.site, []).append(j)
            for js in at_site.values():
                lp.row(-math.inf, 0, js + [t, k], [1.0] * len(js) + [-1.0, 1.0])
            ha_cols[unit.id] = (k, t)

    # pools: node shape and elastic instances
    ycol: dict[str, int] = {}
    mcol: dict[str, list[int]] = {}
    models: dict[str, NodeModel] = {}
    for key in sorted(by_pool, key=pool_index.__getitem__):
        p = pools[key]
        members = by_pool[key]
        G = p.gpus_per_node
        nm = node_model([c.gpus for _, c in members if not c.nodes_per_replica], G)
        models[key] = nm
        if not nm.exact:
            notes.append(f"{key}: {len(nm.sizes)} replica sizes on {G}-GPU nodes; sizes rounded up to divisors of {G} (safe bound)")
        if p.elastic:
            ycol[key] = lp.col(f"y[{key}]", 0, p.nodes)
        whole = [(xcol[(u_id, key)], c) for u_id, c in members if c.nodes_per_replica]
        small = [(xcol[(u_id, key)], c) for u_id, c in members if not c.nodes_per_replica]
        if nm.mode == "patterns":
            # nodes: sum_k m[p,k] + sum k x[w,p] <= N (or y); slots: per size, replicas <= slots
            ms = [lp.col(f"m[{key},{k}]", 0, p.nodes) for k in range(len(nm.patterns))]
            mcol[key] = ms
            for si, size in enumerate(nm.sizes):
                xs = [j for j, c in small if c.gpus == size]
                slots = [(m, float(pat[si])) for m, pat in zip(ms, nm.patterns) if pat[si]]
                lp.row(-math.inf, 0, xs + [m for m, _ in slots], [1.0] * len(xs) + [-s for _, s in slots])
            idx = ms + [j for j, _ in whole]
            val = [1.0] * len(ms) + [float(c.nodes_per_replica) for _, c in whole]
        elif nm.mode == "none":  # whole-node replicas only: count nodes
            idx = [j for j, _ in whole]
            val = [float(c.nodes_per_replica) for _, c in whole]
        else:
            # GPUs: sum_small g x + G * sum_whole k x <= G N (or G y). With divisible sizes the
            # small replicas need exactly ceil(volume / G) nodes, and for integers
            # ceil(v / G) <= M  <=>  v <= G M, so no node-count variable is needed.
            idx = [j for j, _ in small] + [j for j, _ in whole]
            val = [float(nm.charged(c.gpus)) for _, c in small] + [float(G * c.nodes_per_replica) for _, c in whole]
        scale = 1.0 if nm.mode in ("patterns", "none") else float(G)
        if key in ycol:
            lp.row(-math.inf, 0, idx + [ycol[key]], val + [-scale])
        else:
            lp.row(-math.inf, scale * p.nodes, idx, val)

    ncols = len(lp.lb)

    def vec(pairs) -> np.ndarray:
        out = np.zeros(ncols)
        for j, value in pairs:
            out[j] += value
        return out

    weight_of = {unit.id: unit.weight for unit in units}
    c_unplaced = vec((ucol[u], weight_of[u]) for u in ucol)

    def cost_terms():
        for (u, key), j in xcol.items():
            if not pools[key].elastic:
                yield j, cand_of[(u, key)].gpus * cost_per_gpu[key]
        for key, j in ycol.items():
            yield j, cost_per_gpu[key] * pools[key].gpus_per_node

    c_cost = vec(cost_terms())
    c_gpus = vec((j, float(cand_of[k].gpus)) for k, j in xcol.items())
    c_latency = vec((j, float(cand_of[k].latency_ms)) for k, j in xcol.items())
    width = len(facts.pools) + 1

    def order_weight(key: str) -> float:
        return float(rank[site_kind[pools[key].site]] * width + pool_index[key] + 1)

    c_order = vec(
        [(j, cand_of[k].gpus * order_weight(k[1])) for k, j in xcol.items()]
        + [(j, pools[key].gpus_per_node * order_weight(key)) for key, j in ycol.items()]
    )
    primary = {"cost": c_cost, "gpus": c_gpus, "latency": c_latency}[kind]
    levels = [("unplaced", c_unplaced), ("objective", primary)]
    if kind != "cost":
        levels.append(("cost", c_cost))
    levels.append(("order", c_order))

    def rank_key(c: Candidate, ref: int):
        cover = 1.0 if c.replicas == ref else ref / c.replicas
        cost = c.gpus * cost_per_gpu[c.pool] / cover
        main = {"cost": cost, "gpus": c.gpus / cover, "latency": c.latency_ms}[kind]
        return (main, cost, c.latency_ms, order_weight(c.pool))

    h, highspy = _highs()
    solver = f"highs {h.version()}"
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", RANDOM_SEED)
    h.setOptionValue("mip_rel_gap", MIP_REL_GAP)
    h.setOptionValue("presolve", "on")
    # RINS and RENS off: on models of 30 to 40 sites they solved sub-MIPs
    # nested up to 14 deep, most of the time (an 18 s solve at 40 sites x 400
    # workloads took 4.3 s without them, to the same gap). The large-model
    # branch-and-bound (.relaxation) keeps them: it found worse plans without.
    h.setOptionValue("mip_heuristic_run_rins", False)
    h.setOptionValue("mip_heuristic_run_rens", False)
    deadline = started + time_limit

    # A start: the LP relaxation rounded down, then greedy. HiGHS improves on it, and a
    # time limit never returns less than it.
    hint = None
    if ncols:
        scale = float(np.abs(primary).sum()) or 1.0
        relaxed = _relaxation(h, highspy, lp, c_unplaced + primary * (1e-3 / scale), 0.15 * time_limit)
        if relaxed is not None:
            hint = {k: float(relaxed[j]) for k, j in xcol.items() if relaxed[j] > 0.999}
    start, states, members_placed = _greedy(units, pools, models, rank_key, hint)
    values = np.zeros(ncols)
    for k, n in start.items():
        values[xcol[k]] = n
    for unit in units:
        placed = sum(start.get((unit.id, c.pool), 0) for c, _ in unit.candidates)
        if unit.uniform:
            values[ucol[unit.id]] = unit.replicas - placed
        else:
            covered = sum(start.get((unit.id, c.pool), 0) * unit.replicas / c.replicas for c, _ in unit.candidates)
            values[ucol[unit.id]] = max(math.ceil(unit.replicas - covered - 1e-9), 0)
        if unit.id in ha_cols:
            k, t = ha_cols[unit.id]
            values[t] = placed
            values[k] = members_placed.get(unit.id, 0)
    for key, j in ycol.items():
        values[j] = states[key].used()
    for key, ms in mcol.items():
        for m, n in zip(ms, states[key].pattern_counts()):
            values[m] = n

    phases: list[Phase] = []
    if ncols:
        _pass_model(h, highspy, lp)
        if beside is not None:
            beside.start()
        # HiGHS may overrun a time limit a little (it checks between LP solves): tie-breaks get less
        shares = {"unplaced": 0.3, "objective": 0.75, "cost": 0.4, "order": 0.5}
        allidx = np.arange(ncols, dtype=np.int32)
        for name, costs in levels:
            t0 = time.perf_counter()
            remaining = deadline - t0
            if phases and not costs.any():
                phases.append(Phase(name, "skipped", 0.0, 0.0, 0.0, 0.0))
                continue
            budget = remaining * shares[name]
            if name == "objective":  # HiGHS can overrun a limit at the root: never starve this level
                budget = max(budget, MIN_OBJECTIVE_SHARE * time_limit)
            elif remaining <= 0.01 and phases:
                phases.append(Phase(name, "skipped", None, None, None, 0.0))
                continue
            h.changeColsCost(ncols, allidx, costs)
            h.setOptionValue("mip_rel_gap", LEVEL_GAP[name])
            h.setOptionValue("time_limit", max(budget, 0.01))
            h.setSolution(ncols, allidx, values)
            h.run()
            info = h.getInfo()
            has_solution = info.primal_solution_status == 2
            label = _status(highspy, h.getModelStatus(), has_solution)
            if has_solution:
                sol = np.array(h.getSolution().col_value)
                if float(costs @ sol) <= float(costs @ values) + 1e-9:
                    values = sol
            value = float(costs @ values)
            bound = float(info.mip_dual_bound)
            if not math.isfinite(bound):
                bound = None
            if label == "optimal":
                bound = value if bound is None else min(bound, value)
            phases.append(Phase(name, label, value, bound, _gap(value, bound), time.perf_counter() - t0))
            # fix this level before the next one
            nz = np.nonzero(costs)[0].astype(np.int32)
            if len(nz):
                integral = bool(np.all(costs[nz] == np.round(costs[nz])))
                rhs = math.floor(value + 0.5) if integral else value + 1e-7 * max(1.0, abs(value)) + 1e-9
                h.addRow(-math.inf, rhs, len(nz), nz, costs[nz])
    else:
        phases.append(Phase("objective", "optimal", 0.0, 0.0, 0.0, 0.0))

    # split units back into workloads
    xs: dict[tuple[str, str], int] = {}
    wcand: dict[tuple[str, str], Candidate] = {}
    unplaced = {w: n for w, n in unplaced_fixed.items() if n > 0}
    for unit in units:
        counts = [(c, int(round(values[xcol[(unit.id, c.pool)]]))) for c, _ in unit.candidates]
        counts = [(c, n) for c, n in sorted(counts, key=lambda t: pool_index[t[0].pool]) if n > 0]
        if len(unit.members) == 1:
            w_id = unit.id
            for c, n in counts:
                xs[(w_id, c.pool)] = n
                wcand[(w_id, c.pool)] = c
            missing = int(round(values[ucol[unit.id]]))
            if missing > 0:
                unplaced[w_id] = missing
            continue
        if unit.ha:
            k_col = ha_cols[unit.id][0]
            dealt, missing, dropped = _deal_ha(unit, counts, int(round(values[k_col])))
            for (w_id, pool), (c, n) in dealt.items():
                xs[(w_id, pool)] = n
                wcand[(w_id, pool)] = c
            unplaced.update({w_id: n for w_id, n in missing.items() if n > 0})
            if dropped:
                notes.append(f"{unit.id}: {dropped} replicas left out: they could not be dealt to members on two sites")
            continue
        queue = [[c, n] for c, n in counts]
        for w_id, need in unit.members:
            while need and queue:
                c, n = queue[0]
                take = min(n, need)
                xs[(w_id, c.pool)] = xs.get((w_id, c.pool), 0) + take
                wcand[(w_id, c.pool)] = c
                need -= take
                queue[0][1] -= take
                if queue[0][1] == 0:
                    queue.pop(0)
            if need:
                unplaced[w_id] = need
    patterns = {key: [int(round(values[m])) for m in ms] for key, ms in mcol.items()}
    layout, replica_nodes, nodes_used = _pack(xs, wcand, pools, models, patterns)
    instances = {key: nodes_used.get(key, 0) for key in pools if pools[key].elastic}

    main = next(p for p in phases if p.name == "objective")
    # The status is that of the first two levels (placement, then the spec's objective);
    # a tie-break cut short by the time limit is a note, not a weaker plan.
    decisive = [p for p in phases if p.name in ("unplaced", "objective")]
    statuses = {p.status for p in decisive if not (p.status == "skipped" and p.value is not None)}
    if statuses <= {"optimal"}:
        status = "optimal"
    elif "error" in statuses:
        status = "error"
    elif "no-solution" in statuses:
        status = "no-solution"
    else:
        status = "time-limit"
    first = phases[0]
    if first.name == "unplaced" and first.bound is not None and first.value is not None:
        floor = math.ceil(first.bound - 1e-6)
        if first.value > floor + 1e-6:
            notes.append(
                f"unplaced replicas (weighted by criticality: high 4, medium 2, low 1): {first.value:g}; "
                f"proven minimum {floor:g}"
            )
    for p in phases[len(decisive):]:
        if p.status in ("time-limit", "no-solution") or (p.status == "skipped" and p.value is None):
            notes.append(f"tie-break level '{p.name}' stopped at the time limit: equal-{kind} alternatives may remain")
    # The reported value is the objective of the plan as packed (instances actually used).
    value = _objective_value(kind, xs, wcand, pools, cost_per_gpu, instances)
    bound = main.bound if main.bound is not None else 0.0
    bound = min(bound, value)
    return SolveResult(
        x=xs,
        unplaced=unplaced,
        ha_blocked=ha_blocked,
        layout=layout,
        replica_nodes=replica_nodes,
        instances=instances,
        nodes_used=nodes_used,
        node_models=models,
        phases=phases,
        status=status,
        value=value,
        bound=bound,
        gap=_gap(value, bound) or 0.0,
        solver=solver,
        variables=ncols,
        constraints=len(lp.rows),
        seconds=time.perf_counter() - started,
        imputed=imputed,
        notes=notes,
        candidates=wcand,
    )


def _objective_value(kind, xs, cand_of, pools, cost_per_gpu, instances) -> float:
    total = 0.0
    for k, n in xs.items():
        c = cand_of[k]
        if kind == "gpus":
            total += n * c.gpus
        elif kind == "latency":
            total += n * c.latency_ms
        elif not pools[k[1]].elastic:
            total += n * c.gpus * cost_per_gpu[k[1]]
    if kind == "cost":
        for key, count in instances.items():
            total += count * cost_per_gpu[key] * pools[key].gpus_per_node
    return total


def _gap(value: float | None, bound: float | None) -> float | None:
    if value is None or bound is None:
        return None
    diff = max(value - bound, 0.0)
    if diff <= 1e-9:
        return 0.0
    return diff / max(abs(value), 1e-9)


def _status(highspy, status, has_solution: bool) -> str:
    s = highspy.HighsModelStatus
    if status == s.kOptimal:
        return "optimal"
    if has_solution:
        return "time-limit"
    if status in (s.kInfeasible,):
        return "error"  # the all-unplaced start is always feasible, so this is a modelling bug
    return "no-solution"


def _pass_model(h, highspy, lp: _Lp, integer: bool = True) -> None:
    model = highspy.HighsLp()
    ncols = len(lp.lb)
    model.num_col_ = ncols
    model.num_row_ = len(lp.rows)
    model.col_cost_ = np.zeros(ncols)
    model.col_lower_ = np.array(lp.lb, dtype=float)
    model.col_upper_ = np.array(lp.ub, dtype=float)
    model.row_lower_ = np.array([r[0] for r in lp.rows], dtype=float)
    model.row_upper_ = np.array([r[1] for r in lp.rows], dtype=float)
    starts = [0]
    index: list[int] = []
    value: list[float] = []
    for _, _, idx, val in lp.rows:
        index += idx
        value += val
        starts.append(len(index))
    model.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    model.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    model.a_matrix_.index_ = np.array(index, dtype=np.int32)
    model.a_matrix_.value_ = np.array(value, dtype=float)
    if integer:
        model.integrality_ = [highspy.HighsVarType.kInteger] * ncols
    h.passModel(model)


# --------------------------------------------------------------------------- packing


def _pack(xs, cand_of, pools, models, patterns):
    """Put every placed replica on numbered nodes of its pool.

    Whole-node replicas first, then the smaller ones: in decreasing size
    first-fit for divisible (and rounded) sizes, into the solver's node
    patterns otherwise. Both succeed by construction of the node model.
    """
    layout: dict[str, list[list[tuple[str, int]]]] = {}
    replica_nodes: dict[tuple[str, str], list[list[int]]] = {}
    nodes_used: dict[str, int] = {}
    per_pool: dict[str, list[tuple[str, int]]] = {}
    for (w, key), n in sorted(xs.items()):
        per_pool.setdefault(key, []).append((w, n))
    for key, items in per_pool.items():
        p = pools[key]
        G = p.gpus_per_node
        nodes: list[list[tuple[str, int]]] = []
        free: list[int] = []
        for w, n in items:
            c = cand_of[(w, key)]
            if not c.nodes_per_replica:
                continue
            for _ in range(n):
                span = []
                for _ in range(c.nodes_per_replica):
                    nodes.append([(w, c.gpus)])
                    free.append(0)
                    span.append(len(nodes))
                replica_nodes.setdefault((w, key), []).append(span)
        small = [(w, n, cand_of[(w, key)].gpus) for w, n in items if not cand_of[(w, key)].nodes_per_replica]
        nm = models.get(key, NodeModel("none"))
        if nm.mode == "patterns" and small:
            slots: dict[int, dict[int, int]] = {}  # node number -> free slots per size
            for count, pat in zip(patterns[key], nm.patterns):
                for _ in range(count):
                    nodes.append([])
                    free.append(G)
                    slots[len(nodes)] = {s: c for s, c in zip(nm.sizes, pat)}
            for w, n, g in sorted(small, key=lambda t: (-t[2], t[0])):
                for _ in range(n):
                    target = next((num for num, sl in slots.items() if sl.get(g, 0) > 0), None)
                    if target is None:  # cannot happen with a feasible solution; open a node rather than lose it
                        nodes.append([])
                        free.append(G)
                        slots[len(nodes)] = {g: G // g}
                        target = len(nodes)
                    slots[target][g] -= 1
                    nodes[target - 1].append((w, g))
                    free[target - 1] -= g
                    replica_nodes.setdefault((w, key), []).append([target])
        else:
            for w, n, g in sorted(small, key=lambda t: (-nm.charged(t[2]), t[0])):
                charge = nm.charged(g)
                for _ in range(n):
                    target = next((i for i, f in enumerate(free) if f >= charge and _small_node(nodes[i], G)), None)
                    if target is None:
                        nodes.append([])
                        free.append(G)
                        target = len(nodes) - 1
                    nodes[target].append((w, g))
                    free[target] -= charge
                    replica_nodes.setdefault((w, key), []).append([target + 1])
        # drop empty pattern nodes and renumber
        keep = [i for i, content in enumerate(nodes) if content]
        renumber = {old + 1: new + 1 for new, old in enumerate(keep)}
        layout[key] = [nodes[i] for i in keep]
        for w, _ in items:
            k = (w, key)
            if k in replica_nodes:
                replica_nodes[k] = [[renumber[num] for num in span] for span in replica_nodes[k]]
        nodes_used[key] = len(keep)
    return layout, replica_nodes, nodes_used


def _small_node(content: list[tuple[str, int]], per_node: int) -> bool:
    """A node taken by a whole-node replica takes nothing else."""
    return not content or all(g <= per_node for _, g in content)
