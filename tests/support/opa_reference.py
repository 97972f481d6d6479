"""The real OPA v1.20 Go engine, for deciding what the right answer is.

``opa-golib-python-bindings`` (import name ``opa_bindings``) embeds OPA's
``v1/rego`` package as a shared library behind a ctypes wrapper::

    from opa_bindings import OpaEngine, OpaError, OpaUndefinedError
    with OpaEngine() as e:
        e.add_policy("hipaa.rego", text)          # parses only
        e.add_data({...}, path="catalog")        # deep-merged into data
        e.eval_document("medplan.hipaa.deny", input_dict)   # -> value
        e.eval_query("x := data.medplan.hipaa.deny", input_dict)
        #   -> [{"x": value}, ...]  (bindings only, one dict per result)

``add_policy`` only parses; the modules are compiled together on the first
evaluation, where type errors, unsafe variables and the like surface as
``OpaError(code="prepare_error")``. A parse error is
``OpaError(code="parse_error")``. Sets come back as sorted lists, as OPA
serialises them. The bindings have no ``opa test`` runner, so
:func:`run_tests` evaluates each ``test_*`` rule itself.

Modules are Rego v1 (OPA 1.x); ``import rego.v1`` is accepted and harmless.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

__all__ = [
    "available",
    "require_opa",
    "engine",
    "check_modules",
    "evaluate",
    "run_tests",
    "module_package",
    "test_rule_names",
    "Undefined",
    "OpaError",
    "to_json",
]

_RESULT_VAR = "__medplan_ref_result__"

try:  # the bindings are test-only; keep this module importable without them
    from opa_bindings import OpaEngine as _OpaEngine
    from opa_bindings import OpaError
    from opa_bindings import OpaUndefinedError as _OpaUndefinedError
except ImportError:  # pragma: no cover - exercised only where not installed
    _OpaEngine = None

    class OpaError(Exception):  # type: ignore[no-redef]
        def __init__(self, code: str, message: str):
            super().__init__(f"{code}: {message}")
            self.code = code
            self.message = message

    class _OpaUndefinedError(OpaError):  # type: ignore[no-redef]
        pass


class Undefined(LookupError):
    """The query has no result (OPA's "undefined")."""


def available() -> bool:
    return _OpaEngine is not None


def require_opa() -> bool:
    """Skip (or, with MEDPLAN_REQUIRE_TOOLS=1, fail) when the bindings are absent."""
    from .tools import _require

    return _require(available(), "opa-golib-python-bindings (reference OPA engine)")


def engine(modules: Mapping[str, str], data: Any = None):
    """A new ``OpaEngine`` holding ``modules`` ({name: rego text}) and ``data``.

    The caller closes it (it is a context manager). Raises ``OpaError`` on a
    parse error; compile errors appear at the first evaluation.
    """
    if _OpaEngine is None:
        raise RuntimeError("opa-golib-python-bindings is not installed (run .ci/install-tools)")
    e = _OpaEngine()
    try:
        for name, text in modules.items():
            e.add_policy(name, text)
        if data is not None:
            e.add_data(data)
    except BaseException:
        e.close()
        raise
    return e


def check_modules(modules: Mapping[str, str], data: Any = None) -> None:
    """Parse and compile ``modules`` together; raise ``OpaError`` if OPA rejects them."""
    with engine(modules, data) as e:
        # Preparing any query compiles every module (type check, safety, ...).
        e.eval_query("true")


def evaluate(
    modules: Mapping[str, str],
    input: Any = None,
    query: str = "data",
    *,
    data: Any = None,
    undefined: Any = Undefined,
) -> Any:
    """Evaluate one Rego expression with OPA and return its plain JSON value.

    ``query`` is a single expression such as ``data.medplan.hipaa.deny``;
    the value is what OPA's REST API would put under ``result`` (sets become
    sorted lists, objects dicts). If the query is undefined, ``Undefined`` is
    raised unless ``undefined=`` gives a value to return instead. A query
    with several results (``data.x.deny[_]``) is a ``ValueError``: ask for
    the collection instead.
    """
    with engine(modules, data) as e:
        rows = e.eval_query(f"{_RESULT_VAR} := ({query})", input)
    if not rows:
        if undefined is Undefined:
            raise Undefined(query)
        return undefined
    if len(rows) > 1:
        raise ValueError(f"{query!r} has {len(rows)} results; evaluate a single value")
    return rows[0][_RESULT_VAR]


_PACKAGE_RE = re.compile(r"^[ \t]*package[ \t]+([^\s#]+)", re.MULTILINE)
# Test rules are top-level rules (column 0 after `opa fmt`) named test_*.
_TEST_RULE_RE = re.compile(r"^(test_[A-Za-z0-9_]*)(?=[ \t]*(?:if\b|:=|=(?!=)|\{|$))", re.MULTILINE)


def module_package(text: str) -> str:
    """The package path of a module (``package medplan.hipaa`` -> ``medplan.hipaa``)."""
    m = _PACKAGE_RE.search(text)
    if not m:
        raise ValueError("module has no package declaration")
    return m.group(1)


def test_rule_names(text: str) -> list[str]:
    """``test_*`` rule names in a module, in order of first appearance."""
    seen: dict[str, None] = {}
    for m in _TEST_RULE_RE.finditer(text):
        seen.setdefault(m.group(1), None)
    return list(seen)


test_rule_names.__test__ = False  # not a pytest test


def run_tests(modules: Mapping[str, str], data: Any = None) -> list[tuple[str, bool]]:
    """Run the ``test_*`` rules of ``modules`` like ``opa test`` does.

    Returns ``[("data.<package>.<test_name>", passed), ...]`` in module and
    rule order. A test passes when its rule evaluates to ``true``; false,
    undefined or an evaluation error fail it. ``todo_test_*`` rules are
    skipped, as by ``opa test``. A module set that does not compile raises
    ``OpaError`` (``opa test`` would also stop there).
    """
    results: list[tuple[str, bool]] = []
    with engine(modules, data) as e:
        e.eval_query("true")  # compile everything once; raise on errors
        for text in modules.values():
            names = test_rule_names(text)
            if not names:
                continue
            pkg = module_package(text)
            for name in names:
                ref = f"data.{pkg}.{name}"
                try:
                    rows = e.eval_query(f"{_RESULT_VAR} := {ref}")
                    passed = len(rows) == 1 and rows[0][_RESULT_VAR] is True
                except OpaError:
                    passed = False
                results.append((ref, passed))
    return results


run_tests.__test__ = False  # not a pytest test


def to_json(value: Any) -> str:
    """Canonical JSON for comparing answers from two engines."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
