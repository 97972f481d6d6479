"""A line-by-line reader for the block-style YAML that specs are written in.

libyaml spends most of a big spec's parse time creating a Python event and
two marks for every node. Specs are almost always plain block style (``key:
value``, ``- item``, one line per scalar) and most of a big spec's lines
repeat ("    mfa: true"): reading each distinct line once, with one regular
expression, and the structure from indentation takes a fraction of that.
:func:`parse_block` builds exactly what ``yamlsource._Builder`` builds from
such text (values and their types, key order, the position of every key,
value and collection) and returns None for anything it is not sure of, so
that the event builder reads it instead. It never reports a problem: a
duplicate key, a tab, a limit or any other oddity makes it step aside, and
``_Builder`` explains it as before.
"""

from __future__ import annotations

import re

from planner.spec.yamlsource import _COLUMNS, _RESOLVERS, MAX_DEPTH, MAX_NODES, MAX_SCALAR_CHARS, _plain, _Where

# Characters that start something other than a plain scalar (or, for '-', '?'
# and ':', may).
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")

# One line: indentation, a sequence entry's "- ", a plain key (its ':' and the
# spaces after it left out) and the value without trailing spaces or comment.
# Every line matches; what the groups hold decides whether it is understood.
# A key starts with neither an indicator nor '.' (no "..." document end),
# holds no ':' or '#', and has at most nine spaces before its ':'. A value
# that is only a comment is no value.
_LINE = re.compile(
    r"( *)"
    r"(-(?: +|$))?"
    r"(?:([^\s\-?:,\[\]{}#&*!|>'\"%@`.](?:[^:#]*[^:#\s])?) {0,9}:(?: +|$))?"
    r"(?:#.*|(.*[^ ]))? *"
)
# libyaml takes a key only if its ':' is at most 1,024 characters further on.
_KEY_CHARS = 1000

# A scalar inside a flow collection, and a quoted one anywhere: single-quoted
# ('' is a quote), double-quoted without escapes, or plain without a
# character that ends or complicates one in a flow collection (trailing
# spaces included, to be stripped).
_FLOW_SCALAR = re.compile(
    r"'((?:[^']|'')*)'|\"([^\"\\]*)\"|((?:[^\s\-?:,\[\]{}#&*!|>'\"%@`]|-[^\s,\[\]{}#:'\"])[^,\[\]{}#:'\"]*)"
)
_SPACES = re.compile(" *")

# What libyaml reads as text, line feeds aside: printable ASCII and all from
# U+00A0 on but the line and paragraph separators, surrogates, the byte order
# mark, U+FFFE and U+FFFF. Not tabs, CRs, NELs or control characters.
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)) + b"\n"
_UNUSUAL = re.compile("[^\n -~\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")

# A block opened with this many blocks around it is MAX_DEPTH - 1 levels
# down and its children MAX_DEPTH, as deep as _Builder goes (flow
# collections check their own depth).
_DEEPEST_BLOCK = MAX_DEPTH - 2

_MISSING = object()
_BLOCK = object()  # a line's value: none (null, or the block on the next lines)
_FLOW = object()  # a line's value: a flow collection


def _printable(text: str) -> bool:
    """Only text and line feeds: nothing that libyaml reads differently from
    a split on line feeds, or that ``_Builder`` refuses."""
    if text.isascii():  # the usual case, and a faster test
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII)
    return _UNUSUAL.search(text) is None


def _resolved(text: str, cache: dict):
    """The core schema's value of plain ``text``, or _MISSING if it has none
    (too many digits, the merge key)."""
    value = cache.get(text, _MISSING)
    if value is _MISSING:
        try:
            value = _plain(text)
        except ValueError:
            return _MISSING
        cache[text] = value
    return value


def _is_key(text: str, cache: dict) -> bool:
    """Whether ``_Builder`` takes plain ``text`` as the same string key."""
    return len(text) <= _KEY_CHARS and (text[0] not in _RESOLVERS or isinstance(_resolved(text, cache), str))


