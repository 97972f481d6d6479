"""The compliance report (Markdown, HTML) and OSCAL Assessment Results of a plan."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from planner import load_spec
from planner.pipeline import plan
from planner.policy.findings import Status
from planner.render.oscal import EPOCH, NAMESPACE, control_token, render_oscal, uuid5_text
from planner.render.report import SECTIONS, md_escape, render_html, render_markdown
from planner.spec.models import Severity
from tests.support.tools import (
    check_jsonschema,
    require_check_jsonschema,
    require_chromium,
    require_oscal_ar_schema,
    run_chromium,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "community-hospital": "examples/community-hospital.yaml",
    "academic-medical-center": "examples/academic-medical-center",
    "pharma-eu-us": "examples/pharma-eu-us.yaml",
}
HOSTILE = "<script>alert(1)</script> </td> | pipe\nsecond line `tick` {{ 7*7 }} ${x} [link](javascript:alert(1)) *b* _u_ &lt;"
TIMESTAMP = "2026-02-03T04:05:06Z"


@pytest.fixture(scope="module")
def results():
    return {name: plan(load_spec([str(REPO / path)])) for name, path in EXAMPLES.items()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The community hospital with hostile free text everywhere a spec allows it."""
    data = yaml.safe_load((REPO / EXAMPLES["community-hospital"]).read_text(encoding="utf-8"))
    data["metadata"] = {"name": HOSTILE, "owner": HOSTILE, "description": HOSTILE}
    for section in ("datasets", "workloads", "flows"):
        for item in data[section]:
            item["description"] = HOSTILE
    for workload in data["workloads"]:
        workload["team"] = HOSTILE
    data["waivers"] = [
        {
            "rule": "MP-PLAT-HA-001",
            "subject": "workload/cxr-triage",
            "justification": HOSTILE,
            "approved_by": HOSTILE,
            "expires": dt.date(2099, 12, 31),
            "ticket": HOSTILE.replace("\n", " "),
        },
        {
            "rule": "MP-HIPAA-TX-001",
            "subject": "flow/triage-flags-to-ehr",
            "justification": "A waiver from long ago.",
            "approved_by": "former-ciso@riverbend-health.example",
            "expires": dt.date(2020, 1, 31),
        },
    ]
    path = tmp_path_factory.mktemp("hostile") / "hostile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return plan(load_spec([str(path)]))


# --------------------------------------------------------------------------- helpers


