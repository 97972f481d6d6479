"""Indented JSON text, fast: ``json.dumps(doc, indent=2, sort_keys=..., ensure_ascii=False)``.

The standard library encodes with ``indent`` in pure Python, value by value,
which was most of the time spent on a large plan's plan.json, SARIF, OSCAL
and values.schema.json files. orjson writes the same text (the same
layout, escapes and key order, and every float in its shortest form) ten
to twenty times as fast, with two differences that are mended here:

- A float below 1e-4 in magnitude: orjson writes ``1e-7`` and ``0.00001``
  where Python writes ``1e-07`` and ``1e-05``. Each such number stands at
  the end of its line (a string cannot hold a raw line break), so the few
  lines ending in one are found by a fast search and the number is written
  again as Python's ``repr``, which reads back to the same float.
- NaN and infinities, which JSON has no numbers for: orjson writes
  ``null``, and so does this module (``json.dumps`` would write ``NaN``,
  which no JSON reader accepts).

What orjson refuses (keys that are not strings, integers beyond 64 bits)
is written by the standard library. tests/test_render_jsontext.py compares
the text with ``json.dumps`` on generated documents.
"""

from __future__ import annotations

import json
import math
import re

import orjson

__all__ = ["dumps_indented"]

_OPTIONS = {False: orjson.OPT_INDENT_2, True: orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS}
# A line ending in a number that orjson writes otherwise than Python (each
# pattern starts with a literal, which the regular expression engine finds fast).
_SMALL_ENDINGS = (re.compile(r"e-[0-9]+,?$", re.M), re.compile(r"0\.0000[0-9]*,?$", re.M))
_SMALL_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?e-[0-9]+|0\.0000[0-9]+)")


def dumps_indented(doc, *, sort_keys: bool = False) -> str:
    """The same text as ``json.dumps(doc, indent=2, sort_keys=sort_keys, ensure_ascii=False)``,
    but ``null`` for NaN and infinities."""
    try:
        text = orjson.dumps(doc, option=_OPTIONS[sort_keys]).decode()
    except TypeError:  # orjson.JSONEncodeError: what the standard library decides
        return json.dumps(_finite(doc), indent=2, sort_keys=sort_keys, ensure_ascii=False)
    return _python_floats(text)


def _python_floats(text: str) -> str:
    """``text`` with each float below 1e-4 written as Python writes it."""
    ends = sorted({m.start() for pattern in _SMALL_ENDINGS for m in pattern.finditer(text)})
    if not ends:
        return text
    out: list[str] = []
    done = 0
    for at in ends:
        line = text.rfind("\n", 0, at) + 1
        key = text.rfind('": ', line, at)  # an object member's value follows its key
        start = key + 3 if key >= 0 else at - len(text[line:at].lstrip(" "))  # else a list's item, after its indent
        end = at
        while end < len(text) and text[end] not in ",\n":
            end += 1
        number = text[start:end]
        if start < done or not _SMALL_NUMBER.fullmatch(number):
            continue
        out += [text[done:start], repr(float(number))]
        done = end
    out.append(text[done:])
    return "".join(out)


def _finite(o):
    """``o`` with NaN and infinities as None (for the standard library, which would write NaN)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {key: _finite(value) for key, value in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(value) for value in o]
    return o
