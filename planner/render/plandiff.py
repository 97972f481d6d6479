"""`medplan diff OLD NEW`: the change review between two saved plans —
workloads that moved, appeared or went, the cost delta, and findings that
appeared or were resolved."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from planner.errors import Diagnostic, InputError, Location


def load_plan_json(path: Path) -> dict:
    """A plan.json, given itself or the plan directory that holds it."""
    path = Path(path)
    if path.is_dir():
        path = path / "plan.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError("cannot read plan", [Diagnostic(Location(str(path)), f"cannot read plan: {exc.strerror or exc}")]) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line, col = (exc.lineno, exc.colno) if isinstance(exc, json.JSONDecodeError) else (1, 1)
        raise InputError("not a plan", [Diagnostic(Location(str(path), line, col), f"not valid JSON: {exc}")]) from exc
    if not isinstance(doc, dict) or not {"placements", "objective", "findings"} <= set(doc):
        raise InputError("not a plan", [Diagnostic(Location(str(path)), "not a medplan plan.json (placements, objective, findings)")])
    return doc


def _where(doc: dict) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for p in doc.get("placements", []):
        out.setdefault(p["workload"], Counter())[f"{p['site']}/{p['pool']} ({p['gpus']} x {p['gpu']})"] += 1
    return out


def _cost(doc: dict) -> float:
    return float((doc.get("totals") or {}).get("cost_per_hour") or 0.0)


def diff_plans(old: dict, new: dict) -> dict:
    before, after = _where(old), _where(new)
    moved = []
    for workload in sorted(set(before) & set(after)):
        if before[workload] != after[workload]:
            moved.append({"workload": workload, "from": dict(sorted(before[workload].items())), "to": dict(sorted(after[workload].items()))})
    old_unplaced = {u["workload"] for u in old.get("unplaced", [])}
    new_unplaced = {u["workload"] for u in new.get("unplaced", [])}
    old_findings = {f["fingerprint"]: f for f in old.get("findings", []) if f["status"] != "waived"}
    new_findings = {f["fingerprint"]: f for f in new.get("findings", []) if f["status"] != "waived"}

    def brief(f: dict) -> dict:
        return {"rule": f["rule"], "severity": f["severity"], "subject": f"{f['subject']['kind']}/{f['subject']['id']}", "message": f["message"]}

    return {
        "moved": moved,
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "newly_unplaced": sorted(new_unplaced - old_unplaced),
        "now_placed": sorted(old_unplaced - new_unplaced),
        "cost_per_hour": {"old": round(_cost(old), 6), "new": round(_cost(new), 6), "delta": round(_cost(new) - _cost(old), 6)},
        "findings_appeared": [brief(new_findings[k]) for k in sorted(set(new_findings) - set(old_findings))],
        "findings_resolved": [brief(old_findings[k]) for k in sorted(set(old_findings) - set(new_findings))],
    }


def diff_text(change: dict) -> str:
    lines = []
    for m in change["moved"]:
        lines.append(f"moved    {m['workload']}: {_placed(m['from'])} -> {_placed(m['to'])}")
    lines += [f"added    {w}" for w in change["added"]]
    lines += [f"removed  {w}" for w in change["removed"]]
    lines += [f"unplaced {w} (was placed)" for w in change["newly_unplaced"]]
    lines += [f"placed   {w} (was unplaced)" for w in change["now_placed"]]
    c = change["cost_per_hour"]
    lines.append(f"cost     ${c['old']:,.2f}/h -> ${c['new']:,.2f}/h ({c['delta']:+,.2f})")
    for f in change["findings_appeared"]:
        lines.append(f"+ {f['severity']:<8} {f['rule']} {f['subject']}: {' '.join(f['message'].split())}")
    for f in change["findings_resolved"]:
        lines.append(f"- {f['severity']:<8} {f['rule']} {f['subject']}: {' '.join(f['message'].split())}")
    return "\n".join(lines) + "\n"


def _placed(where: dict) -> str:
    return ", ".join(f"{pool} x{n}" for pool, n in where.items()) or "nowhere"
