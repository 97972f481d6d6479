"""Where the bundled policies and templates are: inside the installed package,
or at the top of a source checkout; and where compiled templates are kept.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _bundled(package_dir: str, source_dir: str) -> Path:
    installed = _PACKAGE / package_dir
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / source_dir


def policies_dir() -> Path:
    return _bundled("policies_bundle", "policies")


def templates_dir() -> Path:
    return _bundled("templates_bundle", "templates")


@lru_cache(maxsize=1)
def template_cache():
    """A Jinja bytecode cache for the bundled templates, or None.

    Compiling the report, Helm and Terraform templates takes about 0.3 s for
    every plan directory; loading them compiled takes milliseconds. Each is
    kept under its name and the checksum of its text, so an edited template
    is compiled again. The directory is ``$MEDPLAN_CACHE_DIR`` (empty: no
    cache), else ``$XDG_CACHE_HOME/medplan`` or ``~/.cache/medplan``, plus
    ``templates``; one that cannot be made, belongs to someone else or that
    others may write to is not used, and a file that cannot be read or
    written is compiled as if there were no cache.
    """
    from jinja2 import FileSystemBytecodeCache

    base = os.environ.get("MEDPLAN_CACHE_DIR")
    if base is None:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "medplan")
    if not base:
        return None
    directory = os.path.join(base, "templates")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        status = os.stat(directory)
    except OSError:
        return None
    getuid = getattr(os, "getuid", None)
    if (getuid is not None and status.st_uid != getuid()) or status.st_mode & 0o022:
        return None

    class _Cache(FileSystemBytecodeCache):
        def load_bytecode(self, bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # noqa: BLE001 - a damaged file (its checksum is pickled): compiled again
                bucket.reset()

        def dump_bytecode(self, bucket) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:
                pass

    return _Cache(directory)
