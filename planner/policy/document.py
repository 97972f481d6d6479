"""The input document every policy reads, built once from Spec and Facts.

``medplan input SPEC`` prints it so users can write and debug their own Rego
against it with ``opa eval``. Collections are objects keyed by id so that
rules read ``some id, flow in input.flows``.
"""

from __future__ import annotations

import json

from planner import __version__
from planner.facts import EU, Facts
from planner.graph import PERSONAL
from planner.spec.models import Classification

DOCUMENT_VERSION = 1


def _enum(value):
    return getattr(value, "value", value)


def validate_document(facts: Facts) -> dict:
    """The input of validate-stage rules (and the base of plan-stage input)."""
    spec = facts.spec
    phi_at: dict[str, list[str]] = {}
    for d in spec.datasets:
        if d.classification in PERSONAL:
            phi_at.setdefault(d.site, []).append(d.id)
    receives: dict[str, list[str]] = {}
    link_flows: dict[str, list[str]] = {}
    flows = {}
    for rf in facts.flows:
        f = rf.flow
        route = rf.route
        if rf.personal and rf.target.site:
            receives.setdefault(rf.target.site, []).append(f.id)
        if rf.personal and route is not None and route.reachable:
            for key in route.links:
                link_flows.setdefault(key, []).append(f.id)
        from_zone = facts.site_zone(rf.source.site)
        to_zone = facts.site_zone(rf.target.site)
        source_site = facts.index["site"].get(rf.source.site) if rf.source.site else None
        flows[f.id] = {
            "id": f.id,
            "from": rf.source.as_dict() | {"zone": from_zone},
            "to": rf.target.as_dict() | {"zone": to_zone},
            "classification": f.classification.value,
            "phi": rf.personal,
            "personal": rf.personal,
            "subjects_zones": list(rf.subjects_zones),
            "eu_subjects": EU in rf.subjects_zones,
            "encryption_in_transit": f.encryption_in_transit.value,
            "encrypted": f.encryption_in_transit.value != "none",
            "purpose": _enum(f.purpose),
            "transfer_mechanism": _enum(f.transfer_mechanism),
            "deidentification": _enum(f.deidentification),
            "source_phi": bool(rf.source.kind == "dataset" and facts.index["dataset"][rf.source.id].classification in PERSONAL),
            "frequency": f.frequency.value,
            "leaves_site": rf.source.site is not None and rf.target.site is not None and rf.source.site != rf.target.site,
            "from_covered_site": bool(source_site is not None and source_site.kind.value == "on-prem"),  # type: ignore[attr-defined]
            "route": None
            if route is None
            else {
                "reachable": route.reachable,
                "sites": list(route.sites),
                "links": list(route.links),
                "latency_ms": route.latency_ms,
            },
        }
    sites = {}
    for s in spec.sites:
        sites[s.id] = {
            "id": s.id,
            "kind": s.kind.value,
            "third_party": s.third_party,
            "provider": _enum(s.provider),
            "region": s.region,
            "jurisdiction": s.jurisdiction,
            "country": s.jurisdiction.split("-")[0],
            "zone": s.zone,
            "baa": s.baa.value,
            "certifications": sorted(s.certifications),
            "controls": s.controls.model_dump(mode="json"),
            "orchestrator": s.orchestrator.value,
            "pools": [f"{s.id}/{p.id}" for p in s.pools],
            "phi_datasets": sorted(phi_at.get(s.id, [])),
            "stores_phi": bool(phi_at.get(s.id)),
            "receives_phi_flows": sorted(receives.get(s.id, [])),
            "holds_phi": bool(phi_at.get(s.id) or receives.get(s.id)),
            "eu_personal_data": EU in facts.subjects_at.get(("site", s.id), set()),
        }
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
    links = {}
    for link in spec.links:
        carried = sorted(link_flows.get(link.key, []))
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
            "phi_flows": carried,
            "carries_phi": bool(carried),
        }
    datasets = {}
    for d in spec.datasets:
        reach = facts.lineage[d.id]
        datasets[d.id] = {
            "id": d.id,
            "site": d.site,
            "zone": facts.site_zone(d.site),
            "system": d.system.value,
            "classification": d.classification.value,
            "phi": d.classification in PERSONAL,
            "personal": d.classification in PERSONAL,
            "subjects_zone": d.subjects_zone,
            "eu_subjects": d.subjects_zone == EU,
            "deidentification": _enum(d.deidentification),
            "size_tb": d.size_tb,
            "reaches_sites": reach["sites"],
            "reaches_zones": reach["zones"],
            "read_by": reach["workloads"],
        }
    workloads = {}
    for w in spec.workloads:
        data = facts.workload_data[w.id]
        workloads[w.id] = {
            "id": w.id,
            "kind": w.kind.value,
            "team": w.team,
            "gpus": w.gpus,
            "gpu_memory_gb": w.gpu_memory_gb,
            "accelerators": sorted({facts.catalog.gpu(name).id for name in w.accelerators}),
            "replicas": w.replicas,
            "inputs": list(w.inputs),
            "max_latency_ms": w.max_latency_ms,
            "criticality": w.criticality.value,
            "placement": w.placement.model_dump(mode="json"),
            "model": w.model.model_dump(mode="json") if w.model else None,
            "phi": data.phi,
            "classifications": list(data.classifications),
            "subjects_zones": list(data.subjects_zones),
            "eu_subjects": EU in data.subjects_zones,
            "input_sites": list(data.source_sites),
            "transfer_mechanisms": list(data.transfer_mechanisms),
        }
    return {
        "medplan": {"version": __version__, "document": DOCUMENT_VERSION, "stage": "validate"},
        "metadata": spec.metadata.model_dump(mode="json"),
        "sites": sites,
        "pools": pools,
        "links": links,
        "datasets": datasets,
        "workloads": workloads,
        "flows": flows,
    }


# Attributes of a workload and a site that placement rules may look at.
# Placement rules are evaluated over classes of workloads and of sites that
# agree on all of these; rules must not depend on ids.
WORKLOAD_CLASS_FIELDS = ("kind", "phi", "classifications", "subjects_zones", "eu_subjects", "transfer_mechanisms", "criticality", "team")
SITE_CLASS_FIELDS = (
    "kind", "third_party", "provider", "jurisdiction", "country", "zone", "baa", "certifications", "controls", "orchestrator",
)


def classes(items: dict[str, dict], fields: tuple[str, ...], prefix: str) -> tuple[dict[str, dict], dict[str, str]]:
    """Group items that agree on ``fields``; returns (class id -> profile with members, item id -> class id)."""
    groups: dict[str, list[str]] = {}
    profiles: dict[str, dict] = {}
    for ident in sorted(items):
        profile = {name: items[ident].get(name) for name in fields}
        key = json.dumps(profile, sort_keys=True)
        groups.setdefault(key, []).append(ident)
        profiles[key] = profile
    out: dict[str, dict] = {}
    member_of: dict[str, str] = {}
    for n, key in enumerate(sorted(groups, key=lambda k: groups[k][0]), start=1):
        class_id = f"{prefix}{n}"
        out[class_id] = profiles[key] | {"members": groups[key]}
        for ident in groups[key]:
            member_of[ident] = class_id
    return out, member_of


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


__all__ = ["Classification", "placement_document", "validate_document"]
