"""The site graph and lineage give exactly what networkx gives: the same
latencies (values and types), the same route between every pair of sites,
equal-latency ties included, whether routes come from the Python Dijkstra or
from a batch through scipy, and the same data reach."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

import networkx as nx
import pytest

import planner.graph as graph_module
from planner.facts import derive
from planner.generate import generate_yaml
from planner.graph import _UNSET, PERSONAL, FlowEnds, SiteGraph, flow_end, lineage, spec_index
from planner.spec.loader import load_spec
from tests.conftest import child_pids, failing_in_copies


def _nx_graph(spec) -> nx.Graph:
    g = nx.Graph()
    for site in spec.sites:
        g.add_node(site.id)
    for link in spec.links:
        a, b = link.between
        g.add_edge(a, b, latency=link.latency_ms, key=link.key)
    return g


def _assert_same_as_networkx(spec, extra_names=("nowhere",), graph: SiteGraph | None = None) -> None:
    """Every route and latency of ``graph`` (default: a fresh one) is networkx's."""
    g = _nx_graph(spec)
    graph = graph or SiteGraph(spec)
    names = list(g.nodes) + list(extra_names)
    for source in names:
        if source in g:
            dist, paths = nx.single_source_dijkstra(g, source, weight="latency")
        else:
            dist, paths = {}, {}
        for target in names:
            route = graph.route(source, target)
            assert (route.source, route.target) == (source, target)
            assert graph.connected(source, target) is (target in dist)
            if target not in dist:
                assert not route.reachable and route.latency_ms is None and route.sites == () and route.links == ()
                continue
            assert route.reachable
            assert route.sites == tuple(paths[target]), (source, target)
            assert route.links == tuple(g.edges[a, b]["key"] for a, b in zip(paths[target], paths[target][1:]))
            assert route.latency_ms == dist[target] and type(route.latency_ms) is type(dist[target])
        latencies = graph.latencies_from(source)
        assert latencies == dist  # in any order
        assert {k: type(v) for k, v in latencies.items()} == {k: type(v) for k, v in dist.items()}
        assert graph.latency_list(source, names) == [dist.get(t, float("inf")) for t in names]
        own = tuple(site.id for site in spec.sites)  # what the solver asks: read off in one slice
        assert graph.latency_list(source, own) == [dist.get(t, float("inf")) for t in own]


def _link(a: str, b: str, latency: float) -> SimpleNamespace:
    return SimpleNamespace(between=(a, b), latency_ms=latency, key="~".join(sorted((a, b))))


def _site_spec(sites: list[str], links: list[SimpleNamespace]) -> SimpleNamespace:
    return SimpleNamespace(sites=[SimpleNamespace(id=s) for s in sites], links=links)


@pytest.mark.parametrize("seed", range(40))
def test_routes_match_networkx_with_many_ties(seed):
    """Few distinct latencies (zero among them) make many equal-latency routes."""
    rng = random.Random(seed)
    n = rng.randint(1, 14)
    sites = [f"s{i}" for i in range(n)]
    rng.shuffle(sites)
    links = []
    for _ in range(rng.randint(0, 3 * n)):
        a, b = rng.sample(sites, 2) if n > 1 else (sites[0], sites[0])
        if a != b:
            links.append(_link(a, b, rng.choice([0.0, 1.0, 1.0, 2.0, 3.0, 0.1, 0.2, 0.3])))
    _assert_same_as_networkx(_site_spec(sites, links))


def test_routes_match_networkx_with_repeated_pairs_and_unlisted_sites():
    """A repeated pair takes the last link's latency and key; a link may name a site not listed."""
    links = [_link("a", "b", 5.0), _link("b", "c", 1.0), _link("c", "a", 1.0), _link("b", "a", 1.0),
             _link("c", "x", 0.0), _link("x", "d", 2.0), _link("a", "d", 2.0)]
    links[3].key = "second-a-b"
    spec = _site_spec(["a", "b", "c", "d", "lonely"], links)
    _assert_same_as_networkx(spec)
    assert SiteGraph(spec).route("a", "b").links == ("second-a-b",)
    assert SiteGraph(spec).route("a", "lonely").reachable is False


