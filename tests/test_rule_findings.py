"""Each builtin rule's fixtures through the whole pipeline: the bad spec gives
exactly the expected (rule, subject, line) findings, the good one none."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from planner import load_spec, plan, validate
from planner.pipeline import ValidateOptions
from tests.conftest import builtin_policies

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "rules"
CASES = sorted(p for p in FIXTURES.iterdir() if (p / "expected.json").exists()) if FIXTURES.is_dir() else []


def _stage(rule_id: str) -> str:
    return builtin_policies().registry.get(rule_id).stage


def _outcome(rule_id: str, stage: str, spec_file: str) -> list[tuple]:
    """What the rule says about a spec: findings (validate, plan) or denials (placement)."""
    options = ValidateOptions(waivers=False)
    spec = load_spec([spec_file])
    if stage == "validate":
        return sorted((str(f.subject), f.location.line) for f in validate(spec, options).findings if f.rule == rule_id)
    result = plan(spec, options)
    if stage == "plan":
        return sorted((str(f.subject), f.location.line) for f in result.findings if f.rule == rule_id)
    from planner.policy.waivers import FindingBuilder

    locate = FindingBuilder(spec, datetime.date.today()).locate
    return sorted(
        (f"workload/{w}", f"site/{s}", locate(f"workload/{w}").line)
        for w, per_site in result.denials.items()
        for s, reasons in per_site.items()
        if any(rule == rule_id for rule, _ in reasons)
    )


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_fixture_findings(case, monkeypatch):
    monkeypatch.chdir(case)
    stage = _stage(case.name)
    expected = sorted(
        (e["subject"], e["site"], e["line"]) if stage == "placement" else (e["subject"], e["line"])
        for e in json.loads((case / "expected.json").read_text())
    )
    assert _outcome(case.name, stage, "bad.yaml") == expected
    assert _outcome(case.name, stage, "good.yaml") == []


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
