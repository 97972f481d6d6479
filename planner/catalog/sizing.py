"""Memory sizing of a workload on each GPU model, with its arithmetic shown.

Pure functions: the same request and catalog always give the same answer, and
every answer carries the human-readable steps that produced it
(``GpuSizing.arithmetic``) so a reviewer can check it by hand.

Model of memory (decimal GB; ``params_b`` billions x bytes per parameter = GB):

- inference, batch, streaming:
  weights (params x bytes of the precision)
  + KV cache, when the shape is declared:
    2 (K and V) x layers x kv_heads x head_dim x context_tokens x concurrency x KV bytes
  + runtime overhead (``runtime_overhead`` x weights: CUDA context, allocator
    slack, activations of one step).
- training, full (mixed precision Adam): ``ADAM_BYTES_PER_PARAM`` = 16 bytes
  per parameter (bf16 weights 2 + bf16 gradients 2 + fp32 master weights 4 +
  two fp32 Adam moments 8). Frameworks that keep fp32 gradients need 18; 16 is
  the default here.
- fine-tuning with LoRA: frozen weights at the model precision, plus adapters of
  ``LORA_TRAINABLE_FRACTION`` (2%) of the parameters at 16 bytes each.
  QLoRA: the same with frozen weights at 4 bits (0.5 bytes).
- training and fine-tuning add activations, estimated as
  ``ACTIVATION_FRACTION`` (20%) of the bf16 weight size per concurrent
  sequence (activation checkpointing assumed), and the runtime overhead on the
  weights as stored.

Placement: the smallest GPU count whose usable memory x (1 - headroom) holds
the total. Inference is tensor parallel: the count is rounded up to a power of
two and must fit in one NVLink domain. Training and fine-tuning shard across
data-parallel ranks: the count is rounded up to a power of two within one
NVLink domain, or to whole domains beyond it. A user-given ``gpus`` is a floor.

Replicas: with a throughput measurement for the GPU model and a demand,
replicas = ceil(demand / measured throughput per replica). Throughput is per
replica (one copy of the model on ``gpus_per_replica`` GPUs), in whatever unit
the demand uses (requests/s, tokens/s, studies/hour). GPU models without a
measurement keep the given replicas: no speed-up between models is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.catalog import Catalog, GpuModel

__all__ = [
    "ACTIVATION_FRACTION",
    "ADAM_BYTES_PER_PARAM",
    "BYTES_PER_PARAM",
    "DEFAULT_HEADROOM",
    "DEFAULT_RUNTIME_OVERHEAD",
    "LORA_BYTES_PER_TRAINABLE_PARAM",
    "LORA_TRAINABLE_FRACTION",
    "GpuSizing",
    "ModelShape",
    "SizingRequest",
    "memory_required",
    "size",
    "size_for_gpu",
]

Precision = Literal["fp32", "bf16", "fp16", "fp8", "int8", "fp4", "int4"]
WorkloadKind = Literal["inference", "training", "fine-tuning", "batch", "streaming"]
TrainingMethod = Literal["full", "lora", "qlora"]

BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
}
DEFAULT_RUNTIME_OVERHEAD = 0.10
DEFAULT_HEADROOM = 0.10
ADAM_BYTES_PER_PARAM = 16.0
LORA_TRAINABLE_FRACTION = 0.02
LORA_BYTES_PER_TRAINABLE_PARAM = 16.0
QLORA_WEIGHT_PRECISION: Precision = "int4"
ACTIVATION_FRACTION = 0.20
ACTIVATION_PRECISION: Precision = "bf16"

_SERVING_KINDS = frozenset({"inference", "batch", "streaming"})
_TRAINING_DEFAULT_METHOD: dict[str, TrainingMethod] = {"training": "full", "fine-tuning": "lora"}
_EPSILON = 1e-9  # keeps float noise (140 x 1.1 = 154.00000000000003) from adding a GPU


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelShape(_Frozen):
    """The model being served or trained: size, precision and, optionally, attention shape."""

    name: str | None = Field(default=None, description="Model name, for messages only.")
    params_b: float = Field(gt=0, description="Parameters in billions.")
    precision: Precision = Field(description="Precision the weights are stored in.")
    layers: int | None = Field(default=None, ge=1, description="Transformer layers (for the KV cache).")
    kv_heads: int | None = Field(
        default=None, ge=1, description="Key/value heads per layer (grouped-query attention), for the KV cache."
    )
    head_dim: int | None = Field(default=None, ge=1, description="Dimension of one attention head.")
    context_tokens: int | None = Field(
        default=None, ge=1, description="Tokens of context held per sequence (prompt + output)."
    )
    kv_precision: Precision | None = Field(
        default=None,
        description="Precision of the KV cache; default bf16 for 4-bit weights, else the weight precision.",
    )

    @property
    def effective_kv_precision(self) -> Precision:
        """The KV-cache precision in use, after the default is applied."""
        if self.kv_precision is not None:
            return self.kv_precision
        return "bf16" if self.precision in ("fp4", "int4") else self.precision

    @property
    def missing_kv_shape(self) -> tuple[str, ...]:
        """Names of the shape fields the KV-cache estimate still needs."""
        names = ("layers", "kv_heads", "head_dim", "context_tokens")
        return tuple(name for name in names if getattr(self, name) is None)


class SizingRequest(_Frozen):
    """What a workload needs sized: its kind, model, load and the user's constraints."""

    kind: WorkloadKind = Field(description="Workload kind, as in the spec.")
    model: ModelShape = Field(description="The model.")
    concurrency: int = Field(
        default=1, ge=1, description="Concurrent sequences per replica (the micro-batch for training)."
    )
    training_method: TrainingMethod | None = Field(
        default=None,
        description="full, lora or qlora; default full for training and lora for fine-tuning.",
    )
    runtime_overhead: float = Field(
        default=DEFAULT_RUNTIME_OVERHEAD, ge=0, description="Runtime overhead as a fraction of the weight size."
    )
    headroom: float = Field(
        default=DEFAULT_HEADROOM, ge=0, lt=1, description="Fraction of each GPU's usable memory left free."
    )
    gpus: int | None = Field(
        default=None, ge=1, description="GPUs per replica the user asks for; a floor, never reduced."
    )
    gpu_memory_gb: float | None = Field(
        default=None, gt=0, description="Minimum usable memory per GPU the user asks for, in GB."
    )
    throughput: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Measured throughput per replica, by GPU id or alias, in the unit of `demand`. "
            "Only measured GPU models get replicas from demand."
        ),
    )
    demand: float | None = Field(
        default=None, ge=0, description="Throughput the workload must sustain, in the unit of `throughput`."
    )
    replicas: int = Field(default=1, ge=1, description="Replicas the user asks for; a floor.")

    @model_validator(mode="after")
    def _method_fits_kind(self) -> SizingRequest:
        if self.training_method is not None and self.kind in _SERVING_KINDS:
            raise ValueError(f"training_method applies to training and fine-tuning, not to {self.kind}")
        for gpu, value in self.throughput.items():
            if not value > 0:
                raise ValueError(f"throughput for {gpu!r} must be > 0, got {value!r}")
        return self

    @property
    def method(self) -> TrainingMethod | None:
        """The training method in use, after the default for the kind is applied."""
        if self.kind in _SERVING_KINDS:
            return None
        return self.training_method or _TRAINING_DEFAULT_METHOD[self.kind]


