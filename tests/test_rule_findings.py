"""Each builtin rule's fixtures through the whole pipeline: the bad spec gives
exactly the expected (rule, subject, line) findings, the good one none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner import load_spec, validate
from planner.pipeline import ValidateOptions
from tests.conftest import builtin_policies

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "rules"
CASES = sorted(p for p in FIXTURES.iterdir() if (p / "expected.json").exists()) if FIXTURES.is_dir() else []


def _validate_stage(rule_id: str) -> bool:
    rule = builtin_policies().registry.get(rule_id)
    return rule is not None and rule.stage == "validate"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_fixture_findings(case, monkeypatch):
    monkeypatch.chdir(case)
    if not _validate_stage(case.name):
        pytest.skip(f"{case.name} is a placement- or plan-stage rule: covered by the solver tests")
    options = ValidateOptions(waivers=False)
    bad = validate(load_spec(["bad.yaml"]), options)
    got = sorted((str(f.subject), f.location.line) for f in bad.findings if f.rule == case.name)
    expected = sorted((e["subject"], e["line"]) for e in json.loads((case / "expected.json").read_text()))
    assert got == expected
    good = validate(load_spec(["good.yaml"]), options)
    assert [f for f in good.findings if f.rule == case.name] == []


def test_every_rule_has_fixtures():
    policies = builtin_policies()
    missing = [r.id for r in policies.registry if not ((FIXTURES / r.id / "good.yaml").exists() and (FIXTURES / r.id / "bad.yaml").exists())]
    assert missing == []


def test_rule_reference_is_current(cli):
    """policies/RULES.md is generated: regenerate with
    `medplan policies list --format markdown > policies/RULES.md`."""
    generated = cli("policies", "list", "--format", "markdown").output
    assert (REPO / "policies" / "RULES.md").read_text(encoding="utf-8") == generated


def test_rego_unit_tests_pass(cli):
    result = cli("policies", "test")
    assert result.exit_code == 0, result.output
    passed = int(result.output.strip().splitlines()[-1].split()[0])
    assert passed >= 2 * len(builtin_policies().registry)
