"""The shipped examples load, the broken ones fail with exactly the expected
messages, and the published JSON Schema accepts every example file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from planner.errors import InputError
from planner.spec.loader import load_spec
from planner.spec.schema import spec_schema

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BROKEN = EXAMPLES / "broken"
SCHEMA_MODELINE = "# yaml-language-server: $schema=https://medplan.dev/schema/spec-v1.json"


def _is_spec(path: Path) -> bool:
    return path.is_dir() or path.suffix in (".yaml", ".yml")


# Examples: every spec file or spec directory directly under examples/, except broken/.
EXAMPLE_SPECS = sorted(p for p in EXAMPLES.iterdir() if _is_spec(p) and p != BROKEN)
EXAMPLE_FILES = sorted(
    f
    for spec in EXAMPLE_SPECS
    for f in ([spec] if spec.is_file() else sorted(spec.rglob("*")))
    if f.is_file() and f.suffix in (".yaml", ".yml")
)
EXPECTED: dict[str, list[str]] = json.loads((BROKEN / "expected.json").read_text(encoding="utf-8"))
BROKEN_SPECS = sorted(p.name for p in BROKEN.iterdir() if _is_spec(p))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.fixture
def at_repo_root(monkeypatch):
    # Diagnostics name files as given on the command line; expected.json uses
    # paths relative to the repository root.
    monkeypatch.chdir(ROOT)


def test_examples_exist():
    names = {p.name for p in EXAMPLE_SPECS}
    assert {"community-hospital.yaml", "academic-medical-center", "pharma-eu-us.yaml"} <= names


@pytest.mark.parametrize("spec", EXAMPLE_SPECS, ids=_rel)
def test_example_loads(spec: Path, at_repo_root):
    try:
        loaded = load_spec([_rel(spec)])
    except InputError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"{_rel(spec)} does not load:\n{exc}")
    assert loaded.sites and loaded.workloads


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_rel)
def test_example_file_starts_with_schema_modeline(path: Path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == SCHEMA_MODELINE


def test_every_broken_spec_has_expected_errors():
    assert sorted(EXPECTED) == BROKEN_SPECS
    assert len(BROKEN_SPECS) >= 14


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=str)
def test_broken_spec_fails_with_expected_errors(name: str, at_repo_root):
    expected = EXPECTED[name]
    assert expected, f"{name}: a broken example must list the errors it produces"
    with pytest.raises(InputError) as info:
        load_spec([_rel(BROKEN / name)])
    assert str(info.value).splitlines() == expected
    assert info.value.diagnostics
    for diagnostic in info.value.diagnostics:
        assert isinstance(diagnostic.location.line, int) and diagnostic.location.line >= 1
        assert isinstance(diagnostic.location.column, int) and diagnostic.location.column >= 1


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader without YAML 1.1 timestamps.

    Editors read specs as YAML 1.2, where ``2027-03-31`` is a string (a JSON
    Schema ``date``); PyYAML would turn it into a Python date, which has no
    JSON type at all.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@pytest.fixture(scope="module")
def validator():
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=_rel)
def test_schema_accepts_example_file(path: Path, validator):
    # Each file of a multi-file spec is validated on its own: the schema must
    # accept a file that holds only some of the sections.
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
