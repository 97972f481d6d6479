"""The input document every policy reads, built once from Spec and Facts.

``medplan input SPEC`` prints it so users can write and debug their own Rego
against it with ``opa eval``. Collections are objects keyed by id so that
rules read ``some id, flow in input.flows``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from planner import __version__
from planner.facts import EU, Facts, ResolvedFlow
from planner.graph import PERSONAL
from planner.spec.models import Classification

DOCUMENT_VERSION = 1


def _enum_values() -> Callable[[object], object]:
    """``value(member)``: an enum member's value (None for None), each member's
    looked up once (Enum.value is a slow descriptor)."""
    values: dict = {}

    def value(member):
        if member is None:
            return None
        try:
            return values[member]
        except KeyError:
            values[member] = found = getattr(member, "value", member)
            return found

    return value


def _medplan(stage: str) -> dict:
    return {"version": __version__, "document": DOCUMENT_VERSION, "stage": stage}


def _site_facts(s, value: Callable[[object], object]) -> dict:
    """What a site's entry says of the site as written (its fields in the
    document's order from ``kind`` to ``orchestrator``): everything placement
    classes read, and nothing that needs a flow or a route."""
    return {
        "kind": s.kind.value,
        "third_party": s.third_party,
        "provider": value(s.provider),
        "region": s.region,
        "jurisdiction": s.jurisdiction,
        "country": s.jurisdiction.split("-")[0],
        "zone": s.zone,
        "baa": s.baa.value,
        "certifications": sorted(s.certifications),
        "controls": s.controls.model_dump(mode="json"),
        "orchestrator": s.orchestrator.value,
    }


def early_sections(facts: Facts) -> dict:
    """The sections of :func:`validate_document` that need no route: pools,
    datasets and workloads. They read neither ``facts.flows`` nor the site
    graph's routes, so they may be built while the routes are worked out
    (``derive``'s ``meanwhile``)."""
    spec = facts.spec
    zone_of: dict[str | None, str | None] = {s.id: s.zone for s in spec.sites}
    value = _enum_values()
    pool_specs = {f"{s.id}/{p.id}": p for s in spec.sites for p in s.pools}
    pools = {}
    for p in facts.pools:
        pools[p.key] = {
            "key": p.key,
            "site": p.site,
            "id": p.id,
            "gpu": p.gpu,
            "generation": p.generation,
            "memory_gb": p.memory_gb,
            "gpus_per_node": p.gpus_per_node,
            "nodes": p.nodes,
            "elastic": p.elastic,
            "capacity_gpus": p.capacity_gpus,
            "instance": p.instance,
            "isolation": pool_specs[p.key].isolation.value,
            "cost_per_gpu_hour": p.cost_per_gpu_hour,
            "price_origin": p.price_origin,
        }
    datasets = {}
    lineage = facts.lineage
    for d in spec.datasets:
        reach = lineage[d.id]
        personal = d.classification in PERSONAL
        datasets[d.id] = {
            "id": d.id,
            "site": d.site,
            "zone": zone_of.get(d.site) if d.site else None,
            "system": value(d.system),
            "classification": value(d.classification),
            "phi": personal,
            "personal": personal,
            "subjects_zone": d.subjects_zone,
            "eu_subjects": d.subjects_zone == EU,
            "deidentification": value(d.deidentification),
            "size_tb": d.size_tb,
            "reaches_sites": reach["sites"],
            "reaches_zones": reach["zones"],
            "read_by": reach["workloads"],
        }
    workloads = {}
    workload_data = facts.workload_data
    gpu_ids: dict[str, str] = {}  # accelerator as written -> catalog id

    def gpu_id(name: str) -> str:
        found = gpu_ids.get(name)
        if found is None:
            gpu_ids[name] = found = facts.catalog.gpu(name).id
        return found

    for w in spec.workloads:
        data = workload_data[w.id]
        workloads[w.id] = {
            "id": w.id,
            "kind": value(w.kind),
            "team": w.team,
            "gpus": w.gpus,
            "gpu_memory_gb": w.gpu_memory_gb,
            "accelerators": sorted({gpu_id(name) for name in w.accelerators}),
            "replicas": w.replicas,
            "inputs": list(w.inputs),
            "max_latency_ms": w.max_latency_ms,
            "criticality": value(w.criticality),
            "placement": w.placement.model_dump(mode="json"),
            "model": w.model.model_dump(mode="json") if w.model else None,
            "phi": data.phi,
            "classifications": list(data.classifications),
            "subjects_zones": list(data.subjects_zones),
            "eu_subjects": EU in data.subjects_zones,
            "input_sites": list(data.source_sites),
            "transfer_mechanisms": list(data.transfer_mechanisms),
        }
    return {"pools": pools, "datasets": datasets, "workloads": workloads}


# Flows given to ``emit`` at a time while the flows section is built: about
# 600 KB of JSON, which a widened pipe takes whole (see planner.process).
EMIT_FLOWS = 1024


class FlowSections:
    """The sections of the validate document that depend on the flows: the
    flows, and the sites and links, built a flow at a time. ``add(rf)`` puts
    resolved flow ``rf``'s entry in ``flows`` and notes, if it is personal,
    the site it reaches and the links it crosses; :meth:`done` completes the
    sites and links with those. Everything of the sites and links that no
    flow decides is built here at once, ahead of the flows.

    Given as ``derive``'s per-flow work (see ``routed``), the flows section
    is built while the flows are resolved. ``emit``, if given, is given it
    every :data:`EMIT_FLOWS` flows, as a growing object (``emit({"flows":
    flows}, growing=True)``)."""

    def __init__(self, facts: Facts, emit: Callable[..., None] | None = None) -> None:
        spec = facts.spec
        # Facts of sites and datasets, gathered once rather than looked up
        # for each of what may be tens of thousands of flows.
        zone_of: dict[str | None, str | None] = {s.id: s.zone for s in spec.sites}
        covered_site = {s.id for s in spec.sites if s.kind.value == "on-prem"}
        phi_dataset = {d.id for d in spec.datasets if d.classification in PERSONAL}
        value = _enum_values()
        self.sites, self.links = _sites_and_links(facts, value)
        self.flows: dict[str, dict] = {}
        self.receives: dict[str, list[str]] = {}  # the personal flows each site receives
        self.carried: dict[str, list[str]] = {}  # the personal flows each link carries
        flows, receives, carried = self.flows, self.receives, self.carried

        def add(rf: ResolvedFlow) -> None:
            f = rf.flow
            route = rf.route
            source, target = rf.source, rf.target
            personal = f.classification in PERSONAL
            source_site, target_site = source.site, target.site
            transit = value(f.encryption_in_transit)
            subjects = list(rf.subjects_zones)
            flows[f.id] = {
                "id": f.id,
                "from": {"kind": source.kind, "id": source.id, "site": source_site, "zone": zone_of.get(source_site) if source_site else None},
                "to": {"kind": target.kind, "id": target.id, "site": target_site, "zone": zone_of.get(target_site) if target_site else None},
                "classification": value(f.classification),
                "phi": personal,
                "personal": personal,
                "subjects_zones": subjects,
                "eu_subjects": EU in subjects,
                "encryption_in_transit": transit,
                "encrypted": transit != "none",
                "purpose": value(f.purpose),
                "transfer_mechanism": value(f.transfer_mechanism),
                "deidentification": value(f.deidentification),
                "source_phi": source.kind == "dataset" and source.id in phi_dataset,
                "frequency": value(f.frequency),
                "leaves_site": source_site is not None and target_site is not None and source_site != target_site,
                "from_covered_site": source_site in covered_site,
                "route": None
                if route is None
                else {
                    "reachable": route.reachable,
                    "sites": list(route.sites),
                    "links": list(route.links),
                    "latency_ms": route.latency_ms,
                },
            }
            if personal:
                if target_site:
                    receives.setdefault(target_site, []).append(f.id)
                if route is not None and route.reachable:
                    for key in route.links:
                        carried.setdefault(key, []).append(f.id)
            if emit is not None and len(flows) % EMIT_FLOWS == 0:
                emit({"flows": flows}, growing=True)

        self.add = add

    def done(self) -> tuple[dict, dict, dict]:
        """The flows, sites and links sections, once every flow is added."""
        sites, links = self.sites, self.links
        for site_id, received in self.receives.items():
            entry = sites.get(site_id)
            if entry is not None:
                entry["receives_phi_flows"] = sorted(received)
                entry["holds_phi"] = True
        for key, crossing in self.carried.items():
            entry = links.get(key)
            if entry is not None:
                entry["phi_flows"] = sorted(crossing)
                entry["carries_phi"] = True
        return self.flows, sites, links


def validate_document(
    facts: Facts, emit: Callable[..., None] | None = None, sections: dict | None = None, flowing: FlowSections | None = None
) -> dict:
    """The input of validate-stage rules (and the base of plan-stage input).

    ``sections`` are those of :func:`early_sections`, if already built, and
    ``flowing`` the :class:`FlowSections` every flow was added to, if any.
    ``emit`` is given the document's top-level keys in groups, each as soon
    as it is ready (:meth:`~planner.policy.engine.RegorusEngine.stream`): a
    dict of the very values the document will hold. The flows, the largest
    section, are also given while they are built (see :class:`FlowSections`);
    the sites and links, which need every flow, come last."""
    spec = facts.spec
    if sections is None:
        sections = early_sections(facts)
    if emit is not None:
        emit(sections)
    if flowing is None:
        flowing = FlowSections(facts, emit)
        for rf in facts.flows:
            flowing.add(rf)
    if emit is not None:
        emit({"flows": flowing.flows})
    flows, sites, links = flowing.done()
    if emit is not None:
        emit({"sites": sites, "links": links})
    return {
        "medplan": _medplan("validate"),
        "metadata": spec.metadata.model_dump(mode="json"),
        "sites": sites,
        "pools": sections["pools"],
        "links": links,
        "datasets": sections["datasets"],
        "workloads": sections["workloads"],
        "flows": flows,
    }


def _sites_and_links(facts: Facts, value) -> tuple[dict, dict]:
    """The validate document's sites and links sections, as if no personal
    flow reached a site or crossed a link (:meth:`FlowSections.done` says which do)."""
    spec = facts.spec
    phi_at: dict[str, list[str]] = {}
    for d in spec.datasets:
        if d.classification in PERSONAL:
            phi_at.setdefault(d.site, []).append(d.id)
    sites = {}
    for s in spec.sites:
        stores = bool(phi_at.get(s.id))
        sites[s.id] = {
            "id": s.id,
            **_site_facts(s, value),
            "pools": [f"{s.id}/{p.id}" for p in s.pools],
            "phi_datasets": sorted(phi_at.get(s.id, [])),
            "stores_phi": stores,
            "receives_phi_flows": [],
            "holds_phi": stores,
            "eu_personal_data": EU in facts.subjects_at.get(("site", s.id), set()),
        }
    links = {}
    for link in spec.links:
        links[link.key] = {
            "id": link.key,
            "between": sorted(link.between),
            "latency_ms": link.latency_ms,
            "bandwidth_gbps": link.bandwidth_gbps,
            "encryption": link.encryption.value,
            "encrypted": link.encryption.value != "none",
            "carrier": link.carrier,
            "third_party": link.carrier is not None,
            "baa": link.baa.value,
            "phi_flows": [],
            "carries_phi": False,
        }
    return sites, links


# Attributes of a workload and a site that placement rules may look at.
# Placement rules are evaluated over classes of workloads and of sites that
# agree on all of these; rules must not depend on ids.
WORKLOAD_CLASS_FIELDS = ("kind", "phi", "classifications", "subjects_zones", "eu_subjects", "transfer_mechanisms", "criticality", "team")
SITE_CLASS_FIELDS = (
    "kind", "third_party", "provider", "jurisdiction", "country", "zone", "baa", "certifications", "controls", "orchestrator",
)


# Canonical JSON of a list of attribute values: items agree when it is equal.
_profile_key = json.JSONEncoder(sort_keys=True, separators=(",", ":"), check_circular=False).encode


def classes(items: dict[str, dict], fields: tuple[str, ...], prefix: str) -> tuple[dict[str, dict], dict[str, str]]:
    """Group items that agree on ``fields``; returns (class id -> profile with members, item id -> class id)."""
    groups: dict[str, list[str]] = {}
    last: dict[str, str] = {}  # key -> the last member, whose values the class shows
    for ident in sorted(items):
        item = items[ident]
        key = _profile_key([item.get(name) for name in fields])
        groups.setdefault(key, []).append(ident)
        last[key] = ident
    out: dict[str, dict] = {}
    member_of: dict[str, str] = {}
    for n, key in enumerate(sorted(groups, key=lambda k: groups[k][0]), start=1):
        class_id = f"{prefix}{n}"
        item = items[last[key]]
        out[class_id] = {name: item.get(name) for name in fields} | {"members": groups[key]}
        for ident in groups[key]:
            member_of[ident] = class_id
    return out, member_of


def early_placement_document(facts: Facts, sections: dict) -> dict:
    """:func:`placement_document` of the validate document, from its early
    sections (see :func:`early_sections`) before its flows are built: the
    classes read only the workloads and what sites say of themselves."""
    value = _enum_values()
    base = {
        "medplan": _medplan("validate"),
        "workloads": sections["workloads"],
        "sites": {s.id: _site_facts(s, value) for s in facts.spec.sites},
    }
    return placement_document(base)[0]


def placement_document(base: dict) -> tuple[dict, dict[str, str], dict[str, str]]:
    """Input of placement-stage rules: workload classes and site classes.

    A placement rule yields ``{"workload": CLASS, "site": CLASS, "message": …}``
    for each class pair it forbids; Python maps classes back to members.
    """
    workload_classes, workload_member = classes(base["workloads"], WORKLOAD_CLASS_FIELDS, "wc")
    site_classes, site_member = classes(base["sites"], SITE_CLASS_FIELDS, "sc")
    doc = {
        "medplan": base["medplan"] | {"stage": "placement"},
        "workloads": workload_classes,
        "sites": site_classes,
    }
    return doc, workload_member, site_member


__all__ = ["Classification", "early_placement_document", "early_sections", "placement_document", "validate_document"]