class GpuSizing(_Frozen):
    """How one workload sizes on one GPU model, and the arithmetic behind it."""

    gpu: str = Field(description="Catalog id of the GPU model.")
    fits: bool = Field(description="Whether a replica can be placed on this GPU model.")
    reason: str | None = Field(default=None, description="Why it does not fit; null when it fits.")
    gpus_per_replica: int = Field(description="GPUs one replica needs (tensor and data parallel).")
    tp_degree: int = Field(description="Tensor-parallel degree inside one NVLink domain.")
    memory_required_gb: float = Field(description="Memory one replica needs in total, in GB.")
    memory_per_gpu_gb: float = Field(description="Memory per GPU once the replica is spread, in GB.")
    usable_per_gpu_gb: float = Field(description="Usable memory of one GPU of this model, in GB.")
    headroom_gb: float = Field(description="Memory left free on each GPU after placement, in GB.")
    replicas: int = Field(description="Replicas needed.")
    total_gpus: int = Field(description="gpus_per_replica x replicas.")
    arithmetic: tuple[str, ...] = Field(description="Each step of the calculation, with inputs and result.")


def _gb(value: float) -> str:
    return f"{value:,.1f} GB"


def _num(value: float) -> str:
    return f"{value:,.10g}"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.10g}%"


def _bytes(value: float) -> str:
    return f"{_num(value)} {'byte' if value == 1 else 'bytes'}"


def _sequences(count: int) -> str:
    return f"{count} {'sequence' if count == 1 else 'sequences'}"


def _ceil(value: float) -> int:
    return math.ceil(value - _EPSILON)


def _next_power_of_two(count: int) -> int:
    return 1 << max(count - 1, 0).bit_length()


