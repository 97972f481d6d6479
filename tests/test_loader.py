"""The loader: YAML semantics, merging, limits and every kind of input error,
each asserted with its exact message and location."""

from __future__ import annotations

import pytest

from planner.errors import InputError
from planner.spec.loader import load_spec
from tests.conftest import MINIMAL


def errors_of(paths) -> list[str]:
    with pytest.raises(InputError) as info:
        load_spec(paths)
    lines = str(info.value).splitlines()
    assert lines, "an InputError must carry located diagnostics"
    return lines


def test_minimal_spec_loads_with_defaults(write):
    spec = load_spec(write("s.yaml", MINIMAL))
    site = spec.sites[0]
    assert site.baa.value == "not-required"  # on-prem default
    assert site.orchestrator.value == "kubernetes"
    assert spec.policies.include == ["builtin:hipaa", "builtin:gdpr", "builtin:platform"]
    assert spec.workloads[0].criticality.value == "medium"


def test_yaml_1_2_core_schema_keeps_norway_a_string(write):
    text = MINIMAL.replace("jurisdiction: US-MN", "jurisdiction: NO").replace("zone: us", "zone: 'no'")
    spec = load_spec(write("s.yaml", text))
    assert spec.sites[0].jurisdiction == "NO"


def test_duplicate_key_is_an_error_naming_the_first(write):
    text = MINIMAL.replace("    zone: us\n", "    zone: us\n    zone: eu\n", 1)
    path = write("s.yaml", text)
    assert errors_of(path) == [f"{path}:8:5: sites[0].zone: duplicate key 'zone' (first defined at line 7)"]


def test_duplicate_id_across_files_names_both_places(write):
    a = write("a/one.yaml", MINIMAL)
    write("a/two.yaml", "datasets:\n  - {id: pacs, site: dc1, classification: phi}\n")
    assert errors_of(a.parent) == [
        f"{a.parent}/two.yaml:2:10: datasets[0].id: duplicate dataset id 'pacs' (first defined at {a}:12:10)"
    ]


def test_files_merge_lists_and_locations_stay_per_file(write):
    write("d/sites.yaml", MINIMAL)
    bad = write("d/more.yaml", "workloads:\n  - id: extra\n    kind: batch\n    gpus: zero\n")
    lines = errors_of(bad.parent)
    assert lines == [f"{bad}:4:11: workloads[0].gpus: expected a whole number >= 1, got \"zero\""]


def test_all_errors_reported_in_one_run(write):
    text = MINIMAL.replace("gpus: 1", "gpus: -3").replace("inputs: [pacs]", "inputs: [pacz]").replace("kind: inference", "kind: inferense")
    path = write("s.yaml", text)
    assert errors_of(path) == [
        f"{path}:15:11: workloads[0].kind: expected one of inference, training, fine-tuning, batch, streaming, got \"inferense\"; did you mean 'inference'?",
        f"{path}:16:11: workloads[0].gpus: expected a whole number >= 1, got -3",
        f"{path}:18:14: workloads[0].inputs[0]: unknown dataset 'pacz'; did you mean 'pacs'?",
    ]


def test_unknown_top_level_section_suggests(write):
    path = write("s.yaml", MINIMAL + "workload: []\n")
    assert errors_of(path) == [f"{path}:19:1: workload: unknown top-level section 'workload'; did you mean 'workloads'?"]


def test_several_documents_refused(write):
    path = write("s.yaml", MINIMAL + "---\nsites: []\n")
    assert errors_of(path) == [f"{path}:20:1: expected one YAML document per file; split the others into their own files"]


def test_nan_and_infinity_are_not_numbers(write):
    path = write("s.yaml", MINIMAL.replace("cost_per_gpu_hour: 2.0", "cost_per_gpu_hour: .nan"))
    assert errors_of(path) == [f"{path}:10:78: sites[0].pools[0].cost_per_gpu_hour: expected a finite number >= 0, got nan"]


def test_merge_keys_are_supported_and_explicit_keys_win(write):
    text = MINIMAL.replace(
        "    pools:\n      - {id: h100, gpu: H100, nodes: 2, gpus_per_node: 8, cost_per_gpu_hour: 2.0}\n",
        "    pools:\n      - &base {id: h100, gpu: H100, nodes: 2, gpus_per_node: 8}\n      - {<<: *base, id: h100b, nodes: 4}\n",
    )
    spec = load_spec(write("s.yaml", text))
    assert [(p.id, p.nodes) for p in spec.sites[0].pools] == [("h100", 2), ("h100b", 4)]


