"""Rego engines behind one protocol: regorus in-process (the default) and a
running OPA server through opa-python-client. Both take the same modules and
input and must return the same decision.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from planner.errors import Diagnostic, EngineError, Location, PolicyError
from planner.process import Server, ServerLost

_REGORUS_WHERE = re.compile(r"-->\s*(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)")
_REGORUS_ERROR = re.compile(r"^error:\s*(?P<msg>.*)$", re.M)


# One answer per query, in order: (True, value) or (False, the exception evaluating it raised).
Outcomes = list[tuple[bool, object]]


class RuleFailure(Exception):
    """A rule raised an error while being evaluated (not a load error)."""


def outcomes_of(answer: Callable[[object], object], items: Iterable) -> Outcomes:
    """``(True, answer(item))`` for each item, or ``(False, the exception it
    raised)``: a rule's own failure is its answer. EngineError, an engine
    that cannot answer at all, is raised."""
    out: Outcomes = []
    for item in items:
        try:
            out.append((True, answer(item)))
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001
            out.append((False, exc))
    return out


class RegoEngine(Protocol):
    name: str
    version: str

    def load(self, modules: dict[str, str]) -> None:
        """Compile modules (file name -> text); PolicyError on a bad module."""

    def set_input(self, document: dict, *, background: bool = False) -> None:
        """The input document for the evaluations that follow (``background``:
        their answers may be computed elsewhere while the caller goes on)."""

    def evaluate(self, query: str) -> object:
        """The JSON value of ``data.pkg.rule`` (None when undefined); RuleFailure on error."""

    def submit(self, queries: list[str]) -> Callable[[], Outcomes]:
        """Evaluate ``queries``: a function that returns their outcomes once
        ready; EngineError is raised, by either, when the engine cannot answer."""


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
    tens of thousands of flows the text runs to tens of megabytes, which
    orjson writes four times as fast as the standard library. What orjson
    refuses (keys that are not strings, integers beyond 64 bits) is written
    by the standard library.
    """
    return input_bytes(document).decode()


def input_bytes(document: dict) -> bytes:
    """:func:`input_json` as UTF-8."""
    try:
        return orjson.dumps(document)
    except TypeError:  # orjson.JSONEncodeError included
        return json.dumps(document, separators=(",", ":"), check_circular=False).encode()


_MISSING = object()
_UNDEFINED = "<undefined>"  # eval_rule_as_json's answer for a rule without a value
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Input:
    """A compiled copy of the policies with an input read into it, plus the
    ``with`` clause that puts a data overlay in place of some input keys.

    An input read in parts (see :class:`_InputServer`) is all in data:
    ``parts`` says where each top-level key's value is, and every query is
    evaluated ``with input as`` the object of them."""

    def __init__(self, engine, with_: str = "", parts: dict[str, str] | None = None) -> None:
        self.engine = engine
        self.parts = parts
        if parts is not None:
            # One entry a line: regorus reads no query line beyond 1,024 characters.
            with_ = "\nwith input as {\n" + ",\n".join(f"{json.dumps(key)}: {ref}" for key, ref in parts.items()) + "\n}"
        self.with_ = with_

    def overlay(self, text: str, replaced: list[str]) -> _Input:
        """A copy whose data also holds ``text``, the new values of the top-level
        keys ``replaced``, evaluated with those in place."""
        engine = self.engine.clone()
        engine.add_data_json(text)
        overlay = RegorusEngine.OVERLAY
        if self.parts is not None:
            return _Input(engine, parts=self.parts | {key: f"data.{overlay}.{key}" for key in replaced})
        return _Input(engine, "".join(f"\nwith input.{key} as data.{overlay}.{key}" for key in replaced))

    def evaluate(self, queries: list[str], policies) -> Outcomes:
        if self.with_ and len(queries) > 1:
            together = self._together(queries, policies)
            if together is not None:
                return together
        return outcomes_of(lambda query: self._value(query, policies), queries)

    def _together(self, queries: list[str], policies) -> Outcomes | None:
        """Every query's outcome from one evaluation, so that the input the
        ``with`` clause makes (an object of parts, some joined from pieces)
        is made once rather than once a query. None if the evaluation fails:
        each query is then evaluated alone, which tells whose failure it is.
        Each query's value is wrapped in an array, so that an undefined rule
        leaves its own array empty rather than the whole answer undefined."""
        wrapped = ",\n".join(f"[v | v := {query}]" for query in queries)
        try:
            answer = json.loads(self.engine.eval_query_as_json(f"value := [\n{wrapped}\n]{self.with_}"))
        except RuntimeError:
            return None
        results = answer.get("result") or []
        if not results:
            return None
        values = results[0]["bindings"]["value"]
        return [(True, found[0] if found else _no_value(policies, query)) for query, found in zip(queries, values)]

    def _value(self, query: str, policies) -> object:
        try:
            if not self.with_:
                return json.loads(self.engine.eval_rule_as_json(query))
            answer = json.loads(self.engine.eval_query_as_json(f"value := {query}{self.with_}"))
        except RuntimeError as exc:
            where, message = regorus_message(str(exc))
            if message == "not a valid rule path":
                return None
            raise RuleFailure(f"{message} (at {where})" if where else message) from exc
        results = answer.get("result") or []
        return results[0]["bindings"]["value"] if results else _no_value(policies, query)


