"""Where the bundled policies and templates are: inside the installed package,
or at the top of a source checkout.
"""

from __future__ import annotations

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
