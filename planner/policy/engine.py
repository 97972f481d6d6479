"""Rego engines behind one protocol: regorus in-process (the default) and a
running OPA server through opa-python-client. Both take the same modules and
input and must return the same decision.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Protocol

from planner.errors import Diagnostic, EngineError, Location, PolicyError

_REGORUS_WHERE = re.compile(r"-->\s*(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)")
_REGORUS_ERROR = re.compile(r"^error:\s*(?P<msg>.*)$", re.M)


class RuleFailure(Exception):
    """A rule raised an error while being evaluated (not a load error)."""


class RegoEngine(Protocol):
    name: str
    version: str

    def load(self, modules: dict[str, str]) -> None:
        """Compile modules (file name -> text); PolicyError on a bad module."""

    def set_input(self, document: dict) -> None:
        """The input document for the evaluations that follow."""

    def evaluate(self, query: str) -> object:
        """The JSON value of ``data.pkg.rule`` (None when undefined); RuleFailure on error."""


def regorus_message(text: str) -> tuple[Location | None, str]:
    """Location and message from a regorus error (its backtrace dropped)."""
    text = text.split("Stack backtrace:", 1)[0]
    where = _REGORUS_WHERE.search(text)
    message = _REGORUS_ERROR.search(text)
    msg = message.group("msg").strip() if message else text.strip().splitlines()[0] if text.strip() else "error"
    if where is None:
        return None, msg
    return Location(where.group("file"), int(where.group("line")), int(where.group("col"))), msg


def input_json(document: dict) -> str:
    """The JSON text an engine reads an input document from.

    Compact and unsorted: key order means nothing to Rego, and on specs with
    tens of thousands of flows the text runs to tens of megabytes.
    """
    return json.dumps(document, separators=(",", ":"), check_circular=False)


_MISSING = object()
_UNDEFINED = "<undefined>"  # eval_rule_as_json's answer for a rule without a value
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RegorusEngine:
    """Rego evaluated in-process by regorus (Microsoft's Rust interpreter).

    Reading a large input is the most expensive step of an evaluation, so the
    engine keeps the last few inputs it read, each in its own copy of the
    compiled policies (copies share everything until changed). A document
    that repeats one of them with some top-level keys replaced or added, as
    the plan-stage document repeats the validate-stage one, is not read
    again: only the replaced keys are, as data, and each query evaluates
    ``with input.KEY as`` that data. A repeated key is recognised by being the
    very same object, so documents given to ``set_input`` must not be changed
    afterwards (the pipeline builds every stage's document anew).
    """

    name = "regorus"
    # Where replaced keys of an input are kept in the data document.
    OVERLAY = "__medplan_input_overlay"
    KEEP = 2  # full inputs kept for reuse

    def __init__(self) -> None:
        import regorus

        self._regorus = regorus
        self._engine = regorus.Engine()  # the policies, without input
        self._packages: set[str] = set()
        self._inputs: list[tuple[dict, object]] = []  # (document, engine that read it), newest first
        self._current = self._engine
        self._with = ""
        try:
            from importlib.metadata import version

            self.version = version("celine-regorus")
        except Exception:  # pragma: no cover - metadata missing only in odd installs
            self.version = "unknown"

    def load(self, modules: dict[str, str]) -> None:
        errors: list[Diagnostic] = []
        for name in sorted(modules):
            try:
                self._engine.add_policy(name, modules[name])
            except RuntimeError as exc:
                where, message = regorus_message(str(exc))
                errors.append(Diagnostic(where or Location(name), f"Rego: {message}"))
        if errors:
            raise PolicyError("policy does not compile", errors)
        self._packages = set(self._engine.get_packages())
        self._inputs.clear()
        self._current, self._with = self._engine, ""

    def _replaced(self, document: dict, base: dict) -> list[str] | None:
        """Top-level keys of ``document`` that are not ``base``'s very objects,
        or None when ``document`` is not ``base`` with keys replaced or added."""
        if document is base:
            return []
        if not isinstance(document, dict) or any(key not in document for key in base):
            return None
        replaced = [key for key, value in document.items() if value is not base.get(key, _MISSING)]
        if len(replaced) == len(document) or not all(isinstance(k, str) and _IDENTIFIER.match(k) for k in replaced):
            return None
        return replaced

    def set_input(self, document: dict) -> None:
        for base, engine in self._inputs:
            replaced = self._replaced(document, base)
            if replaced is None:
                continue
            if not replaced:
                self._current, self._with = engine, ""
                return
            overlay = engine.clone()
            overlay.add_data_json(input_json({self.OVERLAY: {key: document[key] for key in replaced}}))
            self._current = overlay
            self._with = "".join(f" with input.{key} as data.{self.OVERLAY}.{key}" for key in replaced)
            return
        engine = self._engine.clone()
        engine.set_input_json(input_json(document))
        self._inputs.insert(0, (document, engine))
        del self._inputs[self.KEEP:]
        self._current, self._with = engine, ""

    def evaluate(self, query: str) -> object:
        package = query.rsplit(".", 1)[0]
        if package not in self._packages:
            return None
        try:
            if not self._with:
                return json.loads(self._current.eval_rule_as_json(query))
            answer = json.loads(self._current.eval_query_as_json(f"value := {query}{self._with}"))
        except RuntimeError as exc:
            where, message = regorus_message(str(exc))
            if message == "not a valid rule path":
                return None
            raise RuleFailure(f"{message} (at {where})" if where else message) from exc
        results = answer.get("result") or []
        return results[0]["bindings"]["value"] if results else self._no_value(query)

    def _no_value(self, query: str) -> object:
        """What ``eval_rule_as_json`` answers for a rule without a value, so
        that evaluating over an overlay answers the same: None for a path that
        is not a rule, the string ``<undefined>`` for an undefined rule."""
        try:
            self._engine.eval_rule_as_json(query)  # the policies alone: is it a rule?
        except RuntimeError as exc:
            if regorus_message(str(exc))[1] == "not a valid rule path":
                return None
        return _UNDEFINED


@dataclass
class OpaServerEngine:
    """Rego evaluated on a running OPA server (Policy API + Data API)."""

    url: str
    token: str | None = None
    timeout: float = 5.0
    retries: int = 2
    name: str = "opa-server"
    version: str = "unknown"

    def __post_init__(self) -> None:
        from urllib.parse import urlsplit

        try:
            from opa_client.opa import OpaClient
        except ImportError as exc:  # pragma: no cover - a dependency
            raise EngineError("opa-python-client is not installed") from exc
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EngineError(f"--opa-url must be an http(s) URL such as http://127.0.0.1:8181, got {self._safe_url()!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._client = OpaClient(
            host=parts.hostname,
            port=port,
            ssl=parts.scheme == "https",
            token=self.token,
            timeout=self.timeout,
            retries=self.retries,
        )
        self._policy_ids: list[str] = []
        self._input: dict = {}

    def _safe_url(self) -> str:
        # Never echo credentials that might sit in a URL.
        return re.sub(r"//[^@/]*@", "//***@", self.url)

    def _fail(self, what: str, exc: BaseException | None = None) -> EngineError:
        detail = ""
        if exc is not None:
            detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            if self.token:
                detail = detail.replace(self.token, "***")
            detail = detail.splitlines()[0][:300] if detail else type(exc).__name__
        return EngineError(
            "OPA server failed",
            [Diagnostic(Location(self._safe_url()), f"OPA server: {what}" + (f": {detail}" if detail else ""))],
        )

    def load(self, modules: dict[str, str]) -> None:
        import requests

        try:
            self._client.check_connection()
        except Exception as exc:
            raise self._fail(f"not reachable within {self.timeout:g} s", exc) from exc
        # OPA compiles every upload together with the modules already there, so
        # a module that calls a function from a sibling file is refused until
        # that file is in: retry the refused ones while each pass makes progress.
        pending = sorted(modules)
        refused: dict[str, str] = {}
        while pending:
            refused = {}
            for name in pending:
                policy_id = "medplan/" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)
                try:
                    self._client.update_policy_from_string(modules[name], policy_id)
                except requests.RequestException as exc:
                    raise self._fail(f"could not upload policy {name}", exc) from exc
                except Exception as exc:
                    refused[name] = getattr(exc, "message", None) or str(exc)
                    continue
                self._policy_ids.append(policy_id)
            if len(refused) == len(pending):
                break
            pending = sorted(refused)
        if refused:
            raise PolicyError(
                "policy rejected by OPA",
                [Diagnostic(Location(name), f"OPA rejected the policy: {message}") for name, message in sorted(refused.items())],
            )

    def set_input(self, document: dict) -> None:
        self._input = document

    def evaluate(self, query: str) -> object:
        import requests

        path = query.removeprefix("data.").split(".")
        package, rule = "/".join(path[:-1]), path[-1]
        started = time.monotonic()
        try:
            answer = self._client.query_rule(input_data=self._input, package_path=package, rule_name=rule)
        except requests.Timeout as exc:
            raise self._fail(f"no answer within {self.timeout:g} s", exc) from exc
        except requests.RequestException as exc:
            raise self._fail("request failed", exc) from exc
        except ValueError as exc:
            raise self._fail("answer is not JSON", exc) from exc
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise self._fail(f"query {query} failed after {time.monotonic() - started:.1f} s", Exception(message)) from exc
        if not isinstance(answer, dict):
            raise self._fail(f"unexpected answer to {query}: {str(answer)[:100]}")
        return answer.get("result")

    def close(self) -> None:
        for policy_id in self._policy_ids:
            try:
                self._client.delete_policy(policy_id)
            except Exception:  # noqa: S110 - best-effort clean-up of our own uploads
                pass
        try:
            self._client.close_connection()
        except Exception:  # noqa: S110
            pass


def make_engine(opa_url: str | None = None, opa_token: str | None = None) -> RegoEngine:
    if opa_url:
        return OpaServerEngine(opa_url, token=opa_token)
    return RegorusEngine()
