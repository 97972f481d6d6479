"""Helm charts for a plan: one chart per on-prem or colocation Kubernetes site
that runs placed workloads, as ``{relative path: file content}``.

Everything the chart needs from the spec and the plan is written into
``values.yaml`` by a YAML dumper; the chart's templates (``templates/helm/chart``)
are static and quote every value with ``toJson``, so no text from the spec is
ever parsed as YAML or executed as a Go template.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import yaml

from planner import __version__
from planner.graph import PERSONAL
from planner.render.jsontext import dumps_indented
from planner.resources import template_cache, templates_dir
from planner.spec.models import Classification, Orchestrator, SiteKind, WorkloadKind

__all__ = ["GPU_PRODUCT_LABELS", "LABEL_VALUE", "gpu_product_label", "label_value", "render_helm"]

# Value of the `nvidia.com/gpu.product` node label for each catalog GPU.
# NVIDIA GPU feature discovery (part of the GPU operator) sets it to the
# device name that NVML reports, with spaces replaced by '-'
# (https://github.com/NVIDIA/k8s-device-plugin/tree/main/docs/gpu-feature-discovery).
GPU_PRODUCT_LABELS: dict[str, str] = {
    "A100-40GB": "NVIDIA-A100-SXM4-40GB",
    "A100-80GB": "NVIDIA-A100-SXM4-80GB",
    "B200": "NVIDIA-B200",
    "B300": "NVIDIA-B300-SXM6-AC",
    "GB200": "NVIDIA-GB200",
    "GB300": "NVIDIA-GB300",
    "H100": "NVIDIA-H100-80GB-HBM3",
    "H100-NVL": "NVIDIA-H100-NVL",
    "H100-PCIE": "NVIDIA-H100-PCIe",
    "H200": "NVIDIA-H200",
    "L40S": "NVIDIA-L40S",
}

# Kubernetes label values: at most 63 characters of [A-Za-z0-9_.-], starting
# and ending alphanumeric, or empty.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Serving workloads become Deployments; work that finishes becomes a Job.
CONTROLLER = {
    WorkloadKind.inference: "Deployment",
    WorkloadKind.streaming: "Deployment",
    WorkloadKind.batch: "Job",
    WorkloadKind.training: "Job",
    WorkloadKind.fine_tuning: "Job",
}

# Ports a workload opens towards a data system by default (values override them).
SYSTEM_PORTS: dict[str, list[int]] = {
    "pacs": [443, 11112],  # DICOMweb over HTTPS, DICOM DIMSE
    "ehr": [443],  # FHIR over HTTPS
    "lis": [443],
    "wsi": [443],
    "sequencer": [443],
    "other": [443],
}

SERVICE_PORT = 8000
PLACEHOLDER_REGISTRY = "registry.invalid/medplan"  # .invalid never resolves (RFC 2606)
PLACEHOLDER_TAG = "set-me"
SENSITIVITY = [c.value for c in (Classification.phi, Classification.limited_data_set, Classification.deidentified, Classification.public)]
NO_DATA = "none"

_CIDR = (
    r"^(([0-9]{1,3}\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2])"
    r"|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))$"
)
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"


@lru_cache(maxsize=4096)
def label_value(text: str | None) -> str:
    """``text`` made into a valid label value (empty when nothing is left)."""
    out = re.sub(r"[^A-Za-z0-9_.-]+", "-", text or "")
    out = re.sub(r"^[^A-Za-z0-9]+", "", out)[:63]
    return re.sub(r"[^A-Za-z0-9]+$", "", out)


def gpu_product_label(gpu: str, name: str | None = None) -> str:
    """The GPU feature discovery product label of a catalog GPU.

    GPUs outside the table (catalog additions) get their catalog name with
    spaces as '-', which is GFD's rule; values.yaml lets an operator correct it.
    """
    if gpu in GPU_PRODUCT_LABELS:
        return GPU_PRODUCT_LABELS[gpu]
    return label_value(name or f"NVIDIA-{gpu}") or "unknown"


@dataclass(frozen=True)
class _Entry:
    """Replicas of one workload in one pool of a site: one controller."""

    name: str
    workload: str
    pool: str
    gpu: str
    gpus: int
    replicas: int
    gpus_per_node: int


class _Dumper(yaml.SafeDumper):
    """Block style with indented sequences (what yamllint's default expects), no anchors."""

    def ignore_aliases(self, data):  # noqa: ARG002 - an anchor would hide a repeated value
        return True

    def increase_indent(self, flow=False, indentless=False):  # noqa: ARG002
        return super().increase_indent(flow, False)


# PyYAML writes by YAML 1.1, whose resolvers miss some numbers of YAML 1.2
# and of Helm's Go YAML ("1e3", "0o17"): such a string would go out plain and
# come back to Helm as a number. Quote every string a 1.2 reader would not
# read as a string.
_NOT_A_STRING = re.compile(
    r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+"
    r"|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    r"|true|True|TRUE|false|False|FALSE|~|null|Null|NULL|)$"
)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _NOT_A_STRING.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def _dump_yaml(data: dict) -> str:
    """``data`` as :class:`_Dumper` writes it (sorted keys, block style, indented sequences).

    The pure-Python dumper is slow on the values of a large site, and the C
    dumper cannot indent sequences, so :func:`_block_yaml` writes the block
    structure itself and takes each scalar as the dumper writes it; anything
    it cannot write the same way goes to the dumper.
    """
    try:
        return "---\n" + _block_yaml(data, 0) if isinstance(data, dict) and data else _pyyaml(data)
    except _NotSimple:
        return _pyyaml(data)


