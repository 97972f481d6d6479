"""Python policies: functions registered with ``@rule``, carrying the same
metadata as Rego rules and receiving the same input document.

    from planner.policy import rule

    @rule(id="MP-ORG-GPU-001", title="Training stays on owned hardware",
          severity="medium", controls=["ORG-SEC-12"], stage="validate")
    def training_on_prem(doc):
        for wid, w in doc["workloads"].items():
            if w["kind"] == "training" and w["placement"]["kinds"] != ["on-prem"]:
                yield {"subject": f"workload/{wid}", "message": "..."}
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from planner.errors import Diagnostic, Location, PolicyError
from planner.policy.rules import Rule, rule_from_metadata

RULE_ATTR = "__medplan_rule__"


def rule(
    *,
    id: str,  # noqa: A002 - the metadata's own name
    title: str,
    severity: str,
    controls: list[str] | tuple[str, ...] = (),
    description: str = "",
    remediation: str = "",
    stage: str = "validate",
) -> Callable:
    """Mark a function as a medplan rule. It takes the input document and
    yields (or returns a list of) ``{"subject": "KIND/ID", "message": str}``;
    placement-stage rules yield ``{"workload": CLASS, "site": CLASS, "message": str}``.
    Every rule of every stage reads the same document (the plan-stage one
    shares the validate-stage collections): read it, never change it.
    """

    def mark(fn: Callable[[dict], Iterable[dict]]) -> Callable[[dict], Iterable[dict]]:
        setattr(
            fn,
            RULE_ATTR,
            {
                "title": title,
                "description": description,
                "custom": {
                    "id": id,
                    "severity": severity,
                    "controls": list(controls),
                    "remediation": remediation,
                    "stage": stage,
                },
            },
        )
        return fn

    return mark


def load_python_rules(path: Path, display: str, bundle: str) -> list[tuple[Rule, Callable]]:
    """Import one policy file and return its marked functions as rules."""
    module_name = f"medplan_policy_{abs(hash(str(path.resolve())))}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise PolicyError(
            "policy does not compile",
            [Diagnostic(Location(display, exc.lineno or 1, exc.offset or 1), f"Python: {exc.msg}")],
        ) from exc
    except Exception as exc:  # any error while importing a user's policy file
        line = _error_line(exc, path)
        raise PolicyError(
            "policy does not load",
            [Diagnostic(Location(display, line, 1), f"Python: {type(exc).__name__}: {exc}")],
        ) from exc
    found = []
    for name in sorted(vars(module)):
        fn = getattr(module, name)
        meta = getattr(fn, RULE_ATTR, None)
        if meta is None or not callable(fn):
            continue
        line = getattr(getattr(fn, "__code__", None), "co_firstlineno", 1)
        where = Location(display, line, 1)
        found.append(
            (rule_from_metadata(meta, where, language="python", bundle=bundle, package=module_name, name=name), fn)
        )
    return found


def _error_line(exc: BaseException, path: Path) -> int:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(frame.filename).resolve() == path.resolve():
            return frame.lineno or 1
    return 1


def run_python_rule(fn: Callable, document: dict) -> list[dict]:
    """Call a rule; its errors propagate to the caller, which reports them."""
    result = fn(document)
    if result is None:
        return []
    return list(result)
