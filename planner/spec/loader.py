"""Load spec files and directories into one validated, located Spec.

Every problem is collected and reported together, each with file:line:col,
the YAML path, what was expected and, for a typo, the nearest valid name.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from planner.errors import Diagnostic, InputError, Location
from planner.spec import models
from planner.spec.yamlsource import PathKey, SourceFile, expand_paths, format_path, read_yaml

SECTIONS_LIST = ("sites", "links", "datasets", "workloads", "flows", "waivers")
SECTIONS_MAP = ("metadata", "policies", "objective", "catalog")
TOP_LEVEL = ("apiVersion", *SECTIONS_MAP, *SECTIONS_LIST)


@dataclass(frozen=True)
class InputFile:
    """A spec file as read: its display path and content hash."""

    path: str
    sha256: str
    absolute: Path


@dataclass
class SourceMap:
    """Maps paths in the merged spec back to the file and node they came from."""

    files: dict[str, SourceFile] = field(default_factory=dict)
    # merged ("workloads", 7) -> (file, ("workloads", 2))
    origins: dict[PathKey, tuple[str, PathKey]] = field(default_factory=dict)

    def resolve(self, path: PathKey) -> tuple[SourceFile, PathKey] | None:
        path = tuple(path)
        for cut in range(len(path), 0, -1):
            origin = self.origins.get(path[:cut])
            if origin is not None:
                name, local = origin
                return self.files[name], local + path[cut:]
        return None

    def locate(self, path: PathKey, *, key: bool = False) -> Location:
        found = self.resolve(path)
        if found is None:
            first = next(iter(self.files.values()), None)
            return Location(first.path if first else "<spec>", 1, 1)
        source, local = found
        return source.locate(local, key=key)

    def local_path(self, path: PathKey) -> str:
        found = self.resolve(path)
        return format_path(found[1] if found else path)

    def diagnostic(self, path: PathKey, message: str, *, key: bool = False) -> Diagnostic:
        return Diagnostic(self.locate(path, key=key), message, self.local_path(path))


def load_spec(paths: list[str | Path] | str | Path) -> models.Spec:
    """Read, merge and validate spec files and directories.

    Raises InputError carrying every problem found, each located.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return load_files(expand_paths(list(paths)))


def load_files(files: list[tuple[Path, str]], tails: dict | None = None) -> models.Spec:
    """:func:`load_spec` of files already listed by :func:`expand_paths`
    (``tails``: the second parts of some, being read elsewhere, by path;
    see :class:`~planner.spec.yamlsource.TailRead`)."""
    sources: list[SourceFile] = []
    inputs: list[InputFile] = []
    errors: list[Diagnostic] = []
    for path, name in files:
        try:
            source = read_yaml(path, name, light=True, tail=(tails or {}).get(path))
        except InputError as exc:
            errors.extend(exc.diagnostics)
            continue
        sources.append(source)
        inputs.append(InputFile(name, hashlib.sha256(source.raw).hexdigest(), path.resolve()))
    if errors:
        raise InputError("invalid input", errors)
    if all(s.data is None or s.data == {} for s in sources):
        # Checking nothing must not read as "passed": a truncated or
        # mistyped file would otherwise turn a CI gate green.
        raise InputError(
            "empty spec",
            [
                Diagnostic(s.locate(()), "the file holds no spec (it is empty or only comments); expected sections such as sites and workloads")
                for s in sources
            ],
        )
    return build_spec(sources, inputs)


def build_spec(sources: list[SourceFile], inputs: list[InputFile] | None = None) -> models.Spec:
    """Merge parsed files and validate them into a Spec."""
    smap = SourceMap(files={s.path: s for s in sources})
    merged, errors = _merge(sources, smap)
    from planner.spec.references import check_references

    errors.extend(check_references(merged, smap))
    spec = None
    try:
        spec = models.Spec.model_validate(merged)
    except ValidationError as exc:
        errors.extend(_translate(exc, smap, merged))
    if errors:
        raise InputError("invalid spec", _dedupe(errors))
    assert spec is not None
    spec._sources = SpecSources(smap, list(inputs or []), _file_dirs(sources, inputs))
    return spec


@dataclass
class SpecSources:
    """What a loaded Spec remembers of where it came from."""

    map: SourceMap
    inputs: list[InputFile]
    base_dirs: dict[str, Path]

    def locate(self, path: PathKey) -> Location:
        return self.map.locate(path)


def _file_dirs(sources: list[SourceFile], inputs: list[InputFile] | None) -> dict[str, Path]:
    by_name = {i.path: i.absolute.parent for i in inputs or []}
    return {s.path: by_name.get(s.path, Path.cwd()) for s in sources}


