"""Sizing a spec's workloads on its pools: GPUs per replica, node shape, replicas and cost.

Hand-checkable figures (runtime overhead 10% of the weights, 10% of each GPU's
usable memory kept free): 70 B params in bf16 = 140 GB + 14 GB = 154 GB.
H100 80 x 0.9 = 72 GB -> 154 / 72 = 2.14 -> 3 -> power of two 4;
H200 141 x 0.9 = 126.9 GB -> 2; B200 180 x 0.9 = 162 GB -> 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.catalog import load_catalog
from planner.catalog.additions import catalog_with_spec
from planner.catalog.sizing import SizingRequest
from planner.catalog.workload_sizing import (
    PoolOption,
    WorkloadSizing,
    pool_options,
    request_for,
    size_workloads,
)
from planner.errors import InputError
from planner.render.catalog import (
    gpus_json,
    gpus_table,
    instances_json,
    instances_table,
    size_json,
    size_table,
)
from planner.spec.loader import load_spec

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

HEAD = """\
apiVersion: medplan/v1
metadata: {name: sizing-test}
"""

ON_PREM_THREE_GPUS = HEAD + """\
sites:
  - id: dc1
    kind: on-prem
    jurisdiction: US-MN
    zone: us
    pools:
      - {id: h100, gpu: H100, nodes: 2, gpus_per_node: 8, cost_per_gpu_hour: 2.0}
      - {id: h200, gpu: H200, nodes: 2, gpus_per_node: 8, cost_per_gpu_hour: 3.0}
      - {id: b200, gpu: B200, nodes: 1, gpus_per_node: 8, cost_per_gpu_hour: 4.0}
"""


def _plan(write, text: str, name: str = "spec.yaml"):
    spec = load_spec(write(name, text))
    catalog = catalog_with_spec(spec)
    sizing = size_workloads(spec, catalog)
    return spec, sizing, pool_options(spec, catalog, sizing)


def _options(options: list[PoolOption], workload: str) -> dict[str, PoolOption]:
    return {option.pool: option for option in options if option.workload == workload}


# --------------------------------------------------------------------------- sizing per GPU model


def test_70b_bf16_takes_4_h100_2_h200_1_b200(write) -> None:
    spec, sizing, options = _plan(write, ON_PREM_THREE_GPUS + """\
workloads:
  - id: llm
    kind: inference
    model: {name: llama-70b, params_b: 70, precision: bf16}
""")
    llm = sizing["llm"]
    assert isinstance(llm, WorkloadSizing)
    assert llm.basis == "model"
    assert [result.gpu for result in llm.gpus] == ["H100", "H200", "B200"]  # older generation first
    assert [result.gpu for result in llm] == ["H100", "H200", "B200"] and len(llm) == 3  # iterates its GpuSizing
    assert {result.gpu: (result.fits, result.gpus_per_replica) for result in llm.gpus} == {
        "H100": (True, 4), "H200": (True, 2), "B200": (True, 1),
    }
    h100 = llm.by_gpu["H100"]
    assert h100.memory_required_gb == pytest.approx(154.0)
    assert "GPUs for memory = ceil(154.0 GB / 72.0 GB) = ceil(2.139) = 3" in h100.arithmetic
    assert "tensor-parallel degree = 4 (smallest power of two >= 3)" in h100.arithmetic
    assert h100.memory_per_gpu_gb == pytest.approx(38.5)  # 154 / 4
    assert h100.headroom_gb == pytest.approx(41.5)

    by_pool = _options(options, "llm")
    assert list(by_pool) == ["dc1/h100", "dc1/h200", "dc1/b200"]  # spec order
    assert by_pool["dc1/h100"].total_cost_per_hour == pytest.approx(8.0)  # 4 x $2
    assert by_pool["dc1/h200"].total_cost_per_hour == pytest.approx(6.0)  # 2 x $3
    assert by_pool["dc1/b200"].total_cost_per_hour == pytest.approx(4.0)  # 1 x $4
    assert [pool for pool, option in by_pool.items() if option.cheapest] == ["dc1/b200"]
    assert by_pool["dc1/h100"].instance_cost_per_hour is None  # owned: no instance billing
    assert by_pool["dc1/b200"].billed_per_hour == pytest.approx(4.0)


def test_request_for_maps_the_workload_and_keeps_the_users_floor(write) -> None:
    spec = load_spec(write("spec.yaml", ON_PREM_THREE_GPUS + """\