def _pyyaml(data) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=4096, explicit_start=True
    )


class _NotSimple(Exception):
    """A value the block writer leaves to the dumper (a float, a multi-line or very long string, ...)."""


# Strings the dumper writes plain, unquoted, unless YAML would read them as another type:
# no indicator at the start, no ": " or " #", no leading or trailing space, nothing to escape.
_PLAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._/()+,;=@-]*[A-Za-z0-9._/()+,;=@-])?")
_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()
_BREAK = re.compile("[\n\r\x85\u2028\u2029]")  # what the dumper treats as a line break
# Letters that start no other type: the dumper's resolvers (YAML 1.1) are looked up by
# the first character, and what _NOT_A_STRING adds of YAML 1.2 that starts with a
# letter (true, false, null) starts with one of "tTfFnN", which 1.1 keys on already.
_NO_RESOLVER_STARTS = (
    frozenset(string.ascii_letters) - set(_RESOLVER.yaml_implicit_resolvers) - set("tTfFnN")
    if None not in _RESOLVER.yaml_implicit_resolvers
    else frozenset()
)
_scalar_keys: dict[str, str] = {}  # a string -> how it is written as a key
_scalar_values: dict[str, str] = {}  # ... and as a value


def _yaml_str(text: str, key: bool) -> str:
    """A string as the dumper writes it as a mapping key or a block value, on one line."""
    cache = _scalar_keys if key else _scalar_values
    found = cache.get(text)
    if found is not None:
        return found
    if (
        len(text) < (100 if key else 1000)  # a key of 123 or more characters is written "? key"
        and _PLAIN.fullmatch(text)
        and (
            text[0] in _NO_RESOLVER_STARTS
            or (_RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG and not _NOT_A_STRING.match(text))
        )
    ):
        found = text
    elif len(text) > 2000:
        raise _NotSimple(text[:40])
    else:
        # The dumper's own choice of style and quoting, taken from a one-entry document.
        dumped = yaml.dump({text: 0} if key else {"k": text}, Dumper=_Dumper, allow_unicode=True, width=4096)
        if key:
            found = dumped[:-4] if dumped.endswith(": 0\n") and not dumped.startswith("? ") else "\n"
        else:
            found = dumped[3:-1] if dumped.startswith("k: ") and dumped.endswith("\n") else "\n"
        # One line, and short enough that no line of the document reaches the dumper's width.
        if _BREAK.search(found) or len(found) > 3500:
            raise _NotSimple(text[:40])
    if len(cache) > 100_000:
        cache.clear()
    cache[text] = found
    return found