def test_merged_and_explicit_keys_are_located_where_their_values_are_written():
    from planner.spec.yamlsource import parse_yaml

    text = b"base: &b {gpu: H100, nodes: 2}\npool:\n  <<: *b\n  nodes: 4\nlate:\n  nodes: 8\n  <<: [*b, {zone: eu}]\n"
    source = parse_yaml(text, "s.yaml")
    assert source.data["pool"] == {"gpu": "H100", "nodes": 4}
    assert source.data["late"] == {"gpu": "H100", "nodes": 8, "zone": "eu"}
    at = lambda *path, key=False: str(source.locate(path, key=key))  # noqa: E731
    assert at("pool", "nodes") == "s.yaml:4:10" and at("pool", "nodes", key=True) == "s.yaml:4:3"
    assert at("pool", "gpu") == "s.yaml:1:16"  # the anchored mapping's value
    assert at("late", "nodes") == "s.yaml:6:10" and at("late", "zone", key=True) == "s.yaml:7:13"
    assert at("pool", "missing", 3) == "s.yaml:3:3"  # nearest existing ancestor: the mapping
    assert at("nowhere", key=True) == "s.yaml:1:1"


def test_deep_nesting_refused(write):
    path = write("s.yaml", "metadata:\n  description: " + "[" * 80 + "]" * 80 + "\n")
    assert errors_of(path) == [f"{path}:2:79: metadata.description" + "[0]" * 63 + ": nesting is too deep (more than 64 levels)"]


def test_oversized_file_refused(tmp_path, monkeypatch):
    from planner.spec import yamlsource

    monkeypatch.setattr(yamlsource, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text(MINIMAL)
    assert errors_of(path) == [f"{path}:1:1: file is {len(MINIMAL):,} bytes; the limit is 100"]


def test_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_spec(path).metadata.name == "test"


def test_missing_path_and_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    assert errors_of([tmp_path / "nope.yaml", tmp_path / "empty"]) == [
        f"{tmp_path}/empty:1:1: directory holds no .yaml or .yml spec files",
        f"{tmp_path}/nope.yaml:1:1: no such file or directory",
    ]


def test_top_level_must_be_a_mapping(write):
    path = write("s.yaml", "- just\n- a list\n")
    assert errors_of(path) == [f"{path}:1:1: expected a mapping of spec sections, got a list"]


def test_conflicting_scalars_across_files(write):
    write("d/a.yaml", MINIMAL)
    b = write("d/b.yaml", "metadata: {name: other}\n")
    assert errors_of(b.parent)[0].startswith(f"{b}:1:12: metadata.name: metadata.name is set again with a different value (first at ")


def test_flow_end_ambiguous_needs_kind(write):
    text = MINIMAL.replace("  - {id: pacs, site: dc1", "  - {id: dc1, site: dc1") .replace("inputs: [pacs]", "inputs: [dc1]")
    text += "flows:\n  - {id: f1, from: dc1, to: dc1, classification: phi}\n"
    path = write("s.yaml", text)
    assert errors_of(path) == [
        f"{path}:20:20: flows[0].from: 'dc1' names more than one thing (dataset, site); write dataset/dc1 or site/dc1",
        f"{path}:20:29: flows[0].to: 'dc1' names more than one thing (dataset, site); write dataset/dc1 or site/dc1",
    ]


def test_unknown_gpu_lists_known_ones(write):
    path = write("s.yaml", MINIMAL.replace("gpu: H100,", "gpu: H1OO,"))
    (line,) = errors_of(path)
    assert line.startswith(f"{path}:10:25: sites[0].pools[0].gpu: unknown GPU model 'H1OO'; did you mean 'H100'? (known: A100-40GB, A100-80GB, B200,")


def test_user_catalog_gpu_is_accepted(write):
    text = MINIMAL.replace("gpu: H100,", "gpu: H20,") + (
        "catalog:\n  gpus:\n    - {id: H20, name: NVIDIA H20, vendor: nvidia, generation: hopper,"
        " memory_gb: 96, memory_type: HBM3, hbm_bandwidth_tbs: 4.0, nvlink_domain: 8}\n"
    )
    try:
        spec = load_spec(write("s.yaml", text))
    except InputError as exc:  # the catalog may restrict vendor or generation values
        pytest.fail(str(exc))
    assert spec.catalog.gpus[0].id == "H20"


@pytest.mark.parametrize(("value", "shown"), [('"8"', '"8"'), ("1_0", '"1_0"'), ("2.0", "2.0"), ("true", "true (a boolean)")])
def test_numbers_are_not_guessed_from_strings_or_floats(write, value, shown):
    path = write("s.yaml", MINIMAL.replace("gpus: 1", f"gpus: {value}"))
    assert errors_of(path) == [f"{path}:16:11: workloads[0].gpus: expected a whole number >= 1, got {shown}"]
