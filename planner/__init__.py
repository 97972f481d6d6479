"""medplan: a compliance-aware deployment planner and policy engine for medical AI.

Public API::

    from planner import load_spec, validate, plan
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_spec", "validate", "plan"]


def __getattr__(name: str):
    # Heavy modules load on first use so that `medplan --help` stays fast.
    if name == "load_spec":
        from planner.spec.loader import load_spec

        return load_spec
    if name == "validate":
        from planner.pipeline import validate

        return validate
    if name == "plan":
        from planner.pipeline import plan

        return plan
    raise AttributeError(name)
