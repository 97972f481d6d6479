"""YAML reading that keeps file:line:col for every node and refuses what a
compliance tool must not guess at.

The YAML 1.2 core schema is used (``no`` and ``on`` stay strings, ``010`` is
ten), a duplicate key is an error instead of silently keeping the last one,
and alias bombs, deep nesting and oversized files are refused before they
can exhaust the machine.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from planner.errors import Diagnostic, InputError, Location

MAX_FILE_BYTES = 20_000_000
MAX_DEPTH = 64
MAX_NODES = 5_000_000
MAX_ALIAS_NODES = 100_000
MAX_SCALAR_CHARS = 100_000
SPEC_SUFFIXES = (".yaml", ".yml")
MAX_FILES = 10_000

PathKey = tuple  # ("workloads", 3, "gpus")

# The YAML 1.1/1.2 type repository. Anything else (!!python/object, !Ref) is
# an application tag, refused rather than silently ignored.
_COLLECTION_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "omap", "pairs", "set")}
_SCALAR_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("binary", "timestamp", "value", "yaml")}

# C0 controls other than tab, line feed and carriage return, DEL and the C1
# controls. YAML 1.2 does not allow them written raw (only as escapes), XML 1.0
# cannot carry them at all, and in a name printed to a terminal an ESC
# sequence can rewrite what the reader sees. No spec field needs one.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CoreSchemaLoader(_Loader):  # type: ignore[misc, valid-type]
    """SafeLoader resolving plain scalars by the YAML 1.2 core schema."""


_CoreSchemaLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
]:
    _CoreSchemaLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


# A position packs a 0-based line and column into one int: a file is at most
# MAX_FILE_BYTES long, so no column reaches _COLUMNS.
_COLUMNS = 1 << 25


class _Where:
    """Positions inside one collection: its own, each child value's and, in a
    mapping, each key's. Scalars are positions only."""

    __slots__ = ("at", "values", "keys")

    def __init__(self, at: int, values, keys: dict | None = None):
        self.at = at
        self.values = values  # dict (mapping) or list (sequence) of children's positions
        self.keys = keys


def _at(position) -> int:
    return position.at if isinstance(position, _Where) else position


