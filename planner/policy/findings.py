"""The one Finding model that Rego and Python policies produce and every
renderer consumes, and the result of a policy run.
"""

from __future__ import annotations

import hashlib
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from planner.spec.models import Severity

SUBJECT_KINDS = ("site", "pool", "link", "dataset", "workload", "flow", "waiver", "spec", "plan")


class Status(str, Enum):
    fail = "fail"
    waived = "waived"
    error = "error"


class Subject(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    id: str

    @classmethod
    def parse(cls, text: str) -> Subject:
        kind, sep, ident = str(text).partition("/")
        if not sep or kind not in SUBJECT_KINDS:
            return cls(kind="spec", id=str(text))
        return cls(kind=kind, id=ident)

    def __str__(self) -> str:
        return f"{self.kind}/{self.id}"


class FindingLocation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    line: int
    column: int


class AppliedWaiver(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    justification: str
    approved_by: str
    expires: str
    ticket: str | None = None


class Finding(BaseModel):
    """A rule's verdict on one subject."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprint: str = Field(description="Stable across runs: derived from rule id and subject only.")
    rule: str
    title: str
    severity: Severity
    status: Status
    controls: list[str]
    subject: Subject
    message: str
    location: FindingLocation | None = None
    remediation: str = ""
    stage: str = "validate"
    waiver: AppliedWaiver | None = None

    def sort_key(self) -> tuple:
        loc = self.location
        return (
            loc.file if loc else "",
            loc.line if loc else 0,
            self.rule,
            str(self.subject),
            self.message,
        )

    def as_dict(self) -> dict:
        data = self.model_dump(mode="json")
        return data


def fingerprint(rule_id: str, subject: Subject | str) -> str:
    return hashlib.sha256(f"{rule_id}\x00{subject}".encode()).hexdigest()[:32]


def at_or_above(severity: Severity, threshold: Severity) -> bool:
    return severity.rank >= threshold.rank
