"""GPU models and cloud instances with sourced figures, and the loader for them.

The shipped data lives next to this module in ``gpus.yaml`` and
``instances.yaml``; every figure there names the source that supports it.
Workload sizing against these models is in :mod:`planner.catalog.sizing`.

Exceptions::

    CatalogError                  anything this package raises on purpose
    ├── CatalogDataError          invalid catalog data or invalid additions (also a ValueError)
    └── UnknownCatalogName        a GPU or instance name that is not in the catalog (also a KeyError)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

__all__ = [
    "Catalog",
    "CatalogDataError",
    "CatalogError",
    "GpuModel",
    "Instance",
    "Origin",
    "Source",
    "UnknownCatalogName",
    "load_catalog",
]

Origin = Literal["catalog", "spec"]

_DATA_DIR = Path(__file__).parent
_GPUS_FILE = "gpus.yaml"
_INSTANCES_FILE = "instances.yaml"


class CatalogError(Exception):
    """Base class of the errors this package raises on purpose."""


class CatalogDataError(CatalogError, ValueError):
    """Catalog data, or additions to it, are invalid."""


class UnknownCatalogName(CatalogError, KeyError):
    """A GPU model or instance name that the catalog does not hold.

    ``suggestions`` holds the nearest valid names, best first.
    """

    def __init__(self, kind: str, name: str, suggestions: Iterable[str] = ()) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = tuple(suggestions)
        message = f"unknown {kind} {name!r}"
        if self.suggestions:
            message += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would print the message quoted
        return self.message


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Frozen):
    """A public document that supports some figures of a catalog entry."""

    title: str = Field(description="Title of the document or page.")
    url: str = Field(pattern=r"^https?://", description="Where the document can be read.")
    accessed: date = Field(description="When the document was read (ISO date).")
    fields: tuple[str, ...] = Field(
        min_length=1, description="Names of the entry's fields whose figures this source supports."
    )
    note: str | None = Field(
        default=None, description="How the figure was read or derived, e.g. 'sparse figure halved'."
    )


def _check_source_fields(model: BaseModel, sources: Iterable[Source]) -> None:
    known = set(type(model).model_fields)
    for source in sources:
        unknown = sorted(set(source.fields) - known)
        if unknown:
            raise ValueError(f"source {source.title!r} lists unknown fields: {', '.join(unknown)}")


class GpuModel(_Frozen):
    """One GPU model: memory, interconnect and dense tensor throughput."""

    id: str = Field(min_length=1, description="Catalog id, e.g. 'H100' or 'B200'.")
    name: str = Field(description="Full product name.")
    vendor: str = Field(description="Manufacturer, e.g. 'nvidia'.")
    generation: Literal["ampere", "hopper", "blackwell", "ada"] = Field(
        description="GPU architecture generation."
    )
    aliases: tuple[str, ...] = Field(
        default=(), description="Other names that resolve to this model (case-insensitive)."
    )
    memory_gb: float = Field(gt=0, description="Memory a workload can use per GPU, in GB.")
    advertised_memory_gb: float | None = Field(
        default=None, gt=0, description="Advertised memory per GPU, when it differs from the usable figure."
    )
    memory_type: Literal["HBM2", "HBM2e", "HBM3", "HBM3e", "GDDR6"] = Field(
        description="Memory technology."
    )
    hbm_bandwidth_tbs: float = Field(gt=0, description="Memory bandwidth per GPU in TB/s.")
    nvlink_gbs: float | None = Field(
        default=None, ge=0, description="NVLink bandwidth per GPU in GB/s; null where there is no NVLink."
    )
    nvlink_domain: int = Field(
        ge=1,
        description=(
            "GPUs in one NVLink domain of the usual system: 8 for HGX boards, 72 for NVL72 racks, "
            "2 for bridged PCIe pairs, 1 without NVLink."
        ),
    )
    bf16_tflops: float | None = Field(default=None, gt=0, description="Dense BF16 tensor TFLOPS (not sparse).")
    fp8_tflops: float | None = Field(
        default=None, gt=0, description="Dense FP8 tensor TFLOPS; null where FP8 is unsupported."
    )
    fp4_tflops: float | None = Field(
        default=None, gt=0, description="Dense FP4 tensor TFLOPS; null where FP4 is unsupported."
    )
    tdp_w: float | None = Field(default=None, gt=0, description="Maximum board power in watts.")
    note: str | None = Field(default=None, description="Caveats a planner should know.")
    sources: tuple[Source, ...] = Field(default=(), description="Documents that support the figures.")
    origin: Origin = Field(
        default="catalog", description="'catalog' for shipped data, 'spec' for a model a user added."
    )

    @model_validator(mode="after")
    def _sources_name_real_fields(self) -> GpuModel:
        _check_source_fields(self, self.sources)
        return self


class Instance(_Frozen):
    """One cloud instance type (VM size, machine type or shape) with GPUs."""

    id: str = Field(min_length=1, description="The provider's instance name, exactly, e.g. 'p5.48xlarge'.")
    provider: Literal["aws", "azure", "gcp", "oci", "other"] = Field(description="Cloud provider.")
    gpu: str = Field(description="Catalog id of the GPU model.")
    gpus: int = Field(ge=1, description="GPUs per instance.")
    vcpus: int | None = Field(default=None, ge=1, description="vCPUs per instance.")
    memory_gb: float | None = Field(
        default=None, gt=0, description="Host memory per instance as the provider lists it (GB or GiB)."
    )
    region: str | None = Field(default=None, description="Region the price applies to.")
    price_per_hour: float | None = Field(
        default=None, ge=0, description="On-demand price in USD per instance-hour; null where unknown."
    )
    price_as_of: date | None = Field(default=None, description="Date the price was observed or set.")
    price_source: Source | None = Field(default=None, description="Document the catalog price comes from.")
    price_origin: Origin | None = Field(
        default=None, description="'catalog' or 'spec': where the price in use came from; null without a price."
    )
    hipaa_baa: bool = Field(
        description="The provider offers a HIPAA BAA that covers this compute service."
    )
    note: str | None = Field(default=None, description="Caveats, e.g. why there is no price.")
    sources: tuple[Source, ...] = Field(default=(), description="Documents that support the figures.")
    origin: Origin = Field(
        default="catalog", description="'catalog' for shipped data, 'spec' for an instance a user added."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_price_origin(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("price_per_hour") is not None and data.get("price_origin") is None:
            data = {**data, "price_origin": data.get("origin", "catalog")}
        return data

    @model_validator(mode="after")
    def _price_is_dated(self) -> Instance:
        if self.price_per_hour is None:
            if self.price_origin is not None:
                raise ValueError("price_origin is set but there is no price_per_hour")
        elif self.price_as_of is None:
            raise ValueError("a price_per_hour needs price_as_of (the date it was observed)")
        if self.price_source is not None:
            _check_source_fields(self, [self.price_source])
        _check_source_fields(self, self.sources)
        return self


@lru_cache(maxsize=4096)  # a spec names the same few models thousands of times
def _key(name: str) -> str:
    """Lookup key: case-insensitive, with spaces and underscores read as dashes."""
    return re.sub(r"[\s_]+", "-", name.strip()).casefold()


def _suggest(name: str, candidates: Mapping[str, str]) -> list[str]:
    import difflib  # only needed on the error path

    key = _key(name)
    # A name that starts a valid name ("a100" for "A100-80GB") is the likeliest intent.
    prefixed = sorted(candidate for candidate in candidates if len(key) >= 2 and candidate.startswith(key))
    matches = prefixed + difflib.get_close_matches(key, list(candidates), n=3, cutoff=0.5)
    seen: list[str] = []
    for match in matches:
        if candidates[match] not in seen:
            seen.append(candidates[match])
    return seen[:3]


class Catalog(_Frozen):
    """GPU models and cloud instances, keyed by id."""

    gpus: dict[str, GpuModel] = Field(description="GPU models by catalog id.")
    instances: dict[str, Instance] = Field(description="Cloud instances by provider instance name.")

    _gpu_index: dict[str, str] = PrivateAttr(default_factory=dict)
    _instance_index: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        gpu_index: dict[str, str] = {}
        for key, gpu in self.gpus.items():
            if key != gpu.id:
                raise ValueError(f"GPU model stored under {key!r} has id {gpu.id!r}")
            for name in (gpu.id, *gpu.aliases):
                owner = gpu_index.setdefault(_key(name), gpu.id)
                if owner != gpu.id:
                    raise ValueError(f"GPU name {name!r} of {gpu.id!r} is already used by {owner!r}")
        instance_index: dict[str, str] = {}
        for key, instance in self.instances.items():
            if key != instance.id:
                raise ValueError(f"instance stored under {key!r} has id {instance.id!r}")
            owner = instance_index.setdefault(_key(instance.id), instance.id)
            if owner != instance.id:
                raise ValueError(f"instance {instance.id!r} duplicates {owner!r}")
            if instance.gpu not in self.gpus:
                hint = _suggest(instance.gpu, gpu_index)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                raise ValueError(f"instance {instance.id!r} names unknown GPU model {instance.gpu!r}{extra}")
        self._gpu_index = gpu_index
        self._instance_index = instance_index
        return self

    def gpu(self, name: str) -> GpuModel:
        """The GPU model with this id or alias (case-insensitive); KeyError if none."""
        gpu_id = self._gpu_index.get(_key(name))
        if gpu_id is None:
            raise UnknownCatalogName("GPU model", name, _suggest(name, self._gpu_index))
        return self.gpus[gpu_id]

    def instance(self, name: str) -> Instance:
        """The instance with this provider name (case-insensitive); KeyError if none."""
        instance_id = self._instance_index.get(_key(name))
        if instance_id is None:
            raise UnknownCatalogName("instance", name, _suggest(name, self._instance_index))
        return self.instances[instance_id]

    def gpu_ids(self) -> list[str]:
        """GPU model ids, sorted."""
        return sorted(self.gpus)

    def instance_ids(self) -> list[str]:
        """Instance ids, sorted."""
        return sorted(self.instances)

    def with_additions(
        self,
        gpus: Iterable[GpuModel | Mapping[str, Any]] = (),
        instances: Iterable[Instance | Mapping[str, Any]] = (),
        price_overrides: Mapping[str, tuple[float, date | str]] | None = None,
    ) -> Catalog:
        """A new catalog with user GPU models and instances added and prices overridden.

        Added entries and overridden prices are marked ``origin``/``price_origin``
        ``'spec'`` so reports can say where a figure came from. An instance may
        name its GPU by alias; it is stored under the canonical id. A name that
        is already in the catalog is an error: add a new id instead.
        """
        new_gpus = dict(self.gpus)
        gpu_index = dict(self._gpu_index)
        for item in gpus:
            gpu = _validated(GpuModel, item).model_copy(update={"origin": "spec"})
            for name in (gpu.id, *gpu.aliases):
                owner = gpu_index.get(_key(name))
                if owner is not None:
                    raise CatalogDataError(f"GPU name {name!r} is already in the catalog (as {owner!r})")
                gpu_index[_key(name)] = gpu.id
            new_gpus[gpu.id] = gpu

        new_instances = dict(self.instances)
        instance_index = dict(self._instance_index)
        for item in instances:
            instance = _validated(Instance, item)
            owner = instance_index.get(_key(instance.id))
            if owner is not None:
                raise CatalogDataError(f"instance {instance.id!r} is already in the catalog (as {owner!r})")
            gpu_id = gpu_index.get(_key(instance.gpu))
            if gpu_id is None:
                raise UnknownCatalogName("GPU model", instance.gpu, _suggest(instance.gpu, gpu_index))
            update: dict[str, Any] = {"origin": "spec", "gpu": gpu_id}
            if instance.price_per_hour is not None:
                update["price_origin"] = "spec"
            new_instances[instance.id] = instance.model_copy(update=update)
            instance_index[_key(instance.id)] = instance.id

        for name, (price, as_of) in (price_overrides or {}).items():
            instance_id = instance_index.get(_key(name))
            if instance_id is None:
                raise UnknownCatalogName("instance", name, _suggest(name, instance_index))
            if price is None or price < 0:
                raise CatalogDataError(f"price override for {instance_id!r} must be a number >= 0, got {price!r}")
            try:
                as_of_date = as_of if isinstance(as_of, date) else date.fromisoformat(str(as_of))
            except ValueError as exc:
                raise CatalogDataError(f"price override for {instance_id!r}: {as_of!r} is not an ISO date") from exc
            new_instances[instance_id] = new_instances[instance_id].model_copy(
                update={
                    "price_per_hour": float(price),
                    "price_as_of": as_of_date,
                    "price_origin": "spec",
                    "price_source": None,
                }
            )

        try:
            return Catalog(gpus=new_gpus, instances=new_instances)
        except ValidationError as exc:
            raise CatalogDataError(str(exc)) from exc


def _validated(model: type[GpuModel] | type[Instance], item: Any) -> Any:
    if isinstance(item, model):
        return item
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        raise CatalogDataError(f"invalid {model.__name__}: {exc}") from exc


def _read_entries(filename: str, section: str) -> list[dict[str, Any]]:
    import yaml  # deferred so that importing the package stays cheap

    path = _DATA_DIR / filename
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogDataError(f"{path}: cannot read catalog data: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get(section), list):
        raise CatalogDataError(f"{path}: expected a top-level list {section!r}")
    unexpected = sorted(set(document) - {section, "references"})
    if unexpected:
        raise CatalogDataError(f"{path}: unexpected top-level keys: {', '.join(unexpected)}")
    return document[section]


def _keyed(filename: str, model: type[GpuModel] | type[Instance], entries: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for position, entry in enumerate(entries):
        try:
            item = model.model_validate(entry)
        except ValidationError as exc:
            label = entry.get("id", f"entry {position}") if isinstance(entry, dict) else f"entry {position}"
            raise CatalogDataError(f"{filename}: {label}: {exc}") from exc
        if item.id in result:
            raise CatalogDataError(f"{filename}: duplicate id {item.id!r}")
        result[item.id] = item
    return result


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The catalog shipped with medplan (read once, then cached)."""
    gpus = _keyed(_GPUS_FILE, GpuModel, _read_entries(_GPUS_FILE, "gpus"))
    instances = _keyed(_INSTANCES_FILE, Instance, _read_entries(_INSTANCES_FILE, "instances"))
    try:
        return Catalog(gpus=gpus, instances=instances)
    except ValidationError as exc:
        raise CatalogDataError(f"catalog data is inconsistent: {exc}") from exc
