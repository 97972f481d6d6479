"""A large plan's reports are rendered in a forked process, started when the
plan is rendered or as soon as it is solved: the files are the same as
rendered in one process, and a failed or stuck copy changes nothing."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

import planner.render as render
from planner import load_spec
from planner.pipeline import plan
from planner.render import render_plan_files, start_reports
from tests.conftest import child_pids, failing_in_copies

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "pharma-eu-us.yaml")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reports are rendered in a forked process on Linux only"
)


@pytest.fixture(scope="module")
def result():
    return plan(load_spec([EXAMPLE]))


@pytest.fixture(scope="module")
def sequential(result):
    os.environ["MEDPLAN_RENDER_PARALLEL"] = "0"
    try:
        return render_plan_files(result, timestamp="2026-01-02T03:04:05Z")
    finally:
        del os.environ["MEDPLAN_RENDER_PARALLEL"]


def test_forked_reports_are_the_same_files(result, sequential, monkeypatch, forks):
    if threading.active_count() > 1:
        pytest.skip("another thread runs in this test process: no fork")
    monkeypatch.setattr(render, "PARALLEL_FROM_WORKLOADS", 0)
    files = render_plan_files(result, timestamp="2026-01-02T03:04:05Z")
    assert forks, "the reports were not rendered in a second process"
    assert list(files) == list(sequential) and files == sequential
    assert render_plan_files(result, timestamp="2026-01-02T03:04:05Z", formats={"md", "json"}) == {
        k: v for k, v in sequential.items() if k in ("plan.json", "report.md")
    }
    assert not child_pids()


def test_the_reports_copy_renders_the_second_report_in_a_copy_of_its_own(result, sequential, monkeypatch, forks):
    # What the reports' copy runs: the view once, then the two reports in two processes.
    if threading.active_count() > 1:
        pytest.skip("another thread runs in this test process: no fork")
    real_render = render._render

    def recording(result, timestamp, formats):
        found = real_render(result, timestamp, formats)
        return {fmt: files | {"pid": str(os.getpid())} for fmt, files in found.items()}

    monkeypatch.setattr(render, "_render", recording)
    found = render._render_reports(result, ("render", None, "2026-01-02T03:04:05Z", ["md", "html"]))
    pids = {fmt: files.pop("pid") for fmt, files in found.items()}
    assert len(forks) == 1 and pids["md"] == str(os.getpid()) != pids["html"]
    assert found == {"md": {"report.md": sequential["report.md"]}, "html": {"report.html": sequential["report.html"]}}
    monkeypatch.setattr(render, "_render", failing_in_copies(real_render, "the copy fails"))
    assert render._render_reports(result, ("render", None, "2026-01-02T03:04:05Z", ["md", "html"])) == found
    assert not child_pids()


def test_a_failing_copy_leaves_the_reports_to_this_process(result, sequential, monkeypatch):
    monkeypatch.setattr(render, "PARALLEL_FROM_WORKLOADS", 0)
    monkeypatch.setattr(render, "_render", failing_in_copies(render._render, "the copy fails"))
    assert render_plan_files(result, timestamp="2026-01-02T03:04:05Z") == sequential
    assert not child_pids()


def test_a_stuck_copy_is_stopped(result, sequential, monkeypatch):
    monkeypatch.setattr(render, "PARALLEL_FROM_WORKLOADS", 0)
    monkeypatch.setattr(render, "CHILD_TIMEOUT", 0.5)
    parent = os.getpid()
    real_render = render._render

    def stuck(*args):
        if os.getpid() != parent:
            time.sleep(600)
        return real_render(*args)

    monkeypatch.setattr(render, "_render", stuck)
    started = time.monotonic()
    assert render_plan_files(result, timestamp="2026-01-02T03:04:05Z") == sequential
    assert time.monotonic() - started < 60
    assert not child_pids()


def test_small_plans_and_threads_stay_in_one_process(result, monkeypatch, forks):
    render_plan_files(result)  # far fewer workloads than PARALLEL_FROM_WORKLOADS
    monkeypatch.setattr(render, "PARALLEL_FROM_WORKLOADS", 0)
    monkeypatch.setenv("MEDPLAN_RENDER_PARALLEL", "0")
    render_plan_files(result)
    assert forks == []


@pytest.mark.parametrize("parallel", [True, False])
def test_meanwhile_runs_between_the_formats_rendered_here_and_the_copys(result, sequential, monkeypatch, parallel):
    if parallel and threading.active_count() > 1:
        pytest.skip("another thread runs in this test process: no fork")
    monkeypatch.setattr(render, "PARALLEL_FROM_WORKLOADS", 0 if parallel else 10**9)
    seen: list[str] = []
    files = {}
    for fmt, rendered in render.iter_plan_files(result, timestamp="2026-01-02T03:04:05Z", meanwhile=lambda: seen.append("meanwhile")):
        seen.append(fmt)
        files.update(rendered)
    if parallel:  # while the copy renders the reports
        assert seen == ["helm", "terraform", "json", "sarif", "oscal", "meanwhile", "md", "html"]
    else:
        assert seen == ["helm", "terraform", "json", "sarif", "md", "html", "oscal", "meanwhile"]
    assert files == sequential and not child_pids()


def test_a_copy_started_when_the_plan_is_solved_renders_the_finished_findings(sequential, monkeypatch, forks):
    if threading.active_count() > 1:
        pytest.skip("another thread runs in this test process: no fork")
    monkeypatch.setattr(render, "PARALLEL_FROM_WORKLOADS", 0)
    started: list = []

    def solved(partial):
        started.append((partial, list(partial.validation.findings), start_reports(partial, finished=False)))

    result = plan(load_spec([EXAMPLE]), solved=solved)
    [(partial, findings_then, copy)] = started
    assert partial is result and copy is not None and forks
    assert findings_then == [] and result.validation.findings  # the findings came after the copy started
    files = dict(render.iter_plan_files(result, timestamp="2026-01-02T03:04:05Z", reports=copy))
    assert {name: text for fmt in render.FORMATS for name, text in files[fmt].items()} == sequential
    assert not child_pids()


def test_plan_out_starts_the_reports_when_the_plan_is_solved(tmp_path, sequential, monkeypatch):
    from click.testing import CliRunner

    from planner.cli import main

    if threading.active_count() > 1:
        pytest.skip("another thread runs in this test process: no fork")
    monkeypatch.setattr(render, "PARALLEL_FROM_WORKLOADS", 0)
    real_start = render.start_reports
    started: list[bool] = []

    def start(result, formats=None, *, finished=True):
        started.append(finished)
        return real_start(result, formats, finished=finished)

    monkeypatch.setattr(render, "start_reports", start)
    out = tmp_path / "plan"
    ran = CliRunner().invoke(main, ["plan", EXAMPLE, "--out", str(out), "--timestamp", "2026-01-02T03:04:05Z"])
    assert ran.exit_code in (0, 1), ran.output
    assert started == [False]  # one copy, started before the findings were all in
    written = {str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in out.rglob("*") if p.is_file()}
    assert {k: v for k, v in written.items() if k in sequential} == sequential
    assert not child_pids()


def test_helm_and_terraform_rendered_while_the_plan_stage_rules_run_are_the_final_files(sequential):
    seen: list = []

    def meanwhile(partial):
        seen.append((partial, list(partial.validation.findings), render.render_unchecked(partial)))

    result = plan(load_spec([EXAMPLE]), meanwhile=meanwhile)
    [(partial, findings_then, unchecked)] = seen
    assert partial is result and findings_then == [] and result.validation.findings
    assert list(unchecked) == ["helm", "terraform"]
    assert {name: text for files in unchecked.values() for name, text in files.items()} == {
        name: text for name, text in sequential.items() if name.startswith(("helm/", "terraform/"))
    }
    assert render.render_unchecked(result, {"json", "terraform"}) == {"terraform": unchecked["terraform"]}
    files = dict(render.iter_plan_files(result, timestamp="2026-01-02T03:04:05Z", rendered=unchecked))
    assert files["helm"] is unchecked["helm"]  # taken as rendered, not rendered again
    assert {name: text for fmt in render.FORMATS for name, text in files[fmt].items()} == sequential
