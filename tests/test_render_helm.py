"""Helm charts rendered from plans, checked with the real tools: helm lint and
template, kubernetes-validate, yamllint and check-jsonschema."""

from __future__ import annotations

import copy
import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner import __version__, load_spec
from planner.pipeline import plan
from planner.render.helm import GPU_PRODUCT_LABELS, LABEL_VALUE, label_value, render_helm
from tests.support import tools

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "community-hospital": REPO / "examples" / "community-hospital.yaml",
    "academic-medical-center": REPO / "examples" / "academic-medical-center",
    "pharma-eu-us": REPO / "examples" / "pharma-eu-us.yaml",
}
# Kubernetes sites with placements; lsh-dc1 of the academic medical center runs Slurm.
CHARTS = {
    "community-hospital": ["rb-dc1"],
    "academic-medical-center": [],
    "pharma-eu-us": ["de-fra-dc", "fr-par-colo"],
}
EXAMPLE_CHARTS = [(ex, site) for ex, sites in CHARTS.items() for site in sites]
YAMLLINT = "{extends: default, rules: {line-length: disable}}"

HOSTILE = 'say "hi"\n---\nkind: Secret ${x} %{x} {{ .Release.Name }} <script>alert(1)</script> \\ end'
HOSTILE_SPEC = f"""\
apiVersion: medplan/v1
metadata:
  name: {json.dumps("name " + HOSTILE)}
  owner: {json.dumps("owner " + HOSTILE)}
  description: {json.dumps("description " + HOSTILE)}
sites:
  - id: dc1
    kind: on-prem
    jurisdiction: US-MN
    zone: us
    controls: {{encryption_at_rest: true, audit_logging: true, mfa: true, backup: {{rpo_hours: 24, rto_hours: 72}}}}
    pools:
      - {{id: h100, gpu: H100, nodes: 2, gpus_per_node: 8, cost_per_gpu_hour: 2.0}}
datasets:
  - {{id: pacs, site: dc1, system: pacs, classification: phi, subjects_zone: us}}
workloads:
  - id: triage
    kind: inference
    team: {json.dumps("team " + HOSTILE)}
    description: {json.dumps("workload " + HOSTILE)}
    gpus: 1
    replicas: 2
    inputs: [pacs]
"""

# A training replica wider than a node, one workload split over two pools,
# and flows between workloads and sites.
TOPOLOGY_SPEC = """\
apiVersion: medplan/v1
metadata: {name: topology}
sites:
  - id: dc1
    kind: on-prem
    jurisdiction: US-MN
    zone: us
    controls: {encryption_at_rest: true, customer_managed_keys: true, audit_logging: true, mfa: true, backup: {rpo_hours: 24, rto_hours: 72}}
    pools:
      - {id: h100, gpu: H100, nodes: 1, gpus_per_node: 1, cost_per_gpu_hour: 2.0}
      - {id: h200, gpu: H200, nodes: 1, gpus_per_node: 1, cost_per_gpu_hour: 3.0}
      - {id: b200, gpu: B200, nodes: 2, gpus_per_node: 8, cost_per_gpu_hour: 4.0}
  - id: dc2
    kind: colocation
    jurisdiction: US-WI
    zone: us
    baa: executed
    controls: {encryption_at_rest: true, customer_managed_keys: true, audit_logging: true, mfa: true, backup: {rpo_hours: 24, rto_hours: 72}}
    pools:
      - {id: l40s, gpu: L40S, nodes: 1, gpus_per_node: 4, cost_per_gpu_hour: 1.0}
links:
  - {between: [dc1, dc2], latency_ms: 2, encryption: macsec}
datasets:
  - {id: pacs, site: dc1, system: pacs, classification: phi, subjects_zone: us}
  - {id: notes, site: dc1, system: ehr, classification: limited-data-set, subjects_zone: us}
workloads:
  - {id: reader, kind: inference, gpus: 1, replicas: 2, accelerators: [H100, H200], inputs: [pacs], placement: {sites: [dc1]}}
  - {id: pretrain, kind: training, gpus: 16, accelerators: [B200], inputs: [notes]}
  - {id: summarise, kind: streaming, gpus: 1, accelerators: [L40S], placement: {sites: [dc2]}}
flows:
  - {id: reader-to-pretrain, from: reader, to: pretrain, classification: deidentified, encryption_in_transit: mtls, deidentification: safe-harbor}
  - {id: notes-push, from: notes, to: reader, classification: limited-data-set, encryption_in_transit: tls1.3, purpose: treatment}
  - {id: summaries, from: summarise, to: reader, classification: deidentified, encryption_in_transit: mtls, deidentification: safe-harbor}
"""


