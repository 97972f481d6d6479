"""Renderers of a validation result: text, JSON, SARIF 2.1.0 and JUnit XML.

Pure functions from a ValidationResult to text; output is sorted so that the
same inputs give byte-identical files.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import click

from planner import __version__
from planner.errors import MedplanError
from planner.policy.findings import Finding, Status
from planner.render.jsontext import dumps_indented
from planner.spec.models import Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.5"}
INFO_URI = "https://medplan.dev"


def render(result, fmt: str, color: bool | None = None) -> str:
    if fmt == "json":
        return to_json(result)
    if fmt == "sarif":
        return to_sarif(result)
    if fmt == "junit":
        return to_junit(result)
    return to_text(result, color=color)


def _where(f: Finding) -> str:
    return f"{f.location.file}:{f.location.line}:{f.location.column}" if f.location else "<spec>"


def to_text(result, color: bool | None = None) -> str:
    styles = {"critical": "red", "high": "red", "medium": "yellow", "low": "blue", "info": "white"}

    def style(text: str, fg: str, bold: bool = False) -> str:
        return click.style(text, fg=fg, bold=bold) if color else text

    lines = []
    for f in result.findings:
        tag = f.status.value.upper() if f.status is not Status.fail else f.severity.value.upper()
        head = style(f"{tag:<8}", styles[f.severity.value] if f.status is Status.fail else "cyan", bold=True)
        lines.append(f"{_where(f)}: {head} {f.rule} {f.subject}: {_one_line(f.message)}")
        if f.status is Status.waived and f.waiver:
            lines.append(f"    waived by {_one_line(f.waiver.approved_by)} until {f.waiver.expires}: {_one_line(f.waiver.justification)}")
        elif f.remediation and f.status is Status.fail:
            lines.append(f"    fix: {_one_line(f.remediation)}")
    s = result.summary
    verdict = style("FAIL", "red", True) if result.failed else style("PASS", "green", True)
    if result.engine.get("name") == "none":
        lines.append(f"{verdict}: spec is valid (syntax, schema and references; policies not run)")
    else:
        lines.append(
            f"{verdict}: {s['rules']} rules, {s['failed']} failed, {s['waived']} waived, {s['passed']} passed; "
            f"{len(result.failing)} finding(s) at or above {result.fail_on.value}"
        )
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    # A message or justification must not forge extra report lines.
    return " ".join(str(text).split())


def _document(result) -> dict:
    return {
        "medplan": __version__,
        "inputs": [{"path": i.path, "sha256": i.sha256} for i in result.inputs],
        "engine": result.engine,
        "bundles": result.bundles,
        "fail_on": result.fail_on.value,
        "verdict": "fail" if result.failed else "pass",
        "summary": result.summary,
        "findings": [f.as_dict() for f in result.findings],
        "errors": [],
    }


def to_json(result) -> str:
    return json.dumps(_document(result), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def error_json(exc: MedplanError, paths: list[str]) -> str:
    doc = {
        "medplan": __version__,
        "inputs": [{"path": p, "sha256": None} for p in paths],
        "engine": None,
        "summary": None,
        "findings": [],
        "errors": [
            {"message": d.message, "path": d.path, "location": d.location.as_dict()} for d in exc.diagnostics
        ]
        or [{"message": exc.message, "path": "", "location": None}],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def to_sarif(result) -> str:
    rules = sorted(result.rules, key=lambda r: r.id)
    index = {r.id: i for i, r in enumerate(rules)}
    sarif_rules = []
    for r in rules:
        sarif_rules.append(
            {
                "id": r.id,
                "name": "".join(w.capitalize() for w in r.name.split("_")) or r.id,
                "shortDescription": {"text": r.title},
                "fullDescription": {"text": r.description or r.title},
                "help": {
                    "text": r.remediation or r.title,
                    "markdown": f"**{r.title}**\n\n{r.description}\n\nControls: {', '.join(r.controls) or 'none'}\n\n"
                    f"Remediation: {r.remediation or 'n/a'}",
                },
                "defaultConfiguration": {"level": SARIF_LEVEL[r.severity.value]},
                "properties": {
                    "tags": sorted({*r.controls, "compliance", r.bundle or "medplan"}),
                    "security-severity": SECURITY_SEVERITY[r.severity.value],
                    "precision": "high",
                    "severity": r.severity.value,
                },
            }
        )
    results = []
    for f in result.findings:
        item = {
            "ruleId": f.rule,
            "level": SARIF_LEVEL[f.severity.value] if f.status is not Status.error else "error",
            "message": {"text": f.message},
            "partialFingerprints": {"medplanFingerprint/v1": f.fingerprint},
            "properties": {"subject": str(f.subject), "status": f.status.value, "controls": f.controls},
            "locations": [
                {
                    "logicalLocations": [{"fullyQualifiedName": str(f.subject), "kind": f.subject.kind}],
                    **(
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": f.location.file},
                                "region": {"startLine": f.location.line, "startColumn": f.location.column},
                            }
                        }
                        if f.location
                        else {}
                    ),
                }
            ],
        }
        if f.rule in index:
            item["ruleIndex"] = index[f.rule]
        if f.status is Status.waived and f.waiver:
            item["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": f"{f.waiver.justification} (approved by {f.waiver.approved_by}, expires {f.waiver.expires})",
                }
            ]
        results.append(item)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "medplan",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFO_URI,
                        "rules": sarif_rules,
                    }
                },
                "artifacts": [
                    {"location": {"uri": i.path}, "hashes": {"sha-256": i.sha256}} for i in result.inputs
                ],
                "invocations": [{"executionSuccessful": True}],
                "results": results,
                "properties": {"engine": result.engine, "failOn": result.fail_on.value},
            }
        ],
    }
    return dumps_indented(doc) + "\n"


def to_junit(result) -> str:
    by_rule: dict[str, list[Finding]] = {}
    for f in result.findings:
        by_rule.setdefault(f.rule, []).append(f)
    cases = []
    for rule in sorted(result.rules, key=lambda r: r.id):
        findings = by_rule.get(rule.id, [])
        if not findings:
            cases.append((rule, None))
        cases.extend((rule, f) for f in findings)
    failures = sum(1 for _, f in cases if f is not None and f.status is Status.fail)
    errors = sum(1 for _, f in cases if f is not None and f.status is Status.error)
    skipped = sum(1 for _, f in cases if f is not None and f.status is Status.waived)
    suites = ET.Element("testsuites", name="medplan", tests=str(len(cases)), failures=str(failures), errors=str(errors))
    suite = ET.SubElement(
        suites, "testsuite", name="medplan validate", tests=str(len(cases)), failures=str(failures),
        errors=str(errors), skipped=str(skipped),
    )
    for rule, f in cases:
        name = str(f.subject) if f is not None else "all subjects"
        case = ET.SubElement(suite, "testcase", classname=f"{rule.id} {_xml_text(rule.title)}", name=name)
        if f is None:
            continue
        body = f"{_where(f)}: {f.message}\ncontrols: {', '.join(f.controls)}\nremediation: {f.remediation}"
        if f.status is Status.fail:
            fail = ET.SubElement(case, "failure", message=_xml_text(f.message), type=f.severity.value)
            fail.text = _xml_text(body)
        elif f.status is Status.error:
            err = ET.SubElement(case, "error", message=_xml_text(f.message), type="rule-error")
            err.text = _xml_text(body)
        else:
            ET.SubElement(case, "skipped", message=_xml_text(f"waived: {f.waiver.justification if f.waiver else ''}"))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _xml_text(text: str) -> str:
    # XML 1.0 cannot carry most control characters, even escaped.
    return "".join(ch if ch in "\t\n\r" or ord(ch) >= 0x20 else f"\\x{ord(ch):02x}" for ch in str(text))


__all__ = ["Severity", "error_json", "render", "to_json", "to_junit", "to_sarif", "to_text"]
