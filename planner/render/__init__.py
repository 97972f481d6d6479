"""Renderers: pure functions from a validation or plan result to files.

A large plan's two reports (Markdown and HTML, both printed from one view of
the whole plan) are rendered in a forked copy of this process while this one
renders the other formats, the Helm charts and Terraform first: their
thousands of files can be written as they come (see :func:`iter_plan_files`).
The two halves take about as long, so with two cores the files of thousands
of sites are ready in little more than half the time. The files are the same
either way; if the copy cannot be made, fails or hangs, its formats are
rendered here. ``MEDPLAN_RENDER_PARALLEL=0`` turns this off.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import sys
import threading
import time
from collections.abc import Iterator

# Every format, in the order its files are listed.
FORMATS = ("json", "sarif", "md", "html", "oscal", "helm", "terraform")
# Rendered in the forked copy; the rest are rendered here.
_AWAY = frozenset({"md", "html"})
# Rendered here before the others: the formats with the most files.
_HERE_FIRST = ("helm", "terraform")
# From this many workloads, rendering takes long enough to be worth a second process.
PARALLEL_FROM_WORKLOADS = 2000
# How long the copy may take, at least, before its formats are rendered here.
CHILD_TIMEOUT = 60.0


def render_plan_files(result, *, timestamp: str | None = None, formats: set[str] | None = None) -> dict[str, str]:
    """Every file of a plan directory, by relative path."""
    rendered = dict(iter_plan_files(result, timestamp=timestamp, formats=formats))
    return {name: text for fmt in FORMATS if fmt in rendered for name, text in rendered[fmt].items()}


def iter_plan_files(result, *, timestamp: str | None = None, formats: set[str] | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """(format, its files by relative path) for each wanted format, each as soon as it is rendered.

    The Helm charts and Terraform modules come first, so that a writer can
    store their files while the rest is rendered.
    """
    wanted = [f for f in FORMATS if f in (formats or FORMATS)]
    away = [f for f in wanted if f in _AWAY]
    child = None
    if away != wanted and _parallel(result, away):
        from planner.render import report  # noqa: F401 - imported once, before the fork, for both processes

        child = _Forked.start(lambda: _render(result, timestamp, away))
    try:
        started = time.monotonic()
        here = [f for f in wanted if child is None or f not in _AWAY]
        for fmt in [f for f in _HERE_FIRST if f in here] + [f for f in here if f not in _HERE_FIRST]:
            yield fmt, _render(result, timestamp, [fmt])[fmt]
        if child is not None:
            found = child.result(timeout=max(CHILD_TIMEOUT, 4 * (time.monotonic() - started)))
            if found is None:
                found = _render(result, timestamp, away)
            for fmt in away:
                yield fmt, found[fmt]
    finally:
        if child is not None:
            child.close()


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


def _parallel(result, away: list[str]) -> bool:
    """Whether to render ``away`` in a forked process: a large plan, on Linux, from a process
    with no other Python thread (a fork copies only the thread that forks)."""
    return (
        bool(away)
        and os.environ.get("MEDPLAN_RENDER_PARALLEL", "1") != "0"
        and sys.platform.startswith("linux")
        and hasattr(os, "fork")
        and threading.active_count() == 1
        and len(result.spec.workloads) >= PARALLEL_FROM_WORKLOADS
    )


class _Forked:
    """``work()`` run in a forked copy of this process; its result comes back pickled through a pipe.

    The copy shares the parent's memory until either writes to it: the
    cyclic collector is frozen in the parent and off in the copy, so that
    neither walks (and copies) every object of the plan. The copy ends with
    ``os._exit`` whatever happens, and never runs the parent's code past the
    fork; SIGINT is held back until it is inside that guard.
    """

    def __init__(self, pid: int, read_fd: int):
        self.pid: int | None = pid
        self.read_fd: int | None = read_fd

    @classmethod
    def start(cls, work) -> _Forked | None:
        """Fork and run ``work`` in the copy; None when no process can be made."""
        try:
            read_fd, write_fd = os.pipe()
        except OSError:
            return None
        gc.freeze()
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        pid = -1
        try:
            pid = os.fork()
            if pid == 0:
                _run_child(work, read_fd, write_fd, held)  # does not return
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            gc.unfreeze()
            return None
        finally:
            if pid != 0:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        os.close(write_fd)
        return cls(pid, read_fd)

    def result(self, timeout: float):
        """What ``work()`` returned, or None if the copy failed or took longer than ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        waiting = select.poll()
        waiting.register(self.read_fd, select.POLLIN)
        chunks = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not waiting.poll(remaining * 1000):
                return None
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if status != 0:
            return None
        try:
            return pickle.loads(b"".join(chunks))
        except Exception:
            return None

    def close(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = None
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None
        gc.unfreeze()


def _run_child(work, read_fd: int, write_fd: int, held) -> None:
    status = 1
    try:
        os.close(read_fd)
        gc.disable()
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        data = memoryview(pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL))
        while data:
            data = data[os.write(write_fd, data) :]
        status = 0
    except BaseException:  # noqa: BLE001 - the parent renders these formats itself
        pass
    finally:
        os._exit(status)
