"""Indented JSON text, fast: ``json.dumps(doc, indent=2, sort_keys=..., ensure_ascii=False)``.

The standard library encodes with ``indent`` in pure Python, value by value,
which is most of the time spent on a large plan's plan.json, SARIF and OSCAL
files. Its C encoder writes no indentation but takes any item separator, and
this module leaves it every scalar:

- A container whose items are all scalars (or empty containers) is one call
  with the separator ``",\\n" + indentation``: that is the indented text but
  for the line breaks after the opening and before the closing bracket.
- Many scalars at once are one call with the separator ``",\\n"``: an encoded
  scalar never holds a raw line break (JSON escapes it), so splitting the
  text at ``",\\n"`` gives each scalar's text.
- A list of objects that all have the same keys (placements, findings,
  observations) is written column by column: each key's values together (all
  scalars in one call), then every object with one format string.

Anything else is written container by container. The text is the same,
character for character, as ``json.dumps`` writes; tests/test_render_jsontext.py
compares the two on generated documents.
"""

from __future__ import annotations

import json
from itertools import chain
from operator import itemgetter

__all__ = ["SharedTexts", "dumps_indented"]

INDENT = "  "

# Exactly these types are written by the C encoder as scalars; an instance of
# a subclass of dict, list or tuple goes through isinstance below.
_SCALARS = frozenset({str, int, float, bool, type(None)})
_CONTAINERS = (dict, list, tuple)
_COLUMNS_FROM = 4  # objects in a list before it is written column by column
_DEEPEST = 100  # nesting beyond this (or a cycle) is left to the standard encoder


def _not_serializable(o):
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _c_encoder(item_separator: str, sort_keys: bool):
    """The C encoder: ``encode(o, 0)`` is a list of text. No cycle check: only scalars and empty
    containers, or containers of them, reach it."""
    return json.encoder.c_make_encoder(
        None, _not_serializable, json.encoder.encode_basestring, None, ": ", item_separator, sort_keys, False, True
    )


_encoders: dict[tuple[int, bool], object] = {}


def _encoder(level: int, sort_keys: bool):
    """The C encoder for the items of a container that opens at ``level``."""
    found = _encoders.get((level, sort_keys))
    if found is None:
        found = _encoders[(level, sort_keys)] = _c_encoder(",\n" + INDENT * (level + 1), sort_keys)
    return found


_bulk = _c_encoder(",\n", False) if json.encoder.c_make_encoder is not None else None


def _scalar_texts(values: list) -> list[str]:
    """The text of each scalar (or empty container) in ``values``, from one call."""
    return "".join(_bulk(values, 0))[1:-1].split(",\n")


def dumps_indented(doc, *, sort_keys: bool = False, shared: SharedTexts | None = None) -> str:
    """The same text as ``json.dumps(doc, indent=2, sort_keys=sort_keys, ensure_ascii=False)``.

    ``shared`` keeps the text of containers that recur in many documents.
    """
    if _bulk is None or not isinstance(doc, _CONTAINERS) or not doc:
        return json.dumps(doc, indent=2, sort_keys=sort_keys, ensure_ascii=False)
    try:
        return _container(doc, 0, sort_keys, shared._texts if shared is not None else {})
    except (_Fallback, RecursionError):
        return json.dumps(doc, indent=2, sort_keys=sort_keys, ensure_ascii=False)


class SharedTexts:
    """Containers that many documents hold, the very same objects (never changed): the text of
    each, at each level it appears at, is written once and reused."""

    def __init__(self) -> None:
        self._texts: dict[int, tuple[object, dict[tuple[int, bool], str]]] = {}

    def add(self, obj):
        """Share ``obj`` (kept alive here, so that its id stays its own); returns it."""
        self._texts.setdefault(id(obj), (obj, {}))
        return obj


class _Fallback(Exception):
    """Something the standard encoder should decide (a key that is not a string, a cycle)."""


def _is_container(value) -> bool:
    """A non-empty dict, list or tuple (written over several lines)."""
    return type(value) not in _SCALARS and isinstance(value, _CONTAINERS) and bool(value)


def _container(o, level: int, sort_keys: bool, shared: dict) -> str:
    """A non-empty dict, list or tuple whose opening bracket is at ``level``."""
    if shared:
        entry = shared.get(id(o))
        if entry is not None:
            text = entry[1].get((level, sort_keys))
            if text is None:
                text = entry[1][(level, sort_keys)] = _encode(o, level, sort_keys, shared)
            return text
    return _encode(o, level, sort_keys, shared)


