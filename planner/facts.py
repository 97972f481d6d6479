"""Derived facts that policies and the solver share, computed once per spec:
resolved pools, the site graph, flows with their routes, lineage and the
data each workload reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from planner.catalog import Catalog
from planner.catalog.additions import ResolvedPool, catalog_with_spec, resolve_pools
from planner.graph import PERSONAL, FlowEnd, FlowEnds, Route, SiteGraph, lineage, spec_index
from planner.spec.models import Classification, Flow, Spec

EU = "eu"


@dataclass(frozen=True)
class ResolvedFlow:
    flow: Flow
    source: FlowEnd
    target: FlowEnd
    route: Route | None  # None while an end is an unplaced workload
    subjects_zones: tuple[str, ...]  # zones of the data subjects whose data moves

    @property
    def personal(self) -> bool:
        return self.flow.classification in PERSONAL


@dataclass(frozen=True)
class WorkloadData:
    """What data a workload reads, summarised for policies."""

    classifications: tuple[str, ...]
    phi: bool
    subjects_zones: tuple[str, ...]
    source_sites: tuple[str, ...]
    transfer_mechanisms: tuple[str, ...]  # declared on flows that bring EU data to it


@dataclass
class Facts:
    spec: Spec
    catalog: Catalog
    graph: SiteGraph
    pools: list[ResolvedPool]
    flows: list[ResolvedFlow] = field(default_factory=list)

    @cached_property
    def index(self) -> dict[str, dict[str, object]]:
        return spec_index(self.spec)

    @cached_property
    def ends(self) -> FlowEnds:
        """Flow ends resolved once per name: ``ends[name]``."""
        return FlowEnds(self.index)

    @cached_property
    def pools_by_key(self) -> dict[str, ResolvedPool]:
        return {p.key: p for p in self.pools}

    @cached_property
    def lineage(self) -> dict[str, dict[str, list[str]]]:
        return lineage(self.spec, ends=self.ends)

    @cached_property
    def subjects_at(self) -> dict[tuple[str, str], set[str]]:
        """Zones of data subjects whose personal data reaches each node."""
        out: dict[tuple[str, str], set[str]] = {}
        for d in self.spec.datasets:
            if d.subjects_zone is None or d.classification not in PERSONAL:
                continue
            reach = self.lineage[d.id]
            nodes = [("dataset", d.id)]
            nodes += [("site", s) for s in reach["sites"]]
            nodes += [("workload", w) for w in reach["workloads"]]
            nodes += [("dataset", x) for x in reach["datasets"]]
            for node in nodes:
                out.setdefault(node, set()).add(d.subjects_zone)
        return out

    @cached_property
    def workload_data(self) -> dict[str, WorkloadData]:
        datasets = {d.id: d for d in self.spec.datasets}
        mechanisms: dict[str, set[str]] = {}
        ends = self.ends
        for f in self.spec.flows:
            target = ends[f.to]
            if f.transfer_mechanism is not None and target.kind == "workload":
                mechanisms.setdefault(target.id, set()).add(f.transfer_mechanism.value)
        out = {}
        for w in self.spec.workloads:
            read = [datasets[name] for name in w.inputs if name in datasets]
            classes = sorted({d.classification.value for d in read})
            zones = sorted(self.subjects_at.get(("workload", w.id), set()))
            out[w.id] = WorkloadData(
                classifications=tuple(classes),
                phi=any(d.classification in PERSONAL for d in read),
                subjects_zones=tuple(zones),
                source_sites=tuple(sorted({d.site for d in read})),
                transfer_mechanisms=tuple(sorted(mechanisms.get(w.id, ()))),
            )
        return out

    def site_zone(self, site_id: str | None) -> str | None:
        site = self.index["site"].get(site_id) if site_id else None
        return site.zone if site is not None else None  # type: ignore[attr-defined]


def derive(
    spec: Spec,
    meanwhile: Callable[[Facts], None] | None = None,
    routed: Callable[[Facts], Callable[[ResolvedFlow], None] | None] | None = None,
    flow_routes_away: bool = True,
) -> Facts:
    """The facts of ``spec``. ``meanwhile(facts)`` is called while the routes
    are worked out (perhaps on another core): everything but ``flows`` is
    there to use. ``routed(facts)`` is called once the routes are in, before
    the flows are resolved: from then on, no worker of this call uses a core.
    What it returns, if not None, is called with each flow as it is resolved
    (in spec order), so that work on the flows may go along with theirs.
    ``flow_routes_away``: the route worker, if there is one, also reads off
    each flow's route (see :meth:`SiteGraph.prepare`); without it they are
    read here, as the flows are resolved (better where something that
    ``meanwhile`` starts on the other core would share it with the worker)."""
    catalog = catalog_with_spec(spec)
    facts = Facts(spec=spec, catalog=catalog, graph=SiteGraph(spec), pools=resolve_pools(spec, catalog))
    datasets = facts.index["dataset"]
    ends = facts.ends
    route = facts.graph.route
    resolved = [(ends[f.from_], ends[f.to]) for f in spec.flows]
    # Routes are asked between the sites of every flow with both ends
    # placed: compute them in one go (perhaps in a worker), and lineage meanwhile.
    placed = [(source.site, target.site) for source, target in resolved if source.site and target.site]
    facts.graph.prepare([source for source, _ in placed], placed if flow_routes_away else ())
    try:
        facts.subjects_at  # noqa: B018 - computed now, while the routes are
        if meanwhile is not None:
            meanwhile(facts)
    finally:
        facts.graph.collect()
    each = routed(facts) if routed is not None else None
    flows = []
    for f, (source, target) in zip(spec.flows, resolved):
        zones = ()
        if f.classification in PERSONAL:
            found = facts.subjects_at.get((source.kind, source.id), set())
            if source.kind == "dataset":
                ds = datasets[source.id]
                if ds.subjects_zone:  # type: ignore[attr-defined]
                    found = found | {ds.subjects_zone}  # type: ignore[attr-defined]
            zones = tuple(sorted(found))
        rf = ResolvedFlow(f, source, target, route(source.site, target.site) if source.site and target.site else None, zones)
        flows.append(rf)
        if each is not None:
            each(rf)
    facts.flows = flows
    return facts


__all__ = ["EU", "Classification", "Facts", "ResolvedFlow", "WorkloadData", "derive"]
