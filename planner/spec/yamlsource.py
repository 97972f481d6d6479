"""YAML reading that keeps file:line:col for every node and refuses what a
compliance tool must not guess at.

The YAML 1.2 core schema is used (``no`` and ``on`` stay strings, ``010`` is
ten), a duplicate key is an error instead of silently keeping the last one,
and alias bombs, deep nesting and oversized files are refused before they
can exhaust the machine.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from planner.errors import Diagnostic, InputError, Location

MAX_FILE_BYTES = 20_000_000
MAX_DEPTH = 64
MAX_NODES = 5_000_000
MAX_ALIAS_NODES = 100_000
MAX_SCALAR_CHARS = 100_000

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


@dataclass
class SourceFile:
    """One YAML file turned into plain data plus a location for every node."""

    path: str
    data: object
    values: dict[PathKey, Location] = field(default_factory=dict)
    keys: dict[PathKey, Location] = field(default_factory=dict)
    raw: bytes = b""  # the bytes as read: hashed, and kept in plan.json

    def locate(self, path: PathKey, *, key: bool = False) -> Location:
        """The location of ``path``, or of its nearest ancestor that exists."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if not key and probe in self.keys:
                return self.keys[probe]
            probe = probe[:-1]
        return self.values.get((), Location(self.path, 1, 1))


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


def read_yaml(path: Path, display: str | None = None) -> SourceFile:
    """Read one spec file. Raises InputError with every problem it finds."""
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
    return parse_yaml(raw, name)


