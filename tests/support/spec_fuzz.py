"""Hypothesis strategies for fuzzing the spec loader and the CLI, and the
in-process CLI runner that judges one case.

Shared by ``tests/test_fuzz.py`` (a few hundred derandomized examples per
property) and ``bench/fuzz.py`` (ten thousand or more).

- :func:`raw_bytes` - any bytes, and bytes of a valid spec cut, spliced or
  sprinkled with YAML indicators, BOMs, tabs and foreign encodings.
- :func:`plausible_specs` - dicts shaped like specs (every section, real
  field names, ids that reference each other) with a few mutations: wrong
  types, missing and extra keys, typos, unknown names, huge, negative and
  non-finite numbers, unicode and control characters, shared nodes (which
  YAML writes as anchors and aliases).
- :func:`spec_texts` - those dicts as YAML text in block or flow style, then
  mutated as text: duplicate lines (duplicate keys), tab indentation, CRLF,
  BOMs, UTF-16, extra documents, comments, merge keys.
- :func:`judge` - run ``medplan validate`` (or ``plan``) in-process on one
  case and return a :class:`Verdict`: what went wrong, or nothing.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Hypothesis settings of the fuzz tests: derandomized and with no example
# database, so every run (CI's included) tries the same examples.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# --------------------------------------------------------------------------- vocabulary

GPUS = ["H100", "H200", "B200", "L40S", "A100-40GB", "A100-80GB", "GB200"]
INSTANCES = ["p5.48xlarge", "p4d.24xlarge", "p5e.48xlarge", "Standard_ND96isr_H100_v5", "a3-highgpu-8g"]
PROVIDERS = ["aws", "azure", "gcp", "oci", "other"]
JURISDICTIONS = ["US-MN", "US-VA", "DE", "DE-HE", "FR-IDF", "GB"]
ZONES = ["us", "eu", "uk"]
RULES = ["MP-HIPAA-TX-001", "MP-HIPAA-BAA-001", "MP-GDPR-XFER-002", "MP-PLAT-HA-001", "MP-HIPAA-ENC-001", "MP-NOPE-001"]
ENUMS = {
    "site_kind": ["on-prem", "colocation", "cloud"],
    "baa": ["executed", "pending", "none", "not-required"],
    "orchestrator": ["kubernetes", "slurm", "none"],
    "link_encryption": ["none", "tls", "mtls", "ipsec", "macsec"],
    "system": ["pacs", "ehr", "lis", "wsi", "sequencer", "other"],
    "classification": ["phi", "limited-data-set", "deidentified", "public"],
    "deidentification": ["safe-harbor", "expert-determination"],
    "workload_kind": ["inference", "training", "fine-tuning", "batch", "streaming"],
    "precision": ["fp32", "bf16", "fp16", "fp8", "int8", "fp4", "int4"],
    "training_method": ["full", "lora", "qlora"],
    "criticality": ["high", "medium", "low"],
    "transit": ["none", "tls1.2", "tls1.3", "mtls", "ipsec"],
    "purpose": ["treatment", "payment", "operations", "research", "public-health", "quality-improvement", "other"],
    "mechanism": ["adequacy", "scc", "bcr", "derogation"],
    "frequency": ["continuous", "scheduled", "one-off"],
    "isolation": ["none", "time-slicing", "mig", "dedicated-nodes"],
    "severity": ["critical", "high", "medium", "low", "info"],
    "objective": ["cost", "gpus", "latency"],
}
# Keys a spec author might mistype, and names nothing defines.
TYPO_KEYS = ["replica", "gpu_per_node", "jurisdication", "clasification", "inputz", "Kind", "ID", "site ", "x-extra", "<<"]
UNKNOWN_NAMES = ["nope", "H1OO", "pacs2", "on_prem", "Cloud", "dc-9", "", " ", "site/x", "flow/"]
# Characters that mean something to YAML, Markdown, HTML, HCL or a terminal.
SIGNIFICANT = list(":{}[]&*!|>'\"%@`#,-?\t\n\r\\$<~=") + ["\ufeff", "\u202e", "\u200d", "\x1b", "\x85", "\u2028", "а"]

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-"


def ids(prefix: str) -> st.SearchStrategy[str]:
    return st.integers(0, 99).map(lambda n: f"{prefix}{n}")


def free_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Names and descriptions: mostly tame, sometimes any unicode at all."""
    return st.one_of(
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=max_size),
        st.text(alphabet=st.sampled_from([*SIGNIFICANT, "a", "b", " ", "é", "😀"]), max_size=max_size),
        st.sampled_from(["Radiology AI", "platform@example.org", "yes", "no", "null", "~", "1e3", "0x1F", "---", "..."]),
    )


