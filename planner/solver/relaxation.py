"""Large placement models: the LP relaxation with a proven bound, and an integer plan rounded from it.

Past :data:`planner.solver.model.EXACT_PAIRS` (unit, pool) pairs the MILP's
branch-and-bound is too slow to prove anything in seconds (at 100 sites x
1,000 workloads it ended 28 % from its bound after 30 s). Here:

1. **Bound.** The LP relaxation of the same model (a cover row per unit, a
   GPU row per pool, an elastic pool's instances continuous), solved by
   column generation: the first LP holds each unit's cheapest pools and a
   greedy placement that fits; then every admissible pair is priced against
   the duals (numpy, all pairs at once) and the most negative columns of
   each unit join the LP, until none prices out. The reported bound is a
   Lagrangian bound of the final duals over *all* pairs (:meth:`_Master.
   _lagrangian`), valid whether or not the generation converged and equal
   to the LP optimum when it did. Counting GPUs for node shapes and writing
   HA spread as "at most R - 1 replicas on one site" (rows added where the
   LP breaks them) only relax the model, so the bound stays valid. The two
   levels of the MILP become one LP where an unplaced replica costs more
   than any placement; when the plan leaves replicas unplaced, the levels
   are solved apart so that the bound holds at the plan's unplaced level.
2. **Plan.** A few rounds of diving (elastic instance counts and large
   replicas rounded in the LP, which re-solves around them; models of up
   to :data:`DIVE_PAIRS` pairs, where rounding costs most relative to the
   total), then the LP's placement rounded: large replicas first, their
   biggest fractional parts rounded up; every missing replica where it adds
   least, directly (owned GPUs on whole nodes, an elastic pool's paid or
   next instance) or in room made by moving other replicas to their own
   best pools; HA workloads on two sites; and a local search that closes
   elastic instances whose replicas cost less elsewhere. HA replicas are
   never moved for others. Replica sizes that do not divide the node size
   are rounded up to a divisor chain (the MILP's ``rounded`` mode), so the
   GPU count per pool is exact, and every replica is packed on numbered
   nodes.

3. **Branch-and-bound, when needed.** When the gap after rounding is above
   :data:`TARGET_GAP` and the model has at most :data:`MILP_PAIRS` pairs,
   the exact MILP over every pair (HA spread exact, the unplaced level held
   at the plan's) starts from the plan and runs to that gap or for
   :data:`MILP_SHARE` of the time limit; its solution is kept when better
   and its dual bound when higher.

The gap is (plan - bound) / plan. Everything is deterministic: HiGHS runs one
thread with a fixed seed, every loop has a fixed number of rounds, and ties
go by ``prefer_kinds`` and pool order, unless the time limit cuts the LP or
branch-and-bound short (a cut-short LP is noted in the plan: its bound is
weaker).
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from planner.process import Meanwhile
from planner.solver.admissibility import Admissibility, Candidate
from planner.solver.model import (
    MIP_REL_GAP,
    RANDOM_SEED,
    NodeModel,
    Phase,
    SolveResult,
    _divisor_chain,
    _gap,
    _highs,
    _objective_value,
    _pack,
    node_model,
    pool_prices,
)

__all__ = ["optimise_large"]

INITIAL_COLUMNS = 10  # per unit: its cheapest pools in the first LP
PRICED_COLUMNS = 10  # per unit and round: the most negative reduced costs join the LP
TOLERANCE = 1e-7  # a reduced cost below -TOLERANCE (relative) prices out
LP_SHARE = 0.6  # of the time limit, for the LP (column generation and dives)
DIVE_ROUNDS = 8
DIVE_PAIRS = 400_000  # larger models skip the dive: their rounding loss is small next to their cost
IMPROVE_ROUNDS = 3
EJECT_TRIES = 12  # a unit's cheapest pools tried when room has to be made for one of its replicas
ROUND_UP = 0.25  # a large replica's fractional LP placement is rounded up from this share
TARGET_GAP = 0.01  # past this gap after rounding, branch-and-bound runs (to this gap) ...
MILP_PAIRS = 60_000  # ... on models up to this many pairs, for at most this share of the time limit:
MILP_SHARE = 0.25


def _ceil_div(a, b):
    return -(-a // b)


class _Pairs:
    """Every admissible (unit, pool) pair as flat arrays: units in order, pools ascending within a unit."""

    def __init__(self, units, pools_list, kind: str, cost_per_gpu: dict[str, float], rank: dict[str, int], site_kind):
        P = len(pools_list)
        self.U = len(units)
        self.units = units
        self.kind = kind
        self.pool_keys = [p.key for p in pools_list]
        self.G = np.array([p.gpus_per_node for p in pools_list], dtype=np.int64)
        self.N = np.array([p.nodes for p in pools_list], dtype=np.int64)
        self.elastic = np.array([p.elastic for p in pools_list], dtype=bool)
        self.cpg = np.array([cost_per_gpu[p.key] for p in pools_list], dtype=float)
        self.price = self.cpg * self.G  # per instance (elastic pools)
        self.order = np.array([rank[site_kind[p.site]] * (P + 1) + n + 1 for n, p in enumerate(pools_list)], dtype=np.int64)
        site_ids = {s: n for n, s in enumerate(dict.fromkeys(p.site for p in pools_list))}
        self.pool_site = np.array([site_ids[p.site] for p in pools_list], dtype=np.int64)

        lens = np.array([len(u.arrays) for u in units], dtype=np.int64)
        self.R = np.array([u.replicas for u in units], dtype=np.int64)
        self.uniform = np.array([u.uniform for u in units], dtype=bool)
        self.weight = np.array([u.weight for u in units], dtype=float)
        self.ha = np.array([u.ha for u in units], dtype=bool)
        empty = np.zeros(0, dtype=np.int64)
        unit = np.repeat(np.arange(self.U, dtype=np.int64), lens)
        pool = np.concatenate([u.arrays.pools for u in units]).astype(np.int64) if self.U else empty
        gpus = np.concatenate([u.arrays.gpus for u in units]) if self.U else empty
        nodes = np.concatenate([u.arrays.nodes for u in units]) if self.U else empty
        reps = np.concatenate([u.arrays.replicas for u in units]) if self.U else empty
        cap = np.where(nodes > 0, self.N[pool] // np.maximum(nodes, 1), self.N[pool] * (self.G[pool] // gpus))
        ub = np.minimum(np.where(self.uniform[unit], self.R[unit], reps), cap)
        # a placed HA workload spans two sites, so no pool holds more than R - 1 of it
        ub = np.where(self.ha[unit], np.minimum(ub, self.R[unit] - 1), ub)
        keep = ub > 0
        self._keep = None if keep.all() else keep
        if self._keep is not None:
            unit, pool, gpus, nodes, reps, ub = (a[keep] for a in (unit, pool, gpus, nodes, reps, ub))
        # int32 per pair: a million pairs and more at 10,000 workloads
        self.unit, self.pool, self.gpus, self.nodes, self.reps, self.ub = (
            a.astype(np.int32) for a in (unit, pool, gpus, nodes, reps, ub)
        )
        self.start = np.searchsorted(self.unit, np.arange(self.U + 1))
        self.site = self.pool_site[self.pool].astype(np.int32)
        self.a = np.where(self.uniform[self.unit], 1.0, self.R[self.unit] / self.reps)
        # LP: a replica larger than a node takes whole nodes; smaller ones count their GPUs
        self.lp_gpus = np.where(self.nodes > 0, self.G[self.pool] * self.nodes, self.gpus).astype(float)
        self.cost = np.where(self.elastic[self.pool], 0.0, self.gpus * self.cpg[self.pool])
        if kind == "cost":
            self.obj, self.y_obj = self.cost, np.where(self.elastic, self.price, 0.0)
        elif kind == "gpus":
            self.obj, self.y_obj = self.gpus.astype(float), np.zeros(P)
        else:
            self.obj, self.y_obj = self.latency(), np.zeros(P)
        self.used = np.flatnonzero(np.bincount(self.pool, minlength=P) > 0)

        # node models: sizes that divide the node size are exact; others are rounded up
        self.models: dict[str, NodeModel] = {}
        self.rounded = np.zeros(P, dtype=bool)  # pools whose small sizes are rounded up
        self.charge = self.lp_gpus.astype(np.int32)
        small = self.nodes == 0
        if small.any():
            top = int(self.gpus[small].max()) + 1
            combos = np.flatnonzero(np.bincount(self.pool[small].astype(np.int64) * top + self.gpus[small], minlength=P * top))
            sizes_at: dict[int, list[int]] = {}
            for c in combos.tolist():
                sizes_at.setdefault(c // top, []).append(c % top)
            for p, sizes in sizes_at.items():
                nm = node_model(sizes, int(self.G[p]))
                if nm.mode == "patterns":
                    chain = _divisor_chain(int(self.G[p]))
                    nm = NodeModel("rounded", nm.sizes, rounded={s: next(c for c in chain if c >= s) for s in nm.sizes})
                self.models[self.pool_keys[p]] = nm
                self.rounded[p] = nm.mode == "rounded"
                if nm.mode == "rounded":
                    at = np.flatnonzero((self.pool == p) & small)
                    self.charge[at] = [nm.charged(int(g)) for g in self.gpus[at]]
        for p in self.used.tolist():
            self.models.setdefault(self.pool_keys[p], NodeModel("none"))
        self._by_pool: tuple[np.ndarray, np.ndarray] | None = None

    def at_pool(self, p: int) -> np.ndarray:
        """The pairs on pool ``p``."""
        if self._by_pool is None:
            # As 16-bit keys (any real spec's pools), a stable sort is a radix
            # sort: 0.02 s rather than 0.08 s on a million pairs.
            keys = self.pool.astype(np.uint16) if len(self.G) <= 1 << 16 else self.pool
            order = np.argsort(keys, kind="stable")
            self._by_pool = (order, np.searchsorted(self.pool[order], np.arange(len(self.G) + 1)))
        order, start = self._by_pool
        return order[start[p] : start[p + 1]]

    def latency(self) -> np.ndarray:
        """Summed latency to the inputs, per pair."""
        if not self.U:
            return np.zeros(0)
        lat = np.concatenate([u.arrays.latency for u in self.units])
        return lat if self._keep is None else lat[self._keep]

    def candidate(self, j: int, pools) -> Candidate:
        unit = self.units[int(self.unit[j])]
        p = pools[self.pool_keys[self.pool[j]]]
        latency = unit.arrays.latency_of(int(self.pool[j]))
        return Candidate(p.key, p.site, p.gpu, int(self.gpus[j]), int(self.reps[j]), int(self.nodes[j]), latency)

    def __len__(self) -> int:
        return len(self.unit)


class _Master:
    """The LP relaxation in HiGHS: u (unplaced) and y (instances) columns, x columns as generated.

    Rows: a cover row per unit, a GPU row per pool, the unplaced level when
    it is fixed, and HA rows: a workload of criticality high with ``R``
    replicas has at most ``R - 1`` on one site (true of every plan, since a
    placed HA workload spans two sites), added for each HA unit's cheapest
    site up front and wherever else the LP breaks one.
    """

    def __init__(self, pairs: _Pairs, deadline: float, beside: Meanwhile | None = None) -> None:
        self.pairs = pairs
        self.deadline = deadline
        self.beside = beside  # started as HiGHS first runs
        h, highspy = _highs()
        self.h, self.highspy = h, highspy
        self.version = h.version()
        h.setOptionValue("threads", 1)
        h.setOptionValue("random_seed", RANDOM_SEED)
        h.setOptionValue("presolve", "off")  # every solve after the first starts from the last basis
        U = pairs.U
        used = pairs.used
        self.cap_row = np.full(len(pairs.G), -1, dtype=np.int64)
        self.cap_row[used] = U + np.arange(len(used))
        self.elastic_pools = used[pairs.elastic[used]]
        self.y_col = np.full(len(pairs.G), -1, dtype=np.int64)
        self.y_col[self.elastic_pools] = U + np.arange(len(self.elastic_pools))
        self.fix_row: int | None = None
        self.ha_row = np.full(len(pairs), -1, dtype=np.int64)  # per pair: its HA site row, if any
        self.col_pair = np.zeros(0, dtype=np.int64)
        self.pair_col = np.full(len(pairs), -1, dtype=np.int64)
        self._lower: dict[int, float] = {}
        self._upper: dict[int, float] = {}
        self.u = np.zeros(U)
        self.y = np.zeros(len(pairs.G))

        lp = highspy.HighsLp()
        ncols = U + len(self.elastic_pools)
        lp.num_col_ = ncols
        lp.num_row_ = U + len(used)
        lp.col_cost_ = np.zeros(ncols)
        lp.col_lower_ = np.zeros(ncols)
        lp.col_upper_ = np.concatenate([pairs.R.astype(float), pairs.N[self.elastic_pools].astype(float)])
        owned = ~pairs.elastic[used]
        self.row_lower = np.concatenate([pairs.R.astype(float), np.full(len(used), -np.inf)])
        self.row_upper = np.concatenate(
            [np.where(pairs.uniform, pairs.R, np.inf).astype(float), np.where(owned, pairs.G[used] * pairs.N[used], 0).astype(float)]
        )
        lp.row_lower_ = self.row_lower
        lp.row_upper_ = self.row_upper
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.arange(ncols + 1, dtype=np.int32)
        lp.a_matrix_.index_ = np.concatenate([np.arange(U), self.cap_row[self.elastic_pools]]).astype(np.int32)
        lp.a_matrix_.value_ = np.concatenate([np.ones(U), -pairs.G[self.elastic_pools].astype(float)])
        h.passModel(lp)

    @property
    def columns(self) -> int:
        return self.pairs.U + len(self.elastic_pools) + len(self.col_pair)

    @property
    def rows(self) -> int:
        return len(self.row_lower)

    def _add_row(self, lower: float, upper: float, index: np.ndarray, value: np.ndarray) -> int:
        self.h.addRow(lower, upper, len(index), index.astype(np.int32), value.astype(float))
        self.row_lower = np.append(self.row_lower, lower)
        self.row_upper = np.append(self.row_upper, upper)
        return self.rows - 1

    def add(self, js: np.ndarray, costs: np.ndarray) -> None:
        """Add the x columns of pairs ``js`` with these objective costs."""
        pr = self.pairs
        js = js[self.pair_col[js] < 0]
        if not len(js):
            return
        n = len(js)
        index = np.empty(3 * n, dtype=np.int64)
        value = np.empty(3 * n)
        index[0::3] = pr.unit[js]
        value[0::3] = pr.a[js]
        index[1::3] = self.cap_row[pr.pool[js]]
        value[1::3] = pr.lp_gpus[js]
        index[2::3] = self.ha_row[js]
        value[2::3] = 1.0
        keep = index >= 0
        starts = np.concatenate([[0], np.cumsum(keep.reshape(n, 3).sum(axis=1))[:-1]]).astype(np.int32)
        self.h.addCols(
            n, costs[js].astype(float), np.zeros(n), pr.ub[js].astype(float), int(keep.sum()), starts,
            index[keep].astype(np.int32), value[keep],
        )
        self.pair_col[js] = self.columns + np.arange(n)
        self.col_pair = np.concatenate([self.col_pair, js])

    def fix_unplaced(self, upper: float) -> None:
        """The unplaced level as a row: weighted unplaced replicas <= ``upper``."""
        pr = self.pairs
        if self.fix_row is None:
            self.fix_row = self._add_row(-np.inf, upper, np.arange(pr.U), pr.weight)
        else:
            self.h.changeRowBounds(self.fix_row, -np.inf, upper)
            self.row_upper[self.fix_row] = upper

    def ha_rows(self, units_sites: list[tuple[int, int]]) -> None:
        """HA rows for (unit, site) pairs: at most R - 1 replicas of the unit there."""
        pr = self.pairs
        upper: list[float] = []
        index: list[np.ndarray] = []
        for u, site in units_sites:
            at = np.arange(pr.start[u], pr.start[u + 1])
            at = at[(pr.site[at] == site) & (self.ha_row[at] < 0)]
            if not len(at):
                continue
            self.ha_row[at] = self.rows + len(upper)
            cols = self.pair_col[at]
            index.append(cols[cols >= 0])
            upper.append(float(pr.R[u] - 1))
        if not upper:
            return
        n = len(upper)
        starts = np.concatenate([[0], np.cumsum([len(i) for i in index])[:-1]]).astype(np.int32)
        flat = np.concatenate(index).astype(np.int32)
        self.h.addRows(n, np.full(n, -np.inf), np.array(upper), len(flat), starts, flat, np.ones(len(flat)))
        self.row_lower = np.append(self.row_lower, np.full(n, -np.inf))
        self.row_upper = np.append(self.row_upper, upper)

    def _separate_ha(self, x: np.ndarray) -> bool:
        """Add the HA rows the LP solution breaks; whether any was added."""
        pr = self.pairs
        js = self.col_pair[pr.ha[pr.unit[self.col_pair]] & (x[self.col_pair] > 1e-9)]
        if not len(js):
            return False
        width = len(pr.G) + 1
        keys, inverse = np.unique(pr.unit[js].astype(np.int64) * width + pr.site[js], return_inverse=True)
        load = np.bincount(inverse, weights=x[js])
        broken = keys[load > pr.R[keys // width] - 1 + 1e-6]
        rows = self.rows
        self.ha_rows([(int(k // width), int(k % width)) for k in broken.tolist()])
        return self.rows > rows

    def bounds(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The current bounds of some columns."""
        lower = np.array([self._lower.get(c, 0.0) for c in cols.tolist()])
        upper = np.array([self._upper.get(c, self._ub_of(c)) for c in cols.tolist()])
        return lower, upper

    def _ub_of(self, c: int) -> float:
        pr = self.pairs
        base = pr.U + len(self.elastic_pools)
        if c < pr.U:
            return float(pr.R[c])
        if c < base:
            return float(pr.N[self.elastic_pools[c - pr.U]])
        return float(pr.ub[self.col_pair[c - base]])

    def set_bounds(self, cols: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        """Change column bounds (a dive); :meth:`restore` undoes every change."""
        if not len(cols):
            return
        for c, lo, up in zip(cols.tolist(), lower.tolist(), upper.tolist()):
            self._lower[c] = lo
            self._upper[c] = up
        self.h.changeColsBounds(len(cols), cols.astype(np.int32), lower.astype(float), upper.astype(float))

    def restore(self) -> None:
        """Every column back to its own bounds."""
        cols = np.array(sorted(set(self._lower) | set(self._upper)), dtype=np.int64)
        if len(cols):
            upper = np.array([self._ub_of(c) for c in cols.tolist()])
            self.h.changeColsBounds(len(cols), cols.astype(np.int32), np.zeros(len(cols)), upper)
        self._lower.clear()
        self._upper.clear()

    def unplaced_weight(self) -> float:
        """Weighted unplaced replicas in the last LP solution."""
        return float(self.pairs.weight @ self.u)

    def solve(self, obj: np.ndarray, u_obj: np.ndarray, y_obj: np.ndarray, bound: bool = True):
        """Column generation for one objective: (LP value, bound, x per pair, converged).

        The LP is re-solved (warm) after every change: HA rows it breaks,
        then the pairs that price out. ``bound=False`` skips the bound (dives).
        """
        pr = self.pairs
        h = self.h
        cost_now = np.concatenate([u_obj, y_obj[self.elastic_pools], obj[self.col_pair]])
        h.changeColsCost(len(cost_now), np.arange(len(cost_now), dtype=np.int32), cost_now.astype(float))
        converged = False
        duals = None
        value = None
        x = np.zeros(len(pr))
        base = pr.U + len(self.elastic_pools)
        while True:
            h.setOptionValue("time_limit", max(self.deadline - time.perf_counter(), 0.05))
            if self.beside is not None:
                self.beside.start()
            h.run()
            if h.getModelStatus() not in (self.highspy.HighsModelStatus.kOptimal, self.highspy.HighsModelStatus.kModelEmpty):
                break
            sol = h.getSolution()
            col_value = np.array(sol.col_value)
            x[:] = 0.0
            x[self.col_pair] = col_value[base : base + len(self.col_pair)]
            self.y = np.zeros(len(pr.G))
            self.y[self.elastic_pools] = col_value[pr.U : base]
            self.u = col_value[: pr.U]
            duals = self._clip(np.array(sol.row_dual))
            value = h.getInfo().objective_function_value
            rc = self._reduced(obj, duals)
            fresh = np.flatnonzero((rc < -TOLERANCE * (1.0 + np.abs(obj))) & (self.pair_col < 0))
            if not len(fresh):
                if self._separate_ha(x):
                    continue
                converged = True
                break
            if time.perf_counter() > self.deadline:
                break
            order = np.lexsort((fresh, rc[fresh], pr.unit[fresh]))
            picked = fresh[order]
            units = pr.unit[picked]
            first = np.r_[True, units[1:] != units[:-1]]
            group_start = np.maximum.accumulate(np.where(first, np.arange(len(picked)), 0))
            self.add(np.sort(picked[np.arange(len(picked)) - group_start < PRICED_COLUMNS]), obj)
        if duals is None:
            return None, None, None, False
        if not bound:
            return value, None, x, converged
        # rows added after the last solve (HA rows) get a zero dual: still a valid bound
        duals = np.concatenate([duals, np.zeros(self.rows - len(duals))])
        return value, min(self._lagrangian(obj, u_obj, y_obj, duals), value), x, converged

    def _clip(self, duals: np.ndarray) -> np.ndarray:
        """Duals with the sign their row allows (a <= row has a dual <= 0, a >= row >= 0)."""
        duals = np.where(np.isinf(self.row_lower), np.minimum(duals, 0.0), duals)
        return np.where(np.isinf(self.row_upper), np.maximum(duals, 0.0), duals)

    def _reduced(self, obj: np.ndarray, duals: np.ndarray) -> np.ndarray:
        pr = self.pairs
        rc = obj - pr.a * duals[pr.unit] - pr.lp_gpus * duals[self.cap_row[pr.pool]]
        has = self.ha_row >= 0
        if has.any():
            rc[has] -= duals[self.ha_row[has]]
        return rc

    def _lagrangian(self, obj, u_obj, y_obj, duals) -> float:
        """A lower bound from any row duals: the better of two Lagrangian bounds over every pair.

        Relaxing every row (``sum dual x row bound`` plus ``min(0, reduced
        cost) x upper bound`` over every column, generated or not) is exact
        at the LP optimum; keeping the cover rows (:meth:`_kept_cover`) is
        better while the generation is still going on.
        """
        pr = self.pairs
        lower = np.where(np.isinf(self.row_lower), 0.0, self.row_lower)
        upper = np.where(np.isinf(self.row_upper), 0.0, self.row_upper)
        total = float(np.where(duals > 0, duals * lower, duals * upper).sum())
        total += float(np.minimum(self._reduced(obj, duals), 0.0) @ pr.ub)
        fix = duals[self.fix_row] if self.fix_row is not None else 0.0
        rc_u = u_obj - duals[: pr.U] - pr.weight * fix
        total += float(np.minimum(rc_u, 0.0) @ pr.R)
        e_y = self.elastic_pools
        rc_y = y_obj[e_y] + pr.G[e_y] * duals[self.cap_row[e_y]]
        total += float(np.minimum(rc_y, 0.0) @ pr.N[e_y])
        return max(total, self._kept_cover(obj, u_obj, y_obj, duals))

    def _kept_cover(self, obj, u_obj, y_obj, duals) -> float:
        """The Lagrangian bound that keeps the cover rows.

        The pool, HA and unplaced-level rows are relaxed with their duals
        (``dual x bound``); each unit keeps its cover row, so its part is what
        its replicas cost at the lowest reduced price among all its pairs and
        unplaced (``R min e``; a ``>=`` cover row takes every negative price in
        full). Pairs' upper bounds are left out, which only lowers it.
        """
        pr = self.pairs
        lower = np.where(np.isinf(self.row_lower), 0.0, self.row_lower)
        upper = np.where(np.isinf(self.row_upper), 0.0, self.row_upper)
        total = float(np.where(duals > 0, duals * lower, duals * upper)[pr.U :].sum())
        e = obj - pr.lp_gpus * duals[self.cap_row[pr.pool]]
        has = self.ha_row >= 0
        if has.any():
            e[has] -= duals[self.ha_row[has]]
        fix = duals[self.fix_row] if self.fix_row is not None else 0.0
        e_u = u_obj - pr.weight * fix
        ratio = e / pr.a
        best = e_u.copy()
        nonempty = pr.start[1:] > pr.start[:-1]
        if nonempty.any():
            best[nonempty] = np.minimum(best[nonempty], np.minimum.reduceat(ratio, pr.start[:-1][nonempty]))
        total += float(pr.R[pr.uniform] @ best[pr.uniform])
        for u in np.flatnonzero(~pr.uniform).tolist():
            sl = slice(pr.start[u], pr.start[u + 1])
            neg = e[sl] < 0
            total += float(e[sl][neg] @ pr.ub[sl][neg]) + min(e_u[u], 0.0) * pr.R[u]
            covered = float(pr.a[sl][neg] @ pr.ub[sl][neg]) + (pr.R[u] if e_u[u] < 0 else 0.0)
            rest = ratio[sl][~neg].tolist() + ([e_u[u]] if e_u[u] >= 0 else [])
            total += max(pr.R[u] - covered, 0.0) * max(min(rest, default=0.0), 0.0)
        e_y = self.elastic_pools
        rc_y = y_obj[e_y] + pr.G[e_y] * duals[self.cap_row[e_y]]
        total += float(np.minimum(rc_y, 0.0) @ pr.N[e_y])
        return total


def _static(pr: _Pairs) -> np.ndarray:
    """What a replica costs on each pair when elastic pools are paid per GPU."""
    return pr.obj + np.where(pr.elastic[pr.pool], pr.y_obj[pr.pool] / pr.G[pr.pool] * pr.lp_gpus, 0.0)


def _cheapest(static: np.ndarray, rank: np.ndarray, lo: int, hi: int, count: int):
    """Pairs ``lo:hi`` (one unit's) by cost, ties by pool order: the
    ``count`` cheapest and every pair as cheap as the last of them, in
    order, and a function that gives the others in order (None if there are
    none). Most units find room on their cheapest pools, so the others are
    rarely sorted: sorting every unit's pairs took 0.25 s of the seed on a
    million pairs."""
    costs = static[lo:hi]
    last = np.partition(costs, count - 1)[count - 1] if hi - lo > 4 * count else np.nan
    if np.isnan(last):  # a few pairs (or costs that do not compare): all in order
        return lo + np.lexsort((rank[lo:hi], costs)), None
    cheap = costs <= last
    first = lo + np.flatnonzero(cheap)
    others = lo + np.flatnonzero(~cheap)
    ordered = lambda js: js[np.lexsort((rank[js], static[js]))]  # noqa: E731
    return ordered(first), (lambda: ordered(others)) if len(others) else None


def _seed(pr: _Pairs) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray]:
    """Columns for the first LP, the (HA unit, site) rows to start with, and a greedy placement.

    Each unit's cheapest pools, and a quick greedy over GPU counts (the most
    critical and most constrained units first, each on its cheapest pools
    with GPUs left, HA units at most R - 1 per site): the first LP then
    already places nearly everything and its duals price the rest sensibly.
    The greedy's replicas per pair stand in for the LP's when the LP gets no
    time.
    """
    static = _static(pr)
    rank = pr.order[pr.pool]
    counts = np.zeros(len(pr))
    left = (pr.G * pr.N).astype(float)
    sizes = pr.start[1:] - pr.start[:-1]
    chosen: list[np.ndarray] = []
    ha_sites: list[tuple[int, int]] = []
    for u in sorted(range(pr.U), key=lambda u: (-pr.weight[u], sizes[u], u)):
        js, rest = _cheapest(static, rank, int(pr.start[u]), int(pr.start[u + 1]), INITIAL_COLUMNS)
        chosen.append(js[:INITIAL_COLUMNS])
        if pr.ha[u] and len(js):
            ha_sites.append((u, int(pr.site[js[0]])))
        need = float(pr.R[u])
        at_site: dict[int, int] = {}
        while need > 1e-9 and (len(js) or rest is not None):
            if not len(js):
                js, rest = rest(), None
            room = np.minimum(np.floor(left[pr.pool[js]] / pr.lp_gpus[js] + 1e-9), pr.ub[js])
            k = int(np.argmax(room > 0))
            if room[k] <= 0:
                if rest is None:
                    break
                js = js[:0]  # none of these has room: on to the rest
                continue
            j = js[k]
            take = min(room[k], math.ceil(need / pr.a[j] - 1e-9))
            if pr.ha[u]:
                take = min(take, pr.R[u] - 1 - at_site.get(int(pr.site[j]), 0))
                at_site[int(pr.site[j])] = at_site.get(int(pr.site[j]), 0) + take
            if take > 0:
                left[pr.pool[j]] -= take * pr.lp_gpus[j]
                need -= take * pr.a[j]
                counts[j] += take
                chosen.append(js[k : k + 1])
            js = js[k + 1 :]
    columns = np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return columns, sorted(ha_sites), counts


