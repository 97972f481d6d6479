"""Terraform for a plan: one root module per cloud site that runs placed
workloads, as ``{relative path: file content}``.

Each ``terraform/<site>/`` holds the provider resources for the planned GPU
capacity (AWS, Azure or Google Cloud) and ``checks.tf``, the plan as locals
with ``check`` blocks. The same provider-free logic is also a module of its
own, ``terraform/<site>/plan/``, with a ``terraform test`` suite: it needs no
provider plugin, so ``init``, ``validate`` and ``test`` run anywhere.

Output is already in ``terraform fmt`` layout. Text from the spec goes through
:func:`hcl_string` and only into locals and tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from planner import __version__
from planner.resources import template_cache, templates_dir
from planner.spec.models import Provider, SiteKind

__all__ = ["GKE_ACCELERATORS", "PROVIDERS", "hcl_string", "render_terraform"]

# Terraform provider of each cloud: (local name, source, version constraint).
PROVIDERS: dict[Provider, tuple[str, str, str]] = {
    Provider.aws: ("aws", "hashicorp/aws", "~> 6.0"),
    # rbac_authorization_enabled on azurerm_key_vault arrived in 4.42.
    Provider.azure: ("azurerm", "hashicorp/azurerm", "~> 4.42"),
    Provider.gcp: ("google", "hashicorp/google", "~> 6.0"),
}

# GKE accelerator type of each GPU model (`gcloud compute accelerator-types list`).
# A3 Mega has its own type; other machine types follow the GPU.
GKE_ACCELERATORS: dict[str, str] = {
    "A100-40GB": "nvidia-tesla-a100",
    "A100-80GB": "nvidia-a100-80gb",
    "B200": "nvidia-b200",
    "GB200": "nvidia-gb200",
    "H100": "nvidia-h100-80gb",
    "H200": "nvidia-h200-141gb",
    "L4": "nvidia-l4",
}
_GKE_MACHINE_ACCELERATORS = {"a3-megagpu-8g": "nvidia-h100-mega-80gb"}

TERRAFORM_VERSION = ">= 1.7.0"  # check blocks (1.5) and terraform test with expect_failures on checks (1.7)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


# --------------------------------------------------------------------------- HCL text


# What hcl_string escapes, character by character.
_HCL_ESCAPES = {
    **{c: f"\\u{c:04x}" for c in (*range(0x20), 0x7F, 0x2028, 0x2029)},
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}


def hcl_string(text: str) -> str:
    """``text`` as a quoted HCL string literal that evaluates to ``text`` exactly.

    Backslash escapes for quotes and control characters, and ``${`` / ``%{``
    doubled so that nothing in the text is read as interpolation or a directive.
    """
    body = text.translate(_HCL_ESCAPES).replace("${", "$${").replace("%{", "%%{")
    return f'"{body}"'


def _key(name: str) -> str:
    return name if _IDENT.match(name) else hcl_string(name)


# While render_terraform runs: id of an object -> (the object, its one-line text). The
# placements of a site are written into several files; each row is formatted once.
_inline_texts: dict[int, tuple[object, str]] | None = None


def _inline(value) -> str:
    """A value on one line: scalars, lists of scalars, small objects."""
    if _inline_texts is not None and type(value) is dict:
        found = _inline_texts.get(id(value))
        if found is None:
            found = _inline_texts[id(value)] = (value, _inline_uncached(value))
        return found[1]
    return _inline_uncached(value)


def _inline_uncached(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return hcl_string(value)
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no HCL form for {type(value).__name__}")


def _multiline(value) -> bool:
    if isinstance(value, dict):
        return bool(value)
    if isinstance(value, list):
        return any(isinstance(v, dict) for v in value)
    return False


def hcl_body(items: dict, indent: int) -> str:
    """``key = value`` lines at ``indent`` levels, ``=`` aligned as ``terraform fmt`` does.

    fmt aligns runs of consecutive one-line attributes; a value that opens a
    multi-line object or list ends the run, so it is set off by blank lines.
    """
    pad = "  " * indent
    lines: list[str] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        width = max((len(k) for k, _ in run), default=0)
        lines.extend(f"{pad}{k.ljust(width)} = {v}" for k, v in run)
        run.clear()

    for name, value in items.items():
        key = _key(name)
        if not _multiline(value):
            run.append((key, _inline(value)))
            continue
        flush()
        if lines and lines[-1] != "":
            lines.append("")
        lines.append(f"{pad}{key} = {hcl_value(value, indent)}")
        lines.append("")
    flush()
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines)


def hcl_value(value, indent: int) -> str:
    """A value starting on a line at ``indent`` levels (objects and lists of objects span lines)."""
    if not _multiline(value):
        return _inline(value)
    pad = "  " * indent
    if isinstance(value, dict):
        return "{\n" + hcl_body(value, indent + 1) + f"\n{pad}}}"
    inner = "  " * (indent + 1)
    return "[\n" + "".join(f"{inner}{_inline(v)},\n" for v in value) + f"{pad}]"


# --------------------------------------------------------------------------- tags


def _aws_tag(text: str) -> str:
    """An AWS tag value: letters, digits, spaces and + - = . _ : / @, 256 characters."""
    out = re.sub(r"[^\w +\-=.:/@]", " ", text, flags=re.UNICODE)
    return re.sub(r"\s+", " ", out).strip()[:256].strip()


def _azure_tag(text: str) -> str:
    """An Azure tag value: any printable text up to 256 characters."""
    out = "".join(ch if ch.isprintable() else " " for ch in text)
    return re.sub(r"\s+", " ", out).strip()[:256].strip()


def _gcp_label(text: str) -> str:
    """A Google Cloud label value: lowercase letters, digits, '_' and '-', 63 characters."""
    out = re.sub(r"[^a-z0-9_-]+", "-", text.lower())
    return out.strip("-")[:63].strip("-")


_TAG = {Provider.aws: _aws_tag, Provider.azure: _azure_tag, Provider.gcp: _gcp_label}


# --------------------------------------------------------------------------- plan data


@dataclass(frozen=True)
class _SitePlan:
    site: object
    pools: dict[str, dict]
    placements: list[dict]
    workloads: dict[str, dict]


def _cloud_sites(result) -> list:
    placed = {p.site for p in result.plan.placements}
    return [s for s in sorted(result.spec.sites, key=lambda s: s.id) if s.kind is SiteKind.cloud and s.id in placed]


def _accelerator(gpu: str, instance: str | None) -> str:
    if instance in _GKE_MACHINE_ACCELERATORS:
        return _GKE_MACHINE_ACCELERATORS[instance]
    return GKE_ACCELERATORS.get(gpu, f"nvidia-{gpu.lower()}")


def _site_plan(result, site, at_site: list) -> _SitePlan:
    placements = sorted(at_site, key=lambda p: (p.pool, p.workload, p.replica))
    used = sorted({p.pool for p in placements})
    resolved = result.facts.pools_by_key
    pools: dict[str, dict] = {}
    for pool_id in used:
        usage = result.plan.pools[f"{site.id}/{pool_id}"]
        rp = resolved[f"{site.id}/{pool_id}"]
        instances = usage.instances if usage.elastic and usage.instances is not None else usage.nodes_used
        entry = {
            "instance_type": rp.instance or "",
            "gpu": rp.gpu,
            "gpus_per_node": rp.gpus_per_node,
            "instances": instances,
            "max_nodes": rp.nodes,
            "gpus_used": usage.gpus_used,
            "elastic": rp.elastic,
        }
        if site.provider is Provider.gcp:
            entry["accelerator"] = _accelerator(rp.gpu, rp.instance)
        pools[pool_id] = entry
    rows = [{"workload": p.workload, "replica": p.replica, "pool": p.pool, "gpus": p.gpus, "nodes": list(p.nodes)} for p in placements]
    workloads: dict[str, dict] = {}
    for p in placements:
        w = workloads.setdefault(p.workload, {"replicas": 0, "gpus": 0})
        w["replicas"] += 1
        w["gpus"] += p.gpus
    return _SitePlan(site=site, pools=pools, placements=rows, workloads=dict(sorted(workloads.items())))


def _spec_text(result) -> dict[str, str]:
    meta = result.spec.metadata
    return {"name": meta.name, "owner": meta.owner or "", "description": meta.description or ""}


def _site_info(site) -> dict[str, str]:
    return {
        "id": site.id,
        "provider": site.provider.value,
        "region": site.region or "",
        "jurisdiction": site.jurisdiction,
        "zone": site.zone,
    }


# Tag key prefix: Azure tag names cannot hold '/', Google labels only [a-z0-9_-].
_TAG_PREFIX = {Provider.aws: "medplan.dev/", Provider.azure: "medplan-", Provider.gcp: "medplan_"}


def _plan_tags(result, site) -> dict[str, str]:
    clean = _TAG.get(site.provider, _azure_tag)
    meta = result.spec.metadata
    prefix = _TAG_PREFIX.get(site.provider, "medplan-")
    tags = {f"{prefix}site": site.id, f"{prefix}managed-by": "medplan", f"{prefix}spec": clean(meta.name)}
    if meta.owner and clean(meta.owner):
        tags[f"{prefix}owner"] = clean(meta.owner)
    return {k: v for k, v in tags.items() if v}


def _with(pools: dict, pool: str, **changes) -> dict:
    return {k: ({**v, **changes} if k == pool else v) for k, v in pools.items()}


def _test_cases(sp: _SitePlan) -> dict:
    """Variable sets for the negative runs of plan.tftest.hcl."""
    first, entry = next(iter(sp.pools.items()))
    over = _with(sp.pools, first, instances=entry["max_nodes"] + 1)
    crowded = _with(sp.pools, first, gpus_used=entry["instances"] * entry["gpus_per_node"] + 1)
    stray = [*sp.placements, {"workload": "stray", "replica": 1, "pool": "not-planned", "gpus": 1, "nodes": [1]}]
    return {
        "instances": {k: v["instances"] for k, v in sp.pools.items()},
        "instance_types": {k: v["instance_type"] for k, v in sp.pools.items()},
        "over_max_nodes": over,
        "gpus_beyond_instances": crowded,
        "stray_placements": stray,
    }


# --------------------------------------------------------------------------- templates


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(templates_dir() / "terraform")),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        auto_reload=False,  # a template is looked up once per file written: no stat each time
        bytecode_cache=template_cache(),
    )
    env.filters["hcl"] = hcl_string
    env.filters["hcl_body"] = hcl_body
    env.filters["hcl_value"] = hcl_value
    env.filters["hcl_inline"] = _inline
    return env


_ROOT_FILES = ("versions.tf", "variables.tf", "main.tf", "outputs.tf")
_PLAN_FILES = ("versions.tf", "variables.tf", "main.tf", "checks.tf", "outputs.tf", "tests/plan.tftest.hcl")


def render_terraform(result) -> dict[str, str]:
    """``{"terraform/<site>/<file>": content}`` for every cloud site with placements."""
    global _inline_texts
    _inline_texts = {}
    try:
        return _render_terraform(result)
    finally:
        _inline_texts = None


def _render_terraform(result) -> dict[str, str]:
    env = _environment()
    at_site: dict[str, list] = {}
    for p in result.plan.placements:
        at_site.setdefault(p.site, []).append(p)
    files: dict[str, str] = {}
    for site in _cloud_sites(result):
        sp = _site_plan(result, site, at_site[site.id])
        provider = PROVIDERS.get(site.provider)
        context = {
            "site": _site_info(site),
            "provider": provider,
            "pools": sp.pools,
            "placements": sp.placements,
            "workloads": sp.workloads,
            "spec": _spec_text(result),
            "plan_tags": _plan_tags(result, site),
            "tag_prefix": _TAG_PREFIX.get(site.provider, "medplan-"),
            "tests": _test_cases(sp),
            "version": __version__,
            "terraform_version": TERRAFORM_VERSION,
        }
        base = f"terraform/{site.id}"
        if provider is not None:
            for name in _ROOT_FILES:
                files[f"{base}/{name}"] = env.get_template(f"{site.provider.value}/{name}.j2").render(context)
        files[f"{base}/checks.tf"] = env.get_template("checks.tf.j2").render(context)
        files[f"{base}/README.md"] = env.get_template("README.md.j2").render(context)
        for name in _PLAN_FILES:
            files[f"{base}/plan/{name}"] = env.get_template(f"plan/{name}.j2").render(context)
    return dict(sorted(files.items()))
