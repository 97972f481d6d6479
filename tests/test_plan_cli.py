"""`medplan plan` end to end: exit codes, the plan directory, determinism,
and `medplan explain`."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AMC = REPO / "examples" / "academic-medical-center"
HOSPITAL = REPO / "examples" / "community-hospital.yaml"


def _tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_plan_writes_every_output_and_is_deterministic(cli, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert cli("plan", AMC, "--out", first).exit_code == 0
    assert cli("plan", AMC, "--out", second).exit_code == 0
    files = _tree(first)
    assert files == _tree(second)
    for name in ("plan.json", "report.md", "report.html", "findings.sarif", "oscal/assessment-results.json", "MANIFEST.sha256"):
        assert name in files
    assert any(name.startswith("terraform/aws-use1/") for name in files)
    plan = json.loads(files["plan.json"])
    assert {"placements", "unplaced", "objective"} <= set(plan)
    for p in plan["placements"]:
        assert {"workload", "replica", "site", "pool", "gpu", "gpus", "cost_per_hour"} <= set(p)
    assert plan["objective"]["gap"] <= 0.01 and plan["objective"]["bound"] <= plan["objective"]["value"] + 1e-6
    assert cli("verify", first).exit_code == 0


def test_unplaceable_workload_exits_1_and_explains(cli, tmp_path):
    result = cli("plan", HOSPITAL, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "UNPLACED cxr-triage:" in result.stdout
    assert "ha-spread" in result.stdout
    assert (tmp_path / "out" / "plan.json").exists()  # a non-compliant plan is still written for review


def test_invalid_input_writes_nothing(cli, tmp_path, write):
    bad = write("bad.yaml", "sites: [{id: X}]\n")
    out = tmp_path / "out"
    result = cli("plan", bad, "--out", out)
    assert result.exit_code == 2 and not out.exists()


def test_plan_json_on_stdout(cli):
    result = cli("plan", AMC, "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "pass" and doc["objective"]["status"] == "optimal"


def test_explain_names_chosen_and_rejected_sites(cli):
    result = cli("explain", AMC, "--workload", "ct-triage")
    assert result.exit_code == 0
    assert "ct-triage" in result.stdout and "chosen" in result.stdout
    unknown = cli("explain", AMC, "--workload", "ct-triag")
    assert unknown.exit_code == 2 and "did you mean 'ct-triage'" in unknown.stderr
