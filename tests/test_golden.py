"""Every output of every example equals its golden file, byte for byte.
Regenerate after an intended change with `python tests/golden_files.py`."""

from __future__ import annotations

import pytest

from tests.golden_files import EXAMPLES, GOLDEN, render_example


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_outputs_match_golden_files(name, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795000000")
    rendered = render_example(name)
    golden = {p.relative_to(GOLDEN / name).as_posix(): p.read_text(encoding="utf-8") for p in (GOLDEN / name).rglob("*") if p.is_file()}
    assert sorted(rendered) == sorted(golden), "files added or removed: run python tests/golden_files.py after an intended change"
    changed = [rel for rel in sorted(rendered) if rendered[rel] != golden[rel]]
    assert changed == [], "outputs changed: run python tests/golden_files.py after an intended change"