@dataclass
class SourceFile:
    """One YAML file turned into plain data plus a location for every node."""

    path: str
    data: object
    root: object = 0  # the position of the document's node (an int or a _Where)
    raw: bytes = b""  # the bytes as read: hashed, and kept in plan.json
    light: bool = False  # read with the positions of deep keys and scalars left out (see parse_block)

    def _location(self, position) -> Location:
        at = _at(position)
        return Location(self.path, at // _COLUMNS + 1, at % _COLUMNS + 1)

    def locate(self, path: PathKey, *, key: bool = False) -> Location:
        """The location of ``path``, or of its nearest ancestor that exists."""
        found = _walk(self.root, path, key)
        if found is None:  # a position the light reading left out: read the text again, in full
            from planner.spec.fastyaml import parse_block

            self.root, self.light = parse_block(self.raw.decode("utf-8-sig"))[1], False
            found = _walk(self.root, path, key)
        return self._location(found)


def _walk(root, path: PathKey, key: bool):
    """The position of ``path`` (of its key, with ``key``) under ``root``, or
    of its nearest ancestor that exists; None if a light reading left it out."""
    value, key_at = root, root
    position = root
    for part in path:
        if not isinstance(position, _Where):
            break
        children = position.values
        if isinstance(children, dict):
            if position.keys is None and (key or part not in children):
                return None  # absent, or a scalar: only the full reading tells
            if part not in children:
                break
            if key:
                key_at = position.keys[part]
        elif not isinstance(part, int) or not 0 <= part < len(children):
            break
        elif children[part] is None:
            return None
        position = value = children[part]
    return key_at if key else value


def format_path(path: PathKey) -> str:
    """``("workloads", 3, "gpus")`` -> ``workloads[3].gpus``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = str(part)
            if not part.isprintable():
                # A quoted key may hold a line break or tab: keep the path on one line.
                part = repr(part)[1:-1]
            out += f".{part}" if out else part
    return out


def _loc(file: str, mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _mark(at: int) -> yaml.Mark:
    return yaml.Mark("", 0, at // _COLUMNS, at % _COLUMNS, None, None)


class TailRead:
    """The second part of a large block-style file (``fastyaml.split``),
    read by a forked copy of this process while this one reads the first.

    Started before the spec is loaded, for its largest file (see
    :mod:`planner.startup`); this process reads the first part
    (:meth:`read_first`, or :func:`parse_yaml` when it comes to the file) and
    joins the two, the same data and positions as reading the whole. Whatever
    goes wrong (the file changed, the copy failed or took too long, the parts
    do not fit) ends in the whole file being read here, as without it.
    ``done`` is the read end of a pipe that reaches its end when the copy does
    (:func:`planner.graph.start_route_worker` waits for it).
    """

    TIMEOUT = 30.0  # at least this long for the copy, and four times the first part's time

    def __init__(self, text: str, head: str, key: str, light: bool, forked, done: int):
        self.text, self.head, self.key, self.light = text, head, key, light
        self.forked = forked
        self.done: int | None = done
        self.first: tuple | None = None  # the first part as read here and the seconds it took, once read

    @classmethod
    def start(cls, path: Path, light: bool = False, share: float | None = None) -> TailRead | None:
        """Start reading the second part of the file at ``path``, from about
        the ``share`` of its lines on (:func:`~planner.spec.fastyaml.split`);
        None where it has no second part, or no copy can be made."""
        import marshal

        from planner.process import Forked, can_fork
        from planner.spec.fastyaml import pack, parse_block, split

        if not can_fork():
            return None
        try:
            if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
                return None
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return None  # reading it whole says why
        parts = split(text) if share is None else split(text, share)
        if parts is None:
            return None
        head, tail, first_line, key = parts
        try:
            done, holding = os.pipe()  # the copy holds the write end until it ends
        except OSError:
            return None
        forked = Forked.start(lambda: marshal.dumps(pack(parse_block(tail, light, first_line))))
        os.close(holding)
        if forked is None:
            os.close(done)
            return None
        return cls(text, head, key, light, forked, done)

    def read_first(self) -> None:
        """Read the first part now, while the copy reads the second (else :meth:`read` does)."""
        import time

        from planner.spec.fastyaml import parse_block

        started = time.monotonic()
        try:
            head = parse_block(self.head, self.light)
        except Exception:  # noqa: BLE001 - read the whole file then, which says what is wrong
            head = None
        self.first = (head, time.monotonic() - started)

    def read(self, text: str, light: bool) -> tuple[dict, _Where] | None:
        """``parse_block(text, light)`` from the two parts, or None (read it whole then)."""
        import marshal

        from planner.spec.fastyaml import join, unpack

        try:
            if text != self.text or light != self.light:
                return None
            if self.first is None:
                self.read_first()
            head, took = self.first
            packed = self.forked.result(timeout=max(self.TIMEOUT, 4 * took))
            if head is None or packed is None:
                return None
            return join(head, unpack(marshal.loads(packed)), self.key)
        except Exception:  # noqa: BLE001 - a tail that cannot be read: read it whole
            return None
        finally:
            self.close()

    def close(self) -> None:
        self.forked.close()
        if self.done is not None:
            os.close(self.done)
            self.done = None


def expand_paths(paths: list[str | Path]) -> list[tuple[Path, str]]:
    """Files named, plus every .yaml/.yml file below directories, sorted."""
    out: list[tuple[Path, str]] = []
    errors: list[Diagnostic] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix in SPEC_SUFFIXES)
            if not found:
                errors.append(Diagnostic(Location(str(p)), "directory holds no .yaml or .yml spec files"))
            out.extend((q, str(q)) for q in found)
        elif p.exists():
            out.append((p, str(p)))
        else:
            errors.append(Diagnostic(Location(str(p)), "no such file or directory"))
    if errors:
        raise InputError("cannot read input", errors)
    if not out:
        raise InputError("no input", [Diagnostic(Location("<args>"), "no spec files given")])
    if len(out) > MAX_FILES:
        raise InputError("too many files", [Diagnostic(Location(str(paths[0])), f"more than {MAX_FILES:,} spec files")])
    seen: set[Path] = set()
    unique = []
    for path, name in out:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((path, name))
    return unique


def read_yaml(path: Path, display: str | None = None, *, light: bool = False, tail: TailRead | None = None) -> SourceFile:
    """Read one spec file (``light`` and ``tail``: see :func:`parse_yaml`). Raises InputError with every problem it finds."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(
                "file too large",
                [Diagnostic(Location(name), f"file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}")],
            )
        # Read one byte past the limit and no more: a device or pipe
        # (/dev/zero, a FIFO) reports size 0 and never ends.
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(
            "cannot read file", [Diagnostic(Location(name), f"cannot read file: {exc.strerror or exc}")]
        ) from exc
    return parse_yaml(raw, name, light=light, tail=tail)