# --------------------------------------------------------------------------- helpers

_plans: dict[str, object] = {}


def planned(name: str, tmp_path_factory=None, text: str | None = None):
    """The PlanResult of an example (or of spec ``text``), computed once per session."""
    if name not in _plans:
        if text is None:
            _plans[name] = plan(load_spec([str(EXAMPLES[name])]))
        else:
            path = tmp_path_factory.mktemp("spec") / f"{name}.yaml"
            path.write_text(textwrap.dedent(text), encoding="utf-8")
            _plans[name] = plan(load_spec([str(path)]))
    return _plans[name]


def write_tree(files: dict[str, str], root: Path) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def template(chart: Path, out: Path, *args: str) -> list[dict]:
    """``helm template`` the chart into ``out`` and return its documents."""
    res = tools.run_helm(["template", "rel", chart, "--namespace", "clinical", *args])
    assert res.ok, res.describe()
    out.write_text(res.stdout, encoding="utf-8")
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def controllers(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in ("Deployment", "Job")]


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def pods_of(doc: dict) -> int:
    return doc["spec"]["replicas"] if doc["kind"] == "Deployment" else doc["spec"]["parallelism"]


@pytest.fixture(scope="module")
def example_charts(tmp_path_factory):
    """{(example, site): (chart dir, rendered documents, manifest file)} for every example chart."""
    tools.require_helm()
    out = {}
    for example in EXAMPLES:
        root = write_tree(render_helm(planned(example)), tmp_path_factory.mktemp(example))
        for site in CHARTS[example]:
            chart = root / "helm" / site
            manifest = root / f"{site}.yaml"
            out[(example, site)] = (chart, template(chart, manifest), manifest)
    return out


# --------------------------------------------------------------------------- which charts


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_one_chart_per_kubernetes_site_with_placements(example):
    files = render_helm(planned(example))
    charts = sorted({path.split("/")[1] for path in files})
    assert charts == CHARTS[example]
    for site in charts:
        chart = yaml.safe_load(files[f"helm/{site}/Chart.yaml"])
        assert chart["apiVersion"] == "v2"
        assert chart["name"] == site
        assert chart["version"] == "0.1.0"
        assert chart["appVersion"] == __version__
        for name in ("values.yaml", "values.schema.json", "README.md", "templates/NOTES.txt", "templates/networkpolicies.yaml"):
            assert f"helm/{site}/{name}" in files


# --------------------------------------------------------------------------- real validators


@pytest.mark.parametrize(("example", "site"), EXAMPLE_CHARTS)
def test_chart_passes_helm_lint_strict(example_charts, example, site):
    chart, _, _ = example_charts[(example, site)]
    res = tools.run_helm(["lint", "--strict", chart])
    assert res.ok, res.describe()


@pytest.mark.parametrize(("example", "site"), EXAMPLE_CHARTS)
def test_rendered_manifests_are_valid_kubernetes_1_32(example_charts, example, site):
    tools.require_kubernetes_validate()
    _, _, manifest = example_charts[(example, site)]
    res = tools.kubernetes_validate(manifest, k8s_version="1.32.0", strict=True)
    assert res.ok, res.describe()


@pytest.mark.parametrize(("example", "site"), EXAMPLE_CHARTS)
def test_rendered_manifests_and_values_pass_yamllint(example_charts, example, site):
    tools.require_yamllint()
    chart, _, manifest = example_charts[(example, site)]
    res = tools.yamllint([manifest, chart / "values.yaml", chart / "Chart.yaml"], config=YAMLLINT)
    assert res.ok, res.describe()


@pytest.mark.parametrize(("example", "site"), EXAMPLE_CHARTS)
def test_values_match_their_schema(example_charts, example, site):
    tools.require_check_jsonschema()
    chart, _, _ = example_charts[(example, site)]
    res = tools.check_jsonschema(chart / "values.schema.json", chart / "values.yaml")
    assert res.ok, res.describe()


