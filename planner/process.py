"""What a short-lived ``medplan`` process may skip (freeing what it built)
and what it may hand to a second core: one piece of work in a forked copy of
itself (:class:`Forked`), or a copy that keeps state and answers requests
about it (:class:`Server`).

A large spec is millions of Python objects. Freeing them one by one when a
run's intermediate results go out of scope, and again at exit, takes longer
than some whole stages (0.4 s for a 10,000-workload run's document and
facts, 0.3 s more for its spec at exit). The console entry point
(:func:`planner.cli.run`) turns keeping on and ends the process without
tearing the heap down; a library caller, a test run or a server keeps
Python's usual behaviour. Likewise a forked copy that has ended is not
waited for while the kernel frees its memory (0.02-0.06 s for a large
one), but collected later (:func:`_collect`).
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
from collections.abc import Callable
from typing import NoReturn

_kept: list | None = None
_ending: list[int] = []  # copies ended or killed but not yet collected (see _collect)
_in_copy = False  # whether this process is a forked copy (see _run_child)


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


def alone(timeout: float) -> bool:
    """Whether this process's other threads, if any, end within ``timeout``
    seconds (as a server's request reader does once its requests end, see
    :meth:`Server.end_requests`), so that it may fork (:func:`can_fork`)."""
    deadline = time.monotonic() + timeout
    while threading.active_count() > 1:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def beside(here, away, at_least: float) -> tuple:
    """``(here(), away())``, ``away()`` run by a forked copy of this process
    (on the other core) while ``here()`` runs here. Where no copy can be
    made, or it fails (or ``away()`` gives None), or it takes longer than
    ``at_least`` seconds and four times as long as ``here()``, ``away()``
    runs here after all, with the same result. The caller decides whether
    this process may fork (:func:`can_fork`)."""
    forked = Forked.start(away)
    try:
        started = time.monotonic()
        ours = here()
        found = forked.result(timeout=max(at_least, 4 * (time.monotonic() - started))) if forked is not None else None
    finally:
        if forked is not None:
            forked.close()
    return ours, (found if found is not None else away())


class Meanwhile:
    """Python work to run in a thread of this process while native code that
    lets go of the GIL runs (HiGHS, in the solver), so that the two overlap
    rather than take turns.

    :meth:`start` starts the thread (the first call only). :meth:`end` waits
    for it and raises what the work raised; if the work was never started,
    it runs it here. This process may not fork (:func:`can_fork`) between
    the two."""

    def __init__(self, work: Callable[[], object] | None) -> None:
        self.work = work
        self._thread: threading.Thread | None = None
        self._ended: list[tuple[bool, object]] = []

    def start(self) -> None:
        if self.work is None or self._thread is not None:
            return

        def run() -> None:
            try:
                self._ended.append((True, self.work()))
            except BaseException as exc:  # noqa: BLE001 - raised by end()
                self._ended.append((False, exc))

        self._thread = threading.Thread(target=run, name="medplan-meanwhile", daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait for a started thread to end, dropping what it raised (on the way out of an error)."""
        if self._thread is not None:
            self._thread.join()

    def end(self) -> object:
        if self.work is None:
            return None
        if self._thread is None:
            return self.work()
        self._thread.join()
        ok, value = self._ended[0]
        if not ok:
            raise value  # type: ignore[misc]
        return value


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
        _collect_ended()
        try:
            read_fd, write_fd = os.pipe()
        except OSError:
            return None
        gc.freeze()
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        parent = os.getpid() if _in_copy else None
        pid = -1
        try:
            pid = os.fork()
            if pid == 0:
                _run_child(work, read_fd, write_fd, held, parent)  # does not return
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
        deadline = _deadline(timeout)
        chunks = []
        while True:
            try:
                _wait(self.read_fd, select.POLLIN, deadline)
            except TimeoutError:
                return None
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        status = _collect(self.pid)
        self.pid = None
        if status not in (0, None):  # None: still ending, after writing all it had (it writes nothing if it fails)
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
            _collect(self.pid)
            self.pid = None
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None
        gc.unfreeze()