def parse_yaml(raw: bytes, name: str, *, light: bool = False, tail: TailRead | None = None) -> SourceFile:
    """Parse bytes of one YAML document into a SourceFile.

    With ``light``, a block-style file keeps the positions of its deep keys
    and scalars only if asked for one of them (:func:`~planner.spec.fastyaml.parse_block`).
    ``tail``: the second part of this file, read elsewhere (:class:`TailRead`)."""
    if len(raw) > MAX_FILE_BYTES:
        raise InputError("file too large", [Diagnostic(Location(name), f"file is larger than {MAX_FILE_BYTES:,} bytes")])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            "not UTF-8", [Diagnostic(Location(name, line, col), f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})")]
        ) from exc
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise InputError("binary file", [Diagnostic(Location(name, line, 1), "file contains a NUL character; expected YAML text")])
    # Block-style specs are read line by line; the line reader steps aside
    # (returns None) for anything else and for every error.
    from planner.spec.fastyaml import parse_block  # imported here: it imports this module

    fast = tail.read(text, light) if tail is not None else None
    if fast is None:
        fast = parse_block(text, light)
    if fast is not None:
        return SourceFile(name, fast[0], fast[1], raw=raw, light=light)
    try:
        data, root = _Builder(text, name).document()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _loc(name, mark) if mark is not None else Location(name)
        problem = _explain(exc, text)
        raise InputError("invalid YAML", [Diagnostic(where, f"invalid YAML: {problem}")]) from exc
    except yaml.YAMLError as exc:
        raise InputError("invalid YAML", [Diagnostic(Location(name), f"invalid YAML: {exc}")]) from exc
    except RecursionError as exc:
        raise InputError("invalid YAML", [Diagnostic(Location(name), "nesting is too deep")]) from exc
    return SourceFile(name, data, root, raw=raw)


_HINTS = {
    "did not find expected '-' indicator": "check the indentation of this line against the list above it",
    "did not find expected key": "check the indentation of this line against the keys above it",
    "mapping values are not allowed here": "a ':' followed by a space inside a plain value; quote the value or fix the indentation",
    "found character '\\t' that cannot start any token": "YAML does not allow tabs for indentation; use spaces",
}


def _explain(exc: yaml.MarkedYAMLError, text: str = "") -> str:
    """PyYAML's problem, with the context it dropped and a hint where one helps."""
    problem = exc.problem or exc.context or "invalid YAML"
    mark = exc.problem_mark
    if problem == "found character that cannot start any token" and mark is not None:
        # libyaml leaves out which character; the pure-Python reader names it.
        lines = text.split("\n")
        line = lines[mark.line] if mark.line < len(lines) else ""
        if mark.column < len(line):
            problem = f"found character {line[mark.column]!r} that cannot start any token"
    if "maximum nesting depth" in problem:
        return f"nesting is too deep (more than {MAX_DEPTH} levels)"
    text = problem
    if exc.context and exc.context_mark is not None and exc.problem_mark is not None and exc.context_mark.line != exc.problem_mark.line:
        text += f" ({exc.context} that starts at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
    for needle, hint in _HINTS.items():
        if problem.startswith(needle):
            text += f"; {hint}"
            break
    return text


_TOO_LONG = "too many digits"


_STR = "tag:yaml.org,2002:str"
_NOT_SIMPLE = object()
_RESOLVERS = _CoreSchemaLoader.yaml_implicit_resolvers


def _implicit_tag(value: str) -> str:
    """The core schema's tag for an untagged plain scalar."""
    for tag, pattern in _RESOLVERS.get(value[:1], ()):
        if pattern.match(value):
            return tag
    return _STR