def _dive(master: _Master, pr: _Pairs, x: np.ndarray, obj, u_obj, y_obj) -> np.ndarray:
    """Steer the LP towards integers: fix elastic instances and large replicas, re-solve, repeat.

    Each round rounds every fractional instance count (up from one half,
    else down) and, per unit, as many of its largest fractional placements
    of a large replica up as they add up to (the others down), as column
    bounds; the LP then moves the rest at least cost. When a round would
    leave more replicas unplaced it is retried rounding only up, and when
    that fails too the dive ends. The bounds stay until
    :meth:`_Master.restore`.
    """
    big = (pr.nodes > 0) | (pr.charge * 2 >= pr.G[pr.pool])
    unplaced = master.unplaced_weight()
    for _ in range(DIVE_ROUNDS):
        fixes = _dive_fixes(master, pr, x, big)
        if not fixes:
            break
        for only_up in (False, True):
            chosen = [(c, b[1] if only_up else b[0]) for c, *b in fixes if (b[1] if only_up else b[0]) is not None]
            if not chosen:
                continue
            cols = np.array([c for c, _ in chosen])
            before = master.bounds(cols)
            master.set_bounds(cols, np.array([b[0] for _, b in chosen]), np.array([b[1] for _, b in chosen]))
            _, _, x_new, _ = master.solve(obj, u_obj, y_obj, bound=False)
            if x_new is not None and master.unplaced_weight() <= unplaced + 1e-6:
                x = x_new
                break
            master.set_bounds(cols, *before)
            _, _, x_new, _ = master.solve(obj, u_obj, y_obj, bound=False)
            if x_new is None:
                return x
            x = x_new
        else:
            return x
    return x


