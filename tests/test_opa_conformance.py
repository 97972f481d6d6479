"""Every builtin policy decides the same on regorus (embedded) and on the real
OPA v1.20 engine, on every rule fixture and every example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.facts import derive
from planner.policy.document import placement_document, validate_document
from planner.policy.engine import RegorusEngine
from planner.spec.loader import load_spec
from tests.conftest import builtin_policies
from tests.support import opa_reference

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = [p for p in sorted((REPO / "examples").iterdir()) if p.name not in ("broken", "README.md")]
FIXTURES = sorted((REPO / "tests" / "fixtures" / "rules").glob("*/*.yaml"))


def _canonical(value):
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return sorted(json.dumps(item, sort_keys=True) for item in items)


@pytest.mark.parametrize("spec_path", EXAMPLES + FIXTURES, ids=lambda p: str(p.relative_to(REPO)))
def test_regorus_and_opa_agree(spec_path):
    opa_reference.require_opa()
    policies = builtin_policies()
    doc = validate_document(derive(load_spec([spec_path])))
    documents = {"validate": doc, "placement": placement_document(doc)[0]}
    engine = RegorusEngine()
    engine.load(policies.modules)
    compared = 0
    for stage, document in documents.items():
        engine.set_input(document)
        for rule in policies.registry.stage(stage):
            if rule.language != "rego":
                continue
            embedded = _canonical(engine.evaluate(rule.query))
            reference = _canonical(
                opa_reference.evaluate(policies.modules, document, rule.query, undefined=None)
            )
            assert embedded == reference, f"{rule.id} ({rule.query}) differs on {spec_path.name}"
            compared += 1
    assert compared > 0