class _Dom(HTMLParser):
    """Elements, attributes and text of an HTML document (stdlib parser)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if a.get("id")}

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)

    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _remote_references(html: str) -> list[str]:
    dom = _Dom(html)
    refs = [v for _, attrs in dom.tags for k, v in attrs.items() if k in ("src", "href", "xlink:href", "action", "srcset") and v]
    refs += re.findall(r"url\(\s*['\"]?([^)'\"]+)", html)
    refs += re.findall(r"@import\s+['\"]?([^;'\"]+)", html)
    return [r for r in refs if re.match(r"(?i)\s*(https?:)?//", r)]


def _table_blocks(markdown: str) -> list[list[str]]:
    blocks, current = [], []
    in_fence = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.startswith("|"):
            current.append(line)
            continue
        if current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _cells(row: str) -> int:
    return len(re.split(r"(?<!\\)\|", row.strip())) - 2


def _table_widths(html: str) -> list[set[int]]:
    """For each table, the widths of its rows (cells, counting colspan)."""
    out = []
    for table in re.findall(r"<table[^>]*>(.*?)</table>", html, flags=re.S):
        widths = set()
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, flags=re.S):
            cells = re.findall(r"<t[dh](?:\s[^>]*)?>", row)
            widths.add(sum(int(m.group(1)) if (m := re.search(r'colspan="(\d+)"', c)) else 1 for c in cells))
        out.append(widths)
    return out


def _chromium(args: list[str]):
    return run_chromium(["--disable-component-update", "--disable-sync", *args], timeout=60)


def _dump_dom(path: Path):
    """The DOM after load, and the console messages Chromium logged."""
    res = _chromium(["--enable-logging=stderr", "--v=0", "--dump-dom", path.as_uri()])
    assert res.ok, res.describe()
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line]
    return res.stdout, console


# --------------------------------------------------------------------------- Markdown


@pytest.mark.parametrize("name", EXAMPLES)
def test_markdown_has_every_section_heading(results, name):
    text = render_markdown(results[name])
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == [title for _, title in SECTIONS]


@pytest.mark.parametrize("name", EXAMPLES)
def test_markdown_tables_keep_their_column_count(results, name):
    for block in _table_blocks(render_markdown(results[name])):
        widths = {_cells(row) for row in block}
        assert len(widths) == 1, block


def test_markdown_lists_scope_verdict_and_waiver_of_the_academic_center(results):
    text = render_markdown(results["academic-medical-center"])
    r = results["academic-medical-center"]
    for i in r.validation.inputs:
        assert f"| {i.path} | {i.sha256} |" in text
    for b in r.validation.bundles:
        assert f"| {b['name']} | {b['revision']} |" in text
    assert "| Solver | highs" in text and "| Gap | 0.00% |" in text
    assert "**Compliant** at fail\\_on high" not in text  # template text is not escaped
    assert "**Compliant** at fail_on high" in text
    assert "| applied | MP-HIPAA-TX-001 | flow/legacy-hl7 | ciso@lakeshore-amc.example | 2027-03-31 | SEC-2291 |" in text
    assert "```mermaid\nflowchart LR" in text
    assert "linkStyle 0 stroke:#c62828" in text  # legacy-hl7: PHI, encryption none


def test_markdown_verdict_names_unplaced_workloads(results):
    text = render_markdown(results["community-hospital"])
    assert "**Not compliant**: 1 open finding(s) at or above high." in text
    assert "| cxr-triage | 2 of 2 | cxr-triage: 1/1 sites admissible; ha-spread" in text


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("a|b", "a\\|b"),
        ("<script>", "&lt;script&gt;"),
        ("one\ntwo", "one two"),
        ("`x` *y* _z_ [l](u)", "\\`x\\` \\*y\\* \\_z\\_ \\[l\\](u)"),
        ("# heading", "\\# heading"),
        ("1. item", "1\\. item"),
        ("&amp; & x", "&amp;amp; & x"),
        ("https://evil.example", "https\\://evil.example"),
        ("${x}", "\\${x}"),
        ("0.1.0 and 80.0 GB", "0.1.0 and 80.0 GB"),
    ],
)
def test_md_escape(raw, escaped):
    assert md_escape(raw) == escaped


def _md_escape_reference(value: object) -> str:
    """md_escape written plainly, every step on every text (md_escape skips the steps that change nothing)."""
    text = " ".join(str(value).split())
    text = re.sub(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{0,31});", lambda m: "&amp;" + m.group(0)[1:], text)
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([\\`*_\[\]|~$])", r"\\\1", text)
    text = re.sub(r"(?i)\b(https?|ftp|mailto|file|javascript|data)(:)", r"\1\\\2", text)
    text = re.sub(r"(?i)\bwww\.", r"www\\.", text)
    text = re.sub(r"^(#|[-+=])", r"\\\1", text)
    return re.sub(r"^(\d+)([.)])(?=\s|$)", r"\1\\\2", text)


_MD_TRICKY = st.lists(
    st.sampled_from(
        [*"aW.:/_-#+=1 0)&;<>|~$`*[]\\\u2192\n", "www.", "Www.", "http:", "https:", "javascript:", "data:", "&amp;", "&#12;", "1.", "---"]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=2000, deadline=None, derandomize=True, database=None)
@given(st.one_of(_MD_TRICKY, st.text(max_size=20)))
def test_md_escape_matches_its_plain_definition(text):
    assert md_escape(text) == _md_escape_reference(text)


@settings(max_examples=300)
@given(st.text(max_size=60))
def test_oscal_uuids_are_the_standard_version_5_uuids(name):
    import uuid

    assert uuid5_text(name) == str(uuid.uuid5(NAMESPACE, name))


# --------------------------------------------------------------------------- HTML


@given(st.one_of(st.text(max_size=30), st.sampled_from(["<b>&amp;'\"", "-", ""]), st.integers(), st.floats(), st.booleans(), st.none()))
def test_the_html_reports_escape_is_markupsafes(value):
    import markupsafe

    from planner.render import report

    for _ in range(2):  # escaped, then taken from what was escaped
        escaped = report._escape(value)
        assert type(escaped) is markupsafe.Markup and escaped == markupsafe.escape(value)
    report._escaped.clear()
    assert report._escape(markupsafe.Markup("<i>kept</i>")) == "<i>kept</i>"


def test_the_html_report_escapes_through_its_own_escape_and_forgets_after(results, hostile):
    from planner.render import report

    names = report._html_template().root_render_func.__globals__
    assert names["escape"] is report._escape
    for result in [*results.values(), hostile]:
        render_html(result)
        assert report._escaped == {}


@pytest.mark.parametrize("name", EXAMPLES)
def test_html_is_self_contained(results, name):
    html = render_html(results[name])
    assert _remote_references(html) == []
    dom = _Dom(html)
    assert dom.count("script") == 0 and dom.count("link") == 0 and dom.count("img") == 0
    assert "@media print" in html
    assert "default-src 'none'" in html  # CSP: even an injected reference would not load


@pytest.mark.parametrize("name", EXAMPLES)
def test_html_sections_render_in_chromium_without_console_errors(results, name, tmp_path):
    require_chromium()
    page = tmp_path / "report.html"
    page.write_text(render_html(results[name]), encoding="utf-8")
    dom_text, console = _dump_dom(page)
    assert console == []
    dom = _Dom(dom_text)
    sections = {a["id"] for t, a in dom.tags if t == "section" and "id" in a}
    assert sections == {key for key, _ in SECTIONS}
    text = dom.plain()
    for _, title in SECTIONS:
        assert title in text
    assert dom.count("svg") == 1 and dom.count("script") == 0


def test_chromium_console_check_sees_errors(tmp_path):
    """The console check above is not vacuous: a page that logs an error is caught."""
    require_chromium()
    page = tmp_path / "noisy.html"
    page.write_text("<!DOCTYPE html><title>x</title><script>console.error('boom')</script>", encoding="utf-8")
    _, console = _dump_dom(page)
    assert any("boom" in line for line in console)


def test_html_flow_map_colours_flows_by_encryption(results):
    html = render_html(results["academic-medical-center"])
    arrow = r'<g class="arrow">\s*<title>([^<]*)</title>\s*<path class="flow" d="[^"]+" stroke="([^"]+)"'
    arrows = re.findall(arrow, html)
    by_label = {title.split(":")[0]: colour for title, colour in arrows}
    assert by_label["legacy-hl7"] == "#c62828"  # PHI, encryption_in_transit none
    assert by_label["wsi-deid-export"] == "#2e7d32"  # tls1.3
    assert by_label["pacs-radiology \u2192 ct-triage"] in {"#00838f", "#78909c"}  # MACsec link, or on site
    assert len(arrows) == 7  # 3 declared flows, 4 workload inputs (ct-triage runs on two sites)


def test_html_hopper_or_blackwell_answers_from_the_plan(results):
    community = _Dom(render_html(results["community-hospital"])).plain()
    # 70B fp8 with a 32k KV cache for 16 sequences: 4 x H100 per replica, 2 x B200 (catalog reference).
    assert "ehr-note-assistant" in community
    assert "yes: 4 GPUs per replica on H100, 2 on B200" in community
    academic = _Dom(render_html(results["academic-medical-center"])).plain()
    assert "H100 24 \u2192 7 replicas, H200 30 \u2192 5 replicas, B200 42 \u2192 4 replicas" in academic
    assert "11 ms of 15 ms to inputs at aws-use1, margin 4 ms" in academic
    assert "aws-use1/p5 is 100% used by computational-pathology" in academic


def test_screenshot_of_the_academic_center_report(results, tmp_path):
    require_chromium()
    page = tmp_path / "report.html"
    page.write_text(render_html(results["academic-medical-center"], timestamp=TIMESTAMP), encoding="utf-8")
    shot = tmp_path / "report.png"
    res = _chromium([f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()])
    assert res.ok, res.describe()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


# --------------------------------------------------------------------------- OSCAL


@pytest.mark.parametrize("name", EXAMPLES)
def test_oscal_validates_against_nist_schema(results, name):
    require_check_jsonschema()
    schema = require_oscal_ar_schema()
    doc = json.loads(render_oscal(results[name], timestamp=TIMESTAMP))
    res = check_jsonschema(schema, doc)
    assert res.ok, res.describe()


@pytest.mark.parametrize("name", EXAMPLES)
def test_oscal_findings_match_the_plan_result(results, name):
    r = results[name]
    ar = json.loads(render_oscal(r))["assessment-results"]
    (result,) = ar["results"]
    observed = {
        next(p["value"] for p in o["props"] if p["name"] == "fingerprint"): o for o in result.get("observations", [])
    }
    assert set(observed) == {f.fingerprint for f in r.findings}
    for f in r.findings:
        o = observed[f.fingerprint]
        assert o["methods"] == ["TEST"] and o["description"] == f.message
        if f.location:
            assert o["relevant-evidence"][0]["href"] == f"{f.location.file}#L{f.location.line}"
    states = {x["target"]["target-id"]: x["target"]["status"]["state"] for x in result.get("findings", [])}
    open_controls = {
        control_token(c)
        for f in r.findings
        if f.status in (Status.fail, Status.error) and f.severity is not Severity.info
        for c in f.controls
    }
    assert {k for k, s in states.items() if s == "not-satisfied"} == open_controls
    cited = {control_token(c) for rule in r.validation.rules for c in rule.controls}
    assert set(states) == cited
    risks = result.get("risks", [])
    assert len(risks) == sum(1 for f in r.findings if f.status is Status.waived)


def test_oscal_states_per_example(results):
    def states(name):
        (result,) = json.loads(render_oscal(results[name]))["assessment-results"]["results"]
        return {x["title"]: x["target"]["status"]["state"] for x in result["findings"]}

    community = states("community-hospital")
    assert community["HIPAA 164.308(a)(7)(ii)(C)"] == "not-satisfied"  # MP-PLAT-HA-001 on cxr-triage
    assert [c for c, s in community.items() if s == "not-satisfied"] == ["HIPAA 164.308(a)(7)(ii)(C)"]
    academic = states("academic-medical-center")
    assert academic["HIPAA 164.312(e)(1)"] == "satisfied"  # MP-HIPAA-TX-001 is waived
    assert academic["HIPAA 164.308(a)(7)(i)"] == "satisfied"  # MP-PLAT-CONC-001 is info
    pharma = states("pharma-eu-us")
    assert pharma["GDPR Art. 49"] == "not-satisfied"  # MP-GDPR-XFER-002 on pv-case-reports


def test_oscal_waiver_is_a_risk_with_who_and_until_when(results):
    (result,) = json.loads(render_oscal(results["academic-medical-center"]))["assessment-results"]["results"]
    (risk,) = result["risks"]
    props = {p["name"]: p["value"] for p in risk["props"]}
    assert risk["status"] == "deviation-approved"
    assert props["approved-by"] == "ciso@lakeshore-amc.example" and props["waiver-expires"] == "2027-03-31"
    assert risk["deadline"] == "2027-03-31T23:59:59Z"
    finding = next(x for x in result["findings"] if x["title"] == "HIPAA 164.312(e)(1)")
    assert finding["related-risks"] == [{"risk-uuid": risk["uuid"]}]
    assert "approved by ciso@lakeshore-amc.example until 2027-03-31" in finding["remarks"]


@pytest.mark.parametrize(
    ("control", "token"),
    [("HIPAA 164.312(e)(2)(ii)", "hipaa-164.312-e-2-ii"), ("GDPR Art. 44", "gdpr-art-44"), ("42 CFR 2", "control-42-cfr-2")],
)
def test_control_token(control, token):
    assert control_token(control) == token


# --------------------------------------------------------------------------- hostile text


def test_hostile_text_is_literal_in_html(hostile, tmp_path):
    html = render_html(hostile)
    dom = _Dom(html)
    assert dom.count("script") == 0
    assert _remote_references(html) == []
    assert not any(a.get("href", "").startswith("javascript") for _, a in dom.tags)
    text = dom.plain()
    assert _one_line(HOSTILE) in text
    assert "{{ 7*7 }}" in text and "${x}" in text
    # "</td>" stayed text: every row of every table is as wide as its header.
    assert "&lt;/td&gt;" in html
    assert all(len(widths) == 1 for widths in _table_widths(html))
    # The expired waiver stands out.
    assert re.search(r'<tr class="expired">\s*<td><span class="badge bad">EXPIRED</span>', html)


def test_hostile_text_is_literal_in_chromium(hostile, tmp_path):
    require_chromium()
    page = tmp_path / "hostile.html"
    page.write_text(render_html(hostile), encoding="utf-8")
    dom_text, console = _dump_dom(page)
    assert console == []
    assert "<script" not in dom_text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom_text
    assert _one_line(HOSTILE) in _Dom(dom_text).plain()


def test_hostile_text_keeps_markdown_tables_intact(hostile):
    text = render_markdown(hostile)
    assert "<script" not in text
    for block in _table_blocks(text):
        assert len({_cells(row) for row in block}) == 1, block
    assert text.count("## ") >= len(SECTIONS)
    md = pytest.importorskip("markdown_it").MarkdownIt("commonmark").enable("table").enable("strikethrough")
    rendered = md.render(text)
    dom = _Dom(rendered)
    assert dom.count("script") == 0 and dom.count("em") == 0 and dom.count("a") == 0
    assert _one_line(HOSTILE) in dom.plain()
    for table in re.findall(r"<table>(.*?)</table>", rendered, flags=re.S):
        head = len(re.findall(r"<th[ >]", table))
        for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)[1:]:
            assert len(re.findall(r"<td[ >]", row)) == head


def test_hostile_text_round_trips_in_oscal(hostile):
    require_check_jsonschema()
    schema = require_oscal_ar_schema()
    text = render_oscal(hostile, timestamp=TIMESTAMP)
    doc = json.loads(text)
    strings: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            strings.append(node)

    walk(doc)
    assert HOSTILE in strings  # the waiver's justification, exactly
    assert any(f"Waived by {HOSTILE} until 2099-12-31" in s for s in strings)
    assert any(HOSTILE in s and s.startswith("Deployment: ") for s in strings)
    res = check_jsonschema(schema, doc)
    assert res.ok, res.describe()


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("render", [render_markdown, render_html, render_oscal])
def test_rendering_is_deterministic(results, render):
    r = results["academic-medical-center"]
    assert render(r) == render(r)
    fresh = plan(load_spec([str(REPO / EXAMPLES["academic-medical-center"])]))
    assert render(fresh) == render(r)


@pytest.mark.parametrize("render", [render_markdown, render_html, render_oscal])
def test_timestamp_appears_only_when_given(results, render):
    r = results["community-hospital"]
    assert TIMESTAMP in render(r, timestamp=TIMESTAMP)
    plain = render(r)
    assert TIMESTAMP not in plain
    assert not re.search(r"20\d\d-\d\d-\d\dT\d\d:\d\d", plain.replace(EPOCH, ""))


def test_oscal_without_timestamp_uses_the_epoch(results):
    ar = json.loads(render_oscal(results["community-hospital"]))["assessment-results"]
    assert ar["metadata"]["last-modified"] == EPOCH == ar["results"][0]["start"]
    assert ar["metadata"]["oscal-version"] == "1.1.2"


def test_oscal_rejects_a_timestamp_that_is_not_iso_8601(results):
    with pytest.raises(ValueError, match="ISO 8601"):
        render_oscal(results["community-hospital"], timestamp="yesterday")
