"""The `medplan` command line: parse options, call the library, set the exit code.

Diagnostics go to stderr, machine output to stdout. Exit codes: 0 passed,
1 not compliant or not placeable, 2 could not be checked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from planner import __version__

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


class App:
    """What every command shares: the console streams and colour choice."""

    def __init__(self, color: bool | None = None):
        self.color = color

    def err(self, text: str) -> None:
        click.echo(text, err=True, color=self.color)

    def out(self, text: str, nl: bool = True) -> None:
        click.echo(text, nl=nl, color=self.color)


def _handle_errors(fn):
    """Turn medplan's own errors into exit code 2 with located messages."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from planner.errors import MedplanError

        try:
            return fn(*args, **kwargs)
        except MedplanError as exc:
            ctx = click.get_current_context()
            fmt = ctx.params.get("fmt")
            if fmt == "json" and ctx.command.name == "validate":
                from planner.render.validation import error_json

                click.echo(error_json(exc, ctx.params.get("paths") or []))
            else:
                lines = [str(d) for d in exc.diagnostics] or [f"error: {exc.message}"]
                for line in lines:
                    click.echo(line, err=True)
            ctx.exit(EXIT_ERROR)
        except (click.exceptions.Exit, click.exceptions.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            # A defect in medplan itself: one line, exit 2, no traceback
            # unless MEDPLAN_DEBUG asks for it.
            if os.environ.get("MEDPLAN_DEBUG"):
                raise
            click.echo(f"error: internal error: {type(exc).__name__}: {exc} (set MEDPLAN_DEBUG=1 for a traceback)", err=True)
            click.get_current_context().exit(EXIT_ERROR)

    return wrapper


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.UsageError as exc:
            # Usage errors are "could not be checked": exit 2, as click does.
            exc.exit_code = EXIT_ERROR
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="medplan", message="%(prog)s %(version)s")
@click.option(
    "--color/--no-color",
    default=None,
    help="Colour output. Default: on for a terminal, off when NO_COLOR is set (env MEDPLAN_COLOR).",
    envvar="MEDPLAN_COLOR",
)
@click.pass_context
def main(ctx: click.Context, color: bool | None) -> None:
    """Compliance-aware deployment planning for medical AI on GPU infrastructure.

    Describe sites, GPU pools, datasets, PHI flows and workloads in YAML;
    medplan checks them against HIPAA, GDPR and platform policies, places
    every workload on admissible GPU capacity and renders audit-ready plans.

    Exit codes: 0 passed, 1 not compliant or not placeable, 2 could not be checked.
    """
    if color is None and os.environ.get("NO_COLOR"):
        color = False
    ctx.obj = App(color=color)


spec_paths = click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))


@main.command()
@spec_paths
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "junit"]), default="text", show_default=True,
              envvar="MEDPLAN_FORMAT", help="Output format (env MEDPLAN_FORMAT).")
@click.option("--fail-on", type=click.Choice(["critical", "high", "medium", "low", "info"]), default=None, envvar="MEDPLAN_FAIL_ON",
              help="Lowest severity that fails the run; overrides the spec's policies.fail_on (env MEDPLAN_FAIL_ON).")
@click.option("--no-waivers", is_flag=True, help="Ignore waivers and show the raw result.")
@click.option("--no-policies", is_flag=True, help="Check only syntax, schema and references.")
@click.option("--opa-url", default=None, envvar="MEDPLAN_OPA_URL",
              help="Evaluate Rego on this OPA server instead of the embedded engine (env MEDPLAN_OPA_URL).")
@click.option("--opa-token", default=None, envvar="MEDPLAN_OPA_TOKEN", help="Bearer token for the OPA server (env MEDPLAN_OPA_TOKEN).")
@click.option("--strict", is_flag=True, help="A rule that errors at run time is fatal (exit 2).")
@click.pass_obj
@_handle_errors
def validate(app: App, paths, fmt, fail_on, no_waivers, no_policies, opa_url, opa_token, strict) -> None:
    """Check spec files (or directories of them) against the policies."""
    _start_early(paths, input_helper=True)
    from planner.pipeline import ValidateOptions, run_validate
    from planner.render import validation

    result = run_validate(
        list(paths),
        ValidateOptions(
            fail_on=fail_on, waivers=not no_waivers, policies=not no_policies,
            opa_url=opa_url, opa_token=opa_token, strict=strict,
        ),
    )
    text = validation.render(result, fmt, color=app.color)
    app.out(text, nl=not text.endswith("\n"))
    sys.exit(EXIT_FAIL if result.failed else EXIT_OK)


