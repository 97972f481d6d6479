"""Load policy bundles and evaluate one stage of rules into findings.

A rule that fails at run time becomes an ``error`` finding naming the rule
(fatal with ``strict``); it never becomes a traceback.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from planner.errors import Diagnostic, Location, PolicyError
from planner.policy.engine import RegoEngine, RuleFailure, make_engine, outcomes_of
from planner.policy.python_rules import load_python_rules, run_python_rule
from planner.policy.rules import Rule, RuleRegistry, parse_rego_rules
from planner.resources import policies_dir

BUILTIN_PREFIX = "builtin:"


@dataclass
class Bundle:
    name: str  # builtin:hipaa or the directory as written
    path: Path
    revision: str
    files: list[str]


@dataclass(slots=True)
class Violation:
    """A raw result of one rule before it becomes a Finding."""

    rule: Rule
    subject: str
    message: str
    error: bool = False


@dataclass(slots=True)
class PlacementDenial:
    rule: Rule
    workload_class: str
    site_class: str
    message: str


@dataclass
class PolicySet:
    """The rules of all included bundles, loaded into one engine."""

    registry: RuleRegistry
    bundles: list[Bundle]
    modules: dict[str, str]
    python: dict[str, Callable] = field(default_factory=dict)
    engine: RegoEngine | None = None

    @property
    def revision(self) -> str:
        digest = hashlib.sha256()
        for bundle in self.bundles:
            digest.update(f"{bundle.name}\x00{bundle.revision}\x00".encode())
        return "sha256:" + digest.hexdigest()


def builtin_bundles() -> list[str]:
    root = policies_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.rego"))) if root.is_dir() else []


def _bundle_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and (p.suffix in (".rego", ".py")) and "__pycache__" not in p.parts)


def resolve_bundles(includes: list[str], base_dir: Path, where: Location) -> list[Bundle]:
    bundles: list[Bundle] = []
    errors: list[Diagnostic] = []
    known = builtin_bundles()
    for entry in includes:
        if entry.startswith(BUILTIN_PREFIX):
            name = entry[len(BUILTIN_PREFIX):]
            if name not in known:
                from planner.spec.loader import suggest

                hint = suggest(name, known)
                tail = f"; did you mean 'builtin:{hint}'?" if hint else f"; known: {', '.join('builtin:' + k for k in known)}"
                errors.append(Diagnostic(where, f"unknown policy bundle {entry!r}{tail}", "policies.include"))
                continue
            path = policies_dir() / name
        else:
            path = (base_dir / entry).resolve() if not Path(entry).is_absolute() else Path(entry)
            if not path.is_dir():
                errors.append(Diagnostic(where, f"policy directory {entry!r} does not exist (resolved to {path})", "policies.include"))
                continue
        files = _bundle_files(path)
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.relative_to(path).as_posix().encode() + b"\x00" + f.read_bytes() + b"\x00")
        bundles.append(Bundle(entry, path, "sha256:" + digest.hexdigest(), [f.relative_to(path).as_posix() for f in files]))
    if errors:
        raise PolicyError("cannot load policies", errors)
    return bundles


def _display(bundle: Bundle, rel: str) -> str:
    if bundle.name.startswith(BUILTIN_PREFIX):
        return f"policies/{bundle.name[len(BUILTIN_PREFIX):]}/{rel}"
    return str(Path(bundle.name) / rel)


def load_policies(bundles: list[Bundle], *, tests: bool = False) -> PolicySet:
    """Read every bundle's Rego and Python rules and check their metadata."""
    registry = RuleRegistry()
    modules: dict[str, str] = {}
    python: dict[str, Callable] = {}
    errors: list[Diagnostic] = []
    for bundle in bundles:
        for rel in bundle.files:
            path = bundle.path / rel
            display = _display(bundle, rel)
            is_test = rel.endswith("_test.rego") or Path(rel).name.startswith("test_")
            if is_test and not tests:
                continue
            try:
                if path.suffix == ".rego":
                    text = path.read_text(encoding="utf-8")
                    modules[display] = text
                    if not is_test:
                        for rule in parse_rego_rules(text, display, bundle.name):
                            registry.add(rule)
                elif not is_test:
                    for rule, fn in load_python_rules(path, display, bundle.name):
                        registry.add(rule)
                        python[rule.id] = fn
            except PolicyError as exc:
                errors.extend(exc.diagnostics)
            except UnicodeDecodeError as exc:
                errors.append(Diagnostic(Location(display), f"policy file is not UTF-8: {exc.reason}"))
    if errors:
        raise PolicyError("cannot load policies", errors)
    return PolicySet(registry, bundles, modules, python)


def start_engine(policies: PolicySet, opa_url: str | None = None, opa_token: str | None = None) -> None:
    engine = make_engine(opa_url, opa_token)
    engine.load(policies.modules)
    policies.engine = engine