def parse_yaml(raw: bytes, name: str) -> SourceFile:
    """Parse bytes of one YAML document into a SourceFile."""
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
    try:
        nodes = list(yaml.compose_all(text, Loader=_CoreSchemaLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _loc(name, mark) if mark is not None else Location(name)
        problem = _explain(exc, text)
        raise InputError("invalid YAML", [Diagnostic(where, f"invalid YAML: {problem}")]) from exc
    except yaml.YAMLError as exc:
        raise InputError("invalid YAML", [Diagnostic(Location(name), f"invalid YAML: {exc}")]) from exc
    except RecursionError as exc:
        raise InputError("invalid YAML", [Diagnostic(Location(name), "nesting is too deep")]) from exc
    if len(nodes) > 1:
        raise InputError(
            "several documents",
            [Diagnostic(_loc(name, nodes[1].start_mark), "expected one YAML document per file; split the others into their own files")],
        )
    source = SourceFile(name, None, raw=raw)
    if not nodes:
        source.data = {}
        source.values[()] = Location(name, 1, 1)
        return source
    source.data = _Converter(source).convert(nodes[0])
    return source


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


class _Converter:
    """Turns a composed node tree into plain data, recording locations."""

    def __init__(self, source: SourceFile):
        self.source = source
        self.name = source.path
        self.count = 0
        self.visited: set[int] = set()
        self.locations: dict[int, Location] = {}
        self.reused = 0
        self.alias_entry: PathKey | None = None
        self.errors: list[Diagnostic] = []

    def convert(self, node: yaml.Node):
        value = self._node(node, (), 0)
        if self.errors:
            raise InputError("invalid YAML", self.errors)
        return value

    def _fail(self, node: yaml.Node, message: str, path: PathKey) -> None:
        raise InputError("invalid YAML", [Diagnostic(_loc(self.name, node.start_mark), message, format_path(path))])

    def _node(self, node: yaml.Node, path: PathKey, depth: int):
        self.count += 1
        if self.count > MAX_NODES:
            self._fail(node, f"document has more than {MAX_NODES:,} nodes; refusing to load", path)
        entered = False
        if id(node) in self.visited:
            self.reused += 1
            if self.alias_entry is None:
                self.alias_entry, entered = path, True
            if self.reused > MAX_ALIAS_NODES:
                self._alias_bomb()
        else:
            self.visited.add(id(node))
        try:
            return self._value(node, path, depth)
        finally:
            if entered:
                self.alias_entry = None

    def _alias_bomb(self) -> None:
        entry = self.alias_entry or ()
        # The alias itself has no mark of its own: point at the key that holds it.
        probe = entry
        while probe and probe not in self.source.keys:
            probe = probe[:-1]
        where = self.source.keys.get(probe, Location(self.name))
        raise InputError(
            "invalid YAML",
            [Diagnostic(where, f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes; refusing to load (alias bomb?)", format_path(probe))],
        )

    def _value(self, node: yaml.Node, path: PathKey, depth: int):
        if depth > MAX_DEPTH:
            self._fail(node, f"nesting is too deep (more than {MAX_DEPTH} levels)", path)
        if path not in self.source.values:
            # One Location per node, shared by every alias of it: expanding
            # aliases is where the time goes, up to the alias-bomb limit.
            loc = self.locations.get(id(node))
            if loc is None:
                loc = self.locations[id(node)] = _loc(self.name, node.start_mark)
            self.source.values[path] = loc
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if node.tag not in _COLLECTION_TAGS:
            # As for scalars: an application tag (!!python/object, !Ref) has no
            # meaning in a spec, and dropping it silently would hide the mistake.
            self._fail(node, f"unsupported YAML tag {node.tag!r}", path)
        if isinstance(node, yaml.SequenceNode):
            return [self._node(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self._mapping(node, path, depth)

    def _mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> dict:
        out: dict = {}
        seen: dict = {}
        merged: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                for key, value in self._merge_source(value_node, path, depth).items():
                    merged.setdefault(key, value)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail(key_node, "mapping keys must be plain strings", path)
            key = self._scalar(key_node, path)
            if not isinstance(key, (str, int, bool, float)) or key is None:
                self._fail(key_node, "mapping keys must be plain strings", path)
            key = str(key) if not isinstance(key, str) else key
            if key in seen:
                first = seen[key]
                self.errors.append(
                    Diagnostic(
                        _loc(self.name, key_node.start_mark),
                        f"duplicate key {key!r} (first defined at line {first.line})",
                        format_path(path + (key,)),
                    )
                )
                continue
            seen[key] = _loc(self.name, key_node.start_mark)
            self.source.keys[path + (key,)] = seen[key]
            out[key] = self._node(value_node, path + (key,), depth + 1)
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def _merge_source(self, node: yaml.Node, path: PathKey, depth: int) -> dict:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        result: dict = {}
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self._fail(source, "a merge key (<<) takes a mapping or a list of mappings", path)
            for key, value in self._mapping(source, path, depth + 1).items():
                result.setdefault(key, value)
        return result

    def _scalar(self, node: yaml.ScalarNode, path: PathKey):
        value = node.value
        if len(value) > MAX_SCALAR_CHARS:
            self._fail(node, f"value is {len(value):,} characters long; the limit is {MAX_SCALAR_CHARS:,}", path)
        control = _CONTROL.search(value)
        if control is not None:
            # Collected, not raised: every field that holds one is reported in one run.
            self.errors.append(
                Diagnostic(
                    _loc(self.name, node.start_mark),
                    f"text contains the control character U+{ord(control.group()):04X}; "
                    "spec text may hold tabs and line breaks but no other control characters",
                    format_path(path),
                )
            )
        tag = node.tag
        if tag == "tag:yaml.org,2002:str":
            return value
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return value.lower() == "true"
        try:
            return self._typed(value, tag)
        except ValueError as exc:
            if str(exc) == _TOO_LONG:
                self._fail(node, f"{value[:40]!r} has more than 30 digits; no number in a spec is that large", path)
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
                self._fail(node, f"unsupported YAML tag {tag!r}", path)
            self._fail(node, f"{value[:40]!r} is not a valid {tag.rsplit(':', 1)[-1]}", path)
        return None

    def _typed(self, value: str, tag: str):
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