def _plan_options(f):
    """Options shared by every command that runs the policies."""
    options = [
        click.option("--fail-on", type=click.Choice(["critical", "high", "medium", "low", "info"]), default=None,
                     envvar="MEDPLAN_FAIL_ON", help="Lowest severity that fails the run (env MEDPLAN_FAIL_ON)."),
        click.option("--no-waivers", is_flag=True, help="Ignore waivers and show the raw result."),
        click.option("--opa-url", default=None, envvar="MEDPLAN_OPA_URL",
                     help="Evaluate Rego on this OPA server instead of the embedded engine (env MEDPLAN_OPA_URL)."),
        click.option("--opa-token", default=None, envvar="MEDPLAN_OPA_TOKEN", help="Bearer token for the OPA server (env MEDPLAN_OPA_TOKEN)."),
        click.option("--strict", is_flag=True, help="A rule that errors at run time is fatal (exit 2)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _start_early(paths, input_helper: bool = False) -> None:
    """Start the copies that help load large spec files, before the heavy
    modules are imported (see :mod:`planner.startup`)."""
    from planner.startup import start

    start(list(paths), input_helper=input_helper)


def _run_plan(paths, fail_on, no_waivers, opa_url, opa_token, strict, solved=None, meanwhile=None):
    _start_early(paths)
    from planner.pipeline import ValidateOptions, run_plan

    options = ValidateOptions(fail_on=fail_on, waivers=not no_waivers, opa_url=opa_url, opa_token=opa_token, strict=strict)
    return run_plan(list(paths), options, solved, meanwhile)


@main.command("plan")
@spec_paths
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Write the plan directory here (plan.json, reports, SARIF, OSCAL, Helm, Terraform, MANIFEST.sha256).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="What to print: a summary, or plan.json.")
@click.option("--sign-key", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None, envvar="MEDPLAN_SIGN_KEY",
              help="Ed25519 private key (PEM) that signs MANIFEST.sha256 (env MEDPLAN_SIGN_KEY).")
@click.option("--timestamp", default=None, help="Timestamp to print in reports (default: SOURCE_DATE_EPOCH, else none).")
@_plan_options
@click.pass_obj
@_handle_errors
def plan_command(app: App, paths, out, fmt, sign_key, timestamp, fail_on, no_waivers, opa_url, opa_token, strict) -> None:
    """Place every workload on admissible GPU capacity at the lowest cost and check the plan."""
    reports = None  # with --out, the reports' copy, started as soon as the plan is solved
    unchecked: dict = {}  # with --out, the Helm charts, rendered while the plan-stage rules run

    def solved(partial) -> None:
        nonlocal reports
        from planner.render import start_reports

        reports = start_reports(partial, finished=False)

    def meanwhile(partial) -> None:
        from planner.render import render_unchecked

        # Only Helm (Terraform shows no findings either): the reports' copy
        # needs the findings once it has worked out the plan's sections, which
        # takes about as long as the charts.
        unchecked.update(render_unchecked(partial, {"helm"}))

    try:
        hooks = (solved, meanwhile) if out is not None else (None, None)
        result = _run_plan(paths, fail_on, no_waivers, opa_url, opa_token, strict, *hooks)
    except BaseException:
        if reports is not None:
            reports.close()
        raise
    from planner.render.planjson import render_plan_json
    from planner.render.plantext import plan_text

    said: list[str] = []

    def say(rendered: dict) -> None:  # with --out, while the reports' copy finishes; printed once all is written
        if fmt == "json":
            said.append(rendered.get("plan.json") or render_plan_json(result))  # the directory's own, if rendered
        else:
            said.append(plan_text(result, out))

    if out is not None:
        _write_plan(out, result, timestamp, sign_key, meanwhile=say, reports=reports, rendered=unchecked)
    if not said:
        say({})
    app.out(said[0], nl=False)
    sys.exit(EXIT_FAIL if result.failed else EXIT_OK)


def _write_plan(
    out: Path, result, timestamp: str | None, sign_key: Path | None, formats: set[str] | None = None, meanwhile=None, reports=None,
    rendered=None,
) -> int:
    """Render the plan directory's files and write them, each format as soon as it is rendered; returns how many.

    ``meanwhile({"plan.json": text})`` (the text if rendered by then) runs
    between this process's formats and the forked copy's (see
    :func:`~planner.render.iter_plan_files`, which also takes ``reports``
    and the formats ``rendered`` already)."""
    from planner.plandir import write_plan_dir
    from planner.render import iter_plan_files

    seen: dict[str, str] = {}
    hook = (lambda: meanwhile(seen)) if meanwhile is not None else None
    files_of = iter_plan_files(
        result, timestamp=timestamp or _timestamp_from_env(), formats=formats, meanwhile=hook, reports=reports, rendered=rendered
    )
    sizes: list[int] = []

    def parts():
        for fmt, files in files_of:
            sizes.append(len(files))
            if fmt == "json":
                seen.update(files)
            yield files

    try:
        write_plan_dir(out, parts(), sign_key=sign_key)
    finally:
        files_of.close()  # stops a forked copy still rendering when writing failed
        if reports is not None:
            reports.close()  # also one that writing failed before rendering came to
    return sum(sizes)


def _timestamp_from_env() -> str | None:
    import datetime as dt

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        return dt.datetime.fromtimestamp(int(epoch), tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return None


@main.command()
@spec_paths
@click.option("--workload", "workload", required=True, help="The workload to explain.")
@_plan_options
@_handle_errors
def explain(paths, workload, fail_on, no_waivers, opa_url, opa_token, strict) -> None:
    """Why a workload sits where it does, and why not elsewhere, site by site."""
    from planner.errors import Diagnostic, InputError, Location
    from planner.spec.loader import suggest

    result = _run_plan(paths, fail_on, no_waivers, opa_url, opa_token, strict)
    ids = [w.id for w in result.spec.workloads]
    if workload not in ids:
        hint = suggest(workload, ids)
        tail = f"; did you mean {hint!r}?" if hint else f"; known: {', '.join(ids)}"
        raise InputError("unknown workload", [Diagnostic(Location("--workload"), f"unknown workload {workload!r}{tail}")])
    click.echo(result.plan.explain(workload).rstrip("\n"))


@main.command()
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--public-key", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Ed25519 public key (PEM); the manifest signature must be valid.")
@_handle_errors
def verify(directory, public_key) -> None:
    """Check a plan directory against its MANIFEST.sha256 (and signature)."""
    from planner.plandir import verify_plan_dir

    result = verify_plan_dir(directory, public_key)
    for label, names in (("changed", result.changed), ("added", result.added), ("removed", result.removed)):
        for name in names:
            click.echo(f"{label}: {name}")
    if public_key is not None:
        click.echo(f"signature: {result.signature}")
    click.echo("OK: every file matches the manifest" if result.ok else "FAIL: the plan directory does not match its manifest")
    sys.exit(EXIT_OK if result.ok else EXIT_FAIL)


RENDER_FORMATS = ("json", "md", "html", "sarif", "oscal", "helm", "terraform")


@main.command()
@click.argument("plan_file", type=click.Path(path_type=Path, exists=True))
@click.option("--format", "formats", type=click.Choice(RENDER_FORMATS), multiple=True,
              help="Formats to render (repeatable); default: all.")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="Directory to write (atomically, with a manifest).")
