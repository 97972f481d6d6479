"""Renderers: pure functions from a validation or plan result to files."""

from __future__ import annotations


def render_plan_files(result, *, timestamp: str | None = None, formats: set[str] | None = None) -> dict[str, str]:
    """Every file of a plan directory, by relative path."""
    from planner.render.planjson import render_plan_json
    from planner.render.validation import to_sarif

    wanted = formats or {"json", "sarif", "md", "html", "oscal", "helm", "terraform"}
    files: dict[str, str] = {}
    if "json" in wanted:
        files["plan.json"] = render_plan_json(result)
    if "sarif" in wanted:
        files["findings.sarif"] = to_sarif(result.validation)
    if "md" in wanted or "html" in wanted:
        from planner.render import report

        if "md" in wanted:
            files["report.md"] = report.render_markdown(result, timestamp=timestamp)
        if "html" in wanted:
            files["report.html"] = report.render_html(result, timestamp=timestamp)
    if "oscal" in wanted:
        from planner.render.oscal import render_oscal

        files["oscal/assessment-results.json"] = render_oscal(result, timestamp=timestamp)
    if "helm" in wanted:
        from planner.render.helm import render_helm

        files.update(render_helm(result))
    if "terraform" in wanted:
        from planner.render.terraform import render_terraform

        files.update(render_terraform(result))
    return files