def tame_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Text a valid spec may hold: any printable unicode, no control characters."""
    return st.one_of(
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=max_size),
        st.sampled_from(["Radiology AI", "platform@example.org", "Ärztehaus Süd", "東京 病院", "a: b # c", "- x", "'q'"]),
    )


def numbers() -> st.SearchStrategy[object]:
    """Numbers a careless or hostile author writes: huge, negative, non-finite."""
    return st.one_of(
        st.integers(-(10**6), 10**6),
        st.sampled_from([0, -1, 10**30, 10**100, -(10**100), 2**63, 2**64 + 1]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 0.5, 1e300]),
    )


def wild_values(depth: int = 2) -> st.SearchStrategy[object]:
    """Any value YAML can express, of any type."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        numbers(),
        free_text(),
        st.sampled_from(UNKNOWN_NAMES),
        st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    )
    if depth <= 0:
        return scalars
    inner = wild_values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(TYPO_KEYS), free_text(12), st.integers(-3, 3)), inner, max_size=4),
    )


# --------------------------------------------------------------------------- plausible specs


def _maybe(draw, key: str, value_strategy, out: dict, p: bool | None = None) -> None:
    if p if p is not None else draw(st.booleans()):
        out[key] = draw(value_strategy)


@st.composite
def _pool(draw, cloud: bool, n: int) -> dict:
    if cloud and draw(st.booleans()):
        pool = {"id": f"p{n}", "instance": draw(st.sampled_from(INSTANCES)), "max_nodes": draw(st.integers(1, 4))}
        if draw(st.booleans()):
            pool["price_per_hour"] = draw(st.floats(1, 200).map(lambda x: round(x, 2)))
            pool["price_as_of"] = draw(st.dates(dt.date(2024, 1, 1), dt.date(2027, 1, 1)))
    else:
        pool = {
            "id": f"p{n}",
            "gpu": draw(st.sampled_from(GPUS)),
            "nodes": draw(st.integers(1, 4)),
            "gpus_per_node": draw(st.sampled_from([1, 2, 4, 8])),
        }
        _maybe(draw, "cost_per_gpu_hour", st.floats(0, 10).map(lambda x: round(x, 2)), pool)
    _maybe(draw, "isolation", st.sampled_from(ENUMS["isolation"]), pool)
    return pool


@st.composite
def _site(draw, n: int) -> dict:
    kind = draw(st.sampled_from(ENUMS["site_kind"]))
    site: dict = {
        "id": f"site{n}",
        "kind": kind,
        "jurisdiction": draw(st.sampled_from(JURISDICTIONS)),
        "zone": draw(st.sampled_from(ZONES)),
    }
    if kind == "cloud":
        site["provider"] = draw(st.sampled_from(PROVIDERS[:3]))
        site["region"] = draw(st.sampled_from(["us-east-1", "eastus2", "us-central1"]))
    _maybe(draw, "baa", st.sampled_from(ENUMS["baa"]), site)
    _maybe(draw, "orchestrator", st.sampled_from(ENUMS["orchestrator"]), site)
    _maybe(draw, "certifications", st.lists(tame_text(20), max_size=3), site)
    if draw(st.booleans()):
        controls = {
            k: draw(st.booleans())
            for k in ("encryption_at_rest", "customer_managed_keys", "audit_logging", "mfa", "unique_user_ids")
            if draw(st.booleans())
        }
        if draw(st.booleans()):
            controls["backup"] = {"rpo_hours": draw(st.integers(0, 72)), "rto_hours": draw(st.integers(0, 240))}
        site["controls"] = controls
    site["pools"] = [draw(_pool(kind == "cloud", j)) for j in range(draw(st.integers(0, 2)))]
    return site