workloads:
  - id: llm
    kind: inference
    model: {name: m, params_b: 8, precision: fp8, layers: 32, kv_heads: 8, head_dim: 128, context_tokens: 8192}
    gpus: 2
    gpu_memory_gb: 100
    concurrency: 4
    replicas: 3
  - id: forecast
    kind: batch
    gpus: 4
"""))
    request = request_for(spec.workloads[0])
    assert isinstance(request, SizingRequest)
    assert (request.kind, request.model.precision, request.model.layers) == ("inference", "fp8", 32)
    assert (request.gpus, request.gpu_memory_gb, request.concurrency, request.replicas) == (2, 100, 4, 3)
    assert request_for(spec.workloads[1]) is None  # no model size: the given gpus apply

    sizing = size_workloads(spec, catalog_with_spec(spec))["llm"]
    # 8 GB of weights fit one GPU, but the user's 2 GPUs are a floor ...
    assert {r.gpu: r.gpus_per_replica for r in sizing.gpus} == {"H100": 2, "H200": 2, "B200": 2}
    # ... and 100 GB per GPU is a minimum that rules out the 80 GB H100.
    assert {r.gpu: r.fits for r in sizing.gpus} == {"H100": False, "H200": True, "B200": True}
    assert sizing.by_gpu["H100"].reason == "needs 100 GB per GPU, H100 has 80"


def test_accelerators_restrict_the_gpu_models(write) -> None:
    spec, sizing, options = _plan(write, ON_PREM_THREE_GPUS + """\
workloads:
  - id: llm
    kind: inference
    model: {name: llama-70b, params_b: 70, precision: bf16}
    accelerators: [b200, H200]
""")
    llm = sizing["llm"]
    assert llm.accelerators == ("B200", "H200")  # canonical ids
    h100 = llm.by_gpu["H100"]
    assert (h100.fits, h100.reason) == (False, "not in the workload's accelerators (B200, H200)")
    assert h100.arithmetic[0] == "accelerators: H100 is not in the workload's accelerators (B200, H200)"
    assert h100.gpus_per_replica == 4  # still sized, so the report can show what it would take
    assert llm.by_gpu["H200"].fits and llm.by_gpu["B200"].fits

    by_pool = _options(options, "llm")
    assert not by_pool["dc1/h100"].fits
    assert by_pool["dc1/h100"].reason == "not in the workload's accelerators (B200, H200)"
    assert not by_pool["dc1/h100"].cheapest


def test_accelerators_add_gpu_models_without_a_pool(write) -> None:
    spec, sizing, options = _plan(write, ON_PREM_THREE_GPUS + """\
workloads:
  - id: llm
    kind: inference
    model: {name: llama-70b, params_b: 70, precision: bf16}
    accelerators: [B300]
""")
    assert [r.gpu for r in sizing["llm"].gpus] == ["H100", "H200", "B200", "B300"]
    assert sizing["llm"].by_gpu["B300"].fits
    assert "B300" not in {option.gpu for option in options}  # no pool has one


# --------------------------------------------------------------------------- node shape


def test_16_gpu_training_replica_takes_two_whole_nodes(write) -> None:
    """7 B full training: 7 x 16 = 112 GB + activations + overhead; the given 16 GPUs are a floor."""
    spec, sizing, options = _plan(write, HEAD + """\
sites:
  - id: dc1
    kind: on-prem
    jurisdiction: US-MN
    zone: us
    pools:
      - {id: two-nodes, gpu: H100, nodes: 2, gpus_per_node: 8, cost_per_gpu_hour: 2.0}
      - {id: one-node, gpu: H100, nodes: 1, gpus_per_node: 8, cost_per_gpu_hour: 1.0}
      - {id: six-wide, gpu: H100, nodes: 4, gpus_per_node: 6, cost_per_gpu_hour: 1.0}
workloads:
  - id: pretrain
    kind: training
    model: {name: small-lm, params_b: 7, precision: bf16}
    training_method: full
    gpus: 16