def _dive_fixes(master: _Master, pr: _Pairs, x: np.ndarray, big: np.ndarray):
    """One dive round: (column, bounds, bounds when rounding only up), bounds (lower, upper) or None."""
    out = []
    y = master.y
    e = master.elastic_pools
    for p in e[(y[e] - np.floor(y[e] + 1e-6)) > 1e-6].tolist():
        up = (float(math.ceil(y[p] - 1e-6)), float(pr.N[p]))
        down = (0.0, float(math.floor(y[p] + 1e-6)))
        out.append((int(master.y_col[p]), up if y[p] - math.floor(y[p] + 1e-6) >= 0.5 else down, up))
    frac = x - np.floor(x + 1e-6)
    fx = np.flatnonzero(big & (frac > 1e-6) & (master.pair_col >= 0))
    fx = fx[np.lexsort((fx, -frac[fx], pr.unit[fx]))]
    for u, group in itertools.groupby(fx.tolist(), key=lambda j: int(pr.unit[j])):
        # the whole unit is settled: its fractional parts rounded, its other LP columns kept
        group = list(group)
        ups = max(int(round(sum(frac[j] * pr.a[j] for j in group))), 1) if pr.uniform[u] else 1
        for n, j in enumerate(group):
            if n < ups:
                value = float(math.ceil(x[j] - 1e-6))
                out.append((int(master.pair_col[j]), (value, value), (value, float(pr.ub[j]))))
            else:
                value = float(math.floor(x[j] + 1e-6))
                out.append((int(master.pair_col[j]), (value, value), None))
        rest = np.arange(pr.start[u], pr.start[u + 1])
        rest = rest[(master.pair_col[rest] >= 0) & (frac[rest] <= 1e-6)]
        for j in rest.tolist():
            value = float(round(x[j]))
            out.append((int(master.pair_col[j]), (value, value), None))
    return out


