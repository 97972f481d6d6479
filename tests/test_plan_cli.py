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


def test_plan_json_on_stdout(cli, tmp_path, monkeypatch):
    result = cli("plan", AMC, "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "pass" and doc["objective"]["status"] == "optimal"
    # With --out, what is printed is the directory's plan.json, rendered once.
    import planner.render.planjson as planjson

    calls = []
    real = planjson.render_plan_json
    monkeypatch.setattr(planjson, "render_plan_json", lambda result: calls.append(1) or real(result))
    out = tmp_path / "out"
    written = cli("plan", AMC, "--format", "json", "--out", out)
    assert written.stdout == (out / "plan.json").read_text(encoding="utf-8") == result.stdout and len(calls) == 1


def test_explain_names_chosen_and_rejected_sites(cli):
    result = cli("explain", AMC, "--workload", "ct-triage")
    assert result.exit_code == 0
    assert "ct-triage" in result.stdout and "chosen" in result.stdout
    unknown = cli("explain", AMC, "--workload", "ct-triag")
    assert unknown.exit_code == 2 and "did you mean 'ct-triage'" in unknown.stderr


def test_render_again_from_a_saved_plan_is_byte_identical(cli, tmp_path, at_repo_root):
    first = tmp_path / "first"
    assert cli("plan", "examples/pharma-eu-us.yaml", "--out", first).exit_code == 0
    again = tmp_path / "again"
    assert cli("render", first / "plan.json", "--out", again).exit_code == 0
    assert _tree(again) == _tree(first)
    only = tmp_path / "only"
    assert cli("render", first, "--format", "md", "--format", "sarif", "--out", only).exit_code == 0
    assert sorted(_tree(only)) == ["MANIFEST.sha256", "findings.sarif", "report.md"]


def test_render_refuses_an_edited_plan(cli, tmp_path, at_repo_root):
    out = tmp_path / "p"
    cli("plan", "examples/pharma-eu-us.yaml", "--out", out)
    doc = json.loads((out / "plan.json").read_text())
    doc["placements"][0]["site"] = "elsewhere"
    (out / "plan.json").write_text(json.dumps(doc))
    result = cli("render", out, "--out", tmp_path / "r")
    assert result.exit_code == 2 and "differ" in result.stderr
    assert not (tmp_path / "r").exists()


def test_diff_reports_moves_cost_and_findings(cli, tmp_path, write):
    base = (REPO / "examples" / "community-hospital.yaml").read_text()
    old, new = tmp_path / "old", tmp_path / "new"
    cli("plan", write("a.yaml", base), "--out", old)
    cli("plan", write("b.yaml", base.replace("gpu: H100", "gpu: B200")), "--out", new)
    result = cli("diff", old, new, "--format", "json")
    change = json.loads(result.stdout)
    assert [m["workload"] for m in change["moved"]] == ["ed-census-forecast", "ehr-note-assistant"]
    assert change["cost_per_hour"]["delta"] < 0
    assert cli("diff", old, old).exit_code == 0


def test_compare_swap_shows_hopper_memory_bottleneck(cli):
    result = cli("compare", HOSPITAL, "--swap", "rb-dc1/h100=B200", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    a, b = doc["labels"]
    note = doc["workloads"]["ehr-note-assistant"]
    assert note[a]["gpu_models"] == ["H100"] and note[a]["gpus_per_replica"] == [4]
    assert note[b]["gpu_models"] == ["B200"] and note[b]["gpus_per_replica"] == [2]
    assert note[b]["min_headroom_gb"] > note[a]["min_headroom_gb"]
    bad = cli("compare", HOSPITAL, "--swap", "rb-dc1/h100=B2OO")
    assert bad.exit_code == 2 and "did you mean 'B200'" in bad.stderr
