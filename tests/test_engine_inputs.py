"""The regorus engine reuses an input it has read when the next document
repeats it with top-level keys replaced or added (the plan stage's document
repeats the validate stage's). Every rule must answer exactly as it does on a
fresh engine given the whole document."""

from __future__ import annotations

import pytest

from planner.policy.engine import RegorusEngine

POLICY = """
package t

import rego.v1

keys := sort(object.keys(input))

stage := input.medplan.stage

placed := count(input.plan.placements)

sites_named contains name if some name, _ in input.sites

every_key_seen contains k if some k, _ in input

deny contains msg if {
    some p in input.plan.placements
    input.sites[p.site].zone == "us"
    msg := sprintf("%s on %s", [p.workload, p.site])
}

undefined_here if input.nothing == 1
"""

QUERIES = ["data.t.keys", "data.t.stage", "data.t.placed", "data.t.sites_named", "data.t.every_key_seen", "data.t.deny", "data.t.undefined_here", "data.t.not_a_rule"]


def _engine() -> RegorusEngine:
    engine = RegorusEngine()
    engine.load({"t.rego": POLICY})
    return engine


def _answers(engine: RegorusEngine) -> dict:
    return {q: engine.evaluate(q) for q in QUERIES}


@pytest.fixture
def documents():
    validate = {
        "medplan": {"stage": "validate"},
        "sites": {"a": {"zone": "us"}, "b": {"zone": "eu"}},
        "workloads": {"w": {"replicas": 2}},
    }
    plan = validate | {
        "medplan": validate["medplan"] | {"stage": "plan"},
        "plan": {"placements": [{"workload": "w", "site": "a"}, {"workload": "w", "site": "b"}]},
    }
    return validate, plan


def test_a_document_that_repeats_the_last_one_answers_as_on_a_fresh_engine(documents):
    validate, plan = documents
    engine = _engine()
    engine.set_input(validate)
    first = _answers(engine)
    engine.set_input(plan)
    reused = _answers(engine)

    fresh = _engine()
    fresh.set_input(plan)
    assert reused == _answers(fresh)
    assert reused["data.t.stage"] == "plan" and reused["data.t.placed"] == 2
    assert reused["data.t.keys"] == ["medplan", "plan", "sites", "workloads"]
    assert reused["data.t.deny"] == ["w on a"]
    assert first["data.t.stage"] == "validate" and first["data.t.keys"] == ["medplan", "sites", "workloads"]


def test_going_back_to_an_earlier_document_and_to_an_unrelated_one(documents):
    validate, plan = documents
    engine = _engine()
    for document in (validate, plan, validate, {"medplan": {"stage": "x"}, "sites": {}}, plan):
        engine.set_input(document)
        fresh = _engine()
        fresh.set_input(document)
        assert _answers(engine) == _answers(fresh)