def sources_of(spec: models.Spec) -> SpecSources:
    """Source information of a loaded spec (an empty one for specs built in code)."""
    found = spec._sources
    if isinstance(found, SpecSources):
        return found
    return SpecSources(SourceMap(), [], {})


def _merge(sources: list[SourceFile], smap: SourceMap) -> tuple[dict, list[Diagnostic]]:
    merged: dict = {}
    errors: list[Diagnostic] = []
    first_scalar: dict[PathKey, tuple[object, Location]] = {}
    for source in sources:
        data = source.data
        if data is None:
            continue
        if not isinstance(data, dict):
            errors.append(Diagnostic(source.locate(()), f"expected a mapping of spec sections, got {_kind(data)}"))
            continue
        for key, value in data.items():
            here = source.locate((key,), key=True)
            if key not in TOP_LEVEL:
                errors.append(Diagnostic(here, _unknown(key, TOP_LEVEL, "top-level section"), key))
                continue
            if key in SECTIONS_LIST:
                if value is None:
                    continue
                if not isinstance(value, list):
                    errors.append(Diagnostic(source.locate((key,)), f"expected a list, got {_kind(value)}", key))
                    continue
                target = merged.setdefault(key, [])
                for local_index, item in enumerate(value):
                    smap.origins[(key, len(target))] = (source.path, (key, local_index))
                    target.append(item)
                smap.origins.setdefault((key,), (source.path, (key,)))
                continue
            if key in SECTIONS_MAP and isinstance(value, dict):
                target = merged.setdefault(key, {})
                for sub, sub_value in value.items():
                    path = (key, sub)
                    where = source.locate(path, key=True)
                    if sub in target:
                        earlier_value, earlier = first_scalar[path]
                        if isinstance(sub_value, list) and isinstance(earlier_value, list):
                            extra = [v for v in sub_value if v not in target[sub]]
                            target[sub] = target[sub] + extra
                            continue
                        if sub_value != earlier_value:
                            errors.append(
                                Diagnostic(
                                    where,
                                    f"{key}.{sub} is set again with a different value (first at {earlier})",
                                    format_path(path),
                                )
                            )
                        continue
                    target[sub] = sub_value
                    first_scalar[path] = (sub_value, where)
                    smap.origins[path] = (source.path, path)
                smap.origins.setdefault((key,), (source.path, (key,)))
                continue
            # apiVersion or a malformed mapping section: the first file decides,
            # a different value later is an error.
            if key in merged and merged[key] != value:
                errors.append(Diagnostic(here, f"{key} differs from an earlier file ({merged[key]!r})", key))
                continue
            merged.setdefault(key, value)
            smap.origins.setdefault((key,), (source.path, (key,)))
    return merged, errors


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    # Line breaks, tabs and invisible format characters are shown escaped:
    # the message stays one line and shows what the value really holds.
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return '"' + text.replace('"', '\\"') + '"'


def suggest(name: str, choices) -> str | None:
    """The nearest valid name to a typo, if one is close enough."""
    if not isinstance(name, str):
        return None
    target = _fold(name)
    best, best_score = None, 0.6
    for choice in sorted(map(str, choices)):
        score = max(
            difflib.SequenceMatcher(None, name.lower(), choice.lower()).ratio(),
            difflib.SequenceMatcher(None, target, _fold(choice)).ratio(),
        )
        if score > best_score:
            best, best_score = choice, score
    return best


_CONFUSABLE = str.maketrans({"o": "0", "l": "1", "i": "1", "_": "-", " ": "-"})


def _fold(text: str) -> str:
    """Lowercase with look-alike characters folded (H1OO ~ H100, on_prem ~ on-prem)."""
    return text.lower().translate(_CONFUSABLE)


def _unknown(name: str, choices, what: str) -> str:
    hint = suggest(name, choices)
    tail = f"; did you mean {hint!r}?" if hint else f"; expected one of: {', '.join(sorted(map(str, choices)))}"
    return f"unknown {what} {name!r}{tail}"


def _dedupe(errors: list[Diagnostic]) -> list[Diagnostic]:
    seen = set()
    out = []
    for err in errors:
        key = (err.location, err.path, err.message)
        if key not in seen:
            seen.add(key)
            out.append(err)
    return out


# --- pydantic errors into compiler-style messages --------------------------


def _field_at(loc: tuple) -> tuple[type[BaseModel] | None, object]:
    """The model class holding the last element of loc, and its FieldInfo."""
    model: type[BaseModel] | None = models.Spec
    info = None
    for part in loc:
        if model is None:
            return None, None
        if isinstance(part, int):
            continue
        fields = model.model_fields
        info = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if info is None:
            return model, None
        model = _inner_model(info.annotation)
        last_model = model
    del last_model
    return model, info