@click.option("--timestamp", default=None, help="Timestamp to print in reports.")
@click.option("--sign-key", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None, envvar="MEDPLAN_SIGN_KEY",
              help="Ed25519 private key (PEM) that signs MANIFEST.sha256.")
@_handle_errors
def render(plan_file, formats, out, timestamp, sign_key) -> None:
    """Render again from a saved plan (plan.json or its directory)."""
    from planner.pipeline import replan
    from planner.render.plandiff import load_plan_json

    doc = load_plan_json(plan_file)
    result = replan(doc, str(plan_file))
    count = _write_plan(out, result, timestamp, sign_key, set(formats) or None)
    click.echo(f"wrote {count} files to {out}/")


@main.command("compare")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--swap", "swaps", multiple=True, metavar="SITE/POOL=MODEL",
              help="Compare the spec with this pool's GPU model (or instance type) replaced; repeatable.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_plan_options
@_handle_errors
def compare_command(paths, swaps, fmt, fail_on, no_waivers, opa_url, opa_token, strict) -> None:
    """Plan two variants side by side: `compare SPEC --swap dc1/h100=B200`, or `compare A.yaml B.yaml`."""
    import json

    from planner.compare import Swap, apply_swaps, compare, compare_text
    from planner.errors import Diagnostic, InputError, Location
    from planner.pipeline import ValidateOptions, plan
    from planner.spec.loader import load_spec

    options = ValidateOptions(fail_on=fail_on, waivers=not no_waivers, opa_url=opa_url, opa_token=opa_token, strict=strict)
    if swaps:
        spec = load_spec(list(paths))
        swapped = apply_swaps(spec, [Swap.parse(s) for s in swaps])
        a, b = plan(spec, options), plan(swapped, options)
        labels = ("as specified", "with " + ", ".join(swaps))
    elif len(paths) == 2:
        a, b = plan(load_spec([paths[0]]), options), plan(load_spec([paths[1]]), options)
        labels = (paths[0], paths[1])
    else:
        raise InputError("usage", [Diagnostic(Location("<args>"), "give two specs to compare, or one spec and --swap SITE/POOL=MODEL")])
    doc = compare(a, b, labels)
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False) if fmt == "json" else compare_text(doc), nl=fmt == "json")


