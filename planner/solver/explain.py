"""Explanations of a plan, per workload.

``summary(plan, w)`` is one line in the style of a Kubernetes scheduling
event::

    ct-triage: 0/7 sites admissible: 3 MP-HIPAA-PLACE-001 (site is operated by a
    third party ...), 2 gpu-memory (needs 141 GB per GPU, H100 has 80),
    1 latency (24 ms > 20 ms from pacs at dc1), 1 capacity (needs 16 GPUs, 8 free)

Each site is counted once, under its first reason (policy rules first, then
placement, latency, accelerator, gpu-memory, node-shape, capacity).
``remedies(plan, w)`` lists what would make more sites admissible: a waiver
for a rule, a pool of a GPU model that fits, a higher ``max_latency_ms``, a
placement change, more capacity. ``explain(plan, w)`` gives the full
per-site reasoning, for placed workloads too: why these pools (cost, latency)
and why not the others.
"""

from __future__ import annotations

import math
from collections import Counter

from planner.solver.admissibility import POOL_LEVEL, Reason, fmt_ms

__all__ = ["explain", "remedies", "summary"]

MAX_REMEDIES = 6


def _money(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:,.2f}/h"


def _ctx(plan):
    if plan.context is None:
        raise ValueError("this plan carries no solver context (it was not made by solve())")
    return plan.context


def _workload(ctx, workload_id: str):
    found = ctx.facts.index["workload"].get(workload_id)
    if found is None:
        raise KeyError(f"unknown workload {workload_id!r}")
    return found


def _index(ctx) -> dict:
    """Sites, datasets and pools by id (explanations visit every site, so no linear scans)."""
    idx = ctx.index
    if not idx:
        idx["sites"] = {s.id: s for s in ctx.spec.sites}
        idx["datasets"] = {d.id: d for d in ctx.spec.datasets}
        pools_at: dict[str, dict] = {}
        for p in ctx.facts.pools:
            pools_at.setdefault(p.site, {})[p.id] = p
        idx["pools_at"] = pools_at
    return idx


def _unplaced(plan, workload_id: str):
    return next((u for u in plan.unplaced if u.workload == workload_id), None)


def _site_status(plan, workload_id: str) -> dict[str, Reason | None]:
    """Per site: the reason it counts under in a summary, or None when it could take a replica."""
    ctx = _ctx(plan)
    wa = ctx.admissibility.workloads[workload_id]
    out: dict[str, Reason | None] = {}
    unplaced = _unplaced(plan, workload_id)
    extra: dict[str, list[Reason]] = {}
    if unplaced is not None:
        for r in unplaced.reasons:
            if r.code in ("capacity", "ha-spread") and r.site not in wa.site_reasons:
                extra.setdefault(r.site, []).append(r)
    for site in ctx.admissibility.sites:
        if site in wa.site_reasons:
            out[site] = wa.primary(site)
        elif site in extra and all(r.code == "capacity" for r in extra[site]):
            out[site] = extra[site][0]
        else:
            out[site] = None
    return out


