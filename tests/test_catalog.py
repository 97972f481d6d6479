"""The shipped GPU and instance catalog: figures, sources, lookups and additions."""

from __future__ import annotations

from datetime import date

import pytest

from planner.catalog import (
    Catalog,
    CatalogDataError,
    GpuModel,
    Instance,
    UnknownCatalogName,
    load_catalog,
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _figure_fields(entry: GpuModel | Instance) -> list[str]:
    """Names of the fields of an entry that hold a figure (numbers and booleans), set to a value."""
    names = []
    for name in type(entry).model_fields:
        value = getattr(entry, name)
        if isinstance(value, bool | int | float):
            names.append(name)
    return names


def test_catalog_holds_the_expected_gpu_models(catalog: Catalog) -> None:
    assert catalog.gpu_ids() == [
        "A100-40GB", "A100-80GB", "B200", "B300", "GB200", "GB300",
        "H100", "H100-NVL", "H100-PCIE", "H200", "L40S",
    ]


def test_catalog_holds_the_expected_instances(catalog: Catalog) -> None:
    assert catalog.instance_ids() == [
        "BM.GPU.B200.8", "BM.GPU.H100.8", "BM.GPU.H200.8",
        "Standard_ND128isr_NDR_GB200_v6", "Standard_ND96amsr_A100_v4",
        "Standard_ND96isr_H100_v5", "Standard_ND96isr_H200_v5",
        "a2-ultragpu-8g", "a3-highgpu-8g", "a3-megagpu-8g", "a3-ultragpu-8g", "a4-highgpu-8g",
        "p4d.24xlarge", "p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge", "p6-b200.48xlarge",
    ]


@pytest.mark.parametrize(
    ("gpu_id", "field", "expected"),
    [
        # Figures the team checked by hand against NVIDIA's pages.
        ("H100", "memory_gb", 80),
        ("H100", "hbm_bandwidth_tbs", 3.35),
        ("H100", "nvlink_gbs", 900),
        ("H100", "bf16_tflops", 989),
        ("H100", "fp8_tflops", 1979),
        ("H100", "fp4_tflops", None),
        ("H200", "memory_gb", 141),
        ("H200", "hbm_bandwidth_tbs", 4.8),
        ("B200", "memory_gb", 180),
        ("B200", "advertised_memory_gb", 192),
        ("B200", "hbm_bandwidth_tbs", 8.0),
        ("B200", "nvlink_gbs", 1800),
        ("B200", "nvlink_domain", 8),
        ("GB200", "memory_gb", 186),
        ("GB200", "nvlink_domain", 72),
        ("GB300", "nvlink_domain", 72),
        ("L40S", "memory_gb", 48),
        ("L40S", "memory_type", "GDDR6"),
        ("L40S", "hbm_bandwidth_tbs", 0.864),
        ("L40S", "nvlink_gbs", None),
        ("L40S", "nvlink_domain", 1),
        ("A100-80GB", "fp8_tflops", None),
    ],
)
def test_checked_gpu_figures(catalog: Catalog, gpu_id: str, field: str, expected: object) -> None:
    assert getattr(catalog.gpu(gpu_id), field) == expected


def test_dgx_b200_total_memory_matches_per_gpu_figure(catalog: Catalog) -> None:
    # DGX B200 lists 1,440 GB over 8 GPUs.
    assert catalog.gpu("B200").memory_gb * 8 == 1440


def test_every_gpu_figure_has_a_source(catalog: Catalog) -> None:
    unsourced = []
    for gpu in catalog.gpus.values():
        supported = {field for source in gpu.sources for field in source.fields}
        unsourced += [f"{gpu.id}.{name}" for name in _figure_fields(gpu) if name not in supported]
    assert unsourced == []


def test_every_instance_figure_has_a_source(catalog: Catalog) -> None:
    unsourced = []
    for instance in catalog.instances.values():
        supported = {field for source in instance.sources for field in source.fields}
        if instance.price_source is not None:
            supported |= set(instance.price_source.fields)
        unsourced += [f"{instance.id}.{name}" for name in _figure_fields(instance) if name not in supported]
    assert unsourced == []


def test_every_catalog_price_is_dated_and_sourced(catalog: Catalog) -> None:
    for instance in catalog.instances.values():
        if instance.price_per_hour is None:
            assert instance.price_origin is None
            assert instance.note, f"{instance.id} has no price and no note saying why"
        else:
            assert instance.price_origin == "catalog"
            assert instance.price_as_of is not None
            assert instance.price_source is not None
            assert "price_per_hour" in instance.price_source.fields


def test_every_instance_names_a_catalog_gpu_and_a_baa(catalog: Catalog) -> None:
    for instance in catalog.instances.values():
        assert instance.gpu in catalog.gpus
        assert instance.hipaa_baa is True


@pytest.mark.parametrize(
    ("instance_id", "gpu", "gpus", "provider"),
    [
        ("p4d.24xlarge", "A100-40GB", 8, "aws"),
        ("p5.48xlarge", "H100", 8, "aws"),
        ("p5e.48xlarge", "H200", 8, "aws"),
        ("p6-b200.48xlarge", "B200", 8, "aws"),
        ("Standard_ND128isr_NDR_GB200_v6", "GB200", 4, "azure"),
        ("a4-highgpu-8g", "B200", 8, "gcp"),
        ("BM.GPU.H200.8", "H200", 8, "oci"),
    ],
)
def test_instance_shapes(catalog: Catalog, instance_id: str, gpu: str, gpus: int, provider: str) -> None:
    instance = catalog.instance(instance_id)
    assert (instance.gpu, instance.gpus, instance.provider) == (gpu, gpus, provider)


def test_p5_price_is_the_us_east_1_on_demand_price(catalog: Catalog) -> None:
    p5 = catalog.instance("p5.48xlarge")
    assert (p5.price_per_hour, p5.region, p5.price_origin) == (55.04, "us-east-1", "catalog")


@pytest.mark.parametrize("name", ["H100", "h100", "H100-SXM", "h100-sxm", "H100 SXM", "h100_sxm5"])
def test_gpu_aliases_resolve_case_insensitively(catalog: Catalog, name: str) -> None:
    assert catalog.gpu(name).id == "H100"


def test_unknown_gpu_raises_key_error_with_suggestion(catalog: Catalog) -> None:
    with pytest.raises(KeyError) as caught:
        catalog.gpu("H1OO")
    assert isinstance(caught.value, UnknownCatalogName)
    assert caught.value.suggestions[0] == "H100"
    assert str(caught.value) == "unknown GPU model 'H1OO'; did you mean 'H100'?"


def test_unknown_instance_raises_key_error(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match="unknown instance 'p5.48xlarg'; did you mean 'p5.48xlarge'"):
        catalog.instance("p5.48xlarg")


def test_instance_lookup_is_case_insensitive(catalog: Catalog) -> None:
    assert catalog.instance("standard_nd96isr_h100_v5").id == "Standard_ND96isr_H100_v5"


def test_load_catalog_is_cached() -> None:
    assert load_catalog() is load_catalog()


def test_models_are_frozen_and_strict(catalog: Catalog) -> None:
    with pytest.raises(Exception):
        catalog.gpu("H100").memory_gb = 100  # type: ignore[misc]
    with pytest.raises(ValueError, match="extra"):
        GpuModel.model_validate({**catalog.gpu("H100").model_dump(), "speed": 1})


def test_price_override_keeps_origin_and_date(catalog: Catalog) -> None:
    updated = catalog.with_additions(price_overrides={"P5.48XLARGE": (42.5, "2026-10-01")})
    p5 = updated.instance("p5.48xlarge")
    assert (p5.price_per_hour, p5.price_as_of, p5.price_origin, p5.price_source) == (
        42.5, date(2026, 10, 1), "spec", None,
    )
    # The shipped catalog is untouched.
    assert catalog.instance("p5.48xlarge").price_per_hour == 55.04
    assert catalog.instance("p5.48xlarge").price_origin == "catalog"


def test_price_override_fills_a_missing_price(catalog: Catalog) -> None:
    updated = catalog.with_additions(price_overrides={"a3-highgpu-8g": (88.0, date(2026, 11, 1))})
    a3 = updated.instance("a3-highgpu-8g")
    assert (a3.price_per_hour, a3.price_as_of, a3.price_origin) == (88.0, date(2026, 11, 1), "spec")


def test_price_override_of_unknown_instance_is_an_error(catalog: Catalog) -> None:
    with pytest.raises(UnknownCatalogName, match="did you mean 'p5.48xlarge'"):
        catalog.with_additions(price_overrides={"p5.48xlarg": (1.0, "2026-10-01")})


def test_price_override_needs_an_iso_date(catalog: Catalog) -> None:
    with pytest.raises(CatalogDataError, match="not an ISO date"):
        catalog.with_additions(price_overrides={"p5.48xlarge": (1.0, "last week")})


def test_user_gpu_and_instance_are_added_with_spec_origin(catalog: Catalog) -> None:
    updated = catalog.with_additions(
        gpus=[{
            "id": "RTX-6000-ADA", "name": "NVIDIA RTX 6000 Ada", "vendor": "nvidia", "generation": "ada",
            "aliases": ["rtx6000ada"], "memory_gb": 48, "memory_type": "GDDR6", "hbm_bandwidth_tbs": 0.96,
            "nvlink_domain": 1,
        }],
        instances=[{
            "id": "onprem.rtx.4", "provider": "other", "gpu": "rtx6000ada", "gpus": 4, "hipaa_baa": False,
            "price_per_hour": 6.0, "price_as_of": "2026-09-01",
        }],
    )
    assert updated.gpu("rtx6000ada").origin == "spec"
    added = updated.instance("onprem.rtx.4")
    assert (added.gpu, added.origin, added.price_origin) == ("RTX-6000-ADA", "spec", "spec")
    assert "RTX-6000-ADA" in updated.gpu_ids()
    assert "RTX-6000-ADA" not in catalog.gpu_ids()


def test_adding_an_existing_gpu_name_is_an_error(catalog: Catalog) -> None:
    h100 = catalog.gpu("H100").model_dump()
    with pytest.raises(CatalogDataError, match="already in the catalog"):
        catalog.with_additions(gpus=[{**h100, "id": "my-h100", "aliases": ["h100-sxm"]}])


def test_added_instance_with_unknown_gpu_is_an_error(catalog: Catalog) -> None:
    with pytest.raises(UnknownCatalogName, match="unknown GPU model 'H2OO'"):
        catalog.with_additions(instances=[{"id": "x", "provider": "other", "gpu": "H2OO", "gpus": 1, "hipaa_baa": False}])


def test_a_price_needs_a_date() -> None:
    with pytest.raises(ValueError, match="price_as_of"):
        Instance(id="x", provider="aws", gpu="H100", gpus=8, hipaa_baa=True, price_per_hour=1.0)


def test_a_source_must_name_real_fields(catalog: Catalog) -> None:
    data = catalog.gpu("L40S").model_dump()
    data["sources"][0]["fields"] = ["memory_gb", "memroy_gb"]
    with pytest.raises(ValueError, match="unknown fields: memroy_gb"):
        GpuModel.model_validate(data)


def test_shipped_data_files_are_next_to_the_module() -> None:
    from importlib import resources

    names = {entry.name for entry in resources.files("planner.catalog").iterdir()}
    assert {"gpus.yaml", "instances.yaml"} <= names
