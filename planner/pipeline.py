"""The library's entry points: load → derive → policies (→ solve → render).

    from planner import load_spec, validate
    result = validate(load_spec(["site.yaml"]))
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

from planner import __version__
from planner.errors import InputError, MedplanError
from planner.policy.findings import Finding, Status, at_or_above
from planner.spec.loader import InputFile, load_spec, sources_of
from planner.spec.models import Severity, Spec


@dataclass(frozen=True)
class ValidateOptions:
    fail_on: str | None = None
    waivers: bool = True
    policies: bool = True
    opa_url: str | None = None
    opa_token: str | None = None
    strict: bool = False
    today: dt.date | None = None


@dataclass
class ValidationResult:
    """Everything `medplan validate` reports, in one value every renderer reads."""

    inputs: list[InputFile]
    engine: dict
    fail_on: Severity
    rules: list = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    errors: list = field(default_factory=list)
    bundles: list = field(default_factory=list)

    @property
    def failing(self) -> list[Finding]:
        return [f for f in self.findings if f.status is not Status.waived and at_or_above(f.severity, self.fail_on)]

    @property
    def failed(self) -> bool:
        return bool(self.failing)

    @property
    def summary(self) -> dict:
        failed_rules = {f.rule for f in self.findings if f.status in (Status.fail, Status.error)}
        waived_rules = {f.rule for f in self.findings if f.status is Status.waived} - failed_rules
        total = len(self.rules)
        return {
            "rules": total,
            "failed": len(failed_rules),
            "waived": len(waived_rules),
            "passed": total - len(failed_rules | waived_rules),
            "findings": len(self.findings),
            "by_severity": {
                s.value: sum(1 for f in self.findings if f.severity is s and f.status is not Status.waived) for s in Severity
            },
        }


def today_from_env() -> dt.date:
    """Today, or the day SOURCE_DATE_EPOCH names (reproducible runs)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc).date()
        except (ValueError, OverflowError, OSError) as exc:
            raise InputError(f"SOURCE_DATE_EPOCH must be a whole number of seconds, got {epoch!r}") from exc
    return dt.date.today()


def _policies_for(spec: Spec, options: ValidateOptions):
    from planner.errors import Location
    from planner.policy.evaluate import load_policies, resolve_bundles, start_engine

    sources = sources_of(spec)
    origin = sources.map.origins.get(("policies", "include"))
    if origin is not None:
        where = sources.map.locate(("policies", "include"))
        base = sources.base_dirs.get(origin[0])
    else:
        where = Location(sources.inputs[0].path if sources.inputs else "<spec>")
        base = None
    from pathlib import Path

    bundles = resolve_bundles(list(spec.policies.include), base or Path.cwd(), where)
    policies = load_policies(bundles)
    start_engine(policies, options.opa_url, options.opa_token)
    return policies


def validate(spec: Spec, options: ValidateOptions | None = None) -> ValidationResult:
    """Check a loaded spec against its policies (validate stage)."""
    from planner.facts import derive
    from planner.policy.document import validate_document
    from planner.policy.evaluate import evaluate_stage
    from planner.policy.waivers import META_RULES, FindingBuilder

    options = options or ValidateOptions()
    fail_on = Severity(options.fail_on) if options.fail_on else spec.policies.fail_on
    sources = sources_of(spec)
    result = ValidationResult(inputs=sources.inputs, engine={"name": "none", "bundle_revision": None}, fail_on=fail_on)
    if not options.policies:
        return result
    policies = _policies_for(spec, options)
    try:
        engine = policies.engine
        result.engine = {
            "name": engine.name if engine else "none",
            "version": engine.version if engine else None,
            "bundle_revision": policies.revision,
        }
        result.bundles = [{"name": b.name, "revision": b.revision} for b in policies.bundles]
        document = validate_document(derive(spec))
        violations, _ = evaluate_stage(policies, "validate", document, strict=options.strict)
    finally:
        close = getattr(policies.engine, "close", None)
        if close:
            close()
    builder = FindingBuilder(spec, options.today or today_from_env(), use_waivers=options.waivers)
    findings = builder.from_violations(violations)
    known = {r.id: r.stage for r in policies.registry}
    findings += builder.waiver_findings(known, {"validate"})
    result.rules = [r for r in policies.registry if r.stage == "validate"] + list(META_RULES)
    result.findings = sorted(findings, key=Finding.sort_key)
    return result


def run_validate(paths: list[str], options: ValidateOptions) -> ValidationResult:
    spec = load_spec(paths)
    return validate(spec, options)


def plan(spec: Spec, **kwargs):  # pragma: no cover - filled in by the solver stage
    raise MedplanError("planning is not available in this build")


__all__ = ["ValidateOptions", "ValidationResult", "__version__", "plan", "run_validate", "validate"]