def _collect(pid: int) -> int | None:
    """The exit status of copy ``pid``, which has ended or been killed, once
    collected. A process that keeps everything until it exits (see
    :func:`keep_until_exit`) does not wait while the kernel frees a large
    copy's memory, which it does on the copy's own core: a copy still ending
    is collected by a later :meth:`Forked.start` or by this process's exit,
    and its status is None."""
    if _kept is None:
        return os.waitpid(pid, 0)[1]
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        return status
    _ending.append(pid)
    return None


def _collect_ended() -> None:
    """Collect the copies left ending by :func:`_collect` that have ended since."""
    for pid in list(_ending):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _ending.remove(pid)


def _run_child(work, read_fd: int, write_fd: int, held, parent: int | None) -> None:
    """The copy's side of :meth:`Forked.start`; ``parent``: the copy that
    forked this one, if a copy did."""
    global _in_copy
    _in_copy = True
    status = 1
    try:
        if parent is not None:
            _die_with(parent)
        os.close(read_fd)
        gc.disable()
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        _write_all(write_fd, pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL))
        status = 0
    except BaseException:  # noqa: BLE001 - the parent does the work itself
        pass
    finally:
        os._exit(status)


def _die_with(parent: int) -> None:
    """Have the kernel kill this copy when ``parent``, the copy that forked
    it, ends: a copy stopped with SIGKILL cannot stop copies of its own."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl here: the copy ends when its work does
        return
    if os.getppid() != parent:  # it ended before that took effect
        os._exit(1)


class ServerLost(Exception):
    """The forked copy behind a :class:`Server` ended or failed: its state is gone."""


class Server:
    """A forked copy that keeps state of its own and answers requests about
    it: ``state = setup()`` runs in the copy, then ``answer(state, request)``
    for each request, in order. Requests and answers go pickled through
    pipes, each after its length.

    At most one request with an answer of any size is outstanding: the next
    request waits until its answer is taken in, so neither process can block
    writing to a full pipe while the other does too. A request whose answer
    is a few bytes may be sent with :meth:`post`, and the next one does not
    wait for that: the pipe has room for many such answers. Sending and
    answering may be given a time limit. The copy ends when stopped, when
    this process ends (its end of the request pipe closes), when ``setup``
    or ``answer`` raises, or when a time limit passes; what the copy held is
    then lost, and asking for an answer raises :class:`ServerLost`.
    """

    def __init__(self, forked: Forked, requests: int, answers: int):
        self.forked = forked
        self.requests: int | None = requests
        self.answers: int | None = answers
        self._asked = 0  # tickets handed out
        self._read = 0  # answers taken in
        self._last_ask = -1  # ticket of the last request sent with ask
        self._kept: dict[int, object] = {}

    @classmethod
    def start(cls, setup, answer, *, read_ahead: bool = False) -> Server | None:
        """The server, or None where this process may not fork (:func:`can_fork`) or the fork failed.

        The request pipe holds :data:`PIPE_BYTES`, so a request of that size
        is sent without waiting for the copy to take it. ``read_ahead``: the
        copy takes requests in (a thread) while ``setup`` and ``answer`` run,
        so that sending a larger request does not wait for them either."""
        if not can_fork():
            return None
        pipes = [*os.pipe(), *os.pipe()]  # request read, request write, answer read, answer write
        _widen(pipes[1])
        forked = Forked.start(lambda: _answer_requests(setup, answer, *pipes, read_ahead=read_ahead))
        os.close(pipes[0])
        os.close(pipes[3])
        if forked is None:
            os.close(pipes[1])
            os.close(pipes[2])
            return None
        os.set_blocking(pipes[1], False)  # writes wait in poll, which a time limit can end
        return cls(forked, pipes[1], pipes[2])

    def ask(self, request, timeout: float | None = None) -> int:
        """Send ``request`` (within ``timeout`` seconds); the ticket to collect its answer with."""
        self._last_ask = self.post(request, timeout)
        return self._last_ask

    def post(self, request, timeout: float | None = None) -> int:
        """Send ``request``, whose answer is a few bytes (within ``timeout``
        seconds); the ticket to collect its answer with. Sending waits for
        the answer to the last request sent with :meth:`ask`, not for those
        of posts; a large request also waits until the copy reads it."""
        deadline = _deadline(timeout)
        while self._read <= self._last_ask:
            self._take(deadline)
        if self.requests is None:
            raise ServerLost("the server was stopped")
        try:
            _send_frame(self.requests, request, deadline)
        except OSError as exc:  # the copy has ended, or takes nothing (TimeoutError)
            self.stop()
            raise ServerLost(str(exc) or type(exc).__name__) from exc
        self._asked += 1
        return self._asked - 1

    def end_requests(self) -> None:
        """Send no more requests: the copy answers those sent, and then ends
        (its request reader, if any, at once, so the copy may fork meanwhile)."""
        if self.requests is not None:
            os.close(self.requests)
            self.requests = None

    def answer(self, ticket: int, timeout: float | None = None):
        """The answer to the request of ``ticket`` (each is collected once), within ``timeout`` seconds."""
        deadline = _deadline(timeout)
        while self._read <= ticket:
            self._take(deadline)
        return self._kept.pop(ticket)

    def _take(self, deadline: float | None) -> None:
        """Take in the next answer, kept under its ticket."""
        ticket = self._read
        self._read += 1
        try:
            if self.answers is None:
                raise ServerLost("the server was stopped")
            ok, value = _read_frame(self.answers, deadline)
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


def _answer_requests(
    setup, answer, request_read: int, request_write: int, answer_read: int, answer_write: int, read_ahead: bool = False
) -> None:
    """In a server's copy: set up, then answer each request until the requests end."""
    os.close(request_write)  # or no end of file would come
    os.close(answer_read)
    take = _reader(request_read) if read_ahead else lambda: _read_frame(request_read)
    state = setup()
    while True:
        try:
            request = take()
        except EOFError:
            return
        try:
            reply = (True, answer(state, request))
        except Exception as exc:  # noqa: BLE001 - said to the parent, which then does without the server
            _send_frame(answer_write, (False, f"{type(exc).__name__}: {exc}"))
            raise
        _send_frame(answer_write, reply)


