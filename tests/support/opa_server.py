"""A small OPA-REST-compatible server on 127.0.0.1, standing on the real OPA engine.

It answers the subset of OPA's REST API that ``opa-python-client`` (import
``opa_client``) and the planner's OPA backend use, with OPA's paths, status
codes and JSON shapes:

=========================  ==================================================
``GET /health``            200 ``{}``
``GET /v1/policies[/]``    200 ``{"result": [{"id", "raw", "ast"}, ...]}``
``GET /v1/policies/{id}``  200 ``{"result": {...}}`` / 404
``PUT /v1/policies/{id}``  text/plain Rego; parsed and compiled together with
                           the other modules by the real engine; 200 ``{}``,
                           or 400 ``{"code": "invalid_parameter", "message":
                           ..., "errors": [{"code", "message", "location"}]}``
``DELETE /v1/policies/{id}``  200 ``{}`` / 404 (400 if the rest no longer compiles)
``POST /v1/data[/{path}]`` body ``{"input": ...}`` -> 200 ``{"result": ...}``;
                           ``result`` omitted when undefined; a body without
                           ``input`` adds OPA's ``api_usage_warning``;
                           evaluation errors are 500 ``internal_error``
``GET /v1/data[/{path}]``  same, without input
``PUT /v1/data/{path}``    JSON value stored at path; 204
``DELETE /v1/data/{path}`` 204 / 404
``POST /v1/query``         ``{"query", "input"}`` -> ``{"result": [bindings]}``
=========================  ==================================================

``ast`` is partial: the package path (in OPA's term shape) and the rule
heads' names, enough for ``OpaClient.get_policies_info``. With ``token`` set,
every request needs ``Authorization: Bearer <token>`` (401 otherwise).

Fault injection (``mode``), for testing the client side:

- ``down``: nothing listens on the port (connection refused).
- ``slow``: every answer waits ``delay`` seconds first (stopping the server
  cuts the wait short).
- ``error5xx``: every request gets 500 ``internal_error``.
- ``garbage``: every request gets 200 with a body that is not JSON.
- ``reject_policy``: ``PUT /v1/policies/{id}`` gets 400 ``invalid_parameter``.

``mode`` may also be changed on a running :class:`OpaTestServer`.

Usage::

    with opa_server() as url:                  # "http://127.0.0.1:PORT"
        ...
    with OpaTestServer(token="s3cret") as srv:  # srv.url, srv.port, srv.requests
        srv.mode = "error5xx"
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit

from . import opa_reference

__all__ = ["MODES", "OpaTestServer", "RecordedRequest", "opa_server", "free_port"]

MODES = (None, "down", "slow", "error5xx", "garbage", "reject_policy")
HOST = "127.0.0.1"

_RESULT_VAR = "__medplan_srv_result__"
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# "<file>:<row>: <code>: <message>" lines in OPA error strings
_OPA_ERR_RE = re.compile(r"(?P<file>[^\s:][^:\n]*):(?P<row>\d+): (?P<code>[a-z_]+_error): (?P<msg>[^\n]*)")
_RULE_HEAD_RE = re.compile(
    r"^(?:default[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)(?=[ \t]*(?:contains\b|if\b|:=|=(?!=)|\[|\{|\(|$))",
    re.MULTILINE,
)
_KEYWORDS = {"package", "import", "default", "not", "some", "every", "with", "as", "else"}

MSG_COMPILE = "error(s) occurred while compiling module(s)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _HttpError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def _err(code: str, message: str, errors: list | None = None) -> dict:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return body


def _opa_errors(exc: Exception, default_file: str | None = None) -> list[dict]:
    """Turn the engine's error text into OPA's ``errors`` list."""
    text = getattr(exc, "message", None) or str(exc)
    errors = []
    for m in _OPA_ERR_RE.finditer(text):
        errors.append(
            {
                "code": m.group("code"),
                "message": m.group("msg").strip(),
                "location": {"file": m.group("file"), "row": int(m.group("row"))},
            }
        )
    if not errors:
        item: dict[str, Any] = {"code": getattr(exc, "code", "rego_compile_error"), "message": text}
        if default_file:
            item["location"] = {"file": default_file, "row": 1}
        errors.append(item)
    return errors


def _data_ref(segments: list[str]) -> str:
    ref = "data"
    for seg in segments:
        ref += f".{seg}" if _IDENT_RE.match(seg) else f"[{json.dumps(seg)}]"
    return ref


def _partial_ast(text: str) -> dict:
    try:
        pkg = opa_reference.module_package(text)
    except ValueError:
        pkg = ""
    path = [{"type": "var", "value": "data"}]
    for part in filter(None, re.split(r"\.", pkg)):
        path.append({"type": "string", "value": part.strip('"[]')})
    names: dict[str, None] = {}
    for m in _RULE_HEAD_RE.finditer(text):
        if m.group(1) not in _KEYWORDS:
            names.setdefault(m.group(1), None)
    return {"package": {"path": path}, "rules": [{"head": {"name": n}} for n in names]}


class _Handler(BaseHTTPRequestHandler):
    server: "_HTTPServer"
    protocol_version = "HTTP/1.0"  # one request per connection: clean shutdown
    timeout = 10  # seconds a connection may idle while sending its request

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    # --- plumbing --------------------------------------------------------

    def _send(self, status: int, body: Any = None, raw: bytes | None = None) -> None:
        payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout in mode "slow")

    def _dispatch(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner._record(RecordedRequest(self.command, self.path, dict(self.headers.items()), body))

        mode = owner.mode
        if mode == "slow":
            if owner._stopping.wait(owner.delay):
                return  # server is stopping: drop the connection
        if owner.token is not None:
            if self.headers.get("Authorization") != f"Bearer {owner.token}":
                return self._send(401, _err("unauthorized", "missing required permissions"))
        if mode == "error5xx":
            return self._send(500, _err("internal_error", "injected fault (mode=error5xx)"))
        if mode == "garbage":
            return self._send(200, raw=b'{"result": <html>this is not JSON')
        try:
            status, answer = owner._handle(self.command, self.path, body)
        except _HttpError as e:
            status, answer = e.status, e.body
        except Exception as e:  # noqa: BLE001 - report like OPA, keep serving
            status, answer = 500, _err("internal_error", str(e))
        if status == 204:
            return self._send(204)
        self._send(status, answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the request threads
    allow_reuse_address = True
    owner: "OpaTestServer"


class OpaTestServer:
    """The server; a context manager. See the module docstring."""

    def __init__(self, mode: str | None = None, token: str | None = None, delay: float = 2.0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.token = token
        self.delay = float(delay)
        self.requests: list[RecordedRequest] = []
        self._policies: dict[str, str] = {}
        self._data: dict = {}
        self._engine = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # --- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{HOST}:{self.port}"

    def start(self) -> "OpaTestServer":
        if self.port is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        if self.mode == "down":
            self.port = free_port()
            return self
        self._engine = self._build({}, {})
        self._httpd = _HTTPServer((HOST, 0), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"opa-test-server-{self.port}"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()  # waits for request threads
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None
        self.port = None

    def __enter__(self) -> "OpaTestServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- state -------------------------------------------------------------

    @property
    def policies(self) -> dict[str, str]:
        with self._lock:
            return dict(self._policies)

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _build(self, policies: dict[str, str], data: dict):
        """A compiled engine for these modules and data; raises OpaError."""
        e = opa_reference.engine(policies, data or None)
        try:
            e.eval_query("true")
        except BaseException:
            e.close()
            raise
        return e

    def _swap(self, policies: dict[str, str], data: dict, failing_id: str | None) -> None:
        try:
            new = self._build(policies, data)
        except opa_reference.OpaError as e:
            raise _HttpError(400, _err("invalid_parameter", MSG_COMPILE, _opa_errors(e, failing_id))) from None
        old, self._engine = self._engine, new
        self._policies, self._data = policies, data
        if old is not None:
            old.close()

    # --- request handling (called from handler threads) ---------------------

    def _handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, Any]:
        path = urlsplit(raw_path).path
        if path.rstrip("/") == "/health" and method == "GET":
            return 200, {}
        if path == "/v1/query" and method == "POST":
            return self._query(body)
        m = re.fullmatch(r"/v1/policies(?:/(?P<id>.*))?", path)
        if m:
            pid = unquote((m.group("id") or "").strip("/"))
            return self._policy(method, pid, body)
        m = re.fullmatch(r"/v1/data(?:/(?P<p>.*))?", path)
        if m:
            segments = [unquote(s) for s in (m.group("p") or "").split("/") if s]
            return self._data_api(method, segments, body)
        raise _HttpError(404, _err("resource_not_found", f"no handler for {method} {path}"))

    def _policy(self, method: str, pid: str, body: bytes) -> tuple[int, Any]:
        if not pid:
            if method != "GET":
                raise _HttpError(405, _err("invalid_parameter", "method not allowed"))
            with self._lock:
                items = sorted(self._policies.items())
            return 200, {"result": [{"id": k, "raw": v, "ast": _partial_ast(v)} for k, v in items]}
        not_found = _err("resource_not_found", f'storage_not_found_error: policy id "{pid}"')
        if method == "GET":
            with self._lock:
                text = self._policies.get(pid)
            if text is None:
                raise _HttpError(404, not_found)
            return 200, {"result": {"id": pid, "raw": text, "ast": _partial_ast(text)}}
        if method == "PUT":
            if self.mode == "reject_policy":
                raise _HttpError(
                    400,
                    _err(
                        "invalid_parameter",
                        MSG_COMPILE,
                        [{"code": "rego_compile_error", "message": "policy rejected (fault injection: reject_policy)",
                          "location": {"file": pid, "row": 1}}],
                    ),
                )
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise _HttpError(400, _err("invalid_parameter", "policy is not valid UTF-8")) from None
            with self._lock:
                self._swap({**self._policies, pid: text}, self._data, pid)
            return 200, {}
        if method == "DELETE":
            with self._lock:
                if pid not in self._policies:
                    raise _HttpError(404, not_found)
                rest = {k: v for k, v in self._policies.items() if k != pid}
                self._swap(rest, self._data, None)
            return 200, {}
        raise _HttpError(405, _err("invalid_parameter", "method not allowed"))

    def _eval(self, query: str, input_doc: Any, has_input: bool) -> list[dict]:
        with self._lock:
            engine = self._engine
            try:
                return engine.eval_query(query, input_doc if has_input else None)
            except opa_reference.OpaError as e:
                raise _HttpError(500, _err("internal_error", getattr(e, "message", str(e)), _opa_errors(e))) from None

    def _data_api(self, method: str, segments: list[str], body: bytes) -> tuple[int, Any]:
        if method in ("GET", "POST"):
            has_input, input_doc, answer = False, None, {}
            if method == "POST" and body.strip():
                try:
                    doc = json.loads(body)
                except ValueError as e:
                    raise _HttpError(400, _err("invalid_parameter", f"body contains malformed input document: {e}")) from None
                if isinstance(doc, dict) and "input" in doc:
                    has_input, input_doc = True, doc["input"]
            if method == "POST" and not has_input:
                answer["warning"] = {"code": "api_usage_warning", "message": "'input' key missing from the request"}
            rows = self._eval(f"{_RESULT_VAR} := {_data_ref(segments)}", input_doc, has_input)
            if rows:
                answer["result"] = rows[0][_RESULT_VAR]
            return 200, answer
        if method == "PUT":
            try:
                value = json.loads(body or b"null")
            except ValueError as e:
                raise _HttpError(400, _err("invalid_parameter", f"body contains malformed JSON: {e}")) from None
            with self._lock:
                data = json.loads(json.dumps(self._data))
                if not segments:
                    if not isinstance(value, dict):
                        raise _HttpError(400, _err("invalid_parameter", "root document must be an object"))
                    data = value
                else:
                    node = data
                    for seg in segments[:-1]:
                        node = node.setdefault(seg, {})
                        if not isinstance(node, dict):
                            raise _HttpError(400, _err("invalid_parameter", "path crosses a non-object"))
                    node[segments[-1]] = value
                self._swap(dict(self._policies), data, None)
            return 204, None
        if method == "DELETE":
            with self._lock:
                data = json.loads(json.dumps(self._data))
                node = data
                for seg in segments[:-1]:
                    node = node.get(seg) if isinstance(node, dict) else None
                if not segments or not isinstance(node, dict) or segments[-1] not in node:
                    raise _HttpError(404, _err("resource_not_found", f"storage_not_found_error: {'/'.join(segments)}"))
                del node[segments[-1]]
                self._swap(dict(self._policies), data, None)
            return 204, None
        raise _HttpError(405, _err("invalid_parameter", "method not allowed"))

    def _query(self, body: bytes) -> tuple[int, Any]:
        try:
            doc = json.loads(body or b"{}")
            query = doc["query"]
        except (ValueError, KeyError, TypeError):
            raise _HttpError(400, _err("invalid_parameter", "body must be {\"query\": ..., \"input\": ...}")) from None
        rows = self._eval(query, doc.get("input"), "input" in doc)
        return 200, ({"result": rows} if rows else {})


@contextlib.contextmanager
def opa_server(mode: str | None = None, token: str | None = None, delay: float = 2.0) -> Iterator[str]:
    """Run an :class:`OpaTestServer` and yield its base URL (``http://127.0.0.1:PORT``)."""
    srv = OpaTestServer(mode=mode, token=token, delay=delay)
    srv.start()
    try:
        yield srv.url
    finally:
        srv.stop()