def test_schema_rejects_values_that_break_the_plan(example_charts, tmp_path):
    tools.require_check_jsonschema()
    chart, _, _ = example_charts[("community-hospital", "rb-dc1")]
    schema = chart / "values.schema.json"
    values = yaml.safe_load((chart / "values.yaml").read_text())

    def broken(change) -> dict:
        v = copy.deepcopy(values)
        change(v)
        return v

    bad = {
        "gpus zero": broken(lambda v: v["workloads"]["ehr-note-assistant"].update(gpus=0)),
        "gpus as text": broken(lambda v: v["workloads"]["ehr-note-assistant"].update(gpusPerPod="4")),
        "image tag missing": broken(lambda v: v["images"]["ed-census-forecast"].pop("tag")),
        "image repository with spaces": broken(lambda v: v["images"]["ed-census-forecast"].update(repository="my image")),
        "workload missing": broken(lambda v: v["workloads"].pop("ed-census-forecast")),
        "endpoint not a CIDR": broken(lambda v: v["datasets"]["ehr-clinical"].update(cidrs=["10.0.0.1"])),
        "unknown key": broken(lambda v: v.update(replicaCount=3)),
    }
    for what, instance in bad.items():
        res = tools.check_jsonschema(schema, instance)
        assert not res.ok, f"schema accepted values with {what}"
    # Helm applies the same schema.
    res = tools.run_helm(["template", "rel", chart, "--set", "workloads.ehr-note-assistant.gpus=0"])
    assert not res.ok and "gpus" in res.stderr


# --------------------------------------------------------------------------- the plan in the manifests


