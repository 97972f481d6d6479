"""The CLI's contracts: exit codes for every outcome, JSON shape, streams."""

from __future__ import annotations

import json

import pytest

from tests.conftest import MINIMAL

PY_RULE = '''
from planner.policy.python_rules import rule

@rule(id="MP-TEST-GPU-001", title="Inference uses at most one GPU", severity="{severity}",
      controls=["ORG-1"], remediation="Use one GPU.")
def one_gpu(doc):
    for wid, w in sorted(doc["workloads"].items()):
        if w["kind"] == "inference" and (w["gpus"] or 1) > 1:
            yield {{"subject": f"workload/{{wid}}", "message": f"{{wid}} asks for {{w['gpus']}} GPUs"}}
'''


def spec_with_rule(write, *, gpus: int = 1, severity: str = "high", extra: str = ""):
    write("pol/rules.py", PY_RULE.format(severity=severity))
    text = MINIMAL.replace("gpus: 1", f"gpus: {gpus}") + "policies:\n  include: [./pol]\n" + extra
    return write("spec.yaml", text)


@pytest.mark.parametrize(
    ("gpus", "severity", "args", "code"),
    [
        (1, "high", [], 0),  # passes
        (2, "high", [], 1),  # finding at fail_on
        (2, "medium", [], 0),  # below fail_on: reported, passes
        (2, "medium", ["--fail-on", "medium"], 1),
        (2, "high", ["--no-policies"], 0),
    ],
)
def test_exit_codes(cli, write, gpus, severity, args, code):
    path = spec_with_rule(write, gpus=gpus, severity=severity)
    result = cli("validate", path, *args)
    assert result.exit_code == code, result.output


def test_invalid_input_exits_2_and_names_the_place(cli, write):
    path = write("bad.yaml", MINIMAL.replace("gpus: 1", "gpus: eight"))
    result = cli("validate", path)
    assert result.exit_code == 2
    assert f"{path}:16:11: workloads[0].gpus: expected a whole number >= 1, got \"eight\"" in result.stderr
    assert result.stdout == ""


def test_usage_error_exits_2(cli):
    assert cli("validate").exit_code == 2
    assert cli("validate", "x.yaml", "--format", "pdf").exit_code == 2
    assert cli("no-such-command").exit_code == 2


def test_bad_policy_exits_2_with_location(cli, write):
    write("pol/broken.rego", "package medplan.custom\nimport rego.v1\ndeny_x contains v if { v := }\n")
    path = write("spec.yaml", MINIMAL + "policies:\n  include: [./pol]\n")
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "pol/broken.rego:3:" in result.stderr


def test_rule_without_id_is_a_load_error(cli, write):
    write("pol/r.rego", "package medplan.custom\nimport rego.v1\n# METADATA\n# title: x\n# custom:\n#   severity: high\ndeny_x contains v if { false; v := 1 }\n")
    path = write("spec.yaml", MINIMAL + "policies:\n  include: [./pol]\n")
    result = cli("validate", path)
    assert result.exit_code == 2
    assert "pol/r.rego:3:1: rule 'deny_x': custom.id is required" in result.stderr


def test_crashing_python_rule_is_an_error_finding(cli, write):
    write("pol/r.py", "from planner.policy.python_rules import rule\n"
          "@rule(id='MP-TEST-BOOM-001', title='boom', severity='high')\n"
          "def boom(doc):\n    return 1 / 0\n")
    path = write("spec.yaml", MINIMAL + "policies:\n  include: [./pol]\n")
    result = cli("validate", path, "--format", "json")
    assert result.exit_code == 1
    (finding,) = json.loads(result.stdout)["findings"]
    assert finding["rule"] == "MP-TEST-BOOM-001" and finding["status"] == "error"
    assert "division by zero" in finding["message"]
    assert cli("validate", path, "--strict").exit_code == 2


