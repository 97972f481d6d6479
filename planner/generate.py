"""Realistic synthetic specs for benchmarks and scale tests.

A mix of on-prem, colocation and cloud sites in US and EU zones with Hopper
and Blackwell pools, a link topology with latencies that grow with distance,
PHI and de-identified datasets, workload classes (radiology inference with
replicas, pathology training, genomics batch, clinical assistants) with data
flows, some waivers and some deliberate violations. The same seed gives the
same spec, byte for byte.
"""

from __future__ import annotations

import math
import random

import yaml

US_STATES = ["US-MN", "US-OH", "US-CA", "US-TX", "US-NY", "US-MA", "US-WA", "US-IL", "US-GA", "US-VA"]
EU_COUNTRIES = ["DE", "FR", "NL", "IE", "SE", "ES", "IT", "DK"]
OWNED_GPUS = ["H100", "H200", "B200"]
CLOUD_POOLS = {
    "aws": [("us-east-1", "p5.48xlarge"), ("us-east-1", "p5en.48xlarge"), ("us-east-1", "p6-b200.48xlarge")],
    "azure": [("eastus2", "Standard_ND96isr_H100_v5"), ("westeurope", "Standard_ND96isr_H200_v5")],
    "gcp": [("us-central1", "a3-highgpu-8g"), ("europe-west4", "a3-megagpu-8g")],
}
CLOUD_PRICES = {"Standard_ND96isr_H100_v5": 98.32, "Standard_ND96isr_H200_v5": 110.24, "a3-highgpu-8g": 88.25, "a3-megagpu-8g": 92.12}


def _site(rng: random.Random, n: int) -> dict:
    roll = rng.random()
    zone = "eu" if rng.random() < 0.3 else "us"
    jurisdiction = rng.choice(EU_COUNTRIES if zone == "eu" else US_STATES)
    site: dict = {"id": f"site-{n:04d}", "jurisdiction": jurisdiction, "zone": zone}
    controls = {
        "encryption_at_rest": rng.random() > 0.03,
        "audit_logging": rng.random() > 0.03,
        "mfa": rng.random() > 0.05,
        "backup": {"rpo_hours": rng.choice([1, 4, 24]), "rto_hours": rng.choice([4, 24, 72])},
    }
    if roll < 0.5:
        site |= {"kind": "on-prem", "controls": controls}
        gpu = rng.choice(OWNED_GPUS)
        site["pools"] = [
            {"id": f"{gpu.lower()}-{i}", "gpu": gpu, "nodes": rng.randint(1, 6), "gpus_per_node": 8,
             "cost_per_gpu_hour": round(rng.uniform(1.8, 3.2), 2)}
            for i in range(rng.randint(1, 2))
        ]
    elif roll < 0.7:
        site |= {"kind": "colocation", "baa": "executed" if rng.random() > 0.05 else "pending", "controls": controls}
        gpu = rng.choice(OWNED_GPUS)
        site["pools"] = [{"id": f"{gpu.lower()}-0", "gpu": gpu, "nodes": rng.randint(1, 4), "gpus_per_node": 8,
                          "cost_per_gpu_hour": round(rng.uniform(2.5, 4.0), 2)}]
    else:
        provider = rng.choice(sorted(CLOUD_POOLS))
        region, instance = rng.choice(CLOUD_POOLS[provider])
        site |= {"kind": "cloud", "provider": provider, "region": region, "baa": "executed", "controls": controls}
        pool: dict = {"id": instance.split(".")[0].lower().replace("_", "-")[:40], "instance": instance, "max_nodes": rng.randint(2, 12)}
        if instance in CLOUD_PRICES:
            pool |= {"price_per_hour": CLOUD_PRICES[instance], "price_as_of": "2026-11-01"}
        site["pools"] = [pool]
    return site