def test_a_route_asked_again_is_the_same_route():
    """Flows between the same two sites ask for one route: it is worked out once."""
    spec = _site_spec(["a", "b", "c", "lonely"], [_link("a", "b", 1.0), _link("b", "c", 1.0)])
    graph = SiteGraph(spec)
    first = graph.route("a", "c")
    assert graph.route("a", "c") is first and first.sites == ("a", "b", "c")
    assert graph.route("c", "a").sites == ("c", "b", "a")
    assert graph.route("a", "lonely") is graph.route("a", "lonely") and not graph.route("a", "lonely").reachable


@pytest.fixture
def batch_always(monkeypatch):
    """Make every batch, however small, go through scipy; count the exact Python runs."""
    monkeypatch.setattr(graph_module, "BATCH_MIN_WORK", 0)
    runs: list[int] = []
    python = graph_module._dijkstra
    monkeypatch.setattr(graph_module, "_dijkstra", lambda adj, source: runs.append(source) or python(adj, source))
    return runs


def _random_spec(rng: random.Random, latencies: list[float]) -> SimpleNamespace:
    """40-200 sites in a few components, some listed but never linked, some named only by links."""
    n = rng.randint(40, 200)
    sites = [f"s{i}" for i in range(n)]
    linked = sites[: n - rng.randint(0, 5)] + [f"x{i}" for i in range(rng.randint(0, 5))]
    rng.shuffle(linked)
    parts = [linked[: len(linked) // 2], linked[len(linked) // 2:]] if rng.random() < 0.3 else [linked]
    links = []
    for part in parts:
        for _ in range(rng.randint(len(part), 3 * len(part))):
            a, b = rng.sample(part, 2)
            links.append(_link(a, b, rng.choice(latencies)))
    return _site_spec(sites, links)


def _assert_batch_same_as_networkx(spec) -> SiteGraph:
    graph = SiteGraph(spec)
    named = [s.id for s in spec.sites] + [end for link in spec.links for end in link.between]
    graph.prepare(named + ["nowhere"])
    assert set(graph._trees) == set(named)  # all in the batch
    _assert_same_as_networkx(spec, graph=graph)
    return graph


@pytest.mark.parametrize("seed", range(6))
def test_batch_routes_match_networkx_with_distinct_latencies(seed, batch_always):
    rng = random.Random(seed)
    _assert_batch_same_as_networkx(_random_spec(rng, [round(rng.uniform(0.1, 80.0), 3) for _ in range(5000)]))


@pytest.mark.parametrize("seed", range(10))
def test_batch_routes_match_networkx_with_many_ties_and_zero_latencies(seed, batch_always):
    """Equal-latency routes whose order only networkx's push order settles send their source to the Python run."""
    rng = random.Random(seed)
    spec = _random_spec(rng, [0.0, 0.0, 1.0, 1.0, 2.0, 3.0, 0.1, 0.2, 0.3])
    graph = _assert_batch_same_as_networkx(spec)
    assert 0 < len(batch_always) < len(graph._trees)


def test_batch_falls_back_only_where_a_tie_needs_the_push_order(batch_always):
    """From a, d is 2 away through b or through c: only networkx's push order
    chooses, so a's routes come from the Python run once a route meets d. From
    b, e is reached over a zero-latency link from d alone, at d's own distance:
    no tie there."""
    links = [_link("a", "b", 1.0), _link("a", "c", 1.0), _link("b", "d", 1.0), _link("c", "d", 1.0),
             _link("d", "e", 0.0)]
    spec = _site_spec(["a", "b", "c", "d", "e"], links)
    graph = SiteGraph(spec)
    graph.prepare(["a", "b", "c", "d", "e"])
    assert graph.route("b", "e") == graph_module.Route("b", "e", True, 1.0, ("b", "d", "e"), ("b~d", "d~e"))
    assert graph.route("a", "b").sites == ("a", "b") and batch_always == []
    assert graph.route("a", "e").sites == ("a", "b", "d", "e") and batch_always == [0]
    _assert_same_as_networkx(spec, graph=graph)


def test_batch_keeps_trees_already_computed_and_small_batches_stay_in_python(monkeypatch):
    spec = _site_spec(["a", "b", "c"], [_link("a", "b", 2.0), _link("b", "c", 3.0)])
    graph = SiteGraph(spec)
    graph.prepare(["a", "b", "c", "nowhere"])  # far too little work to import scipy for
    assert graph._trees == {}
    graph.route("a", "c")
    first = graph._trees["a"]
    monkeypatch.setattr(graph_module, "BATCH_MIN_WORK", 0)
    graph.prepare(["a", "b", "c"])
    assert graph._trees["a"] is first and set(graph._trees) == {"a", "b", "c"}
    _assert_same_as_networkx(spec, graph=graph)


def test_routes_match_networkx_on_a_generated_spec(tmp_path, batch_always):
    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(40, 200, 3), encoding="utf-8")
    spec = load_spec([path])
    _assert_same_as_networkx(spec)
    _assert_batch_same_as_networkx(spec)


def test_derive_gives_the_same_flows_with_a_batch(tmp_path, monkeypatch):
    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(60, 600, 5), encoding="utf-8")
    spec = load_spec([path])
    python = derive(spec)
    assert python.graph._trees and all(_UNSET not in t.pred for t in python.graph._trees.values())
    monkeypatch.setattr(graph_module, "BATCH_MIN_WORK", 0)
    batches: list = []
    real = graph_module._batch_routes
    monkeypatch.setattr(graph_module, "_batch_routes", lambda adj, sources: batches.append(sources) or real(adj, sources))
    batch = derive(spec)
    assert batches  # the routes came from one batch
    assert batch.flows == python.flows
    assert [type(f.route.latency_ms) for f in batch.flows if f.route] == [
        type(f.route.latency_ms) for f in python.flows if f.route]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_batch_gives_the_predecessors_the_distances_tell(seed, monkeypatch):
    """Every predecessor a batch sets is the one _pred_from works out from its
    distances, and it sets one wherever exactly one neighbour gives the
    site's distance; unset where several do (_pred_from then chooses, or
    leaves an equal-latency tie to an exact run) or the site is not reached;
    -1 at the source."""
    rng = random.Random(seed)
    n = 120
    adj_sets: list[dict[int, float]] = [{} for _ in range(n)]
    for _ in range(260):  # whole-number latencies: many equal-latency ties; some sites left unlinked
        a, b = rng.randrange(n - 10), rng.randrange(n - 10)
        if a != b:
            adj_sets[a][b] = adj_sets[b][a] = float(rng.choice([0, 1, 2, 3, 5]))
    adj = [tuple(edges.items()) for edges in adj_sets]
    sources = sorted(rng.sample(range(n), 40))
    monkeypatch.setattr(graph_module, "PRED_CHUNK", 7)  # several chunks
    trees = graph_module._trees_from(graph_module._batch_routes(adj, sources), sources, n)
    ties = chosen = 0
    for source, tree in zip(sources, trees):
        for v in range(n):
            if v == source:
                assert tree.pred[v] == -1
                continue
            if tree.distance[v] == float("inf"):
                assert tree.pred[v] == _UNSET, (source, v)
                continue
            givers = [u for u, w in adj[v] if tree.distance[u] + w == tree.distance[v]]
            found = graph_module._pred_from(adj, tree.distance, v)
            if len(givers) == 1:
                assert tree.pred[v] == givers[0] == found, (source, v)
            else:
                assert tree.pred[v] == _UNSET, (source, v)
                ties += found is None
                chosen += found is not None
    assert ties and chosen  # both cases left to a route occur: a tie, and several givers at different distances