@pytest.mark.parametrize(("example", "site"), EXAMPLE_CHARTS)
def test_controllers_carry_the_planned_gpus_replicas_and_product(example_charts, example, site):
    result = planned(example)
    _, docs, _ = example_charts[(example, site)]
    placements = [p for p in result.plan.placements if p.site == site]
    replicas = Counter(p.workload for p in placements)
    assert sorted(d["metadata"]["labels"]["medplan.dev/workload"] for d in controllers(docs)) == sorted(replicas)
    for doc in controllers(docs):
        workload = doc["metadata"]["labels"]["medplan.dev/workload"]
        mine = [p for p in placements if p.workload == workload]
        kind = result.facts.index["workload"][workload].kind.value
        assert doc["kind"] == ("Deployment" if kind in ("inference", "streaming") else "Job")
        assert pods_of(doc) == replicas[workload]
        container = pod_spec(doc)["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == mine[0].gpus
        assert pod_spec(doc)["nodeSelector"] == {"nvidia.com/gpu.product": GPU_PRODUCT_LABELS[mine[0].gpu]}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec(doc)["tolerations"]


@pytest.mark.parametrize(("example", "site"), EXAMPLE_CHARTS)
def test_pods_are_locked_down(example_charts, example, site):
    _, docs, _ = example_charts[(example, site)]
    for doc in controllers(docs):
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        sc = spec["containers"][0]["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert set(spec["containers"][0]["resources"]["requests"]) == {"cpu", "memory", "nvidia.com/gpu"}


@pytest.mark.parametrize(("example", "site"), EXAMPLE_CHARTS)
def test_labels_say_what_data_a_workload_reads(example_charts, example, site):
    result = planned(example)
    _, docs, _ = example_charts[(example, site)]
    for doc in controllers(docs):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        workload = labels["medplan.dev/workload"]
        assert labels["app.kubernetes.io/managed-by"] == "medplan"
        assert labels["app.kubernetes.io/name"] == workload
        assert labels["medplan.dev/phi"] == ("true" if result.facts.workload_data[workload].phi else "false")
        assert labels["medplan.dev/criticality"] == result.facts.index["workload"][workload].criticality.value
        for value in labels.values():
            assert LABEL_VALUE.match(value) and len(value) <= 63, value


def test_phi_workloads_are_labelled_phi(example_charts):
    _, docs, _ = example_charts[("community-hospital", "rb-dc1")]
    notes = by_kind(docs, "Deployment")["rel-ehr-note-assistant"]
    assert notes["metadata"]["labels"]["medplan.dev/phi"] == "true"
    assert notes["metadata"]["labels"]["medplan.dev/classification"] == "phi"
    _, docs, _ = example_charts[("pharma-eu-us", "fr-par-colo")]
    molgen = by_kind(docs, "Job")["rel-molgen-lora"]
    assert molgen["metadata"]["labels"]["medplan.dev/phi"] == "false"
    assert molgen["metadata"]["labels"]["medplan.dev/classification"] == "public"


def test_high_criticality_gets_a_disruption_budget(example_charts):
    _, docs, _ = example_charts[("pharma-eu-us", "de-fra-dc")]
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert list(pdbs) == ["rel-eu-safety-signal"]
    assert pdbs["rel-eu-safety-signal"]["spec"]["minAvailable"] == 1  # one replica at this site
    assert pdbs["rel-eu-safety-signal"]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "eu-safety-signal"
    _, docs, _ = example_charts[("community-hospital", "rb-dc1")]
    assert by_kind(docs, "PodDisruptionBudget") == {}  # cxr-triage (high) is not placed


@pytest.mark.parametrize(("example", "site"), EXAMPLE_CHARTS)
def test_namespace_is_default_deny(example_charts, example, site):
    _, docs, _ = example_charts[(example, site)]
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["rel-default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    # Endpoints are empty by default: no workload policy allows anything yet.
    for doc in controllers(docs):
        own = policies[doc["metadata"]["name"]]["spec"]
        assert own["ingress"] == [] and own["egress"] == []


def test_network_policies_allow_exactly_the_planned_flows(example_charts, tmp_path):
    chart, _, _ = example_charts[("community-hospital", "rb-dc1")]
    docs = template(
        chart,
        tmp_path / "out.yaml",
        "--set", "datasets.ehr-clinical.cidrs={10.20.0.0/16}",
        "--set", "workloads.ehr-note-assistant.clients.namespace=ehr-frontend",
    )  # fmt: skip
    policies = by_kind(docs, "NetworkPolicy")
    notes = policies["rel-ehr-note-assistant"]["spec"]
    # Input ehr-clinical and flow draft-notes-to-ehr: one egress rule to the EHR, HTTPS only.
    assert notes["egress"] == [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 443, "protocol": "TCP"}]}]
    assert notes["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ehr-frontend"}}}],
            "ports": [{"port": 8000, "protocol": "TCP"}],
        }
    ]
    # A batch job has no clients: it only reaches the EHR.
    census = policies["rel-ed-census-forecast"]["spec"]
    assert census["ingress"] == [] and census["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    dns = policies["rel-allow-dns"]["spec"]
    assert {p["port"] for p in dns["egress"][0]["ports"]} == {53}


def test_require_endpoints_refuses_to_render_open_flows(example_charts):
    chart, _, _ = example_charts[("community-hospital", "rb-dc1")]
    res = tools.run_helm(["template", "rel", chart, "--set", "networkPolicy.requireEndpoints=true"])
    assert not res.ok and "datasets.ehr-clinical" in res.stderr
    res = tools.run_helm(
        ["template", "rel", chart, "--set", "networkPolicy.requireEndpoints=true", "--set", "datasets.ehr-clinical.namespace=ehr"]
    )
    assert res.ok, res.describe()


def test_wide_replicas_split_pools_and_workload_flows(tmp_path_factory, tmp_path):
    tools.require_helm()
    tools.require_kubernetes_validate()
    result = planned("topology", tmp_path_factory, TOPOLOGY_SPEC)
    root = write_tree(render_helm(result), tmp_path)
    assert sorted(p.name for p in (root / "helm").iterdir()) == ["dc1", "dc2"]
    chart = root / "helm" / "dc1"
    assert tools.run_helm(["lint", "--strict", chart]).ok
    docs = template(chart, tmp_path / "dc1.yaml", "--set", "sites.dc2.cidrs={10.9.0.0/16}")
    res = tools.kubernetes_validate(tmp_path / "dc1.yaml")
    assert res.ok, res.describe()

    # 16 GPUs per replica on 8-GPU nodes: an Indexed Job of two 8-GPU pods
    # with a headless Service for rendezvous, and its pods may talk to each other.
    job = by_kind(docs, "Job")["rel-pretrain"]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    assert pod_spec(job)["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert pod_spec(job)["subdomain"] == "rel-pretrain"
    assert by_kind(docs, "Service")["rel-pretrain"]["spec"]["clusterIP"] == "None"
    pretrain = by_kind(docs, "NetworkPolicy")["rel-pretrain"]["spec"]
    peers = [rule["from"][0]["podSelector"]["matchLabels"] for rule in pretrain["ingress"]]
    assert {"app.kubernetes.io/instance": "rel", "medplan.dev/workload": "reader"} in peers  # flow reader-to-pretrain
    assert any(p.get("app.kubernetes.io/name") == "pretrain" for p in peers)

    # One workload over two pools: one Deployment per pool, each selecting its GPU.
    deployments = by_kind(docs, "Deployment")
    assert pod_spec(deployments["rel-reader-h100"])["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert pod_spec(deployments["rel-reader-h200"])["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H200"
    assert deployments["rel-reader-h100"]["spec"]["replicas"] == deployments["rel-reader-h200"]["spec"]["replicas"] == 1
    # summarise (at dc2) sends to reader: ingress from the dc2 site range, on the service port only.
    reader = by_kind(docs, "NetworkPolicy")["rel-reader-h100"]["spec"]
    assert {"from": [{"ipBlock": {"cidr": "10.9.0.0/16"}}], "ports": [{"port": 8000, "protocol": "TCP"}]} in reader["ingress"]
    assert reader["egress"] == [
        {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "rel", "medplan.dev/workload": "pretrain"}}}]}
    ]