def _encode(o, level: int, sort_keys: bool, shared: dict) -> str:
    if level > _DEEPEST:
        raise _Fallback("too deep")  # a cycle, or nesting the standard encoder should report on
    inner = INDENT * (level + 1)
    if isinstance(o, dict):
        encode = _encoder(level, sort_keys)
        types = set(map(type, o.values()))
        if _SCALARS.issuperset(types):
            return "{\n" + inner + "".join(encode(o, 0))[1:-1] + "\n" + INDENT * level + "}"
        if len(o) >= _COLUMNS_FROM and (types == {dict} or types == {list}):
            # An object of objects (or of lists): its values together, as a list's items are.
            keys = sorted(o) if sort_keys else list(o)
            if not all(type(key) is str for key in keys):
                raise _Fallback("key")
            texts = _texts([o[key] for key in keys], level + 1, sort_keys, shared)
            name = json.encoder.encode_basestring
            items = [f"{name(key)}: {text}" for key, text in zip(keys, texts)]
            return "{\n" + inner + (",\n" + inner).join(items) + "\n" + INDENT * level + "}"
        # Runs of scalar items in one call each; each container by itself.
        parts: list[str] = []
        run: dict = {}
        for key in sorted(o) if sort_keys else o:
            if type(key) is not str:
                raise _Fallback("key")
            value = o[key]
            if _is_container(value):
                if run:
                    parts.append("".join(encode(run, 0))[1:-1])
                    run = {}
                parts.append(json.encoder.encode_basestring(key) + ": " + _container(value, level + 1, sort_keys, shared))
            else:
                run[key] = value
        if run:
            parts.append("".join(encode(run, 0))[1:-1])
        return "{\n" + inner + (",\n" + inner).join(parts) + "\n" + INDENT * level + "}"
    if _SCALARS.issuperset(map(type, o)):
        return "[\n" + inner + "".join(_encoder(level, sort_keys)(o, 0))[1:-1] + "\n" + INDENT * level + "]"
    return "[\n" + inner + (",\n" + inner).join(_texts(list(o), level + 1, sort_keys, shared)) + "\n" + INDENT * level + "]"


def _texts(values: list, level: int, sort_keys: bool, shared: dict) -> list[str]:
    """The text of each of ``values``, each written where a container would open at ``level``."""
    if level > _DEEPEST:
        raise _Fallback("too deep")
    types = set(map(type, values))
    if _SCALARS.issuperset(types):
        return _scalar_texts(values)
    if len(values) >= _COLUMNS_FROM and len(types) == 1 and not (shared and any(id(v) in shared for v in values)):
        if dict in types:
            shapes = list(map(tuple, values))  # each object's keys
            kinds = set(shapes)
            if len(kinds) == 1 and shapes[0]:
                return _columns(values, shapes[0], level, sort_keys, shared)
            if len(kinds) * _COLUMNS_FROM <= len(values):
                # A few shapes (some objects have a key the others lack): column by column per shape.
                groups: dict[tuple, list[int]] = {}
                for n, shape in enumerate(shapes):
                    groups.setdefault(shape, []).append(n)
                out: list[str] = [""] * len(values)
                for shape, where in groups.items():
                    if not shape:
                        texts = ["{}"] * len(where)
                    elif len(where) == 1:
                        texts = [_container(values[where[0]], level, sort_keys, shared)]
                    else:
                        texts = _columns([values[n] for n in where], shape, level, sort_keys, shared)
                    for n, text in zip(where, texts):
                        out[n] = text
                return out
        elif list in types:
            lengths = list(map(len, values))
            items = _texts(list(chain.from_iterable(values)), level + 1, sort_keys, shared)
            inner = INDENT * (level + 1)
            start, sep, end = "[\n" + inner, ",\n" + inner, "\n" + INDENT * level + "]"
            out = []
            at = 0
            for n in lengths:
                out.append(start + sep.join(items[at : at + n]) + end if n else "[]")
                at += n
            return out
    return [_container(v, level, sort_keys, shared) if _is_container(v) else _scalar_texts([v])[0] for v in values]


def _columns(objects: list[dict], keys: tuple, level: int, sort_keys: bool, shared: dict) -> list[str]:
    """The text of each of ``objects`` (dicts with these same keys, in this order), written column by column."""
    for key in keys:
        if type(key) is not str:
            raise _Fallback("key")
    order = sorted(keys) if sort_keys else keys
    columns = [_texts(list(map(itemgetter(key), objects)), level + 1, sort_keys, shared) for key in order]
    inner = INDENT * (level + 1)
    template = (
        "{\n"
        + ",\n".join(inner + json.encoder.encode_basestring(key).replace("%", "%%") + ": %s" for key in order)
        + "\n"
        + INDENT * level
        + "}"
    )
    return [template % row for row in zip(*columns)]