@st.composite
def _workload(draw, n: int, datasets: list[str], sites: list[str]) -> dict:
    w: dict = {"id": f"wl{n}", "kind": draw(st.sampled_from(ENUMS["workload_kind"]))}
    if draw(st.booleans()):
        w["gpus"] = draw(st.integers(1, 8))
    else:
        model = {"name": draw(tame_text(30)) or "model", "params_b": draw(st.sampled_from([0.1, 2, 8, 70]))}
        _maybe(draw, "precision", st.sampled_from(ENUMS["precision"]), model)
        if draw(st.booleans()):
            model.update(layers=32, kv_heads=8, head_dim=128, context_tokens=draw(st.sampled_from([4096, 32768])))
        w["model"] = model
    _maybe(draw, "replicas", st.integers(1, 3), w)
    _maybe(draw, "team", tame_text(30), w)
    _maybe(draw, "description", tame_text(), w)
    if datasets:
        _maybe(draw, "inputs", st.lists(st.sampled_from(datasets), max_size=2, unique=True), w)
    _maybe(draw, "max_latency_ms", st.sampled_from([1, 20, 100]), w)
    _maybe(draw, "criticality", st.sampled_from(ENUMS["criticality"]), w)
    _maybe(draw, "accelerators", st.lists(st.sampled_from(GPUS), max_size=2, unique=True), w)
    _maybe(draw, "gpu_memory_gb", st.sampled_from([16, 40, 80]), w)
    if w["kind"] in ("training", "fine-tuning"):
        _maybe(draw, "training_method", st.sampled_from(ENUMS["training_method"]), w)
    if draw(st.integers(0, 4)) == 0:
        w["throughput"] = {g: draw(st.integers(1, 200)) for g in draw(st.lists(st.sampled_from(GPUS), min_size=1, max_size=2, unique=True))}
        w["demand"] = draw(st.integers(1, 500))
    if sites and draw(st.booleans()):
        placement: dict = {}
        _maybe(draw, "sites", st.lists(st.sampled_from(sites), max_size=2, unique=True), placement)
        _maybe(draw, "avoid", st.lists(st.sampled_from(sites), max_size=1), placement)
        _maybe(draw, "kinds", st.lists(st.sampled_from(ENUMS["site_kind"]), max_size=2, unique=True), placement)
        w["placement"] = placement
    return w


def _gpu_addition(name: str) -> dict:
    from planner.catalog import load_catalog

    gpu = load_catalog().gpu("H100").model_dump(mode="json", exclude_none=True)
    gpu.pop("origin", None)
    gpu.update(id=name, name=f"Custom {name}", aliases=[])
    return gpu