def _digest(line: str, cache: dict) -> tuple | None:
    """What one line holds, wherever it is: (indentation, length of its "- "
    or 0, key or None, value, the value's column, the value's text). The
    value is a scalar's, _BLOCK if there is none (the column is then just
    after the ':' or '-'), or _FLOW for a flow collection, built afresh at
    each use. None if the line has a key or value that is never read here."""
    m = _LINE.fullmatch(line)  # every line matches
    indent, dash, key, text = m.groups()
    at = len(indent)
    dashed = len(dash) if dash is not None else 0
    if key is not None and not _is_key(key, cache):
        return None
    if text is None:
        column = line.index(":", at) + 1 if key is not None else at + 1
        return at, dashed, key, _BLOCK, column, None
    if text[0] == "[" or text[0] == "{":
        return at, dashed, key, _FLOW, m.start(4), text
    found = _value(text, 0, 0, cache)
    return None if found is None else (at, dashed, key, found[0], m.start(4), text)


# With ``light``, the position of every key and scalar value is kept in the
# two top levels only (the root mapping and its sections' own): below them
# only collections have one, which is all a spec that loads needs (its
# findings are located at sites, pools, datasets...).
LIGHT_FROM_DEPTH = 2


def parse_block(text: str, light: bool = False, first_line: int = 0) -> tuple[dict, _Where] | None:
    """``_Builder(text, name).document()`` for block-style ``text`` whose top
    level is a mapping; None if the text is not (certainly) of that kind.

    With ``light``, positions of keys and scalars from
    :data:`LIGHT_FROM_DEPTH` levels down are left out: their mappings'
    ``_Where`` has no ``keys`` and a sequence holds None for such an item.
    Reading a big spec takes about 15 % less time so; ``SourceFile`` reads the
    text again in full if it is ever asked where one of them is.

    ``first_line`` is the number of the text's first line in its file (the
    second part of a file read in two, see :func:`split`)."""
    lines = _lines(text)
    if lines is None:
        return None
    columns = _COLUMNS
    cache: dict = {}  # plain text -> its value
    digests: dict = {}  # line -> _digest(line)
    stack: list = []  # the enclosing blocks: (col, is_map, indentless, data, positions, keys)
    record = True  # whether the current block keeps its keys' and scalars' positions
    # The current block: a mapping (col is its keys' column) or a sequence
    # (its dashes'), which is indentless if at the column of its mapping's keys.
    col = -1
    is_map = indentless = False
    data = positions = keys = result = root = None
    # After `key:` or `-` with no value: the key, or -1, whose value (None
    # until then) a more indented block on the next lines replaces.
    pending = None
    # The indentation of a line that is simply the current mapping's next
    # key (-1 when there is none: after `key:`, in a sequence).
    expect = -1
    started = False  # a leading "---" was read
    for number, line in enumerate(lines, first_line):
        digest = digests.get(line)
        if digest is None:
            digest = digests[line] = _digest(line, cache)
            if digest is None:
                return None
        at, dash, key, value, column, written = digest
        base = number * columns
        if key is None or dash or at != expect:
            if not dash and key is None:
                if written is None:
                    continue  # a blank line or a comment
                if written == "---" and not at and root is None and not started:
                    started = True
                    continue
                return None  # a scalar on its own line: at the root, continuing one, a directive...
            if root is None:
                if dash:
                    return None
                result = data = {}
                positions, keys = {}, {}
                root = _Where(base + at, positions, keys)
                record = True
                col, is_map = at, True
            elif pending is not None and (at > col or (at == col and is_map and dash)):
                # The block that `key:` or `-` holds: a sequence may be at
                # the column of its mapping's keys.
                if len(stack) > _DEEPEST_BLOCK:
                    return None
                stack.append((col, is_map, indentless, data, positions, keys))
                record = not light or len(stack) < LIGHT_FROM_DEPTH
                if dash:
                    child, child_positions = [], []
                    data[pending], positions[pending] = child, _Where(base + at, child_positions)
                else:
                    child, child_positions, keys = {}, {}, {} if record else None
                    data[pending], positions[pending] = child, _Where(base + at, child_positions, keys)
                indentless = at == col
                data, positions, col, is_map = child, child_positions, at, not dash
            else:
                # Close the blocks left of this line (a key also closes a
                # sequence at its mapping's column); then the line must be
                # the current block's next entry, not one more indented (a
                # scalar's continuation) or between two blocks' columns.
                while col > at or (indentless and col == at and not dash):
                    if not stack:
                        return None
                    col, is_map, indentless, data, positions, keys = stack.pop()
                    record = not light or len(stack) < LIGHT_FROM_DEPTH
                if col != at or is_map != (not dash):
                    return None
            pending = None
            expect = -1
            if dash:
                if key is None:
                    if value is _FLOW:
                        found = _value(written, base + column, len(stack) + 1, cache)
                        if found is None:
                            return None
                        data.append(found[0])
                        positions.append(found[1])
                        continue
                    if value is _BLOCK:
                        value = None
                        pending = -1
                    data.append(value)
                    positions.append(base + column if record else None)
                    continue
                # A mapping that starts on the entry's line, its keys in this column.
                if len(stack) > _DEEPEST_BLOCK:
                    return None
                stack.append((col, is_map, indentless, data, positions, keys))
                record = not light or len(stack) < LIGHT_FROM_DEPTH
                col = at + dash
                child, child_positions, keys = {}, {}, {} if record else None
                data.append(child)
                positions.append(_Where(base + col, child_positions, keys))
                data, positions, is_map, indentless = child, child_positions, True, False
            expect = col
        # The current block is a mapping with its keys in this line's column.
        if key in data:
            return None
        if record:
            keys[key] = base + col
        if value is _BLOCK:
            data[key] = None
            if record:
                positions[key] = base + column
            pending = key
            expect = -1
        elif value is _FLOW:
            found = _value(written, base + column, len(stack) + 1, cache)
            if found is None:
                return None
            data[key], positions[key] = found
        else:
            data[key] = value
            if record:
                positions[key] = base + column
    if root is None:
        return None
    return result, root


