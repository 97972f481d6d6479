"""Plan directories: written whole or not at all, covered by a manifest,
optionally signed, and verified."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from planner import plandir
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


def _many(prefix: str, n: int) -> dict[str, str]:
    return {f"{prefix}/d{i % 37}/f{i}.txt": f"{prefix} {i}\n" for i in range(n)}


def test_parts_are_written_as_they_come_into_one_directory(tmp_path, monkeypatch):
    """A large part goes to the writer threads while the next is produced; the result is the same."""
    monkeypatch.setattr(plandir, "WRITERS_FROM", 50)
    produced = []

    def parts():
        for prefix, n in (("helm", 400), ("terraform", 60), ("small", 3)):
            produced.append(prefix)
            yield _many(prefix, n)
        yield FILES

    write_plan_dir(tmp_path / "streamed", parts())
    write_plan_dir(tmp_path / "whole", {k: v for part in parts() for k, v in part.items()})
    streamed, whole = tmp_path / "streamed", tmp_path / "whole"
    assert (streamed / MANIFEST).read_bytes() == (whole / MANIFEST).read_bytes()
    assert len((streamed / MANIFEST).read_text().splitlines()) == 400 + 60 + 3 + len(FILES)
    assert verify_plan_dir(streamed).ok
    assert (streamed / "helm/d5/f5.txt").read_text() == "helm 5\n"


@pytest.mark.parametrize("threads", [True, False])
def test_a_part_that_fails_keeps_the_previous_directory(tmp_path, monkeypatch, threads):
    """Rendering fails after a first part was (perhaps still being) written: nothing changes."""
    monkeypatch.setattr(plandir, "WRITERS_FROM", 50 if threads else 10**9)
    out = tmp_path / "plan"
    write_plan_dir(out, {"old.txt": "previous\n"})

    def parts():
        yield _many("helm", 400)
        raise RuntimeError("a renderer failed")

    with pytest.raises(RuntimeError):
        write_plan_dir(out, parts())
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["plan"]


def test_a_writer_thread_failing_is_an_output_error(tmp_path, monkeypatch):
    monkeypatch.setattr(plandir, "WRITERS_FROM", 50)
    out = tmp_path / "plan"
    write_plan_dir(out, {"old.txt": "previous\n"})
    with pytest.raises(OutputError, match="previous contents kept"):
        write_plan_dir(out, [{"helm": "a file where a directory must go\n"}, _many("helm", 400)])
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["plan"]


def test_a_file_in_two_parts_is_refused(tmp_path):
    with pytest.raises(OutputError, match="twice"):
        write_plan_dir(tmp_path / "plan", [FILES, {"report.md": "again\n"}])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../b", "/etc/passwd", "//x", "", ".", "./", "a/./..", "MANIFEST.sha256", "MANIFEST.sha256.sig"])
def test_paths_outside_the_directory_or_reserved_are_refused(tmp_path, name):
    with pytest.raises(OutputError, match="refusing"):
        write_plan_dir(tmp_path / "plan", {name: "x"})
    assert list(tmp_path.iterdir()) == []


def test_paths_inside_the_directory_are_written_where_they_say(tmp_path):
    write_plan_dir(tmp_path / "plan", {"./a//b.txt": "x", "..c/d": "y"})
    assert (tmp_path / "plan" / "a" / "b.txt").read_text() == "x" and (tmp_path / "plan" / "..c" / "d").read_text() == "y"


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
