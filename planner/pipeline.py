"""The library's entry points: load → derive → policies (→ solve → render).

    from planner import load_spec, validate
    result = validate(load_spec(["site.yaml"]))
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from planner import __version__
from planner.errors import InputError
from planner.process import keep
from planner.policy.findings import Finding, Status, at_or_above
from planner.spec.loader import InputFile, load_files, sources_of
from planner.spec.models import Severity, Spec
from planner.startup import helpers, listed


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


@dataclass
class _Run:
    """One policy run over a spec: the loaded policies, facts and document."""

    spec: Spec
    options: ValidateOptions
    result: ValidationResult
    policies: object = None
    facts: object = None
    document: dict | None = None
    violations: list = field(default_factory=list)  # not yet located
    findings: list = field(default_factory=list)  # located, waivers applied
    builder: object = None  # the FindingBuilder that locates them
    placement: _PlacementAway | None = None  # the placement stage, started early (see _start)


def _start(spec: Spec, options: ValidateOptions | None, stream: bool = False, placement: bool = False) -> _Run:
    """Load the policies, derive the facts and build the validate document,
    its sections that need no route while the routes are worked out
    (``stream``: the engine is given its parts as they are built, see
    :meth:`~planner.policy.engine.RegorusEngine.stream`; ``placement``: the
    placement stage starts in a forked copy as soon as its input is known,
    see :func:`_placement_away`)."""
    from planner.facts import derive
    from planner.policy.document import FlowSections, early_sections, validate_document

    options = options or ValidateOptions()
    fail_on = Severity(options.fail_on) if options.fail_on else spec.policies.fail_on
    sources = sources_of(spec)
    run = _Run(spec, options, ValidationResult(inputs=sources.inputs, engine={"name": "none", "bundle_revision": None}, fail_on=fail_on))
    emit = None
    if options.policies:
        run.policies = _policies_for(spec, options)
        engine = run.policies.engine
        run.result.engine = {
            "name": engine.name if engine else "none",
            "version": engine.version if engine else None,
            "bundle_revision": run.policies.revision,
        }
        run.result.bundles = [{"name": b.name, "revision": b.revision} for b in run.policies.bundles]
        emit = getattr(engine, "stream", None) if stream else None
    sections: dict = {}
    flowing: FlowSections | None = None  # the sections that depend on the flows, built as they are resolved

    def meanwhile(facts) -> None:
        nonlocal flowing
        sections.update(early_sections(facts))
        if emit is not None:
            emit(sections)
        if placement:
            run.placement = _placement_away(run, facts, sections)
        flowing = FlowSections(facts, emit)

    def routed(facts):
        return flowing.add if flowing is not None else None

    # The early sections are built while the routes are worked out, perhaps
    # on the other core (and the placement stage starts from them in a
    # copy), and given to the engine once built; what the sites and links
    # say of themselves is built then too. This process then mostly waits
    # for the routes. The flows section is built, and read, while the flows
    # are resolved here; the sites and links, completed with them, come last.
    try:
        # With a placement copy beside (plan), the route worker reads no
        # flow's route: it would share the other core with the copy, whose
        # answer the solver waits for, while this process would wait for it.
        run.facts = derive(spec, meanwhile, routed, flow_routes_away=not placement)
        run.document = validate_document(run.facts, emit, sections or None, flowing)
    except BaseException:
        _close(run)
        raise
    return run


# From this many workloads, the placement stage is worth a forked copy (see _placement_away).
PLACEMENT_AWAY_FROM_WORKLOADS = 2000
# How long the copy may take before the stage is run here after all.
PLACEMENT_TIMEOUT = 300.0


def _placement(policies, document: dict, strict: bool) -> tuple:
    """The placement stage on its input: (the denials by workload, the rules' errors)."""
    from planner.policy.evaluate import placement_outcomes
    from planner.solver.admissibility import denials_from_outcomes

    errors: list = []
    outcomes = placement_outcomes(policies, document, errors, strict=strict)
    return denials_from_outcomes(outcomes, document), errors


def _placement_early(policies, facts, sections: dict, strict: bool) -> tuple:
    """:func:`_placement` on the input the early sections give (in a forked copy)."""
    from planner.policy.document import early_placement_document

    return _placement(policies, early_placement_document(facts, sections), strict)


class _PlacementAway:
    """The placement stage run by a forked copy (see :func:`_placement_away`):
    ``work()`` is what the copy runs, and what runs here if it cannot."""

    def __init__(self, forked, work: Callable[[], tuple]) -> None:
        self.forked, self.work = forked, work

    def result(self) -> tuple:
        """What :func:`_placement` returns: the copy's, or worked out here if it failed or took too long."""
        found = self.forked.result(timeout=PLACEMENT_TIMEOUT)
        self.close()
        return found if found is not None else self.work()

    def close(self) -> None:
        self.forked.close()


def _placement_away(run: _Run, facts, sections: dict) -> _PlacementAway | None:
    """Start the placement stage in a forked copy of this process, on the
    other core while the routes are collected, the flows resolved and the
    rest of the validate document built here (on a 10,000-workload plan,
    0.6-0.9 s otherwise spent after them). Its input needs only the early sections (see
    :func:`~planner.policy.document.early_placement_document`). None where
    it is not worth it (a small spec, no placement rules, an engine other
    than the embedded one, a process that may not fork). A copy that fails
    or takes too long leaves the stage to be run here, with the same result
    (and the same error, with ``--strict``)."""
    from planner.process import Forked, can_fork

    policies = run.policies
    if (
        policies is None
        or len(run.spec.workloads) < PLACEMENT_AWAY_FROM_WORKLOADS
        or getattr(policies.engine, "name", None) != "regorus"
        or not policies.registry.stage("placement")
        or not can_fork()
    ):
        return None
    strict = run.options.strict
    work = lambda: _placement_early(policies, facts, sections, strict)  # noqa: E731
    forked = Forked.start(work)
    return _PlacementAway(forked, work) if forked is not None else None


def _close(run: _Run) -> None:
    if run.placement is not None:
        run.placement.close()
    close = getattr(getattr(run.policies, "engine", None), "close", None)
    if close:
        close()


def _builder(run: _Run):
    """The run's FindingBuilder, made on first use."""
    from planner.policy.waivers import FindingBuilder

    if run.builder is None:
        run.builder = FindingBuilder(run.spec, run.options.today or today_from_env(), use_waivers=run.options.waivers)
    return run.builder


def _locate(run: _Run, answered: Callable[[], tuple] | None = None) -> None:
    """Turn the violations found so far into located findings, waivers
    applied; first those ``answered()`` gives, if given (a stage started
    with :func:`~planner.policy.evaluate.start_stage`)."""
    if answered is not None:
        run.violations += answered()[0]
    run.findings += _builder(run).from_violations(run.violations)
    run.violations = []


def _finish(run: _Run, stages: set[str]) -> ValidationResult:
    """Locate the last violations, add the waivers' own findings, and fill the result's findings."""
    from planner.policy.waivers import META_RULES

    if run.policies is None:
        return run.result
    _locate(run)
    known = {r.id: r.stage for r in run.policies.registry}
    findings = run.findings + run.builder.waiver_findings(known, stages)
    run.result.rules = [r for r in run.policies.registry if r.stage in stages] + list(META_RULES)
    run.result.findings = sorted(findings, key=Finding.sort_key)
    return run.result


def validate(spec: Spec, options: ValidateOptions | None = None) -> ValidationResult:
    """Check a loaded spec against its policies (validate stage)."""
    from planner.policy.evaluate import start_stage

    # The rules wait for the whole document: its parts are read on the other
    # core (if a helper was started) while the next is built, and the rules
    # run there while the findings' builder is made here.
    run = _start(spec, options, stream=True)
    try:
        if run.policies is not None:
            answered = start_stage(run.policies, "validate", run.document, strict=run.options.strict)
            _builder(run)
            run.violations, _ = answered()
    finally:
        _close(run)
    keep(run)
    return _finish(run, {"validate"})


@dataclass
class PlanResult:
    """A finished plan with every finding about the spec and about the plan."""

    spec: Spec
    validation: ValidationResult
    plan: object  # planner.solver.Plan
    facts: object
    denials: dict = field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        return self.validation.findings

    @property
    def failed(self) -> bool:
        return self.validation.failed or not self.plan.feasible


def plan_document(plan, document: dict) -> dict:
    """The plan-stage input: the validate document plus ``plan``.

    Every collection of the validate document is reused as it is (not
    copied), which lets the engine reuse the input it already read for the
    validate stage; only ``medplan`` and ``plan`` are new.
    """
    doc_workloads = document["workloads"]
    placed: dict[str, int] = {}
    workload_sites: dict[str, set[str]] = {}
    workload_pools: dict[str, set[str]] = {}
    site_workloads: dict[str, set[str]] = {}
    site_phi: dict[str, set[str]] = {}
    site_gpus: dict[str, int] = {}
    pool_workloads: dict[str, set[str]] = {}
    placements = []
    for p in plan.placements:
        pool = f"{p.site}/{p.pool}"
        phi = doc_workloads[p.workload]["phi"]
        placed[p.workload] = placed.get(p.workload, 0) + 1
        workload_sites.setdefault(p.workload, set()).add(p.site)
        workload_pools.setdefault(p.workload, set()).add(pool)
        site_gpus[p.site] = site_gpus.get(p.site, 0) + p.gpus
        site_workloads.setdefault(p.site, set()).add(p.workload)
        if phi:
            site_phi.setdefault(p.site, set()).add(p.workload)
        pool_workloads.setdefault(pool, set()).add(p.workload)
        placements.append({"workload": p.workload, "replica": p.replica, "site": p.site, "pool": pool, "gpu": p.gpu, "gpus": p.gpus})
    sites = {
        sid: {"workloads": sorted(site_workloads.get(sid, ())), "phi_workloads": sorted(site_phi.get(sid, ())), "gpus_used": site_gpus.get(sid, 0)}
        for sid in document["sites"]
    }
    unplaced = {u.workload: u.replicas_unplaced for u in plan.unplaced}
    workloads: dict[str, dict] = {}
    for wid, w in doc_workloads.items():
        count = placed.get(wid, 0)
        # Replicas may follow from measured throughput, so the plan's count wins.
        replicas = count + unplaced.get(wid, 0) if count or wid in unplaced else w["replicas"]
        workloads[wid] = {
            "sites": sorted(workload_sites.get(wid, ())),
            "pools": sorted(workload_pools.get(wid, ())),
            "replicas": replicas,
            "placed": count,
        }
    pools = {
        key: {
            "gpus_used": usage.gpus_used,
            "capacity_gpus": usage.capacity_gpus,
            "utilisation": round(usage.gpus_used / usage.capacity_gpus, 6) if usage.capacity_gpus else 0.0,
            "workloads": sorted(pool_workloads.get(key, ())),
        }
        for key, usage in sorted(plan.pools.items())
    }
    return document | {
        "medplan": document["medplan"] | {"stage": "plan"},
        "plan": {"placements": placements, "workloads": workloads, "sites": sites, "pools": pools},
    }


def plan(
    spec: Spec,
    options: ValidateOptions | None = None,
    solved: Callable[[PlanResult], None] | None = None,
    meanwhile: Callable[[PlanResult], None] | None = None,
) -> PlanResult:
    """Validate, decide admissibility, solve, and check the finished plan.

    ``solved(result)`` is called as soon as the plan is solved, with the
    result this returns, whose findings are not all in yet (they are when
    this returns). ``meanwhile(result)`` is called next, while the
    plan-stage rules run (on another core for a large plan): work on the
    plan that does not need its findings."""
    from planner.policy.document import placement_document
    from planner.policy.evaluate import start_stage
    from planner.solver import solve
    from planner.solver.admissibility import size_workloads_for

    run = _start(spec, options, placement=True)
    denials: dict = {}
    errors: list = []
    sizing = None
    located = None  # the validate-stage findings' locating, run beside the solver
    try:
        if run.policies is not None:
            # The validate-stage findings are not needed until the end: a
            # large document's rules run on another core meanwhile, once the
            # placement copy, if any, has given the solver its input, and
            # are located while HiGHS solves (see solve()). With --strict they
            # are evaluated at once: the first failing rule ends the run.
            strict = run.options.strict
            background = partial(start_stage, run.policies, "validate", run.document, background=True)
            validated = None
            if strict:
                run.violations, _ = start_stage(run.policies, "validate", run.document, strict=True)()
            elif run.placement is None:
                validated = background()  # beside the placement stage here
            if run.placement is not None:  # started in a copy while the document was built
                sizing = size_workloads_for(spec, run.facts.catalog)  # the solver's, while the copy finishes
                denials, errors = run.placement.result()
            else:
                pdoc, _, _ = placement_document(run.document)
                keep(pdoc)
                denials, errors = _placement(run.policies, pdoc, strict)
            if not strict:
                located = partial(_locate, run, validated or background())  # or now that the copy has answered
        result = solve(spec, run.facts, denials, sizing=sizing, meanwhile=located)
        planned_result = PlanResult(spec=spec, validation=run.result, plan=result, facts=run.facts, denials=denials)
        if solved is not None:
            solved(planned_result)
        planned = None
        if run.policies is not None:
            run.violations += errors
            document = plan_document(result, run.document)
            keep(document)
            # Evaluated where the validate document was read (a forked copy
            # for a large one): the findings so far are located meanwhile.
            planned = start_stage(run.policies, "plan", document, strict=run.options.strict)
            _locate(run)
        if meanwhile is not None:
            meanwhile(planned_result)
        if planned is not None:
            run.violations, _ = planned()
    finally:
        _close(run)
    keep(run)
    _finish(run, {"validate", "placement", "plan"})  # fills in run.result, the result's validation
    return planned_result


def replan(doc: dict, origin: str, options: ValidateOptions | None = None) -> PlanResult:
    """Rebuild the result a saved plan.json was rendered from.

    The plan keeps its spec files' text; they are parsed again, the plan is
    solved again (the solver is deterministic) and the placements must equal
    the saved ones, and the policy bundles must be the same revision, so the
    files rendered now are the files that plan would have had.
    """
    import hashlib
    from pathlib import Path

    from planner.errors import Diagnostic, Location
    from planner.spec.loader import build_spec
    from planner.spec.yamlsource import parse_yaml

    sources, inputs = [], []
    for item in doc.get("sources") or []:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not isinstance(item.get("path"), str):
            raise InputError("not re-renderable", [Diagnostic(Location(origin), "plan.json does not carry its spec files (sources)")])
        raw = item["text"].encode("utf-8")
        if hashlib.sha256(raw).hexdigest() != item.get("sha256"):
            raise InputError("tampered plan", [Diagnostic(Location(origin), f"the text of {item['path']} does not match its sha256")])
        sources.append(parse_yaml(raw, item["path"]))
        inputs.append(InputFile(item["path"], item["sha256"], Path(item["path"]).resolve()))
    if not sources:
        raise InputError("not re-renderable", [Diagnostic(Location(origin), "plan.json does not carry its spec files (sources)")])
    options = options or ValidateOptions(fail_on=doc.get("fail_on"))
    result = plan(build_spec(sources, inputs), options)
    saved = [{k: p.get(k) for k in ("workload", "replica", "site", "pool", "gpus")} for p in doc.get("placements", [])]
    now = [{"workload": p.workload, "replica": p.replica, "site": p.site, "pool": p.pool, "gpus": p.gpus} for p in result.plan.placements]
    if saved != now:
        raise InputError("plan differs", [Diagnostic(Location(origin), "the saved placements differ from what this plan's spec gives now; was plan.json edited?")])
    if doc.get("bundles") != result.validation.bundles:
        raise InputError(
            "policies changed",
            [Diagnostic(Location(origin), "the policy bundles differ from those the plan was made with; run medplan plan again")],
        )
    return result


def run_validate(paths: list[str], options: ValidateOptions) -> ValidationResult:
    files = listed(paths)
    with helpers(files, input_helper=True) as tails:
        return validate(load_files(files, tails), options)


def run_plan(
    paths: list[str],
    options: ValidateOptions,
    solved: Callable[[PlanResult], None] | None = None,
    meanwhile: Callable[[PlanResult], None] | None = None,
) -> PlanResult:
    files = listed(paths)
    with helpers(files) as tails:
        return plan(load_files(files, tails), options, solved, meanwhile)


__all__ = ["replan", "PlanResult", "ValidateOptions", "ValidationResult", "__version__", "plan", "plan_document", "run_plan", "run_validate", "validate"]
