"""Run the ``test_*`` rules of ``*_test.rego`` files, as ``opa test`` does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from planner.errors import Location
from planner.policy.engine import RegorusEngine, RuleFailure
from planner.policy.evaluate import PolicySet
from planner.policy.rules import rego_package

_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\b", re.M)


@dataclass(frozen=True)
class RegoTest:
    name: str  # data.pkg.test_x
    location: Location
    passed: bool
    error: str | None = None


def discover_tests(modules: dict[str, str]) -> list[tuple[str, Location]]:
    found: dict[str, Location] = {}
    for file in sorted(modules):
        if not file.endswith("_test.rego"):
            continue
        text = modules[file]
        package = rego_package(text)
        if package is None:
            continue
        for match in _TEST_RULE.finditer(text):
            query = f"data.{package}.{match.group(1)}"
            line = text.count("\n", 0, match.start()) + 1
            found.setdefault(query, Location(file, line, 1))
    return sorted(found.items(), key=lambda item: (item[1].file, item[1].line))


def run_rego_tests(policies: PolicySet) -> list[RegoTest]:
    """Evaluate every test rule on the embedded engine; true passes."""
    engine = RegorusEngine()
    engine.load(policies.modules)
    engine.set_input({})
    results = []
    for query, where in discover_tests(policies.modules):
        try:
            value = engine.evaluate(query)
        except RuleFailure as exc:
            results.append(RegoTest(query, where, False, str(exc)))
            continue
        results.append(RegoTest(query, where, value is True, None if value is True else f"evaluated to {value!r}"))
    return results
