"""plan.json: the machine-readable plan (architecture.md's shape), with the
inputs, policy bundles and findings it was made from."""

from __future__ import annotations

from planner import __version__
from planner.render.jsontext import dumps_indented


def plan_json_document(result) -> dict:
    validation = result.validation
    doc = {
        "medplan": __version__,
        "inputs": [{"path": i.path, "sha256": i.sha256} for i in validation.inputs],
        "engine": validation.engine,
        "bundles": validation.bundles,
        "fail_on": validation.fail_on.value,
        "verdict": "fail" if result.failed else "pass",
        "summary": validation.summary,
    }
    doc.update(result.plan.as_dict())
    doc["findings"] = [f.as_dict() for f in validation.findings]
    doc["sources"] = sources_document(result.spec)
    return doc


def sources_document(spec) -> list[dict]:
    """The spec files' text, so that `medplan render` can rebuild the plan's inputs."""
    from planner.spec.loader import sources_of

    sources = sources_of(spec)
    out = []
    for item in sources.inputs:
        source = sources.map.files.get(item.path)
        text = source.raw.decode("utf-8-sig") if source is not None else None
        out.append({"path": item.path, "sha256": item.sha256, "text": text})
    return out


def render_plan_json(result) -> str:
    return dumps_indented(plan_json_document(result), sort_keys=True) + "\n"
