"""The copies a command starts before its heavy modules load
(``planner.startup``): started from a small process that has imported
neither the models nor the engine nor the solver, they serve loading,
validating and planning with the same results as without them, and none is
left behind whatever the command does next."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from planner import pipeline, startup
from planner.errors import InputError
from planner.generate import generate_yaml
from planner.spec.yamlsource import TailRead
from tests.conftest import REPO, child_pids

HEAVY = ("pydantic", "planner.spec.models", "planner.pipeline", "planner.solver", "regorus", "numpy", "scipy")

# Run as a new process: start the copies first thing, then load, validate
# and plan as the command line does; print what was imported before loading
# and what each command found.
EARLY = """
import json, sys
from planner import startup
import planner.graph
startup.ROUTE_WORKER_FROM_BYTES = startup.TAIL_READ_FROM_BYTES = 0
planner.graph.BATCH_MIN_WORK = 0
path = sys.argv[1]
startup.start([path], input_helper=sys.argv[2] == "validate")
heavy = [m for m in sys.argv[3:] if m in sys.modules]
early = startup._early
from planner import pipeline
from planner.spec.yamlsource import TailRead
starts = []
real = TailRead.start
TailRead.start = lambda *a, **k: starts.append(1) or real(*a, **k)
if sys.argv[2] == "validate":
    result = pipeline.run_validate([path], pipeline.ValidateOptions())
    placements = None
else:
    result = pipeline.run_plan([path], pipeline.ValidateOptions())
    placements = [(p.workload, p.replica, p.site, p.pool, p.gpus) for p in result.plan.placements]
print(json.dumps({
    "heavy": heavy,
    "tails_read_early": [t.first is not None for t in early[1].values()],
    "tails_started_later": len(starts),
    "findings": [[f.rule, str(f.subject), f.message, str(f.location)] for f in result.findings],
    "placements": placements,
}))
"""


def _findings(result) -> list:
    return [[f.rule, str(f.subject), f.message, str(f.location)] for f in result.findings]


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_copies_started_before_the_heavy_modules_load_give_the_same_results(may_fork, spec_file, command):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MEDPLAN_PARALLEL", None)
    done = subprocess.run(
        [sys.executable, "-c", EARLY, str(spec_file), command, *HEAVY], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["heavy"] == []  # the copies were made from a small process
    assert seen["tails_read_early"] == [True] and seen["tails_started_later"] == 0  # loading took the early read
    os.environ["MEDPLAN_PARALLEL"] = "0"
    try:
        if command == "validate":
            alone = pipeline.run_validate([str(spec_file)], pipeline.ValidateOptions())
        else:
            alone = pipeline.run_plan([str(spec_file)], pipeline.ValidateOptions())
    finally:
        del os.environ["MEDPLAN_PARALLEL"]
    assert seen["findings"] == _findings(alone)
    if command == "plan":
        assert seen["placements"] == [[p.workload, p.replica, p.site, p.pool, p.gpus] for p in alone.plan.placements]


def test_loading_other_files_stops_the_early_copies_and_starts_its_own(may_fork, spec_file, tmp_path, monkeypatch):
    monkeypatch.setattr(startup, "ROUTE_WORKER_FROM_BYTES", 0)
    monkeypatch.setattr(startup, "TAIL_READ_FROM_BYTES", 0)
    other = tmp_path / "other.yaml"
    other.write_text(generate_yaml(40, 300, 3), encoding="utf-8")
    startup.start([str(spec_file)], input_helper=True)
    (early,) = startup._early[1].values()
    started = []
    real = TailRead.start
    monkeypatch.setattr(TailRead, "start", lambda *a, **k: started.append(a[0]) or real(*a, **k))
    result = pipeline.run_validate([str(other)], pipeline.ValidateOptions())
    assert early.done is None  # closed
    assert started == [other]
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    assert _findings(result) == _findings(pipeline.run_validate([str(other)], pipeline.ValidateOptions()))
    assert not child_pids()


def test_copies_that_no_load_takes_are_stopped(may_fork, spec_file, monkeypatch):
    monkeypatch.setattr(startup, "ROUTE_WORKER_FROM_BYTES", 0)
    monkeypatch.setattr(startup, "TAIL_READ_FROM_BYTES", 0)
    startup.start([str(spec_file)], input_helper=True)
    assert len(child_pids()) == 3  # the second part's reader, the route worker, the input helper
    startup.start([str(spec_file)])  # a second start replaces the first
    assert len(child_pids()) == 2
    startup.stop()
    assert startup._early is None and not child_pids()


def test_paths_that_cannot_be_listed_start_nothing_and_loading_says_why(may_fork, tmp_path):
    missing = str(tmp_path / "missing.yaml")
    startup.start([missing], input_helper=True)
    assert startup._early is None and not child_pids()
    with pytest.raises(InputError) as raised:
        pipeline.run_validate([missing], pipeline.ValidateOptions())
    assert "no such file or directory" in str(raised.value.diagnostics[0])
