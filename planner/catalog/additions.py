"""The catalog as one spec sees it: the packaged catalog plus the spec's own
GPU models and instances, and every pool resolved to its GPU, shape and price.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.catalog import Catalog, GpuModel, Instance, load_catalog


@dataclass(frozen=True)
class ResolvedPool:
    """A pool with its GPU model, node shape and price filled in."""

    site: str
    id: str
    gpu: str
    gpus_per_node: int
    nodes: int  # owned or reserved nodes; for elastic pools the most that may be used
    elastic: bool
    memory_gb: float
    nvlink_domain: int
    generation: str
    instance: str | None
    price_per_node_hour: float | None
    cost_per_gpu_hour: float | None
    price_origin: str  # catalog | spec | none
    price_as_of: str | None

    @property
    def key(self) -> str:
        return f"{self.site}/{self.id}"

    @property
    def capacity_gpus(self) -> int:
        return self.nodes * self.gpus_per_node


def catalog_with_spec(spec) -> Catalog:
    """The packaged catalog plus the spec's own entries and price overrides."""
    base = load_catalog()
    extra = getattr(spec, "catalog", None)
    if extra is None:
        return base
    return base.with_additions(gpus=list(extra.gpus), instances=list(extra.instances))


def has_gpu(catalog: Catalog, name: str) -> bool:
    try:
        catalog.gpu(name)
    except KeyError:
        return False
    return True


def has_instance(catalog: Catalog, name: str) -> bool:
    try:
        catalog.instance(name)
    except KeyError:
        return False
    return True


def catalog_for(data: dict) -> Catalog | None:
    """The catalog for raw, not yet validated spec data (for name checks).

    Entries of the spec's own ``catalog`` section that do not validate are
    left out here; the models report them.
    """
    base = load_catalog()
    section = data.get("catalog")
    if not isinstance(section, dict):
        return base
    catalog = base
    for key, model in (("gpus", GpuModel), ("instances", Instance)):
        items = section.get(key)
        for item in items if isinstance(items, list) else []:
            try:
                entry = model.model_validate(item)
                catalog = catalog.with_additions(**{key: [entry]})
            except Exception:  # noqa: S112 - the model validation or conflict check reports it
                continue
    return catalog


def resolve_pools(spec, catalog: Catalog) -> list[ResolvedPool]:
    """Every pool of every site, in spec order."""
    out: list[ResolvedPool] = []
    for site in spec.sites:
        for pool in site.pools:
            if pool.instance:
                instance = catalog.instance(pool.instance)
                gpu = catalog.gpu(instance.gpu)
                per_node = pool.gpus_per_node or instance.gpus
                if pool.price_per_hour is not None:
                    price, origin = pool.price_per_hour, "spec"
                    as_of = pool.price_as_of.isoformat() if pool.price_as_of else None
                elif instance.price_per_hour is not None:
                    price, origin = instance.price_per_hour, "catalog"
                    as_of = str(instance.price_as_of) if instance.price_as_of else None
                else:
                    price, origin, as_of = None, "none", None
                if pool.cost_per_gpu_hour is not None and pool.price_per_hour is None:
                    price, origin, as_of = pool.cost_per_gpu_hour * per_node, "spec", None
                out.append(
                    ResolvedPool(
                        site=site.id,
                        id=pool.id,
                        gpu=gpu.id,
                        gpus_per_node=per_node,
                        nodes=pool.max_nodes or pool.nodes or 0,
                        elastic=pool.max_nodes is not None,
                        memory_gb=gpu.memory_gb,
                        nvlink_domain=max(gpu.nvlink_domain, per_node) if gpu.nvlink_domain > 1 else 1,
                        generation=gpu.generation,
                        instance=instance.id,
                        price_per_node_hour=price,
                        cost_per_gpu_hour=price / per_node if price is not None else None,
                        price_origin=origin,
                        price_as_of=as_of,
                    )
                )
            else:
                gpu = catalog.gpu(pool.gpu)
                cost = pool.cost_per_gpu_hour
                out.append(
                    ResolvedPool(
                        site=site.id,
                        id=pool.id,
                        gpu=gpu.id,
                        gpus_per_node=pool.gpus_per_node,
                        nodes=pool.nodes,
                        elastic=False,
                        memory_gb=gpu.memory_gb,
                        nvlink_domain=max(gpu.nvlink_domain, 1),
                        generation=gpu.generation,
                        instance=None,
                        price_per_node_hour=cost * pool.gpus_per_node if cost is not None else None,
                        cost_per_gpu_hour=cost,
                        price_origin="spec" if cost is not None else "none",
                        price_as_of=None,
                    )
                )
    return out
