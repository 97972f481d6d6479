"""`medplan plan` starts the placement stage in a forked copy as soon as its
input is known (the early sections), while the flows and the rest of the
validate document are built. The denials, findings and plan must be the
ones the stage gives when run in this process afterwards."""

from __future__ import annotations

import pytest

from planner import pipeline
from planner.errors import PolicyError
from planner.generate import generate_yaml
from tests.conftest import REPO, child_pids, failing_in_copies

# A placement rule that fails at run time (a string plus a number).
FAILING = """package medplan.test_place

import rego.v1

# METADATA
# title: Fails when evaluated
# custom:
#   id: MP-TEST-PLACE-001
#   severity: high
#   stage: placement
deny_boom contains denial if {
	some wc, w in input.workloads
	some sc, _ in input.sites
	denial := {"workload": wc, "site": sc, "message": sprintf("%v", [w.kind + 1])}
}
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(25, 250, 4), encoding="utf-8")
    return path


def _denials(result) -> dict:
    return {w: result.denials[w] for w in result.denials}


def _outcome(result) -> tuple:
    return result.findings, result.plan.placements, result.plan.unplaced, _denials(result)


def test_the_early_placement_input_is_the_documents(spec):
    from planner.facts import derive
    from planner.policy.document import early_placement_document, early_sections, placement_document, validate_document
    from planner.spec.loader import load_spec

    for path in (spec, REPO / "examples" / "academic-medical-center", REPO / "tests/fixtures/rules/MP-GDPR-PLACE-001/bad.yaml"):
        facts = derive(load_spec([path]))
        early = early_placement_document(facts, early_sections(facts))
        assert early == placement_document(validate_document(facts))[0] and early["sites"] and early["workloads"]


def test_plan_runs_the_placement_stage_in_a_copy_and_finds_the_same(spec, may_fork, forks, monkeypatch):
    monkeypatch.setattr(pipeline, "PLACEMENT_AWAY_FROM_WORKLOADS", 0)
    away = pipeline.run_plan([str(spec)], pipeline.ValidateOptions())
    assert len(forks) == 1 and not child_pids()  # the placement copy (the validate stage is small: here)
    assert away.denials and any(f.rule.startswith("MP-PLAT-") for f in away.findings)
    monkeypatch.setattr(pipeline, "_placement", failing_in_copies(pipeline._placement, "the copy fails"))
    failed = pipeline.run_plan([str(spec)], pipeline.ValidateOptions())
    assert len(forks) == 2 and not child_pids()
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    here = pipeline.run_plan([str(spec)], pipeline.ValidateOptions())
    assert len(forks) == 2
    assert _outcome(away) == _outcome(here) == _outcome(failed)


@pytest.mark.parametrize("strict", [False, True])
def test_a_failing_placement_rule_reads_the_same_from_a_copy(spec, may_fork, forks, monkeypatch, strict):
    (spec.parent / "pol").mkdir()
    (spec.parent / "pol" / "place.rego").write_text(FAILING, encoding="utf-8")
    with spec.open("a", encoding="utf-8") as f:
        f.write("policies:\n  include: [builtin:hipaa, builtin:gdpr, builtin:platform, ./pol]\n")
    options = pipeline.ValidateOptions(strict=strict)
    monkeypatch.setattr(pipeline, "PLACEMENT_AWAY_FROM_WORKLOADS", 0)

    def run() -> object:
        try:
            return _outcome(pipeline.run_plan([str(spec)], options))
        except PolicyError as exc:
            return [str(d) for d in exc.diagnostics]

    away = run()
    assert forks and not child_pids()
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    here = run()
    assert away == here
    if strict:
        assert "MP-TEST-PLACE-001 failed at run time" in away[0]
    else:
        assert any(f.rule == "MP-TEST-PLACE-001" and f.status.value == "error" for f in away[0])