def _yaml_scalar(value) -> str:
    if type(value) is str:
        return _scalar_values.get(value) or _yaml_str(value, False)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if type(value) is int:
        return str(value)
    raise _NotSimple(type(value).__name__)


def _block_yaml(data: dict, indent: int) -> str:
    """A non-empty mapping in block style at ``indent`` columns, keys sorted, as :class:`_Dumper` writes it."""
    out: list[str] = []
    _emit_mapping(data, indent, out, None)
    return "".join(out)


# Mappings that recur in many values files, the very same objects (never changed):
# id -> (the mapping, kept alive; its text by indentation).
_shared_yaml: dict[int, tuple[dict, dict[int, str]]] = {}


def _shared(mapping: dict) -> dict:
    """Mark ``mapping`` as one whose block text is written once per indentation and reused."""
    _shared_yaml.setdefault(id(mapping), (mapping, {}))
    return mapping


# The keys of a mapping (in its order) at an indentation -> its keys sorted, each with the
# text its line starts with: the indentation, the key as the dumper writes it, and ":".
_heads: dict[tuple[tuple, int], tuple[tuple[str, str], ...]] = {}


def _mapping_heads(keys: tuple, indent: int) -> tuple[tuple[str, str], ...]:
    for key in keys:
        if type(key) is not str:
            raise _NotSimple(repr(key))
    pad = " " * indent
    heads = tuple((key, f"{pad}{_yaml_str(key, True)}:") for key in sorted(keys))
    if len(_heads) > 10_000:
        _heads.clear()
    _heads[(keys, indent)] = heads
    return heads


def _emit_mapping(data: dict, indent: int, out: list[str], first: str | None) -> None:
    """Lines of a non-empty mapping; ``first`` replaces the indentation of its first line (``- `` of an item)."""
    keys = tuple(data)
    heads = _heads.get((keys, indent)) or _mapping_heads(keys, indent)
    values = _scalar_values
    for key, head in heads:
        if first is not None:
            head = first + head[indent:]
            first = None
        value = data[key]
        kind = type(value)
        if kind is str:
            out.append(f"{head} {values.get(value) or _yaml_str(value, False)}\n")
        elif kind is dict:
            if not value:
                out.append(f"{head} {{}}\n")
                continue
            out.append(f"{head}\n")
            shared = _shared_yaml.get(id(value))
            if shared is None:
                _emit_mapping(value, indent + 2, out, None)
                continue
            text = shared[1].get(indent + 2)
            if text is None:
                text = shared[1][indent + 2] = _block_yaml(value, indent + 2)
            out.append(text)
        elif kind is list:
            if value:
                out.append(f"{head}\n")
                _emit_sequence(value, indent + 2, out, None)
            else:
                out.append(f"{head} []\n")
        else:
            out.append(f"{head} {_yaml_scalar(value)}\n")


def _emit_sequence(items: list, indent: int, out: list[str], first: str | None) -> None:
    """Lines of a non-empty sequence: each item after ``- ``; a mapping item's other keys under its first."""
    pad = " " * indent
    lead = pad if first is None else first
    for item in items:
        kind = type(item)
        if kind is dict and item:
            _emit_mapping(item, indent + 2, out, lead + "- ")
        elif kind is list and item:
            _emit_sequence(item, indent + 2, out, lead + "- ")
        elif kind is dict:
            out.append(f"{lead}- {{}}\n")
        elif kind is list:
            out.append(f"{lead}- []\n")
        else:
            out.append(f"{lead}- {_yaml_scalar(item)}\n")
        lead = pad


def _chart_sites(result) -> list:
    placed = {p.site for p in result.plan.placements}
    return [
        s
        for s in sorted(result.spec.sites, key=lambda s: s.id)
        if s.kind in (SiteKind.on_prem, SiteKind.colocation) and s.orchestrator is Orchestrator.kubernetes and s.id in placed
    ]