""")
    assert sizing["pretrain"].by_gpu["H100"].gpus_per_replica == 16
    by_pool = _options(options, "pretrain")

    two = by_pool["dc1/two-nodes"]
    assert (two.fits, two.nodes_per_replica, two.capacity_replicas) == (True, 2, 1)
    assert two.total_cost_per_hour == pytest.approx(32.0)  # 16 x $2

    one = by_pool["dc1/one-node"]
    assert (one.fits, one.nodes_per_replica) == (False, 2)
    assert one.reason == "a replica takes 2 whole 8-GPU nodes; the pool has 1 node"
    assert any("does not fit" in step for step in one.arithmetic)

    six = by_pool["dc1/six-wide"]  # 24 GPUs, but 16 is not a whole number of 6-GPU nodes
    assert not six.fits
    assert six.reason == "16 GPUs per replica are not a whole number of 6-GPU nodes"

    # The cheaper per-GPU pools do not fit, so the two-node pool is the cheapest fit.
    assert [pool for pool, option in by_pool.items() if option.cheapest] == ["dc1/two-nodes"]


# --------------------------------------------------------------------------- cost of elastic pools

CLOUD = HEAD + """\
sites:
  - id: aws
    kind: cloud
    provider: aws
    region: us-east-1
    jurisdiction: US-VA
    zone: us
    baa: executed
    pools:
      - {id: p5, instance: p5.48xlarge, max_nodes: 4}
      - {id: p5-deal, instance: p5.48xlarge, max_nodes: 4, price_per_hour: 48.0, price_as_of: 2026-10-01}
workloads:
  - id: llm
    kind: inference
    model: {name: mid-lm, params_b: 40, precision: bf16}
    replicas: REPLICAS
"""


def test_two_gpu_replica_on_an_eight_gpu_instance(write) -> None:
    """40 B bf16: 80 + 8 = 88 GB > 72 GB of one H100, so 2 GPUs per replica."""
    catalog_price = load_catalog().instance("p5.48xlarge").price_per_hour
    assert catalog_price is not None
    spec, sizing, options = _plan(write, CLOUD.replace("REPLICAS", "1"))
    p5 = _options(options, "llm")["aws/p5"]
    assert (p5.elastic, p5.instance, p5.gpus_per_replica, p5.nodes_per_replica) == (True, "p5.48xlarge", 2, 1)
    assert p5.cost_per_gpu_hour == pytest.approx(catalog_price / 8)
    assert p5.cost_per_replica_hour == pytest.approx(2 * catalog_price / 8)  # shared instance: 2 of 8 GPUs
    assert p5.instance_cost_per_hour == pytest.approx(catalog_price)  # alone: the whole instance
    assert p5.billed_per_hour == pytest.approx(catalog_price)
    assert (p5.price_origin, p5.price_as_of) == ("catalog", str(load_catalog().instance("p5.48xlarge").price_as_of))

    deal = _options(options, "llm")["aws/p5-deal"]
    assert (deal.price_origin, deal.price_as_of) == ("spec", "2026-10-01")
    assert deal.cost_per_gpu_hour == pytest.approx(6.0)  # $48 / 8
    assert deal.cost_per_replica_hour == pytest.approx(12.0)
    assert deal.instance_cost_per_hour == pytest.approx(48.0)
    assert deal.cheapest and not p5.cheapest
    assert (
        "billed by the instance: one replica alone pays 1 instance x $48.00 = $48.00/h; "
        "1 replica, 4 per instance: 1 instance x $48.00 = $48.00/h"
    ) in deal.arithmetic


def test_replicas_pack_onto_whole_instances(write) -> None:
    """5 replicas of 2 GPUs: 4 per 8-GPU instance, so 2 instances; per-GPU rate: 10 x $6."""
    spec, sizing, options = _plan(write, CLOUD.replace("REPLICAS", "5"))
    deal = _options(options, "llm")["aws/p5-deal"]
    assert deal.total_cost_per_hour == pytest.approx(60.0)
    assert (deal.instances_for_all, deal.instance_total_per_hour) == (2, pytest.approx(96.0))
    assert deal.billed_per_hour == pytest.approx(96.0)
    assert deal.capacity_replicas == 16  # 4 instances x 4 replicas


# --------------------------------------------------------------------------- replicas from throughput


def test_replicas_from_throughput_differ_per_gpu_model(write) -> None:
    spec, sizing, options = _plan(write, ON_PREM_THREE_GPUS + """\