def _lines(text: str) -> list[str] | None:
    """The lines of ``text``, if the line reader may read it: only text and
    line feeds, and within the limits on nodes and scalars."""
    if not _printable(text):
        return None
    lines = text.split("\n")
    if _too_many_nodes(text, len(lines)) or max(map(len, lines)) > MAX_SCALAR_CHARS:
        return None
    return lines


def _too_many_nodes(text: str, lines: int) -> bool:
    """Whether ``text`` (of so many ``lines``) may hold more than MAX_NODES nodes:
    a line adds at most three block nodes; a flow collection adds itself and
    at most one item per ',' and per collection in it."""
    return 3 * lines + text.count(",") + 2 * (text.count("[") + text.count("{")) > MAX_NODES


# A large file may be read in two parts at once (see yamlsource.TailRead):
# the second begins at the first item, from this fraction of the lines on,
# of the top-level section there. It is the smaller part: its lines (flows,
# last in most specs) repeat less, and it must still be sent back. On the
# 10,000-workload spec both parts take about as long so (when this process
# has its modules still to import meanwhile, see planner.startup, it reads less).
SPLIT_AT = 0.7
_SECTION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*): *")  # a top-level key whose block follows
_ITEM = re.compile(r"( *)-(?: |$)")
_TOP_LEVEL = re.compile(r"\n[^ \-#\n]")  # a line after the first that is not blank, indented, an item or a comment


