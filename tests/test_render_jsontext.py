"""The fast indented JSON writer (plan.json, SARIF, OSCAL, values.schema.json)
writes exactly what ``json.dumps(doc, indent=2, ensure_ascii=False)`` writes,
but null for NaN and infinities (which JSON has no numbers for)."""

from __future__ import annotations

import enum
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.render.jsontext import dumps_indented

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Level(enum.IntEnum):
    high = 3


class Kind(str, enum.Enum):
    odd = 'odd "kind"\n%s'


def finite(doc):
    """``doc`` with None for NaN and infinities."""
    if isinstance(doc, float) and not math.isfinite(doc):
        return None
    if isinstance(doc, dict):
        return {key: finite(value) for key, value in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [finite(value) for value in doc]
    return doc


def standard(doc, sort_keys: bool) -> str:
    return json.dumps(finite(doc), indent=2, sort_keys=sort_keys, ensure_ascii=False)


# Text like what the writer searches for (numbers at the end of a line, keys before them), escapes, line breaks.
TRICKY = ["", ",\n", '"', '\\"', "\u0000", '"\\u0000"', "%s", "\n", "\u2028", "é", "a, b", "}", "]", "1e-7", "x\": 1e-7", "0.00001", '": 0.00001,\n']
text = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-4, max_value=1e-4),  # what orjson writes otherwise than Python
    text,
    st.sampled_from([Level.high, Kind.odd]),
)
keys = st.one_of(st.sampled_from(["a", "b", "nodes", "%s", "k\n", ""]), text)


def _records(children):
    """Lists of objects that mostly share their keys: what the column-by-column path writes."""
    return st.lists(keys, max_size=4, unique=True).flatmap(
        lambda shape: st.lists(
            st.one_of(
                st.fixed_dictionaries({k: children for k in shape}),
                st.dictionaries(keys, children, max_size=3),
            ),
            max_size=9,
        )
    )


documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(keys, children, max_size=6),
        _records(children),
        _records(children).map(lambda items: {f"k{n}": item for n, item in enumerate(items)}),
        st.lists(st.lists(children, max_size=4), min_size=4, max_size=6),
        st.dictionaries(keys, st.lists(children, min_size=1, max_size=3), min_size=4, max_size=6),
    ),
    max_leaves=60,
)


@SETTINGS
@given(documents, st.booleans())
def test_same_text_as_json_dumps(doc, sort_keys):
    assert dumps_indented(doc, sort_keys=sort_keys) == standard(doc, sort_keys)


@pytest.mark.parametrize("sort_keys", [False, True])
def test_edge_cases(sort_keys):
    placement = {"workload": "w", "replica": 1, "site": "s", "pool": "p", "gpu": "H100", "gpus": 8, "cost_per_hour": 2.5}
    docs = [
        {},
        [],
        {"a": {}, "b": [], "c": [[]], "d": [{}], "e": [{}, {}, {}, {}, {}]},
        [{**placement, "nodes": list(range(n))} for n in range(6)],  # a column of lists, some empty
        [{"x": {"y": [1, {"z": None}]}} for _ in range(5)],
        [{"b": 1, "a": 2}, {"a": 3, "b": 4}] * 3,  # same keys in another order
        [{1: "int key"}, {None: 1}, {2.5: 0}, {True: 0}],
        {"nan": math.nan, "inf": -math.inf, "zero": -0.0, "big": 10**30, "e": 1e300},
        [1e-7, -0.00001, 10.00001, 9.99e-5, 1e-4, 5e-324, -1.5e-300, {"k\": 1e-5": 2e-5, "1e-5": [0.00003]}],
        1e-9,
        {"big": 10**30, "small": 1e-9, "nan": math.nan},  # the standard library's path
        [[[[[["deep"]]]]]],
        [Level.high, Kind.odd, {"k": Kind.odd}],
        {name: {"$ref": f"#/definitions/{name}"} for name in ("d", "c", "b", "a", "%s")},  # an object of objects
        {name: [name, 1] for name in ("d", "c", "b", "a")},
        {1: {"a": 1}, 2: {"a": 2}, 3: {"a": 3}, 4: {"a": 4}},
    ]
    for doc in docs:
        assert dumps_indented(doc, sort_keys=sort_keys) == standard(doc, sort_keys)


def test_what_json_refuses_it_refuses():
    with pytest.raises(TypeError):
        dumps_indented({"a": [{1, 2}]})
    with pytest.raises(TypeError):
        dumps_indented({"a": 1, 2: "b"}, sort_keys=True)  # keys that do not compare
    loop: list = []
    loop.append(loop)
    with pytest.raises((ValueError, RecursionError)):
        dumps_indented({"loop": loop})


def test_small_floats_are_written_as_python_writes_them():
    values = [m * 10.0**e for m in (1, 1.5, 9.99, 3.14159) for e in range(-330, -3)]
    doc = {"values": values, "pairs": [{"x": v, "y": -v} for v in values]}
    assert dumps_indented(doc) == standard(doc, False)
    assert json.loads(dumps_indented(doc)) == doc
