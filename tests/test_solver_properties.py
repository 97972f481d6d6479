"""Property test: every plan the solver returns is valid, checked without the solver's code.

Random small specs (sites, owned and elastic pools, links, datasets, workloads
with accelerators, memory floors, latency budgets, placement constraints,
criticality) are solved; each placement is then re-checked from the spec and
the catalog alone: GPU model allowed, memory per GPU, latency to every input
over the links (own Dijkstra), user placement constraints, capacity and node
shape per pool and node, and HA spread.
"""

from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from pathlib import Path

import networkx as nx
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.catalog import load_catalog
from planner.facts import derive
from planner.solver import solve
from planner.spec.loader import load_spec

OWNED_GPUS = ["H100", "H200", "B200", "L40S", "A100-40GB"]
INSTANCES = {"p5.48xlarge": ("H100", 8), "p4d.24xlarge": ("A100-40GB", 8), "p5en.48xlarge": ("H200", 8)}
KINDS = ["on-prem", "colocation", "cloud"]


@st.composite
def specs(draw) -> dict:
    n_sites = draw(st.integers(1, 4))
    sites = []
    for i in range(n_sites):
        kind = draw(st.sampled_from(KINDS))
        pools = []
        for j in range(draw(st.integers(0, 2))):
            if kind == "cloud" and draw(st.booleans()):
                instance = draw(st.sampled_from(sorted(INSTANCES)))
                pool = {"id": f"e{j}", "instance": instance, "max_nodes": draw(st.integers(1, 3))}
                if draw(st.booleans()):
                    pool["price_per_hour"] = draw(st.sampled_from([20.0, 40.0, 80.0]))
                    pool["price_as_of"] = "2026-01-01"
            else:
                pool = {
                    "id": f"p{j}",
                    "gpu": draw(st.sampled_from(OWNED_GPUS)),
                    "nodes": draw(st.integers(1, 3)),
                    "gpus_per_node": draw(st.sampled_from([2, 4, 6, 8])),
                }
                if draw(st.booleans()):
                    pool["cost_per_gpu_hour"] = draw(st.sampled_from([1.0, 2.5, 4.0]))
            pools.append(pool)
        site = {"id": f"s{i}", "kind": kind, "jurisdiction": "US-MN", "zone": "us", "pools": pools}
        if kind == "cloud":
            site["provider"] = "aws"
        sites.append(site)
    ids = [s["id"] for s in sites]
    pairs = [(a, b) for n, a in enumerate(ids) for b in ids[n + 1 :]]
    links = [
        {"between": [a, b], "latency_ms": draw(st.sampled_from([1, 4, 9, 16, 25]))}
        for a, b in pairs
        if draw(st.booleans())
    ]
    datasets = [
        {"id": f"d{k}", "site": draw(st.sampled_from(ids)), "classification": "deidentified"}
        for k in range(draw(st.integers(0, 2)))
    ]
    workloads = []
    for k in range(draw(st.integers(1, 4))):
        w = {
            "id": f"w{k}",
            "kind": "inference",
            "gpus": draw(st.sampled_from([1, 2, 3, 4, 8, 12, 16])),
            "replicas": draw(st.integers(1, 4)),
            "criticality": draw(st.sampled_from(["high", "medium", "low"])),
        }
        if draw(st.booleans()):
            w["gpu_memory_gb"] = draw(st.sampled_from([40, 80, 100, 150]))
        if draw(st.booleans()):
            w["accelerators"] = draw(st.lists(st.sampled_from(OWNED_GPUS), min_size=1, max_size=3, unique=True))
        if datasets and draw(st.booleans()):
            w["inputs"] = draw(st.lists(st.sampled_from([d["id"] for d in datasets]), min_size=1, unique=True))
            if draw(st.booleans()):
                w["max_latency_ms"] = draw(st.sampled_from([0, 5, 10, 20]))
        placement = {}
        if draw(st.booleans()):
            placement["avoid"] = draw(st.lists(st.sampled_from(ids), max_size=2, unique=True))
        if draw(st.booleans()):
            placement["kinds"] = draw(st.lists(st.sampled_from(KINDS), min_size=1, unique=True))
        if draw(st.booleans()):
            placement["sites"] = draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
        if placement:
            w["placement"] = placement
        workloads.append(w)
        for copy in range(draw(st.sampled_from([0, 0, 1, 2]))):  # identical workloads are pooled by the model
            workloads.append({**w, "id": f"w{k}c{copy}"})
    objective = {"minimize": draw(st.sampled_from(["cost", "gpus", "latency"])), "time_limit_s": 5}
    if draw(st.booleans()):
        objective["prefer_kinds"] = draw(st.lists(st.sampled_from(KINDS), min_size=1, unique=True))
    return {
        "apiVersion": "medplan/v1",
        "metadata": {"name": "prop"},
        "sites": sites,
        "links": links,
        "datasets": datasets,
        "workloads": workloads,
        "objective": objective,
    }


