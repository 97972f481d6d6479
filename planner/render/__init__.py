"""Renderers: pure functions from a validation or plan result to files.

A large plan's two reports (Markdown and HTML, both printed from one view of
the whole plan) are rendered in a forked copy of this process while this one
renders the other formats, the Helm charts and Terraform first: their
thousands of files can be written as they come (see :func:`iter_plan_files`).
The copy may be started as soon as the plan is solved (:func:`start_reports`):
it then works out what the reports show of the plan itself (most of their
work) while this process runs the plan-stage rules, and is given the
finished findings afterwards. With two cores the files of thousands of
sites are ready in little more than half the time. The files are the same
either way; if the copy cannot be made, fails or hangs, its formats are
rendered here. ``MEDPLAN_RENDER_PARALLEL=0`` (or ``MEDPLAN_PARALLEL=0``) turns this off.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

from planner.process import Server, ServerLost, can_fork

# Every format, in the order its files are listed.
FORMATS = ("json", "sarif", "md", "html", "oscal", "helm", "terraform")
# Rendered in the forked copy; the rest are rendered here.
_AWAY = frozenset({"md", "html"})
# Rendered here before the others: the formats with the most files. They
# show the plan and none of its findings, so they may also be rendered before
# the plan-stage rules have run (see render_unchecked).
_HERE_FIRST = ("helm", "terraform")
# From this many workloads, rendering takes long enough to be worth a second process.
PARALLEL_FROM_WORKLOADS = 2000
# How long the copy may take, at least, before its formats are rendered here.
CHILD_TIMEOUT = 60.0


def render_plan_files(result, *, timestamp: str | None = None, formats: set[str] | None = None) -> dict[str, str]:
    """Every file of a plan directory, by relative path."""
    rendered = dict(iter_plan_files(result, timestamp=timestamp, formats=formats))
    return {name: text for fmt in FORMATS if fmt in rendered for name, text in rendered[fmt].items()}


class ReportCopy:
    """A forked copy of this process that renders a plan's two reports
    (:func:`start_reports`). It works out :func:`~planner.render.report.plan_sections`
    as soon as it starts (they are kept for that plan), then renders the
    formats asked of it (:meth:`render`) from the finished result's findings."""

    def __init__(self, server: Server, finished: bool) -> None:
        self.server = server
        self.finished = finished  # started with the finished result: the findings need not be sent
        self.ticket: int | None = None

    def render(self, result, timestamp: str | None, formats: list[str]) -> None:
        """Ask for ``formats`` of ``result``, the plan it was started with, now with its findings."""
        try:
            self.ticket = self.server.ask(("render", None if self.finished else result.validation, timestamp, formats))
        except ServerLost:
            self.ticket = None
        self.server.end_requests()  # the only request: the copy may fork for the second report (see _render_reports)

    def files(self, timeout: float) -> dict[str, dict[str, str]] | None:
        """The files asked for, by format; None if the copy failed or took longer than ``timeout`` seconds."""
        if self.ticket is None:
            return None
        ticket, self.ticket = self.ticket, None
        try:
            return self.server.answer(ticket, timeout)
        except ServerLost:
            return None

    def close(self) -> None:
        self.server.stop()


def start_reports(result, formats: set[str] | None = None, *, finished: bool = True) -> ReportCopy | None:
    """A :class:`ReportCopy` for a plan large enough to be worth one (and a
    process that may fork), if ``formats`` hold the reports and more; else None.

    ``finished=False``: ``result`` is the plan just solved, whose findings
    are not all in yet (its ``validation`` is read only when sent with
    :meth:`ReportCopy.render`)."""
    wanted, away = _wanted(formats)
    if away == wanted or not _parallel(result, away):
        return None
    from planner.render import report  # noqa: F401 - imported once, before the fork, for both processes

    server = Server.start(lambda: _sections_worked_out(result), _render_reports, read_ahead=True)
    return ReportCopy(server, finished) if server is not None else None


def _sections_worked_out(result):
    """In a :class:`ReportCopy`, first: the reports' plan sections, worked out and kept; its state is ``result``."""
    from planner.render import report

    report.plan_sections(result)
    return result


