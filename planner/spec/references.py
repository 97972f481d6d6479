"""Cross-reference checks on the merged spec: unique ids, and every name that
points somewhere (an input, a flow end, a waiver subject, a GPU model or a
cloud instance) points at something that exists.

They run on the raw merged data, before and independently of the pydantic
models, so that one run reports reference errors and type errors together.
Malformed entries are skipped here; the models report them.
"""

from __future__ import annotations

from collections.abc import Iterator

from planner.errors import Diagnostic
from planner.spec.loader import SourceMap, suggest

SUBJECT_KINDS = ("site", "pool", "link", "dataset", "workload", "flow")
FLOW_END_KINDS = ("dataset", "workload", "site")


def _entries(data: dict, section: str) -> Iterator[tuple[int, dict]]:
    items = data.get(section)
    if not isinstance(items, list):
        return
    for index, item in enumerate(items):
        if isinstance(item, dict):
            yield index, item


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _missing(kind: str, name: str, known) -> str:
    hint = suggest(name, known)
    if hint:
        return f"unknown {kind} {name!r}; did you mean {hint!r}?"
    if not known:
        return f"unknown {kind} {name!r}; the spec defines no {kind}s"
    listed = sorted(known)
    more = f" (and {len(listed) - 12} more)" if len(listed) > 12 else ""
    return f"unknown {kind} {name!r}; known: {', '.join(listed[:12])}{more}"


def collect_ids(data: dict, smap: SourceMap, errors: list[Diagnostic]) -> dict[str, dict[str, tuple]]:
    """Ids per section (and pools per site), reporting duplicates with both places."""
    ids: dict[str, dict[str, tuple]] = {"site": {}, "dataset": {}, "workload": {}, "flow": {}, "pool": {}}
    for section, kind in (("sites", "site"), ("datasets", "dataset"), ("workloads", "workload"), ("flows", "flow")):
        for index, item in _entries(data, section):
            ident = _str(item.get("id"))
            if ident is None:
                continue
            path = (section, index, "id")
            if ident in ids[kind]:
                first = smap.locate(ids[kind][ident])
                errors.append(smap.diagnostic(path, f"duplicate {kind} id {ident!r} (first defined at {first})"))
                continue
            ids[kind][ident] = path
    for index, site in _entries(data, "sites"):
        site_id = _str(site.get("id"))
        pools = site.get("pools")
        if site_id is None or not isinstance(pools, list):
            continue
        for p_index, pool in enumerate(pools):
            if not isinstance(pool, dict) or _str(pool.get("id")) is None:
                continue
            key = f"{site_id}/{pool['id']}"
            path = ("sites", index, "pools", p_index, "id")
            if key in ids["pool"]:
                first = smap.locate(ids["pool"][key])
                errors.append(smap.diagnostic(path, f"duplicate pool id {pool['id']!r} in site {site_id!r} (first defined at {first})"))
                continue
            ids["pool"][key] = path
    return ids


def check_references(data: dict, smap: SourceMap) -> list[Diagnostic]:
    errors: list[Diagnostic] = []
    ids = collect_ids(data, smap, errors)
    sites, datasets = ids["site"], ids["dataset"]

    def need(kind: str, known: dict, name: object, path: tuple) -> None:
        if isinstance(name, str) and name not in known:
            errors.append(smap.diagnostic(path, _missing(kind, name, known)))

    _check_catalog_names(data, smap, errors)

    links: dict[str, tuple] = {}
    for index, link in _entries(data, "links"):
        between = link.get("between")
        if not isinstance(between, list) or len(between) != 2:
            continue
        for side, name in enumerate(between):
            need("site", sites, name, ("links", index, "between", side))
        if all(isinstance(n, str) for n in between) and between[0] != between[1]:
            key = "~".join(sorted(between))
            if key in links:
                first = smap.locate(links[key])
                errors.append(smap.diagnostic(("links", index, "between"), f"a link between {between[0]!r} and {between[1]!r} is already defined at {first}"))
            else:
                links[key] = ("links", index, "between")

    for index, dataset in _entries(data, "datasets"):
        need("site", sites, dataset.get("site"), ("datasets", index, "site"))

    for index, workload in _entries(data, "workloads"):
        inputs = workload.get("inputs")
        if isinstance(inputs, list):
            for i, name in enumerate(inputs):
                need("dataset", datasets, name, ("workloads", index, "inputs", i))
        placement = workload.get("placement")
        if isinstance(placement, dict):
            for field in ("sites", "avoid"):
                names = placement.get(field)
                if isinstance(names, list):
                    for i, name in enumerate(names):
                        need("site", sites, name, ("workloads", index, "placement", field, i))

    for index, flow in _entries(data, "flows"):
        for end in ("from", "to"):
            name = flow.get(end)
            if isinstance(name, str):
                kind, slash, ident = name.partition("/")
                if slash and kind in FLOW_END_KINDS and ident in ids[kind]:
                    continue  # kind/id of something defined: most ends of a large spec
                message = _flow_end_problem(name, ids)
                if message:
                    errors.append(smap.diagnostic(("flows", index, end), message))

    for index, waiver in _entries(data, "waivers"):
        subject = waiver.get("subject")
        if isinstance(subject, str) and "/" in subject:
            message = _subject_problem(subject, ids, links)
            if message:
                errors.append(smap.diagnostic(("waivers", index, "subject"), message))
    return errors