class _Plan:
    """The plan and the spec's flows indexed once for every chart (a chart must not scan them all)."""

    def __init__(self, result):
        self.result = result
        self.at_site: dict[str, list] = {}
        self.placed_sites: dict[str, set[str]] = {}
        for p in result.plan.placements:
            self.at_site.setdefault(p.site, []).append(p)
            self.placed_sites.setdefault(p.workload, set()).add(p.site)
        # Per workload: (flow id, kind, id) of the other end of each flow from it and into it
        # (the facts resolved every flow's ends already, one per flow of the spec).
        self.sends: dict[str, list[tuple[str, str, str]]] = {}
        self.receives: dict[str, list[tuple[str, str, str]]] = {}
        for rf in sorted(result.facts.flows, key=lambda rf: rf.flow.id):
            source, target = rf.source, rf.target
            if source.kind == "workload":
                self.sends.setdefault(source.id, []).append((rf.flow.id, target.kind, target.id))
            if target.kind == "workload":
                self.receives.setdefault(target.id, []).append((rf.flow.id, source.kind, source.id))
        self._products: dict[str, str] = {}
        self.received: dict[str, set[str]] = {}
        for rf in result.facts.flows:
            if rf.target.kind == "workload":
                self.received.setdefault(rf.target.id, set()).add(rf.flow.classification.value)


    def gpu_product(self, gpu: str) -> str:
        found = self._products.get(gpu)
        if found is None:
            found = self._products[gpu] = gpu_product_label(gpu, _gpu_name(self.result, gpu))
        return found


def _entries(plan: _Plan, site_id: str) -> list[_Entry]:
    result = plan.result
    groups: dict[tuple[str, str], list] = {}
    for p in plan.at_site.get(site_id, ()):
        groups.setdefault((p.workload, p.pool), []).append(p)
    pools_of: dict[str, set[str]] = {}
    for workload, pool in groups:
        pools_of.setdefault(workload, set()).add(pool)
    pools = result.facts.pools_by_key
    out = []
    for (workload, pool), placements in sorted(groups.items()):
        name = workload if len(pools_of[workload]) == 1 else label_value(f"{workload}-{pool}").lower()
        out.append(
            _Entry(
                name=name,
                workload=workload,
                pool=pool,
                gpu=placements[0].gpu,
                gpus=max(p.gpus for p in placements),
                replicas=len(placements),
                gpus_per_node=pools[f"{site_id}/{pool}"].gpus_per_node,
            )
        )
    return out


def _classification(plan: _Plan, workload) -> str:
    """The most sensitive classification among the data the workload reads."""
    datasets = plan.result.facts.index["dataset"]
    found = {datasets[d].classification.value for d in workload.inputs if d in datasets}
    found |= plan.received.get(workload.id, set())
    return next((c for c in SENSITIVITY if c in found), NO_DATA)


def _flows(plan: _Plan, workload_id: str, site_id: str) -> tuple[list[dict], list[dict]]:
    """(ingress, egress) peers of a workload at a site, each {kind, id, flows}.

    Inputs and flows from the workload are egress (the workload connects);
    flows into the workload are ingress. A workload peer placed at this site
    is matched by its pods; elsewhere by the site it runs at.
    """
    ingress: dict[tuple[str, str], set[str]] = {}
    egress: dict[tuple[str, str], set[str]] = {}
    placed_sites = plan.placed_sites

    def add(into: dict, kind: str, ident: str, reason: str) -> None:
        if kind == "workload":
            for other in sorted(placed_sites.get(ident, ())):
                if other == site_id:
                    into.setdefault(("workload", ident), set()).add(reason)
                else:
                    into.setdefault(("site", other), set()).add(reason)
        else:
            into.setdefault((kind, ident), set()).add(reason)

    workload = plan.result.facts.index["workload"][workload_id]
    for d in workload.inputs:
        add(egress, "dataset", d, "input")
    for flow_id, kind, ident in plan.sends.get(workload_id, ()):
        add(egress, kind, ident, flow_id)
    for flow_id, kind, ident in plan.receives.get(workload_id, ()):
        add(ingress, kind, ident, flow_id)

    def as_list(peers: dict) -> list[dict]:
        return [{"kind": k, "id": i, "flows": sorted(reasons)} for (k, i), reasons in sorted(peers.items())]

    return as_list(ingress), as_list(egress)