def _as_list(value: object, rule: Rule) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RuleFailure(f"rule {rule.name} returned {type(value).__name__}; expected a set or an array of objects")
    for item in value:
        if not isinstance(item, dict):
            raise RuleFailure(f"rule {rule.name} returned {item!r}; expected objects with subject and message")
    return value


def _outcomes(policies: PolicySet, rules: list[Rule], document: dict, background: bool = False) -> Callable[[], list[tuple[bool, object]]]:
    """Evaluate ``rules`` on ``document``: a function that returns, rule by
    rule, (True, its results) or (False, the exception it raised).

    The Rego rules are evaluated first, in the background when asked and the
    engine can (see :class:`~planner.policy.engine.RegorusEngine`), while
    the Python rules run here."""
    rego = [rule.query for rule in rules if rule.language == "rego"]
    pending = None
    if rego:
        assert policies.engine is not None
        policies.engine.set_input(document, background=background)
        pending = policies.engine.submit(rego)
    python_rules = [rule for rule in rules if rule.language == "python"]
    run = lambda rule: _as_list(run_python_rule(policies.python[rule.id], document), rule)  # noqa: E731
    python = dict(zip((rule.id for rule in python_rules), outcomes_of(run, python_rules)))

    def collect() -> list[tuple[bool, object]]:
        answers = iter(pending() if pending else ())
        return [python[rule.id] if rule.language == "python" else _listed(rule, *next(answers)) for rule in rules]

    return collect


def _listed(rule: Rule, ok: bool, value: object) -> tuple[bool, object]:
    """A Rego rule's outcome with its results as a list of objects (a failure if they are not)."""
    if ok:
        try:
            return True, _as_list(value, rule)
        except RuleFailure as exc:
            return False, exc
    return False, value


def _failure(rule: Rule, exc: BaseException, strict: bool) -> Violation:
    """The error finding for a rule that failed at run time (PolicyError with ``strict``)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if strict:
        raise PolicyError("rule failed", [Diagnostic(rule.location, f"rule {rule.id} failed at run time: {message}")]) from exc
    return Violation(rule, "spec/" + rule.id, f"rule failed at run time: {message}", error=True)


def evaluate_stage(policies: PolicySet, stage: str, document: dict, *, strict: bool = False) -> tuple[list[Violation], int]:
    """Run every rule of ``stage``; returns violations and the number of rules run."""
    return start_stage(policies, stage, document, strict=strict)()


def start_stage(
    policies: PolicySet, stage: str, document: dict, *, strict: bool = False, background: bool = False
) -> Callable[[], tuple[list[Violation], int]]:
    """Start running every rule of ``stage``: a function that returns what
    :func:`evaluate_stage` does. With ``background``, a large document's Rego
    rules may run on another core meanwhile."""
    rules = policies.registry.stage(stage)
    if not rules:
        return lambda: ([], 0)
    pending = _outcomes(policies, rules, document, background)

    def finish() -> tuple[list[Violation], int]:
        out: list[Violation] = []
        for rule, (ok, items) in zip(rules, pending()):
            if not ok:
                out.append(_failure(rule, items, strict))
                continue
            for item in items:
                subject = item.get("subject")
                if not isinstance(subject, str):
                    out.append(Violation(rule, "spec/" + rule.id, f"rule yielded a result without a subject: {json.dumps(item)[:200]}", error=True))
                    continue
                out.append(Violation(rule, subject, str(item.get("message") or rule.title)))
        return out, len(rules)

    return finish


def evaluate_placement(policies: PolicySet, document: dict, *, strict: bool = False) -> tuple[list[PlacementDenial], list[Violation]]:
    """Placement-stage rules over workload and site classes."""
    errors: list[Violation] = []
    denials = [
        PlacementDenial(rule, item["workload"], item["site"], str(item.get("message") or rule.title))
        for rule, items in placement_outcomes(policies, document, errors, strict=strict)
        for item in items
    ]
    return denials, errors


def placement_outcomes(policies: PolicySet, document: dict, errors: list[Violation], *, strict: bool = False) -> list[tuple[Rule, list[dict]]]:
    """Each placement rule's denials as it yields them, objects with a
    ``workload`` and a ``site`` class of ``document`` (and a ``message``,
    the rule's title if none). A failing rule, or an object that names no
    class of the document, adds an error to ``errors``."""
    rules = policies.registry.stage("placement")
    if not rules:
        return []
    out: list[tuple[Rule, list[dict]]] = []
    for rule, (ok, items) in zip(rules, _outcomes(policies, rules, document)()):
        if not ok:
            errors.append(_failure(rule, items, strict))
            continue
        # Rules may deny tens of thousands of class pairs: keep this loop lean.
        workload_classes, site_classes = document["workloads"], document["sites"]
        known = []
        for item in items:
            if item.get("workload") in workload_classes and item.get("site") in site_classes:
                known.append(item)
            else:
                errors.append(Violation(rule, "spec/" + rule.id, f"placement rule yielded unknown classes: {json.dumps(item)[:200]}", error=True))
        out.append((rule, known))
    return out
