"""The external validators and the reference OPA engine really run here."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.support import opa_reference, tools  # noqa: E402
from tests.support.opa_server import OpaTestServer, free_port, opa_server  # noqa: E402

# ---------------------------------------------------------------------------
# fixtures and sample documents

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: triage-model
  labels:
    app: triage-model
spec:
  replicas: 2
  selector:
    matchLabels:
      app: triage-model
  template:
    metadata:
      labels:
        app: triage-model
    spec:
      containers:
        - name: server
          image: registry.example/triage:1.0.0
          resources:
            limits:
              nvidia.com/gpu: 1
"""

CHART_YAML = """\
apiVersion: v2
name: medplan-smoke
description: Smallest chart that exercises helm lint and helm template
type: application
version: 0.1.0
appVersion: "1.0.0"
icon: https://example.org/icon.png
"""

VALUES_YAML = """\
replicas: 2
image: registry.example/triage:1.0.0
gpus: 1
"""

DEPLOYMENT_TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-triage
  labels:
    app.kubernetes.io/name: {{ .Chart.Name }}
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
        - name: server
          image: {{ .Values.image | quote }}
          resources:
            limits:
              nvidia.com/gpu: {{ .Values.gpus }}
"""

TF_MAIN = """\
variable "replicas" {
  type = number

  validation {
    condition     = var.replicas > 0
    error_message = "replicas must be positive."
  }
}

variable "gpus_per_replica" {
  type    = number
  default = 1
}

locals {
  total_gpus = var.replicas * var.gpus_per_replica
}

resource "terraform_data" "pool" {
  input = {
    gpus = local.total_gpus
  }
}

check "fits_one_node" {
  assert {
    condition     = local.total_gpus <= 8
    error_message = "more than 8 GPUs requested."
  }
}

output "total_gpus" {
  value = local.total_gpus
}
"""

TF_TEST = """\
variables {
  replicas         = 3
  gpus_per_replica = 2
}

run "multiplies" {
  command = plan

  assert {
    condition     = output.total_gpus == 6
    error_message = "total_gpus should be 6."
  }
}

run "rejects_zero_replicas" {
  command = plan

  variables {
    replicas = 0
  }

  expect_failures = [var.replicas]
}
"""

POLICY = """\
package medplan.sample

import rego.v1

default compliant := false

deny contains finding if {
\tsome flow in input.flows
\tflow.phi
\tnot flow.encrypted
\tfinding := {"rule": "MP-HIPAA-TX-001", "subject": flow.id, "severity": "high"}
}

deny contains finding if {
\tsome site in input.sites
\tnot site.region in {"eu-west-1", "eu-central-1"}
\tsite.gdpr
\tfinding := {"rule": "MP-GDPR-RES-001", "subject": site.id, "severity": "medium"}
}

compliant if count(deny) == 0

all_sites_baa if {
\tevery site in input.sites {
\t\tnot site.no_baa
\t}
}

gpu_total := sum([n | some s in input.sites; n := s.gpus])

regions := {s.region | some s in input.sites}

summary := {"failed": count(deny), "rules": sort([r | some f in deny; r := f.rule])}

test_encrypted_flow_passes if {
\tcount(deny) == 0 with input as {"flows": [{"id": "a", "phi": true, "encrypted": true}], "sites": []}
}

test_plain_flow_fails if {
\tcount(deny) == 1 with input as {"flows": [{"id": "a", "phi": true}], "sites": []}
}

