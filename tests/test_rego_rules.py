"""The builtin Rego bundles (policies/hipaa, gdpr, platform): their unit tests
pass on regorus and on the reference OPA engine, every rule carries complete
metadata, and every rule decides its good and bad fixture specs as expected.

Fixtures live in tests/fixtures/rules/<RULE-ID>/: ``good.yaml`` must raise no
finding of any validate or placement rule (a compliant spec stays quiet), and
``bad.yaml`` must make the rule report exactly the subjects of
``expected.json``. Placement rules answer with classes; the test expands them
to their members, and their expected entries carry the denied ``site`` next to
the ``subject`` (the workload). Plan-stage rules need a plan, which the solver
produces elsewhere: here it is built by hand from the placements in ``PLANS``.
Each entry's ``line`` is the line of the subject's node in bad.yaml.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

from planner.facts import derive
from planner.policy.document import placement_document, validate_document
from planner.policy.rules import Rule, RuleRegistry, parse_rego_rules
from planner.spec.loader import load_spec
from tests.support import opa_reference

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
BUNDLES = ("hipaa", "gdpr", "platform")
FIXTURES = ROOT / "tests" / "fixtures" / "rules"

TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)", re.M)
DENY_HEAD = re.compile(r"^(deny_[A-Za-z0-9_]+)\s+(?:contains\b|:=)", re.M)
CONTROL = re.compile(r"^(HIPAA 164\.\d{3}(\([a-zA-Z0-9]+\))+|GDPR Art\. \d+)$")
PREFIX = {"hipaa": "MP-HIPAA-", "gdpr": "MP-GDPR-", "platform": "MP-PLAT-"}

# Placements (workload, site, pool, gpus per replica), one per replica, for the
# plan-stage fixtures.
PLANS: dict[str, dict[str, list[tuple[str, str, str, int]]]] = {
    "MP-HIPAA-ISO-001": {
        "good": [("triage", "dc1", "h100", 1), ("forecast", "dc1", "h100", 1)],
        "bad": [("triage", "dc1", "h100", 1), ("forecast", "dc1", "h100", 1)],
    },
    "MP-PLAT-HA-001": {
        "good": [("triage", "dc1", "h100", 1), ("triage", "aws", "h100", 1)],
        "bad": [("triage", "dc1", "h100", 1), ("triage", "dc1", "h100", 1)],
    },
    "MP-PLAT-CAP-001": {
        "good": [("train", "dc1", "h100", 8)],
        "bad": [("train", "dc1", "h100", 8)],
    },
    "MP-PLAT-CONC-001": {
        "good": [("triage", "dc1", "h100", 1), ("notes", "aws", "h100", 1)],
        "bad": [("triage", "dc1", "h100", 1), ("notes", "dc1", "h100", 1)],
    },
}


def _module_files() -> list[Path]:
    return sorted(p for bundle in BUNDLES for p in (POLICIES / bundle).glob("*.rego"))


def _is_test(path: Path) -> bool:
    return path.name.endswith("_test.rego")


@cache
def modules() -> dict[str, str]:
    """Every module of the builtin bundles, tests included, by repository path."""
    return {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in _module_files()}


@cache
def rules() -> tuple[Rule, ...]:
    found = []
    for path in _module_files():
        if not _is_test(path):
            found += parse_rego_rules(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix(), path.parent.name)
    return tuple(found)


def rule_by_id(rule_id: str) -> Rule:
    return next(r for r in rules() if r.id == rule_id)


@cache
def engine():
    import regorus

    e = regorus.Engine()
    for name, text in modules().items():
        e.add_policy(name, text)
    return e


def evaluate(query: str, document: dict) -> list[dict]:
    e = engine()
    e.set_input_json(json.dumps(document, sort_keys=True))
    return json.loads(e.eval_rule_as_json(query))


def unit_tests() -> list[tuple[str, str]]:
    out = []
    for name, text in modules().items():
        if name.endswith("_test.rego"):
            package = re.search(r"^package\s+(\S+)", text, re.M).group(1)
            out += [(name, f"data.{package}.{test}") for test in dict.fromkeys(TEST_RULE.findall(text))]
    return out


# ---------------------------------------------------------------- unit tests


@pytest.mark.parametrize(("module", "query"), unit_tests(), ids=[q for _, q in unit_tests()])
def test_rego_unit_test_passes_on_regorus(module, query):
    assert engine().eval_rule_as_json(query) == "true", f"{query} in {module}"


def test_rego_unit_tests_pass_on_reference_opa():
    opa_reference.require_opa()
    results = opa_reference.run_tests(modules())
    assert {q for q, _ in results} == {q for _, q in unit_tests()}
    assert [q for q, passed in results if not passed] == []


def test_every_deny_rule_has_unit_tests_that_fail_and_pass():
    names = {q.rsplit(".", 1)[1] for _, q in unit_tests()}
    for rule in rules():
        stem = rule.name.removeprefix("deny_")
        assert any(n.startswith(f"test_{stem}_fails") for n in names), f"{rule.id}: no test_{stem}_fails*"
        assert any(n.startswith(f"test_{stem}_passes") for n in names), f"{rule.id}: no test_{stem}_passes*"


# ---------------------------------------------------------------- metadata


def test_every_deny_rule_has_metadata():
    for path in _module_files():
        if _is_test(path):
            continue
        rel = path.relative_to(ROOT).as_posix()
        heads = set(DENY_HEAD.findall(path.read_text(encoding="utf-8")))
        annotated = {r.name for r in rules() if r.location.file == rel}
        assert heads == annotated, f"{rel}: deny rules without METADATA: {sorted(heads - annotated)}"


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r.id)
def test_rule_metadata_is_complete(rule: Rule):
    assert rule.package == f"medplan.{rule.bundle}"
    assert rule.id.startswith(PREFIX[rule.bundle]) and re.fullmatch(r"MP-[A-Z]+-[A-Z]+-\d{3}", rule.id)
    assert rule.name.startswith("deny_")
    assert rule.title and rule.description and rule.remediation
    assert isinstance(rule.controls, tuple)
    if rule.bundle != "platform":
        assert rule.controls, f"{rule.id} cites no control"
    for control in rule.controls:
        assert CONTROL.match(control), f"{rule.id}: control {control!r} is not an exact section"


def test_rule_ids_are_unique_and_each_has_fixtures():
    registry = RuleRegistry()
    for rule in rules():
        registry.add(rule)  # PolicyError on a duplicate id
    assert {r.id for r in rules()} == {p.name for p in FIXTURES.iterdir() if p.is_dir()}


# ---------------------------------------------------------------- fixtures


@cache
def document(path: Path) -> dict:
    return validate_document(derive(load_spec(path)))


def build_plan(doc: dict, placements: list[tuple[str, str, str, int]]) -> dict:
    """input.plan for a hand-written list of placements (one per replica)."""
    rows = []
    for workload, site, pool, gpus in placements:
        replica = sum(1 for r in rows if r["workload"] == workload)
        gpu = doc["pools"][f"{site}/{pool}"]["gpu"]
        rows.append({"workload": workload, "replica": replica, "site": site, "pool": pool, "gpu": gpu, "gpus": gpus})
    workloads = {
        wid: {
            "sites": sorted({r["site"] for r in rows if r["workload"] == wid}),
            "pools": sorted({f"{r['site']}/{r['pool']}" for r in rows if r["workload"] == wid}),
            "replicas": w["replicas"],
            "placed": sum(1 for r in rows if r["workload"] == wid),
        }
        for wid, w in doc["workloads"].items()
    }
    sites = {}
    for sid in doc["sites"]:
        here = sorted({r["workload"] for r in rows if r["site"] == sid})
        sites[sid] = {
            "workloads": here,
            "phi_workloads": [w for w in here if doc["workloads"][w]["phi"]],
            "gpus_used": sum(r["gpus"] for r in rows if r["site"] == sid),
        }
    pools = {}
    for key, pool in doc["pools"].items():
        used = sum(r["gpus"] for r in rows if f"{r['site']}/{r['pool']}" == key)
        pools[key] = {
            "gpus_used": used,
            "capacity_gpus": pool["capacity_gpus"],
            "utilisation": used / pool["capacity_gpus"],
            "workloads": sorted({r["workload"] for r in rows if f"{r['site']}/{r['pool']}" == key}),
        }
    return {"placements": rows, "workloads": workloads, "sites": sites, "pools": pools}


def findings(rule: Rule, spec: Path, which: str) -> set:
    """What ``rule`` reports on ``spec``: subjects, or (workload, site) pairs for placement rules."""
    doc = document(spec)
    if rule.stage == "placement":
        pdoc, workload_member, site_member = placement_document(doc)
        pairs = set()
        for denial in evaluate(rule.query, pdoc):
            for w in (w for w, c in workload_member.items() if c == denial["workload"]):
                for s in (s for s, c in site_member.items() if c == denial["site"]):
                    pairs.add((f"workload/{w}", f"site/{s}"))
        return pairs
    if rule.stage == "plan":
        doc = doc | {"plan": build_plan(doc, PLANS[rule.id][which])}
    return {v["subject"] for v in evaluate(rule.query, doc)}


FIXTURE_IDS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


@pytest.mark.parametrize("rule_id", FIXTURE_IDS)
def test_good_fixture_passes(rule_id):
    rule = rule_by_id(rule_id)
    assert findings(rule, FIXTURES / rule_id / "good.yaml", "good") == set()


@pytest.mark.parametrize("rule_id", FIXTURE_IDS)
def test_bad_fixture_reports_expected_subjects(rule_id):
    rule = rule_by_id(rule_id)
    expected = json.loads((FIXTURES / rule_id / "expected.json").read_text(encoding="utf-8"))
    assert expected, "expected.json lists no finding"
    if rule.stage == "placement":
        want = {(e["subject"], e["site"]) for e in expected}
    else:
        want = {e["subject"] for e in expected}
    assert findings(rule, FIXTURES / rule_id / "bad.yaml", "bad") == want


@pytest.mark.parametrize("rule_id", FIXTURE_IDS)
def test_good_fixture_is_clean_for_every_rule(rule_id):
    """A good fixture is a compliant spec: no validate or placement rule objects to it."""
    spec = FIXTURES / rule_id / "good.yaml"
    noisy = {r.id: findings(r, spec, "good") for r in rules() if r.stage in ("validate", "placement")}
    assert {k: v for k, v in noisy.items() if v} == {}


def test_regorus_and_reference_opa_agree_on_fixtures():
    opa_reference.require_opa()
    policy = {k: v for k, v in modules().items() if not k.endswith("_test.rego")}
    with opa_reference.engine(policy) as opa:
        for rule_id in FIXTURE_IDS:
            for which in ("good", "bad"):
                doc = document(FIXTURES / rule_id / f"{which}.yaml")
                docs = {"validate": doc, "placement": placement_document(doc)[0]}
                if rule_id in PLANS:
                    docs["plan"] = doc | {"plan": build_plan(doc, PLANS[rule_id][which])}
                for rule in rules():
                    if rule.stage not in docs:
                        continue
                    ours = evaluate(rule.query, docs[rule.stage])
                    rows = opa.eval_query(f"x := {rule.query}", docs[rule.stage])
                    theirs = rows[0]["x"] if rows else []
                    key = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731
                    assert sorted(map(key, ours)) == sorted(map(key, theirs)), f"{rule.id} on {rule_id}/{which}.yaml"
