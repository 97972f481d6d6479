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


# A placement rule with one denial that names no class, one with a message and one without.
ODD = """package medplan.test_odd

import rego.v1

# METADATA
# title: Kept off by the odd rule
# custom:
#   id: MP-TEST-PLACE-002
#   severity: high
#   stage: placement
deny_odd := array.concat([{"workload": "no-such-class", "site": "no-such-class"}], [d |
	some wc, _ in input.workloads
	some sc, _ in input.sites
	some d in [
		{"workload": wc, "site": sc, "message": sprintf("odd site %s", [sc])},
		{"workload": wc, "site": sc},
	]
])
"""


def test_placement_denials_read_the_same_in_a_copy_and_here_and_a_denial_of_no_class_is_an_error(spec, may_fork, forks, monkeypatch):
    (spec.parent / "pol").mkdir()
    (spec.parent / "pol" / "odd.rego").write_text(ODD, encoding="utf-8")
    with spec.open("a", encoding="utf-8") as f:
        f.write("policies:\n  include: [builtin:hipaa, builtin:gdpr, builtin:platform, ./pol]\n")
    monkeypatch.setattr(pipeline, "PLACEMENT_AWAY_FROM_WORKLOADS", 0)
    away = pipeline.run_plan([str(spec)], pipeline.ValidateOptions())
    assert forks and not child_pids()
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    here = pipeline.run_plan([str(spec)], pipeline.ValidateOptions())
    assert _outcome(away) == _outcome(here)
    errors = [f for f in here.findings if f.rule == "MP-TEST-PLACE-002"]
    assert len(errors) == 1 and errors[0].status.value == "error" and "unknown classes" in errors[0].message
    some = next(iter(here.denials))
    odd = sorted(e for entries in here.denials[some].values() for e in entries if e[0] == "MP-TEST-PLACE-002")
    assert odd and {m for _, m in odd} == {"Kept off by the odd rule"} | {f"odd site {m.split()[-1]}" for _, m in odd if m.startswith("odd")}
    assert not here.plan.placements  # every site is denied to every workload
