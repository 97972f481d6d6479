"""The site graph and lineage give exactly what networkx gives: the same
latencies (values, types and order), the same route between every pair of
sites, equal-latency ties included, and the same data reach."""

from __future__ import annotations

import random
from types import SimpleNamespace

import networkx as nx
import pytest

from planner.generate import generate_yaml
from planner.graph import PERSONAL, FlowEnds, SiteGraph, flow_end, lineage, spec_index
from planner.spec.loader import load_spec


def _nx_graph(spec) -> nx.Graph:
    g = nx.Graph()
    for site in spec.sites:
        g.add_node(site.id)
    for link in spec.links:
        a, b = link.between
        g.add_edge(a, b, latency=link.latency_ms, key=link.key)
    return g


def _assert_same_as_networkx(spec, extra_names=("nowhere",)) -> None:
    g = _nx_graph(spec)
    graph = SiteGraph(spec)
    names = list(g.nodes) + list(extra_names)
    for source in names:
        if source in g:
            dist, paths = nx.single_source_dijkstra(g, source, weight="latency")
        else:
            dist, paths = {}, {}
        for target in names:
            route = graph.route(source, target)
            assert (route.source, route.target) == (source, target)
            if target not in dist:
                assert not route.reachable and route.latency_ms is None and route.sites == () and route.links == ()
                continue
            assert route.reachable
            assert route.sites == tuple(paths[target]), (source, target)
            assert route.links == tuple(g.edges[a, b]["key"] for a, b in zip(paths[target], paths[target][1:]))
            assert route.latency_ms == dist[target] and type(route.latency_ms) is type(dist[target])
        latencies = graph.latencies_from(source)
        assert list(latencies.items()) == list(dist.items())
        assert [type(v) for v in latencies.values()] == [type(v) for v in dist.values()]


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


def test_routes_match_networkx_on_a_generated_spec(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(40, 200, 3), encoding="utf-8")
    spec = load_spec([path])
    _assert_same_as_networkx(spec)


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