def _inner_model(annotation) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _owner_model(loc: tuple) -> type[BaseModel] | None:
    """The model on which loc's last part is a field (for unknown-field hints)."""
    model, _ = _field_at(loc[:-1])
    if model is None:
        return None
    return model


def _bounds(info, upper: bool = False) -> str:
    """The field's bounds as text: lower bounds, or upper ones when those were broken."""
    if info is None:
        return ""
    parts = []
    attrs = (("le", "<="), ("lt", "<")) if upper else (("ge", ">="), ("gt", ">"))
    for meta in getattr(info, "metadata", []):
        for attr, sym in attrs:
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sym} {value:g}" if isinstance(value, (int, float)) else f"{sym} {value}")
    return " " + " and ".join(parts) if parts else ""


def _enum_choices(info) -> list[str]:
    import enum
    import typing

    found: list[str] = []

    def walk(annotation) -> None:
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            found.extend(m.value for m in annotation)
        for arg in typing.get_args(annotation):
            walk(arg)

    if info is not None:
        walk(info.annotation)
    return found


def _translate(exc: ValidationError, smap: SourceMap, data: dict) -> list[Diagnostic]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        etype = err["type"]
        got = err.get("input")
        ctx = err.get("ctx") or {}
        if etype == "extra_forbidden":
            owner = _owner_model(loc)
            names = [f.alias or n for n, f in owner.model_fields.items()] if owner else []
            out.append(smap.diagnostic(loc, _unknown(str(loc[-1]), names, "field"), key=True))
            continue
        if etype == "missing":
            where = loc[:-1]
            out.append(smap.diagnostic(where, f"missing required field {loc[-1]!r}"))
            continue
        _, info = _field_at(loc)
        message = _describe(etype, err["msg"], got, ctx, info)
        if etype == "value_error" and message.startswith("@"):
            # A model-level check names the field it is about: "@kind message".
            field, _, message = message[1:].partition(" ")
            loc = loc + (field,)
        out.append(smap.diagnostic(loc, message))
    return out


def _describe(etype: str, msg: str, got: object, ctx: dict, info) -> str:
    shown = _kind(got)
    if etype in ("int_parsing", "int_parsing_size", "int_type", "int_from_float"):
        return f"expected a whole number{_bounds(info, upper=etype == 'int_parsing_size')}, got {shown}"
    if etype in ("float_parsing", "float_type"):
        return f"expected a number{_bounds(info)}, got {shown}"
    if etype == "finite_number":
        return f"expected a finite number{_bounds(info)}, got {shown}"
    if etype in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        kind = "a whole number" if isinstance(got, int) and not isinstance(got, bool) else "a number"
        return f"expected {kind}{_bounds(info, upper=etype.startswith('less'))}, got {shown}"
    if etype in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {shown}"
    if etype == "enum":
        choices = _enum_choices(info) or [c.strip(" '") for c in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
        hint = suggest(got, choices) if isinstance(got, str) else None
        tail = f"; did you mean {hint!r}?" if hint else ""
        return f"expected one of {', '.join(choices)}, got {shown}{tail}"
    if etype == "literal_error":
        return f"expected {ctx.get('expected')}, got {shown}"
    if etype == "string_pattern_mismatch":
        if info is not None and info.description and info.description.startswith("Identifier"):
            return f"expected an id (lowercase letters, digits and '-', starting with a letter, at most 63 characters), got {shown}"
        pattern = ctx.get("pattern", "")
        if "A-Z]{2}" in pattern:
            return f"expected an ISO 3166 code such as US, US-MN or DE, got {shown}"
        if "site|pool|link" in pattern:
            return f"expected KIND/ID with KIND one of site, pool, link, dataset, workload, flow, got {shown}"
        if "[A-Z][A-Z0-9]*" in pattern:
            return f"expected a rule id such as MP-HIPAA-TX-001, got {shown}"
        return f"expected a lowercase name (letters, digits, '-'), got {shown}"
    if etype in ("string_type", "string_too_short", "string_too_long"):
        if etype == "string_too_long":
            return f"text is too long (at most {ctx.get('max_length')} characters)"
        if etype == "string_too_short":
            return "expected a non-empty string"
        return f"expected a string, got {shown}"
    if etype in ("list_type", "tuple_type"):
        return f"expected a list, got {shown}"
    if etype in ("too_short", "too_long"):
        return f"expected {ctx.get('expected', '')} items, got {ctx.get('actual_length')}".replace("  ", " ")
    if etype in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {shown}"
    if etype in ("date_parsing", "date_from_datetime_parsing", "date_type", "date_from_datetime_inexact"):
        return f"expected a date (YYYY-MM-DD), got {shown}"
    if etype == "value_error":
        return msg.removeprefix("Value error, ")
    return msg