def memory_required(request: SizingRequest) -> tuple[float, tuple[str, ...]]:
    """Total memory one replica needs (GB) and the steps that give it."""
    model = request.model
    params = model.params_b
    steps: list[str] = []
    method = request.method

    if method is None:
        weight_bytes = BYTES_PER_PARAM[model.precision]
        weights = params * weight_bytes
        steps.append(f"weights = {_num(params)} B params x {_bytes(weight_bytes)} ({model.precision}) = {_gb(weights)}")
        parts = [weights, _kv_cache(request, steps)]
    else:
        if method == "full":
            stored_precision: Precision = "bf16"
            weights = params * BYTES_PER_PARAM[stored_precision]
            state = params * ADAM_BYTES_PER_PARAM
            steps.append(
                f"weights, gradients and Adam state = {_num(params)} B params x {_num(ADAM_BYTES_PER_PARAM)} bytes "
                "(bf16 weights 2 + bf16 gradients 2 + fp32 master weights 4 + fp32 Adam moments 8) "
                f"= {_gb(state)}"
            )
            parts = [state]
        else:
            stored_precision = QLORA_WEIGHT_PRECISION if method == "qlora" else model.precision
            weight_bytes = BYTES_PER_PARAM[stored_precision]
            weights = params * weight_bytes
            steps.append(
                f"frozen weights = {_num(params)} B params x {_bytes(weight_bytes)} ({stored_precision}"
                f"{', QLoRA' if method == 'qlora' else ''}) = {_gb(weights)}"
            )
            adapters = params * LORA_TRAINABLE_FRACTION * LORA_BYTES_PER_TRAINABLE_PARAM
            steps.append(
                f"{method} adapters = {_pct(LORA_TRAINABLE_FRACTION)} x {_num(params)} B params x "
                f"{_num(LORA_BYTES_PER_TRAINABLE_PARAM)} bytes (weights, gradients, Adam state) = {_gb(adapters)}"
            )
            parts = [weights, adapters]
        activation_bytes = BYTES_PER_PARAM[ACTIVATION_PRECISION]
        activations = ACTIVATION_FRACTION * params * activation_bytes * request.concurrency
        steps.append(
            f"activations (estimate, activation checkpointing) = {_pct(ACTIVATION_FRACTION)} x {_num(params)} B params x "
            f"{_bytes(activation_bytes)} ({ACTIVATION_PRECISION}) x {_sequences(request.concurrency)} = {_gb(activations)}"
        )
        parts.append(activations)

    overhead = request.runtime_overhead * weights
    steps.append(f"runtime overhead = {_pct(request.runtime_overhead)} x {_gb(weights)} weights = {_gb(overhead)}")
    parts.append(overhead)
    total = sum(parts)
    steps.append(f"total = {' + '.join(f'{part:,.1f}' for part in parts)} = {_gb(total)}")
    return total, tuple(steps)


def _kv_cache(request: SizingRequest, steps: list[str]) -> float:
    model = request.model
    missing = model.missing_kv_shape
    if missing:
        steps.append(f"kv cache = not estimated (declare {', '.join(missing)} to include it) = {_gb(0.0)}")
        return 0.0
    layers, kv_heads, head_dim, tokens = (
        int(model.layers or 0), int(model.kv_heads or 0), int(model.head_dim or 0), int(model.context_tokens or 0)
    )
    kv_precision = model.effective_kv_precision
    kv_bytes = BYTES_PER_PARAM[kv_precision]
    total_bytes = 2 * layers * kv_heads * head_dim * tokens * request.concurrency * kv_bytes
    kv = total_bytes / 1e9
    steps.append(
        f"kv cache = 2 x {layers} layers x {kv_heads} kv_heads x {head_dim} head_dim x "
        f"{tokens:,} tokens x {_sequences(request.concurrency)} x {_bytes(kv_bytes)} ({kv_precision}) "
        f"= {total_bytes:,.0f} bytes = {_gb(kv)}"
    )
    return kv


def _measured_throughput(request: SizingRequest, gpu: GpuModel) -> float | None:
    names = {name.casefold() for name in (gpu.id, *gpu.aliases)}
    for key in sorted(request.throughput):
        if key.strip().casefold() in names:
            return request.throughput[key]
    return None


def _replicas(request: SizingRequest, gpu: GpuModel, steps: list[str]) -> int:
    measured = _measured_throughput(request, gpu)
    given = request.replicas
    if measured is not None and request.demand is not None:
        ratio = request.demand / measured
        needed = max(_ceil(ratio), 1)
        steps.append(
            f"replicas = demand {_num(request.demand)} / measured {_num(measured)} per replica on {gpu.id} "
            f"(user measurement) = {ratio:.4g} -> {needed} replicas"
        )
        if given > needed:
            steps.append(f"replicas = max(given {given}, {needed}) = {given} (the given replicas are a floor)")
            return given
        return needed
    if request.demand is not None:
        steps.append(
            f"replicas = {given} as given: no throughput measurement for {gpu.id}, "
            "and no speed-up between GPU models is assumed"
        )
    else:
        steps.append(f"replicas = {given} as given")
    return given


