"""What-if: plan two variants of a deployment and set them side by side —
cost, GPUs, unplaced workloads, and per workload the memory headroom and
latency margin. `--swap SITE/POOL=MODEL` answers "would Blackwell change
anything for us?" with the user's own numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.errors import Diagnostic, InputError, Location
from planner.spec.loader import sources_of, suggest
from planner.spec.models import Spec


@dataclass(frozen=True)
class Swap:
    site: str
    pool: str
    target: str  # a GPU model (owned pools) or an instance type (cloud pools)

    @classmethod
    def parse(cls, text: str) -> Swap:
        where, sep, target = text.partition("=")
        site, slash, pool = where.partition("/")
        if not sep or not slash or not site or not pool or not target:
            raise InputError("bad --swap", [Diagnostic(Location("--swap"), f"expected SITE/POOL=GPU_MODEL, got {text!r}")])
        return cls(site, pool, target)


def apply_swaps(spec: Spec, swaps: list[Swap]) -> Spec:
    """The spec with each named pool's GPU model (or instance type) replaced."""
    from planner.catalog.additions import catalog_with_spec, has_gpu, has_instance

    catalog = catalog_with_spec(spec)
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    errors: list[Diagnostic] = []
    sites = {s["id"]: s for s in data["sites"]}
    for swap in swaps:
        site = sites.get(swap.site)
        if site is None:
            hint = suggest(swap.site, sites)
            errors.append(Diagnostic(Location("--swap"), f"unknown site {swap.site!r}" + (f"; did you mean {hint!r}?" if hint else "")))
            continue
        pools = {p["id"]: p for p in site.get("pools", [])}
        pool = pools.get(swap.pool)
        if pool is None:
            hint = suggest(swap.pool, pools)
            errors.append(Diagnostic(Location("--swap"), f"unknown pool {swap.pool!r} in site {swap.site!r}" + (f"; did you mean {hint!r}?" if hint else "")))
            continue
        if "instance" in pool:
            if not has_instance(catalog, swap.target):
                errors.append(Diagnostic(Location("--swap"), f"{swap.site}/{swap.pool} is a cloud pool: name an instance type, got {swap.target!r}"))
                continue
            pool["instance"] = catalog.instance(swap.target).id
            pool.pop("gpus_per_node", None)
            pool.pop("price_per_hour", None)
            pool.pop("price_as_of", None)
        else:
            if not has_gpu(catalog, swap.target):
                hint = suggest(swap.target, catalog.gpu_ids())
                errors.append(Diagnostic(Location("--swap"), f"unknown GPU model {swap.target!r}" + (f"; did you mean {hint!r}?" if hint else "")))
                continue
            pool["gpu"] = catalog.gpu(swap.target).id
    if errors:
        raise InputError("bad --swap", errors)
    swapped = Spec.model_validate(data)
    swapped._sources = sources_of(spec)
    return swapped


def workload_metrics(result) -> dict[str, dict]:
    """Per workload: where it runs, memory headroom per GPU and latency margin."""
    from planner.catalog.workload_sizing import size_workloads

    spec, plan, facts = result.spec, result.plan, result.facts
    sizing = size_workloads(spec, facts.catalog)
    datasets = {d.id: d for d in spec.datasets}
    out: dict[str, dict] = {}
    for w in spec.workloads:
        placed = plan.placed(w.id)
        headrooms, latencies = [], []
        for p in placed:
            sized = sizing[w.id].for_gpu(p.gpu) if w.id in sizing else None
            if sized is not None:
                headrooms.append(sized.headroom_gb)
            for name in w.inputs:
                latency = facts.graph.latencies_from(datasets[name].site).get(p.site)
                if latency is not None:
                    latencies.append(latency)
        worst_latency = max(latencies) if latencies else None
        out[w.id] = {
            "replicas_placed": len(placed),
            "replicas_unplaced": sum(u.replicas_unplaced for u in plan.unplaced if u.workload == w.id),
            "gpus": sum(p.gpus for p in placed),
            "gpu_models": sorted({p.gpu for p in placed}),
            "gpus_per_replica": sorted({p.gpus for p in placed}),
            "min_headroom_gb": round(min(headrooms), 1) if headrooms else None,
            "latency_ms": worst_latency,
            "latency_margin_ms": (round(w.max_latency_ms - worst_latency, 3) if w.max_latency_ms is not None and worst_latency is not None else None),
            "cost_per_hour": round(sum(p.cost_per_hour or 0.0 for p in placed), 6),
        }
    return out


def compare(a, b, labels: tuple[str, str] = ("A", "B")) -> dict:
    def totals(result) -> dict:
        plan = result.plan
        return {
            "cost_per_hour": round(plan.cost_per_hour, 6),
            "gpus": sum(p.gpus for p in plan.placements),
            "unplaced": sorted(u.workload for u in plan.unplaced),
            "findings_failing": len(result.validation.failing),
            "objective_gap": plan.objective.gap,
        }

    ma, mb = workload_metrics(a), workload_metrics(b)
    return {
        "labels": list(labels),
        "unplaced": {labels[0]: [u.summary for u in a.plan.unplaced], labels[1]: [u.summary for u in b.plan.unplaced]},
        "totals": {labels[0]: totals(a), labels[1]: totals(b)},
        "workloads": {w: {labels[0]: ma.get(w), labels[1]: mb.get(w)} for w in sorted(set(ma) | set(mb))},
    }


def compare_text(doc: dict) -> str:
    la, lb = doc["labels"]
    ta, tb = doc["totals"][la], doc["totals"][lb]
    width = max(30, len(la) + 2, len(lb) + 2)

    def row(label: str, a: object, b: object) -> str:
        return f"{label[:24]:24}  {str(a):>{width}}  {str(b):>{width}}".rstrip()

    def money(v: float) -> str:
        return f"${v:,.2f}/h"

    lines = [
        row("", la, lb),
        row("cost", money(ta["cost_per_hour"]), money(tb["cost_per_hour"])),
        row("GPUs used", ta["gpus"], tb["gpus"]),
        row("unplaced workloads", len(ta["unplaced"]), len(tb["unplaced"])),
        row("failing findings", ta["findings_failing"], tb["findings_failing"]),
        "",
        row("WORKLOAD", "GPUS (MODEL x PER REPLICA)", ""),
    ]

    def cells(m: dict | None) -> tuple[str, str, str]:
        if m is None:
            return ("absent", "", "")
        where = f"{m['gpus']} ({'/'.join(m['gpu_models']) or '-'} x {'/'.join(map(str, m['gpus_per_replica'])) or '-'})"
        if m["replicas_unplaced"]:
            where = f"{m['replicas_unplaced']} replica(s) unplaced" if not m["gpus"] else f"{where}, {m['replicas_unplaced']} unplaced"
        head = "" if m["min_headroom_gb"] is None else f"{m['min_headroom_gb']:,.1f} GB free per GPU"
        margin = "" if m["latency_margin_ms"] is None else f"{m['latency_margin_ms']:+g} ms latency margin"
        return where, head, margin

    for workload, sides in doc["workloads"].items():
        a, b = cells(sides[la]), cells(sides[lb])
        lines.append(row(workload, a[0], b[0]))
        for i in (1, 2):
            if a[i] or b[i]:
                lines.append(row("", a[i], b[i]))
    for label in (la, lb):
        for summary in doc["unplaced"][label]:
            lines.append(f"[{label}] {summary}")
    return "\n".join(lines) + "\n"