class _Plan:
    """An integer placement: replicas per pair, and the room it leaves in every pool."""

    def __init__(self, pairs: _Pairs) -> None:
        self.pr = pairs
        self.n = np.zeros(len(pairs), dtype=np.int64)
        self.small = np.zeros(len(pairs.G), dtype=np.int64)  # charged GPUs of replicas within one node
        self.whole = np.zeros(len(pairs.G), dtype=np.int64)  # nodes of replicas larger than one
        self.sites: dict[int, dict[int, int]] = {int(u): {} for u in np.flatnonzero(pairs.ha)}  # HA unit -> site -> replicas

    def instances(self, p):
        return self.whole[p] + _ceil_div(self.small[p], self.pr.G[p])

    def marginal(self, js: np.ndarray | slice):
        """Per pair of ``js`` (indices, or a slice): (fits, nodes added) of one more replica."""
        pr = self.pr
        p = pr.pool[js]
        G, whole, small, nodes = pr.G[p], self.whole[p], self.small[p], pr.nodes[js]
        before = whole + _ceil_div(small, G)
        after = np.where(nodes > 0, before + nodes, whole + _ceil_div(small + pr.charge[js], G))
        return (after <= pr.N[p]) & (self.n[js] < pr.ub[js]), after - before

    def add(self, j: int, count: int = 1) -> None:
        pr = self.pr
        p = pr.pool[j]
        self.n[j] += count
        if pr.nodes[j]:
            self.whole[p] += pr.nodes[j] * count
        else:
            self.small[p] += pr.charge[j] * count
        u = int(pr.unit[j])
        if u in self.sites:
            at = self.sites[u]
            site = int(pr.site[j])
            at[site] = at.get(site, 0) + count
            if at[site] == 0:
                del at[site]

    def remove(self, j: int, count: int = 1) -> None:
        self.add(j, -count)

    def add_many(self, js: np.ndarray, counts: np.ndarray) -> None:
        """Add ``counts`` replicas on pairs ``js`` at once (no capacity check)."""
        pr = self.pr
        self.n[js] += counts
        whole = pr.nodes[js] > 0
        P = len(pr.G)
        self.whole += np.bincount(pr.pool[js][whole], weights=(pr.nodes[js] * counts)[whole], minlength=P).astype(np.int64)
        self.small += np.bincount(pr.pool[js][~whole], weights=(pr.charge[js] * counts)[~whole], minlength=P).astype(np.int64)
        ha = pr.ha[pr.unit[js]]
        for j, count in zip(js[ha].tolist(), counts[ha].tolist()):
            at = self.sites[int(pr.unit[j])]
            at[int(pr.site[j])] = at.get(int(pr.site[j]), 0) + count

    def fits(self, j: int, count: int = 1) -> bool:
        pr = self.pr
        p = pr.pool[j]
        G = pr.G[p]
        if self.n[j] + count > pr.ub[j]:
            return False
        if pr.nodes[j]:
            return self.whole[p] + pr.nodes[j] * count + _ceil_div(self.small[p], G) <= pr.N[p]
        return self.whole[p] + _ceil_div(self.small[p] + pr.charge[j] * count, G) <= pr.N[p]

    def covered(self, u: int) -> float:
        pr = self.pr
        sl = slice(pr.start[u], pr.start[u + 1])
        return float(self.n[sl] @ pr.a[sl])

    def value(self) -> float:
        """The plan's objective (replicas, and instances of elastic pools)."""
        return float(self.n @ self.pr.obj) + float(self.instances(np.arange(len(self.pr.G))) @ self.pr.y_obj)

    def missing_weight(self) -> float:
        """Unplaced replicas weighted by criticality."""
        return float(sum(self.pr.weight[u] * self.missing(u) for u in range(self.pr.U)))

    def missing(self, u: int) -> int:
        """Replicas of unit ``u`` left unplaced."""
        return max(math.ceil(self.pr.R[u] - self.covered(u) - 1e-9), 0)

    def site_cap(self, u: int) -> int | None:
        return int(self.pr.R[u]) - 1 if self.pr.ha[u] else None

    def best(self, u: int, exclude_site: int | None = None, exclude_pool: int | None = None) -> int | None:
        """The pair of unit ``u`` where one more replica adds least (objective, cost, pool order)."""
        pr = self.pr
        lo = int(pr.start[u])
        unit = slice(lo, int(pr.start[u + 1]))  # a view of the unit's pairs, not a copy
        ok, extra = self.marginal(unit)
        if exclude_site is not None:
            ok &= pr.site[unit] != exclude_site
        if exclude_pool is not None:
            ok &= pr.pool[unit] != exclude_pool
        cap = self.site_cap(u)
        if cap is not None and self.sites[u]:
            full = [s for s, n in self.sites[u].items() if n >= cap]
            if full:
                ok &= ~np.isin(pr.site[unit], full)
        if not ok.any():
            return None
        js, extra = lo + np.flatnonzero(ok), extra[ok]
        p = pr.pool[js]
        primary = pr.obj[js] + extra * pr.y_obj[p]
        least = primary.min()
        if least == least:  # no NaN: only the pairs at the least objective can come first
            tied = np.flatnonzero(primary == least)
            if len(tied) == 1:
                return int(js[tied[0]])
            js, extra, p, primary = js[tied], extra[tied], p[tied], primary[tied]
        secondary = pr.cost[js] + extra * np.where(pr.elastic[p], pr.price[p], 0.0)
        k = np.lexsort((pr.order[p], secondary, primary))[0]
        return int(js[k])

    def step_cost(self, j: int) -> float:
        """What one more replica on pair ``j`` adds to the objective."""
        pr = self.pr
        _, extra = self.marginal(np.array([j]))
        return float(pr.obj[j] + extra[0] * pr.y_obj[pr.pool[j]])

    def make_room(self, j: int, change: _Change) -> bool:
        """Move other units' replicas out of pair ``j``'s pool (through ``change``) until one more fits.

        Each moved replica goes to the best other pool of its own unit.
        False when no room can be made (the caller undoes ``change``).
        """
        pr = self.pr
        p = int(pr.pool[j])
        u = int(pr.unit[j])
        if self.n[j] >= pr.ub[j]:
            return False
        others = pr.at_pool(p)
        # HA replicas stay where they are: moving one could leave its workload on one site
        others = others[(pr.unit[others] != u) & (self.n[others] > 0) & ~pr.ha[pr.unit[others]]]
        if pr.nodes[j]:
            others = others[np.lexsort((others, -pr.nodes[others]))]
        else:
            others = others[np.lexsort((others, -pr.charge[others], pr.nodes[others] > 0))]
        for i in others.tolist():
            while not self.fits(j) and self.n[i] > 0:
                v = int(pr.unit[i])
                change.remove(i)
                target = self.best(v, exclude_pool=p)
                if target is None:
                    change.add(i)
                    break
                change.add(target)
            if self.fits(j):
                return True
        return False