def size_for_gpu(request: SizingRequest, gpu: GpuModel) -> GpuSizing:
    """How the request sizes on one GPU model."""
    total, memory_steps = memory_required(request)
    steps = list(memory_steps)
    reasons: list[str] = []
    usable = gpu.memory_gb
    domain = gpu.nvlink_domain

    if request.gpu_memory_gb is not None:
        if usable + _EPSILON < request.gpu_memory_gb:
            reasons.append(f"needs {_num(request.gpu_memory_gb)} GB per GPU, {gpu.id} has {_num(usable)}")
            steps.append(f"given minimum per GPU = {_gb(request.gpu_memory_gb)}; {gpu.id} has {_gb(usable)}: too small")
        else:
            steps.append(f"given minimum per GPU = {_gb(request.gpu_memory_gb)}; {gpu.id} has {_gb(usable)}: enough")

    budget = usable * (1 - request.headroom)
    steps.append(
        f"usable per GPU = {_num(usable)} GB x (1 - {_pct(request.headroom)} headroom) = {_gb(budget)}"
    )
    for_memory = max(_ceil(total / budget), 1)
    steps.append(f"GPUs for memory = ceil({_gb(total)} / {_gb(budget)}) = ceil({total / budget:.4g}) = {for_memory}")
    wanted = for_memory
    if request.gpus is not None:
        wanted = max(request.gpus, for_memory)
        steps.append(f"given gpus = {request.gpus} (a floor): max({request.gpus}, {for_memory}) = {wanted}")

    if request.method is None:
        gpus = _next_power_of_two(wanted)
        tp = gpus
        steps.append(f"tensor-parallel degree = {tp} (smallest power of two >= {wanted})")
        if gpus > domain:
            reasons.append(
                f"needs {gpus} x {gpu.id} ({_num(usable)} GB) for {_gb(total)} "
                f"but one NVLink domain holds {domain}"
            )
            steps.append(f"one NVLink domain holds {domain} x {gpu.id}: {gpus} do not fit")
        else:
            steps.append(f"one NVLink domain holds {domain} x {gpu.id}: {gpus} fit")
    else:
        if _next_power_of_two(wanted) <= domain:
            gpus = _next_power_of_two(wanted)
            steps.append(f"GPUs per replica = {gpus} (smallest power of two >= {wanted}, within one NVLink domain)")
        else:
            domains = math.ceil(wanted / domain)
            gpus = domains * domain
            steps.append(f"GPUs per replica = {gpus} ({domains} whole NVLink domains of {domain} for {wanted})")
        tp = _largest_power_of_two_dividing(gpus, limit=domain)
        steps.append(
            f"tensor-parallel degree = {tp} inside one NVLink domain; "
            f"{gpus // tp} sharded data-parallel {'group' if gpus == tp else 'groups'}"
        )

    per_gpu = total / gpus
    free = usable - per_gpu
    steps.append(f"per GPU = {_gb(total)} / {gpus} = {_gb(per_gpu)} of {_num(usable)} GB, {_gb(free)} free")

    replicas = _replicas(request, gpu, steps)
    fits = not reasons
    return GpuSizing(
        gpu=gpu.id,
        fits=fits,
        reason="; ".join(reasons) if reasons else None,
        gpus_per_replica=gpus,
        tp_degree=tp,
        memory_required_gb=total,
        memory_per_gpu_gb=per_gpu,
        usable_per_gpu_gb=usable,
        headroom_gb=free,
        replicas=replicas,
        total_gpus=gpus * replicas,
        arithmetic=tuple(steps),
    )


def _largest_power_of_two_dividing(count: int, limit: int) -> int:
    degree = 1
    while degree * 2 <= limit and count % (degree * 2) == 0:
        degree *= 2
    return degree


def size(request: SizingRequest, catalog: Catalog, gpu_ids: Iterable[str] | None = None) -> list[GpuSizing]:
    """Size the request on each GPU model (all of the catalog by default), sorted by GPU id.

    ``gpu_ids`` may use aliases. Throughput keys must name catalog GPU models,
    so a typo there is reported instead of silently ignored.
    """
    for key in sorted(request.throughput):
        catalog.gpu(key)  # raises UnknownCatalogName with a suggestion
    if gpu_ids is None:
        models = [catalog.gpus[gpu_id] for gpu_id in catalog.gpu_ids()]
    else:
        by_id = {model.id: model for model in (catalog.gpu(name) for name in gpu_ids)}
        models = [by_id[gpu_id] for gpu_id in sorted(by_id)]
    return [size_for_gpu(request, model) for model in models]
