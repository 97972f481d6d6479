"""What a short-lived ``medplan`` process may skip (freeing what it built)
and what it may hand to a second core: one piece of work in a forked copy of
itself (:class:`Forked`, :class:`Worker`), or a copy that keeps state and
answers requests about it (:class:`Server`).

A large spec is millions of Python objects. Freeing them one by one when a
run's intermediate results go out of scope, and again at exit, takes longer
than some whole stages (0.4 s for a 10,000-workload run's document and
facts, 0.3 s more for its spec at exit). The console entry point
(:func:`planner.cli.run`) turns keeping on and ends the process without
tearing the heap down; a library caller, a test run or a server keeps
Python's usual behaviour.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
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


def can_fork(switch: str | None = None) -> bool:
    """Whether work may go to a forked copy of this process: on Linux, from a
    process with no other Python thread (a fork copies only the thread that
    forks), unless ``MEDPLAN_PARALLEL=0`` or the environment variable
    ``switch`` is "0"."""
    return (
        os.environ.get("MEDPLAN_PARALLEL", "1") != "0"
        and (switch is None or os.environ.get(switch, "1") != "0")
        and sys.platform.startswith("linux")
        and hasattr(os, "fork")
        and threading.active_count() == 1
    )


class Forked:
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
    def start(cls, work) -> Forked | None:
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
    except BaseException:  # noqa: BLE001 - the parent does the work itself
        pass
    finally:
        os._exit(status)


class Worker:
    """A forked copy that gets ready now (``ready()``: imports, say) and then
    does one job sent to it later (``work(job)``), for a result collected as
    from :class:`Forked`. Without a job it ends when it is stopped or when
    this process ends (its end of the job pipe closes)."""

    def __init__(self, forked: Forked, write_fd: int):
        self.forked = forked
        self.write_fd: int | None = write_fd

    @classmethod
    def start(cls, ready, work) -> Worker | None:
        """The worker, or None where this process may not fork (:func:`can_fork`) or the fork failed."""
        if not can_fork():
            return None
        read_fd, write_fd = os.pipe()
        forked = Forked.start(lambda: _serve(ready, work, read_fd, write_fd))
        os.close(read_fd)
        if forked is None:
            os.close(write_fd)
            return None
        return cls(forked, write_fd)

    def send(self, job, timeout: float) -> Forked | None:
        """Send the one job: the copy to collect its result from, or None (the copy
        stopped) if it ended or took no job within ``timeout`` seconds."""
        write_fd, self.write_fd = self.write_fd, None
        try:
            _write_within(write_fd, pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL), timeout)
        except OSError:  # TimeoutError included
            self.forked.close()
            return None
        finally:
            os.close(write_fd)
        return self.forked

    def stop(self) -> None:
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None
        self.forked.close()


class ServerLost(Exception):
    """The forked copy behind a :class:`Server` ended or failed: its state is gone."""


class Server:
    """A forked copy that keeps state of its own and answers requests about
    it: ``state = setup()`` runs in the copy, then ``answer(state, request)``
    for each request, in order. Requests and answers go pickled through
    pipes, each after its length.

    At most one request is outstanding: :meth:`ask` first takes in the answer
    to the one before, so neither process can block writing to a full pipe
    while the other does too. The copy ends when stopped, when this process
    ends (its end of the request pipe closes), or when ``setup`` or
    ``answer`` raises; what the copy held is then lost, and asking for an
    answer raises :class:`ServerLost`.
    """

    def __init__(self, forked: Forked, requests: int, answers: int):
        self.forked = forked
        self.requests: int | None = requests
        self.answers: int | None = answers
        self._asked = 0  # tickets handed out
        self._read = 0  # answers taken in
        self._kept: dict[int, object] = {}

    @classmethod
    def start(cls, setup, answer) -> Server | None:
        """The server, or None where this process may not fork (:func:`can_fork`) or the fork failed."""
        if not can_fork():
            return None
        pipes = [*os.pipe(), *os.pipe()]  # request read, request write, answer read, answer write
        forked = Forked.start(lambda: _answer_requests(setup, answer, *pipes))
        os.close(pipes[0])
        os.close(pipes[3])
        if forked is None:
            os.close(pipes[1])
            os.close(pipes[2])
            return None
        return cls(forked, pipes[1], pipes[2])

    def ask(self, request) -> int:
        """Send ``request``; the ticket to collect its answer with."""
        while self._read < self._asked:
            self._take()
        if self.requests is None:
            raise ServerLost("the server was stopped")
        try:
            _send_frame(self.requests, request)
        except OSError as exc:  # the copy has ended
            self.stop()
            raise ServerLost(str(exc)) from exc
        self._asked += 1
        return self._asked - 1

    def answer(self, ticket: int):
        """The answer to the request of ``ticket`` (each is collected once)."""
        while self._read <= ticket:
            self._take()
        return self._kept.pop(ticket)

    def _take(self) -> None:
        """Take in the next answer, kept under its ticket."""
        ticket = self._read
        self._read += 1
        try:
            if self.answers is None:
                raise ServerLost("the server was stopped")
            ok, value = _read_frame(self.answers)
        except Exception as exc:  # noqa: BLE001 - an answer that cannot be read: the copy is as good as gone
            self.stop()
            raise ServerLost(str(exc) or type(exc).__name__) from exc
        if not ok:
            self.stop()
            raise ServerLost(value)
        self._kept[ticket] = value

    def stop(self) -> None:
        for name in ("requests", "answers"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)
        self.forked.close()


def _answer_requests(setup, answer, request_read: int, request_write: int, answer_read: int, answer_write: int) -> None:
    """In a server's copy: set up, then answer each request until the requests end."""
    os.close(request_write)  # or no end of file would come
    os.close(answer_read)
    state = setup()
    while True:
        try:
            request = _read_frame(request_read)
        except EOFError:
            return
        try:
            reply = (True, answer(state, request))
        except Exception as exc:  # noqa: BLE001 - said to the parent, which then does without the server
            _send_frame(answer_write, (False, f"{type(exc).__name__}: {exc}"))
            raise
        _send_frame(answer_write, reply)


_LENGTH = struct.Struct("<Q")


def _send_frame(fd: int, value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_frame(fd: int):
    (size,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size))
    return pickle.loads(_read_exactly(fd, size))


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other process ended")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _serve(ready, work, read_fd: int, write_fd: int):
    """In a worker: get ready, wait for the job, do it."""
    os.close(write_fd)  # or no end of file would come if no job is ever sent
    ready()
    with os.fdopen(read_fd, "rb") as jobs:
        job = pickle.load(jobs)  # EOFError, ending the copy, when none comes
    return work(job)


def _write_within(fd: int, data: bytes, timeout: float) -> None:
    """Write all of ``data`` to pipe ``fd`` as its reader takes it; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    os.set_blocking(fd, False)
    ready = select.poll()
    ready.register(fd, select.POLLOUT)
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not ready.poll(remaining * 1000):
            raise TimeoutError("the worker takes no job")
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue
