"""The site graph: latency between sites over links, the links a flow
crosses, and where each dataset's data ends up (lineage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx

from planner.spec.models import Classification, Spec

# Data of these classifications is personal data: lineage follows it, and a
# flow of them carries PHI (HIPAA treats a limited data set as PHI too).
PERSONAL = frozenset({Classification.phi, Classification.limited_data_set})


@dataclass(frozen=True)
class Route:
    """The lowest-latency path between two sites."""

    source: str
    target: str
    reachable: bool
    latency_ms: float | None = None
    sites: tuple[str, ...] = ()
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlowEnd:
    kind: str  # dataset | workload | site
    id: str
    site: str | None  # None for a workload before placement

    def as_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id, "site": self.site}


@dataclass
class SiteGraph:
    """Sites joined by links, with lowest-latency routes computed on demand."""

    spec: Spec
    _routes: dict[str, tuple[dict, dict]] = field(default_factory=dict, repr=False)

    @cached_property
    def graph(self) -> nx.Graph:
        g = nx.Graph()
        for site in self.spec.sites:
            g.add_node(site.id)
        for link in self.spec.links:
            a, b = link.between
            g.add_edge(a, b, latency=link.latency_ms, key=link.key)
        return g

    def _from(self, source: str) -> tuple[dict, dict]:
        found = self._routes.get(source)
        if found is None:
            if source in self.graph:
                found = nx.single_source_dijkstra(self.graph, source, weight="latency")
            else:
                found = ({}, {})
            self._routes[source] = found
        return found

    def latencies_from(self, source: str) -> dict[str, float]:
        """Latency in ms from ``source`` to every reachable site (0 to itself)."""
        return self._from(source)[0]

    def route(self, source: str, target: str) -> Route:
        distances, paths = self._from(source)
        if target not in distances:
            return Route(source, target, False)
        sites = tuple(paths[target])
        links = tuple(self.graph.edges[a, b]["key"] for a, b in zip(sites, sites[1:]))
        return Route(source, target, True, distances[target], sites, links)


def flow_end(spec_index: dict[str, dict[str, object]], name: str) -> FlowEnd:
    """Resolve a flow end (``id`` or ``KIND/ID``); references were checked at load."""
    if "/" in name:
        kind, _, ident = name.partition("/")
        kinds = [kind]
    else:
        ident = name
        kinds = ["dataset", "workload", "site"]
    for kind in kinds:
        item = spec_index[kind].get(ident)
        if item is None:
            continue
        if kind == "dataset":
            return FlowEnd(kind, ident, item.site)  # type: ignore[attr-defined]
        if kind == "site":
            return FlowEnd(kind, ident, ident)
        return FlowEnd(kind, ident, None)
    raise KeyError(name)


def spec_index(spec: Spec) -> dict[str, dict[str, object]]:
    return {
        "site": {s.id: s for s in spec.sites},
        "dataset": {d.id: d for d in spec.datasets},
        "workload": {w.id: w for w in spec.workloads},
        "flow": {f.id: f for f in spec.flows},
    }


def lineage(spec: Spec, placed: dict[str, set[str]] | None = None) -> dict[str, dict[str, list[str]]]:
    """Where each dataset's personal data ends up.

    Data moves from a dataset to each workload that reads it, and along every
    declared flow whose classification is still personal (a flow declared
    de-identified or public carries no personal data onward). ``placed`` maps
    workloads to the sites a plan put them on; without it workloads reach no
    site. Returns, per dataset, the sorted sites, zones and nodes reached.
    """
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
        if f.classification not in PERSONAL:
            continue
        a, b = flow_end(index, f.from_), flow_end(index, f.to)
        g.add_edge((a.kind, a.id), (b.kind, b.id))
    zone = {s.id: s.zone for s in spec.sites}
    out: dict[str, dict[str, list[str]]] = {}
    for d in spec.datasets:
        if d.classification not in PERSONAL:
            out[d.id] = {"sites": [d.site], "zones": [zone.get(d.site, "")], "workloads": [], "datasets": []}
            continue
        reached = nx.descendants(g, ("dataset", d.id))
        sites = sorted({ident for kind, ident in reached if kind == "site"} | {d.site})
        out[d.id] = {
            "sites": sites,
            "zones": sorted({zone[s] for s in sites if s in zone}),
            "workloads": sorted(ident for kind, ident in reached if kind == "workload"),
            "datasets": sorted(ident for kind, ident in reached if kind == "dataset"),
        }
    return out
