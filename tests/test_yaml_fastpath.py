"""The line reader (``planner.spec.fastyaml``) against the event builder.

Whatever text the line reader accepts, it must return exactly what
``_Builder`` returns: the same values of the same types (``True`` is not
``1``, ``1.0`` is not ``1``), keys in the same order, and the same position
for every key, value and collection. Whatever ``_Builder`` refuses, the line
reader must have declined, so that the refusal and its message stay those of
``_Builder``. Checked on every YAML file in the repository, on generated
specs, and on YAML drawn from a grammar of the block subset with mutations
that step outside it.
"""

from __future__ import annotations

import marshal
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import InputError
from planner.generate import generate_yaml
from planner.spec import fastyaml, yamlsource
from planner.spec.fastyaml import parse_block
from planner.spec.yamlsource import MAX_DEPTH, MAX_SCALAR_CHARS, _Builder, _Where, parse_yaml
from tests.conftest import MINIMAL, REPO
from tests.support.spec_fuzz import FUZZ, dump, spec_texts, valid_specs


# --------------------------------------------------------------------------- comparing


def _same_data(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_data(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same_data, a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _same_positions(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if not isinstance(a, _Where):
        return a == b
    if a.at != b.at or type(a.values) is not type(b.values):
        return False
    if isinstance(a.values, list):
        return (
            a.keys is None
            and b.keys is None
            and len(a.values) == len(b.values)
            and all(map(_same_positions, a.values, b.values))
        )
    return (
        list(a.values) == list(b.values)
        and list(a.keys) == list(b.keys)
        and a.keys == b.keys
        and all(_same_positions(a.values[k], b.values[k]) for k in a.values)
    )


def _builder(text: str):
    """_Builder's (data, root), or the exception it raised."""
    try:
        return _Builder(text, "t.yaml").document()
    except (InputError, yaml.YAMLError, RecursionError) as exc:
        return exc


def check(text: str) -> bool:
    """The line reader agrees with _Builder on ``text``; whether it accepted it."""
    fast = parse_block(text)
    slow = _builder(text)
    if fast is None:
        assert not _joined(text), f"read in two parts what is declined whole:\n{text!r}"
        return False
    assert not isinstance(slow, Exception), f"accepted what _Builder refuses ({slow}):\n{text!r}"
    assert _same_data(fast[0], slow[0]), f"data differs:\n{text!r}\nfast {fast[0]!r}\nslow {slow[0]!r}"
    assert _same_positions(fast[1], slow[1]), f"positions differ:\n{text!r}"
    _check_light(text, fast)
    _check_split(text, fast)
    return True


def _joined(text: str) -> bool:
    """Whether ``text`` read in two parts and joined gives a result."""
    parts = fastyaml.split(text)
    if parts is None:
        return False
    head, tail, first_line, key = parts
    found = [parse_block(head), parse_block(tail, False, first_line)]
    return None not in found and fastyaml.join(found[0], found[1], key) is not None


def _check_split(text: str, whole) -> bool:
    """Read in two parts (each packed as the copy sends it back) and joined,
    ``text`` gives what reading it whole gives; whether it had two parts."""
    parts = fastyaml.split(text)
    if parts is None:
        return False
    head, tail, first_line, key = parts
    assert head + "\n" + tail.split("\n", 1)[1] == text
    for light in (False, True):
        found = [fastyaml.parse_block(head, light), fastyaml.parse_block(tail, light, first_line)]
        if None in found:  # a part the line reader declines: the whole is read instead
            continue
        joined = fastyaml.join(found[0], fastyaml.unpack(marshal.loads(marshal.dumps(fastyaml.pack(found[1])))), key)
        expected = whole if not light else parse_block(text, True)
        assert joined is not None and _same_data(joined[0], expected[0]), text
        assert _same_light_positions(joined[1], expected[1]), text
    return True


def _same_light_positions(a, b) -> bool:
    """Positions as _same_positions compares them, light ones (keys None, items None) included."""
    if type(a) is not type(b):
        return False
    if not isinstance(a, _Where):
        return a == b
    if a.at != b.at or a.keys != b.keys or type(a.values) is not type(b.values) or len(a.values) != len(b.values):
        return False
    if isinstance(a.values, dict):
        return list(a.values) == list(b.values) and all(_same_light_positions(a.values[k], b.values[k]) for k in a.values)
    return all(map(_same_light_positions, a.values, b.values))


def _paths(data, path=()):
    """Every path in ``data``, and one that is absent under each collection."""
    yield path
    if isinstance(data, dict):
        yield (*path, "absent-key")
        for key, value in data.items():
            yield from _paths(value, (*path, key))
    elif isinstance(data, list):
        yield (*path, len(data))
        for index, value in enumerate(data):
            yield from _paths(value, (*path, index))


def _check_light(text: str, full) -> None:
    """A light reading gives the same data, and the same position wherever it
    has one: always for a collection, and for a key or scalar of the top
    levels; SourceFile reads the text again, in full, for the rest."""
    light = parse_block(text, light=True)
    assert light is not None and _same_data(light[0], full[0])
    for path in _paths(full[0]):
        for key in (False, True):
            found = yamlsource._walk(light[1], path, key)
            expected = yamlsource._walk(full[1], path, key)
            if found is not None:
                assert yamlsource._at(found) == yamlsource._at(expected), (path, key, text)
                continue
            # Left out: below the top levels, a key, a scalar or a path that is not there.
            assert len(path) > fastyaml.LIGHT_FROM_DEPTH and (key or not isinstance(_value_at(full[0], path), (dict, list))), (path, key)


def _value_at(data, path):
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


# --------------------------------------------------------------------------- files


def _yaml_files() -> list[Path]:
    return sorted(p for top in ("examples", "tests") for p in (REPO / top).rglob("*.y*ml"))


def test_every_yaml_file_in_the_repository():
    accepted, declined = [], []
    for path in _yaml_files():
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            continue
        (accepted if check(text) else declined).append(path.relative_to(REPO).as_posix())
    # Block-style specs and fixtures are really read by the line reader...
    assert {
        "examples/academic-medical-center/data.yaml",
        "examples/academic-medical-center/sites.yaml",
        "examples/academic-medical-center/workloads.yaml",
        "examples/broken/duplicate-id.yaml",
        "tests/fixtures/rules/MP-PLAT-HA-001/bad.yaml",
    } <= set(accepted)
    assert len(accepted) >= 70, declined
    # ... and what it declines has a block scalar, an anchor, an error or is no spec.
    assert "examples/academic-medical-center/spec.yaml" in declined  # description: >-
    assert "examples/broken/duplicate-key.yaml" in declined


@pytest.mark.parametrize("sites, workloads, seed", [(1, 1, 1), (3, 10, 2), (20, 100, 3), (60, 400, 7)])
def test_generated_specs_are_read_by_the_line_reader(sites, workloads, seed):
    assert check(generate_yaml(sites, workloads, seed))


@pytest.mark.parametrize("sites, workloads, seed", [(3, 10, 2), (60, 400, 7)])
def test_a_large_spec_is_read_in_two_parts_as_it_is_whole(sites, workloads, seed):
    """The second part begins at an item of the section 70 % of the lines in (or of the next)."""
    text = generate_yaml(sites, workloads, seed)
    assert _check_split(text, parse_block(text))
    head, tail, first_line, key = fastyaml.split(text)
    assert key in ("workloads", "flows") and tail.startswith(f"{key}:\n- id: ") and first_line == head.count("\n")
    assert head.count("\n") >= fastyaml.SPLIT_AT * text.count("\n") - 1


@pytest.mark.parametrize(
    "text",
    [
        MINIMAL,  # no section runs past 60 % of the lines with items
        "a:\n  b: 1\n" * 3 + "c:\n" + "  d: 1\n" * 10,  # a mapping, not a sequence
        "x: 1\n" * 10 + "s: [1, 2]\n",  # a flow sequence
    ],
)
def test_a_file_without_a_section_of_items_there_is_read_whole(text):
    assert fastyaml.split(text) is None


def test_parts_that_do_not_fit_together_are_read_whole():
    """A section in both parts (or a duplicate key) is the whole reading's to explain."""
    text = "a: 1\nitems:\n" + "".join(f"- id: i{n}\n" for n in range(20)) + "a: 2\n"
    head, tail, first_line, key = fastyaml.split(text)
    assert fastyaml.join(parse_block(head), parse_block(tail, False, first_line), key) is None
    with pytest.raises(InputError, match="duplicate key 'a'"):
        parse_yaml(text.encode(), "twice.yaml")


def test_parse_yaml_reads_block_style_without_the_event_builder(monkeypatch):
    raw = generate_yaml(5, 20, 4).encode()
    expected = yamlsource.SourceFile("g.yaml", *_Builder(raw.decode(), "g.yaml").document())
    monkeypatch.setattr(yamlsource, "_Builder", None)  # not to be called
    source = parse_yaml(raw, "g.yaml")
    assert _same_data(source.data, expected.data) and _same_positions(source.root, expected.root)
    for path in [("workloads", 3, "kind"), ("sites", 2, "pools", 0), ("links",), ("nope", 1)]:
        assert source.locate(path) == expected.locate(path)
        assert source.locate(path, key=True) == expected.locate(path, key=True)


def test_a_light_reading_reads_the_text_again_only_for_a_deep_key_or_scalar():
    raw = generate_yaml(5, 20, 4).encode()
    full = parse_yaml(raw, "g.yaml")
    light = parse_yaml(raw, "g.yaml", light=True)
    assert light.light and _same_data(light.data, full.data)
    # What a spec that loads is asked: where its sites, pools, flows... are
    # (findings), and the keys of the top levels.
    for path in [("workloads", 3), ("sites", 2, "pools", 0), ("flows", 1), ("links",), ("metadata", "name")]:
        assert light.locate(path) == full.locate(path)
    for path in [("links",), ("metadata", "name"), ("workloads", 3)]:
        assert light.locate(path, key=True) == full.locate(path, key=True)
    assert light.light
    # An error's place deep down: read again, in full, once.
    assert light.locate(("workloads", 3, "kind"), key=True) == full.locate(("workloads", 3, "kind"), key=True)
    assert not light.light and _same_positions(light.root, full.root)


def test_a_spec_that_loads_is_read_once(monkeypatch, tmp_path):
    """Planning a generated spec, locating its findings and rendering every
    format needs no position the light reading leaves out."""
    from planner import pipeline
    from planner.render import render_plan_files

    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(20, 100, 3), encoding="utf-8")
    readings: list[bool] = []
    real = fastyaml.parse_block
    monkeypatch.setattr(fastyaml, "parse_block", lambda text, light=False: readings.append(light) or real(text, light))
    result = pipeline.run_plan([str(path)], pipeline.ValidateOptions())
    files = render_plan_files(result, timestamp="2026-01-01T00:00:00Z")
    assert readings == [True]
    assert result.findings and all(f.location is not None for f in result.findings if f.subject.kind != "spec")
    assert "findings.sarif" in files


def test_parse_yaml_falls_back_to_the_event_builder():
    text = MINIMAL + "notes: >-\n  folded\n  text\n"  # a block scalar
    assert parse_block(text) is None
    assert parse_yaml(text.encode(), "m.yaml").data["notes"] == "folded text"
    # Errors are _Builder's own.
    with pytest.raises(InputError, match="duplicate key 'zone'"):
        parse_yaml(MINIMAL.replace("    zone: us\n", "    zone: us\n    zone: eu\n").encode(), "d.yaml")


# --------------------------------------------------------------------------- fixed cases

ACCEPTED = [
    "a: 1\n",
    "a:\nb: 2",  # an empty value, at the end of a line without a line break too
    "a:   # comment\nb:\n",
    "a:\n- \n-\n- x\n-  # c\nb: [ ]\n",
    "a:\n  - k: 1\n    j:\n  -   z: {}\n",
    "a:\n  -\n    k: v\n  -\n    - nested\n",
    "a:\n- b:\n  - x\n  c: 1\n",
    "--- \na: 1\n",
    "# c\n---\n# c\na: 1\n",
    "  a: 1\n  b: 2\n",
    "a: 'x # y: z'\nb: \"q 'r'\"\nc: ''\nd: \"\"\n",
    "a: 'it''s'\nb: ''''\nc: ['a''b', '']\n",
    "a: \u00a0x\u3000\nb: \u202ey\n\u00e9\u200d: \ue000\n",  # not ASCII, and no spaces to YAML
    "a: x # c\nb: x#c\nc: a:b\nd: http://x/y\ne: 50%\nf: a, b [c] {d}\n",
    "a: [1, 'two', \"three\", four five , -1, ~, true, 0x1F, 1e3]\n",
    "a: {b: [1, {c: d}], e: f}  # c\n",
    "a: -x\nb: -.5\nc: +1\nd: 010\ne: 0o17\nf: .inf\ng: -.inf\nh: .nan\ni: Null\nj: yes\nk: 2026-11-01\nl: 1_000\n",
    "name: x\nnodes: 2\nto: y\nfrom: z\nteam: t\nno: n\nyes: y\nNo: n\n",
    "é: ü\n東京: 病院\nk: 😀 x\n",
    "a b: c  d\n",
    "a : 1\nb  :\n",
    "x: ...\ny: ---\n",
]

DECLINED = [
    "",
    "# only a comment\n",
    "- a\n",
    "scalar\n",
    "a: 1\n---\nb: 2\n",
    "a: 1\n...\n",
    "%YAML 1.2\n---\na: 1\n",
    "---\n---\na: 1\n",
    "a: 1\na: 2\n",
    "a: {b: 1, b: 2}\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: |\n  text\n",
    "a: >-\n  text\n",
    "a: b\n  c\n",  # a plain scalar continued on the next line
    "a: 'b\n  c'\n",
    "a:\n  b: 1\n c: 2\n",
    "a:\n  - x\n  b: 1\n",
    "a: 1\n- x\n",
    "a: - x\n",
    "a: b: c\n",
    "a: b:\n",
    "a:b\n",
    "'a': 1\n",
    "? a\n: 1\n",
    "<<: {a: 1}\n",
    "true: 1\n",
    "1: x\n",
    "~: x\n",
    'a: "\\t"\n',
    "a: [a,]\n",
    "a: [a, b: c]\n",
    "a: {a}\n",
    "a: {a: }\n",
    "a: [a\n",
    "a: [a] b\n",
    "a: 'b' c\n",
    "a:\tb\n",
    "a: 1\r\nb: 2\r\n",
    "a: b\x85c\n",
    "a: b\u2028c\n",
    "a: \ufeffb\n",
    "a: b\x1bc\n",
    "a: " + "1" * 31 + "\n",
    "a: 0x" + "f" * 40 + "\n",
    "a: " + "x" * (MAX_SCALAR_CHARS + 1) + "\n",
    "k" * 1030 + ": v\n",
    "k" + " " * 1030 + ": v\n",
    "a: ?x\n",
    "a: @x\n",
    "a: `x\n",
    "a: {a:1}\n",  # the key 'a:1', with a null value
    "a: {k:vw, x: y}\n",
    "a: {'a': 1}\n",
    'a: {"a": 1}\n',
    "  ---\na: 1\n",
    "a: 1\n... b: 2\n",
    "a:\n  b\n",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted(text):
    assert check(text)


@pytest.mark.parametrize("text", DECLINED)
def test_declined(text):
    assert not check(text)


@pytest.mark.parametrize("levels", [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
def test_nesting_near_the_limit(levels):
    blocks = "".join(" " * i + "a:\n" for i in range(levels)) + " " * levels + "b: 1\n"
    flows = "a: " + "[" * levels + "]" * levels + "\n"
    items = "a: " + "[x, " * levels + "x" + "]" * levels + "\n"
    half = levels // 2
    mixed = "".join(" " * i + "a:\n" for i in range(half)) + " " * half + "b: " + "[" * half + "]" * half
    for text in (blocks, flows, items, mixed):
        check(text)
    assert check(blocks) == check(items) == (levels <= MAX_DEPTH - 1)


def test_equal_lines_hold_their_own_collections():
    data, _ = parse_block("a:\n- [x]\n- [x]\n- {b: []}\n- {b: []}\n")
    assert data["a"][0] is not data["a"][1] and data["a"][2] is not data["a"][3]
    assert data["a"][2]["b"] is not data["a"][3]["b"]


def test_the_node_limit(monkeypatch):
    """With a small MAX_NODES, the line reader declines before _Builder would refuse."""
    text = "a:\n" + "".join(f"- {{b: [{i}, {i}]}}\n" for i in range(10)) + "c: [1, 2, 3]\n"
    accepted = []
    for limit in range(1, 120):
        monkeypatch.setattr(yamlsource, "MAX_NODES", limit)
        monkeypatch.setattr(fastyaml, "MAX_NODES", limit)
        accepted.append(check(text))
    assert accepted[-1] and not accepted[0]


# --------------------------------------------------------------------------- the grammar

KEYS = ["id", "name", "nodes", "team", "to", "from", "kind", "a b", "x-extra", "Ärzte", "東京", "k😀", "no", "yes", "Null_x"]
ODD_KEYS = [
    "true", "1", "null", "~", "<<", ".k", "-k", "?k", "k#x", "a:b", "'q'", '"q"', "[k]", "{k}", "*a", "&a k",
    "!t k", "%k", "@k", "`k", "k ", "a  b",
]  # fmt: skip
PLAIN = [
    "phi", "us-east-1", "H100", "ds-00643", "platform@example.org", "Radiology AI", "a  b", "C#", "x,y", "a[b]",
    "it's", 'say "hi"', "ü", "😀 x", "50%", "-x", "2026-11-01", "a:b", "http://x/y", "...", "---", "a ]", "x!",
]  # fmt: skip
TYPED = [
    "010", "0o17", "0x1F", "1e3", ".inf", "-.inf", ".nan", "-.5", "+1", "~", "Null", "NULL", "null", "yes", "no",
    "true", "False", "TRUE", "1_000", "0.5", "-1", "12", "1.", "+.5e-3", "0o9", "0xG",
]  # fmt: skip
QUOTED_AND_FLOW = [
    "'q'", '"q"', "''", '""', "' a # b: c '", '"x, [y]"', "[a, b]", "[]", "[ ]", "{}", "{ }", "{a: 1}",
    "{a: 1, b: [x, 'y']}", "[a, [b, {c: d}]]", "[-1, +2, .5, ~, true]", "{no: yes, to: 1}", "[ 'a' ,\"b\" ]",
    "'it''s'", "''''", "[a, 'b''c']",
]  # fmt: skip
ODD_VALUES = [
    "- x", "-", "a: b", "a:", "a #b", "'it''s'", '"a\\"b"', '"a\\tb"', "[a,]", "[a, b: c]", "{a}", "{a: }", "{a:1}",
    "[a #b]", "&a x", "*a", "!t x", "!!str x", "|", ">-", "@x", "`x", "%x", ",x", "?x", ":x", "]", "}", "[a",
    "{a: 1", "'open", '"open', "[a] b", "'a' b", "[a, 'b]", "{a: 1, a: 2}", "[[[]]]", "[a, {b: [c, d]}, e]",
]  # fmt: skip
# Keys near libyaml's simple key limit, numbers near the digit limit.
LONG_KEYS = st.sampled_from([999, 1000, 1001, 1030]).map(lambda n: "k" * n)
LONG_VALUES = st.tuples(st.sampled_from(["1", "-9", "0x1", "0o1", "x"]), st.sampled_from([29, 30, 31])).map(
    lambda t: t[0] + "1" * t[1]
)
# Characters for drawn text: letters, YAML's indicators, spaces, non-ASCII.
ALPHABET = [*"abcxyz019-_./", *":{}[]&*!|>'\"%@`#,?~ \\", "é", "東", "😀", "\xa0", "\u200d", "\ufeff", "\t", "\x85"]
WORDS = st.text(st.sampled_from("abcxyz019-_./@%é東😀 "), min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and s[0] not in "-.@%" and "--" not in s
)
SAFE_SCALARS = st.sampled_from(PLAIN + TYPED + QUOTED_AND_FLOW) | WORDS
FLOW_WORDS = st.sampled_from(
    ["a", "b c", "1", "-1", "0x1F", "~", "true", "x&y", "a?b", "a!b", "a*b", "a|b", "é", "'q'", '"q"', "''", "'a,b'",
     '"[x]"', "'#'", "-", "?", ":", "a:b", "a:", "#", "a #b", "a#b", "", " ", "[", "}"]
)  # fmt: skip
SEPARATORS = st.sampled_from([(", ", ": "), (", ", ": "), (",", ": "), (" , ", " : "), (",", ":"), (", ", ":  ")])


def _flow_collection(inner):
    """``[..]`` or ``{..: ..}`` of ``inner``, spaced in one of the ways YAML allows (or not)."""
    return st.one_of(
        st.tuples(st.lists(inner, max_size=3), SEPARATORS).map(lambda t: "[" + t[1][0].join(t[0]) + "]"),
        st.tuples(st.lists(st.tuples(FLOW_WORDS, inner), max_size=3), SEPARATORS).map(
            lambda t: "{" + t[1][0].join(f"{k}{t[1][1]}{v}" for k, v in t[0]) + "}"
        ),
    )


FLOWS = _flow_collection(st.recursive(FLOW_WORDS, _flow_collection, max_leaves=6))


def _weighted(*choices):
    """One of the (weight, strategy) choices, in proportion to the weights
    (st.one_of draws a branch by its own measure)."""
    strategies = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(strategies) - 1).flatmap(lambda i: strategies[i])


SCALARS = _weighted(
    (6, SAFE_SCALARS),
    (1, st.sampled_from(ODD_VALUES) | LONG_VALUES),
    (1, FLOWS),
    (1, st.integers(-(10**6), 10**6).map(str) | st.floats(allow_nan=True, allow_infinity=True).map(str)),
    (1, st.text(st.sampled_from(ALPHABET), min_size=1, max_size=12)),
)


def _trees(keys, scalars, unique: bool = True):
    """Nodes: ("s", text), "" being no value; ("m", [(key, node)]); ("q", [node])."""
    return st.recursive(
        st.tuples(st.just("s"), scalars | st.just("")),
        lambda node: st.tuples(
            st.just("m"), st.lists(st.tuples(keys, node), min_size=1, max_size=4, unique_by=(lambda e: e[0]) if unique else None)
        )
        | st.tuples(st.just("q"), st.lists(node, min_size=1, max_size=4)),
        max_leaves=12,
    )


SAFE_KEYS = st.sampled_from(KEYS)
ANY_KEYS = _weighted((20, st.sampled_from(KEYS)), (2, st.sampled_from(ODD_KEYS)), (1, LONG_KEYS))


def _top(keys, scalars, unique: bool = True):
    """A mapping of one to five keys."""
    entries = st.tuples(keys, _trees(keys, scalars, unique))
    return st.tuples(st.just("m"), st.lists(entries, min_size=1, max_size=5, unique_by=(lambda e: e[0]) if unique else None))


SAFE_ROOT = _top(SAFE_KEYS, SAFE_SCALARS)
ANY_ROOT = _weighted((6, _top(ANY_KEYS, SCALARS)), (1, _top(ANY_KEYS, SCALARS, unique=False)), (1, _trees(ANY_KEYS, SCALARS)))
EMPTY = st.sampled_from(["", "", " ", "  # nothing"])
# The spaces before a value and what follows it.
AROUND = st.sampled_from([(" ", ""), (" ", ""), (" ", ""), ("  ", ""), (" ", "  "), (" ", " # c"), ("  ", "   # c")])
STEP = st.sampled_from([1, 2, 2, 2, 3, 4])
DASH_SPACES = st.sampled_from([1, 1, 1, 2, 3])


def _render(draw, node, col: int, lines: list[str]) -> None:
    """The lines of a block mapping or sequence whose keys or dashes are at ``col``."""
    kind, body = node
    for entry in body:
        key, child = entry if kind == "m" else ("", entry)
        head = " " * col + (f"{key}:" if kind == "m" else "-")
        child_kind, child_body = child
        if child_kind == "s":
            if child_body == "":
                lines.append(head + draw(EMPTY))
            else:
                before, after = draw(AROUND)
                lines.append(head + before + child_body + after)
        elif child_kind == "m" and kind == "q" and draw(st.booleans()):
            # "- key: value", the mapping's other keys at the first key's column.
            nested: list[str] = []
            _render(draw, child, col + 1 + draw(DASH_SPACES), nested)
            lines.append(head + nested[0][col + 1 :])
            lines.extend(nested[1:])
        else:
            lines.append(head + draw(EMPTY))
            indentless = kind == "m" and child_kind == "q" and draw(st.booleans())
            _render(draw, child, col if indentless else col + draw(STEP), lines)


MUTATIONS = st.sampled_from(
    ["comment", "blank", "trailing", "indent", "duplicate", "delete", "insert", "continue", "documents", "long", "crlf", "tab"]
)
COMMENTS = st.sampled_from(["#", "# c", "#: x", "# - y", "#\t"])
TRAILING = st.sampled_from(["  ", " #", " # x: y", "#x", " x", ": ", ":", " -", " 'q'", " [a]", "\t"])
INSERTED = st.sampled_from(ALPHABET + ["---", "...", ": ", " #", "- ", "\r", "\u2028", "\x1b", "\x7f"])
DOCUMENTS = st.sampled_from([["---"], ["--- # c"], ["..."], ["---", "x: 1"], ["%YAML 1.2", "---"], ["--- |", " x"]])
LONG = st.sampled_from([1000, MAX_SCALAR_CHARS - 3, MAX_SCALAR_CHARS - 2])


def _mutate(draw, lines: list[str]) -> list[str]:
    """Edits that step outside the subset (or look as if they did)."""
    lines = list(lines)
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(0, max(len(lines) - 1, 0)))
        line = lines[n] if lines else ""
        indent = len(line) - len(line.lstrip(" "))
        kind = draw(MUTATIONS)
        if kind == "comment":
            lines.insert(n, " " * draw(st.integers(0, 6)) + draw(COMMENTS))
        elif kind == "blank":
            lines.insert(n, " " * draw(st.integers(0, 6)))
        elif kind == "trailing":
            lines[n : n + 1] = [line + draw(TRAILING)]
        elif kind == "indent":
            shift = draw(st.sampled_from([-2, -1, 1, 2]))
            lines[n : n + 1] = [line[min(-shift, indent) :] if shift < 0 else " " * shift + line]
        elif kind == "duplicate":
            lines.insert(n, line)
        elif kind == "delete" and lines:
            del lines[n]
        elif kind == "insert":
            at = draw(st.integers(0, len(line)))
            lines[n : n + 1] = [line[:at] + draw(INSERTED) + line[at:]]
        elif kind == "continue":  # a more (or as much) indented line after this one
            lines.insert(n + 1, " " * (indent + draw(st.integers(0, 4))) + draw(SCALARS))
        elif kind == "documents":
            where = draw(st.sampled_from([0, len(lines)]))
            lines[where:where] = draw(DOCUMENTS)
        elif kind == "long":
            lines.insert(n, " " * indent + "k: " + "x" * draw(LONG))
        elif kind == "crlf":
            lines = [x + "\r" for x in lines]
        elif kind == "tab":
            lines[n : n + 1] = [line.replace(" ", "\t", 1)]
    return lines


@st.composite
def documents(draw, safe: bool = False) -> str:
    """YAML text from the grammar: only the block subset if ``safe``; else
    also odd keys and values, duplicate keys, tops other than a mapping, and
    half the time mutations."""
    root = draw(SAFE_ROOT if safe else ANY_ROOT)
    if root[0] == "s":
        lines = [root[1]]
    else:
        lines = []
        _render(draw, root, 0 if safe else draw(st.sampled_from([0, 0, 0, 1, 2])), lines)
    if not safe and draw(st.booleans()):
        lines = _mutate(draw, lines)
    elif draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):  # comments and blank lines anywhere
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "# c", "   # c", "    "])))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@settings(FUZZ, max_examples=200)
@given(documents(safe=True))
def test_the_block_subset_is_read_exactly(text):
    assert check(text), f"declined:\n{text}"