@main.command()
@click.argument("old", type=click.Path(path_type=Path, exists=True))
@click.argument("new", type=click.Path(path_type=Path, exists=True))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_handle_errors
def diff(old, new, fmt) -> None:
    """The change review between two plans (plan.json files or plan directories).

    Exits 1 when the new plan has findings the old one did not, or unplaced workloads it placed.
    """
    import json

    from planner.render.plandiff import diff_plans, diff_text, load_plan_json

    change = diff_plans(load_plan_json(old), load_plan_json(new))
    click.echo(json.dumps(change, indent=2, ensure_ascii=False) if fmt == "json" else diff_text(change), nl=fmt == "json")
    sys.exit(EXIT_FAIL if change["findings_appeared"] or change["newly_unplaced"] else EXIT_OK)


@main.command("input")
@spec_paths
@click.option("--stage", type=click.Choice(["validate", "placement"]), default="validate", show_default=True,
              help="Which stage's input document to print.")
@_handle_errors
def input_document(paths, stage) -> None:
    """Print the input document that policies read, as JSON (for opa eval)."""
    import json

    from planner.facts import derive
    from planner.policy.document import placement_document, validate_document
    from planner.spec.loader import load_spec

    doc = validate_document(derive(load_spec(list(paths))))
    if stage == "placement":
        doc = placement_document(doc)[0]
    click.echo(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False))


@main.group()
def policies() -> None:
    """List and test policy rules."""


def _policy_set(dirs: tuple[str, ...], tests: bool = False):
    from planner.errors import Location
    from planner.policy.evaluate import builtin_bundles, load_policies, resolve_bundles

    includes = list(dirs) or [f"builtin:{name}" for name in builtin_bundles()]
    return load_policies(resolve_bundles(includes, Path.cwd(), Location("<args>")), tests=tests)