def generate(sites: int, workloads: int, seed: int = 1) -> dict:
    """A spec as plain data (dump it with yaml.safe_dump)."""
    rng = random.Random(seed)
    site_list = [_site(rng, n) for n in range(sites)]
    coords = {s["id"]: (rng.uniform(0, 4000) + (5000 if s["zone"] == "eu" else 0), rng.uniform(0, 2000)) for s in site_list}

    def latency(a: str, b: str) -> float:
        (xa, ya), (xb, yb) = coords[a], coords[b]
        return round(1 + math.hypot(xa - xb, ya - yb) / 100, 1)

    links: dict[tuple[str, str], dict] = {}
    ordered = sorted(coords, key=lambda s: coords[s])
    for a, b in zip(ordered, ordered[1:]):  # a chain keeps the graph connected
        links[tuple(sorted((a, b)))] = {"between": [a, b], "latency_ms": latency(a, b), "bandwidth_gbps": 100, "encryption": "ipsec"}
    for a in ordered:
        for _ in range(2):
            b = rng.choice(ordered)
            key = tuple(sorted((a, b)))
            if a != b and key not in links:
                links[key] = {"between": list(key), "latency_ms": latency(a, b), "bandwidth_gbps": rng.choice([10, 40, 100]),
                              "encryption": "none" if rng.random() < 0.02 else rng.choice(["ipsec", "macsec", "tls"])}

    datasets = []
    holders = [s for s in site_list if s["kind"] != "cloud"] or site_list
    for n in range(max(1, workloads // 4)):
        site = rng.choice(holders)
        deid = rng.random() < 0.25
        d = {"id": f"ds-{n:05d}", "site": site["id"], "system": rng.choice(["pacs", "ehr", "wsi", "sequencer", "lis"]),
             "classification": "deidentified" if deid else "phi", "subjects_zone": site["zone"], "size_tb": round(rng.uniform(1, 500), 1)}
        if deid:
            d["deidentification"] = rng.choice(["safe-harbor", "expert-determination"])
        datasets.append(d)

    workload_list, flows, waivers = [], [], []
    for n in range(workloads):
        ds = rng.choice(datasets)
        kind = rng.random()
        w: dict = {"id": f"wl-{n:05d}", "inputs": [ds["id"]], "team": f"team-{rng.randint(1, 40):02d}"}
        if kind < 0.45:
            w |= {"kind": "inference", "model": {"name": "ct-triage", "params_b": rng.choice([1, 2, 4]), "precision": "fp16"},
                  "replicas": rng.randint(1, 3), "max_latency_ms": rng.choice([20, 40, 80, 200]),
                  "criticality": "high" if rng.random() < 0.15 else "medium"}
        elif kind < 0.6:
            w |= {"kind": "training", "model": {"name": "path-fm", "params_b": rng.choice([1, 3, 7]), "precision": "bf16"},
                  "gpus": rng.choice([8, 16]), "training_method": "full"}
        elif kind < 0.85:
            w |= {"kind": "batch", "gpus": rng.choice([1, 2]), "model": {"name": "variant-caller", "params_b": 1, "precision": "fp16"}}
        else:
            w |= {"kind": "inference", "model": {"name": "clinical-assistant", "params_b": rng.choice([8, 70]), "precision": "fp8",
                                                 "layers": 80, "kv_heads": 8, "head_dim": 128, "context_tokens": 8192},
                  "concurrency": 4, "replicas": 1, "accelerators": ["H100", "H200", "B200"]}
        workload_list.append(w)
        target = rng.choice(site_list)["id"]
        flow = {"id": f"fl-{n:05d}-a", "from": f"dataset/{ds['id']}", "to": f"site/{target}", "classification": ds["classification"],
                "encryption_in_transit": "none" if rng.random() < 0.01 else "tls1.3", "purpose": rng.choice(["treatment", "operations", "research"])}
        if ds["classification"] == "deidentified":
            flow["deidentification"] = ds["deidentification"]
        flows.append(flow)
        flows.append({"id": f"fl-{n:05d}-b", "from": f"workload/{w['id']}", "to": f"dataset/{ds['id']}", "classification": ds["classification"],
                      "encryption_in_transit": "mtls", "purpose": "treatment"})
        if flow["encryption_in_transit"] == "none" and rng.random() < 0.5:
            waivers.append({"rule": "MP-HIPAA-TX-001", "subject": f"flow/{flow['id']}", "justification": "legacy interface, replacement planned",
                            "approved_by": "ciso@example.org", "expires": "2027-06-30"})
    return {
        "apiVersion": "medplan/v1",
        "metadata": {"name": f"synthetic-{sites}x{workloads}-seed{seed}", "owner": "platform@example.org"},
        "sites": site_list,
        "links": [links[k] for k in sorted(links)],
        "datasets": datasets,
        "workloads": workload_list,
        "flows": flows,
        "waivers": waivers,
        "objective": {"minimize": "cost", "time_limit_s": 30},
    }


def generate_yaml(sites: int, workloads: int, seed: int = 1) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return "# yaml-language-server: $schema=https://medplan.dev/schema/spec-v1.json\n" + yaml.dump(
        generate(sites, workloads, seed), Dumper=dumper, sort_keys=False, width=120
    )