def split(text: str, share: float = SPLIT_AT) -> tuple[str, str, int, str] | None:
    """Where block-style ``text`` may be read in two parts at once: (the
    first part, the second, the number of the second's first line, the
    section KEY it is in). The second part is the line ``KEY:`` then the
    rest of the text from an item (not the first) of top-level section KEY
    on, so each part is a document :func:`parse_block` reads; :func:`join`
    makes them one. None if no such item comes at or after that ``share`` of
    the lines."""
    # Each part is checked as the line reader checks a text (characters,
    # line lengths), but the limit on nodes is the whole text's. The text is
    # not split into lines: only those from the section's key on are read.
    count = text.count("\n") + 1
    if _too_many_nodes(text, count):
        return None
    at = int(count * share)
    begin = _line_start(text, at, count)
    top = _top_level_before(text, begin)
    section = dash = None  # the section's key line, and the indentation of its items' dashes
    n, pos = at - text.count("\n", top, begin), top  # a line's number, and where it begins
    while pos <= len(text):
        end = text.find("\n", pos)
        if end < 0:
            end = len(text)
        line = text[pos:end]
        if line and line[0] not in " -#":  # a top-level key: the next section
            section, dash = _SECTION.fullmatch(line), None
        elif section is not None and line.strip() and not line.lstrip().startswith("#"):
            item = _ITEM.match(line)
            if dash is None:  # the section's first entry: is it a sequence?
                section, dash = (section, item.group(1)) if item is not None else (None, None)
                if n < at - 1:  # no section starts between `top` and `at`: look on from `at`
                    n, end = at - 1, begin - 1
            elif n >= at and item is not None and item.group(1) == dash:
                key = section.group(1)
                return text[: pos - 1], f"{key}:\n" + text[pos:], n - 1, key
        n, pos = n + 1, end + 1
    return None


