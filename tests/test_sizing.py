"""Workload sizing: hand-worked cases a reviewer can check with a pencil.

Defaults used below: runtime overhead 10% of the weights, headroom 10% of each
GPU's usable memory. Usable memory: H100 80 GB, H200 141 GB, B200 180 GB,
GB200 186 GB, GB300 279 GB, L40S 48 GB.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from planner.catalog import Catalog, UnknownCatalogName, load_catalog
from planner.catalog.sizing import (
    ADAM_BYTES_PER_PARAM,
    DEFAULT_HEADROOM,
    DEFAULT_RUNTIME_OVERHEAD,
    GpuSizing,
    ModelShape,
    SizingRequest,
    memory_required,
    size,
    size_for_gpu,
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _by_gpu(results: list[GpuSizing]) -> dict[str, GpuSizing]:
    return {result.gpu: result for result in results}


LLAMA_70B_BF16 = SizingRequest(kind="inference", model=ModelShape(params_b=70, precision="bf16"))


def test_defaults_are_the_documented_ones() -> None:
    assert (DEFAULT_RUNTIME_OVERHEAD, DEFAULT_HEADROOM, ADAM_BYTES_PER_PARAM) == (0.10, 0.10, 16.0)


def test_70b_bf16_needs_140_gb_of_weights() -> None:
    """70 B params x 2 bytes = 140 GB; + 10% overhead = 154 GB; no KV cache declared."""
    total, steps = memory_required(LLAMA_70B_BF16)
    assert total == pytest.approx(154.0)
    assert steps == (
        "weights = 70 B params x 2 bytes (bf16) = 140.0 GB",
        "kv cache = not estimated (declare layers, kv_heads, head_dim, context_tokens to include it) = 0.0 GB",
        "runtime overhead = 10% x 140.0 GB weights = 14.0 GB",
        "total = 140.0 + 0.0 + 14.0 = 154.0 GB",
    )


def test_70b_bf16_takes_one_b200() -> None:
    """B200: 180 x 0.9 = 162 GB >= 154 GB, so one GPU; 180 - 154 = 26 GB stay free."""
    b200 = size_for_gpu(LLAMA_70B_BF16, load_catalog().gpu("B200"))
    assert (b200.fits, b200.gpus_per_replica, b200.tp_degree, b200.replicas) == (True, 1, 1, 1)
    assert b200.memory_per_gpu_gb == pytest.approx(154.0)
    assert b200.headroom_gb == pytest.approx(26.0)
    assert b200.arithmetic[4:] == (
        "usable per GPU = 180 GB x (1 - 10% headroom) = 162.0 GB",
        "GPUs for memory = ceil(154.0 GB / 162.0 GB) = ceil(0.9506) = 1",
        "tensor-parallel degree = 1 (smallest power of two >= 1)",
        "one NVLink domain holds 8 x B200: 1 fit",
        "per GPU = 154.0 GB / 1 = 154.0 GB of 180 GB, 26.0 GB free",
        "replicas = 1 as given",
    )


def test_70b_bf16_takes_two_h200(catalog: Catalog) -> None:
    """H200: 141 x 0.9 = 126.9 GB < 154 GB; ceil(154 / 126.9) = 2; 77 GB per GPU."""
    h200 = _by_gpu(size(LLAMA_70B_BF16, catalog))["H200"]
    assert (h200.fits, h200.gpus_per_replica, h200.tp_degree) == (True, 2, 2)
    assert h200.memory_per_gpu_gb == pytest.approx(77.0)
    assert h200.headroom_gb == pytest.approx(64.0)


def test_70b_bf16_on_every_gpu_model(catalog: Catalog) -> None:
    """ceil(154 / usable x 0.9), rounded up to a power of two, within one NVLink domain.

    H100: 154 / 72 = 2.14 -> 3 -> 4.  L40S: 154 / 43.2 = 3.56 -> 4, but L40S has
    no NVLink (domain 1).  H100-PCIE: 4 > a bridged pair of 2.
    """
    results = _by_gpu(size(LLAMA_70B_BF16, catalog))
    placed = {gpu: (r.fits, r.gpus_per_replica) for gpu, r in results.items()}
    assert placed == {
        "A100-40GB": (True, 8),
        "A100-80GB": (True, 4),
        "B200": (True, 1),
        "B300": (True, 1),
        "GB200": (True, 1),
        "GB300": (True, 1),
        "H100": (True, 4),
        "H100-NVL": (True, 2),
        "H100-PCIE": (False, 4),
        "H200": (True, 2),
        "L40S": (False, 4),
    }
    assert results["L40S"].reason == "needs 4 x L40S (48 GB) for 154.0 GB but one NVLink domain holds 1"
    assert results["H100-PCIE"].reason == "needs 4 x H100-PCIE (80 GB) for 154.0 GB but one NVLink domain holds 2"


def test_70b_fp8_with_kv_cache_takes_two_h100(catalog: Catalog) -> None:
    """Llama-3-70B-like shape at fp8, 8 concurrent sequences of 8,192 tokens.

    weights  = 70 x 1 byte                               = 70.0 GB
    kv cache = 2 x 80 x 8 x 128 x 8,192 x 8 x 1 byte     = 10,737,418,240 bytes = 10.737 GB
    overhead = 10% x 70                                  = 7.0 GB
    total    = 70 + 10.737 + 7                           = 87.737 GB
    H100: 80 x 0.9 = 72 GB; ceil(87.737 / 72) = 2; per GPU 43.869 GB; 36.131 GB free.
    """
    request = SizingRequest(
        kind="inference",
        model=ModelShape(params_b=70, precision="fp8", layers=80, kv_heads=8, head_dim=128, context_tokens=8192),
        concurrency=8,
    )
    h100 = size_for_gpu(request, catalog.gpu("H100"))
    assert (h100.fits, h100.gpus_per_replica, h100.tp_degree) == (True, 2, 2)
    assert h100.memory_required_gb == pytest.approx(87.73741824)
    assert h100.memory_per_gpu_gb == pytest.approx(43.86870912)
    assert h100.headroom_gb == pytest.approx(36.13129088)
    assert h100.arithmetic[1] == (
        "kv cache = 2 x 80 layers x 8 kv_heads x 128 head_dim x 8,192 tokens x 8 sequences x 1 byte (fp8) "
        "= 10,737,418,240 bytes = 10.7 GB"
    )


def test_kv_cache_of_4_bit_weights_defaults_to_bf16() -> None:
    """int4 weights keep a bf16 KV cache: 2 x 32 x 8 x 128 x 4,096 x 1 x 2 bytes = 0.537 GB."""
    shape = ModelShape(params_b=8, precision="int4", layers=32, kv_heads=8, head_dim=128, context_tokens=4096)
    assert shape.effective_kv_precision == "bf16"
    total, steps = memory_required(SizingRequest(kind="inference", model=shape))
    # weights 8 x 0.5 = 4.0; kv 0.536870912; overhead 0.4
    assert total == pytest.approx(4.0 + 0.536870912 + 0.4)
    assert "x 2 bytes (bf16)" in steps[1]


def test_a_model_that_fits_nowhere_says_why_on_every_gpu(catalog: Catalog) -> None:
    """5,000 B params in fp32 = 20,000 GB; with overhead 22,000 GB.

    Even GB300 (279 x 0.9 = 251.1 GB): ceil(22,000 / 251.1) = 88 -> 128 GPUs,
    more than the 72 of one NVL72 domain.
    """
    request = SizingRequest(kind="inference", model=ModelShape(params_b=5000, precision="fp32"))
    results = size(request, catalog)
    assert [r.gpu for r in results] == catalog.gpu_ids()
    assert all(not r.fits and r.reason for r in results)
    assert _by_gpu(results)["GB300"].reason == (
        "needs 128 x GB300 (279 GB) for 22,000.0 GB but one NVLink domain holds 72"
    )


def test_2000b_fp32_fits_only_in_an_nvl72_rack(catalog: Catalog) -> None:
    """2,000 B x 4 bytes = 8,000 GB; + 10% = 8,800 GB.

    GB200: 186 x 0.9 = 167.4; ceil(8,800 / 167.4) = 53 -> 64 <= 72.
    GB300: 279 x 0.9 = 251.1; ceil(8,800 / 251.1) = 36 -> 64 <= 72.
    Every 8-GPU board falls short.
    """
    request = SizingRequest(kind="inference", model=ModelShape(params_b=2000, precision="fp32"))
    fitting = {r.gpu: r.gpus_per_replica for r in size(request, catalog) if r.fits}
    assert fitting == {"GB200": 64, "GB300": 64}


def test_user_memory_minimum_excludes_smaller_gpus(catalog: Catalog) -> None:
    request = SizingRequest(kind="inference", model=ModelShape(params_b=2, precision="fp16"), gpu_memory_gb=141)
    results = _by_gpu(size(request, catalog, ["H100", "H200"]))
    assert results["H100"].fits is False
    assert results["H100"].reason == "needs 141 GB per GPU, H100 has 80"
    assert results["H200"].fits is True


def test_user_gpu_count_is_a_floor(catalog: Catalog) -> None:
    """7 B bf16 = 14 + 1.4 = 15.4 GB fits one H100, but the user asks for 3: TP rounds 3 up to 4."""
    request = SizingRequest(kind="inference", model=ModelShape(params_b=7, precision="bf16"), gpus=3)
    h100 = size_for_gpu(request, catalog.gpu("H100"))
    assert (h100.gpus_per_replica, h100.tp_degree, h100.fits) == (4, 4, True)
    assert "given gpus = 3 (a floor): max(3, 1) = 3" in h100.arithmetic


def test_user_gpu_count_beyond_one_nvlink_domain_does_not_fit_for_inference(catalog: Catalog) -> None:
    request = SizingRequest(kind="inference", model=ModelShape(params_b=7, precision="bf16"), gpus=16)
    h100 = size_for_gpu(request, catalog.gpu("H100"))
    assert h100.fits is False
    assert h100.reason == "needs 16 x H100 (80 GB) for 15.4 GB but one NVLink domain holds 8"


def test_replicas_come_from_the_users_measurement(catalog: Catalog) -> None:
    """demand 500 / 40 per replica on H100 = 12.5 -> 13 replicas of 4 GPUs = 52 GPUs.

    H200 has no measurement: it keeps the given replicas (no invented speed-up).
    """
    request = LLAMA_70B_BF16.model_copy(update={"throughput": {"h100": 40.0}, "demand": 500.0})
    results = _by_gpu(size(request, catalog, ["H100", "H200"]))
    assert (results["H100"].replicas, results["H100"].total_gpus) == (13, 52)
    assert results["H100"].arithmetic[-1] == (
        "replicas = demand 500 / measured 40 per replica on H100 (user measurement) = 12.5 -> 13 replicas"
    )
    assert results["H200"].replicas == 1
    assert results["H200"].arithmetic[-1] == (
        "replicas = 1 as given: no throughput measurement for H200, and no speed-up between GPU models is assumed"
    )


def test_given_replicas_are_a_floor_over_the_measurement(catalog: Catalog) -> None:
    request = LLAMA_70B_BF16.model_copy(update={"throughput": {"H100": 40.0}, "demand": 100.0, "replicas": 4})
    h100 = size_for_gpu(request, catalog.gpu("H100"))
    assert h100.replicas == 4  # ceil(100 / 40) = 3 < 4


def test_throughput_for_an_unknown_gpu_is_an_error(catalog: Catalog) -> None:
    request = LLAMA_70B_BF16.model_copy(update={"throughput": {"H1OO": 40.0}, "demand": 500.0})
    with pytest.raises(UnknownCatalogName, match="did you mean 'H100'"):
        size(request, catalog)


def test_full_training_of_7b_takes_two_h100(catalog: Catalog) -> None:
    """Adam mixed precision: 7 x 16 = 112 GB; activations 20% x 7 x 2 = 2.8 GB;
    overhead 10% x 14 GB bf16 weights = 1.4 GB; total 116.2 GB; ceil(116.2 / 72) = 2.
    """
    request = SizingRequest(kind="training", model=ModelShape(params_b=7, precision="bf16"))
    h100 = size_for_gpu(request, catalog.gpu("H100"))
    assert h100.memory_required_gb == pytest.approx(116.2)
    assert (h100.gpus_per_replica, h100.fits) == (2, True)
    assert h100.arithmetic[0] == (
        "weights, gradients and Adam state = 7 B params x 16 bytes (bf16 weights 2 + bf16 gradients 2 + "
        "fp32 master weights 4 + fp32 Adam moments 8) = 112.0 GB"
    )


def test_full_training_of_70b_spans_whole_nvlink_domains(catalog: Catalog) -> None:
    """70 x 16 = 1,120 + 28 activations + 14 overhead = 1,162 GB; H100: ceil(1,162 / 72) = 17,
    more than one 8-GPU domain, so 3 whole domains = 24 GPUs, tensor parallel 8 inside each.
    """
    request = SizingRequest(kind="training", model=ModelShape(params_b=70, precision="bf16"))
    h100 = size_for_gpu(request, catalog.gpu("H100"))
    assert h100.memory_required_gb == pytest.approx(1162.0)
    assert (h100.fits, h100.gpus_per_replica, h100.tp_degree) == (True, 24, 8)


def test_training_gpu_floor_is_data_parallel(catalog: Catalog) -> None:
    request = SizingRequest(kind="training", model=ModelShape(params_b=70, precision="bf16"), gpus=64)
    h100 = size_for_gpu(request, catalog.gpu("H100"))
    assert (h100.gpus_per_replica, h100.tp_degree, h100.fits) == (64, 8, True)


def test_lora_fine_tuning_of_70b(catalog: Catalog) -> None:
    """Fine-tuning defaults to LoRA: frozen 140 + adapters 2% x 70 x 16 = 22.4
    + activations 28 + overhead 14 = 204.4 GB; B200: ceil(204.4 / 162) = 2.
    """
    request = SizingRequest(kind="fine-tuning", model=ModelShape(params_b=70, precision="bf16"))
    assert request.method == "lora"
    b200 = size_for_gpu(request, catalog.gpu("B200"))
    assert b200.memory_required_gb == pytest.approx(204.4)
    assert b200.gpus_per_replica == 2


def test_qlora_fine_tuning_of_70b_fits_one_h200(catalog: Catalog) -> None:
    """QLoRA: 70 x 0.5 = 35 + 22.4 adapters + 28 activations + 3.5 overhead = 88.9 GB.
    H200 126.9 GB -> 1 GPU; H100 72 GB -> 2 GPUs.
    """
    request = SizingRequest(
        kind="fine-tuning", model=ModelShape(params_b=70, precision="bf16"), training_method="qlora"
    )
    results = _by_gpu(size(request, catalog, ["H200", "h100-sxm"]))
    assert results["H200"].memory_required_gb == pytest.approx(88.9)
    assert (results["H200"].gpus_per_replica, results["H100"].gpus_per_replica) == (1, 2)


def test_training_method_is_refused_for_inference() -> None:
    with pytest.raises(ValidationError, match="training_method applies to training and fine-tuning"):
        SizingRequest(kind="inference", model=ModelShape(params_b=7, precision="bf16"), training_method="lora")


def test_size_is_sorted_deduplicated_and_deterministic(catalog: Catalog) -> None:
    first = size(LLAMA_70B_BF16, catalog, ["h200", "H100-SXM", "H100", "b200"])
    assert [r.gpu for r in first] == ["B200", "H100", "H200"]
    assert first == size(LLAMA_70B_BF16, catalog, ["b200", "H100", "H200"])
