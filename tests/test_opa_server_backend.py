"""The OPA-server engine (--opa-url) against an OPA-REST-compatible server on
the real OPA v1.20 engine: same decision as embedded, and every fault ends in
exit 2 with one clear message and no leaked token."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.support import opa_reference
from tests.support.opa_server import opa_server

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pharma-eu-us.yaml"
TOKEN = "s3cr3t-token-value"


@pytest.fixture(autouse=True)
def _needs_opa():
    opa_reference.require_opa()


def _findings(output: str) -> list:
    doc = json.loads(output)
    return [(f["rule"], str(f["subject"]), f["status"], f["message"]) for f in doc["findings"]]


def test_server_decides_like_embedded(cli):
    embedded = cli("validate", EXAMPLE, "--format", "json")
    with opa_server(token=TOKEN) as url:
        remote = cli("validate", EXAMPLE, "--format", "json", "--opa-url", url, "--opa-token", TOKEN)
    assert remote.exit_code == embedded.exit_code
    assert _findings(remote.stdout) == _findings(embedded.stdout)
    assert json.loads(remote.stdout)["engine"]["name"] == "opa-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("down", "not reachable"),
        ("error5xx", "OPA server:"),
        ("garbage", "OPA server:"),
        ("reject_policy", "OPA rejected the policy"),
        ("slow", "OPA server:"),
    ],
)
def test_faults_exit_2_with_one_message(cli, mode, expected, tmp_path):
    if mode == "down":
        url = f"http://127.0.0.1:{_free_port()}"
        result = cli("validate", EXAMPLE, "--opa-url", url, "--opa-token", TOKEN)
    else:
        with opa_server(mode=mode, token=TOKEN, delay=8.0) as url:
            result = cli("validate", EXAMPLE, "--opa-url", url, "--opa-token", TOKEN)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.output
    assert TOKEN not in result.output
    assert result.stdout == ""


def test_wrong_token_is_a_clear_error(cli):
    with opa_server(token=TOKEN) as url:
        result = cli("validate", EXAMPLE, "--opa-url", url, "--opa-token", "wrong")
    assert result.exit_code == 2
    assert "OPA server" in result.stderr


def test_bad_url_is_a_usage_error(cli):
    result = cli("validate", EXAMPLE, "--opa-url", "ftp://example")
    assert result.exit_code == 2
    assert "--opa-url must be an http(s) URL" in result.stderr
