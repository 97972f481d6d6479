"""Renderers of the hardware catalog and of workload sizing: plain text tables and JSON.

Pure functions returning strings. Tables are fixed-width plain text (no
colour) and every output is sorted, so the same inputs give byte-identical
text. JSON rounds money to 4 decimals and memory to 3.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence

from planner import __version__
from planner.catalog import Catalog, GpuModel, Instance
from planner.catalog.sizing import GpuSizing
from planner.catalog.workload_sizing import GENERATION_ORDER, PoolOption, WorkloadSizing, gpu_order_key
from planner.errors import InputError

__all__ = [
    "gpus_json",
    "gpus_table",
    "instances_json",
    "instances_table",
    "size_json",
    "size_table",
]

_DASH = "-"


# --------------------------------------------------------------------------- helpers


def _num(value: float | None) -> str:
    return _DASH if value is None else f"{value:,.10g}"


def _money(value: float | None) -> str:
    return _DASH if value is None else f"{value:,.2f}"


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _gb(value: float) -> str:
    return f"{value:,.1f} GB"


def _round(value: float | None, digits: int) -> float | None:
    if value is None:
        return None
    rounded = round(value, digits)
    return 0.0 if rounded == 0 else rounded  # no "-0.0"


def _one_line(text: object) -> str:
    # User-supplied names must not forge extra report lines.
    return " ".join(str(text).split())


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = (), indent: str = "") -> list[str]:
    """Fixed-width columns, two spaces apart; ``right`` holds the indexes of right-aligned columns."""
    body = [[_one_line(cell) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in body:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    aligned = set(right)

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[index]) if index in aligned else cell.ljust(widths[index])
            for index, cell in enumerate(cells)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [line(headers), *(line(row) for row in body)]


def _dumps(document: object) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _gpus_in_order(catalog: Catalog) -> list[GpuModel]:
    return sorted(catalog.gpus.values(), key=gpu_order_key)


def _instances_in_order(catalog: Catalog) -> list[Instance]:
    return sorted(catalog.instances.values(), key=lambda instance: (instance.provider, instance.id.casefold(), instance.id))


# --------------------------------------------------------------------------- catalog


def gpus_table(catalog: Catalog) -> str:
    """The GPU models of the catalog, older generations first."""
    rows = []
    for gpu in _gpus_in_order(catalog):
        memory = _num(gpu.memory_gb)
        if gpu.advertised_memory_gb is not None and gpu.advertised_memory_gb != gpu.memory_gb:
            memory += f"/{_num(gpu.advertised_memory_gb)}"
        rows.append([
            gpu.id + (" (spec)" if gpu.origin == "spec" else ""),
            gpu.generation,
            memory,
            _num(gpu.hbm_bandwidth_tbs),
            _num(gpu.nvlink_gbs),
            _num(gpu.bf16_tflops),
            _num(gpu.fp8_tflops),
            _num(gpu.fp4_tflops),
            _num(gpu.tdp_w),
        ])
    lines = _table(
        ["GPU", "GENERATION", "MEMORY GB", "TB/S", "NVLINK GB/S", "BF16", "FP8", "FP4", "TDP W"],
        rows,
        right=range(2, 9),
    )
    lines += [
        "",
        "MEMORY GB: usable per GPU, then the advertised figure where it differs (usable is what sizing uses).",
        "TB/S: memory bandwidth. BF16/FP8/FP4: dense tensor TFLOPS (sparse figures halved). - : none or not known.",
        "Sources: `--format json` lists the document behind every figure.",
    ]
    return "\n".join(lines) + "\n"


def gpus_json(catalog: Catalog) -> str:
    """The GPU models of the catalog with every field and source, older generations first."""
    return _dumps({
        "medplan": __version__,
        "gpus": [gpu.model_dump(mode="json") for gpu in _gpus_in_order(catalog)],
    })


def instances_table(catalog: Catalog) -> str:
    """The cloud instances of the catalog, by provider then id."""
    rows = [
        [
            instance.id + (" (spec)" if instance.origin == "spec" else ""),
            instance.provider,
            instance.gpu,
            str(instance.gpus),
            _money(instance.price_per_hour),
            str(instance.price_as_of) if instance.price_as_of else _DASH,
            instance.price_origin or _DASH,
            "yes" if instance.hipaa_baa else "no",
        ]
        for instance in _instances_in_order(catalog)
    ]
    lines = _table(["INSTANCE", "PROVIDER", "GPU", "GPUS", "PRICE/H", "AS OF", "ORIGIN", "BAA"], rows, right=(3, 4))
    lines += [
        "",
        "PRICE/H: on-demand USD per instance hour in the region the catalog lists; - : no public price",
        "(set price_per_hour and price_as_of on the pool). BAA: the provider's HIPAA BAA covers the service.",
    ]
    return "\n".join(lines) + "\n"


def instances_json(catalog: Catalog) -> str:
    """The cloud instances of the catalog with every field, price source and source."""
    return _dumps({
        "medplan": __version__,
        "instances": [instance.model_dump(mode="json") for instance in _instances_in_order(catalog)],
    })


# --------------------------------------------------------------------------- sizing


def _selected(spec, sizing: dict[str, WorkloadSizing], workload: str | None) -> list:
    workloads = [w for w in spec.workloads if w.id in sizing]
    if workload is None:
        return workloads
    chosen = [w for w in workloads if w.id == workload]
    if not chosen:
        known = [w.id for w in workloads]
        close = difflib.get_close_matches(workload, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known) or 'none'})"
        raise InputError(f"unknown workload {workload!r}{hint}")
    return chosen


def _options_of(options: Sequence[PoolOption], workload: str) -> list[PoolOption]:
    return [option for option in options if option.workload == workload]


def _by_generation(options: Sequence[PoolOption]) -> dict[str, PoolOption]:
    """The cheapest fitting, allowed, priced option of each GPU generation, older first."""
    best: dict[str, PoolOption] = {}
    for option in options:
        if not (option.fits and option.allowed and option.billed_per_hour is not None):
            continue
        current = best.get(option.generation)
        key = (not option.holds_all_replicas, option.billed_per_hour, option.total_cost_per_hour, option.pool)
        if current is None or key < (
            not current.holds_all_replicas, current.billed_per_hour, current.total_cost_per_hour, current.pool
        ):
            best[option.generation] = option
    rank = {name: index for index, name in enumerate(GENERATION_ORDER)}
    return dict(sorted(best.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def _comparison(by_generation: dict[str, PoolOption]) -> str | None:
    """The two newest generations compared, e.g. 'blackwell is $39.60/h (76%) cheaper than hopper'."""
    if len(by_generation) < 2:
        return None
    (old_name, old), (new_name, new) = list(by_generation.items())[-2:]
    old_cost, new_cost = old.billed_per_hour or 0.0, new.billed_per_hour or 0.0
    if abs(old_cost - new_cost) < 0.005:
        return f"{new_name} and {old_name} cost the same"
    cheaper, dearer = (new_name, old_name) if new_cost < old_cost else (old_name, new_name)
    saving = abs(old_cost - new_cost)
    base = max(old_cost, new_cost)
    return f"{cheaper} is {_usd(saving)}/h ({saving / base:.0%}) cheaper than {dearer}"


def _model_line(workload) -> str:
    kind = getattr(workload.kind, "value", workload.kind)
    model = workload.model
    if model is None or model.params_b is None:
        name = f"{model.name}, " if model is not None else ""
        return f"{kind}, {name}no model size: GPUs and memory as given in the spec"
    precision = getattr(model.precision, "value", model.precision)
    text = f"{kind}, {model.name} ({_num(model.params_b)} B params, {precision})"
    if workload.concurrency != 1:
        text += f", concurrency {workload.concurrency}"
    if workload.training_method is not None:
        text += f", {getattr(workload.training_method, 'value', workload.training_method)}"
    return text


def _replica_basis(sized: WorkloadSizing, gpu: str, workload) -> str:
    measured = sized.measured.get(gpu)
    if measured is not None:
        return f"demand {_num(workload.demand)} / {_num(measured)} per replica measured on {gpu}"
    if workload.demand is not None:
        return "given (no measurement for this GPU)"
    return "given"


def _memory_cells(sized: WorkloadSizing, result: GpuSizing) -> tuple[str, str]:
    if not sized.memory_known:
        return "n/a", "n/a"
    return _gb(result.memory_per_gpu_gb), _gb(result.headroom_gb)


def _price_cell(option: PoolOption) -> str:
    if option.price_origin == "none":
        return "none"
    return option.price_origin + (f" {option.price_as_of}" if option.price_as_of else "")


def _why_not(option: PoolOption) -> str:
    reasons = []
    if option.reason:
        reasons.append(option.reason)
    if option.placement_reason:
        reasons.append(f"placement: {option.placement_reason}")
    return "; ".join(reasons)


def _summary_lines(workloads: list, options: Sequence[PoolOption]) -> list[str]:
    generations: list[str] = []
    rows_data = []
    for workload in workloads:
        mine = _options_of(options, workload.id)
        by_generation = _by_generation(mine)
        for name in by_generation:
            if name not in generations:
                generations.append(name)
        cheapest = next((o for o in mine if o.cheapest), None)
        rows_data.append((workload.id, cheapest, by_generation))
    rank = {name: index for index, name in enumerate(GENERATION_ORDER)}
    generations.sort(key=lambda name: (rank.get(name, len(rank)), name))
    rows = []
    for workload_id, cheapest, by_generation in rows_data:
        row = [
            workload_id,
            f"{cheapest.pool} ({cheapest.gpu})" if cheapest else "no priced fit",
            f"{cheapest.replicas} x {cheapest.gpus_per_replica}" if cheapest else _DASH,
            _money(cheapest.billed_per_hour) if cheapest else _DASH,
        ]
        for name in generations:
            option = by_generation.get(name)
            row.append(_money(option.billed_per_hour) if option else _DASH)
        rows.append(row)
    headers = ["WORKLOAD", "CHEAPEST FIT", "REPLICAS x GPUS", "$/H"] + [f"{name.upper()} $/H" for name in generations]
    return _table(headers, rows, right=range(2, len(headers)))


def _workload_lines(workload, sized: WorkloadSizing, options: Sequence[PoolOption]) -> list[str]:
    lines = [f"{workload.id}: {_one_line(_model_line(workload))}"]
    if sized.accelerators:
        lines.append(f"  accelerators: {', '.join(sized.accelerators)}")
    lines.append("")

    gpu_rows = []
    for result in sized.gpus:
        memory, free = _memory_cells(sized, result)
        gpu_rows.append([
            result.gpu,
            sized.generations.get(result.gpu, _DASH),
            "yes" if result.fits else "no",
            str(result.gpus_per_replica),
            memory,
            free,
            str(result.replicas),
            str(result.total_gpus),
            _replica_basis(sized, result.gpu, workload),
            result.reason or "",
        ])
    lines += _table(
        ["GPU", "GENERATION", "FITS", "GPUS/REPLICA", "MEM/GPU", "FREE/GPU", "REPLICAS", "GPUS", "REPLICAS FROM", "WHY NOT"],
        gpu_rows,
        right=(3, 4, 5, 6, 7),
        indent="  ",
    )

    if options:
        lines.append("")
        pool_rows = [
            [
                "*" if option.cheapest else "",
                option.pool,
                option.gpu,
                "yes" if option.fits else "no",
                str(option.nodes_per_replica),
                str(option.replicas),
                str(option.capacity_replicas),
                _money(option.cost_per_gpu_hour),
                _money(option.cost_per_replica_hour),
                _money(option.total_cost_per_hour),
                _money(option.billed_per_hour),
                _price_cell(option),
                _why_not(option),
            ]
            for option in options
        ]
        lines += _table(
            ["", "POOL", "GPU", "FITS", "NODES/REPLICA", "REPLICAS", "ROOM", "$/GPU-H", "$/REPLICA-H",
             "TOTAL $/H", "BILLED $/H", "PRICE", "WHY NOT"],
            pool_rows,
            right=range(4, 11),
            indent="  ",
        )
        lines.append("")
        cheapest = next((option for option in options if option.cheapest), None)
        if cheapest is not None:
            lines.append(
                f"  cheapest fit: {cheapest.pool} ({cheapest.gpu}, {cheapest.generation}): "
                f"{cheapest.replicas} x {cheapest.gpus_per_replica} {cheapest.gpu} = {_usd(cheapest.billed_per_hour or 0.0)}/h"
                + ("" if cheapest.holds_all_replicas else f" (room for {cheapest.capacity_replicas} replicas only)")
            )
        else:
            lines.append("  cheapest fit: none (no pool that fits and is allowed has a price)")
        by_generation = _by_generation(options)
        if by_generation:
            parts = [
                f"{name} {option.pool} ({option.gpu}) {_usd(option.billed_per_hour or 0.0)}/h"
                for name, option in by_generation.items()
            ]
            verdict = _comparison(by_generation)
            lines.append(f"  by generation: {'; '.join(parts)}" + (f": {verdict}" if verdict else ""))
    else:
        lines += ["", "  no pool in the spec has one of these GPU models"]

    lines += ["", "  arithmetic:"]
    for result in sized.gpus:
        lines.append(f"    {result.gpu} ({sized.generations.get(result.gpu, _DASH)}):")
        lines += [f"      {_one_line(step)}" for step in result.arithmetic]
    for option in options:
        lines.append(f"    {option.pool} ({option.gpu}):")
        lines += [f"      {_one_line(step)}" for step in option.arithmetic]
    return lines


def size_table(spec, sizing: dict[str, WorkloadSizing], options: Sequence[PoolOption], workload: str | None = None) -> str:
    """Each workload on each GPU model and pool, with costs, the cheapest fit and the arithmetic.

    ``workload`` limits the report to one workload id.
    """
    workloads = _selected(spec, sizing, workload)
    lines = [
        f"Sizing: {_one_line(spec.metadata.name)}",
        "Costs in USD per hour for all replicas. BILLED: what the workload alone pays; elastic cloud pools bill",
        "whole instances, owned pools their cost per GPU hour. * : cheapest fit. Policies are not checked here.",
        "",
    ]
    if not workloads:
        return "\n".join([*lines, "no workloads"]) + "\n"
    lines += _summary_lines(workloads, options)
    for item in workloads:
        lines += ["", ""]
        lines += _workload_lines(item, sizing[item.id], _options_of(options, item.id))
    return "\n".join(lines) + "\n"


def _gpu_sizing_dict(sized: WorkloadSizing, result: GpuSizing) -> dict:
    return {
        "gpu": result.gpu,
        "generation": sized.generations.get(result.gpu),
        "fits": result.fits,
        "reason": result.reason,
        "gpus_per_replica": result.gpus_per_replica,
        "tp_degree": result.tp_degree,
        "memory_known": sized.memory_known,
        "memory_required_gb": _round(result.memory_required_gb, 3),
        "memory_per_gpu_gb": _round(result.memory_per_gpu_gb, 3),
        "usable_per_gpu_gb": _round(result.usable_per_gpu_gb, 3),
        "headroom_gb": _round(result.headroom_gb, 3),
        "replicas": result.replicas,
        "replicas_from": "measurement" if result.gpu in sized.measured else "given",
        "measured_throughput": sized.measured.get(result.gpu),
        "total_gpus": result.total_gpus,
        "arithmetic": list(result.arithmetic),
    }


def _option_dict(option: PoolOption) -> dict:
    return {
        "pool": option.pool,
        "site": option.site,
        "gpu": option.gpu,
        "generation": option.generation,
        "instance": option.instance,
        "elastic": option.elastic,
        "gpus_per_node": option.gpus_per_node,
        "pool_nodes": option.pool_nodes,
        "fits": option.fits,
        "reason": option.reason,
        "allowed": option.allowed,
        "placement_reason": option.placement_reason,
        "cheapest": option.cheapest,
        "gpus_per_replica": option.gpus_per_replica,
        "nodes_per_replica": option.nodes_per_replica,
        "replicas": option.replicas,
        "replicas_measured": option.replicas_measured,
        "capacity_replicas": option.capacity_replicas,
        "memory_per_gpu_gb": _round(option.memory_per_gpu_gb, 3),
        "headroom_gb": _round(option.headroom_gb, 3),
        "cost_per_gpu_hour": _round(option.cost_per_gpu_hour, 4),
        "cost_per_replica_hour": _round(option.cost_per_replica_hour, 4),
        "total_cost_per_hour": _round(option.total_cost_per_hour, 4),
        "instance_cost_per_hour": _round(option.instance_cost_per_hour, 4),
        "instances_for_all": option.instances_for_all,
        "instance_total_per_hour": _round(option.instance_total_per_hour, 4),
        "billed_per_hour": _round(option.billed_per_hour, 4),
        "price_origin": option.price_origin,
        "price_as_of": option.price_as_of,
        "arithmetic": list(option.arithmetic),
    }


def _model_dict(workload) -> dict | None:
    model = workload.model
    if model is None:
        return None
    return model.model_dump(mode="json")


def size_json(spec, sizing: dict[str, WorkloadSizing], options: Sequence[PoolOption], workload: str | None = None) -> str:
    """The sizing report as JSON: every figure and every arithmetic line."""
    items = []
    for item in _selected(spec, sizing, workload):
        sized = sizing[item.id]
        mine = _options_of(options, item.id)
        cheapest = next((option for option in mine if option.cheapest), None)
        by_generation = _by_generation(mine)
        items.append({
            "id": item.id,
            "kind": sized.kind,
            "basis": sized.basis,
            "model": _model_dict(item),
            "accelerators": list(sized.accelerators),
            "demand": item.demand,
            "gpus": [_gpu_sizing_dict(sized, result) for result in sized.gpus],
            "pools": [_option_dict(option) for option in mine],
            "cheapest": None if cheapest is None else {
                "pool": cheapest.pool,
                "gpu": cheapest.gpu,
                "generation": cheapest.generation,
                "replicas": cheapest.replicas,
                "gpus_per_replica": cheapest.gpus_per_replica,
                "billed_per_hour": _round(cheapest.billed_per_hour, 4),
            },
            "cheapest_by_generation": {
                name: {"pool": option.pool, "gpu": option.gpu, "billed_per_hour": _round(option.billed_per_hour, 4)}
                for name, option in by_generation.items()
            },
            "comparison": _comparison(by_generation),
        })
    return _dumps({
        "medplan": __version__,
        "spec": spec.metadata.name,
        "costs": "USD per hour for all replicas; billed_per_hour bills whole instances on elastic cloud pools",
        "workloads": items,
    })
