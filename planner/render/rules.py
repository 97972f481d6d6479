"""The rule catalog (``medplan policies list``) as a table, JSON or Markdown,
generated from rule metadata only.
"""

from __future__ import annotations

import json

from planner.policy.rules import Rule


def rules_json(rules: list[Rule]) -> str:
    return json.dumps([r.as_dict() for r in rules], indent=2, ensure_ascii=False) + "\n"


def rules_table(rules: list[Rule]) -> str:
    rows = [("ID", "SEVERITY", "STAGE", "TITLE", "CONTROLS")]
    rows += [(r.id, r.severity.value, r.stage, r.title, "; ".join(r.controls)) for r in rules]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def rules_markdown(rules: list[Rule]) -> str:
    out = [
        "# medplan rule reference",
        "",
        "Generated from the rules' metadata by `medplan policies list --format markdown`; do not edit by hand.",
        "",
        "| id | severity | stage | title | controls |",
        "|---|---|---|---|---|",
    ]
    for r in rules:
        out.append(f"| [{r.id}](#{r.id.lower()}) | {r.severity.value} | {r.stage} | {_md(r.title)} | {_md('; '.join(r.controls))} |")
    for r in rules:
        out += [
            "",
            f"## {r.id}",
            "",
            f"**{_md(r.title)}** — severity {r.severity.value}, stage {r.stage}, bundle `{r.bundle}`, "
            f"source `{r.location.file}:{r.location.line}`.",
            "",
        ]
        if r.description:
            out += [_md(r.description), ""]
        if r.controls:
            out += ["Controls: " + _md("; ".join(r.controls)), ""]
        if r.remediation:
            out += ["Remediation: " + _md(r.remediation), ""]
        if out[-1] == "":
            out.pop()
    return "\n".join(out) + "\n"