# A pipe holds 64 KiB unless widened: a request of megabytes then takes one
# read per 64 KiB, and a reading thread waits for the interpreter for each.
PIPE_BYTES = 1 << 20


def _widen(fd: int) -> None:
    """Let pipe ``fd`` hold :data:`PIPE_BYTES` (or as much as the system allows)."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):  # not Linux, or a lower limit: the default size works too
        pass


def _reader(fd: int):
    """A function that returns the next request from ``fd``, each read by a thread as soon as it comes."""
    import queue

    frames: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:
        while True:
            try:
                frames.put((True, _read_frame(fd)))
            except BaseException as exc:  # noqa: BLE001 - the end of the requests, or a broken one: raised where taken
                frames.put((False, exc))
                return

    threading.Thread(target=read, daemon=True).start()

    def take():
        ok, value = frames.get()
        if not ok:
            raise value
        return value

    return take


_LENGTH = struct.Struct("<Q")


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _wait(fd: int, event: int, deadline: float | None) -> None:
    """Wait until ``fd`` is ready for ``event``; TimeoutError once ``deadline`` (monotonic) passes."""
    ready = select.poll()
    ready.register(fd, event)
    remaining = None if deadline is None else (deadline - time.monotonic()) * 1000
    if (remaining is not None and remaining <= 0) or not ready.poll(remaining):
        raise TimeoutError("the other process did not take part in time")


def _write_all(fd: int, data: bytes, deadline: float | None = None) -> None:
    """Write all of ``data`` to pipe ``fd`` as its reader takes it, by ``deadline`` if given."""
    view = memoryview(data)
    while view:
        _wait(fd, select.POLLOUT, deadline)
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            continue


def _send_frame(fd: int, value, deadline: float | None = None) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    _write_all(fd, _LENGTH.pack(len(data)) + data, deadline)


def _read_frame(fd: int, deadline: float | None = None):
    (size,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size, deadline))
    return pickle.loads(_read_exactly(fd, size, deadline))


def _read_exactly(fd: int, size: int, deadline: float | None = None) -> bytes:
    chunks, left = [], size
    while left:
        _wait(fd, select.POLLIN, deadline)
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other process ended")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