@st.composite
def valid_specs(draw) -> dict:
    """A spec that is mostly valid: every reference resolves, values fit."""
    sites = [draw(_site(i)) for i in range(draw(st.integers(1, 3)))]
    site_ids = [s["id"] for s in sites]
    spec: dict = {"apiVersion": "medplan/v1", "metadata": {"name": draw(tame_text(30)) or "fuzz"}}
    _maybe(draw, "owner", tame_text(), spec["metadata"])
    _maybe(draw, "description", tame_text(), spec["metadata"])
    spec["sites"] = sites
    if len(sites) > 1:
        links = []
        for a, b in zip(site_ids, site_ids[1:]):
            link: dict = {"between": [a, b], "latency_ms": draw(st.integers(0, 80))}
            _maybe(draw, "encryption", st.sampled_from(ENUMS["link_encryption"]), link)
            _maybe(draw, "carrier", tame_text(30), link)
            _maybe(draw, "bandwidth_gbps", st.sampled_from([1, 10, 100]), link)
            links.append(link)
        spec["links"] = links
    datasets = []
    for i in range(draw(st.integers(0, 3))):
        d: dict = {
            "id": f"ds{i}",
            "site": draw(st.sampled_from(site_ids)),
            "classification": draw(st.sampled_from(ENUMS["classification"])),
        }
        _maybe(draw, "system", st.sampled_from(ENUMS["system"]), d)
        _maybe(draw, "subjects_zone", st.sampled_from(ZONES), d)
        _maybe(draw, "size_tb", st.sampled_from([0, 1.5, 200]), d)
        _maybe(draw, "description", tame_text(), d)
        datasets.append(d)
    if datasets:
        spec["datasets"] = datasets
    dataset_ids = [d["id"] for d in datasets]
    workloads = [draw(_workload(i, dataset_ids, site_ids)) for i in range(draw(st.integers(0, 3)))]
    if workloads:
        spec["workloads"] = workloads
    ends = dataset_ids + site_ids + [w["id"] for w in workloads]
    flows = []
    if dataset_ids:
        for i in range(draw(st.integers(0, 2))):
            f: dict = {
                "id": f"fl{i}",
                "from": draw(st.sampled_from(dataset_ids)),
                "to": draw(st.sampled_from(ends)),
                "classification": draw(st.sampled_from(ENUMS["classification"])),
            }
            _maybe(draw, "encryption_in_transit", st.sampled_from(ENUMS["transit"]), f)
            _maybe(draw, "purpose", st.sampled_from(ENUMS["purpose"]), f)
            _maybe(draw, "transfer_mechanism", st.sampled_from(ENUMS["mechanism"]), f)
            _maybe(draw, "deidentification", st.sampled_from(ENUMS["deidentification"]), f)
            _maybe(draw, "frequency", st.sampled_from(ENUMS["frequency"]), f)
            _maybe(draw, "description", tame_text(), f)
            flows.append(f)
    if flows:
        spec["flows"] = flows
    subjects = [f"site/{s}" for s in site_ids] + [f"dataset/{d}" for d in dataset_ids] + [f"flow/{f['id']}" for f in flows]
    if draw(st.integers(0, 2)) == 0:
        spec["waivers"] = [
            {
                "rule": draw(st.sampled_from(RULES)),
                "subject": draw(st.sampled_from(subjects)),
                "justification": draw(tame_text()) or "accepted",
                "approved_by": draw(tame_text(20)) or "ciso",
                "expires": draw(st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1))),
                **({"ticket": draw(tame_text(20))} if draw(st.booleans()) else {}),
            }
        ]
    if draw(st.booleans()):
        spec["policies"] = {
            "include": draw(st.lists(st.sampled_from(["builtin:hipaa", "builtin:gdpr", "builtin:platform"]), min_size=1, unique=True)),
            "fail_on": draw(st.sampled_from(ENUMS["severity"])),
        }
    # Keep the solver quick: fuzzing is about input handling, not optimality.
    spec["objective"] = {"minimize": draw(st.sampled_from(ENUMS["objective"])), "time_limit_s": 2}
    if draw(st.integers(0, 5)) == 0:
        spec["catalog"] = {"gpus": [_gpu_addition("X1")]}
    return spec


def _paths(node, prefix=(), seen=()) -> list[tuple]:
    """Every path into a nested dict/list value, parents before children."""
    out = [prefix]
    if id(node) in seen:  # shared nodes may have made a cycle
        return out
    seen = (*seen, id(node))
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,), seen)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,), seen)
    return out


def _get(node, path):
    for part in path:
        node = node[part]
    return node


_MUTATIONS = ["replace", "delete", "extra_key", "rename", "duplicate", "unknown_name", "number", "text", "alias"]


@st.composite
def plausible_specs(draw, max_mutations: int = 3) -> dict:
    """A valid-looking spec with 0..max_mutations things wrong with it."""
    spec = draw(valid_specs())
    for _ in range(draw(st.integers(0, max_mutations))):
        # policies.include names directories: a random one could be "/" and
        # make a run crawl the file system, which says nothing about the loader.
        paths = [p for p in _paths(spec) if p[:2] != ("policies", "include")]
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(_MUTATIONS))
        if not path:
            if kind in ("replace", "delete"):
                spec = draw(wild_values())
                break
            path = ()
        parent = _get(spec, path[:-1]) if path else None
        key = path[-1] if path else None
        target = _get(spec, path)
        if kind == "replace" and parent is not None:
            parent[key] = draw(wild_values())
        elif kind == "delete" and parent is not None:
            del parent[key]
        elif kind == "extra_key" and isinstance(target, dict):
            target[draw(st.one_of(st.sampled_from(TYPO_KEYS), free_text(10)))] = draw(wild_values(1))
        elif kind == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(TYPO_KEYS))] = parent.pop(key)
        elif kind == "duplicate" and isinstance(target, list) and target:
            target.append(copy.deepcopy(draw(st.sampled_from(target))))
        elif kind == "unknown_name" and parent is not None and isinstance(target, str):
            parent[key] = draw(st.sampled_from(UNKNOWN_NAMES))
        elif kind == "number" and parent is not None and isinstance(target, (int, float)) and not isinstance(target, bool):
            parent[key] = draw(numbers())
        elif kind == "text" and parent is not None and isinstance(target, str):
            parent[key] = draw(free_text(80))
        elif kind == "alias" and parent is not None and isinstance(target, (dict, list)):
            # The same object twice: yaml.dump writes an anchor and an alias.
            others = [p for p in paths if p and p[:-1] != path and isinstance(_get(spec, p), (dict, list))]
            if others:
                where = draw(st.sampled_from(others))
                if where[: len(path)] != path and path[: len(where)] != where:
                    _get(spec, where[:-1])[where[-1]] = target
    return spec