def _render_reports(result, request: tuple) -> dict[str, dict[str, str]]:
    """In a :class:`ReportCopy`: the files of the formats a request asks for.

    Both reports print one view of the plan and its findings: it is worked
    out here, then the second report is rendered by a forked copy of this
    copy while this one renders the first (0.3-0.5 s each on a 10,000-workload
    plan, at the end of ``medplan plan --out``). If no copy can be made, or
    it fails or hangs, the second is rendered here."""
    from planner.process import alone, beside
    from planner.render import report

    _, validation, timestamp, formats = request
    if validation is not None:
        result = dataclasses.replace(result, validation=validation)
    if len(formats) < 2 or not alone(1.0) or not can_fork("MEDPLAN_RENDER_PARALLEL"):
        return _render(result, timestamp, formats)
    report.kept_view(result, timestamp)
    first, rest = beside(lambda: _render(result, timestamp, formats[:1]), lambda: _render(result, timestamp, formats[1:]), CHILD_TIMEOUT)
    return first | rest


def render_unchecked(result, formats: set[str] | None = None) -> dict[str, dict[str, str]]:
    """The files of the wanted formats that show the plan and none of its
    findings (the Helm charts and Terraform modules), by format: ``result``
    may be a plan just solved whose plan-stage rules are still running (see
    :func:`~planner.pipeline.plan`), and :func:`iter_plan_files` takes them
    as ``rendered``."""
    wanted, _ = _wanted(formats)
    return _render(result, None, [f for f in _HERE_FIRST if f in wanted])


def iter_plan_files(
    result, *, timestamp: str | None = None, formats: set[str] | None = None, meanwhile: Callable[[], None] | None = None,
    reports: ReportCopy | None = None, rendered: dict[str, dict[str, str]] | None = None,
) -> Iterator[tuple[str, dict[str, str]]]:
    """(format, its files by relative path) for each wanted format, each as soon as it is rendered.

    The Helm charts and Terraform modules come first, so that a writer can
    store their files while the rest is rendered. ``meanwhile()`` is called
    once the formats rendered here are done, before this process waits for
    those of the forked copy (without a copy, after every format).
    ``reports`` is a copy started for this result already (it is closed here);
    ``rendered``, formats rendered already (:func:`render_unchecked`).
    """
    rendered = rendered or {}
    wanted, away = _wanted(formats)
    copy = None
    try:
        copy = reports if reports is not None else start_reports(result, formats)
        if copy is not None:
            copy.render(result, timestamp, away)
        started = time.monotonic()
        here = [f for f in wanted if copy is None or f not in _AWAY]
        for fmt in [f for f in _HERE_FIRST if f in here] + [f for f in here if f not in _HERE_FIRST]:
            yield fmt, rendered[fmt] if fmt in rendered else _render(result, timestamp, [fmt])[fmt]
        if meanwhile is not None:
            meanwhile()
        if copy is not None:
            found = copy.files(timeout=max(CHILD_TIMEOUT, 4 * (time.monotonic() - started)))
            if found is None:
                found = _render(result, timestamp, away)
            for fmt in away:
                yield fmt, found[fmt]
    finally:
        if copy is not None:
            copy.close()


def _render(result, timestamp: str | None, formats: list[str]) -> dict[str, dict[str, str]]:
    """The files of each of ``formats``."""
    out: dict[str, dict[str, str]] = {}
    for fmt in formats:
        if fmt == "json":
            from planner.render.planjson import render_plan_json

            out[fmt] = {"plan.json": render_plan_json(result)}
        elif fmt == "sarif":
            from planner.render.validation import to_sarif

            out[fmt] = {"findings.sarif": to_sarif(result.validation)}
        elif fmt == "md":
            from planner.render import report

            out[fmt] = {"report.md": report.render_markdown(result, timestamp=timestamp)}
        elif fmt == "html":
            from planner.render import report

            out[fmt] = {"report.html": report.render_html(result, timestamp=timestamp)}
        elif fmt == "oscal":
            from planner.render.oscal import render_oscal

            out[fmt] = {"oscal/assessment-results.json": render_oscal(result, timestamp=timestamp)}
        elif fmt == "helm":
            from planner.render.helm import render_helm

            out[fmt] = render_helm(result)
        elif fmt == "terraform":
            from planner.render.terraform import render_terraform

            out[fmt] = render_terraform(result)
    return out


def _wanted(formats: set[str] | None) -> tuple[list[str], list[str]]:
    """The formats asked for (all if None), in order, and those of them a forked copy renders."""
    wanted = [f for f in FORMATS if f in (formats or FORMATS)]
    return wanted, [f for f in wanted if f in _AWAY]


def _parallel(result, away: list[str]) -> bool:
    """Whether to render ``away`` in a forked process: a large plan, and a process that may fork."""
    return bool(away) and len(result.spec.workloads) >= PARALLEL_FROM_WORKLOADS and can_fork("MEDPLAN_RENDER_PARALLEL")