def _line_start(text: str, line: int, lines: int) -> int:
    """Where line number ``line`` (from 0) of ``text``, of ``lines`` lines, begins."""
    pos = text.rfind("\n", 0, len(text) * line // lines) + 1  # a line near it, by characters
    at = text.count("\n", 0, pos)
    find, rfind = text.find, text.rfind
    while at < line:
        pos, at = find("\n", pos) + 1, at + 1
    while at > line:
        pos, at = rfind("\n", 0, pos - 1) + 1, at - 1
    return pos


def _top_level_before(text: str, begin: int, chunk: int = 1 << 16) -> int:
    """Where the last top-level line that begins at or before ``begin`` (a
    line's start) begins: 0 if none but the first (searched backwards a
    chunk at a time, since the section may be long)."""
    chunk = max(chunk, 2)  # chunks overlap by a character: each must hold a match
    end = begin + 1
    while end > 1:
        start = max(0, end - chunk)
        last = None
        for last in _TOP_LEVEL.finditer(text, start, end):
            pass
        if last is not None:
            return last.start() + 1
        end = start + 1  # a match may end where this chunk starts
    return 0


def join(head: tuple[dict, _Where], tail: tuple[dict, _Where], key: str) -> tuple[dict, _Where] | None:
    """The two parts of :func:`split` as read by :func:`parse_block`, as one
    (what reading the whole text gives); None where they do not fit together
    (a section in both parts: the whole text's reading decides)."""
    (data, root), (more, more_root) = head, tail
    items, where = data.get(key), root.values.get(key)
    extra, extra_where = more.get(key), more_root.values.get(key)
    if not (type(items) is type(extra) is list and isinstance(where, _Where) and isinstance(extra_where, _Where)):
        return None
    if list(data)[-1] != key or any(k in data for k in more if k != key):
        return None
    items.extend(extra)
    where.values.extend(extra_where.values)
    for k, value in more.items():
        if k != key:
            data[k] = value
            root.values[k] = more_root.values[k]
            root.keys[k] = more_root.keys[k]
    return data, root


def pack(found: tuple[dict, _Where]) -> tuple:
    """:func:`parse_block`'s result as plain data (for ``marshal``): each
    position of a collection as (at, children, keys)."""

    def plain(where):
        if type(where) is not _Where:
            return where
        values = where.values
        children = {k: plain(v) for k, v in values.items()} if type(values) is dict else [plain(v) for v in values]
        return where.at, children, where.keys

    return found[0], plain(found[1])


def unpack(packed: tuple) -> tuple[dict, _Where]:
    """What :func:`pack` was given."""

    def where(position):
        if type(position) is not tuple:
            return position
        at, values, keys = position
        children = {k: where(v) for k, v in values.items()} if type(values) is dict else [where(v) for v in values]
        return _Where(at, children, keys)

    return packed[0], where(packed[1])


def _value(text: str, at: int, depth: int, cache: dict) -> tuple[object, object] | None:
    """The value written as ``text`` (at position ``at``, ``depth`` levels
    down) and its position: a plain or quoted scalar, or a flow collection
    on one line, with a comment after it or not. None for anything else."""
    first = text[0]
    if first == "[" or first == "{":
        try:
            found = _flow(text, 0, at, depth, cache)
        except IndexError:  # the line ended inside the collection
            return None
        if found is None:
            return None
        value, where, end = found
    elif first == "'" or first == '"':
        m = _FLOW_SCALAR.match(text)
        if m is None:
            return None
        value, where, end = m[2] if m[1] is None else m[1].replace("''", "'"), at, m.end()
    else:
        # Plain: '-' starts one only before a character other than a space
        # (nor '#', to be safe), and ': ' or a final ':' would be a mapping.
        if first in _INDICATORS and (first != "-" or text[1:2] in ("", " ", "#")):
            return None
        cut = text.find(" #")
        if cut >= 0:
            text = text[:cut].rstrip(" ")
        if ": " in text or text[-1] == ":":
            return None
        value = _resolved(text, cache)
        return None if value is _MISSING else (value, at)
    rest = text[end:]
    if rest and (rest[0] != " " or rest.lstrip(" ")[0] != "#"):
        return None  # something other than a comment after the value
    return value, where


def _flow(text: str, start: int, at: int, depth: int, cache: dict) -> tuple[object, _Where, int] | None:
    """The flow collection opening at ``text[start]`` (``text[0]`` being at
    position ``at``) and closing on the same line: nested collections, plain
    keys, quoted or plain scalars. (value, position, index after it) or
    None. Raises IndexError if the text ends first."""
    if depth >= MAX_DEPTH:
        return None
    is_map = text[start] == "{"
    close = "}" if is_map else "]"
    if is_map:
        out, positions, keys = {}, {}, {}
        where = _Where(at + start, positions, keys)
    else:
        out, positions = [], []
        where = _Where(at + start, positions)
    i = _SPACES.match(text, start + 1).end()
    if text[i] == close:
        return out, where, i + 1
    while True:
        if is_map:
            m = _FLOW_SCALAR.match(text, i)
            if m is None or m[3] is None:
                return None
            key = m[3].rstrip(" ")
            if key in keys or not _is_key(key, cache) or not text.startswith(": ", m.end()):
                return None
            keys[key] = at + i
            i = _SPACES.match(text, m.end() + 2).end()
        if text[i] == "[" or text[i] == "{":
            found = _flow(text, i, at, depth + 1, cache)
            if found is None:
                return None
            value, position, i = found
        else:
            m = _FLOW_SCALAR.match(text, i)
            if m is None:
                return None
            if m[3] is not None:
                value = _resolved(m[3].rstrip(" "), cache)
                if value is _MISSING:
                    return None
            else:
                value = m[2] if m[1] is None else m[1].replace("''", "'")
            position, i = at + i, m.end()
        if is_map:
            out[key] = value
            positions[key] = position
        else:
            out.append(value)
            positions.append(position)
        i = _SPACES.match(text, i).end()
        if text[i] == close:
            return out, where, i + 1
        if text[i] != ",":
            return None
        i = _SPACES.match(text, i + 1).end()