# Parts of the values that many entries and charts have alike are the same objects,
# never changed, so that their YAML is written once (see _shared).


@lru_cache(maxsize=None)
def _endpoint(ports: tuple[int, ...]) -> dict:
    return _shared({"cidrs": [], "namespace": "", "podLabels": {}, "ports": [{"port": p, "protocol": "TCP"} for p in ports]})


@lru_cache(maxsize=None)
def _resources(gpus_per_pod: int) -> dict:
    return _shared(
        {"cpu": str(4 * gpus_per_pod), "memory": f"{32 * gpus_per_pod}Gi", "shm": f"{8 * gpus_per_pod}Gi", "tmp": "10Gi"}
    )


_CLIENTS = _shared({"cidrs": [], "namespace": "", "podLabels": {}})
_NETWORK_POLICY = _shared(
    {
        "requireEndpoints": False,
        "dns": {
            "cidrs": [],
            "namespace": "kube-system",
            "podLabels": {"k8s-app": "kube-dns"},
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        },
    }
)
_SECURITY_CONTEXT = _shared({"runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532})
_PERSONAL_VALUES = frozenset(c.value for c in PERSONAL)


def _values(plan: _Plan, site, entries: list[_Entry]) -> dict:
    result = plan.result
    spec = result.spec
    index = result.facts.index
    workloads: dict[str, dict] = {}
    datasets: dict[str, dict] = {}
    sites: dict[str, dict] = {}
    images: dict[str, dict] = {}
    for e in entries:
        w = index["workload"][e.workload]
        classification = _classification(plan, w)
        pods = math.ceil(e.gpus / e.gpus_per_node)
        gpus_per_pod = math.ceil(e.gpus / pods)
        controller = CONTROLLER[w.kind]
        ingress, egress = _flows(plan, e.workload, site.id)
        for peer in ingress + egress:
            if peer["kind"] == "dataset":
                system = index["dataset"][peer["id"]].system.value
                datasets[peer["id"]] = _endpoint(tuple(SYSTEM_PORTS[system]))
            elif peer["kind"] == "site":
                sites[peer["id"]] = _endpoint((443,))
        entry = {
            "workload": e.workload,
            "kind": w.kind.value,
            "controller": controller,
            "pool": e.pool,
            "gpu": e.gpu,
            "gpuProduct": plan.gpu_product(e.gpu),
            "replicas": e.replicas,
            "gpus": e.gpus,
            "podsPerReplica": pods,
            "gpusPerPod": gpus_per_pod,
            "criticality": w.criticality.value,
            "classification": classification,
            "phi": classification in _PERSONAL_VALUES,
            "team": w.team or "",
            "teamLabel": label_value(w.team),
            "description": w.description or "",
            "resources": _resources(gpus_per_pod),
            "ingress": ingress,
            "egress": egress,
        }
        if controller == "Deployment":
            entry["port"] = SERVICE_PORT
            entry["clients"] = _CLIENTS
        else:
            entry["backoffLimit"] = 3
        workloads[e.name] = entry
        images[e.workload] = {"repository": f"{PLACEHOLDER_REGISTRY}/{e.workload}", "tag": PLACEHOLDER_TAG, "digest": "", "pullPolicy": "IfNotPresent"}
    return {
        "site": {"id": site.id, "kind": site.kind.value, "jurisdiction": site.jurisdiction, "zone": site.zone},
        "spec": {"name": spec.metadata.name, "owner": spec.metadata.owner or "", "description": spec.metadata.description or ""},
        "images": images,
        "workloads": workloads,
        "datasets": datasets,
        "sites": sites,
        "networkPolicy": _NETWORK_POLICY,
        "securityContext": _SECURITY_CONTEXT,
    }


def _gpu_name(result, gpu: str) -> str | None:
    try:
        return result.facts.catalog.gpu(gpu).name
    except KeyError:
        return None


# --------------------------------------------------------------------------- schema


def _string(**extra) -> dict:
    return {"type": "string", **extra}


def _int(minimum: int, **extra) -> dict:
    return {"type": "integer", "minimum": minimum, **extra}


def _obj(properties: dict, required: Iterable[str] | None = None) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": sorted(properties if required is None else required),
        "properties": properties,
    }


def _peers_schema(with_ports: bool) -> dict:
    props = {
        "cidrs": {"type": "array", "uniqueItems": True, "items": _string(pattern=_CIDR)},
        "namespace": {"type": "string", "anyOf": [{"maxLength": 0}, {"pattern": _DNS_LABEL}]},
        "podLabels": {
            "type": "object",
            "additionalProperties": _string(maxLength=63, pattern=LABEL_VALUE.pattern),
        },
    }
    if with_ports:
        props["ports"] = {
            "type": "array",
            "minItems": 1,
            "items": _obj({"port": _int(1, maximum=65535), "protocol": {"enum": ["TCP", "UDP", "SCTP"]}}),
        }
    return _obj(props)


@lru_cache(maxsize=None)
def _entry_schema(keys: tuple[str, ...]) -> dict:
    """The schema of a workload entry with ``keys`` (a Deployment's or a Job's)."""
    label = _string(maxLength=63, pattern=LABEL_VALUE.pattern)
    ident = _string(pattern=_DNS_LABEL)
    flow_peer = _obj({"kind": {"enum": ["dataset", "site", "workload"]}, "id": ident, "flows": {"type": "array", "items": _string()}})
    entry_props = {
        "workload": ident,
        "kind": {"enum": [k.value for k in WorkloadKind]},
        "controller": {"enum": ["Deployment", "Job"]},
        "pool": ident,
        "gpu": _string(minLength=1),
        "gpuProduct": {**label, "minLength": 1},
        "replicas": _int(1),
        "gpus": _int(1),
        "podsPerReplica": _int(1),
        "gpusPerPod": _int(1),
        "criticality": {"enum": ["high", "medium", "low"]},
        "classification": {"enum": [*SENSITIVITY, NO_DATA]},
        "phi": {"type": "boolean"},
        "team": _string(),
        "teamLabel": label,
        "description": _string(),
        "resources": _obj({k: _string(pattern=_QUANTITY) for k in ("cpu", "memory", "shm", "tmp")}),
        "ingress": {"type": "array", "items": flow_peer},
        "egress": {"type": "array", "items": flow_peer},
        "port": _int(1, maximum=65535),
        "clients": _peers_schema(with_ports=False),
        "backoffLimit": _int(0),
    }
    return _obj(entry_props, required=keys)


@lru_cache(maxsize=1)
def _image_schema() -> dict:
    return _obj(
        {
            "repository": _string(minLength=1, pattern=r"^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?(/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)+$"),
            "tag": _string(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"),
            "digest": _string(pattern=r"^(sha256:[a-f0-9]{64})?$"),
            "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
        }
    )


@lru_cache(maxsize=1)
def _endpoint_schema() -> dict:
    return _peers_schema(with_ports=True)


def _schema(values: dict) -> dict:
    """The chart's values.schema.json. Every workload entry, image and endpoint has one of a few
    schemas: each is written once under "definitions" (draft-07's place for them) and referenced,
    so the file grows by a few lines per workload, not by a whole schema."""
    definitions: dict[str, dict] = {}
    shapes: dict[tuple[str, ...], str] = {}  # the keys of an entry -> its definition, named after its controller
    workloads = {}
    for name, entry in values["workloads"].items():
        keys = tuple(sorted(entry))
        shape = shapes.get(keys)
        if shape is None:
            shape = str(entry.get("controller", "workload")).lower()
            if shape in definitions:
                shape = f"{shape}-{len(shapes)}"
            shapes[keys] = shape
            definitions[shape] = _entry_schema(keys)
        workloads[name] = _ref(shape)
    if values["images"]:
        definitions["image"] = _image_schema()
    definitions["endpoint"] = _endpoint_schema()
    endpoint = _ref("endpoint")
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"values of the medplan chart for site {values['site']['id']}",
        **_obj(
            {
                **_fixed_schemas(),
                "images": _obj({k: _ref("image") for k in values["images"]}),
                "workloads": _obj(workloads),
                "datasets": _obj({k: endpoint for k in values["datasets"]}),
                "sites": _obj({k: endpoint for k in values["sites"]}),
            }
        ),
        "definitions": definitions,
    }


@lru_cache(maxsize=None)
def _ref(name: str) -> dict:
    return {"$ref": f"#/definitions/{name}"}


@lru_cache(maxsize=1)
def _fixed_schemas() -> dict[str, dict]:
    """The schemas of the values that every chart has alike."""
    return {
        "site": _obj({"id": _string(pattern=_DNS_LABEL), "kind": _string(), "jurisdiction": _string(), "zone": _string()}),
        "spec": _obj({"name": _string(minLength=1), "owner": _string(), "description": _string()}),
        "networkPolicy": _obj({"requireEndpoints": {"type": "boolean"}, "dns": _ref("endpoint")}),
        "securityContext": _obj({k: _int(1) for k in ("runAsUser", "runAsGroup", "fsGroup")}),
    }


# --------------------------------------------------------------------------- chart


def _chart_yaml(result, site) -> str:
    chart = {
        "apiVersion": "v2",
        "name": site.id,
        "description": f"GPU workloads that medplan placed at site {site.id}",
        "type": "application",
        "version": "0.1.0",
        "appVersion": __version__,
        "kubeVersion": ">=1.29.0-0",
        "keywords": ["medplan", "gpu", site.kind.value],
        "annotations": {
            "medplan.dev/site": site.id,
            "medplan.dev/spec-name": result.spec.metadata.name,
        },
    }
    return _dump_yaml(chart)


def _static_chart_files() -> dict[str, str]:
    helm = templates_dir() / "helm"
    root = helm / "chart"
    files = {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
    # Kept without its dot in the package: package data globs skip dotfiles.
    files[".helmignore"] = (helm / "helmignore").read_text(encoding="utf-8")
    return files


@lru_cache(maxsize=1)
def _readme_template():
    from jinja2 import FileSystemLoader, StrictUndefined

    from planner.render.report import _Environment  # looks keys of dicts up first

    env = _Environment(
        loader=FileSystemLoader(str(templates_dir() / "helm")),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,
        bytecode_cache=template_cache(),
    )
    return env.get_template("README.md.j2")


def _readme(site, values: dict) -> str:
    # The entries as pairs: a workload may be named like a dict method ("items").
    entries = list(values["workloads"].items())
    return _readme_template().render(site=site, entries=entries, version=__version__, port=SERVICE_PORT)


def _json_text(doc) -> str:
    return dumps_indented(doc, sort_keys=True)


def render_helm(result) -> dict[str, str]:
    """``{"helm/<site>/<file>": content}`` for every Kubernetes site with placements."""
    from planner.render.report import paused_gc

    with paused_gc():
        return _render_helm(result)


def _render_helm(result) -> dict[str, str]:
    static = _static_chart_files()
    plan = _Plan(result)
    files: dict[str, str] = {}
    for site in _chart_sites(result):
        base = f"helm/{site.id}"
        values = _values(plan, site, _entries(plan, site.id))
        header = (
            f"# Values of the medplan chart for site {site.id}, generated from the plan.\n"
            "# Replicas, GPUs and the GPU product come from the plan; set images.*,\n"
            "# datasets.*, sites.* and clients before installing (see README.md).\n"
        )
        files[f"{base}/Chart.yaml"] = _chart_yaml(result, site)
        files[f"{base}/values.yaml"] = header + _dump_yaml(values)
        files[f"{base}/values.schema.json"] = _json_text(_schema(values)) + "\n"
        files[f"{base}/README.md"] = _readme(site, values)
        for rel, text in static.items():
            files[f"{base}/{rel}"] = text
    return dict(sorted(files.items()))
