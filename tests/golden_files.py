#!/usr/bin/env python3
"""Regenerate the golden plan directories under tests/golden/.

    python tests/golden_files.py

Each bundled example is planned and rendered (every format) into
tests/golden/<example>/; tests/test_golden.py compares fresh renders with
these files byte for byte, so that any change to an output shows in review.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
EXAMPLES = {
    "community-hospital": "examples/community-hospital.yaml",
    "academic-medical-center": "examples/academic-medical-center",
    "pharma-eu-us": "examples/pharma-eu-us.yaml",
}
TODAY_EPOCH = "1795000000"  # 2026-11-18: waiver expiry is judged against a fixed day


def render_example(name: str) -> dict[str, str]:
    """The plan directory of one example, rendered from the repository root."""
    os.environ["SOURCE_DATE_EPOCH"] = TODAY_EPOCH
    sys.path.insert(0, str(REPO))
    from planner import load_spec
    from planner.pipeline import plan
    from planner.render import render_plan_files

    cwd = Path.cwd()
    os.chdir(REPO)
    try:
        return render_plan_files(plan(load_spec([EXAMPLES[name]])))
    finally:
        os.chdir(cwd)


def main() -> None:
    for name in EXAMPLES:
        target = GOLDEN / name
        shutil.rmtree(target, ignore_errors=True)
        for rel, content in render_example(name).items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        print(f"wrote {target.relative_to(REPO)}")


if __name__ == "__main__":
    main()