class _Change:
    """Changes to a plan made one by one, then kept or undone as a whole; knows what they cost."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.log: list[tuple[int, int]] = []
        self.before: dict[int, int] = {}  # pool -> instances before the change

    def add(self, j: int, count: int = 1) -> None:
        p = int(self.plan.pr.pool[j])
        if p not in self.before:
            self.before[p] = int(self.plan.instances(p))
        self.plan.add(j, count)
        self.log.append((j, count))

    def remove(self, j: int, count: int = 1) -> None:
        self.add(j, -count)

    def cost(self) -> float:
        """What the change adds to the objective (negative: it saves)."""
        pr = self.plan.pr
        total = sum(count * float(pr.obj[j]) for j, count in self.log)
        for p, before in self.before.items():
            total += (int(self.plan.instances(p)) - before) * float(pr.y_obj[p])
        return total

    def undo(self) -> None:
        for j, count in reversed(self.log):
            self.plan.add(j, -count)
        self.log.clear()
        self.before.clear()

    def redo(self, log: list[tuple[int, int]]) -> None:
        for j, count in log:
            self.add(j, count)


def _insert(plan: _Plan, u: int, exclude_site: int | None = None) -> bool:
    """One more replica of unit ``u``, at the least cost: directly, or where room is made for it.

    Making room (moving replicas of other units to their own best pools) is
    tried on the unit's cheapest pools when the direct placement costs more
    than the unit's cheapest pool would.
    """
    pr = plan.pr
    best_log: list[tuple[int, int]] | None = None
    best_cost = math.inf
    j = plan.best(u, exclude_site=exclude_site)
    if j is not None:
        best_log, best_cost = [(j, 1)], plan.step_cost(j)
    js = np.arange(pr.start[u], pr.start[u + 1])
    if exclude_site is not None:
        js = js[pr.site[js] != exclude_site]
    js = js[pr.obj[js] < best_cost - 1e-9]
    cap = plan.site_cap(u)
    tries = 0
    for k in js[np.lexsort((js, pr.order[pr.pool[js]], pr.obj[js]))].tolist():
        if cap is not None and plan.sites[u].get(int(pr.site[k]), 0) >= cap:
            continue
        if pr.obj[k] >= best_cost - 1e-9 or tries >= EJECT_TRIES:
            break
        tries += 1
        change = _Change(plan)
        if plan.make_room(k, change):
            change.add(k)
            cost = change.cost()
            if cost < best_cost - 1e-9:
                best_log, best_cost = list(change.log), cost
        change.undo()
    if best_log is None:
        return False
    _Change(plan).redo(best_log)
    return True


def _round(pr: _Pairs, x: np.ndarray) -> _Plan:
    """The LP placement rounded, largest replicas first, then every missing replica where it adds least.

    Large replicas are the hard ones to fit once smaller ones have taken the
    room, so they go first: the LP's whole replicas, then their biggest
    fractional placements rounded up, then what is still missing; smaller
    sizes follow in turn.
    """
    plan = _Plan(pr)
    size = np.zeros(pr.U, dtype=np.int64)
    nonempty = pr.start[1:] > pr.start[:-1]
    if nonempty.any():
        size[nonempty] = np.maximum.reduceat(pr.charge, pr.start[:-1][nonempty])

    def take(j: int, count: int) -> None:
        u = int(pr.unit[j])
        cap = plan.site_cap(u)
        if cap is not None:
            count = min(count, cap - plan.sites[u].get(int(pr.site[j]), 0))
        while count > 0 and not plan.fits(j, count):
            count -= 1
        if count > 0:
            plan.add(j, count)

    big_first = sorted(range(pr.U), key=lambda u: (-size[u], u))
    # The LP's whole replicas fit together, since the LP's GPUs per pool fit (and its HA
    # rows hold): all at once, except on pools whose sizes are rounded up (checked one by one).
    floors = np.floor(x + 1e-6).astype(np.int64)
    rounded = pr.rounded
    bulk = (floors > 0) & ~rounded[pr.pool]
    plan.add_many(np.flatnonzero(bulk), floors[bulk])
    for u in big_first:
        sl = np.arange(pr.start[u], pr.start[u + 1])
        for j in sl[(floors[sl] > 0) & rounded[pr.pool[sl]]].tolist():
            take(j, int(floors[j]))
    # each unit's biggest fractional placements rounded up while replicas are missing
    frac = x - floors
    ups = np.flatnonzero(frac >= ROUND_UP)
    ups = ups[np.lexsort((ups, -frac[ups], -size[pr.unit[ups]]))]
    for j in ups.tolist():
        if plan.covered(int(pr.unit[j])) < pr.R[pr.unit[j]] - 1e-9:
            take(j, 1)
    # the rest where it adds least: the most critical first, then large replicas, then the least choice
    for u in sorted(range(pr.U), key=lambda u: (-pr.weight[u], -size[u], pr.start[u + 1] - pr.start[u], u)):
        while plan.covered(u) < pr.R[u] - 1e-9 and _insert(plan, u):
            pass
    return plan


def _branch_and_bound(pr: _Pairs, plan: _Plan, u_plan: float, deadline: float):
    """The exact MILP over every pair, started from ``plan``: (better plan or None, its proven bound or None).

    The unplaced level is held at the plan's; HA spread is exact (``k``
    placed at all, ``2k <= t <= R k``, ``sum_{p at s} x <= t - k``). The
    dual bound is only returned when no pool rounds its sizes up (rounding
    restricts the model, so its bound would not hold for the real one).
    HiGHS stops at ``mip_rel_gap`` :data:`TARGET_GAP` or the deadline.
    """
    h, highspy = _highs()
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", RANDOM_SEED)
    h.setOptionValue("mip_rel_gap", TARGET_GAP)
    h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 0.05))
    U, n = pr.U, len(pr)
    used = pr.used
    cap_row = np.full(len(pr.G), -1, dtype=np.int64)
    cap_row[used] = U + np.arange(len(used))
    elastic = used[pr.elastic[used]]
    ha_units = np.flatnonzero(pr.ha)
    # columns: x (pairs), u (units), y (elastic pools), then k, t per HA unit
    base_u, base_y, base_k = n, n + U, n + U + len(elastic)
    ncols = base_k + 2 * len(ha_units)
    cost = np.concatenate([pr.obj, np.zeros(U), pr.y_obj[elastic], np.zeros(2 * len(ha_units))])
    kt = np.column_stack([np.ones(len(ha_units)), pr.R[ha_units].astype(float)]).ravel()  # k, t, k, t, ...
    upper = np.concatenate([pr.ub.astype(float), pr.R.astype(float), pr.N[elastic].astype(float), kt])
    inf = highspy.kHighsInf
    rows: list[tuple[float, float, np.ndarray, np.ndarray]] = []
    for u in range(U):
        js = np.arange(pr.start[u], pr.start[u + 1])
        hi = float(pr.R[u]) if pr.uniform[u] else inf
        rows.append((float(pr.R[u]), hi, np.append(js, base_u + u), np.append(pr.a[js], 1.0)))
    for p in used.tolist():
        js = pr.at_pool(p)
        idx, val = js, np.where(pr.nodes[js] > 0, pr.G[p] * pr.nodes[js], pr.charge[js]).astype(float)
        if pr.elastic[p]:
            y = base_y + int(np.searchsorted(elastic, p))
            rows.append((-inf, 0.0, np.append(idx, y), np.append(val, -float(pr.G[p]))))
        else:
            rows.append((-inf, float(pr.G[p] * pr.N[p]), idx, val))
    rows.append((-inf, u_plan + 1e-9, base_u + np.arange(U), pr.weight.astype(float)))
    for i, u in enumerate(ha_units.tolist()):
        k, t = base_k + 2 * i, base_k + 2 * i + 1
        js = np.arange(pr.start[u], pr.start[u + 1])
        R = float(pr.R[u])
        rows.append((0.0, 0.0, np.append(js, t), np.append(np.ones(len(js)), -1.0)))
        rows.append((-inf, 0.0, np.array([t, k]), np.array([1.0, -R])))
        rows.append((0.0, inf, np.array([t, k]), np.array([1.0, -2.0])))
        for site in np.unique(pr.site[js]).tolist():
            at = js[pr.site[js] == site]
            rows.append((-inf, 0.0, np.append(at, [t, k]), np.append(np.ones(len(at)), [-1.0, 1.0])))
    lp = highspy.HighsLp()
    lp.num_col_ = ncols
    lp.num_row_ = len(rows)
    lp.col_cost_ = cost
    lp.col_lower_ = np.zeros(ncols)
    lp.col_upper_ = upper
    lp.row_lower_ = np.array([r[0] for r in rows])
    lp.row_upper_ = np.array([r[1] for r in rows])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum([len(r[2]) for r in rows])]).astype(np.int32)
    lp.a_matrix_.index_ = np.concatenate([r[2] for r in rows]).astype(np.int32)
    lp.a_matrix_.value_ = np.concatenate([r[3] for r in rows]).astype(float)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * ncols
    h.passModel(lp)
    start = np.zeros(ncols)
    start[:n] = plan.n
    start[base_u : base_u + U] = [plan.missing(u) for u in range(U)]
    start[base_y : base_y + len(elastic)] = plan.instances(elastic)
    for i, u in enumerate(ha_units.tolist()):
        placed = int(plan.n[pr.start[u] : pr.start[u + 1]].sum())
        start[base_k + 2 * i] = 1.0 if placed else 0.0
        start[base_k + 2 * i + 1] = placed
    h.setSolution(ncols, np.arange(ncols, dtype=np.int32), start)
    h.run()
    info = h.getInfo()
    dual = float(info.mip_dual_bound)
    bound = dual if math.isfinite(dual) and not pr.rounded[used].any() else None
    if info.primal_solution_status != 2:
        return None, bound
    sol = np.round(np.array(h.getSolution().col_value)[:n]).astype(np.int64)
    better = _Plan(pr)
    better.add_many(np.flatnonzero(sol > 0), sol[sol > 0])
    return better, bound


def _repair_ha(plan: _Plan) -> int:
    """Every HA unit on two sites or not at all; the replicas dropped."""
    pr = plan.pr
    dropped = 0
    for u in sorted(plan.sites):
        at = plan.sites[u]
        placed = sum(at.values())
        if placed == 0 or len(at) >= 2:
            continue
        (site,) = at
        js = [j for j in range(pr.start[u], pr.start[u + 1]) if plan.n[j] > 0]
        moved = None
        if placed >= 2 or placed == pr.R[u]:  # move one replica to another site
            moved = max(js, key=lambda j: (pr.obj[j], pr.order[pr.pool[j]], j))
            plan.remove(moved)
        if _insert(plan, u, exclude_site=site):
            continue
        if moved is not None:
            plan.add(moved)
        for j in js:
            dropped += int(plan.n[j])
            plan.remove(j, int(plan.n[j]))
    return dropped


def _improve(plan: _Plan) -> None:
    """Close elastic instances: move the replicas of a pool's last instance where they cost less.

    A pool's last instance holds ``small - G (instances - whole - 1)`` GPUs
    of small replicas; moving that many out (each to its unit's best other
    pool) closes it, and the moves are kept when they save. Pools with the
    emptiest last instance go first.
    """
    pr = plan.pr
    if not (pr.y_obj > 0).any():
        return
    for _ in range(IMPROVE_ROUNDS):
        changed = False
        pools = np.flatnonzero((pr.y_obj > 0) & (plan.small > 0))
        last = plan.small[pools] - pr.G[pools] * (plan.instances(pools) - plan.whole[pools] - 1)
        for p in pools[np.lexsort((pools, -pr.y_obj[pools], last))].tolist():
            need = int(plan.small[p]) - int(pr.G[p]) * (int(plan.instances(p)) - int(plan.whole[p]) - 1)
            if need <= 0:
                continue
            change = _Change(plan)
            js = pr.at_pool(p)
            js = js[(plan.n[js] > 0) & (pr.nodes[js] == 0) & ~pr.ha[pr.unit[js]]]
            for j in js[np.lexsort((js, -pr.charge[js]))].tolist():
                while plan.n[j] > 0 and need > 0:
                    change.remove(j)
                    target = plan.best(int(pr.unit[j]), exclude_pool=p)
                    if target is None:
                        change.add(j)
                        break
                    change.add(target)
                    need -= int(pr.charge[j])
                if need <= 0:
                    break
            if need <= 0 and change.cost() < -1e-9:
                changed = True
            else:
                change.undo()
        if not changed:
            return


def optimise_large(spec, facts, adm: Admissibility, started: float, units, unplaced_fixed, ha_blocked, beside: Meanwhile | None = None) -> SolveResult:
    """The plan for a large model (see the module docstring)."""
    kind = spec.objective.minimize.value
    time_limit = float(spec.objective.time_limit_s)
    pools = {p.key: p for p in facts.pools}
    site_kind = {s.id: s.kind.value for s in spec.sites}
    prefer = [k.value for k in spec.objective.prefer_kinds]
    rank = {k: prefer.index(k) if k in prefer else len(prefer) for k in ("on-prem", "colocation", "cloud")}
    cost_per_gpu, imputed = pool_prices(facts)
    notes: list[str] = []
    deadline = started + time_limit

    pr = _Pairs(units, facts.pools, kind, cost_per_gpu, rank, site_kind)
    master = _Master(pr, started + LP_SHARE * time_limit, beside)
    seed, ha_sites, greedy = _seed(pr)
    master.add(seed, np.zeros(len(pr)))
    master.ha_rows(ha_sites)

    t0 = time.perf_counter()
    # One LP for both levels: an unplaced replica costs more than any placement
    # (big_m), so the optimum places what it can, as cheaply as it can.
    big_m = 10.0 * (float(pr.obj.max(initial=0.0)) + float(pr.y_obj.max(initial=0.0)) * float(max(pr.nodes.max(initial=0), 1)) + 1.0)
    u_obj = big_m * pr.weight
    value, bound, x, converged = master.solve(pr.obj, u_obj, pr.y_obj)
    if x is None:
        x, bound, converged = greedy, None, False
        notes.append("the LP relaxation found no solution in the time limit; the plan is greedy")
    t1 = time.perf_counter()

    if value is not None and len(pr) <= DIVE_PAIRS:
        x = _dive(master, pr, x, pr.obj, u_obj, pr.y_obj)
    plan = _round(pr, x)
    dropped = _repair_ha(plan)
    _improve(plan)
    dropped += _repair_ha(plan)  # nothing after the first repair moves HA replicas; this only checks
    t2 = time.perf_counter()

    missing = np.array([plan.missing(u) for u in range(pr.U)], dtype=float)
    u_plan = float(pr.weight @ missing)
    u_bound = 0.0
    if u_plan > 0:
        master.restore()
        # level 1 on its own: the fewest weighted unplaced replicas the LP allows ...
        _, lp_u_bound, _, u_converged = master.solve(np.zeros(len(pr)), pr.weight.astype(float), np.zeros(len(pr.G)))
        u_bound = max(lp_u_bound, 0.0) if lp_u_bound is not None else 0.0
        # ... and level 2 with the unplaced level fixed at the plan's, where the bound must hold
        master.fix_unplaced(u_plan + 1e-9 * max(1.0, u_plan))
        _, bound, _, o_converged = master.solve(pr.obj, np.zeros(pr.U), pr.y_obj)
        converged = converged and u_converged and o_converged
    # every objective (cost, GPUs, latency) is >= 0
    bound = max(bound or 0.0, 0.0)
    milp = None
    if _gap(plan.value(), bound) > TARGET_GAP and len(pr) <= MILP_PAIRS and time.perf_counter() < deadline - 0.5:
        milp = _branch_and_bound(pr, plan, u_plan, min(deadline, time.perf_counter() + MILP_SHARE * time_limit))
        if milp is not None:
            better, milp_bound = milp
            if better is not None and better.value() < plan.value() - 1e-9 and better.missing_weight() <= u_plan + 1e-9:
                plan = better
            if milp_bound is not None:
                bound = max(bound, milp_bound)
    t3 = time.perf_counter()

    # deal units back to workloads
    xs: dict[tuple[str, str], int] = {}
    wcand: dict[tuple[str, str], Candidate] = {}
    unplaced = {w: n for w, n in unplaced_fixed.items() if n > 0}
    placed_pairs = np.flatnonzero(plan.n > 0)
    by_unit = np.split(placed_pairs, np.searchsorted(pr.unit[placed_pairs], np.arange(1, pr.U)))
    for u, unit in enumerate(units):
        queue = [[j, int(plan.n[j])] for j in by_unit[u].tolist()]
        if not unit.uniform:
            ((w_id, _),) = unit.members
            for j, n in queue:
                key = (w_id, pr.pool_keys[pr.pool[j]])
                xs[key] = n
                wcand[key] = pr.candidate(j, pools)
            if missing[u]:
                unplaced[w_id] = int(missing[u])
            continue
        for w_id, need in unit.members:
            while need and queue:
                j, n = queue[0]
                take = min(n, need)
                key = (w_id, pr.pool_keys[pr.pool[j]])
                xs[key] = xs.get(key, 0) + take
                if key not in wcand:
                    wcand[key] = pr.candidate(j, pools)
                need -= take
                queue[0][1] -= take
                if queue[0][1] == 0:
                    queue.pop(0)
            if need:
                unplaced[w_id] = need
    layout, replica_nodes, nodes_used = _pack(xs, wcand, pools, pr.models, {})
    instances = {key: nodes_used.get(key, 0) for key in pools if pools[key].elastic}
    plan_value = _objective_value(kind, xs, wcand, pools, cost_per_gpu, instances)
    bound = min(bound, plan_value)
    gap = _gap(plan_value, bound) or 0.0

    u_floor = math.ceil(u_bound - 1e-6)
    u_status = "optimal" if u_plan <= u_floor + 1e-6 else "feasible"
    o_status = "optimal" if gap <= MIP_REL_GAP else "feasible"
    if not converged:
        o_status = "time-limit"
        notes.append("the LP relaxation stopped at the time limit before every pair was priced: the bound is weaker")
    phases = [
        Phase("unplaced", u_status, u_plan, float(u_bound), _gap(u_plan, u_bound), 0.0),
        Phase("objective", o_status, plan_value, bound, gap, (t1 - t0) + (t3 - t2)),
        Phase("rounding", "optimal", plan_value, None, None, t2 - t1),
    ]
    statuses = {u_status, o_status}
    status = "time-limit" if "time-limit" in statuses else ("optimal" if statuses == {"optimal"} else "feasible")
    notes.append(
        f"large model ({len(pr):,} admissible unit-pool pairs): the bound is the LP relaxation's "
        "and the plan is rounded from it"
    )
    if u_plan > u_floor + 1e-6:
        notes.append(
            f"unplaced replicas (weighted by criticality: high 4, medium 2, low 1): {u_plan:g}; proven minimum {u_floor:g}"
        )
    if dropped:
        notes.append(f"{dropped} replicas of criticality high left out: no second site with room")
    used = {key for _, key in xs}
    for key, nm in sorted(pr.models.items()):
        if not nm.exact and key in used:
            g = pools[key].gpus_per_node
            notes.append(f"{key}: {len(nm.sizes)} replica sizes on {g}-GPU nodes; sizes rounded up to divisors of {g} (safe bound)")
    return SolveResult(
        x=xs,
        unplaced=unplaced,
        ha_blocked=ha_blocked,
        layout=layout,
        replica_nodes=replica_nodes,
        instances=instances,
        nodes_used=nodes_used,
        node_models=pr.models,
        phases=phases,
        status=status,
        value=plan_value,
        bound=bound,
        gap=gap,
        solver=f"highs {master.version}",
        variables=master.columns,
        constraints=master.rows,
        seconds=time.perf_counter() - started,
        imputed=imputed,
        notes=notes,
        candidates=wcand,
    )
