"""Writing a plan directory: all files or none, a manifest that covers every
file, an optional Ed25519 signature, and verification of all three.

The directory is written beside its destination under a temporary name and
renamed into place only when complete, so a failure or an interrupt at any
point leaves the previous directory untouched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from planner.errors import Diagnostic, InputError, Location, OutputError

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sha256.sig"


def _check_relative(name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or name in (MANIFEST, SIGNATURE):
        raise OutputError(f"refusing to write {name!r} (outside the plan directory or reserved)")


def manifest_text(files: dict[str, bytes]) -> str:
    """sha256sum-compatible lines for every file, sorted by path."""
    return "".join(f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files))


def write_plan_dir(out: Path, files: dict[str, str | bytes], *, sign_key: Path | None = None, _fail_after: int | None = None) -> None:
    """Write ``files`` (relative POSIX path -> content) as directory ``out``, atomically.

    ``_fail_after`` injects a failure after that many files (tests only).
    """
    out = Path(out)
    data = {name: (content.encode("utf-8") if isinstance(content, str) else content) for name, content in files.items()}
    for name in data:
        _check_relative(name)
    signer = _load_private_key(sign_key) if sign_key else None
    parent = out.resolve().parent
    if out.exists() and not out.is_dir():
        raise OutputError("cannot write output", [Diagnostic(Location(str(out)), "exists and is not a directory")])
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as exc:
        raise OutputError("cannot write output", [Diagnostic(Location(str(out)), f"cannot create directory: {exc.strerror or exc}")]) from exc
    try:
        root = str(tmp)
        names = sorted(data)
        made = {""}  # directories under the temporary one that exist already
        for name in names:
            _make_dirs(root, name.rpartition("/")[0], made)
        manifest = _write_files(root, names, data, _fail_after)
        _write_file(f"{root}/{MANIFEST}", manifest)
        if signer is not None:
            _write_file(f"{root}/{SIGNATURE}", signer.sign(manifest).hex().encode() + b"\n")
        _swap(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise OutputError(
                "cannot write output", [Diagnostic(Location(str(out)), f"writing failed, previous contents kept: {exc.strerror or exc}")]
            ) from exc
        raise


# A plan directory of a large plan has thousands of files: each is written with
# one open, write and close, and each directory is made once, before any file.
# From WRITERS_FROM files on, WRITERS threads write them (the work is the
# kernel's, which they share between cores) while this one hashes them.
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
WRITERS = 2
WRITERS_FROM = 1000


def _write_files(root: str, names: list[str], data: dict[str, bytes], fail_after: int | None = None) -> bytes:
    """Write every file of ``names`` under ``root`` (its directories exist); returns the manifest.

    ``fail_after`` (tests only) raises after that many files, in one thread.
    """
    if len(names) < WRITERS_FROM or WRITERS < 2 or fail_after is not None:
        for n, name in enumerate(names):
            if fail_after is not None and n >= fail_after:
                raise OSError("injected failure")
            _write_file(f"{root}/{name}", data[name])
        return manifest_text(data).encode()
    stop = threading.Event()

    def write(part: list[str]) -> None:
        for name in part:
            if stop.is_set():
                return
            _write_file(f"{root}/{name}", data[name])

    with ThreadPoolExecutor(WRITERS, thread_name_prefix="medplan-write") as pool:
        jobs = [pool.submit(write, names[i::WRITERS]) for i in range(WRITERS)]
        try:
            manifest = manifest_text(data).encode()  # sha256 lets go of the GIL: hashed while written
            for job in jobs:
                job.result()
        except BaseException:
            stop.set()  # the pool waits for the writers, which stop at their next file
            raise
    return manifest


def _write_file(path: str, content: bytes) -> None:
    fd = os.open(path, _WRITE_FLAGS, 0o666)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _make_dirs(root: str, folder: str, made: set[str]) -> None:
    """Make ``folder`` (relative to ``root``) and any parent of it not yet in ``made``."""
    missing = []
    while folder not in made:
        missing.append(folder)
        folder = folder.rpartition("/")[0]
    for folder in reversed(missing):
        try:
            os.mkdir(f"{root}/{folder}")
        except FileExistsError:
            if not os.path.isdir(f"{root}/{folder}"):
                raise
        made.add(folder)


def _swap(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.resolve().parent))
    os.rmdir(old)
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _load_private_key(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError("bad signing key", [Diagnostic(Location(str(path)), f"cannot read an unencrypted PEM private key: {exc}")]) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError("bad signing key", [Diagnostic(Location(str(path)), "the signing key must be Ed25519")])
    return key


def _load_public_key(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise InputError("bad public key", [Diagnostic(Location(str(path)), f"cannot read a PEM public key: {exc}")]) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InputError("bad public key", [Diagnostic(Location(str(path)), "the public key must be Ed25519")])
    return key


@dataclass
class Verification:
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    signature: str = "not checked"  # not checked | valid | invalid | missing

    @property
    def ok(self) -> bool:
        return not (self.changed or self.added or self.removed) and self.signature in ("not checked", "valid")


def verify_plan_dir(directory: Path, public_key: Path | None = None) -> Verification:
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise InputError("no manifest", [Diagnostic(Location(str(manifest_path)), "no MANIFEST.sha256: not a medplan plan directory")])
    manifest = manifest_path.read_bytes()
    expected: dict[str, str] = {}
    for n, line in enumerate(manifest.decode("utf-8", "replace").splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise InputError("bad manifest", [Diagnostic(Location(str(manifest_path), n, 1), "expected '<sha256>  <path>'")])
        expected[name] = digest
    present = {
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name not in (MANIFEST, SIGNATURE)
    }
    result = Verification()
    for name in sorted(expected):
        if name not in present:
            result.removed.append(name)
        elif hashlib.sha256((directory / name).read_bytes()).hexdigest() != expected[name]:
            result.changed.append(name)
    result.added = sorted(present - set(expected))
    if public_key is not None:
        sig_path = directory / SIGNATURE
        if not sig_path.is_file():
            result.signature = "missing"
        else:
            from cryptography.exceptions import InvalidSignature

            key = _load_public_key(public_key)
            try:
                key.verify(bytes.fromhex(sig_path.read_text().strip()), manifest)
                result.signature = "valid"
            except (InvalidSignature, ValueError):
                result.signature = "invalid"
    return result