def summary(plan, workload_id: str) -> str:
    """One line: how many sites could take the workload and why the others cannot."""
    ctx = _ctx(plan)
    _workload(ctx, workload_id)
    wa = ctx.admissibility.workloads[workload_id]
    status = _site_status(plan, workload_id)
    ok = sum(1 for r in status.values() if r is None)
    counts: Counter[str] = Counter()
    first: dict[str, str] = {}
    for site in ctx.admissibility.sites:
        r = status[site]
        if r is None:
            continue
        counts[r.code] += 1
        first.setdefault(r.code, r.message)
    head = f"{workload_id}: {ok}/{len(status)} sites admissible"
    parts = [f"{n} {code} ({first[code]})" for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    line = head + (": " + ", ".join(parts) if parts else "")
    unplaced = _unplaced(plan, workload_id)
    if unplaced is None:
        placed = plan.placed(workload_id)
        where = Counter(p.pool_key for p in placed)
        spots = ", ".join(f"{k} x{n}" for k, n in sorted(where.items()))
        return f"{line}; {len(placed)} replicas placed on {spots}" if placed else line
    ha = [r for r in unplaced.reasons if r.code == "ha-spread"]
    if ha:
        line += f"; ha-spread ({ha[0].message})"
    if unplaced.replicas_unplaced < wa.replicas:
        line += f"; {unplaced.replicas_unplaced} of {wa.replicas} replicas unplaced"
    return line


# --------------------------------------------------------------------------- remedies


def _fitting_gpus(ctx, wa, workload) -> list[str]:
    """GPU models the workload fits on and may use, smallest memory first."""
    allowed = {ctx.facts.catalog.gpu(a).id for a in workload.accelerators if _known(ctx, a)}
    fits = [g for g, s in wa.sizing.items() if s.fits and (not allowed or g in allowed)]
    return sorted(fits, key=lambda g: (ctx.facts.catalog.gpus[g].memory_gb, g))


def _known(ctx, name: str) -> bool:
    try:
        ctx.facts.catalog.gpu(name)
    except KeyError:
        return False
    return True


def _or(items: list[str], limit: int = 3) -> str:
    items = items[:limit]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _site_fixes(ctx, workload, wa, site: str) -> list[str] | None:
    """What would admit ``site``; None when nothing in the spec's reach would."""
    reasons = wa.site_reasons.get(site, ())
    fixes: list[str] = []
    spec_site = _index(ctx)["sites"][site]
    datasets = _index(ctx)["datasets"]
    latency_needed = 0.0
    for r in reasons:
        if r.is_rule:
            fixes.append(f"a waiver of {r.code} for workload/{workload.id}")
        elif r.code == "placement":
            if r.message.startswith("placement.sites"):
                fixes.append(f"{site} in placement.sites")
            elif r.message.startswith("placement.avoid"):
                fixes.append(f"{site} removed from placement.avoid")
            else:
                fixes.append(f"{spec_site.kind.value} in placement.kinds")
        elif r.code == "latency":
            if r.message.startswith("no route"):
                src = r.message.rsplit(" ", 1)[-1]
                fixes.append(f"a link between {src} and {site}")
            else:
                for name in workload.inputs:
                    d = datasets.get(name)
                    if d is None:
                        continue
                    dist = ctx.facts.graph.latencies_from(d.site).get(site)
                    if dist is not None:
                        latency_needed = max(latency_needed, dist)
    if latency_needed:
        fixes.append(f"max_latency_ms raised to {fmt_ms(math.ceil(latency_needed * 1000) / 1000)}")
    pool_level = [r for r in reasons if r.code in POOL_LEVEL or (r.code == "capacity" and r.pool is None)]
    if pool_level:
        fixes.append(_pool_fix(ctx, workload, wa, site, reasons))
    return [f for f in dict.fromkeys(fixes) if f]


def _pool_fix(ctx, workload, wa, site: str, reasons) -> str:
    by_pool: dict[str, set[str]] = {}
    for r in reasons:
        if r.pool is not None:
            by_pool.setdefault(r.pool, set()).add(r.code)
    pools = _index(ctx)["pools_at"].get(site, {})
    for pool_id, codes in sorted(by_pool.items()):
        if codes == {"accelerator"}:
            return f"{pools[pool_id].gpu} allowed in accelerators"
    for pool_id, codes in sorted(by_pool.items()):
        if codes == {"node-shape"}:
            p = pools[pool_id]
            g = wa.sizing[p.gpu].gpus_per_replica
            k = math.ceil(g / p.gpus_per_node)
            field = "max_nodes" if p.elastic else "nodes"
            return f"{field} of pool {site}/{pool_id} raised to {k}"
    fits = _fitting_gpus(ctx, wa, workload)
    if not fits:
        return ""
    return f"a pool of {_or(fits)} at {site}"


def remedies(plan, workload_id: str) -> list[str]:
    """What would let the unplaced replicas of a workload be placed, most useful first."""
    ctx = _ctx(plan)
    workload = _workload(ctx, workload_id)
    wa = ctx.admissibility.workloads[workload_id]
    unplaced = _unplaced(plan, workload_id)
    if unplaced is None:
        return []
    groups: dict[tuple[str, ...], list[str]] = {}
    for site in ctx.admissibility.sites:
        if site not in wa.site_reasons:
            continue
        fixes = _site_fixes(ctx, workload, wa, site)
        if fixes:
            groups.setdefault(tuple(fixes), []).append(site)
    out: list[str] = []
    order = sorted(groups.items(), key=lambda kv: (len(kv[0]), -len(kv[1]), ctx.admissibility.sites.index(kv[1][0])))
    for fixes, sites in order[:MAX_REMEDIES]:
        out.append(f"{' and '.join(fixes)}: admits {', '.join(sites)}")
    capacity = [r for r in unplaced.reasons if r.code == "capacity" and r.site not in wa.site_reasons]
    for r in capacity[:3]:
        c = next(c for c in wa.candidates if c.site == r.site and (r.pool is None or c.pool == f"{r.site}/{r.pool}"))
        key = c.pool
        p = ctx.facts.pools_by_key[key]
        free = ctx.free[key]
        missing = unplaced.replicas_unplaced
        if p.elastic:
            per_instance = (p.gpus_per_node // c.gpus) if not c.nodes_per_replica else 0
            need = (
                missing * c.nodes_per_replica
                if c.nodes_per_replica
                else math.ceil(max(missing - free.room(c.gpus, 0), 0) / max(per_instance, 1))
            )
            out.append(f"max_nodes of pool {key} raised to {p.nodes + need}: room for {missing} more replicas")
        else:
            more = missing * (c.nodes_per_replica * p.gpus_per_node if c.nodes_per_replica else c.gpus)
            out.append(f"{more} more GPUs free in pool {key} ({r.message})")
    if any(r.code == "ha-spread" for r in unplaced.reasons):
        out.append("a second admissible site with room (see above), or criticality: medium once the risk is accepted")
    return out


# --------------------------------------------------------------------------- full explanation


def _per_replica_cost(ctx, c) -> float | None:
    p = ctx.facts.pools_by_key[c.pool]
    if p.cost_per_gpu_hour is None:
        return None
    return c.gpus * p.cost_per_gpu_hour


def explain(plan, workload_id: str) -> str:
    """Every site, admissible or not, with the reasoning behind the plan's choice."""
    ctx = _ctx(plan)
    workload = _workload(ctx, workload_id)
    wa = ctx.admissibility.workloads[workload_id]
    kind = ctx.spec.objective.minimize.value
    lines = [summary(plan, workload_id)]
    per_gpu = {c.gpu: c.replicas for c in wa.candidates}
    if len(set(per_gpu.values())) > 1:
        replicas = "replicas from demand: " + ", ".join(f"{n} on {g}" for g, n in sorted(per_gpu.items()))
    else:
        replicas = f"{wa.replicas} replica{'s' if wa.replicas != 1 else ''}"
    lines.append(
        f"workload {workload_id}: {workload.kind.value}, criticality {workload.criticality.value}, "
        f"{replicas}, objective: minimize {kind}"
    )
    sized = []
    for g in _fitting_gpus(ctx, wa, workload):
        s = wa.sizing[g]
        sized.append(f"{g} {s.gpus_per_replica} GPU{'s' if s.gpus_per_replica != 1 else ''}")
    lines.append("  fits per replica on: " + (", ".join(sized) if sized else "no allowed GPU model in the catalog"))
    placed = plan.placed(workload_id)
    by_pool: Counter[str] = Counter(p.pool_key for p in placed)
    chosen = [c for c in wa.candidates if c.pool in by_pool]
    best_cost = min((v for v in (_per_replica_cost(ctx, c) for c in chosen) if v is not None), default=None)
    best_latency = min((c.latency_ms for c in chosen), default=None)
    unplaced = _unplaced(plan, workload_id)
    extra: dict[str, list[Reason]] = {}
    if unplaced is not None:
        for r in unplaced.reasons:
            extra.setdefault(r.site, []).append(r)
    sites = _index(ctx)["sites"]
    candidates_at: dict[str, list] = {}
    for c in wa.candidates:
        candidates_at.setdefault(c.site, []).append(c)
    pool_reasons_at: dict[str, list] = {}
    for pool_key, reasons in sorted(wa.pool_reasons.items()):
        pool_reasons_at.setdefault(pool_key.split("/", 1)[0], []).append(reasons)
    for site in ctx.admissibility.sites:
        spec_site = sites[site]
        lat = wa.latency.get(site)
        lat_text = "no route to an input" if lat is None else f"{fmt_ms(lat)} ms to inputs"
        if site in wa.site_reasons:
            lines.append(f"  site {site} ({spec_site.kind.value}): not admissible; {lat_text}")
            for r in wa.site_reasons[site]:
                where = f" [pool {r.pool}]" if r.pool else ""
                lines.append(f"    {r.code}{where}: {r.message}")
            fixes = _site_fixes(ctx, workload, wa, site)
            if fixes:
                lines.append(f"    would be admissible with: {' and '.join(fixes)}")
            continue
        lines.append(f"  site {site} ({spec_site.kind.value}): admissible; {lat_text}")
        for c in candidates_at.get(site, ()):
            pool_id = c.pool.split("/", 1)[1]
            cost = _per_replica_cost(ctx, c)
            p = ctx.facts.pools_by_key[c.pool]
            shape = f"{c.gpus} x {c.gpu}" + (f", {c.nodes_per_replica} whole nodes" if c.nodes_per_replica else "")
            price = _money(cost) + (" pro rata; whole instances are paid" if p.elastic else "")
            head = f"    pool {pool_id} ({shape} per replica, {price})"
            if c.pool in by_pool:
                lines.append(f"{head}: chosen for {by_pool[c.pool]} replica{'s' if by_pool[c.pool] != 1 else ''}")
                continue
            room = ctx.free[c.pool].room(c.gpus, c.nodes_per_replica)
            if room == 0:
                why = f"no room left ({ctx.free[c.pool].gpus} GPUs free)"
            elif kind == "cost" and best_cost is not None and cost is not None and cost > best_cost + 1e-9:
                why = f"costs more per replica ({_money(cost)} vs {_money(best_cost)})"
            elif kind == "latency" and best_latency is not None and c.latency_ms > best_latency + 1e-9:
                why = f"farther from the inputs ({fmt_ms(c.latency_ms)} ms vs {fmt_ms(best_latency)} ms)"
            elif kind == "gpus" and chosen and c.gpus > min(x.gpus for x in chosen):
                why = f"needs more GPUs per replica ({c.gpus} vs {min(x.gpus for x in chosen)})"
            elif p.elastic and not ctx.result.instances.get(c.pool):
                why = f"would need a whole instance ({_money(p.price_per_node_hour)})"
            elif unplaced is not None:
                why = "not used"
            else:
                why = "not needed (equal or worse on the objective; ties go by prefer_kinds, then pool order)"
            lines.append(f"{head}: {why}")
        for reasons in pool_reasons_at.get(site, ()):
            for r in reasons:
                lines.append(f"    pool {r.pool} not usable: {r.code}: {r.message}")
        for r in extra.get(site, []):
            if r.code in ("capacity", "ha-spread"):
                where = f" [pool {r.pool}]" if r.pool else ""
                lines.append(f"    {r.code}{where}: {r.message}")
    if unplaced is not None:
        lines.append(f"  unplaced: {unplaced.replicas_unplaced} of {wa.replicas} replicas")
        fixes = remedies(plan, workload_id)
        if fixes:
            lines.append("  to place it:")
            lines += [f"    - {f}" for f in fixes]
    return "\n".join(lines)