workloads:
  - id: triage
    kind: inference
    model: {name: ct-triage, params_b: 2, precision: fp16}
    throughput: {H100: 10, B200: 25}
    demand: 100
    replicas: 2
""")
    triage = sizing["triage"]
    assert {r.gpu: r.replicas for r in triage.gpus} == {"H100": 10, "H200": 2, "B200": 4}
    assert triage.measured == {"H100": 10, "B200": 25}
    assert (
        "replicas = demand 100 / measured 10 per replica on H100 (user measurement) = 10 -> 10 replicas"
        in triage.by_gpu["H100"].arithmetic
    )
    assert (
        "replicas = 2 as given: no throughput measurement for H200, and no speed-up between GPU models is assumed"
        in triage.by_gpu["H200"].arithmetic
    )
    by_pool = _options(options, "triage")
    assert {pool: (o.replicas, o.replicas_measured) for pool, o in by_pool.items()} == {
        "dc1/h100": (10, True), "dc1/h200": (2, False), "dc1/b200": (4, True),
    }
    table = size_table(spec, sizing, options)
    assert "demand 100 / 10 per replica measured on H100" in table
    assert "demand 100 / 25 per replica measured on B200" in table


# --------------------------------------------------------------------------- workloads without a model


def test_workload_without_a_model_uses_its_given_gpus(write) -> None:
    spec, sizing, options = _plan(write, ON_PREM_THREE_GPUS + """\
workloads:
  - id: variant-calling
    kind: batch
    gpus: 4
    gpu_memory_gb: 100
    replicas: 2
  - id: forecast
    kind: batch