def _no_value(policies, query: str) -> object:
    """What ``eval_rule_as_json`` answers for a rule without a value, so that
    evaluating over an overlay answers the same: None for a path that is not a
    rule, the string ``<undefined>`` for an undefined rule. ``policies`` is
    the engine with the policies alone."""
    try:
        policies.eval_rule_as_json(query)  # the policies alone: is it a rule?
    except RuntimeError as exc:
        if regorus_message(str(exc))[1] == "not a valid rule path":
            return None
    return _UNDEFINED


class _RemoteInput:
    """An input read by a forked copy of this process (a :class:`~planner.process.Server`),
    which keeps it under a number, and each overlay made of it under the next.

    ``share``: this process waits for the answers rather than working
    meanwhile, so the copy may share its evaluations with a copy of itself
    (:func:`_shared`)."""

    def __init__(self, server, number: int = 0, numbers: Iterator[int] | None = None, share: bool = False) -> None:
        self.server = server
        self.number = number
        self.numbers = numbers if numbers is not None else itertools.count(number + 1)
        self.share = share

    def overlay(self, text: str, replaced: list[str]) -> _RemoteInput:
        number = next(self.numbers)
        self.server.post(("overlay", self.number, text, replaced, number))
        return _RemoteInput(self.server, number, self.numbers, self.share)

    def submit(self, queries: list[str]) -> Callable[[], Outcomes]:
        ticket = self.server.ask(("evaluate", self.number, queries, self.share))
        return lambda: self.server.answer(ticket)


# From this many queries, an evaluation that may be shared is (see _shared).
SHARE_FROM_QUERIES = 4


def _shared(held: _Input, queries: list[str], policies) -> Outcomes:
    """``held.evaluate(queries, policies)``, every other query evaluated by
    a forked copy of this process meanwhile, on the other core; the copy
    shares the input read here, so nothing is read twice. Where no copy can
    be made, or it fails or takes far longer than this half, its queries are
    evaluated here after all, with the same answers."""
    from planner.process import beside, can_fork

    if len(queries) < SHARE_FROM_QUERIES or not can_fork():
        return held.evaluate(queries, policies)
    ours, found = beside(lambda: held.evaluate(queries[0::2], policies), lambda: held.evaluate(queries[1::2], policies), 30.0)
    out: Outcomes = [None] * len(queries)  # type: ignore[list-item]
    out[0::2], out[1::2] = ours, found
    return out


def _read_input(policies, document: dict) -> _Input:
    engine = policies.clone()
    engine.set_input_json(input_json(document))
    return _Input(engine)


class _InputServer:
    """The forked copy's side of :class:`_RemoteInput`: its inputs by number.

    A copy forked with the policies and a document reads that document first
    (input 0). A copy started early (:func:`start_input_helper`) is sent the
    policies' modules, then a document in parts, each a few top-level keys as
    JSON that it reads into data as they come, and last where each key went:
    that is input 0. Every request but ``evaluate`` has no answer (None), so
    this process may send it with :meth:`~planner.process.Server.post`."""

    def __init__(self, policies=None, document: dict | None = None, spill: _Spill | None = None) -> None:
        self.policies = policies
        self.inputs: dict[int, _Input] = {} if document is None else {0: _read_input(policies, document)}
        self.building = None  # the copy of the policies that a document's parts go into
        self.spill = spill  # where parts sent as (offset, size) are

    def answer(self, request: tuple):
        kind = request[0]
        if kind == "evaluate":
            _, number, queries, share = request
            if share:
                return _shared(self.inputs[number], queries, self.policies)
            return self.inputs[number].evaluate(queries, self.policies)
        if kind == "overlay":
            _, number, text, replaced, new = request
            self.inputs[new] = self.inputs[number].overlay(text, replaced)
            return None
        if kind == "policies":
            self.policies = RegorusEngine.compiled(request[1])
            return None
        if kind == "part":
            if self.building is None:
                self.building = self.policies.clone()
            for text in request[1]:
                self.building.add_data_json(text if isinstance(text, str) else self.spill.read(*text))
            return None
        if kind == "input":
            _, parts, new = request
            self.inputs[new], self.building = _Input(self.building, parts=parts), None
            if self.spill is not None:  # every part is read
                self.spill.close()
                self.spill = None
            return None
        raise ValueError(f"unknown request {kind!r}")


