"""Hostile text in every free-text field comes back as data, never as code.

A spec (the pharma example plus a waiver) gets a hostile string from
``tests/fixtures/hostile_strings.json`` in every free-text field: metadata
name, owner and description, a site certification, a link carrier, dataset,
workload and flow descriptions, workload team, model name, and the waiver's
justification, approver and ticket. It is planned, every output is rendered,
and each output is parsed back with its own parser:

- JSON (plan.json, validate --format json), SARIF and OSCAL with ``json``
  (and the real schemas through check-jsonschema for one kitchen-sink spec);
- HTML with ``html.parser``: no ``<script>``, no event handlers, the same
  elements as a benign run, the text present as text;
- Markdown with markdown-it-py: no raw HTML, the same block and inline
  structure as a benign run, every table row with its header's column count;
- YAML (Helm values, Chart.yaml, and ``helm template`` output) with
  ``yaml.safe_load_all``: one document each, the text back as data;
- HCL with python-hcl2 (plus ``terraform fmt -check`` and ``terraform test``
  with the exact values): no new interpolation or directive;
- JUnit XML with ElementTree;
- terminal text (validate text, plan summary): no control characters, no
  extra lines.

Each field's expected value is the hostile string cut to the field's maximum
length. Strings with control characters other than tab, line feed and
carriage return are refused by the loader, each with a located message that
shows the character escaped.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from planner.pipeline import plan, validate
from planner.render import render_plan_files
from planner.render import validation as render_validation
from planner.render.plantext import plan_text
from planner.spec.loader import load_spec
from tests.support import tools
from tests.support.spec_fuzz import CORE_12_NON_STRINGS, dump, run_cli

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pharma-eu-us.yaml"
CORPUS = json.loads((REPO / "tests" / "fixtures" / "hostile_strings.json").read_text(encoding="utf-8"))
ACCEPTED = {c["name"]: c["text"] for c in CORPUS["accepted"]}
REFUSED = {c["name"]: c["text"] for c in CORPUS["refused"]}
TIMESTAMP = "2026-11-18T00:00:00Z"
BENIGN = "plainword"
WAIVED_RULE, WAIVED_SUBJECT = "MP-GDPR-XFER-002", "flow/pv-case-reports"

# field -> maximum length in the spec language
FIELDS = {
    "name": 200,
    "owner": 4000,
    "description": 4000,
    "certification": 64,
    "carrier": 200,
    "dataset_description": 4000,
    "workload_description": 4000,
    "team": 200,
    "model": 200,
    "flow_description": 4000,
    "justification": 4000,
    "approved_by": 200,
    "ticket": 200,
}


def fit(text: str, field: str) -> str:
    return text[: FIELDS[field]]


def norm(text: str) -> str:
    """Whitespace collapsed, as one-line renderers (cells, titles) show text."""
    return " ".join(text.split())


def spec_with(text: str) -> dict:
    """The pharma example with ``text`` (cut to size) in every free-text field."""
    spec = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    spec = copy.deepcopy(spec)
    spec["metadata"] = {"name": fit(text, "name"), "owner": fit(text, "owner"), "description": fit(text, "description")}
    spec["sites"][0]["certifications"].append(fit(text, "certification"))
    spec["links"][0]["carrier"] = fit(text, "carrier")
    for d in spec["datasets"]:
        d["description"] = fit(text, "dataset_description")
    for w in spec["workloads"]:
        w["description"] = fit(text, "workload_description")
        w["team"] = fit(text, "team")
        w["model"]["name"] = fit(text, "model")
    for f in spec["flows"]:
        f["description"] = fit(text, "flow_description")
    spec["waivers"] = [
        {
            "rule": WAIVED_RULE,
            "subject": WAIVED_SUBJECT,
            "justification": fit(text, "justification"),
            "approved_by": fit(text, "approved_by"),
            "ticket": fit(text, "ticket"),
            "expires": dt.date(2099, 1, 1),
        }
    ]
    return spec


class Yaml12Loader(yaml.SafeLoader):
    """yaml.SafeLoader resolving plain scalars by the YAML 1.2 core schema (as Helm's Go YAML does)."""


Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in CORE_12_NON_STRINGS:
    Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


def dump_spec(spec: dict) -> str:
    return dump(spec, width=1_000_000)


def write_spec(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "spec.yaml"
    path.write_text(dump_spec(spec_with(text)), encoding="utf-8")
    return path


def render_all(path: Path) -> dict[str, str]:
    """Every output medplan writes or prints for the spec at ``path``."""
    spec = load_spec(path)
    result = plan(spec)
    files = render_plan_files(result, timestamp=TIMESTAMP)
    checked = validate(spec)
    for fmt in ("text", "json", "sarif", "junit"):
        files[f"validate.{fmt}"] = render_validation.render(checked, fmt, color=False)
    files["plan.txt"] = plan_text(result)
    files["<spec>"] = spec  # for the round-trip check
    return files


@pytest.fixture(scope="module")
def benign(tmp_path_factory):
    """The same spec with a plain word in every field: the structure to compare with."""
    return render_all(write_spec(tmp_path_factory.mktemp("benign"), BENIGN))


_PARSED: dict[tuple[str, str], object] = {}


def parsed_benign(kind: str, name: str, parse):
    """Parse a benign output once per session: the structure every case is compared with."""
    if (kind, name) not in _PARSED:
        _PARSED[(kind, name)] = parse()
    return _PARSED[(kind, name)]


# Tag and label maps drop a value that sanitising leaves empty: their keys may differ.
_LOOSE = ("plan_tags", "tags", "labels")


def shape(value):
    """The structure of parsed data with every string abstracted away."""
    if isinstance(value, dict):
        return {k: ("map" if k in _LOOSE and isinstance(v, dict) else shape(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


# --------------------------------------------------------------------------- per-format checks


def waived_finding(doc: dict) -> dict:
    found = [f for f in doc["findings"] if f["rule"] == WAIVED_RULE and f["status"] == "waived"]
    assert len(found) == 1, "the waiver must match its finding"
    return found[0]


def check_json(files, benign, text):
    for name in ("plan.json", "validate.json"):
        doc = json.loads(files[name])
        waiver = waived_finding(doc)["waiver"]
        assert waiver["justification"] == fit(text, "justification")
        assert waiver["approved_by"] == fit(text, "approved_by")
        assert waiver["ticket"] == fit(text, "ticket")
        benign_doc = json.loads(benign[name])
        for doc_ in (doc, benign_doc):  # the spec files themselves are kept as text
            for source in doc_.get("sources", []):
                source["text"] = "..."
        assert shape(doc) == shape(benign_doc), name


def check_sarif(files, benign, text):
    for name in ("findings.sarif", "validate.sarif"):
        doc = json.loads(files[name])
        results = [r for r in doc["runs"][0]["results"] if r["ruleId"] == WAIVED_RULE]
        assert [s["justification"] for r in results for s in r.get("suppressions", [])] == [
            f"{fit(text, 'justification')} (approved by {fit(text, 'approved_by')}, expires 2099-01-01)"
        ]
        assert shape(doc) == shape(json.loads(benign[name])), name


def check_oscal(files, benign, text):
    doc = json.loads(files["oscal/assessment-results.json"])
    ar = doc["assessment-results"]
    name = fit(text, "name")
    assert ar["metadata"]["title"] == norm(f"medplan assessment results: {name}")
    assert [p["value"] for p in ar["metadata"]["props"] if p["name"] == "deployment"] == [norm(name) or "-"]
    assert ar["metadata"]["remarks"] == "\n\n".join(
        [f"Deployment: {name}", f"Owner: {fit(text, 'owner')}", fit(text, "description")]
    )
    risks = ar["results"][0]["risks"]
    assert [r["statement"] for r in risks] == [fit(text, "justification")]
    props = {p["name"]: p["value"] for p in risks[0]["props"]}
    assert props["approved-by"] == norm(fit(text, "approved_by")) or "-"
    assert props["ticket"] == (norm(fit(text, "ticket")) or "-")
    assert shape(doc) == shape(json.loads(benign["oscal/assessment-results.json"]))


class _Html(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.in_script = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(sorted(a for a, _ in attrs))))
        self.attrs += [(tag, a, v) for a, v in attrs]

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.text.append(data)


def check_html(files, benign, text):
    def parse(text):
        parser = _Html()
        parser.feed(text)
        parser.close()
        return parser

    page = parse(files["report.html"])
    base = parsed_benign("html", "report.html", lambda: parse(benign["report.html"]))
    assert not [t for t, _ in page.tags if t == "script"], "a <script> element in the report"
    assert not [(t, a) for t, a, _ in page.attrs if a.lower().startswith("on")], "an event-handler attribute"
    for tag, attr, value in page.attrs:
        if attr.lower() in ("href", "src", "xlink:href", "action", "formaction") and value:
            assert not re.match(r"\s*(javascript|data|vbscript):", value, re.I), (tag, attr, value)
    assert page.tags == base.tags, "the hostile text changed the report's elements"
    body = norm("".join(page.text))
    for field in ("name", "owner", "description", "certification", "carrier", "dataset_description",
                  "workload_description", "team", "flow_description", "justification", "approved_by", "ticket"):
        assert norm(fit(text, field)) in body, f"{field} missing from the HTML text"


def _md_structure(tokens) -> list:
    out = []
    for tok in tokens:
        if tok.type == "inline":
            out.append(("inline", tuple(c.type for c in tok.children or [] if c.type not in ("text", "text_special"))))
        else:
            out.append((tok.type, tok.tag, tok.nesting))
    return out


def _md_text(tokens) -> str:
    parts = []
    for tok in tokens:
        for child in tok.children or []:
            parts.append(child.content)
        parts.append(" ")
    return "".join(parts)


def check_markdown(files, benign, text):
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough")
    tokens = md.parse(files["report.md"])
    base = parsed_benign("md", "report.md", lambda: md.parse(benign["report.md"]))
    html_here = [t for t in tokens if t.type == "html_block"] + [
        c for t in tokens for c in t.children or [] if c.type == "html_inline"
    ]
    html_base = [t for t in base if t.type == "html_block"] + [c for t in base for c in t.children or [] if c.type == "html_inline"]
    assert len(html_here) == len(html_base), f"raw HTML from spec text: {[t.content for t in html_here][:3]}"
    assert _md_structure(tokens) == _md_structure(base), "the hostile text changed the Markdown structure"
    # Table rows: as many unescaped pipes as their header (markdown-it drops extra cells silently).
    header_pipes = None
    for line in files["report.md"].splitlines():
        if not line.startswith("|"):
            header_pipes = None
            continue
        pipes = len(re.findall(r"(?<!\\)\|", re.sub(r"\\\\", "", line)))
        if header_pipes is None:
            header_pipes = pipes
        assert pipes == header_pipes, f"table row with {pipes} cells for {header_pipes}: {line[:200]!r}"
    shown = norm(_md_text(tokens))
    for field in ("name", "owner", "description", "certification", "carrier", "dataset_description",
                  "workload_description", "team", "flow_description", "justification", "approved_by", "ticket"):
        assert norm(fit(text, field)) in shown, f"{field} missing from the Markdown text"


def check_helm(files, benign, text):
    charts = sorted({name.split("/")[1] for name in files if name.startswith("helm/")})
    assert charts, "the example places workloads on Kubernetes sites"
    for chart in charts:
        for name in (f"helm/{chart}/values.yaml", f"helm/{chart}/Chart.yaml"):
            docs = list(yaml.safe_load_all(files[name]))
            base = parsed_benign("yaml", name, lambda: list(yaml.safe_load_all(benign[name])))
            assert len(docs) == 1 and shape(docs) == shape(base), name
            # A YAML 1.2 reader (Helm's) must see the same values: no string turns into a number or null.
            assert list(yaml.load_all(files[name], Loader=Yaml12Loader)) == docs, name
        values = yaml.safe_load(files[f"helm/{chart}/values.yaml"])
        assert values["spec"] == {"name": fit(text, "name"), "owner": fit(text, "owner"), "description": fit(text, "description")}
        for w in values["workloads"].values():
            assert w["team"] == fit(text, "team") and w["description"] == fit(text, "workload_description")
        chart_doc = yaml.safe_load(files[f"helm/{chart}/Chart.yaml"])
        assert chart_doc["name"] == chart
        spec_name = chart_doc.get("annotations", {}).get("medplan.dev/spec-name")
        assert spec_name in (fit(text, "name"), norm(fit(text, "name"))), spec_name


_INTERPOLATION = re.compile(r"(?<![$%])[$%]\{")
_HCL_SIGNIFICANT = re.compile(r'[$%"\\{}\n\r\t]|[^\x20-\x7e]')


def _hcl_unescape(value: str) -> str:
    # python-hcl2 decodes backslash escapes and leaves template escapes ($${, %%{) as written.
    return value.replace("$${", "${").replace("%%{", "%{")


def _hcl(text: str, tmp: Path) -> dict:
    tools.require_hcl2()
    path = tmp / "file.tf"
    path.write_text(text, encoding="utf-8")
    return tools.hcl_parse(path)


def check_terraform(files, benign, text, tmp: Path):
    names = [n for n in files if n.startswith("terraform/") and n.endswith((".tf", ".hcl"))]
    assert names, "the example places workloads on a cloud site"
    docs = {}
    # python-hcl2 is slow: text with nothing HCL treats specially is checked in
    # the two files that keep it verbatim; the rest is parsed for text that has.
    everywhere = _HCL_SIGNIFICANT.search(text) is not None or len(text) > 1000
    for name in names:
        if BENIGN not in benign[name]:
            continue  # no spec text here: check_untouched compared the bytes
        if not everywhere and not name.endswith(("/checks.tf", "/plan/variables.tf")):
            continue
        doc = docs[name] = _hcl(files[name], tmp)
        base = parsed_benign("hcl", name, lambda: _hcl(benign[name], tmp))
        assert shape(doc) == shape(base), name
        live = sum(len(_INTERPOLATION.findall(s)) for s in strings(doc))
        assert live == sum(len(_INTERPOLATION.findall(s)) for s in strings(base)), f"{name}: spec text became an interpolation"
    expected = {"name": fit(text, "name"), "owner": fit(text, "owner"), "description": fit(text, "description")}
    site = names[0].split("/")[1]
    checks = docs[f"terraform/{site}/checks.tf"]
    spec_local = next(block["spec"] for block in checks["locals"] if "spec" in block)
    assert {k: _hcl_unescape(v) for k, v in spec_local.items()} == expected
    variables = docs[f"terraform/{site}/plan/variables.tf"]
    default = next(v["spec"]["default"] for v in variables["variable"] if "spec" in v)
    assert {k: _hcl_unescape(v) for k, v in default.items()} == expected


def check_untouched(files, benign):
    """Deployment files that hold no spec text are byte-identical to the benign run's."""
    deployment = [n for n in benign if n.startswith(("helm/", "terraform/"))]
    assert sorted(n for n in files if n.startswith(("helm/", "terraform/"))) == sorted(deployment)
    for name in deployment:
        if BENIGN not in benign[name]:
            assert files[name] == benign[name], f"{name} changed although it holds no spec text"


def check_junit(files, benign, text):
    root = ET.fromstring(files["validate.junit"])
    base = ET.fromstring(benign["validate.junit"])
    assert [e.tag for e in root.iter()] == [e.tag for e in base.iter()]
    skipped = [s.get("message") for case in root.iter("testcase") if case.get("classname", "").startswith(WAIVED_RULE)
               for s in case.iter("skipped")]
    assert skipped == [f"waived: {fit(text, 'justification')}"]


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def check_terminal(files, benign, text):
    for name in ("validate.text", "plan.txt"):
        out = files[name]
        assert not _CONTROL.findall(out), f"{name} holds control characters {set(_CONTROL.findall(out))}"
        assert len(out.splitlines()) == len(benign[name].splitlines()), f"{name}: spec text forged extra lines"
    assert norm(fit(text, "justification")) in files["validate.text"]
    assert files["plan.txt"].startswith(f"Plan for {norm(fit(text, 'name'))}\n")


def check_round_trip(files, text):
    spec = files["<spec>"]
    assert spec.metadata.name == fit(text, "name")
    assert spec.sites[0].certifications[-1] == fit(text, "certification")
    assert spec.links[0].carrier == fit(text, "carrier")
    assert spec.workloads[0].model.name == fit(text, "model")
    assert spec.waivers[0].justification == fit(text, "justification")


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_hostile_text_comes_back_as_data_in_every_output(case, benign, tmp_path):
    text = ACCEPTED[case]
    files = render_all(write_spec(tmp_path, text))
    check_round_trip(files, text)
    check_json(files, benign, text)
    check_sarif(files, benign, text)
    check_oscal(files, benign, text)
    check_html(files, benign, text)
    check_markdown(files, benign, text)
    check_untouched(files, benign)
    check_helm(files, benign, text)
    check_terraform(files, benign, text, tmp_path)
    check_junit(files, benign, text)
    check_terminal(files, benign, text)


KITCHEN_SINK = " ".join(
    ACCEPTED[k]
    for k in ("terraform-interpolation", "helm-template", "quotes", "script", "yaml-document-start", "newline",
              "markdown-table", "terraform-directive", "bidi-override", "cdata", "crlf", "markdown-backslash")
)


def test_kitchen_sink_passes_the_real_validators(benign, tmp_path):
    """One spec whose every field mixes the corpus, checked with the real tools."""
    text = KITCHEN_SINK
    files = render_all(write_spec(tmp_path / "spec", text))
    out = tmp_path / "out"
    for name, content in files.items():
        if isinstance(content, str) and not name.startswith(("<", "validate.", "plan.txt")):
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(content, encoding="utf-8")
    (out / "validate.sarif").write_text(files["validate.sarif"], encoding="utf-8")

    tools.require_check_jsonschema()
    for name in ("findings.sarif", "validate.sarif"):
        tools.check_jsonschema(tools.require_sarif_schema(), out / name).check()
    tools.check_jsonschema(tools.require_oscal_ar_schema(), out / "oscal" / "assessment-results.json").check()

    tools.require_helm()
    for chart in sorted(p.name for p in (out / "helm").iterdir()):
        rendered = tools.run_helm(["template", "release", out / "helm" / chart]).check().stdout
        docs = [d for d in yaml.safe_load_all(rendered) if d is not None]
        base_dir = tmp_path / "benign-helm" / chart
        for name, content in benign.items():
            if name.startswith(f"helm/{chart}/"):
                (base_dir / name.split("/", 2)[2]).parent.mkdir(parents=True, exist_ok=True)
                (base_dir / name.split("/", 2)[2]).write_text(content, encoding="utf-8")
        base_docs = [d for d in yaml.safe_load_all(tools.run_helm(["template", "release", base_dir]).check().stdout) if d is not None]
        assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [(d["kind"], d["metadata"]["name"]) for d in base_docs]
        assert shape(docs) == shape(base_docs)
        annotations = [d["metadata"].get("annotations", {}) for d in docs] + [
            d["spec"]["template"]["metadata"].get("annotations", {}) for d in docs if d["kind"] in ("Deployment", "Job")
        ]
        seen = set(v for a in annotations for v in a.values())
        assert fit(text, "workload_description") in seen and fit(text, "team") in seen, "text missing from the manifests"
        assert fit(text, "name") in seen and fit(text, "owner") in seen

    tools.require_terraform()
    for module in sorted(p for p in (out / "terraform").iterdir()):
        tools.terraform_fmt_check(module).check()
        plan_module = module / "plan"
        # The exact values, from a JSON var file (no HCL escaping involved).
        (plan_module / "zz_expected.tf").write_text(
            'variable "zz_expected" {\n  type = map(string)\n}\n', encoding="utf-8"
        )
        (plan_module / "tests" / "zz_hostile.tftest.hcl").write_text(
            'run "hostile_text_is_data" {\n'
            "  command = plan\n"
            "  assert {\n"
            "    condition     = output.spec.name == var.zz_expected.name && output.spec.description == var.zz_expected.description\n"
            '    error_message = "spec text changed on its way through HCL"\n'
            "  }\n"
            "}\n",
            encoding="utf-8",
        )
        expected = {"zz_expected": {"name": fit(text, "name"), "description": fit(text, "description")}}
        (plan_module / "expected.tfvars.json").write_text(json.dumps(expected), encoding="utf-8")
        tools.terraform_init(plan_module).check()
        result = tools.terraform_test(plan_module, "-var-file=expected.tfvars.json")
        assert result.ok and 'run "hostile_text_is_data"... pass' in result.stdout, result.describe()
        shutil.rmtree(plan_module / ".terraform", ignore_errors=True)


TERMINAL_COMMANDS = {
    "validate": ["validate"],
    "plan": ["plan"],
    "size": ["size"],
    "explain": ["explain", "--workload", "eu-safety-signal"],
}


@pytest.fixture(scope="module")
def benign_terminal(tmp_path_factory):
    path = write_spec(tmp_path_factory.mktemp("benign-cli"), BENIGN)
    return {name: run_cli([*args[:1], str(path), *args[1:]]) for name, args in TERMINAL_COMMANDS.items()}


@pytest.mark.parametrize("case", ["newline", "crlf", "tab", "yaml-leading-space", "bidi-override"])
def test_terminal_output_has_no_forged_lines_or_control_characters(case, benign_terminal, tmp_path):
    path = write_spec(tmp_path, ACCEPTED[case])
    for name, args in TERMINAL_COMMANDS.items():
        result = run_cli([*args[:1], str(path), *args[1:]])
        base = benign_terminal[name]
        assert result.exit_code == base.exit_code, (name, result.output)
        out = result.stdout + result.stderr
        assert not _CONTROL.findall(out), f"medplan {name} printed control characters {set(_CONTROL.findall(out))}"
        assert len(out.splitlines()) == len((base.stdout + base.stderr).splitlines()), f"medplan {name}: forged lines"


def test_too_long_text_is_refused_with_its_limit(tmp_path):
    path = write_spec(tmp_path, "x")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    long = ACCEPTED["long"]
    spec["metadata"]["name"] = long
    spec["workloads"][0]["team"] = long
    spec["waivers"][0]["justification"] = long
    path.write_text(dump_spec(spec), encoding="utf-8")
    result = run_cli(["validate", str(path)])
    assert result.exit_code == 2
    assert re.search(r":\d+:\d+: metadata\.name: text is too long \(at most 200 characters\)", result.stderr), result.stderr
    assert re.search(r":\d+:\d+: workloads\[0\]\.team: text is too long \(at most 200 characters\)", result.stderr)
    assert re.search(r":\d+:\d+: waivers\[0\]\.justification: text is too long \(at most 4000 characters\)", result.stderr)
    assert long not in result.stderr, "a 10,000-character value must not be echoed back"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_control_characters_are_refused_where_they_are(case, tmp_path):
    text = "before " + REFUSED[case] + " after"
    path = write_spec(tmp_path, text)
    result = run_cli(["validate", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    # Every free-text field is named, at its own line and column.
    for field_path in ("metadata.name", "metadata.owner", "metadata.description", "links[0].carrier", "workloads[0].team",
                       "workloads[0].model.name", "workloads[0].description", "datasets[0].description",
                       "flows[0].description", "waivers[0].justification", "waivers[0].approved_by", "waivers[0].ticket"):
        assert any(re.match(rf"(?:error: )?{re.escape(str(path))}:\d+:\d+: {re.escape(field_path)}: text contains the control character U\+00[0-9A-F]{{2}}", line)
                   for line in lines), f"{field_path} not reported:\n{result.stderr}"
    assert any(re.search(r"sites\[0\]\.certifications\[\d+\]: text contains the control character", line) for line in lines)
    assert not _CONTROL.findall(result.stderr.replace("\n", "")), "the error output itself carries the control character"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit"])
def test_refused_control_characters_never_reach_any_validate_format(fmt, tmp_path):
    path = write_spec(tmp_path, REFUSED["escape-sequence"])
    result = run_cli(["validate", "--format", fmt, str(path)])
    assert result.exit_code == 2
    assert "\x1b" not in result.stdout + result.stderr
    if fmt == "json":
        errors = json.loads(result.stdout)["errors"]
        assert errors and all(e["location"]["line"] >= 1 for e in errors)


def test_lookalike_id_is_refused_and_lookalike_reference_suggests_the_real_one(tmp_path):
    spec = spec_with("x")
    spec["datasets"][0]["id"] = "eu-trial-crf"
    spec["workloads"][2]["inputs"] = ["eu-tri\u0430l-crf"]  # Cyrillic a
    spec["sites"][0]["id"] = "de-fr\u0430-dc"
    path = tmp_path / "spec.yaml"
    path.write_text(dump_spec(spec), encoding="utf-8")
    result = run_cli(["validate", str(path)])
    assert result.exit_code == 2
    assert re.search(r"sites\[0\]\.id: expected an id \(lowercase letters, digits and '-'", result.stderr), result.stderr
    assert "did you mean 'eu-trial-crf'?" in result.stderr
