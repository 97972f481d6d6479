"""The installed package works from any directory: bundled policies and
templates come along as package data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_installed_medplan_runs_from_any_directory(tmp_path):
    probe = subprocess.run(
        [sys.executable, "-c", "import planner, planner.resources as r; print(planner.__file__); print(r.policies_dir())"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    if probe.returncode != 0:
        pytest.skip("medplan is not installed in this environment (pip install . first)")
    module_file, policies = probe.stdout.splitlines()
    if "site-packages" not in Path(module_file).resolve().parts:
        pytest.skip("medplan is installed in editable mode; this test checks a plain install")
    assert Path(policies).is_dir() and any(Path(policies).glob("hipaa/*.rego"))
    spec = tmp_path / "spec.yaml"
    spec.write_text((REPO / "examples" / "community-hospital.yaml").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "planner.cli", "validate", "spec.yaml", "--format", "json"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["summary"]["rules"] >= 20  # the builtin validate-stage rules, found inside site-packages
    templates = subprocess.run(
        [sys.executable, "-c", "import planner.resources as r; print(r.templates_dir())"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    assert Path(templates).is_dir() and "site-packages" in templates