# --------------------------------------------------------------------------- hostile text


def test_hostile_spec_text_stays_literal(tmp_path_factory, tmp_path):
    tools.require_helm()
    tools.require_kubernetes_validate()
    tools.require_yamllint()
    tools.require_check_jsonschema()
    result = planned("hostile", tmp_path_factory, HOSTILE_SPEC)
    root = write_tree(render_helm(result), tmp_path)
    chart = root / "helm" / "dc1"
    res = tools.run_helm(["lint", "--strict", chart])
    assert res.ok, res.describe()
    docs = template(chart, tmp_path / "dc1.yaml")
    for check in (
        tools.kubernetes_validate(tmp_path / "dc1.yaml"),
        tools.yamllint([tmp_path / "dc1.yaml", chart / "values.yaml", chart / "Chart.yaml"], config=YAMLLINT),
        tools.check_jsonschema(chart / "values.schema.json", chart / "values.yaml"),
    ):
        assert check.ok, check.describe()

    assert "Secret" not in {d["kind"] for d in docs}  # the '---' in the text did not start a document
    deployment = by_kind(docs, "Deployment")["rel-triage"]
    notes = deployment["metadata"]["annotations"]
    assert notes["medplan.dev/description"] == "workload " + HOSTILE
    assert notes["medplan.dev/team"] == "team " + HOSTILE
    assert notes["medplan.dev/spec-name"] == "name " + HOSTILE
    assert notes["medplan.dev/spec-owner"] == "owner " + HOSTILE
    assert deployment["metadata"]["labels"]["medplan.dev/team"] == label_value("team " + HOSTILE)
    assert LABEL_VALUE.match(deployment["metadata"]["labels"]["medplan.dev/team"])
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert values["spec"]["description"] == "description " + HOSTILE
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["annotations"]["medplan.dev/spec-name"] == "name " + HOSTILE


def test_label_value_makes_any_text_a_valid_label():
    assert label_value("radiology-ai") == "radiology-ai"
    assert label_value('  "Team" <x> ') == "Team-x"
    assert label_value("---") == ""
    assert label_value(None) == ""
    long = label_value("a" * 62 + "-" + "b" * 10)
    assert len(long) <= 63 and LABEL_VALUE.match(long)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_rendering_is_deterministic(example):
    result = planned(example)
    first = render_helm(result)
    assert render_helm(result) == first
    assert list(first) == sorted(first)
    assert render_helm(plan(load_spec([str(EXAMPLES[example])]))) == first


# --------------------------------------------------------------------------- writers


_YAML_TEXT = st.one_of(
    st.sampled_from(["", "yes", "No", "on", "null", "~", "1e3", "0o17", "0x1F", ".inf", "- x", "a: b", "#c", "x #y", "'q'", "é", "Team A"]),
    st.text(max_size=20),
)
_YAML_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**40), max_value=2**40), _YAML_TEXT)
_YAML_DOCS = st.dictionaries(
    _YAML_TEXT,
    st.recursive(
        _YAML_SCALARS,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_YAML_TEXT, children, max_size=4)),
        max_leaves=30,
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(_YAML_DOCS)
def test_values_writer_writes_what_the_yaml_dumper_writes(doc):
    from planner.render.helm import _dump_yaml, _pyyaml, _shared

    assert _dump_yaml(doc) == _pyyaml(doc)
    # A mapping marked shared is written from its kept text, wherever it appears.
    inner = _shared({"cidrs": [], "namespace": "", "ports": [{"port": 443, "protocol": "TCP"}]})
    nested = {"a": inner, "b": [inner, {"c": inner}], "d": {"e": {"f": inner}}, **doc}
    assert _dump_yaml(nested) == _pyyaml(nested)


def test_schema_defines_each_entry_schema_once_and_refers_to_it():
    result = planned("pharma-eu-us")
    for site in CHARTS["pharma-eu-us"]:
        schema = json.loads(render_helm(result)[f"helm/{site}/values.schema.json"])
        definitions = schema["definitions"]
        workloads = schema["properties"]["workloads"]["properties"]
        assert workloads and all(set(ref) == {"$ref"} for ref in workloads.values())
        for ref in workloads.values():
            name = ref["$ref"].removeprefix("#/definitions/")
            assert definitions[name]["properties"]["gpus"] == {"type": "integer", "minimum": 1}
        assert {"endpoint", "image"} <= set(definitions)
        assert all(ref == {"$ref": "#/definitions/image"} for ref in schema["properties"]["images"]["properties"].values())
