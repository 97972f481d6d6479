#!/usr/bin/env python3
"""Scale benchmark: time and peak memory of every pipeline stage on
generated specs, the plan's gap, and growth between sizes.

    python bench/run.py                     # 10x100, 40x400, 100x1000, 300x3000, 1000x10000
    python bench/run.py --sizes 10x100 100x1000 --seed 3

Each size runs in a fresh process so peak memory (its VmHWM) belongs to it.
Besides the stages (run one after another in that process), the table shows
the commands a user runs, end to end in their own process: `medplan
validate` and `medplan plan --out`, each run --runs times (3) in turn, the
fastest run and the median shown (a shared host's speed varies by a third
from minute to minute), and the larger peak memory of one more run of each
(PSS of the command and its children; the timed runs are not sampled, as
sampling slows them). Every file stays until the benchmark ends:
on a disk that discards deleted blocks, creating thousands of files right
after deleting thousands stalls for seconds. Growth is the
stage total over the previous size's; the last line gives the plan
command's growth from 1,000 to 10,000 workloads when both sizes ran.
When opa-golib-python-bindings is installed, the real OPA v1.20 engine is
timed on the same validate-stage policies and input document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = ["10x100", "40x400", "100x1000", "300x3000", "1000x10000"]
STAGES = ["load", "validate", "placement", "admissibility", "solve", "plan-stage", "render"]


def _peak_mb() -> float:
    """This process's peak resident memory so far. Linux's VmHWM where there
    is one: ``ru_maxrss`` of a process started by another also counts its
    parent's peak (the bench's own, once it has touched memory to time the
    host)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(sites: int, workloads: int, seed: int, runs: int = 3, work: str | None = None) -> dict:
    """Run the pipeline stage by stage on one generated spec (in this process)."""
    sys.path.insert(0, str(REPO))
    from planner.cli import tune_gc, tune_threads

    tune_gc()  # as the command line does
    tune_threads()  # before numpy loads
    from planner.generate import generate_yaml
    from planner.pipeline import ValidateOptions, _finish, _placement, _start, plan_document
    from planner.policy.document import placement_document
    from planner.policy.evaluate import evaluate_stage
    from planner.render import render_plan_files
    from planner.solver import admissibility, solve
    from planner.spec.loader import load_spec

    times: dict[str, float] = {}
    peaks: dict[str, float] = {}

    def stage(name: str, started: float) -> None:
        times[name] = time.perf_counter() - started
        peaks[name] = _peak_mb()

    # Files stay until the whole benchmark ends (``work``): on a disk that
    # discards deleted blocks, creating files right after deleting thousands
    # stalls for seconds, which the next size's plan directories would time.
    with tempfile.TemporaryDirectory() if work is None else _kept_dir(work) as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(generate_yaml(sites, workloads, seed))
        t = time.perf_counter()
        spec = load_spec([path])
        stage("load", t)

        t = time.perf_counter()
        run = _start(spec, ValidateOptions())
        run.violations, _ = evaluate_stage(run.policies, "validate", run.document)
        stage("validate", t)

        t = time.perf_counter()
        pdoc, _, _ = placement_document(run.document)
        denials, errors = _placement(run.policies, pdoc, False)
        run.violations += errors
        stage("placement", t)

        t = time.perf_counter()
        adm = admissibility(spec, run.facts, denials)
        stage("admissibility", t)

        t = time.perf_counter()
        result_plan = solve(spec, run.facts, denials, adm)
        stage("solve", t)

        t = time.perf_counter()
        violations, _ = evaluate_stage(run.policies, "plan", plan_document(result_plan, run.document))
        run.violations += violations
        validation = _finish(run, {"validate", "placement", "plan"})
        stage("plan-stage", t)

        from planner.pipeline import PlanResult

        t = time.perf_counter()
        files = render_plan_files(PlanResult(spec=spec, validation=validation, plan=result_plan, facts=run.facts, denials=denials))
        stage("render", t)

        opa = _opa_time(run)
        objective = result_plan.objective
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "planner")], env=_COMPILED, check=True)
        # Each command runs `runs` times, the two taking turns, each plan into
        # a directory of its own (replacing one would time its removal too);
        # then once more each for its peak memory.
        validate_runs, plan_runs = [], []
        for n in range(runs):
            validate_runs.append(_command(["validate", str(path)])[0])
            plan_runs.append(_command(["plan", str(path), "--out", str(Path(tmp) / f"plan-{n}")])[0])
        memory = [_command(["validate", str(path)], memory=True)[1], _command(["plan", str(path), "--out", str(Path(tmp) / "plan-memory")], memory=True)[1]]
        validate_s = sorted(validate_runs)
        plan_s = sorted(plan_runs)
        return {
            "size": f"{sites}x{workloads}",
            "flows": len(spec.flows),
            "times": times,
            "peak_mb": peaks,
            "total_s": sum(times.values()),
            "gap": objective.gap,
            "status": objective.status,
            "placed": len(result_plan.placements),
            "unplaced": sum(u.replicas_unplaced for u in result_plan.unplaced),
            "files": len(files),
            "opa_validate_s": opa,
            "regorus_validate_s": _regorus_time(run),
            "validate_cmd_s": validate_s[0],
            "validate_cmd_median_s": validate_s[len(validate_s) // 2],
            "plan_cmd_s": plan_s[0],
            "plan_cmd_median_s": plan_s[len(plan_s) // 2],
            "plan_cmd_mb": max(memory),  # the larger peak of the two commands
        }


# Commands run from compiled bytecode, as an installed medplan does (pip
# compiles the package when it installs it): the repository's modules are
# compiled once into a cache of the benchmark's own, whatever
# PYTHONDONTWRITEBYTECODE says, and not again for every command.
_COMPILED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {
    "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "medplan-bench-pycache")
}


def _command(args: list[str], memory: bool = False) -> tuple[float, float | None]:
    """Wall time of one `medplan` command, as a user runs it, and with
    ``memory`` its peak memory (MB), else None.

    Memory is the peak of the summed proportional set size (PSS) of the
    command and its children, sampled from /proc every 50 ms: `medplan plan`
    renders a large plan's reports in a forked copy that shares most of its
    pages, which a sum of RSS would count twice. Without /proc, the largest
    child's ru_maxrss. Sampling walks the command's page tables in the kernel
    (it made a 10,000-workload `medplan validate` 0.5-0.7 s slower), so a
    run that is timed is not sampled."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "planner.cli", *args], cwd=REPO, env=_COMPILED, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak_kb = 0
    if memory:
        while proc.poll() is None:
            peak_kb = max(peak_kb, _tree_pss_kb(proc.pid))
            time.sleep(0.05)
    stderr = proc.communicate()[1] or ""
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):  # 1: the generated spec's deliberate violations
        raise SystemExit(f"medplan {args[0]} exited {proc.returncode}:\n{stderr[-2000:]}")
    if not memory:
        return wall, None
    if not peak_kb:
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kb / 1024


def _tree_pss_kb(pid: int) -> int:
    """Summed PSS of ``pid`` and its children, in kB (0 where /proc cannot tell)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        return 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total


def _regorus_time(run) -> float:
    """Validate-stage rule evaluation alone on regorus, to set beside OPA's."""
    from planner.policy.evaluate import evaluate_stage

    t = time.perf_counter()
    evaluate_stage(run.policies, "validate", run.document)
    return time.perf_counter() - t


def _opa_time(run) -> float | None:
    try:
        sys.path.insert(0, str(REPO))
        from tests.support import opa_reference
    except ImportError:
        return None
    if not opa_reference.available():
        return None
    rules = [r for r in run.policies.registry.stage("validate") if r.language == "rego"]
    t = time.perf_counter()
    with opa_reference.engine(run.policies.modules) as engine:
        for rule in rules:
            try:
                engine.eval_document(rule.query.removeprefix("data."), run.document)
            except Exception:  # noqa: BLE001 - undefined results count as evaluated
                pass
    return time.perf_counter() - t


@contextlib.contextmanager
def _kept_dir(parent: str):
    yield tempfile.mkdtemp(dir=parent)


def _host_speed() -> tuple[float, float]:
    """How fast this host runs just now (shared hosts vary): seconds a fixed
    Python loop takes, and seconds to touch 256 MB of fresh memory (a large
    plan touches about a gigabyte, and on some virtual machines each new page
    costs far more than on others)."""
    started = time.perf_counter()
    total = 0
    for _ in range(10_000_000):
        total += 1
    loop = time.perf_counter() - started
    started = time.perf_counter()
    with mmap.mmap(-1, 256 << 20) as memory:
        for at in range(0, 256 << 20, mmap.PAGESIZE):
            memory[at] = 1
    return loop, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", default=DEFAULT_SIZES, help="SITESxWORKLOADS, e.g. 100x1000")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="times each command runs (the table shows the fastest and the median)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sites, workloads = (int(x) for x in args.one.split("x"))
        print(json.dumps(run_one(sites, workloads, args.seed, max(args.runs, 1), args.work)))
        return
    speed = [_host_speed()]
    rows = []
    work = tempfile.mkdtemp(prefix="medplan-bench-")
    try:
        for size in args.sizes:
            command = [sys.executable, __file__, "--one", size, "--seed", str(args.seed), "--runs", str(args.runs), "--work", work]
            out = subprocess.run(command, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{size}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        speed.append(_host_speed())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = f"{'size':>11} {'flows':>6} " + " ".join(f"{s:>13}" for s in STAGES) + f" {'total s':>8} {'peak MB':>8} {'gap':>7} {'unplaced':>8} {'OPA val s':>9} {'regorus s':>9} {'growth':>7} {'validate (median)':>17} {'plan cmd (median)':>17} {'cmd MB':>7}"
    print(head)
    previous = None
    for row in rows:
        growth = f"{row['total_s'] / previous:.1f}x" if previous else "-"
        previous = row["total_s"]
        opa = f"{row['opa_validate_s']:.3f}" if row["opa_validate_s"] is not None else "n/a"
        print(
            f"{row['size']:>11} {row['flows']:>6} "
            + " ".join(f"{row['times'][s]:>7.3f}s/{row['peak_mb'][s]:>4.0f}M" for s in STAGES)
            + f" {row['total_s']:>8.2f} {max(row['peak_mb'].values()):>8.0f} {row['gap']:>7.2%} {row['unplaced']:>8} {opa:>9} {row['regorus_validate_s']:>9.3f} {growth:>7} {row['validate_cmd_s']:>7.2f}s ({row['validate_cmd_median_s']:.2f}s) {row['plan_cmd_s']:>7.2f}s ({row['plan_cmd_median_s']:.2f}s) {row['plan_cmd_mb']:>7.0f}"
        )
    (loop0, memory0), (loop1, memory1) = speed
    print(
        f"host speed, before and after the sizes: a Python loop of 10,000,000 additions took {loop0:.2f} s and {loop1:.2f} s, "
        f"touching 256 MB of fresh memory {memory0:.2f} s and {memory1:.2f} s"
    )
    by_size = {row["size"]: row for row in rows}
    if "100x1000" in by_size and "1000x10000" in by_size:
        small, large = by_size["100x1000"]["plan_cmd_s"], by_size["1000x10000"]["plan_cmd_s"]
        print(f"plan command, 1,000 -> 10,000 workloads: {small:.2f} s -> {large:.2f} s ({large / small:.1f}x)")


if __name__ == "__main__":
    main()
