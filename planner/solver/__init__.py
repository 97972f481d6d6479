"""Placement: admissible (workload, pool) pairs, an exact MILP over them
(HiGHS), the plan with its proven bound, and explanations.

    from planner.solver import solve
    plan = solve(spec, facts, policy_denials)   # workload -> site -> [(rule id, message)]
    plan.as_json(); plan.summary("ct-triage"); plan.explain("ct-triage")
"""

from planner.solver.admissibility import (
    CONSTRAINTS,
    Admissibility,
    Candidate,
    Reason,
    WorkloadAdmissibility,
    admissibility,
    expand_denials,
)
from planner.solver.explain import explain, remedies, summary
from planner.solver.plan import Objective, Placement, Plan, PoolUsage, Unplaced, solve

__all__ = [
    "CONSTRAINTS",
    "Admissibility",
    "Candidate",
    "Objective",
    "Placement",
    "Plan",
    "PoolUsage",
    "Reason",
    "Unplaced",
    "WorkloadAdmissibility",
    "admissibility",
    "expand_denials",
    "explain",
    "remedies",
    "solve",
    "summary",
]
