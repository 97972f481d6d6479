"""The copies a command on large spec files starts before it loads them:
the reader of the second part of the largest file
(:class:`~planner.spec.yamlsource.TailRead`), the route worker
(:func:`planner.graph.start_route_worker`) and, for ``medplan validate``,
the reader of the policies' input
(:func:`planner.policy.engine.start_input_helper`).

The command line starts them first thing (:func:`start`), before it
imports the models, the policies and the solver (about a third of a second):
the copies are made while this process is small and holds no spec, so
making them is cheap and nothing this process later builds is shared with
them; then this process reads the first part of the file and imports while
the second part is read on the other core. This module imports nothing
heavy for that reason. :func:`helpers` hands what was started to loading
the spec, or starts it then for a caller that did not start it early.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from planner.errors import InputError

# From this many bytes of spec files, a site graph large enough for a batch
# of routes is likely: a worker starts importing scipy while they are read.
ROUTE_WORKER_FROM_BYTES = 4_000_000
# From this many bytes, a file is read in two parts at once.
TAIL_READ_FROM_BYTES = 2_000_000
# The share of the lines this process reads when it also imports its modules
# meanwhile (started early): on the 10,000-workload spec, the copy's part is
# mostly ready within a few hundredths of a second of this process's imports.
SPLIT_WHILE_IMPORTING = 0.5

class _Started(NamedTuple):
    """What start() started: the files as listed, the tail reads by path, and the paths it was given."""

    files: list[tuple[Path, str]]
    tails: dict[Path, object]
    paths: list[str]


_early: _Started | None = None


def start(paths: list[str], input_helper: bool = False) -> None:
    """Start the copies for the spec files and directories ``paths``, and
    read the first part of the largest file here, before the heavy modules
    load; nothing where the paths cannot be listed (loading says why) or
    the files are small. :func:`helpers` takes what was started."""
    global _early
    from planner.spec.yamlsource import expand_paths

    stop()
    try:
        files = expand_paths(list(paths))
    except InputError:
        return
    _early = _Started(files, _start(files, input_helper, SPLIT_WHILE_IMPORTING), list(paths))


def listed(paths: list[str]) -> list[tuple[Path, str]]:
    """:func:`~planner.spec.yamlsource.expand_paths` of ``paths``: as
    :func:`start` listed them if it was given the same paths (a directory of
    thousands of files is not walked twice)."""
    from planner.spec.yamlsource import expand_paths

    if _early is not None and _early.paths == list(paths):
        return _early.files
    return expand_paths(list(paths))


def stop() -> None:
    """Stop what :func:`start` started and no load took."""
    from planner.graph import stop_route_worker
    from planner.policy.engine import stop_input_helper

    global _early
    early, _early = _early, None
    if early is not None:
        _close(early.tails)
        stop_route_worker()
        stop_input_helper()


@contextmanager
def helpers(files: list[tuple[Path, str]], input_helper: bool = False):
    """The copies for ``files`` (as :func:`~planner.spec.yamlsource.expand_paths`
    lists them): those :func:`start` started for the same files, or started
    now. Yields the tail reads by path for
    :func:`~planner.spec.loader.load_files`; stops what is left unused."""
    from planner.graph import stop_route_worker
    from planner.policy.engine import start_input_helper, stop_input_helper

    global _early
    if _early is not None and _early.files == files:
        tails, _early = _early.tails, None
        if input_helper:
            start_input_helper()  # if start() was not asked for one
    else:
        stop()  # what was started for other files
        tails = _start(files, input_helper)
    try:
        yield tails
    finally:
        _close(tails)
        stop_route_worker()
        stop_input_helper()


def _start(files: list[tuple[Path, str]], input_helper: bool, share: float | None = None) -> dict:
    """Start the copies for large ``files`` and read the first part of a
    file read in two here; the tail reads by path."""
    from planner.graph import start_route_worker
    from planner.policy.engine import start_input_helper
    from planner.spec.yamlsource import TailRead

    tails: dict = {}
    sizes = {path: _file_bytes(path) for path, _ in files}
    if sum(sizes.values()) < ROUTE_WORKER_FROM_BYTES:
        return tails
    path = max(sizes, key=sizes.__getitem__)
    tail = TailRead.start(path, light=True, share=share) if sizes[path] >= TAIL_READ_FROM_BYTES else None
    start_route_worker(wait_for=tail.done if tail is not None else None)
    if input_helper:
        start_input_helper()
    if tail is not None:
        tails[path] = tail
        tail.read_first()  # every copy is made: now this process's part
    return tails


def _close(tails: dict) -> None:
    for tail in tails.values():
        tail.close()


def _file_bytes(path: Path) -> int:
    """The size of a spec file (0 if it cannot be read: loading says why)."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0
