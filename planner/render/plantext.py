"""The plan summary `medplan plan` prints: where every workload runs, what
could not be placed and why, what it costs, and the findings."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from planner.render.validation import _one_line, to_text


REMEDY_LIMIT = 20  # unplaced workloads whose remedies the summary lists


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}/h"


def plan_text(result, out: Path | None = None) -> str:
    plan = result.plan
    lines = [f"Plan for {_one_line(result.spec.metadata.name)}"]
    groups: dict[tuple, list] = defaultdict(list)
    for p in plan.placements:
        groups[(p.workload, p.site, p.pool, p.gpu, p.gpus)].append(p)
    rows = [("WORKLOAD", "SITE/POOL", "GPU", "REPLICAS x GPUS", "COST")]
    for (workload, site, pool, gpu, gpus), items in sorted(groups.items()):
        costs = [p.cost_per_hour for p in items]
        cost = sum(c or 0.0 for c in costs) if costs.count(None) < len(costs) else None
        rows.append((workload, f"{site}/{pool}", gpu, f"{len(items)} x {gpus}", _money(cost)))
    if len(rows) > 1:
        # one format for every row: each column padded to its widest cell
        line = "  " + "  ".join(f"{{:<{max(map(len, column))}}}" for column in zip(*rows))
        lines += [line.format(*row).rstrip() for row in rows]
    else:
        lines.append("  nothing placed")
    for n, u in enumerate(plan.unplaced):
        lines.append(f"UNPLACED {u.summary}")
        if n < REMEDY_LIMIT:  # each walks every site: a spec that leaves thousands unplaced would take minutes
            for remedy in plan.remedies(u.workload):
                lines.append(f"    would help: {remedy}")
    if len(plan.unplaced) > REMEDY_LIMIT:
        lines.append(
            f"    remedies shown for the first {REMEDY_LIMIT} unplaced workloads; "
            "medplan explain --workload ID gives them for any other"
        )
    o = plan.objective
    lines.append(
        f"objective: {o.kind} = {o.value:,.4g} (bound {o.bound:,.4g}, gap {o.gap:.2%}, {o.status}, {o.solver}); "
        f"cost {_money(plan.cost_per_hour)}; {sum(p.gpus for p in plan.placements)} GPUs"
    )
    if out is not None:
        lines.append(f"wrote {out}/")
    return "\n".join(lines) + "\n" + to_text(result.validation).replace("PASS:", "PASS:" if not result.failed else "FAIL:", 1)
