"""SARIF and JUnit output of `medplan validate`, checked with real parsers:
SARIF against the official 2.1.0 JSON schema, JUnit as XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.support import tools

REPO = Path(__file__).resolve().parent.parent
AMC = REPO / "examples" / "academic-medical-center"


def test_sarif_is_valid_against_the_official_schema(cli, tmp_path):
    schema = tools.require_sarif_schema()
    result = cli("validate", AMC, "--format", "sarif")
    assert result.exit_code in (0, 1)
    out = tmp_path / "findings.sarif"
    out.write_text(result.stdout)
    check = tools.check_jsonschema(schema, out)
    assert check.ok, check.describe()
    run = json.loads(result.stdout)["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    for item in run["results"]:
        rule = rules[item["ruleId"]]
        assert float(rule["properties"]["security-severity"]) >= 0
        assert item["partialFingerprints"]["medplanFingerprint/v1"]
    waived = [r for r in run["results"] if r.get("suppressions")]
    assert waived, "the academic medical center example carries a waiver"
    assert waived[0]["suppressions"][0]["status"] == "accepted"


def test_sarif_rules_cite_controls_as_tags(cli):
    run = json.loads(cli("validate", AMC, "--format", "sarif").stdout)["runs"][0]
    hipaa = [r for r in run["tool"]["driver"]["rules"] if r["id"].startswith("MP-HIPAA-")]
    assert hipaa and all(any(t.startswith("HIPAA 164.") for t in r["properties"]["tags"]) for r in hipaa)


def test_junit_parses_and_names_rules_and_subjects(cli):
    result = cli("validate", AMC, "--format", "junit")
    root = ET.fromstring(result.stdout.encode())
    cases = root.findall(".//testcase")
    assert cases
    failures = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert int(root.get("failures")) == len(failures)
    assert all(c.get("classname").startswith("MP-") for c in cases)
    assert any(c.get("name").startswith("flow/") for c in skipped)


def test_outputs_are_deterministic(cli):
    for fmt in ("json", "sarif", "junit", "text"):
        assert cli("validate", AMC, "--format", fmt).stdout == cli("validate", AMC, "--format", fmt).stdout