@settings(FUZZ, max_examples=800)
@given(documents())
def test_anything_else_is_read_exactly_or_declined(text):
    check(text)


@settings(FUZZ, max_examples=60)
@given(valid_specs(), st.sampled_from([40, 80, 10_000]))
def test_dumped_specs(spec, width):
    check(dump(spec, width=width))


@settings(FUZZ, max_examples=60)
@given(spec_texts())
def test_mangled_spec_texts(data):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return
    if "\x00" not in text:
        check(text)


_LINES = st.lists(st.sampled_from(["a:", "items:", "- id: x", "  - id: y", "  k: v", "", "# c", "  # c", "-", "\t", "-x", "b: 1"]), max_size=30)


@settings(max_examples=300, deadline=None)
@given(_LINES, st.floats(0, 0.99), st.integers(1, 8))
def test_the_split_point_is_found_by_counting_and_searching_back(lines, share, chunk):
    """The line where the second part may begin, and the top-level line before
    it, as a reading of every line finds them (the search back goes a chunk at a time)."""
    text = "\n".join(lines)
    count = text.count("\n") + 1
    at = int(count * share)
    begin = fastyaml._line_start(text, at, count)
    assert begin == sum(len(line) + 1 for line in text.split("\n")[:at])
    tops = [n for n, line in enumerate(text.split("\n")[: at + 1]) if n and line and line[0] not in " -#"]
    expected = sum(len(line) + 1 for line in text.split("\n")[: tops[-1]]) if tops else 0
    assert fastyaml._top_level_before(text, begin, chunk) == expected
