"""Plan directories: written whole or not at all, covered by a manifest,
optionally signed, and verified."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from planner.errors import OutputError
from planner.plandir import MANIFEST, verify_plan_dir, write_plan_dir

FILES = {"plan.json": "{}\n", "helm/dc1/Chart.yaml": "name: dc1\n", "report.md": "# r\n"}


def test_manifest_covers_every_file_and_verify_detects_changes(tmp_path):
    out = tmp_path / "plan"
    write_plan_dir(out, FILES)
    lines = (out / MANIFEST).read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == sorted(FILES)
    assert verify_plan_dir(out).ok
    (out / "report.md").write_text("# edited\n")
    (out / "extra.txt").write_text("x")
    (out / "plan.json").unlink()
    result = verify_plan_dir(out)
    assert (result.changed, result.added, result.removed) == (["report.md"], ["extra.txt"], ["plan.json"])


@pytest.mark.parametrize("fail_after", [0, 1, 2])
def test_failure_mid_write_keeps_the_previous_directory(tmp_path, fail_after):
    out = tmp_path / "plan"
    write_plan_dir(out, {"old.txt": "previous\n"})
    with pytest.raises(OutputError):
        write_plan_dir(out, FILES, _fail_after=fail_after)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["plan"]  # no temporary left behind


def test_failure_on_first_write_leaves_nothing(tmp_path):
    out = tmp_path / "plan"
    with pytest.raises(OutputError):
        write_plan_dir(out, FILES, _fail_after=0)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_paths_outside_the_directory_are_refused(tmp_path):
    with pytest.raises(OutputError):
        write_plan_dir(tmp_path / "plan", {"../escape.txt": "x"})


def _keys(tmp_path):
    key = Ed25519PrivateKey.generate()
    private = tmp_path / "key.pem"
    public = tmp_path / "key.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def test_signed_manifest_detects_a_rewritten_manifest(tmp_path):
    private, public = _keys(tmp_path)
    out = tmp_path / "plan"
    write_plan_dir(out, FILES, sign_key=private)
    assert verify_plan_dir(out, public).signature == "valid"
    # An attacker edits a file and regenerates the manifest: hashes match, the signature does not.
    (out / "report.md").write_text("# forged\n")
    from planner.plandir import manifest_text

    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file() and not p.name.startswith("MANIFEST")}
    (out / MANIFEST).write_text(manifest_text(files))
    result = verify_plan_dir(out, public)
    assert result.changed == [] and result.signature == "invalid" and not result.ok


def test_verify_cli(cli, tmp_path):
    private, public = _keys(tmp_path)
    out = tmp_path / "plan"
    write_plan_dir(out, FILES, sign_key=private)
    assert cli("verify", out, "--public-key", public).exit_code == 0
    (out / "plan.json").write_text("[]")
    result = cli("verify", out, "--public-key", public)
    assert result.exit_code == 1 and "changed: plan.json" in result.output