def _flow_end_problem(name: str, ids: dict) -> str | None:
    if "/" in name:
        kind, _, ident = name.partition("/")
        if kind not in FLOW_END_KINDS:
            return f"a flow end is a dataset, workload or site; got kind {kind!r}"
        if ident not in ids[kind]:
            return _missing(kind, ident, ids[kind])
        return None
    matches = [kind for kind in FLOW_END_KINDS if name in ids[kind]]
    if len(matches) > 1:
        options = " or ".join(f"{k}/{name}" for k in matches)
        return f"{name!r} names more than one thing ({', '.join(matches)}); write {options}"
    if not matches:
        known = set(ids["dataset"]) | set(ids["workload"]) | set(ids["site"])
        return _missing("dataset, workload or site", name, known)
    return None


def _subject_problem(subject: str, ids: dict, links: dict) -> str | None:
    kind, _, ident = subject.partition("/")
    if kind not in SUBJECT_KINDS:
        return None  # the model's pattern reports it
    if kind == "link":
        a, sep, b = ident.partition("~")
        if not sep:
            return f"a link subject is link/SITE-A~SITE-B, got {subject!r}"
        key = "~".join(sorted((a, b)))
        if key not in links:
            return _missing("link", f"{a}~{b}", links)
        return None
    if ident not in ids[kind]:
        return _missing(kind, ident, ids[kind])
    return None


def _check_catalog_names(data: dict, smap: SourceMap, errors: list[Diagnostic]) -> None:
    try:
        from planner.catalog.additions import catalog_for, has_gpu, has_instance
    except ImportError:
        return
    catalog = catalog_for(data)
    if catalog is None:
        return
    gpu_ids = catalog.gpu_ids()
    instance_ids = catalog.instance_ids()
    known: dict[str, bool] = {}  # a spec names the same few models thousands of times

    def gpu(name: object, path: tuple) -> None:
        if not isinstance(name, str):
            return
        found = known.get(name)
        if found is None:
            found = known[name] = has_gpu(catalog, name)
        if not found:
            errors.append(smap.diagnostic(path, _missing_catalog("GPU model", name, gpu_ids)))

    for index, site in _entries(data, "sites"):
        pools = site.get("pools")
        if not isinstance(pools, list):
            continue
        for p_index, pool in enumerate(pools):
            if not isinstance(pool, dict):
                continue
            gpu(pool.get("gpu"), ("sites", index, "pools", p_index, "gpu"))
            instance = pool.get("instance")
            if isinstance(instance, str) and not has_instance(catalog, instance):
                errors.append(
                    smap.diagnostic(("sites", index, "pools", p_index, "instance"), _missing_catalog("instance type", instance, instance_ids))
                )
    for index, workload in _entries(data, "workloads"):
        accelerators = workload.get("accelerators")
        if isinstance(accelerators, list):
            for i, name in enumerate(accelerators):
                gpu(name, ("workloads", index, "accelerators", i))
        throughput = workload.get("throughput")
        if isinstance(throughput, dict):
            for name in throughput:
                gpu(name, ("workloads", index, "throughput", name))


def _missing_catalog(kind: str, name: str, known: list[str]) -> str:
    hint = suggest(name, known)
    head = f"unknown {kind} {name!r}"
    if hint:
        head += f"; did you mean {hint!r}?"
    return f"{head} (known: {', '.join(known)}; add your own under catalog:)"
