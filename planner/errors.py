"""medplan's exceptions and the located diagnostics they carry.

Hierarchy::

    MedplanError                 anything medplan reports instead of a traceback
    ├── InputError               the spec (or a plan file) is unreadable or invalid
    ├── PolicyError              a policy does not load: syntax, metadata, duplicate ids
    ├── EngineError              a policy engine failed: OPA unreachable, bad answer
    └── OutputError              an output could not be written

Every one of them means "could not be checked" (exit code 2). Third-party
errors are re-raised as one of these ``from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Diagnostic",
    "EngineError",
    "InputError",
    "Location",
    "MedplanError",
    "OutputError",
    "PolicyError",
]


@dataclass(frozen=True, order=True)
class Location:
    """A place in an input file; line and column are 1-based."""

    file: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.column}


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in an input, with where it is and what was expected."""

    location: Location
    message: str
    path: str = ""

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.location}: {where}{self.message}"

    def sort_key(self) -> tuple:
        return (self.location.file, self.location.line, self.location.column, self.path, self.message)

    def as_dict(self) -> dict:
        return {"location": self.location.as_dict(), "path": self.path, "message": self.message}


class MedplanError(Exception):
    """Base class: medplan could not finish the check it was asked for."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.message = message
        self.diagnostics: list[Diagnostic] = sorted(diagnostics or [], key=Diagnostic.sort_key)

    def __str__(self) -> str:
        if not self.diagnostics:
            return self.message
        return "\n".join(str(d) for d in self.diagnostics)


class InputError(MedplanError):
    """The input is unreadable or does not follow the spec language."""


class PolicyError(MedplanError):
    """A policy module or bundle could not be loaded."""


class EngineError(MedplanError):
    """A policy engine could not evaluate (server down, bad answer, time-out)."""


class OutputError(MedplanError):
    """An output directory or file could not be written."""


@dataclass
class DiagnosticList:
    """Collects diagnostics so that one run reports all of them."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, location: Location, message: str, path: str = "") -> None:
        self.items.append(Diagnostic(location, message, path))

    def __bool__(self) -> bool:
        return bool(self.items)
