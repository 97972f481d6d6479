"""The console command ends its process without freeing what it built: exit
codes, every line of output and the plan directory are as they would be
otherwise; library callers keep Python's usual behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planner import process
from tests.conftest import MINIMAL, child_pids

REPO = Path(__file__).resolve().parent.parent


def _medplan(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "planner.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_exit_codes_and_whole_output(tmp_path):
    passing = _medplan("validate", "examples/academic-medical-center/")
    assert passing.returncode == 0, passing.stderr
    assert passing.stdout.rstrip().splitlines()[-1].startswith("PASS:")
    spec = tmp_path / "spec.yaml"
    # Audit logging off at a site that stores PHI: a HIPAA finding.
    spec.write_text(MINIMAL.replace("audit_logging: true", "audit_logging: false"), encoding="utf-8")
    failing = _medplan("validate", str(spec))
    assert failing.returncode == 1
    assert failing.stdout.rstrip().splitlines()[-1].startswith("FAIL:")
    missing = _medplan("validate", str(tmp_path / "nowhere.yaml"))
    assert missing.returncode == 2 and "nowhere.yaml:1:1:" in missing.stderr and "Traceback" not in missing.stderr
    assert _medplan("--version").stdout.startswith("medplan ")


def test_plan_directory_is_complete(tmp_path):
    out = tmp_path / "plan"
    done = _medplan("plan", "examples/academic-medical-center/", "--out", str(out))
    assert done.returncode in (0, 1), done.stderr
    verified = _medplan("verify", str(out))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_closed_pipe_ends_quietly(tmp_path):
    env = os.environ | {"PYTHONPATH": str(REPO)}
    reader = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    writer = subprocess.run(
        [sys.executable, "-m", "planner.cli", "validate", "examples/academic-medical-center/", "--format", "json"],
        cwd=REPO, env=env, stdout=reader.stdin, stderr=subprocess.PIPE, text=True, timeout=300,
    )
    reader.stdin.close()
    reader.wait()
    assert "Traceback" not in writer.stderr


def test_library_callers_keep_nothing(monkeypatch):
    monkeypatch.setattr(process, "_kept", None)
    process.keep(object())
    assert process._kept is None
    process.keep_until_exit()
    kept = object()
    process.keep(kept)
    assert process._kept == [kept]


@pytest.fixture
def may_fork():
    if not process.can_fork():
        pytest.skip("a server is a forked copy, on Linux, from a process with one thread")
    yield
    assert not child_pids()


def _count(state: list, request):
    if request == "fail":
        raise ValueError("asked to fail")
    state.append(request)
    return (os.getpid(), list(state))


def test_a_server_keeps_its_state_and_answers_in_order(may_fork):
    server = process.Server.start(list, _count)
    first, second = server.ask("a"), server.ask("b" * 200_000)  # the second is asked before the first answer is taken
    big = server.ask("c")
    pid, seen = server.answer(big)
    assert pid != os.getpid() and [len(x) for x in seen] == [1, 200_000, 1]
    assert server.answer(first)[1] == ["a"] and len(server.answer(second)[1]) == 2
    server.stop()
    with pytest.raises(process.ServerLost):
        server.ask("d")


def _slow(state: list, request):
    if request == "sleep":
        time.sleep(2)
    state.append(request)
    return list(state)


def test_a_post_does_not_wait_for_the_answers_to_posts_before_it(may_fork):
    server = process.Server.start(list, _slow)
    first = server.post("sleep")
    server.post("b", timeout=1)  # fits in the pipe: sent while the copy sleeps
    assert server.answer(server.ask("c")) == ["sleep", "b", "c"]
    assert server.answer(first) == ["sleep"]
    server.ask("sleep")
    with pytest.raises(process.ServerLost):  # after an ask, the next request waits for its answer
        server.post("d", timeout=0.5)
    assert not child_pids()


def _slow_setup() -> list:
    time.sleep(3)
    return []


@pytest.mark.parametrize("read_ahead", [True, False])
def test_a_server_reading_ahead_takes_a_large_request_while_it_sets_up(may_fork, read_ahead):
    server = process.Server.start(_slow_setup, _count, read_ahead=read_ahead)
    request = "x" * 3_000_000  # more than any pipe holds
    if not read_ahead:
        with pytest.raises(process.ServerLost):  # waits for the copy to finish setting up
            server.ask(request, timeout=1)
        assert not child_pids()
        return
    ticket = server.ask(request, timeout=1)
    assert [len(x) for x in server.answer(ticket)[1]] == [3_000_000]
    assert server.answer(server.ask("y"))[1][1] == "y"
    server.stop()
    assert not child_pids()


def test_a_failing_post_is_seen_at_the_next_answer(may_fork):
    server = process.Server.start(list, _count)
    server.post("fail")
    with pytest.raises(process.ServerLost, match="asked to fail"):
        server.answer(server.ask("a"))
    assert not child_pids()


def test_a_failing_server_is_lost_and_gone(may_fork):
    server = process.Server.start(list, _count)
    server.answer(server.ask("a"))
    with pytest.raises(process.ServerLost, match="asked to fail"):
        server.answer(server.ask("fail"))
    assert not child_pids()
    broken = process.Server.start(lambda: 1 / 0, _count)
    with pytest.raises(process.ServerLost):
        broken.answer(broken.ask("a"))
    assert not child_pids()


def _big() -> bytes:
    return b"x" * 300_000_000  # pages enough that the kernel takes a moment to free them


def test_a_keeping_process_collects_ended_copies_later(may_fork, monkeypatch):
    # Keeping everything until it exits, the console process goes on while a
    # large copy is freed, and collects it at its next fork (or its exit).
    monkeypatch.setattr(process, "_kept", [])
    monkeypatch.setattr(process, "_ending", [])
    assert process.Forked.start(lambda: 7).result(timeout=30) == 7  # a status it did not wait for, or 0
    _collected()
    big = process.Forked.start(_big)
    time.sleep(0.5)
    pid = big.pid
    big.close()
    assert big.pid is None and set(process._ending) <= {pid}
    _collected()
    failing = process.Forked.start(lambda: 1 / 0)
    assert failing.result(timeout=30) is None  # wrote nothing: whatever its status, no result
    _collected()


def _collected() -> None:
    """Wait until every copy left ending is collected (as the next fork does)."""
    deadline = time.monotonic() + 30
    while process._ending and time.monotonic() < deadline:
        time.sleep(0.05)
        process._collect_ended()
    assert not process._ending


def test_a_library_caller_collects_each_copy_at_once(may_fork, monkeypatch):
    monkeypatch.setattr(process, "_kept", None)
    big = process.Forked.start(_big)
    time.sleep(0.5)
    big.close()
    assert not process._ending and not child_pids()


def _leave_a_stuck_copy() -> int:
    return process.Forked.start(lambda: time.sleep(600)).pid


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_copy_of_a_copy_ends_with_it(may_fork):
    # A copy stopped with SIGKILL cannot stop copies of its own: the kernel does.
    inner = process.Forked.start(_leave_a_stuck_copy).result(timeout=30)
    assert isinstance(inner, int)
    deadline = time.monotonic() + 30
    while _running(inner) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(inner)


def test_no_server_without_forking(monkeypatch):
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    assert process.Server.start(list, _count) is None


def test_the_console_process_runs_numpy_on_one_thread_unless_told_otherwise():
    # OpenBLAS would start a spinning thread per core beside the forked copies.
    probe = (
        "import os; from planner.cli import tune_threads; tune_threads(); import numpy; "
        "print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | {"PYTHONPATH": str(REPO)}
    if not Path("/proc/self/task").is_dir():
        pytest.skip("counts threads in /proc")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["1", "1"], done.stderr
    told = subprocess.run([sys.executable, "-c", probe], env=env | {"OPENBLAS_NUM_THREADS": "2"}, capture_output=True, text=True, timeout=120)
    assert told.stdout.split()[0] == "2", told.stderr


def test_work_meanwhile_runs_in_a_thread_once_started_and_ends_before_the_caller_goes_on():
    import threading

    ran: list[str] = []
    beside = process.Meanwhile(lambda: ran.append(threading.current_thread().name) or "done")
    beside.start()
    beside.start()  # once only
    assert beside.end() == "done" and ran == ["medplan-meanwhile"]
    assert threading.active_count() == 1 and process.can_fork()

    never_started = process.Meanwhile(lambda: ran.append(threading.current_thread().name) or "here")
    assert never_started.end() == "here" and ran[-1] == threading.current_thread().name
    assert process.Meanwhile(None).end() is None


def test_what_work_meanwhile_raised_is_raised_where_it_ends_or_dropped_on_the_way_out_of_an_error():
    def fails() -> None:
        raise ValueError("in the thread")

    beside = process.Meanwhile(fails)
    beside.start()
    with pytest.raises(ValueError, match="in the thread"):
        beside.end()
    dropped = process.Meanwhile(fails)
    dropped.start()
    dropped.join()  # waits, raises nothing
    assert not dropped._thread.is_alive()
