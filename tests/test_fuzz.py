"""Fuzzing the loader and the CLI: whatever the input, medplan ends with exit
0, 1 or 2 and a message, never a traceback.

Property tests feed ``medplan validate`` (and ``medplan plan --out``) any
bytes and structurally plausible specs with things wrong with them (see
``tests/support/spec_fuzz.py``); the fixed cases are the classic ways to
exhaust or confuse a YAML reader, each of which must end with a located error
within two seconds. ``bench/fuzz.py`` runs the same strategies at scale.

The hypothesis profile is derandomized and has no example database, so CI
runs the same examples every time.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings

from planner.errors import InputError
from planner.spec.loader import load_spec
from planner.spec.yamlsource import MAX_FILE_BYTES, parse_yaml
from tests.conftest import MINIMAL
from tests.support.spec_fuzz import FUZZ, LOCATED, dump, judge, plausible_specs, raw_bytes, run_cli, spec_texts, valid_specs

TIME_LIMIT = 2.0


def _check(data: bytes, command: str = "validate") -> None:
    verdict = judge(data, command)
    assert verdict.ok, f"{verdict.describe()}\n--- input\n{data[:2000]!r}"


# --------------------------------------------------------------------------- properties


@settings(FUZZ, max_examples=200)
@given(raw_bytes())
def test_any_bytes_end_with_an_exit_code_and_a_message(data):
    _check(data)


@settings(FUZZ, max_examples=200)
@given(spec_texts())
def test_plausible_specs_end_with_an_exit_code_and_a_message(data):
    _check(data)


@settings(FUZZ, max_examples=40)
@given(plausible_specs(max_mutations=1))
def test_plan_on_plausible_specs_ends_with_an_exit_code_and_writes_only_on_success(spec):
    _check(dump(spec).encode("utf-8"), "plan")


@settings(FUZZ, max_examples=100)
@given(valid_specs())
def test_valid_specs_load_and_keep_their_text_exactly(spec):
    """Any printable unicode in free text survives YAML and the loader unchanged."""
    from planner.spec.loader import build_spec

    loaded = build_spec([parse_yaml(dump(spec).encode("utf-8"), "s.yaml")])
    assert loaded.metadata.name == spec["metadata"]["name"]
    assert loaded.metadata.owner == spec["metadata"].get("owner")
    assert [w.team for w in loaded.workloads] == [w.get("team") for w in spec.get("workloads", [])]
    assert [d.description for d in loaded.datasets] == [d.get("description") for d in spec.get("datasets", [])]
    assert [c for s in loaded.sites for c in s.certifications] == [c for s in spec["sites"] for c in s.get("certifications", [])]


# --------------------------------------------------------------------------- fixed cases


def _billion_laughs() -> bytes:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, 10):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def _quadratic() -> bytes:
    # One long anchored list, referenced many times: linear text, quadratic data.
    items = ", ".join(["x"] * 20_000)
    refs = ", ".join(["*big"] * 20_000)
    return f"metadata: {{name: n}}\nsites: &big [{items}]\ndatasets: [{refs}]\n".encode()


WORKLOAD = "apiVersion: medplan/v1\nworkloads:\n  - {{id: w, kind: inference, gpus: {gpus}}}\n"
POOL = (
    "apiVersion: medplan/v1\nsites:\n  - {{id: s, kind: on-prem, jurisdiction: US, zone: us,\n"
    "     pools: [{{id: p, gpu: H100, nodes: 1, gpus_per_node: 8, cost_per_gpu_hour: {cost}}}]}}\n"
)

FIXED: dict[str, tuple[bytes, str]] = {
    # name: (file content, a fragment the error message must hold)
    "billion-laughs": (_billion_laughs(), "alias bomb"),
    "quadratic-alias-blowup": (_quadratic(), "alias bomb"),
    "deep-flow-nesting": (b"[" * 10_000, "nesting is too deep"),
    "deep-mapping-nesting": (b"{a: " * 10_000, "nesting is too deep"),
    "deep-block-nesting": ("".join(" " * i + "a:\n" for i in range(200)).encode(), "nesting is too deep"),
    "float-overflow": (WORKLOAD.format(gpus="1e400").encode(), "expected a whole number >= 1, got inf"),
    "huge-int": (WORKLOAD.format(gpus=str(10**100)).encode(), "more than 30 digits"),
    "huge-hex-int": (WORKLOAD.format(gpus="0x" + "f" * 5000).encode(), "more than 30 digits"),
    "huge-octal-int": (WORKLOAD.format(gpus="0o" + "7" * 20_000).encode(), "more than 30 digits"),
    "int-beyond-range": (WORKLOAD.format(gpus=str(10**29)).encode(), "expected a whole number <= 100000"),
    "float-for-int-beyond-range": (WORKLOAD.format(gpus="1e20").encode(), "expected a whole number >= 1, got 1e+20"),
    "negative": (WORKLOAD.format(gpus="-8").encode(), "expected a whole number >= 1, got -8"),
    "nan": (POOL.format(cost=".nan").encode(), "expected a finite number >= 0, got nan"),
    "inf": (POOL.format(cost=".inf").encode(), "expected a finite number >= 0, got inf"),
    "negative-inf": (POOL.format(cost="-.inf").encode(), "expected a finite number >= 0, got -inf"),
    "not-utf8": (b"apiVersion: medplan/v1\nmetadata: {name: caf\xe9}\n", "not valid UTF-8 (byte 0xe9)"),
    "utf16-bom": ("apiVersion: medplan/v1\nmetadata: {name: x}\n".encode("utf-16"), "not valid UTF-8"),
    "utf32": ("apiVersion: medplan/v1\n".encode("utf-32"), "not valid UTF-8"),
    "tab-indentation": (b"apiVersion: medplan/v1\nmetadata:\n\tname: x\n", "tabs"),
    "duplicate-key": (b"apiVersion: medplan/v1\nmetadata: {name: a}\nmetadata: {name: b}\n", "duplicate key 'metadata'"),
    "duplicate-nested-key": (MINIMAL.replace("    zone: us\n", "    zone: us\n    zone: eu\n").encode(), "duplicate key 'zone'"),
    "gigantic-string": (b'apiVersion: medplan/v1\nmetadata: {name: "' + b"a" * 5_000_000 + b'"}\n', "the limit is 100,000"),
    "gigantic-plain-line": (b"metadata:\n  name: " + b"a" * 5_000_000 + b"\n", "the limit is 100,000"),
    "empty-file": (b"", "holds no spec"),
    "only-comments": (b"# a spec\n# to be written\n", "holds no spec"),
    "only-whitespace": (b"\n\n   \n", "holds no spec"),
    "explicit-null-document": (b"---\n~\n...\n", "holds no spec"),
    "python-object-tag": (b"apiVersion: !!python/object:os.system {}\n", "unsupported YAML tag"),
    "python-apply-tag": (b'!!python/object/apply:os.system ["echo pwned"]\n', "unsupported YAML tag"),
    "python-name-tag": (b"apiVersion: !!python/name:os.system ''\n", "unsupported YAML tag"),
    "local-tag": (b"metadata: !Ref {name: x}\n", "unsupported YAML tag"),
    "two-documents": (b"apiVersion: medplan/v1\n---\nmetadata: {name: x}\n", "one YAML document per file"),
    "nul-byte": (b"apiVersion: medplan/v1\nmetadata: {name: a\x00b}\n", "NUL character"),
    "escaped-escape-sequence": (b'apiVersion: medplan/v1\nmetadata: {name: "\\e[2J\\e[31mPASS"}\n', "control character U+001B"),
    "escaped-bell": (b'apiVersion: medplan/v1\nmetadata: {name: "ding\\a"}\n', "control character U+0007"),
    "escaped-c1-csi": (b'apiVersion: medplan/v1\nmetadata: {name: "\\x9b31m"}\n', "control character U+009B"),
    "escaped-next-line": (b'apiVersion: medplan/v1\nmetadata: {name: "a\\Nb"}\n', "control character U+0085"),
    "control-in-key": (b'apiVersion: medplan/v1\nmetadata: {"na\\eme": x}\n', "control character U+001B"),
    "unclosed-quote": (b'apiVersion: medplan/v1\nmetadata: {name: "x}\n', "invalid YAML"),
    "merge-of-scalar": (b"apiVersion: medplan/v1\nmetadata: {<<: 3}\n", "merge key"),
    "recursive-alias": (b"metadata: &a {name: x, self: *a}\n", "metadata.self: alias *a is inside the node it names"),
    "non-string-key": (b"? [a, b]\n: c\n", "mapping keys must be plain strings"),
    "top-level-list": (b"- apiVersion: medplan/v1\n", "expected a mapping of spec sections"),
    "top-level-scalar": (b"medplan\n", "expected a mapping of spec sections"),
}


@pytest.mark.parametrize("name", sorted(FIXED))
def test_fixed_hostile_input_ends_with_a_located_error_quickly(name, tmp_path):
    data, expected = FIXED[name]
    path = tmp_path / "spec.yaml"
    path.write_bytes(data)
    started = time.monotonic()
    result = run_cli(["validate", str(path)])
    elapsed = time.monotonic() - started
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    located = [line for line in result.stderr.splitlines() if LOCATED.match(line)]
    assert located and all(str(path) in line for line in located), result.stderr
    assert expected in result.stderr, result.stderr
    assert "internal error" not in result.stderr
    assert elapsed < TIME_LIMIT, f"{name} took {elapsed:.2f}s"
    # The same bytes through the library: the same refusal, as an InputError.
    with pytest.raises(InputError):
        load_spec(path)


def test_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    with path.open("wb") as f:  # 25 MB of comments
        f.write((b"# " + b"x" * 1021 + b"\n") * (25 * 1024))
    size = path.stat().st_size
    assert size == 25 * 1024 * 1024 > MAX_FILE_BYTES
    started = time.monotonic()
    result = run_cli(["validate", str(path)])
    assert time.monotonic() - started < TIME_LIMIT
    assert result.exit_code == 2
    assert f"{path}:1:1: file is {size:,} bytes; the limit is 20,000,000" in result.stderr


def test_a_device_that_never_ends_is_read_only_up_to_the_limit():
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    started = time.monotonic()
    result = run_cli(["validate", "/dev/zero"])
    assert time.monotonic() - started < 10
    assert result.exit_code == 2
    assert "/dev/zero:1:1: file is larger than 20,000,000 bytes" in result.stderr


def test_directory_named_like_a_spec_file(tmp_path):
    spec_dir = tmp_path / "spec.yaml"
    (spec_dir / "nested.yaml").mkdir(parents=True)  # a directory, not a file, despite its name
    result = run_cli(["validate", str(spec_dir)])
    assert result.exit_code == 2
    assert f"{spec_dir}:1:1: directory holds no .yaml or .yml spec files" in result.stderr
    from planner.spec.yamlsource import read_yaml

    with pytest.raises(InputError) as info:
        read_yaml(spec_dir)
    assert "cannot read file" in str(info.value)


def test_missing_file_is_a_located_error(tmp_path):
    result = run_cli(["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.yaml'}:1:1: no such file or directory" in result.stderr


def test_utf8_bom_is_read_as_utf8(tmp_path):
    plain, bom = tmp_path / "plain.yaml", tmp_path / "bom.yaml"
    plain.write_text(MINIMAL, encoding="utf-8")
    bom.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode("utf-8"))
    assert load_spec(bom).model_dump() == load_spec(plain).model_dump()
    assert run_cli(["validate", str(bom)]).exit_code == run_cli(["validate", str(plain)]).exit_code


def test_empty_file_next_to_a_real_spec_is_fine(tmp_path):
    (tmp_path / "a.yaml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "b.yaml").write_text("# nothing here yet\n", encoding="utf-8")
    assert load_spec(tmp_path).metadata.name == "test"


def test_crlf_and_tabs_inside_values_are_fine(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(MINIMAL.replace("metadata: {name: test}", 'metadata: {name: "a\\tb", description: "x\\r\\ny"}').replace("\n", "\r\n").encode())
    spec = load_spec(path)
    assert spec.metadata.name == "a\tb" and spec.metadata.description == "x\r\ny"


@pytest.mark.parametrize("value", ["1e400", ".nan", "-.inf", str(10**100), "-1", "0"])
def test_non_finite_and_out_of_range_numbers_never_reach_the_solver(value, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(MINIMAL.replace("replicas: 1", f"replicas: {value}"), encoding="utf-8")
    result = run_cli(["plan", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "workloads[0].replicas" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_error_messages_show_line_breaks_and_invisible_characters_escaped(tmp_path):
    path = tmp_path / "s.yaml"
    text = MINIMAL.replace("kind: inference", 'kind: "infer\\nerror: spoofed\\u202e"').replace(
        "metadata: {name: test}", 'metadata: {name: test, "own\\ter": x}'
    )
    path.write_text(text, encoding="utf-8")
    result = run_cli(["validate", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert not any(line.startswith("error: spoofed") for line in lines), result.stderr
    assert 'got "infer\\nerror: spoofed\\u202e"' in result.stderr
    assert "metadata.own\\ter: unknown field" in result.stderr
    assert all(ch.isprintable() for ch in result.stderr.replace("\n", "")), result.stderr


def test_nan_in_every_number_field_is_refused(tmp_path):
    spec = yaml.safe_load(MINIMAL)
    spec["workloads"][0]["max_latency_ms"] = math.nan
    spec["sites"][0]["controls"]["backup"]["rpo_hours"] = math.inf
    path = tmp_path / "s.yaml"
    path.write_text(dump(spec), encoding="utf-8")
    result = run_cli(["validate", str(path)])
    assert result.exit_code == 2
    assert "workloads[0].max_latency_ms: expected a finite number >= 0, got nan" in result.stderr
    assert "sites[0].controls.backup.rpo_hours: expected a finite number >= 0, got inf" in result.stderr


def test_fixed_cases_also_fail_cleanly_under_plan():
    for name, (data, _) in sorted(FIXED.items()):
        verdict = judge(data, "plan")
        assert verdict.ok and verdict.exit_code == 2, f"{name}: {verdict.describe()}"