def _distinct_spec(seed: int) -> SimpleNamespace:
    rng = random.Random(seed)
    return _random_spec(rng, [round(rng.uniform(0.1, 80.0), 3) for _ in range(500)])


def test_the_route_worker_computes_a_batch(may_fork, monkeypatch):
    monkeypatch.setattr(graph_module, "BATCH_MIN_WORK", 0)
    spec = _distinct_spec(7)
    graph_module.start_route_worker()
    assert graph_module._worker is not None and len(child_pids()) == 1
    graph = SiteGraph(spec)
    graph.prepare([s.id for s in spec.sites])
    assert graph_module._worker is None and graph._pending is not None
    _assert_same_as_networkx(spec, graph=graph)  # the first route takes the worker's distances
    assert graph._pending is None and not child_pids()


@pytest.mark.parametrize("seed", [7, 9])
def test_the_route_worker_reads_the_routes_between_the_pairs_asked(seed, may_fork, monkeypatch):
    """The routes between the pairs given to prepare come with the batch, and
    are networkx's: ties are settled in the worker as they would be here
    (many whole-number and zero latencies). Pairs from a source not in the
    batch, or to a site that is none, are left to route()."""
    monkeypatch.setattr(graph_module, "BATCH_MIN_WORK", 0)
    rng = random.Random(seed)
    spec = _random_spec(rng, [0.0, 1.0, 1.0, 2.0, 3.0, 0.5])
    ids = [s.id for s in spec.sites]
    pairs = [(rng.choice(ids), rng.choice(ids)) for _ in range(300)] + [(ids[0], ids[0]), (ids[0], "nowhere")]
    graph_module.start_route_worker()
    graph = SiteGraph(spec)
    graph.prepare(ids[1:], pairs)
    graph.collect()
    asked = {(s, t) for s, t in pairs if s != ids[0] and t != "nowhere"}
    assert set(graph._routes) == asked and not child_pids()
    fresh = SiteGraph(spec)
    assert all(graph._routes[pair] == fresh.route(*pair) for pair in asked)
    _assert_same_as_networkx(spec, graph=graph)


