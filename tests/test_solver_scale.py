"""The solver on a generated 100-site, 1,000-workload spec: a large model.

At this size the solver takes its large-model path (LP relaxation bound,
plan rounded from it). The plan must be within 1 % of its proven bound and
pass the same independent checks as the property test (admissibility,
capacity and node shape per pool and node, HA spread), plus the policy
denials. No timing is asserted.
"""

from __future__ import annotations

import pytest
import yaml

from planner.catalog.workload_sizing import size_workloads
from planner.generate import generate_yaml
from planner.pipeline import ValidateOptions, plan
from planner.solver import solve
from planner.solver.model import EXACT_PAIRS
from planner.spec.loader import load_spec
from tests.test_solver_properties import _check

SITES, WORKLOADS, SEED = 100, 1000, 1


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    text = generate_yaml(SITES, WORKLOADS, SEED)
    path = tmp_path_factory.mktemp("scale") / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    spec = load_spec([path])
    result = plan(spec, ValidateOptions())
    return yaml.safe_load(text), spec, result


def _sizing(spec, facts) -> dict[str, dict[str, tuple[bool, int]]]:
    """Per workload and GPU model: (fits, GPUs per replica), from the catalog's sizing."""
    gpus = sorted({p.gpu for p in facts.pools})
    return {
        w_id: {s.gpu: (bool(s.fits), int(s.gpus_per_replica)) for s in sized}
        for w_id, sized in size_workloads(spec, facts.catalog, gpu_ids=gpus).items()
    }


def test_large_spec_is_solved_within_one_percent_of_its_bound(planned):
    _, _, result = planned
    objective = result.plan.objective
    assert result.plan.stats["pairs"] > EXACT_PAIRS  # the large-model path
    assert objective.status in ("optimal", "feasible")
    assert 0.0 <= objective.bound <= objective.value
    assert objective.gap <= 0.01
    assert result.plan.placements


def test_large_spec_plan_is_admissible_and_fits(planned):
    doc, spec, result = planned
    _check(doc, result.plan, sizing=_sizing(spec, result.facts))


def test_large_spec_plan_respects_policy_denials(planned):
    _, _, result = planned
    denied = [(p.workload, p.site) for p in result.plan.placements if p.site in result.denials.get(p.workload, {})]
    assert denied == []


def test_large_spec_plan_is_deterministic(planned):
    _, spec, result = planned
    again = solve(spec, result.facts, result.denials)
    assert again.as_json() == result.plan.as_json()