def _latencies(doc: dict) -> dict[str, dict[str, float]]:
    g = nx.Graph()
    g.add_nodes_from(s["id"] for s in doc["sites"])
    for link in doc["links"]:
        a, b = link["between"]
        g.add_edge(a, b, w=link["latency_ms"])
    return {s: nx.single_source_dijkstra_path_length(g, s, weight="w") for s in g.nodes}


def _pool_facts(doc: dict) -> dict[tuple[str, str], dict]:
    catalog = load_catalog()
    out = {}
    for s in doc["sites"]:
        for p in s["pools"]:
            if "instance" in p:
                if p["instance"] in INSTANCES:
                    gpu, per_node = INSTANCES[p["instance"]]
                else:  # from the catalog's instance table, not from the solver
                    instance = catalog.instance(p["instance"])
                    gpu, per_node = catalog.gpu(instance.gpu).id, instance.gpus
                out[(s["id"], p["id"])] = {"gpu": gpu, "per_node": per_node, "nodes": p["max_nodes"], "elastic": True}
            else:
                out[(s["id"], p["id"])] = {"gpu": p["gpu"], "per_node": p["gpus_per_node"], "nodes": p["nodes"], "elastic": False}
            out[(s["id"], p["id"])]["memory"] = catalog.gpu(out[(s["id"], p["id"])]["gpu"]).memory_gb
    return out


