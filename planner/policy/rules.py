"""Rule metadata: what a rule is called, how severe it is, which controls it
enforces. Read from ``# METADATA`` blocks in Rego (regorus has no
``rego.metadata.rule()``) and from the ``@rule`` decorator in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from planner.errors import Diagnostic, Location, PolicyError
from planner.spec.models import Severity

STAGES = ("validate", "placement", "plan")
RULE_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][A-Za-z0-9_.]*)\s*$", re.M)
_HEAD = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\b")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: every builtin METADATA block in 3 ms, not 24


@dataclass(frozen=True)
class Rule:
    """One rule's identity and metadata, whichever language it is written in."""

    id: str
    title: str
    severity: Severity
    controls: tuple[str, ...]
    description: str = ""
    remediation: str = ""
    stage: str = "validate"
    language: str = "rego"  # rego | python
    bundle: str = ""
    package: str = ""  # Rego package, e.g. medplan.hipaa
    name: str = ""  # Rego rule name or Python function name
    location: Location = field(default_factory=lambda: Location("<builtin>"))
    tags: tuple[str, ...] = ()

    @property
    def query(self) -> str:
        return f"data.{self.package}.{self.name}"

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.value,
            "controls": list(self.controls),
            "description": self.description,
            "remediation": self.remediation,
            "stage": self.stage,
            "language": self.language,
            "bundle": self.bundle,
            "source": f"{self.location.file}:{self.location.line}",
        }


def rule_from_metadata(meta: object, where: Location, *, language: str, bundle: str, package: str, name: str) -> Rule:
    """Validate a metadata mapping into a Rule; PolicyError names what is missing."""
    problems: list[str] = []
    if not isinstance(meta, dict):
        raise PolicyError("bad metadata", [Diagnostic(where, "METADATA must be a YAML mapping")])
    custom = meta.get("custom") or {}
    if not isinstance(custom, dict):
        problems.append("custom must be a mapping")
        custom = {}
    rule_id = custom.get("id")
    severity = custom.get("severity")
    title = meta.get("title")
    if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
        problems.append(f"custom.id is required and must look like MP-HIPAA-TX-001 (got {rule_id!r})")
    if severity not in [s.value for s in Severity]:
        problems.append(f"custom.severity is required: one of critical, high, medium, low, info (got {severity!r})")
    if not isinstance(title, str) or not title.strip():
        problems.append("title is required")
    controls = custom.get("controls", [])
    if isinstance(controls, str):
        controls = [controls]
    if not isinstance(controls, list) or not all(isinstance(c, str) for c in controls):
        problems.append("custom.controls must be a list of strings")
        controls = []
    stage = custom.get("stage", "validate")
    if stage not in STAGES:
        problems.append(f"custom.stage must be one of {', '.join(STAGES)} (got {stage!r})")
    tags = custom.get("tags", [])
    if problems:
        label = f"rule {name!r}" if name else "rule"
        raise PolicyError("bad rule metadata", [Diagnostic(where, f"{label}: {p}") for p in problems])
    return Rule(
        id=rule_id,
        title=title.strip(),
        severity=Severity(severity),
        controls=tuple(controls),
        description=str(meta.get("description") or "").strip(),
        remediation=str(custom.get("remediation") or "").strip(),
        stage=stage,
        language=language,
        bundle=bundle,
        package=package,
        name=name,
        location=where,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
    )


def rego_package(text: str) -> str | None:
    found = _PACKAGE.search(text)
    return found.group(1) if found else None


def parse_rego_rules(text: str, file: str, bundle: str) -> list[Rule]:
    """Every rule with a ``# METADATA`` block in one Rego module.

    A block is the run of comment lines after ``# METADATA``; the rule it
    annotates is the next non-comment line's head. Blocks before ``package``
    describe the package and are skipped.
    """
    lines = text.splitlines()
    package = rego_package(text)
    package_line = next((i for i, line in enumerate(lines) if _PACKAGE.match(line)), len(lines))
    rules: list[Rule] = []
    errors: list[Diagnostic] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "# METADATA":
            i += 1
            continue
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].lstrip().startswith("#"):
            stripped = lines[i].lstrip()[1:]
            body.append(stripped[1:] if stripped.startswith(" ") else stripped)
            i += 1
        while i < len(lines) and not lines[i].strip():
            i += 1
        where = Location(file, start + 1, 1)
        if start < package_line:
            continue
        try:
            meta = yaml.load("\n".join(body), Loader=_LOADER) or {}
        except yaml.YAMLError as exc:
            errors.append(Diagnostic(where, f"METADATA is not valid YAML: {exc}"))
            continue
        head = _HEAD.match(lines[i]) if i < len(lines) else None
        if head is None:
            errors.append(Diagnostic(where, "METADATA block is not followed by a rule"))
            continue
        if meta.get("scope") in ("package", "subpackages", "document"):
            continue
        try:
            rules.append(
                rule_from_metadata(meta, where, language="rego", bundle=bundle, package=package or "", name=head.group(1))
            )
        except PolicyError as exc:
            errors.extend(exc.diagnostics)
    if errors:
        raise PolicyError("bad rule metadata", errors)
    return rules


class RuleRegistry:
    """All loaded rules by id; a second rule with the same id is refused."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def add(self, rule: Rule) -> None:
        existing = self._rules.get(rule.id)
        if existing is not None:
            raise PolicyError(
                "duplicate rule id",
                [Diagnostic(rule.location, f"rule id {rule.id} is already defined at {existing.location}")],
            )
        self._rules[rule.id] = rule

    def __iter__(self):
        return iter(sorted(self._rules.values(), key=lambda r: r.id))

    def __len__(self) -> int:
        return len(self._rules)

    def get(self, rule_id: str) -> Rule | None:
        return self._rules.get(rule_id)

    def stage(self, stage: str) -> list[Rule]:
        return [r for r in self if r.stage == stage]