@policies.command("list")
@click.argument("dirs", nargs=-1, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table", show_default=True)
@_handle_errors
def policies_list(dirs, fmt) -> None:
    """The rule catalog, from the rules' metadata (builtin bundles, or DIRS: builtin:NAME or directories)."""
    from planner.policy.waivers import META_RULES
    from planner.render import rules as render_rules

    rules = sorted([*_policy_set(dirs).registry, *META_RULES], key=lambda r: r.id)
    render = {"table": render_rules.rules_table, "json": render_rules.rules_json, "markdown": render_rules.rules_markdown}[fmt]
    click.echo(render(rules), nl=False)


@policies.command("test")
@click.argument("dirs", nargs=-1, type=click.Path(path_type=str))
@click.option("-v", "--verbose", is_flag=True, help="List passing tests too.")
@_handle_errors
def policies_test(dirs, verbose) -> None:
    """Run the test_* rules of *_test.rego files (builtin bundles, or DIRS), as opa test does."""
    from planner.policy.testing import run_rego_tests

    results = run_rego_tests(_policy_set(dirs, tests=True))
    failed = [r for r in results if not r.passed]
    for r in results:
        if verbose or not r.passed:
            status = "PASS" if r.passed else ("ERROR" if r.error and "evaluated to" not in r.error else "FAIL")
            detail = f" ({r.error})" if r.error else ""
            click.echo(f"{r.location.file}:{r.location.line}: {status} {r.name}{detail}")
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    sys.exit(EXIT_FAIL if failed or not results else EXIT_OK)


@main.command()
@click.argument("what", type=click.Choice(["gpus", "instances"]))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handle_errors
def catalog(what, fmt) -> None:
    """The GPU models or cloud instance types medplan knows, with sources."""
    from planner.catalog import load_catalog
    from planner.render import catalog as render_catalog

    render = getattr(render_catalog, f"{what}_{fmt}")
    click.echo(render(load_catalog()), nl=False)


@main.command()
@spec_paths
@click.option("--workload", default=None, help="Only this workload.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handle_errors
def size(paths, workload, fmt) -> None:
    """GPUs, memory headroom, replicas and cost per workload on every GPU model and pool."""
    from planner.catalog.additions import catalog_with_spec
    from planner.catalog.workload_sizing import pool_options, size_workloads
    from planner.render import catalog as render_catalog
    from planner.spec.loader import load_spec

    spec = load_spec(list(paths))
    cat = catalog_with_spec(spec)
    sizing = size_workloads(spec, cat)
    options = pool_options(spec, cat, sizing)
    render = render_catalog.size_table if fmt == "table" else render_catalog.size_json
    click.echo(render(spec, sizing, options, workload=workload), nl=False)


@main.command()
@click.option("--sites", type=click.IntRange(1, 100_000), default=10, show_default=True)
@click.option("--workloads", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write here instead of stdout.")
def generate(sites, workloads, seed, out) -> None:
    """A realistic synthetic spec for benchmarks (the same seed gives the same spec)."""
    from planner.generate import generate_yaml

    text = generate_yaml(sites, workloads, seed)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the spec language."""
    from planner.spec.schema import spec_schema_json

    click.echo(spec_schema_json(), nl=False)


def run() -> None:  # pragma: no cover - console entry
    from planner import process

    tune_gc()
    tune_threads()
    process.keep_until_exit()
    try:
        main(prog_name="medplan")
    except SystemExit as exc:  # how click ends every command
        process.exit_now(exc.code)
    process.exit_now(0)


def tune_gc() -> None:
    """Turn the cyclic garbage collector off for this short-lived process.

    A large spec is millions of long-lived objects, and every one of them
    is walked at least once by the collector's young generation: about 0.3 s
    of a 10,000-workload validate, more of a plan. Reference counting frees
    nearly everything a command drops; the cycles left are few, and the
    process ends when the command does (peak memory of a 10,000-workload
    plan: the same with the collector off). The copy that renders reports
    always ran without it.
    """
    import gc

    gc.disable()


def tune_threads() -> None:
    """One OpenBLAS thread for numpy and scipy, unless the environment says otherwise.

    Their vector work here is small, and OpenBLAS starts a thread per core
    that spins after each call it shares: on two cores those spinning
    threads take time from the forked copies that run beside this process
    (0.1-0.4 s of CPU in a 10,000-workload run). Set before either loads.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


if __name__ == "__main__":  # pragma: no cover
    run()


__all__ = ["main", "App", "Path"]
