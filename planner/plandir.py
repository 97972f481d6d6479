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
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from planner.errors import Diagnostic, InputError, Location, OutputError

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sha256.sig"


def _check_relative(name: str) -> None:
    # PurePosixPath(name).parts without the path object (10,000 files and more in a large plan)
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts or not parts or name in (MANIFEST, SIGNATURE):
        raise OutputError(f"refusing to write {name!r} (outside the plan directory or reserved)")


def manifest_text(files: dict[str, bytes]) -> str:
    """sha256sum-compatible lines for every file, sorted by path."""
    return _manifest({name: hashlib.sha256(content).hexdigest() for name, content in files.items()})


def _manifest(digests: dict[str, str]) -> str:
    return "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))


def write_plan_dir(
    out: Path, files: Mapping[str, str | bytes] | Iterable[Mapping[str, str | bytes]], *, sign_key: Path | None = None,
    _fail_after: int | None = None,
) -> None:
    """Write ``files`` (relative POSIX path -> content) as directory ``out``, atomically.

    ``files`` may also be an iterable of such mappings, which are written as
    they come: a renderer can produce the next while the last is stored.
    ``_fail_after`` injects a failure after that many files (tests only).
    """
    out = Path(out)
    parts = [files] if isinstance(files, Mapping) else files
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
        with _Writer(str(tmp), _fail_after) as writer:
            for part in parts:
                writer.add(part)
            manifest = writer.manifest()
        _write_file(f"{tmp}/{MANIFEST}", manifest)
        if signer is not None:
            _write_file(f"{tmp}/{SIGNATURE}", signer.sign(manifest).hex().encode() + b"\n")
        _swap(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise OutputError(
                "cannot write output", [Diagnostic(Location(str(out)), f"writing failed, previous contents kept: {exc.strerror or exc}")]
            ) from exc
        raise


# A plan directory of a large plan has thousands of files: each is written with
# one open, write and close, and each directory is made once. A part of
# WRITERS_FROM files or more is written by WRITERS threads (the work is the
# kernel's and sha256's, which they share between cores) while the caller
# goes on, rendering the next part.
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
WRITERS = 2
WRITERS_FROM = 1000


class _Writer:
    """Writes the parts of a plan directory under ``root`` and hashes every file for the manifest."""

    def __init__(self, root: str, fail_after: int | None = None):
        self.root = root
        self.fail_after = fail_after  # tests only: raise after that many files, in one thread
        self.written = 0  # by this thread
        self.digests: dict[str, str] = {}  # path -> sha256, filled by whichever thread wrote it
        self.names: set[str] = set()
        self.made = {""}  # directories under root that exist already
        self.stop = threading.Event()
        self.pool: ThreadPoolExecutor | None = None
        self.jobs: list = []

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if self.pool is not None:
            if kind is not None:
                self.stop.set()  # the writers stop at their next file
            self.pool.shutdown(wait=True)

    def add(self, files: Mapping[str, str | bytes]) -> None:
        items = []
        for name, content in files.items():
            _check_relative(name)
            if name in self.names:
                raise OutputError(f"refusing to write {name!r} twice")
            self.names.add(name)
            items.append((name, content.encode("utf-8") if isinstance(content, str) else content))
        if len(items) < WRITERS_FROM or WRITERS < 2 or self.fail_after is not None:
            for name, data in items:
                if self.fail_after is not None and self.written >= self.fail_after:
                    raise OSError("injected failure")
                self._write(name, data)
                self.written += 1
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="medplan-write")
        self.jobs += [self.pool.submit(self._write_all, items[i::WRITERS]) for i in range(WRITERS)]

    def _write_all(self, items: list[tuple[str, bytes]]) -> None:
        try:
            for name, data in items:
                if self.stop.is_set():
                    return
                self._write(name, data)
        except BaseException:
            self.stop.set()  # the other writers need not go on
            raise

    def _write(self, name: str, data: bytes) -> None:
        _make_dirs(self.root, name.rpartition("/")[0], self.made)
        _write_file(f"{self.root}/{name}", data)
        self.digests[name] = hashlib.sha256(data).hexdigest()  # lets go of the GIL for all but small files

    def manifest(self) -> bytes:
        """sha256sum-compatible lines for every file, sorted by path, once all are written."""
        for job in self.jobs:
            job.result()
        return _manifest(self.digests).encode()


def _write_file(path: str, content: bytes) -> None:
    fd = os.open(path, _WRITE_FLAGS, 0o666)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _make_dirs(root: str, folder: str, made: set[str]) -> None:
    """Make ``folder`` (relative to ``root``) and any parent of it not yet in ``made``.

    Safe in several threads at once: a folder another thread made in the
    meantime is taken as made."""
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