def test_a_route_worker_without_a_batch_is_stopped(may_fork):
    spec = _site_spec(["a", "b", "c"], [_link("a", "b", 2.0), _link("b", "c", 3.0)])
    graph_module.start_route_worker()
    graph = SiteGraph(spec)
    graph.prepare(["a", "b", "c"])  # far too little work for a batch
    assert graph_module._worker is None and graph._pending is None and not child_pids()
    graph_module.start_route_worker()
    graph_module.stop_route_worker()
    assert not child_pids()


def test_a_failing_route_worker_changes_nothing(may_fork, monkeypatch):
    monkeypatch.setattr(graph_module, "BATCH_MIN_WORK", 0)
    monkeypatch.setattr(graph_module, "_batch_routes", failing_in_copies(graph_module._batch_routes, "the worker fails"))
    spec = _distinct_spec(8)
    graph_module.start_route_worker()
    graph = SiteGraph(spec)
    graph.prepare([s.id for s in spec.sites], [(s.id, s.id) for s in spec.sites])
    _assert_same_as_networkx(spec, graph=graph)  # computed here instead
    graph_module.start_route_worker()
    graph = SiteGraph(spec)
    graph.prepare([s.id for s in spec.sites])
    del graph  # dropped before any route: the worker is stopped
    assert not child_pids()


def test_a_stuck_route_worker_is_stopped(may_fork, monkeypatch):
    """A worker that never answers, taking its batch or not: routes are computed here after ROUTES_TIMEOUT."""
    monkeypatch.setattr(graph_module, "BATCH_MIN_WORK", 0)
    monkeypatch.setattr(graph_module, "ROUTES_TIMEOUT", 0.5)
    monkeypatch.setattr(graph_module, "_import_scipy", lambda: time.sleep(600))
    sites = [f"s{i}" for i in range(120)]
    small = [_link(f"s{i}", f"s{i + 1}", 1.5 + i % 7) for i in range(119)]
    big = small + [_link(f"s{i % 120}", f"x{i}", 2.0) for i in range(8000)]  # a batch larger than a pipe holds
    for links in (small, big):
        spec = _site_spec(sites, links)
        graph_module.start_route_worker()
        graph = SiteGraph(spec)
        started = time.monotonic()
        graph.prepare(sites)
        route = graph.route("s0", "s119")
        assert time.monotonic() - started < 30 and not child_pids()
        dist, paths = nx.single_source_dijkstra(_nx_graph(spec), "s0", weight="latency")
        assert route.sites == tuple(paths["s119"]) and route.latency_ms == dist["s119"]


def test_validate_with_the_route_worker_finds_the_same(may_fork, monkeypatch, tmp_path, forks):
    from planner import pipeline, startup

    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(60, 600, 5), encoding="utf-8")
    monkeypatch.setattr(graph_module, "BATCH_MIN_WORK", 0)
    monkeypatch.setattr(startup, "ROUTE_WORKER_FROM_BYTES", 0)
    with_worker = pipeline.run_validate([str(path)], pipeline.ValidateOptions())
    made = len(forks)
    assert made == 2  # the route worker and the policy input's reader
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    alone = pipeline.run_validate([str(path)], pipeline.ValidateOptions())
    assert len(forks) == made
    assert [(f.rule, f.subject, f.message) for f in with_worker.findings] == [(f.rule, f.subject, f.message) for f in alone.findings]


