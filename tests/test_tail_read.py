"""A large spec file read in two parts at once: the second by a forked copy
(``yamlsource.TailRead``) while this process reads the first. The spec is the
same as read whole, whatever happens to the copy, and the route worker
imports scipy only once the copy is done with the other core."""

from __future__ import annotations

import os
import time

import planner.graph as graph_module
from planner import pipeline, startup
from planner.generate import generate_yaml
from planner.spec import fastyaml
from planner.spec.yamlsource import TailRead, read_yaml
from tests.conftest import child_pids, failing_in_copies
from tests.test_yaml_fastpath import _same_data, _same_light_positions


def _same_source(a, b) -> bool:
    return _same_data(a.data, b.data) and _same_light_positions(a.root, b.root) and a.light == b.light


def test_the_second_part_read_elsewhere_gives_the_same_file(may_fork, spec_file, monkeypatch):
    whole = read_yaml(spec_file, light=True)
    tail = TailRead.start(spec_file, light=True)
    assert tail is not None and len(child_pids()) == 1
    read_here = []
    real = fastyaml.parse_block
    monkeypatch.setattr(fastyaml, "parse_block", lambda text, *args: read_here.append(len(text)) or real(text, *args))
    source = read_yaml(spec_file, light=True, tail=tail)
    assert _same_source(source, whole)
    assert read_here == [len(tail.head)]  # only the first part was read here
    assert not child_pids()
    # Where an error needs a deep position, the whole file is read again as usual.
    assert source.locate(("flows", 3, "purpose")) == read_yaml(spec_file).locate(("flows", 3, "purpose"))


def test_a_failing_copy_leaves_the_whole_file_to_read_here(may_fork, spec_file, monkeypatch):
    monkeypatch.setattr(fastyaml, "pack", failing_in_copies(fastyaml.pack, "the copy fails"))
    tail = TailRead.start(spec_file, light=True)
    assert tail is not None
    assert _same_source(read_yaml(spec_file, light=True, tail=tail), read_yaml(spec_file, light=True))
    assert not child_pids()


def test_a_stuck_copy_is_stopped(may_fork, spec_file, monkeypatch):
    parent = os.getpid()
    real = fastyaml.pack
    monkeypatch.setattr(fastyaml, "pack", lambda found: time.sleep(600) if os.getpid() != parent else real(found))
    monkeypatch.setattr(TailRead, "TIMEOUT", 0.5)
    tail = TailRead.start(spec_file, light=True)
    started = time.monotonic()
    assert _same_source(read_yaml(spec_file, light=True, tail=tail), read_yaml(spec_file, light=True))
    assert time.monotonic() - started < 30 and not child_pids()


def test_a_file_changed_meanwhile_is_read_as_it_is_now(may_fork, spec_file):
    tail = TailRead.start(spec_file, light=True)
    spec_file.write_text(generate_yaml(60, 400, 8), encoding="utf-8")
    assert _same_source(read_yaml(spec_file, light=True, tail=tail), read_yaml(spec_file, light=True))
    assert not child_pids()


def test_the_route_worker_imports_scipy_once_the_copy_is_done(may_fork, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    monkeypatch.setattr(graph_module, "_import_scipy", lambda: marker.touch())
    done, holding = os.pipe()
    copy = os.fork()  # stands for the copy: only it holds the write end, for 1.5 s
    if copy == 0:
        time.sleep(1.5)
        os._exit(0)
    os.close(holding)
    graph_module.start_route_worker(wait_for=done)
    os.close(done)
    time.sleep(0.5)
    assert not marker.exists()
    os.waitpid(copy, 0)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()


def test_validate_and_plan_find_the_same_with_the_file_read_in_two_parts(may_fork, spec_file, monkeypatch, forks):
    monkeypatch.setattr(startup, "ROUTE_WORKER_FROM_BYTES", 0)
    monkeypatch.setattr(startup, "TAIL_READ_FROM_BYTES", 0)
    monkeypatch.setattr(graph_module, "BATCH_MIN_WORK", 0)
    joined = []
    real = TailRead.read
    monkeypatch.setattr(TailRead, "read", lambda self, text, light: joined.append(1) or real(self, text, light))
    both = pipeline.run_plan([str(spec_file)], pipeline.ValidateOptions())
    assert joined and len(forks) >= 2  # the copy and the route worker
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    alone = pipeline.run_plan([str(spec_file)], pipeline.ValidateOptions())
    assert len(joined) == 1

    def seen(result):
        return [(f.rule, f.subject, f.message, f.location) for f in result.findings]

    assert seen(both) == seen(alone)
    assert both.plan.placements == alone.plan.placements