class _Spill:
    """A file in memory that this process and a helper both hold (made
    before the helper is forked): a part of a document is written to it and
    the request says where, so that sending a part never waits for the
    helper, busy reading the one before, to take it in through the pipe.
    Each process closes its own descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        self.size = 0

    @classmethod
    def make(cls) -> _Spill | None:
        """A new empty file, or None where there can be none (not Linux, no memory files)."""
        try:
            return cls(os.memfd_create("medplan-input", os.MFD_CLOEXEC))
        except (AttributeError, OSError):
            return None

    def write(self, data: bytes) -> tuple[int, int]:
        """Append ``data``: its (offset, size). OSError if the file cannot take it."""
        assert self.fd is not None
        start, view = self.size, memoryview(data)
        while view:
            view = view[os.pwrite(self.fd, view, self.size) :]
            self.size = start + len(data) - len(view)
        return start, len(data)

    def read(self, start: int, size: int) -> str:
        assert self.fd is not None
        data = os.pread(self.fd, size, start)
        if len(data) != size:
            raise ValueError("a part of the input is missing")
        return data.decode()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# A forked copy started while this process is small, which reads the next
# large input document in parts as they are built (see start_input_helper),
# and the file in memory the parts go through.
_helper: Server | None = None
_helper_spill: _Spill | None = None


def start_input_helper() -> None:
    """Start a forked copy that will read the next input document given to
    :meth:`RegorusEngine.stream`, part by part, as it is built.

    For a command about to read a large spec and then wait for the answers
    (``medplan validate``): the copy reads each part of the document on the
    other core while this process builds the next, and evaluates the rules
    once the last is in, half of them in a copy of itself (:func:`_shared`),
    since this process then only waits. The parts go through a file in
    memory (:class:`_Spill`), so that building never waits for the copy's
    reading. Forked now, while this process is small, it costs little to
    make. Nothing happens where this process may not fork
    (``MEDPLAN_PARALLEL=0``, other threads, not Linux).
    """
    global _helper, _helper_spill
    if _helper is None:
        spill = _Spill.make()
        _helper = Server.start(lambda: _InputServer(spill=spill), _InputServer.answer)
        if _helper is None and spill is not None:
            spill.close()
        else:
            _helper_spill = spill


def stop_input_helper() -> None:
    """Stop a started helper that no engine took."""
    helper, spill = _take_input_helper()
    if helper is not None:
        helper.stop()
    if spill is not None:
        spill.close()


def _take_input_helper() -> tuple[Server | None, _Spill | None]:
    global _helper, _helper_spill
    taken = _helper, _helper_spill
    _helper = _helper_spill = None
    return taken


@dataclass
class _Sent:
    """A top-level key's value as sent to a helper: where in data it went, in
    one piece or several (``growing``: how many of its entries are sent, while
    more may come)."""

    value: object
    refs: list[str]
    growing: int | None = None

    @property
    def where(self) -> str:
        """The expression of the value in data: its pieces joined, if several.

        The pieces are disjoint objects, joined by a comprehension: it shares
        their values, where ``object.union_n`` merges them as if they might
        overlap (0.03 s against 0.1 s for 20,000 flows, in every evaluation
        of the input)."""
        if len(self.refs) == 1:
            return self.refs[0]
        return "{part_key: part_value | some part in [\n" + ",\n".join(self.refs) + "\n]; some part_key, part_value in part}"  # a line each (see _Input)


@dataclass
class _Stream:
    """The parts of the next input document sent to a helper, by key (through ``spill``, if there is one)."""

    server: Server
    spill: _Spill | None = None
    sent: dict[str, _Sent] = field(default_factory=dict)
    names: Iterator[int] = field(default_factory=itertools.count)  # each piece goes under a new name

    def send(self, part: dict, growing: bool = False) -> None:
        texts = []
        for key, value in part.items():
            before = self.sent.get(key)
            if before is not None and before.value is value:
                if before.growing is None:
                    continue  # sent whole already
                # More of a growing object: the entries added since.
                piece = dict(itertools.islice(value.items(), before.growing, None))
                if not piece:
                    before.growing = len(value) if growing else None
                    continue
                sent = before
            else:  # a new key, or a key sent again as another value (read again)
                piece, sent = value, _Sent(value, [])
                self.sent[key] = sent
            name = f"{RegorusEngine.PARTS}{next(self.names)}"
            sent.refs.append(f"data.{name}")
            sent.growing = len(value) if growing and isinstance(value, dict) else None
            texts.append(self._text({name: piece}))
        if texts:
            self.server.post(("part", texts))

    def _text(self, part: dict) -> str | tuple[int, int]:
        """``part`` as JSON text, or where in the spill it was written."""
        if self.spill is not None:
            try:
                return self.spill.write(input_bytes(part))
            except OSError:  # no room: through the pipe from now on
                self.spill.close()
                self.spill = None
        return input_json(part)

    def matches(self, document: object) -> bool:
        """Whether every part sent is the very value of ``document``'s key (whose keys are all strings)."""
        return (
            isinstance(document, dict)
            and bool(self.sent)
            and all(isinstance(key, str) for key in document)
            and all(document.get(key, _MISSING) is sent.value for key, sent in self.sent.items())
        )

    def finish(self, document: dict) -> _RemoteInput:
        """Send the rest of ``document``: its input, in the helper. ServerLost if the helper is gone."""
        self.send(document)  # what was sent whole is not sent again; growing objects send what they gained
        self.server.post(("input", {key: self.sent[key].where for key in document}, 0))
        self.close()
        return _RemoteInput(self.server, 0, share=True)

    def close(self) -> None:
        """Close this process's side of the spill (the helper reads on from its own)."""
        if self.spill is not None:
            self.spill.close()
            self.spill = None


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

    A large document whose answers may come later (``set_input(document,
    background=True)``, then :meth:`submit`) is read and evaluated by a
    forked copy of this process on another core, while this one goes on; the
    copy keeps it, so a later document that repeats it is evaluated there
    too. If the copy cannot be made or fails, the work is done here, with
    the same answers.

    A document may also be read in parts as it is built (:meth:`stream`),
    by a copy forked early (:func:`start_input_helper`).
    """

    name = "regorus"
    # Where replaced keys of an input are kept in the data document.
    OVERLAY = "__medplan_input_overlay"
    # Where the parts of an input read in parts are (each followed by a number).
    PARTS = "__medplan_input_part_"
    KEEP = 2  # full inputs kept for reuse
    # From this many entries in the document's top-level collections, a
    # background read goes to a forked copy.
    BACKGROUND_FROM_ENTRIES = 5_000

    def __init__(self) -> None:
        import regorus

        self._regorus = regorus
        self._engine = regorus.Engine()  # the policies, without input
        self._packages: set[str] = set()
        self._inputs: list[tuple[dict, _Input | _RemoteInput]] = []  # (document, its input), newest first
        self._current: _Input | _RemoteInput = _Input(self._engine)
        self._document: dict | None = None  # the current input's document
        self._servers: list[Server] = []
        self._modules: dict[str, str] = {}
        self._stream: _Stream | None = None  # the parts of the next document sent to a helper
        try:
            from importlib.metadata import version

            self.version = version("celine-regorus")
        except Exception:  # pragma: no cover - metadata missing only in odd installs
            self.version = "unknown"

    def load(self, modules: dict[str, str]) -> None:
        self.compiled(modules, self._engine)
        self._modules = dict(modules)
        self._packages = set(self._engine.get_packages())
        self.close()
        self._inputs.clear()
        self._current, self._document = _Input(self._engine), None

    @staticmethod
    def compiled(modules: dict[str, str], engine=None):
        """``engine`` (or a new regorus engine) with ``modules`` added; PolicyError if one does not compile."""
        import regorus

        engine = engine if engine is not None else regorus.Engine()
        errors: list[Diagnostic] = []
        for name in sorted(modules):
            try:
                engine.add_policy(name, modules[name])
            except RuntimeError as exc:
                where, message = regorus_message(str(exc))
                errors.append(Diagnostic(where or Location(name), f"Rego: {message}"))
        if errors:
            raise PolicyError("policy does not compile", errors)
        return engine

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

    def stream(self, part: dict, *, growing: bool = False) -> None:
        """Some top-level keys of the next input document, as soon as they are
        built: a helper started by :func:`start_input_helper`, if there is one,
        reads them on the other core meanwhile. A key given again with the
        very value it was given is not sent again. A document given to
        :meth:`set_input` whose keys are these very values is then read and
        evaluated there (only its other keys are sent then, and the entries
        growing objects gained since); another document leaves the parts
        waiting for theirs.

        ``growing``: the values are objects still being filled, only ever at
        their end. The entries so far are sent now; a later call with the
        same object sends those added since, and the helper joins the pieces
        (once for all the rules, see :meth:`_Input._together`)."""
        try:
            if self._stream is None:
                server, spill = _take_input_helper()
                if server is None:
                    return
                self._servers.append(server)
                self._stream = _Stream(server, spill)
                server.post(("policies", self._modules))
            self._stream.send(part, growing)
        except ServerLost:
            self._without_servers()

    def set_input(self, document: dict, *, background: bool = False) -> None:
        self._document = document
        try:
            self._current = self._input_for(document, background)
        except ServerLost:
            self._without_servers()
            self._current = self._input_for(document, False)

    def _input_for(self, document: dict, background: bool) -> _Input | _RemoteInput:
        for base, held in self._inputs:
            replaced = self._replaced(document, base)
            if replaced is None:
                continue
            if not replaced:
                return held
            text = input_json({self.OVERLAY: {key: document[key] for key in replaced}})
            return held.overlay(text, replaced)
        held = self._streamed(document) or (self._remote(document) if background else None) or _read_input(self._engine, document)
        self._inputs.insert(0, (document, held))
        del self._inputs[self.KEEP :]
        return held

    def _streamed(self, document: dict) -> _RemoteInput | None:
        """``document``'s input in the helper its parts went to, if they are its."""
        stream = self._stream
        if stream is None or not stream.matches(document):
            return None
        self._stream = None
        return stream.finish(document)

    def _remote(self, document: dict) -> _RemoteInput | None:
        if not isinstance(document, dict) or sum(len(v) for v in document.values() if isinstance(v, (dict, list))) < self.BACKGROUND_FROM_ENTRIES:
            return None
        server = Server.start(lambda: _InputServer(self._engine, document), _InputServer.answer)
        if server is None:
            return None
        self._servers.append(server)
        return _RemoteInput(server)

    def _without_servers(self) -> None:
        """Forget every input a forked copy held (it ended), and stop the copies."""
        self._inputs = [(doc, held) for doc, held in self._inputs if isinstance(held, _Input)]
        self.close()

    def submit(self, queries: list[str]) -> Callable[[], Outcomes]:
        """Evaluate ``queries`` on the current input; a function that returns
        their outcomes (:data:`Outcomes`) once they are ready."""
        known = [q.rsplit(".", 1)[0] in self._packages for q in queries]
        asked = [q for q, ok in zip(queries, known) if ok]
        current = self._current
        if isinstance(current, _Input):
            outcomes = current.evaluate(asked, self._engine)
            pending = lambda: outcomes  # noqa: E731
        else:
            pending = self._remote_outcomes(current, asked)

        def collect() -> Outcomes:
            found = iter(pending())
            return [next(found) if ok else (True, None) for ok in known]

        return collect

    def _remote_outcomes(self, current: _RemoteInput, queries: list[str]) -> Callable[[], Outcomes]:
        document = self._document
        try:
            ask = current.submit(queries)
        except ServerLost:
            ask = None

        def outcomes() -> Outcomes:
            if ask is not None:
                try:
                    return ask()
                except ServerLost:
                    pass
            # The copy is gone: read the document here and evaluate it again.
            self._without_servers()
            held = self._input_for(document, False)
            if self._document is document:
                self._current = held
            return held.evaluate(queries, self._engine)

        return outcomes

    def evaluate(self, query: str) -> object:
        """The value of one query on the current input; RuleFailure if it fails."""
        [(ok, value)] = self.submit([query])()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop the forked copies holding inputs, or parts of one."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()


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

    def set_input(self, document: dict, *, background: bool = False) -> None:
        self._input = document

    def submit(self, queries: list[str]) -> Callable[[], Outcomes]:
        out = outcomes_of(self.evaluate, queries)
        return lambda: out

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