test_deliberately_wrong if {
\tcompliant with input as {"flows": [{"id": "a", "phi": true}], "sites": []}
}
"""

SAMPLE_INPUT = {
    "flows": [
        {"id": "legacy-hl7", "phi": True},
        {"id": "dicom", "phi": True, "encrypted": True},
        {"id": "metrics", "phi": False},
    ],
    "sites": [
        {"id": "fra", "region": "eu-central-1", "gdpr": True, "gpus": 16},
        {"id": "iad", "region": "us-east-1", "gdpr": True, "gpus": 8, "no_baa": True},
        {"id": "dub", "region": "eu-west-1", "gdpr": True, "gpus": 4},
    ],
}

QUERIES = [
    "data.medplan.sample.deny",
    "data.medplan.sample.compliant",
    "data.medplan.sample.all_sites_baa",
    "data.medplan.sample.gpu_total",
    "data.medplan.sample.regions",
    "data.medplan.sample.summary",
]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _client(url: str, **kwargs):
    from opa_client import OpaClient

    parts = urlsplit(url)
    return OpaClient(host=parts.hostname, port=parts.port, **kwargs)


@pytest.fixture
def no_leaked_threads():
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.05)
    pytest.fail(f"threads left running: {leaked}")


# ---------------------------------------------------------------------------
# Helm, kubernetes-validate, yamllint


def test_helm_lint_strict_and_template(tmp_path: Path) -> None:
    tools.require_helm()
    chart = tmp_path / "medplan-smoke"
    _write(chart / "Chart.yaml", CHART_YAML)
    _write(chart / "values.yaml", VALUES_YAML)
    _write(chart / "templates" / "deployment.yaml", DEPLOYMENT_TEMPLATE)

    version = tools.run_helm(["version", "--short"]).check()
    assert version.stdout.startswith("v4."), version.stdout

    lint = tools.run_helm(["lint", "--strict", str(chart)])
    assert lint.ok, lint.describe()
    assert "0 chart(s) failed" in lint.stdout

    rendered = tools.run_helm(["template", "rel", str(chart), "--set", "replicas=3"]).check()
    assert "name: rel-triage" in rendered.stdout
    assert "replicas: 3" in rendered.stdout
    manifest = _write(tmp_path / "rendered.yaml", rendered.stdout)

    kv = tools.kubernetes_validate(manifest) if tools.kubernetes_validate_available() else None
    if kv is not None:
        assert kv.ok, kv.describe()

    # A broken template is caught by lint --strict.
    _write(chart / "templates" / "broken.yaml", "kind: ConfigMap\ndata: {{ .Values.missing.deep }}\n")
    bad = tools.run_helm(["lint", "--strict", str(chart)])
    assert not bad.ok
    assert "broken.yaml" in bad.stdout + bad.stderr


def test_kubernetes_validate_accepts_good_and_rejects_bad(tmp_path: Path) -> None:
    tools.require_kubernetes_validate()
    good = _write(tmp_path / "good.yaml", DEPLOYMENT)
    res = tools.kubernetes_validate(good, k8s_version="1.32.0")
    assert res.ok, res.describe()
    assert "passed" in res.stdout

    bad_field = _write(tmp_path / "bad.yaml", DEPLOYMENT.replace("  replicas: 2\n", "  replicas: 2\n  replicaCount: 2\n"))
    res = tools.kubernetes_validate(bad_field)
    assert not res.ok
    assert "replicaCount" in res.stdout + res.stderr

    bad_type = _write(tmp_path / "bad_type.yaml", DEPLOYMENT.replace("replicas: 2", "replicas: two"))
    res = tools.kubernetes_validate([good, bad_type])
    assert not res.ok
    assert "'two' is not of type 'integer'" in res.stdout + res.stderr


def test_yamllint(tmp_path: Path) -> None:
    tools.require_yamllint()
    good = _write(tmp_path / "good.yaml", "---\n" + DEPLOYMENT)
    assert tools.yamllint(good).ok
    bad = _write(tmp_path / "bad.yaml", "---\nkey: value\nkey: other\n")
    res = tools.yamllint(bad)
    assert res.returncode == 1
    assert "key-duplicates" in res.stdout


# ---------------------------------------------------------------------------
# Terraform and HCL


def test_terraform_fmt_validate_test(tmp_path: Path) -> None:
    tools.require_terraform()
    mod = tmp_path / "module"
    _write(mod / "main.tf", TF_MAIN)
    _write(mod / "main.tftest.hcl", TF_TEST)

    assert tools.terraform_version().startswith("1.")

    fmt = tools.terraform_fmt_check(mod)
    assert fmt.ok, fmt.describe()

    init = tools.terraform_init(mod)
    assert init.ok, init.describe()

    validate = tools.terraform_validate(mod)
    assert validate.ok, validate.describe()
    report = validate.json()
    assert report["valid"] is True and report["error_count"] == 0

    test = tools.terraform_test(mod)
    assert test.ok, test.describe()
    assert "2 passed, 0 failed" in test.stdout

    # Negative cases: an unformatted file, a failing assertion, an invalid reference.
    _write(mod / "extra.tf", 'locals {\nx=1\n}\n')
    fmt = tools.terraform_fmt_check(mod)
    assert fmt.returncode == 3 and "extra.tf" in fmt.stdout
    (mod / "extra.tf").unlink()

    _write(mod / "main.tftest.hcl", TF_TEST.replace("== 6", "== 7"))
    test = tools.terraform_test(mod)
    assert not test.ok
    assert "total_gpus should be 6." in test.stdout + test.stderr

    _write(mod / "broken.tf", 'output "nope" {\n  value = local.does_not_exist\n}\n')
    validate = tools.terraform_validate(mod)
    assert not validate.ok
    assert validate.json()["valid"] is False


def test_hcl_parse(tmp_path: Path) -> None:
    tools.require_hcl2()
    doc = tools.hcl_parse(_write(tmp_path / "main.tf", TF_MAIN))
    variables = {name for block in doc["variable"] for name in block}
    assert variables == {"replicas", "gpus_per_replica"}
    assert doc["resource"][0]["terraform_data"]["pool"]["input"] == {"gpus": "${local.total_gpus}"}
    assert doc["variable"][0]["replicas"]["validation"][0]["error_message"] == "replicas must be positive."
    raw = tools.hcl_parse(tmp_path / "main.tf", plain=False)
    assert '"replicas"' in raw["variable"][0]
    with pytest.raises(Exception):
        tools.hcl_parse(_write(tmp_path / "bad.tf", 'resource "x" {\n  a = \n'))


# ---------------------------------------------------------------------------
# JSON schemas: SARIF 2.1.0 and OSCAL Assessment Results


def test_sarif_schema(tmp_path: Path) -> None:
    tools.require_check_jsonschema()
    schema = tools.require_sarif_schema()
    assert "sarif-schema-2.1.0" in json.loads(schema.read_text())["id"]
    log = {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [
            {
                "tool": {"driver": {"name": "medplan", "rules": [{"id": "MP-HIPAA-TX-001"}]}},
                "results": [
                    {
                        "ruleId": "MP-HIPAA-TX-001",
                        "level": "error",
                        "message": {"text": "PHI in transit is not encrypted"},
                        "locations": [
                            {"physicalLocation": {"artifactLocation": {"uri": "site.yaml"},
                                                  "region": {"startLine": 88, "startColumn": 5}}}
                        ],
                    }
                ],
            }
        ],
    }
    res = tools.check_jsonschema(schema, log)
    assert res.ok, res.describe()
    log["runs"][0]["results"][0]["level"] = "fatal"
    res = tools.check_jsonschema(schema, _write(tmp_path / "bad.sarif", json.dumps(log)))
    assert not res.ok and "fatal" in res.stdout + res.stderr


def test_oscal_assessment_results_schema() -> None:
    tools.require_check_jsonschema()
    schema = tools.require_oscal_ar_schema()
    assert "oscal-ar-schema" in json.loads(schema.read_text())["$id"]
    doc = {
        "assessment-results": {
            "uuid": "8f1c3a2e-7d4b-4c1a-9e2f-1b2c3d4e5f60",
            "metadata": {
                "title": "medplan assessment",
                "last-modified": "2026-01-01T00:00:00Z",
                "version": "0.1.0",
                "oscal-version": "1.1.2",
            },
            "import-ap": {"href": "#"},
            "results": [
                {
                    "uuid": "9f1c3a2e-7d4b-4c1a-9e2f-1b2c3d4e5f60",
                    "title": "validate",
                    "description": "medplan validate",
                    "start": "2026-01-01T00:00:00Z",
                    "reviewed-controls": {"control-selections": [{"include-all": {}}]},
                }
            ],
        }
    }
    res = tools.check_jsonschema(schema, doc)
    assert res.ok, res.describe()
    # OSCAL token patterns use \p{L}: a name starting with a digit must fail.
    doc["assessment-results"]["metadata"]["props"] = [{"name": "1bad", "value": "x"}]
    res = tools.check_jsonschema(schema, doc)
    assert not res.ok and "1bad" in res.stdout


def test_chromium_headless(tmp_path: Path) -> None:
    tools.require_chromium()
    page = _write(tmp_path / "index.html", "<html><body><h1 id='t'>medplan</h1></body></html>")
    res = tools.run_chromium(["--dump-dom", page.as_uri()])
    assert res.ok, res.describe()
    assert "<h1 id=\"t\">medplan</h1>" in res.stdout


# ---------------------------------------------------------------------------
# Reference OPA engine


def test_regorus_and_reference_opa_agree() -> None:
    opa_reference.require_opa()
    regorus = pytest.importorskip("regorus")
    modules = {"sample.rego": POLICY}

    engine = regorus.Engine()
    engine.add_policy("sample.rego", POLICY)
    engine.set_input_json(json.dumps(SAMPLE_INPUT))
    undefined = object()
    for query in QUERIES:
        ours = json.loads(engine.eval_query_as_json(query))
        ours_value = ours["result"][0]["expressions"][0]["value"] if ours.get("result") else undefined
        opa_value = opa_reference.evaluate(modules, SAMPLE_INPUT, query, undefined=undefined)
        if ours_value is undefined or opa_value is undefined:
            assert ours_value is opa_value, f"{query}: defined on one engine only"
            continue
        assert opa_reference.to_json(ours_value) == opa_reference.to_json(opa_value), query
        assert ours_value == opa_value, f"{query}: order differs"

    deny = opa_reference.evaluate(modules, SAMPLE_INPUT, "data.medplan.sample.deny")
    assert deny == [
        {"rule": "MP-GDPR-RES-001", "severity": "medium", "subject": "iad"},
        {"rule": "MP-HIPAA-TX-001", "severity": "high", "subject": "legacy-hl7"},
    ]
    assert opa_reference.evaluate(modules, SAMPLE_INPUT, "data.medplan.sample.all_sites_baa", undefined=None) is None
    with pytest.raises(opa_reference.Undefined):
        opa_reference.evaluate(modules, SAMPLE_INPUT, "data.medplan.sample.nothing_here")


def test_reference_opa_runs_rego_tests_and_rejects_bad_modules() -> None:
    opa_reference.require_opa()
    results = opa_reference.run_tests({"sample.rego": POLICY})
    assert results == [
        ("data.medplan.sample.test_encrypted_flow_passes", True),
        ("data.medplan.sample.test_plain_flow_fails", True),
        ("data.medplan.sample.test_deliberately_wrong", False),
    ]
    with pytest.raises(opa_reference.OpaError) as parse:
        opa_reference.check_modules({"v0.rego": "package x\nallow { true }\n"})
    assert parse.value.code == "parse_error"
    with pytest.raises(opa_reference.OpaError) as compile_:
        opa_reference.check_modules({"t.rego": "package x\nimport rego.v1\nallow if nope(1)\n"})
    assert "undefined function nope" in str(compile_.value)


# ---------------------------------------------------------------------------
# OPA-compatible server and opa-python-client


def test_opa_client_round_trip(no_leaked_threads) -> None:
    opa_reference.require_opa()
    pytest.importorskip("opa_client")
    from opa_client.errors import RegoParseError

    with OpaTestServer() as srv:
        assert srv._httpd.server_address[0] == "127.0.0.1"
        client = _client(srv.url)
        try:
            assert client.check_connection() is True
            assert client.check_health() is True
            assert client.update_policy_from_string(POLICY, "medplan/sample") is True
            assert client.get_policies_list() == ["medplan/sample"]
            info = client.get_policies_info()["medplan/sample"]
            assert info["path"].endswith("/v1/data/medplan/sample")

            answer = client.query_rule(SAMPLE_INPUT, "medplan.sample", "deny")
            assert answer == {"result": opa_reference.evaluate({"p": POLICY}, SAMPLE_INPUT, "data.medplan.sample.deny")}
            assert client.query_rule(SAMPLE_INPUT, "medplan.sample", "compliant") == {"result": False}
            assert client.query_rule(SAMPLE_INPUT, "medplan.sample", "all_sites_baa") == {}  # undefined
            assert client.bulk_query_rule([{"flows": [], "sites": []}, SAMPLE_INPUT], "medplan.sample", "compliant") == [
                True,
                False,
            ]

            with pytest.raises(RegoParseError) as bad:
                client.update_policy_from_string("package x\nimport rego.v1\nallow if nope(1)\n", "broken")
            assert bad.value.expression == "invalid_parameter"
            assert bad.value.errors[0]["code"] == "rego_type_error"
            assert bad.value.errors[0]["location"] == {"file": "broken", "row": 3}
            assert client.get_policies_list() == ["medplan/sample"]  # nothing half-installed

            # v0 syntax: the real engine's error makes the client retry in v1 syntax.
            assert client.update_policy_from_string("package legacy\nallow { true }\n", "legacy") is True
            assert client.query_rule({}, "legacy", "allow") == {"result": True}
            assert client.delete_policy("legacy") is True
            assert client.get_policies_list() == ["medplan/sample"]
        finally:
            client.close_connection()
        sent = [(r.method, r.path) for r in srv.requests]
        assert ("PUT", "/v1/policies/medplan/sample") in sent
        assert ("POST", "/v1/data/medplan/sample/deny") in sent
        assert ("GET", "/v1/policies/") in sent


def test_opa_server_raw_http_shapes() -> None:
    opa_reference.require_opa()
    requests = pytest.importorskip("requests")
    with opa_server() as url:
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(f"{url}/health", timeout=5).json() == {}
        r = requests.put(f"{url}/v1/policies/p", data=POLICY.encode(), headers={"Content-Type": "text/plain"}, timeout=5)
        assert r.status_code == 200 and r.json() == {}
        r = requests.post(f"{url}/v1/data/medplan/sample/gpu_total", json={"input": SAMPLE_INPUT}, timeout=5)
        assert r.json() == {"result": 28}
        r = requests.post(f"{url}/v1/data/medplan/sample/gpu_total", json={}, timeout=5)
        assert r.json()["warning"]["code"] == "api_usage_warning"
        r = requests.put(f"{url}/v1/policies/bad", data=b"package bad\nfoo bar baz\n", timeout=5)
        assert r.status_code == 400
        body = r.json()
        assert body["code"] == "invalid_parameter" and body["errors"][0]["code"] == "rego_parse_error"
        assert requests.delete(f"{url}/v1/policies/missing", timeout=5).status_code == 404


def test_opa_server_token(no_leaked_threads) -> None:
    opa_reference.require_opa()
    pytest.importorskip("opa_client")
    import requests
    from opa_client.errors import ConnectionsError

    with opa_server(token="s3cret") as url:
        good = _client(url, token="s3cret")
        assert good.check_connection() is True
        assert good.update_policy_from_string(POLICY, "p") is True
        assert good.query_rule(SAMPLE_INPUT, "medplan.sample", "compliant") == {"result": False}
        good.close_connection()
        bad = _client(url, token="wrong")
        with pytest.raises(ConnectionsError):
            bad.check_connection()
        with pytest.raises(requests.HTTPError) as err:
            bad.query_rule({}, "medplan.sample", "compliant")
        assert err.value.response.status_code == 401
        assert err.value.response.json()["code"] == "unauthorized"
        bad.close_connection()


def test_opa_server_fault_modes(no_leaked_threads) -> None:
    opa_reference.require_opa()
    pytest.importorskip("opa_client")
    import requests
    from opa_client.errors import ConnectionsError, RegoParseError

    # down: nothing listens.
    with opa_server(mode="down") as url:
        client = _client(url, retries=0, timeout=1)
        with pytest.raises(ConnectionsError):
            client.check_connection()
        with pytest.raises(requests.ConnectionError):
            client.query_rule({}, "medplan.sample", "deny")
        assert client.check_health() is False
        client.close_connection()

    # slow: the client's timeout fires; stopping the server does not wait out the delay.
    started = time.monotonic()
    with opa_server(mode="slow", delay=30) as url:
        client = _client(url, timeout=0.3)
        with pytest.raises(requests.Timeout):
            client.query_rule({}, "medplan.sample", "deny")
        client.close_connection()
    assert time.monotonic() - started < 10

    # error5xx: HTTP 500 with OPA's error shape.
    with opa_server(mode="error5xx") as url:
        client = _client(url, retries=0)
        with pytest.raises(requests.HTTPError) as err:
            client.query_rule({}, "medplan.sample", "deny")
        assert err.value.response.status_code == 500
        assert err.value.response.json()["code"] == "internal_error"
        with pytest.raises(ConnectionsError):
            client.check_connection()
        client.close_connection()

    # garbage: 200 whose body is not JSON.
    with opa_server(mode="garbage") as url:
        client = _client(url)
        with pytest.raises(requests.JSONDecodeError):
            client.query_rule({}, "medplan.sample", "deny")
        client.close_connection()

    # reject_policy: PUT answers 400, queries still work.
    with OpaTestServer(mode="reject_policy") as srv:
        client = _client(srv.url)
        with pytest.raises(RegoParseError) as err:
            client.update_policy_from_string(POLICY, "p")
        assert err.value.expression == "invalid_parameter"
        assert client.query_rule({}, "medplan.sample", "deny") == {}
        srv.mode = None  # switch off the fault on the running server
        assert client.update_policy_from_string(POLICY, "p") is True
        client.close_connection()


def test_free_port_is_not_listening() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
