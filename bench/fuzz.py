"""Fuzz the spec loader and the CLI at scale.

Runs generated cases through ``medplan validate`` (loader, merge, schema,
references, policies) in-process, with the strategies of the test suite
(``tests/support/spec_fuzz.py``):

- ``bytes``: any bytes, and valid specs with bytes flipped, cut or spliced;
- ``text``:  plausible specs with wrong types, missing and extra keys, typos,
  unknown names, huge/negative/non-finite numbers, unicode, aliases, then
  mangled as text (duplicate keys, tabs, CRLF, BOMs, UTF-16, documents);
- ``plan``:  plausible specs through ``medplan plan --out`` (solver and every
  renderer), fewer of them since each one solves.

Every case must end with exit 0, 1 or 2, no uncaught exception or internal
error, a ``file:line:col:`` message on exit 2, nothing written by a failed
``plan``, and within ``--slow`` seconds (``--slow-plan`` for plan cases; a slow case is
timed twice and the faster run counts, since a busy machine makes one timing noisy). A case that breaks a rule is a
failure: its input is saved as ``<dir>/<sha>.yaml`` with the verdict next to
it in ``<sha>.txt``; reproduce one with ``medplan validate <dir>/<sha>.yaml``.

Usage (from the repository root, in the project's virtualenv)::

    python bench/fuzz.py                         # 10,000 validate cases + 300 plan cases
    python bench/fuzz.py --cases 50000 --jobs 8 --seed 7
    python bench/fuzz.py --cases 2000 --plan 0 --failures /tmp/fuzz-failures

Exit status: 0 when every case behaved, 1 when any failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


_WARM_UP = {
    "apiVersion": "medplan/v1",
    "metadata": {"name": "warm-up"},
    "sites": [{"id": "dc1", "kind": "on-prem", "jurisdiction": "US-MN", "zone": "us",
               "pools": [{"id": "h100", "gpu": "H100", "nodes": 1, "gpus_per_node": 8}]}],
    "workloads": [{"id": "w", "kind": "inference", "gpus": 1}],
}


def _worker(task: tuple[str, int, int, float]) -> dict:
    """Run ``count`` cases of one mode with one seed; return the statistics."""
    mode, count, seed, slow = task
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    from tests.support.spec_fuzz import dump, judge, plausible_specs, raw_bytes, spec_texts

    strategy = {"bytes": raw_bytes(), "text": spec_texts(), "plan": plausible_specs(max_mutations=1)}[mode]
    command = "plan" if mode == "plan" else "validate"
    stats = {"mode": mode, "cases": 0, "exits": Counter(), "times": [], "max": (0.0, b""), "failures": []}
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"medplan-fuzz-{os.getpid()}-{mode}-{seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    # Warm up (imports, policy compilation) so the first case is timed like the rest.
    judge(dump(_WARM_UP).encode(), command, workdir=workdir)

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def case(value) -> None:
        data = dump(value).encode("utf-8") if mode == "plan" else value
        verdict = judge(data, command, workdir=workdir)
        if verdict.seconds > slow:
            # Confirm a slow case once: a busy machine makes single timings noisy.
            again = judge(data, command, workdir=workdir)
            verdict.seconds = min(verdict.seconds, again.seconds)
        stats["cases"] += 1
        stats["exits"][verdict.exit_code] += 1
        stats["times"].append(verdict.seconds)
        if verdict.seconds > stats["max"][0]:
            stats["max"] = (verdict.seconds, data)
        problems = list(verdict.problems)
        if verdict.seconds > slow:
            problems.append(f"took {verdict.seconds:.2f}s, more than {slow}s")
        if problems:
            verdict.problems = problems
            stats["failures"].append((data, verdict.describe()))

    try:
        case()
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return stats


def _split(total: int, jobs: int) -> list[int]:
    base, extra = divmod(total, jobs)
    return [base + (1 if i < extra else 0) for i in range(jobs) if base or i < extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="validate cases, split over bytes and text (default 10000)")
    parser.add_argument("--plan", type=int, default=300, help="plan --out cases (default 300)")
    parser.add_argument("--bytes-share", type=float, default=0.4, help="share of --cases that are raw bytes (default 0.4)")
    parser.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 8), help="worker processes")
    parser.add_argument("--seed", type=int, default=0, help="base seed; the same seed runs the same cases")
    parser.add_argument("--slow", type=float, default=2.0, help="seconds after which a case counts as a failure (default 2)")
    parser.add_argument("--slow-plan", type=float, default=5.0, help="the same for plan cases, which solve (default 5)")
    parser.add_argument("--failures", type=Path, default=REPO / "bench" / "fuzz-failures", help="where reproducers go")
    args = parser.parse_args(argv)

    n_bytes = round(args.cases * args.bytes_share)
    plan = [("bytes", n_bytes), ("text", args.cases - n_bytes), ("plan", args.plan)]
    tasks = []
    for mode, total in plan:
        for i, count in enumerate(_split(total, args.jobs)):
            tasks.append((mode, count, args.seed * 1000 + i, args.slow_plan if mode == "plan" else args.slow))
    os.environ.setdefault("NO_COLOR", "1")
    started = time.monotonic()
    print(f"medplan fuzz: {args.cases:,} validate cases ({n_bytes:,} bytes, {args.cases - n_bytes:,} text), "
          f"{args.plan:,} plan cases, {args.jobs} jobs, seed {args.seed}", flush=True)
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            results = pool.map(_worker, tasks, chunksize=1)
    else:
        results = [_worker(t) for t in tasks]
    elapsed = time.monotonic() - started

    by_mode: dict[str, dict] = {}
    for r in results:
        m = by_mode.setdefault(r["mode"], {"cases": 0, "exits": Counter(), "times": [], "max": (0.0, b""), "failures": []})
        m["cases"] += r["cases"]
        m["exits"].update(r["exits"])
        m["times"] += r["times"]
        m["failures"] += r["failures"]
        if r["max"][0] > m["max"][0]:
            m["max"] = r["max"]

    failures = [f for m in by_mode.values() for f in m["failures"]]
    total = sum(m["cases"] for m in by_mode.values())
    exits = sum((m["exits"] for m in by_mode.values()), Counter())
    slowest = max((m["max"] for m in by_mode.values()), default=(0.0, b""), key=lambda x: x[0])
    for mode, m in by_mode.items():
        times = sorted(m["times"]) or [0.0]
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        histogram = ", ".join(f"{code}: {n:,}" for code, n in sorted(m["exits"].items(), key=lambda kv: str(kv[0])))
        print(f"  {mode:5}  {m['cases']:>6,} cases  exit codes {{{histogram}}}  "
              f"mean {sum(times) / len(times) * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms  max {m['max'][0]:.2f} s  "
              f"failures {len(m['failures'])}")
    print(f"cases run: {total:,}")
    print("exit codes: " + ", ".join(f"{code}: {n:,}" for code, n in sorted(exits.items(), key=lambda kv: str(kv[0]))))
    print(f"max time per case: {slowest[0]:.3f} s ({len(slowest[1]):,} bytes of input)")
    print(f"wall time: {elapsed:.1f} s")
    if failures:
        import hashlib

        args.failures.mkdir(parents=True, exist_ok=True)
        for data, description in failures:
            digest = hashlib.sha256(data).hexdigest()[:16]
            (args.failures / f"{digest}.yaml").write_bytes(data)
            (args.failures / f"{digest}.txt").write_text(description + "\n", encoding="utf-8")
        print(f"FAILURES: {len(failures)}; reproducers in {args.failures}/ (first below)")
        print(failures[0][1])
        return 1
    print("failures: 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