def _check(doc: dict, plan, sizing=None) -> None:
    """Every placement admissible, every pool and node within capacity, HA spread.

    ``sizing`` (workload -> GPU model -> (fits, GPUs per replica)) is for
    workloads sized from a model; without it a replica takes the workload's
    own ``gpus`` and fits where ``gpu_memory_gb`` allows.
    """
    sites = {s["id"]: s for s in doc["sites"]}
    workloads = {w["id"]: w for w in doc["workloads"]}
    datasets = {d["id"]: d for d in doc["datasets"]}
    pools = _pool_facts(doc)
    latency = _latencies(doc)
    used_gpus: dict[tuple[str, str], int] = defaultdict(int)
    node_load: dict[tuple[str, str, int], int] = defaultdict(int)
    whole: dict[tuple[str, str, int], int] = defaultdict(int)
    placed: dict[str, list] = defaultdict(list)
    for p in plan.placements:
        w = workloads[p.workload]
        placed[p.workload].append(p)
        pool = pools[(p.site, p.pool)]
        assert p.gpu == pool["gpu"]
        if sizing is None:
            assert p.gpus == w["gpus"]  # no model: the given GPUs per replica
        else:
            fits, gpus = sizing[p.workload][p.gpu]
            assert fits and p.gpus == gpus
        if w.get("accelerators"):
            assert pool["gpu"] in w["accelerators"]
        if w.get("gpu_memory_gb") is not None:
            assert pool["memory"] >= w["gpu_memory_gb"]
        for name in w.get("inputs", []):
            src = datasets[name]["site"]
            assert p.site in latency[src], "placed where an input cannot reach"
            if w.get("max_latency_ms") is not None:
                assert latency[src][p.site] <= w["max_latency_ms"] + 1e-9
        placement = w.get("placement", {})
        if placement.get("sites"):
            assert p.site in placement["sites"]
        assert p.site not in placement.get("avoid", [])
        if placement.get("kinds"):
            assert sites[p.site]["kind"] in placement["kinds"]
        used_gpus[(p.site, p.pool)] += p.gpus
        per_node = pool["per_node"]
        assert all(1 <= n <= pool["nodes"] for n in p.nodes)
        if p.gpus > per_node:
            assert len(p.nodes) == math.ceil(p.gpus / per_node)
            for n in p.nodes:
                whole[(p.site, p.pool, n)] += 1
        else:
            (n,) = p.nodes
            node_load[(p.site, p.pool, n)] += p.gpus
    for key, gpus in used_gpus.items():
        pool = pools[key]
        assert gpus <= pool["nodes"] * pool["per_node"]
        usage = plan.pools[f"{key[0]}/{key[1]}"]
        assert usage.gpus_used == gpus
        if pool["elastic"]:
            assert usage.instances is not None and usage.instances <= pool["nodes"]
            assert usage.instances * pool["per_node"] >= gpus
    for (site, pool_id, n), load in node_load.items():
        assert load <= pools[(site, pool_id)]["per_node"], "a node holds more GPUs than it has"
        assert (site, pool_id, n) not in whole, "a whole-node replica shares its node"
    assert all(count == 1 for count in whole.values()), "two whole-node replicas on one node"
    unplaced = {u.workload: u.replicas_unplaced for u in plan.unplaced}
    for w in doc["workloads"]:
        reps = placed.get(w["id"], [])
        assert len(reps) + unplaced.get(w["id"], 0) == w.get("replicas", 1)
        assert sorted(p.replica for p in reps) == list(range(1, len(reps) + 1))
        if w.get("criticality") == "high" and w.get("replicas", 1) >= 2 and reps:
            assert len({p.site for p in reps}) >= 2, "HA spread violated"
    for u in plan.unplaced:
        assert u.reasons, "an unplaced workload without a reason"
    assert plan.objective.bound <= plan.objective.value + 1e-6


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_every_plan_is_admissible_and_fits(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        spec = load_spec(path)
    plan = solve(spec, derive(spec))
    _check(doc, plan)
    assert plan.objective.status == "optimal"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(specs())
def test_every_large_model_plan_is_admissible_and_fits(monkeypatch, doc):
    """The same checks on the path large models take (LP bound, rounded plan), forced on small specs."""
    monkeypatch.setattr("planner.solver.model.EXACT_PAIRS", -1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        spec = load_spec(path)
    plan = solve(spec, derive(spec))
    _check(doc, plan)
    assert plan.objective.status in ("optimal", "feasible")
    assert 0.0 <= plan.objective.gap <= 1.0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 1.0, 1.5, 2.0, math.inf, math.nan]), st.integers(0, 5)), max_size=80),
    st.integers(0, 10),
    st.integers(1, 12),
)
def test_a_units_pairs_come_cheapest_first_in_the_seeds_order(pairs, lo, count):
    """The seed's order of a unit's pairs, its cheapest first and the others
    sorted only when asked, is the order of one sort by cost, then pool."""
    import numpy as np

    from planner.solver.relaxation import _cheapest

    static = np.array([0.0] * lo + [cost for cost, _ in pairs])
    rank = np.array([0] * lo + [rank for _, rank in pairs], dtype=np.int64)
    hi = len(static)
    first, rest = _cheapest(static, rank, lo, hi, count)
    both = np.concatenate([first, rest() if rest is not None else np.zeros(0, dtype=np.int64)])
    assert both.tolist() == (lo + np.lexsort((rank[lo:], static[lo:]))).tolist()
    assert len(first) >= min(count, hi - lo)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 1.0, 2.0, math.inf, math.nan]),  # objective per replica
            st.sampled_from([0.0, 1.0, 3.0]),  # cost per replica
            st.booleans(),  # elastic pool
            st.integers(1, 8),  # GPUs charged per replica
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 3),
)
def test_the_best_pair_for_one_more_replica_is_the_first_of_one_sort(pairs, used):
    """Rounding and closing instances put a replica where it adds least: the
    first pair by objective, then cost, then pool order, of one sort."""
    from types import SimpleNamespace

    import numpy as np

    from planner.solver.relaxation import _Plan

    n = len(pairs)
    obj, cost, elastic, charge = (np.array(column) for column in zip(*pairs))

    class Pairs(SimpleNamespace):
        def __len__(self) -> int:
            return n

    pr = Pairs(
        start=np.array([0, n]), pool=np.arange(n, dtype=np.int32), site=np.arange(n, dtype=np.int32),
        G=np.full(n, 8), N=np.full(n, 2), nodes=np.zeros(n, dtype=np.int32), charge=charge.astype(np.int32),
        ub=np.full(n, 4, dtype=np.int32), obj=obj.astype(float), cost=cost.astype(float), elastic=elastic.astype(bool),
        y_obj=np.where(elastic, 5.0, 0.0), price=np.full(n, 5.0), order=np.arange(n, 0, -1), ha=np.zeros(1, dtype=bool),
        R=np.array([1]),
    )
    plan = _Plan(pr)
    plan.small[: n : 2] = used * 3  # some pools partly used: one more replica may open an instance, or not fit
    ok, extra = plan.marginal(np.arange(n))
    js = np.flatnonzero(ok)
    if not len(js):
        assert plan.best(0) is None
        return
    primary = obj[js] + extra[js] * pr.y_obj[js]
    secondary = cost[js] + extra[js] * np.where(elastic[js], 5.0, 0.0)
    assert plan.best(0) == int(js[np.lexsort((pr.order[js], secondary, primary))[0]])
