"""The synthetic spec generator and the benchmark's pipeline on the smallest
size, so that neither can rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from planner import load_spec, plan
from planner.generate import generate_yaml

REPO = Path(__file__).resolve().parent.parent


def test_same_seed_same_spec_and_it_is_valid(tmp_path, cli):
    assert generate_yaml(10, 100, 7) == generate_yaml(10, 100, 7)
    assert generate_yaml(10, 100, 7) != generate_yaml(10, 100, 8)
    out = tmp_path / "g.yaml"
    assert cli("generate", "--sites", "10", "--workloads", "100", "--seed", "7", "--out", out).exit_code == 0
    spec = load_spec([out])
    kinds = {s.kind.value for s in spec.sites}
    assert len(spec.sites) == 10 and len(spec.workloads) == 100 and len(spec.flows) == 200
    assert {"on-prem", "cloud"} <= kinds
    assert {w.kind.value for w in spec.workloads} >= {"inference", "training", "batch"}


def test_full_pipeline_on_the_smallest_size(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(10, 100, 1))
    result = plan(load_spec([path]))
    assert result.plan.placements
    assert result.plan.objective.gap <= 0.01


def test_benchmark_script_runs_the_smallest_size():
    # Started, as the table's sizes are, by a process that has touched
    # 400 MB (the bench times the host so): a size's peak is its own.
    bench = [sys.executable, str(REPO / "bench" / "run.py"), "--one", "10x100", "--runs", "1"]
    starter = (
        "import mmap, subprocess, sys\n"
        "memory = mmap.mmap(-1, 400 << 20)\n"
        "for at in range(0, 400 << 20, mmap.PAGESIZE):\n"
        "    memory[at] = 1\n"
        f"sys.exit(subprocess.run({bench!r}).returncode)\n"
    )
    out = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(row["times"]) == {"load", "validate", "placement", "admissibility", "solve", "plan-stage", "render"}
    assert 0 < max(row["peak_mb"].values()) < 300
    assert row["gap"] <= 0.01
    assert row["validate_cmd_s"] > 0 and row["plan_cmd_s"] > 0 and row["plan_cmd_mb"] > 0
    assert row["validate_cmd_median_s"] == row["validate_cmd_s"] and row["plan_cmd_median_s"] == row["plan_cmd_s"]