# --------------------------------------------------------------------------- text


# Plain scalars that YAML 1.2's core schema (which medplan reads specs by)
# resolves to something other than a string. PyYAML writes by YAML 1.1 and
# leaves some of them ("1e3", "0o17") unquoted.
CORE_12_NON_STRINGS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]


class SpecDumper(yaml.SafeDumper):
    """Writes a string that YAML 1.2 would read as a number, boolean or null in quotes."""


def _represent_str(dumper, value: str):
    style = '"' if any(re.match(p, value) for _, p, _ in CORE_12_NON_STRINGS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


SpecDumper.add_representer(str, _represent_str)


def dump(data, flow: bool = False, unicode: bool = True, width: int = 80) -> str:
    """YAML text of ``data`` that a YAML 1.2 reader reads back as the same data."""
    try:
        return yaml.dump(data, Dumper=SpecDumper, sort_keys=False, default_flow_style=flow, allow_unicode=unicode, width=width)
    except (yaml.YAMLError, TypeError, ValueError, OverflowError, RecursionError):
        return "apiVersion: medplan/v1\n"


def _text_mutation(draw, text: str) -> str:
    lines = text.split("\n")
    kind = draw(
        st.sampled_from(
            ["dup_line", "tab", "crlf", "comment", "document", "truncate", "insert", "merge", "anchor_bomb", "long_line"]
        )
    )
    n = draw(st.integers(0, max(len(lines) - 1, 0)))
    if kind == "dup_line":
        lines.insert(n, lines[n])
    elif kind == "tab":
        lines[n] = re.sub(r"^( +)", lambda m: "\t" * max(1, len(m.group(1)) // 2), lines[n])
    elif kind == "crlf":
        return "\r\n".join(lines)
    elif kind == "comment":
        lines.insert(n, draw(st.sampled_from(["# comment", "#", "  # indented: comment", "key: value # trailing"])))
    elif kind == "document":
        lines += draw(st.sampled_from([["---", "apiVersion: medplan/v1"], ["...", ""], ["--- !!str", "x"], ["%YAML 1.2", "---"]]))
    elif kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    elif kind == "insert":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.text(st.sampled_from(SIGNIFICANT), min_size=1, max_size=3)) + text[at:]
    elif kind == "merge":
        lines = ["x-base: &base {kind: on-prem, zone: us}", *lines] if not lines[0].startswith(("{", "[")) else lines
        lines.insert(min(n + 1, len(lines)), "  <<: *base")
    elif kind == "anchor_bomb":
        lines = [
            "metadata: &a {name: [x, x, x, x, x, x, x, x]}",
            "sites: &b [*a, *a, *a, *a, *a, *a, *a, *a]",
            "datasets: &c [*b, *b, *b, *b, *b, *b, *b, *b]",
            "workloads: [*c, *c, *c, *c, *c, *c, *c, *c]",
        ] + lines
    elif kind == "long_line":
        lines.insert(n, "  " + "x" * draw(st.sampled_from([1000, 100_001])))
    return "\n".join(lines)


@st.composite
def spec_texts(draw) -> bytes:
    """A plausible spec as YAML bytes, sometimes mangled as text."""
    data = draw(plausible_specs())
    text = dump(data, flow=draw(st.booleans()), unicode=draw(st.booleans()), width=draw(st.sampled_from([40, 80, 10_000])))
    for _ in range(draw(st.integers(0, 2)) if draw(st.booleans()) else 0):
        text = _text_mutation(draw, text)
    encoding = draw(st.sampled_from(["utf-8"] * 8 + ["utf-8-sig", "utf-16", "latin-1"]))
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


@st.composite
def raw_bytes(draw) -> bytes:
    """Any bytes, or the bytes of a valid spec damaged at random places."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2000))
    text = dump(draw(valid_specs())).encode("utf-8")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["flip", "cut", "splice", "insert"]))
        if op == "flip" and at < len(text):
            text = text[:at] + bytes([text[at] ^ (1 << draw(st.integers(0, 7)))]) + text[at + 1 :]
        elif op == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif op == "splice":
            text = text[:at] + draw(st.binary(min_size=1, max_size=20)) + text[at:]
        else:
            text = text[:at] + draw(st.sampled_from(SIGNIFICANT)).encode("utf-8") + text[at:]
    return text


# --------------------------------------------------------------------------- judging one case

LOCATED = re.compile(r"^(?:error: )?(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): \S")
ENV = {"NO_COLOR": "1", "SOURCE_DATE_EPOCH": "1795000000", "MEDPLAN_OPA_URL": None, "MEDPLAN_FORMAT": None,
       "MEDPLAN_FAIL_ON": None, "MEDPLAN_OPA_TOKEN": None, "MEDPLAN_DEBUG": None}


@dataclass
class Verdict:
    """The outcome of one case; ``problems`` is empty when medplan behaved."""

    command: str
    exit_code: int | None
    seconds: float
    stdout: str = ""
    stderr: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        return (
            f"medplan {self.command}: exit {self.exit_code} after {self.seconds:.2f}s\n"
            + "".join(f"  problem: {p}\n" for p in self.problems)
            + f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        )


def run_cli(args: list[str]):
    """``medplan ARGS`` in-process; exceptions are caught, not raised."""
    from click.testing import CliRunner

    from planner.cli import main

    return CliRunner(env=ENV).invoke(main, args, catch_exceptions=True)


def _line_count(data: bytes) -> int:
    """Lines as YAML counts them: CR, LF and CRLF (and, for PyYAML, NEL, LS, PS) end a line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.count(b"\n") + 1
    return len(re.findall("\r\n|[\r\n\x85\u2028\u2029]", text)) + 1


def judge(data: bytes, command: str = "validate", workdir: Path | None = None, name: str = "spec.yaml") -> Verdict:
    """Run ``medplan COMMAND`` on ``data`` written to a file and check how it ended.

    Exit 0, 1 or 2 and no traceback; on 2 a ``file:line:col:`` line on
    stderr that points into the file; on 2 from ``plan --out`` nothing written.
    """
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="medplan-fuzz-")) if own else workdir
    try:
        spec = root / name
        spec.write_bytes(data)
        out = root / "out"
        args = [command, str(spec)] + (["--out", str(out)] if command == "plan" else [])
        started = time.monotonic()
        result = run_cli(args)
        seconds = time.monotonic() - started
        stderr = result.stderr
        verdict = Verdict(command, result.exit_code, seconds, result.stdout, stderr)
        exc = result.exception
        if exc is not None and not isinstance(exc, SystemExit):
            import traceback

            verdict.problems.append(
                "uncaught exception: " + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:]
            )
        if result.exit_code not in (0, 1, 2):
            verdict.problems.append(f"exit code {result.exit_code} is not 0, 1 or 2")
        if "internal error" in stderr or "Traceback (most recent call last)" in stderr + result.stdout:
            verdict.problems.append("an internal error or traceback was printed")
        if result.exit_code == 2:
            located = [m for m in map(LOCATED.match, stderr.splitlines()) if m]
            if not located:
                verdict.problems.append("exit 2 without a file:line:col: message on stderr")
            lines = _line_count(data)
            for m in located:
                if m.group("file") == str(spec) and not 1 <= int(m.group("line")) <= lines + 1:
                    verdict.problems.append(f"line {m.group('line')} is outside the file ({lines} lines)")
                if int(m.group("col")) < 1:
                    verdict.problems.append(f"column {m.group('col')} is not 1-based")
            if command == "plan" and out.exists():
                verdict.problems.append("plan --out wrote a directory although the run could not be checked")
        elif command == "plan" and result.exit_code in (0, 1) and not (out / "plan.json").is_file():
            verdict.problems.append("plan --out finished without writing plan.json")
        return verdict
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for child in root.iterdir():
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


def repro_name(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16] + ".yaml"


__all__ = [
    "CORE_12_NON_STRINGS",
    "SpecDumper",
    "Verdict",
    "dump",
    "judge",
    "plausible_specs",
    "raw_bytes",
    "repro_name",
    "run_cli",
    "spec_texts",
    "valid_specs",
    "wild_values",
]
