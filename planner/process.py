"""What a short-lived ``medplan`` process may skip: freeing what it built.

A large spec is millions of Python objects. Freeing them one by one when a
run's intermediate results go out of scope, and again at exit, takes longer
than some whole stages (0.4 s for a 10,000-workload run's document and
facts, 0.3 s more for its spec at exit). The console entry point
(:func:`planner.cli.run`) turns keeping on and ends the process without
tearing the heap down; a library caller, a test run or a server keeps
Python's usual behaviour.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

_kept: list | None = None


def keep_until_exit() -> None:
    """From now on, :func:`keep` holds objects until the process ends."""
    global _kept
    if _kept is None:
        _kept = []


def keep(obj: object) -> None:
    """Hold ``obj`` until the process ends, if :func:`keep_until_exit` was called."""
    if _kept is not None:
        _kept.append(obj)


def exit_now(code: object) -> NoReturn:
    """Flush the console streams and end the process with ``code`` (as ``sys.exit`` takes it), freeing nothing."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            pass
    os._exit(status & 0xFF)
