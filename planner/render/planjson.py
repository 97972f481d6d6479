"""plan.json: the machine-readable plan (architecture.md's shape), with the
inputs, policy bundles and findings it was made from."""

from __future__ import annotations

import json

from planner import __version__


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
    return doc


def render_plan_json(result) -> str:
    return json.dumps(plan_json_document(result), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