def _construct(value: str, tag: str):
    """The value of scalar text with a known tag; ValueError if there is none."""
    if tag == _STR:
        return value
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return value.lower() == "true"
    return _typed(value, tag)


def _plain(value: str):
    """The value of an untagged plain scalar, as both the event builder and
    the line reader (``fastyaml``) resolve it; ValueError if there is none."""
    return _construct(value, _implicit_tag(value))


def _typed(value: str, tag: str):
    if tag == "tag:yaml.org,2002:int":
        text = value.replace("_", "")
        if len(text.lstrip("+-")) > 30:
            # No count in a spec needs more digits; Python refuses to print
            # an int of more than 4,300 digits, so bound them here.
            raise ValueError(_TOO_LONG)
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)
    if tag == "tag:yaml.org,2002:float":
        lowered = value.lower()
        if lowered.endswith("nan"):
            return math.nan
        if lowered.endswith("inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        return float(value)
    if tag in _SCALAR_TAGS:
        # Explicit standard tags other than these (binary, timestamp…)
        # carry no meaning in a spec: keep the text.
        return value
    raise ValueError(f"unsupported YAML tag {tag!r}")


def _copy(value):
    """A fresh copy of an anchored value, for one of its aliases."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class _Builder:
    """Builds plain data and positions straight from the parser's events.

    One pass, no node tree: a 6 MB spec is about 700,000 events. Aliases are
    copies of their anchored value, counted by the nodes they expand to, so
    an alias bomb is refused before any copy is made.
    """

    def __init__(self, text: str, name: str):
        self.loader = _Loader(text)
        self.get = self.loader.get_event
        self.name = name
        self.count = 0
        self.reused = 0
        self.anchors: dict[str, tuple[object, object, int]] = {}  # value, position, nodes
        self.open: set[str] = set()  # anchors of the collections being built
        self.path: list = []  # keys and indexes down to the node being built
        self.key_marks: list = []  # per level: the position of its key (None in a sequence)
        self.errors: list[Diagnostic] = []
        # Raw control characters anywhere? Otherwise only double-quoted
        # scalars (escapes) can hold one.
        self.raw_controls = _CONTROL.search(text) is not None

    def document(self) -> tuple[object, object]:
        """The one document's data and root position ({} for an empty file)."""
        try:
            self.get()  # stream start
            if isinstance(self.get(), yaml.StreamEndEvent):
                return {}, 0
            try:
                data, root, _ = self._node(self.get(), 0)
            except InputError:
                # A syntax error or a second document further down comes first.
                self._several(self._rest(complete=False))
                raise
            self._several(self._rest(complete=True))
            if self.errors:
                raise InputError("invalid YAML", self.errors)
            return data, root
        finally:
            self.loader.dispose()

    def _several(self, second) -> None:
        if second is not None:
            raise InputError(
                "several documents",
                [Diagnostic(_loc(self.name, second.start_mark), "expected one YAML document per file; split the others into their own files")],
            )

    def _rest(self, complete: bool):
        """Read the rest of the stream for syntax errors and, in documents
        after the first, undefined aliases. The second document's first
        event, or None."""
        second = None
        anchors: set[str] = set()
        check = False
        starting = False
        while True:
            event = self.get()
            kind = type(event)
            if kind is yaml.StreamEndEvent:
                return second
            if kind is yaml.DocumentStartEvent:
                anchors, check, starting = set(), complete or second is not None, second is None
                continue
            if starting:
                second, starting = event, False
            if kind is yaml.AliasEvent:
                if check and event.anchor not in anchors:
                    raise yaml.composer.ComposerError(None, None, "found undefined alias", event.start_mark)
            elif getattr(event, "anchor", None) is not None:
                anchors.add(event.anchor)

    def _fail(self, at: int, message: str, path: list | None = None) -> None:
        where = format_path(self.path if path is None else path)
        raise InputError("invalid YAML", [Diagnostic(self._location(at), message, where)])

    def _location(self, at: int) -> Location:
        return Location(self.name, at // _COLUMNS + 1, at % _COLUMNS + 1)

    def _node(self, event, depth: int) -> tuple[object, object, int]:
        """Build the node that ``event`` starts: (value, position, nodes)."""
        mark = event.start_mark
        at = mark.line * _COLUMNS + mark.column
        kind = type(event)
        if kind is yaml.AliasEvent:
            return self._alias(event, at)
        self.count += 1
        if self.count > MAX_NODES:
            self._fail(at, f"document has more than {MAX_NODES:,} nodes; refusing to load")
        if depth > MAX_DEPTH:
            self._fail(at, f"nesting is too deep (more than {MAX_DEPTH} levels)")
        if kind is yaml.ScalarEvent:
            built = self._scalar(event, at), at, 1
        else:
            tag = event.tag
            if tag is not None and tag != "!" and tag not in _COLLECTION_TAGS:
                # As for scalars: an application tag (!!python/object, !Ref) has no
                # meaning in a spec, and dropping it silently would hide the mistake.
                self._fail(at, f"unsupported YAML tag {tag!r}")
            anchor = event.anchor
            if anchor is not None:
                self.open.add(anchor)
            if kind is yaml.SequenceStartEvent:
                built = self._sequence(at, depth)
            else:
                built = self._mapping(at, depth)
            self.open.discard(anchor)
        if event.anchor is not None:
            self._anchor(event, built)
        return built

    def _anchor(self, event, built) -> None:
        anchor = event.anchor
        if anchor in self.anchors:
            first = self.anchors[anchor][1]
            raise yaml.composer.ComposerError(
                "found duplicate anchor; first occurrence", _mark(_at(first)), "second occurrence", event.start_mark
            )
        self.anchors[anchor] = built

    def _alias(self, event, at: int) -> tuple[object, object, int]:
        found = self.anchors.get(event.anchor)
        if found is None and event.anchor in self.open:
            self._fail(at, f"alias *{event.anchor} is inside the node it names (a structure that contains itself); refusing to load")
        if found is None:
            raise yaml.composer.ComposerError(None, None, "found undefined alias", event.start_mark)
        value, position, nodes = found
        self.reused += nodes
        self.count += nodes
        if self.reused > MAX_ALIAS_NODES:
            self._alias_bomb()
        if self.count > MAX_NODES:
            self._fail(at, f"document has more than {MAX_NODES:,} nodes; refusing to load")
        return _copy(value), position, nodes

    def _alias_bomb(self) -> None:
        # The expansion is at an alias, which has no line of its own in the
        # data: point at the key that holds it.
        levels = [i for i, m in enumerate(self.key_marks) if m is not None]
        where = self._location(self.key_marks[levels[-1]]) if levels else Location(self.name)
        path = self.path[: levels[-1] + 1] if levels else []
        raise InputError(
            "invalid YAML",
            [Diagnostic(where, f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes; refusing to load (alias bomb?)", format_path(path))],
        )

    def _sequence(self, at: int, depth: int) -> tuple[list, _Where, int]:
        values: list = []
        positions: list = []
        nodes = 1
        path, key_marks, get = self.path, self.key_marks, self.get
        path.append(0)
        key_marks.append(None)
        event = get()
        while type(event) is not yaml.SequenceEndEvent:
            path[-1] = len(values)
            value, position, n = self._node(event, depth + 1)
            values.append(value)
            positions.append(position)
            nodes += n
            event = get()
        path.pop()
        key_marks.pop()
        return values, _Where(at, positions), nodes

    def _mapping(self, at: int, depth: int) -> tuple[dict, _Where, int]:
        out: dict = {}
        positions: dict = {}
        keys: dict = {}
        merges: list = []
        nodes = 1
        path, key_marks, get = self.path, self.key_marks, self.get
        path.append(None)
        key_marks.append(None)
        # Plain, untagged, unanchored text that no resolver claims (most keys
        # and ids) is a string needing no further checks: taken inline.
        plain = not self.raw_controls
        shallow = plain and depth < MAX_DEPTH
        Scalar = yaml.ScalarEvent
        event = get()
        while type(event) is not yaml.MappingEndEvent:
            mark = event.start_mark
            key_at = mark.line * _COLUMNS + mark.column
            if (
                plain
                and type(event) is Scalar
                and event.tag is None
                and event.anchor is None
                and event.implicit[0]
                and event.value[:1] not in _RESOLVERS
                and len(event.value) <= MAX_SCALAR_CHARS
            ):
                key = event.value
            elif type(event) is yaml.ScalarEvent and event.tag is None and event.implicit[0] and event.value == "<<":
                value, position, n = self._node(get(), depth + 1)
                merges.append((value, position))
                nodes += n
                event = get()
                continue
            else:
                key = self._key(event, key_at)
            path[-1] = key
            key_marks[-1] = key_at
            if key in keys:
                self.errors.append(
                    Diagnostic(
                        self._location(key_at),
                        f"duplicate key {key!r} (first defined at line {keys[key] // _COLUMNS + 1})",
                        format_path(self.path),
                    )
                )
                reported = len(self.errors)
                self._node(get(), depth + 1)  # read past, not kept
                del self.errors[reported:]
            else:
                keys[key] = key_at
                event = get()
                value = _NOT_SIMPLE
                if (
                    shallow
                    and type(event) is Scalar
                    and event.tag is None
                    and event.anchor is None
                    and event.implicit[0]
                    and len(event.value) <= MAX_SCALAR_CHARS
                    and self.count < MAX_NODES
                ):
                    text = event.value
                    if text[:1] not in _RESOLVERS:
                        value = text
                    elif text.isdigit() and text.isascii() and len(text) <= 30:
                        value = int(text)  # what the core schema's int resolver and _typed give
                if value is not _NOT_SIMPLE:
                    self.count += 1
                    mark = event.start_mark
                    out[key], positions[key] = value, mark.line * _COLUMNS + mark.column
                    nodes += 1
                else:
                    out[key], positions[key], n = self._node(event, depth + 1)
                    nodes += n
            event = get()
        path.pop()
        key_marks.pop()
        for value, position in merges:
            self._merge(out, positions, keys, value, position)
        return out, _Where(at, positions, keys), nodes

    def _merge(self, out: dict, positions: dict, keys: dict, value, position) -> None:
        """Entries of a merge key's mapping(s) that the mapping does not set itself."""
        sources = zip(value, position.values) if isinstance(value, list) else [(value, position)]
        for source, where in sources:
            if not isinstance(source, dict):
                self._fail(_at(where), "a merge key (<<) takes a mapping or a list of mappings")
            for key, item in source.items():
                if key not in out:
                    out[key] = item
                    positions[key] = where.values[key]
                    keys[key] = where.keys[key]

    def _key(self, event, at: int) -> str:
        kind = type(event)
        if kind is yaml.ScalarEvent:
            value = self._scalar(event, at, key=True)
            if event.anchor is not None:
                self._anchor(event, (value, at, 1))
        elif kind is yaml.AliasEvent:
            value, position, _ = self._alias(event, at)
            at = _at(position)
        else:
            value = None
        if not isinstance(value, (str, int, bool, float)):
            self._fail(at, "mapping keys must be plain strings", self.path[:-1])
        return value if isinstance(value, str) else str(value)

    def _scalar(self, event, at: int, key: bool = False):
        value = event.value
        path = self.path[:-1] if key else self.path  # a key's problems belong to its mapping
        if len(value) > MAX_SCALAR_CHARS:
            self._fail(at, f"value is {len(value):,} characters long; the limit is {MAX_SCALAR_CHARS:,}", path)
        control = _CONTROL.search(value) if self.raw_controls or event.style == '"' else None
        if control is not None:
            # Collected, not raised: every field that holds one is reported in one run.
            self.errors.append(
                Diagnostic(
                    self._location(at),
                    f"text contains the control character U+{ord(control.group()):04X}; "
                    "spec text may hold tabs and line breaks but no other control characters",
                    format_path(path),
                )
            )
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return value
            tag = _implicit_tag(value)
        try:
            return _construct(value, tag)
        except ValueError as exc:
            if str(exc) == _TOO_LONG:
                self._fail(at, f"{value[:40]!r} has more than 30 digits; no number in a spec is that large", path)
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
                self._fail(at, f"unsupported YAML tag {tag!r}", path)
            self._fail(at, f"{value[:40]!r} is not a valid {tag.rsplit(':', 1)[-1]}", path)
        return None
