"""Shared fixtures: an isolated CLI runner and small spec builders."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

MINIMAL = """\
apiVersion: medplan/v1
metadata: {name: test}
sites:
  - id: dc1
    kind: on-prem
    jurisdiction: US-MN
    zone: us
    controls: {encryption_at_rest: true, audit_logging: true, mfa: true, backup: {rpo_hours: 24, rto_hours: 72}}
    pools:
      - {id: h100, gpu: H100, nodes: 2, gpus_per_node: 8, cost_per_gpu_hour: 2.0}
datasets:
  - {id: pacs, site: dc1, system: pacs, classification: phi, subjects_zone: us}
workloads:
  - id: triage
    kind: inference
    gpus: 1
    replicas: 1
    inputs: [pacs]
"""


def child_pids() -> set[int]:
    """Processes whose parent is this one (none may be left behind: no zombie, no stray forked copy)."""
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                        out.add(int(pid))
            except OSError:
                pass
    return out


def failing_in_copies(real, message: str):
    """``real``, but raising RuntimeError(message) when called in a forked copy of this process."""
    parent = os.getpid()

    def wrapper(*args):
        if os.getpid() != parent:
            raise RuntimeError(message)
        return real(*args)

    return wrapper


@pytest.fixture
def spec_file(tmp_path) -> Path:
    """A generated spec (60 sites, 400 workloads) large enough to be read in two parts."""
    from planner.generate import generate_yaml

    path = tmp_path / "big.yaml"
    path.write_text(generate_yaml(60, 400, 7), encoding="utf-8")
    return path


@pytest.fixture
def may_fork():
    """Skips where this test process may not fork (another thread, not Linux);
    afterwards, the copies started early, the route worker and the input
    helper are stopped and no forked copy is left."""
    import sys
    import threading

    import planner.graph as graph_module
    from planner import startup
    from planner.policy.engine import stop_input_helper

    if not sys.platform.startswith("linux"):
        pytest.skip("forked copies are made on Linux only")
    if threading.active_count() > 1:
        pytest.skip("another thread runs in this test process: no fork")
    yield
    startup.stop()
    graph_module.stop_route_worker()
    stop_input_helper()
    assert not child_pids()


@pytest.fixture
def forks(monkeypatch) -> list[int]:
    """Counts the forks this test makes: one entry per os.fork() call."""
    made: list[int] = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: made.append(1) or real_fork())
    return made


def builtin_policies():
    """The builtin bundles, loaded as `medplan validate` loads them."""
    from planner.errors import Location
    from planner.policy.evaluate import builtin_bundles, load_policies, resolve_bundles

    return load_policies(resolve_bundles([f"builtin:{b}" for b in builtin_bundles()], REPO, Location("<test>")))


@pytest.fixture
def write(tmp_path):
    """write("name.yaml", text) -> path, with the text dedented."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """Run the medplan CLI in-process with a clean, colourless environment."""
    from click.testing import CliRunner

    from planner.cli import main

    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795000000")  # 2026-11-18
    for var in ("MEDPLAN_OPA_URL", "MEDPLAN_FORMAT", "MEDPLAN_FAIL_ON", "MEDPLAN_OPA_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture
def at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)
    return REPO


def pytest_configure(config):
    os.environ.setdefault("NO_COLOR", "1")
