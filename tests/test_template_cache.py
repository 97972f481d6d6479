"""Compiled templates are kept between runs: the files rendered are the same
with or without them, and a cache that cannot be used is no error."""

from __future__ import annotations

import os

import pytest

from planner import load_spec
from planner.pipeline import plan
from planner.render import render_plan_files, report, terraform
from planner.resources import template_cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def fresh_environments(monkeypatch):
    """Template environments made anew, with the cache the environment now names."""

    def clear():
        for cached in (template_cache, report._environment, terraform._environment):
            cached.cache_clear()
        from planner.render import helm

        helm._readme_template.cache_clear()

    clear()
    yield clear
    clear()


@pytest.fixture(scope="module")
def result():
    return plan(load_spec([os.path.join(REPO, "examples", "academic-medical-center")]))


def _render(result):
    return render_plan_files(result, timestamp="2026-01-02T03:04:05Z", formats={"md", "html", "helm", "terraform"})


def test_compiled_templates_are_kept_and_give_the_same_files(tmp_path, monkeypatch, fresh_environments, result):
    monkeypatch.setenv("MEDPLAN_CACHE_DIR", "")
    without = _render(result)
    fresh_environments()
    monkeypatch.setenv("MEDPLAN_CACHE_DIR", str(tmp_path / "cache"))
    first = _render(result)
    kept = sorted((tmp_path / "cache" / "templates").iterdir())
    assert len(kept) >= 3 and all(p.stat().st_size > 0 for p in kept)
    assert oct((tmp_path / "cache" / "templates").stat().st_mode & 0o777) == "0o700"
    fresh_environments()
    assert _render(result) == first == without
    for p in kept:  # damaged files are compiled again
        p.write_bytes(p.read_bytes()[:40])
    fresh_environments()
    assert _render(result) == without


@pytest.mark.parametrize("where", ["a file", "group-writable"])
def test_a_cache_that_cannot_be_used_is_none(tmp_path, monkeypatch, fresh_environments, result, where):
    base = tmp_path / "cache"
    if where == "a file":
        base.write_text("not a directory")
    else:
        (base / "templates").mkdir(parents=True)
        (base / "templates").chmod(0o777)
    monkeypatch.setenv("MEDPLAN_CACHE_DIR", str(base))
    assert template_cache() is None
    monkeypatch.setenv("MEDPLAN_CACHE_DIR", "")
    fresh_environments()
    without = _render(result)
    monkeypatch.setenv("MEDPLAN_CACHE_DIR", str(base))
    fresh_environments()
    assert _render(result) == without
