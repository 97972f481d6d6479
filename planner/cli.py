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
                for line in str(exc).splitlines():
                    click.echo(f"error: {line}" if not line.startswith(("error", " ")) and ":" not in line[:3] else line, err=True)
            ctx.exit(EXIT_ERROR)

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
def schema() -> None:
    """Print the JSON Schema of the spec language."""
    from planner.spec.schema import spec_schema_json

    click.echo(spec_schema_json(), nl=False)


def run() -> None:  # pragma: no cover - console entry
    main(prog_name="medplan")


if __name__ == "__main__":  # pragma: no cover
    run()


__all__ = ["main", "App", "Path"]