def test_a_spec_that_does_not_load_stops_the_route_worker(may_fork, monkeypatch, tmp_path):
    from planner import pipeline, startup
    from planner.errors import InputError

    path = tmp_path / "bad.yaml"
    path.write_text("sites: [\n", encoding="utf-8")
    monkeypatch.setattr(startup, "ROUTE_WORKER_FROM_BYTES", 0)
    with pytest.raises(InputError):
        pipeline.run_validate([str(path)], pipeline.ValidateOptions())
    assert graph_module._worker is None and not child_pids()


def test_networkx_graph_is_still_available(tmp_path):
    spec = _site_spec(["a", "b", "c"], [_link("a", "b", 2.0), _link("b", "c", 3.0)])
    g = SiteGraph(spec).graph
    assert list(g.nodes) == ["a", "b", "c"]
    assert g.edges["a", "b"] == {"latency": 2.0, "key": "a~b"}


def _nx_lineage(spec, placed=None):
    """Lineage as networkx descendants, the reference."""
    index = spec_index(spec)
    g = nx.DiGraph()
    for d in spec.datasets:
        g.add_edge(("dataset", d.id), ("site", d.site))
    for w in spec.workloads:
        g.add_node(("workload", w.id))
        for name in w.inputs:
            g.add_edge(("dataset", name), ("workload", w.id))
        for site in sorted((placed or {}).get(w.id, ())):
            g.add_edge(("workload", w.id), ("site", site))
    for f in spec.flows:
        if f.classification in PERSONAL:
            a, b = flow_end(index, f.from_), flow_end(index, f.to)
            g.add_edge((a.kind, a.id), (b.kind, b.id))
    zone = {s.id: s.zone for s in spec.sites}
    out = {}
    for d in spec.datasets:
        if d.classification not in PERSONAL:
            out[d.id] = {"sites": [d.site], "zones": [zone.get(d.site, "")], "workloads": [], "datasets": []}
            continue
        reached = nx.descendants(g, ("dataset", d.id))
        sites = sorted({i for k, i in reached if k == "site"} | {d.site})
        out[d.id] = {
            "sites": sites,
            "zones": sorted({zone[s] for s in sites if s in zone}),
            "workloads": sorted(i for k, i in reached if k == "workload"),
            "datasets": sorted(i for k, i in reached if k == "dataset"),
        }
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_lineage_matches_networkx(tmp_path, seed):
    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(12, 150, seed), encoding="utf-8")
    spec = load_spec([path])
    assert lineage(spec) == _nx_lineage(spec)
    rng = random.Random(seed)
    sites = [s.id for s in spec.sites]
    placed = {w.id: set(rng.sample(sites, rng.randint(0, 2))) for w in spec.workloads}
    assert lineage(spec, placed) == _nx_lineage(spec, placed)
    assert lineage(spec, ends=FlowEnds(spec_index(spec))) == lineage(spec)


def test_lineage_follows_cycles_but_never_reaches_its_own_dataset():
    phi = next(iter(PERSONAL))
    spec = SimpleNamespace(
        sites=[SimpleNamespace(id="s1", zone="us"), SimpleNamespace(id="s2", zone="eu")],
        datasets=[SimpleNamespace(id="d1", site="s1", classification=phi),
                  SimpleNamespace(id="d2", site="s2", classification=phi)],
        workloads=[SimpleNamespace(id="w1", inputs=["d1"])],
        flows=[SimpleNamespace(id="f1", from_="workload/w1", to="d1", classification=phi),
               SimpleNamespace(id="f2", from_="w1", to="dataset/d2", classification=phi)],
    )
    assert lineage(spec) == _nx_lineage(spec)
    assert lineage(spec)["d1"] == {"sites": ["s1", "s2"], "zones": ["eu", "us"], "workloads": ["w1"], "datasets": ["d2"]}


def test_flow_ends_resolve_once_per_name(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(5, 20, 1), encoding="utf-8")
    spec = load_spec([path])
    index = spec_index(spec)
    ends = FlowEnds(index)
    for f in spec.flows:
        assert ends[f.from_] == flow_end(index, f.from_) and ends[f.to] == flow_end(index, f.to)
    assert ends[spec.flows[0].from_] is ends[spec.flows[0].from_]
    with pytest.raises(KeyError):
        ends["dataset/missing"]