def test_json_shape(cli, write):
    path = spec_with_rule(write, gpus=2)
    doc = json.loads(cli("validate", path, "--format", "json").stdout)
    assert set(doc) >= {"medplan", "inputs", "engine", "summary", "findings", "errors"}
    assert doc["inputs"][0]["path"] == str(path) and len(doc["inputs"][0]["sha256"]) == 64
    assert doc["engine"]["name"] == "regorus" and doc["engine"]["bundle_revision"].startswith("sha256:")
    (finding,) = doc["findings"]
    assert finding["rule"] == "MP-TEST-GPU-001"
    assert finding["subject"] == {"kind": "workload", "id": "triage"}
    assert finding["location"] == {"file": str(path), "line": 14, "column": 5}
    assert finding["status"] == "fail" and finding["controls"] == ["ORG-1"]


def test_json_errors_on_invalid_input(cli, write):
    path = write("bad.yaml", MINIMAL.replace("kind: inference", "kind: inferense"))
    result = cli("validate", path, "--format", "json")
    assert result.exit_code == 2
    (error,) = json.loads(result.stdout)["errors"]
    assert error["location"] == {"file": str(path), "line": 15, "column": 11}
    assert error["path"] == "workloads[0].kind"


def test_waiver_applies_expires_and_unused(cli, write):
    waivers = (
        "waivers:\n"
        "  - {rule: MP-TEST-GPU-001, subject: workload/triage, justification: pilot, approved_by: ciso, expires: 2027-01-31}\n"
        "  - {rule: MP-TEST-GPU-001, subject: dataset/pacs, justification: stale, approved_by: ciso, expires: 2027-01-31}\n"
    )
    path = spec_with_rule(write, gpus=2, extra=waivers)
    result = cli("validate", path, "--format", "json")
    doc = json.loads(result.stdout)
    statuses = sorted((f["rule"], f["subject"]["kind"], f["status"]) for f in doc["findings"])
    assert statuses == [("MP-TEST-GPU-001", "workload", "waived"), ("MP-WAIVER-002", "waiver", "fail")]
    assert result.exit_code == 0  # the unused waiver is low severity
    assert cli("validate", path, "--no-waivers").exit_code == 1
    expired = path.read_text().replace("2027-01-31", "2026-01-31")
    path.write_text(expired)
    doc = json.loads(cli("validate", path, "--format", "json").stdout)
    assert sorted((f["rule"], f["status"]) for f in doc["findings"]) == [
        ("MP-TEST-GPU-001", "fail"), ("MP-WAIVER-001", "fail"), ("MP-WAIVER-001", "fail"),
    ]


def test_version_and_schema(cli):
    assert cli("--version").output.strip() == "medplan 0.1.0"
    schema = json.loads(cli("schema").output)
    assert schema["$id"] == "https://medplan.dev/schema/spec-v1.json"


def test_input_document_is_json(cli, write):
    doc = json.loads(cli("input", write("s.yaml", MINIMAL)).output)
    assert doc["datasets"]["pacs"]["phi"] is True
    assert doc["workloads"]["triage"]["phi"] is True


def test_catalog_commands(cli):
    gpus = cli("catalog", "gpus", "--format", "json")
    assert gpus.exit_code == 0
    ids = [g["id"] for g in json.loads(gpus.output)["gpus"]]
    assert {"H100", "H200", "B200", "GB200", "L40S"} <= set(ids)
    table = cli("catalog", "instances").output
    assert "p5.48xlarge" in table and "BM.GPU.B200.8" in table


def test_size_answers_hopper_or_blackwell(cli, at_repo_root):
    result = cli("size", "examples/academic-medical-center", "--workload", "ct-triage")
    assert result.exit_code == 0
    assert "cheapest fit: lsh-dc1/dgx-b200 (B200, blackwell)" in result.output
    assert "demand 150 / measured 24 per replica on H100 (user measurement)" in result.output
    doc = json.loads(cli("size", "examples/academic-medical-center", "--format", "json").output)
    assert doc == json.loads(cli("size", "examples/academic-medical-center", "--format", "json").output)
    unknown = cli("size", "examples/academic-medical-center", "--workload", "ct-triag")
    assert unknown.exit_code == 2 and "ct-triage" in unknown.stderr