""")
    calling = sizing["variant-calling"]
    assert (calling.basis, calling.request, calling.memory_known) == ("given", None, True)
    assert {r.gpu: (r.fits, r.gpus_per_replica, r.replicas) for r in calling.gpus} == {
        "H100": (False, 4, 2), "H200": (True, 4, 2), "B200": (True, 4, 2),
    }
    assert "gpus: 4 (given in the spec)" in calling.by_gpu["H200"].arithmetic
    assert calling.by_gpu["H100"].reason == "needs 100 GB per GPU, H100 has 80"
    assert calling.by_gpu["H200"].headroom_gb == pytest.approx(41.0)
    assert _options(options, "variant-calling")["dc1/h200"].total_cost_per_hour == pytest.approx(24.0)  # 8 x $3

    forecast = sizing["forecast"]
    assert forecast.memory_known is False
    assert {r.gpus_per_replica for r in forecast.gpus} == {1}
    assert "gpus: 1 (default: the spec gives neither gpus nor a model size)" in forecast.by_gpu["H100"].arithmetic
    assert "n/a" in size_table(spec, sizing, options, workload="forecast")


# --------------------------------------------------------------------------- placement and examples


def test_placement_keeps_the_cheapest_fit_where_the_workload_may_run() -> None:
    spec = load_spec(EXAMPLES / "academic-medical-center")
    catalog = catalog_with_spec(spec)
    sizing = size_workloads(spec, catalog)
    options = pool_options(spec, catalog, sizing)
    genomics = _options(options, "genomics-variant-calling")
    assert not genomics["aws-use1/p5"].allowed  # placement.sites: [lsh-dc1]
    assert [pool for pool, option in genomics.items() if option.cheapest] == ["lsh-dc1/dgx-b200"]
    ct = _options(options, "ct-triage")
    assert {pool: option.replicas for pool, option in ct.items()} == {
        "lsh-dc1/dgx-b200": 4, "aws-use1/p5": 7, "aws-use1/p5en": 5, "azure-eus2/nd-h200": 5,
    }
    assert ct["azure-eus2/nd-h200"].total_cost_per_hour is None  # no public price


@pytest.mark.parametrize("example", ["community-hospital.yaml", "academic-medical-center", "pharma-eu-us.yaml"])
def test_examples_size_and_render(example: str) -> None:
    spec = load_spec(EXAMPLES / example)
    catalog = catalog_with_spec(spec)
    sizing = size_workloads(spec, catalog)
    options = pool_options(spec, catalog, sizing)
    assert list(sizing) == [workload.id for workload in spec.workloads]
    for workload in spec.workloads:
        assert sum(option.cheapest for option in options if option.workload == workload.id) <= 1
    table = size_table(spec, sizing, options)
    for workload in spec.workloads:
        assert workload.id in table
    assert "\x1b[" not in table  # no colour
    document = json.loads(size_json(spec, sizing, options))
    assert [item["id"] for item in document["workloads"]] == [workload.id for workload in spec.workloads]


def test_academic_table_answers_hopper_or_blackwell() -> None:
    spec = load_spec(EXAMPLES / "academic-medical-center")
    catalog = catalog_with_spec(spec)
    sizing = size_workloads(spec, catalog)
    options = pool_options(spec, catalog, sizing)
    table = size_table(spec, sizing, options)
    for workload_id in ("path-fm-pretrain", "ct-triage", "genomics-variant-calling"):
        assert workload_id in table
    assert "HOPPER $/H" in table and "BLACKWELL $/H" in table
    assert "blackwell is $39.60/h (76%) cheaper than hopper" in table  # ct-triage: 4 x $3.10 vs 1 p5en $52
    one = size_table(spec, sizing, options, workload="ct-triage")
    assert "ct-triage" in one and "genomics-variant-calling" not in one
    assert "      replicas = demand 150 / measured 42 per replica on B200 (user measurement) = 3.571 -> 4 replicas" in one
    with pytest.raises(InputError, match="did you mean 'ct-triage'"):
        size_table(spec, sizing, options, workload="ct-triag")


# --------------------------------------------------------------------------- JSON and catalog tables


def test_size_json_is_deterministic_and_complete() -> None:
    def render() -> str:
        spec = load_spec(EXAMPLES / "academic-medical-center")
        catalog = catalog_with_spec(spec)
        sizing = size_workloads(spec, catalog)
        return size_json(spec, sizing, pool_options(spec, catalog, sizing))

    first, second = render(), render()
    assert first == second
    document = json.loads(first)
    ct = next(item for item in document["workloads"] if item["id"] == "ct-triage")
    assert [gpu["gpu"] for gpu in ct["gpus"]] == ["H100", "H200", "B200"]
    assert all(gpu["arithmetic"] for gpu in ct["gpus"])
    assert all(pool["arithmetic"] for pool in ct["pools"])
    assert ct["cheapest"]["pool"] == "lsh-dc1/dgx-b200"
    assert ct["cheapest_by_generation"]["blackwell"]["billed_per_hour"] == pytest.approx(12.4)
    p5 = next(pool for pool in ct["pools"] if pool["pool"] == "aws-use1/p5")
    assert (p5["price_origin"], p5["elastic"]) == ("catalog", True)
    assert p5["instance_cost_per_hour"] is not None


def test_catalog_tables_and_json() -> None:
    catalog = load_catalog()
    table = gpus_table(catalog)
    assert table == gpus_table(catalog)
    header = table.splitlines()[0]
    for column in ("GPU", "GENERATION", "MEMORY GB", "TB/S", "NVLINK GB/S", "BF16", "FP8", "FP4", "TDP W"):
        assert column in header
    b200 = next(line for line in table.splitlines() if line.startswith("B200 "))
    assert "blackwell" in b200 and "180/192" in b200
    gpus = json.loads(gpus_json(catalog))["gpus"]
    assert [gpu["id"] for gpu in gpus][:2] == ["A100-40GB", "A100-80GB"]
    assert all(gpu["sources"] for gpu in gpus)

    instances = instances_table(catalog)
    header = instances.splitlines()[0]
    for column in ("INSTANCE", "PROVIDER", "GPU", "GPUS", "PRICE/H", "AS OF", "ORIGIN", "BAA"):
        assert column in header
    p5 = next(line for line in instances.splitlines() if line.startswith("p5.48xlarge "))
    price = catalog.instance("p5.48xlarge").price_per_hour
    assert f"{price:,.2f}" in p5 and "catalog" in p5 and "yes" in p5
    document = json.loads(instances_json(catalog))
    assert instances_json(catalog) == instances_json(catalog)
    entry = next(item for item in document["instances"] if item["id"] == "p5.48xlarge")
    assert entry["price_source"]["url"].startswith("https://")
    assert entry["sources"]
