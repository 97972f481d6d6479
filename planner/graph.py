"""The site graph: latency between sites over links, the links a flow
crosses, and where each dataset's data ends up (lineage).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, MutableSequence, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from heapq import heappop, heappush
from typing import TYPE_CHECKING

from planner.process import Server, ServerLost
from planner.spec.classification import Classification

if TYPE_CHECKING:
    import networkx as nx

    from planner.spec.models import Spec

# Data of these classifications is personal data: lineage follows it, and a
# flow of them carries PHI (HIPAA treats a limited data set as PHI too).
PERSONAL = frozenset({Classification.phi, Classification.limited_data_set})


@dataclass(frozen=True)
class Route:
    """The lowest-latency path between two sites."""

    source: str
    target: str
    reachable: bool
    latency_ms: float | None = None
    sites: tuple[str, ...] = ()
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlowEnd:
    kind: str  # dataset | workload | site
    id: str
    site: str | None  # None for a workload before placement

    def as_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id, "site": self.site}


_INF = float("inf")
# Per site number, its (neighbour number, latency) pairs.
_Adjacency = list[tuple[tuple[int, float], ...]]


# Work (sources x (sites + link ends)) from which one scipy batch beats the
# Python Dijkstra (~0.25 us a unit): importing csgraph alone costs ~0.35 s.
# Measured break-even on generated specs: near 3 million.
BATCH_MIN_WORK = 3_000_000
# How long the worker may take over a batch before it is computed here.
ROUTES_TIMEOUT = 60.0
_UNSET = -2  # a predecessor not yet worked out from the distances


@dataclass(frozen=True)
class _Tree:
    """Lowest-latency routes from one site: distances and predecessors.

    A batch's trees keep their rows as arrays (no object per site, of which a
    large batch would make millions that few routes read); :meth:`latency`
    reads the source's own distance as the int 0, as networkx reports it."""

    source: int
    distance: Sequence[float]  # inf where not reached
    pred: MutableSequence[int]  # the site before on the route, -1 at the source and where not reached, _UNSET: not worked out

    def latency(self, v: int) -> float:
        return 0 if v == self.source else self.distance[v]

    def latencies(self, count: int | None = None) -> list[float]:
        """The first ``count`` distances (all by default), the source's own as :meth:`latency` reads it."""
        found = list(self.distance[:count])
        if self.source < len(found):
            found[self.source] = 0
        return found


def _dijkstra(adj: _Adjacency, source: int) -> _Tree:
    """Dijkstra from ``source`` giving exactly networkx's ``single_source_dijkstra``.

    networkx pops (distance, counter, site) from a heap, so among equal
    distances the site pushed first; it pushes a site whenever a link
    strictly lowers its distance (neighbours in link order), and the path to
    a site extends the path to the site that last lowered it. Here the heap
    holds each distance once and a bucket lists, in push order, the sites
    pushed at it: sites come out in the same order, and the predecessor
    recorded at each push rebuilds the same paths, ties included.
    """
    n = len(adj)
    done = bytearray(n)
    seen: list[float] = [_INF] * n
    pred = [-1] * n
    seen[source] = 0  # an int, as networkx reports it
    heap: list[float] = [0]
    buckets: dict[float, list[int]] = {0: [source]}
    get, pop = buckets.get, buckets.pop
    while heap:
        # Sites pushed at this same distance while going through the bucket
        # start a new bucket, which comes next: push order is kept.
        for v in pop(heappop(heap)):
            if done[v]:
                continue  # pushed again at a lower distance and settled then
            done[v] = 1
            dv = seen[v]
            for u, w in adj[v]:
                # No link lowers a settled site's distance (latencies are not
                # negative), so this one test also leaves settled sites alone.
                if (du := dv + w) < seen[u]:
                    seen[u] = du
                    pred[u] = v
                    if (bucket := get(du)) is None:
                        buckets[du] = [u]
                        heappush(heap, du)
                    else:
                        bucket.append(u)
    return _Tree(source, seen, pred)


def _batch_trees(adj: _Adjacency, sources: list[int]) -> list[_Tree]:
    """Trees from each of ``sources`` with distances from scipy's C Dijkstra (see :func:`_batch_routes`)."""
    return _trees_from(_batch_routes(adj, sources), sources, len(adj))


# Sources whose predecessors are worked out in one numpy pass (bounds its memory).
PRED_CHUNK = 128


def _batch_routes(adj: _Adjacency, sources: list[int]) -> tuple[bytes, bytes]:
    """The distances from each of ``sources`` to every site by scipy's C
    Dijkstra, one row of float64 per source (inf: not reached), and the
    predecessors, one row of C ints per source (-1 at the source, ``_UNSET``
    where the distances alone do not tell or the site is not reached), each
    as bytes.

    Its distances are networkx's to the bit: both keep, per site, the least
    ``distance[u] + latency`` over settled neighbours, and float addition is
    monotone. Latencies are floats (the spec model makes them so), and a
    sparse matrix keeps zero-latency links as links. A predecessor is kept
    where exactly one neighbour ``u`` has ``distance[u] + latency ==
    distance[v]``: that is scipy's (its relaxation from ``u`` set the
    distance) and the one :func:`_pred_from` works out. Where several have,
    it is left for :func:`_pred_from` to choose when a route needs it (on
    generated specs, about one site in 370), which spares a pass that
    ranks them for every site (a third of the batch's time).
    """
    import numpy as np
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import dijkstra

    n = len(adj)
    degree = np.array([len(edges) for edges in adj], dtype=np.int64)
    ends = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(degree, out=ends[1:])
    flat = [edge for edges in adj for edge in edges]
    neighbours = np.array([u for u, _ in flat], dtype=np.int64)
    latencies = np.array([w for _, w in flat], dtype=np.float64)
    graph = csr_array((latencies, neighbours, ends), shape=(n, n))
    distances, before = dijkstra(graph, directed=True, indices=sources, return_predecessors=True)
    distances = np.ascontiguousarray(distances, dtype=np.float64).reshape(len(sources), n)
    preds = np.ascontiguousarray(before, dtype=np.intc).reshape(len(sources), n)
    owner = np.repeat(np.arange(n), degree)  # the site v whose neighbour list holds each entry
    linked = degree > 0
    starts = ends[:-1][linked]
    for first in range(0, len(sources), PRED_CHUNK):
        rows = distances[first : first + PRED_CHUNK]
        candidate = rows[:, neighbours] + latencies == rows[:, owner]
        count = np.zeros(rows.shape, dtype=np.int64)
        count[:, linked] = np.add.reduceat(candidate, starts, axis=1)
        preds[first : first + PRED_CHUNK][(count != 1) | ~np.isfinite(rows)] = _UNSET
    preds[np.arange(len(sources)), sources] = -1
    return distances.tobytes(), preds.tobytes()


def _trees_from(routes: tuple[bytes, bytes], sources: list[int], n: int) -> list[_Tree]:
    """Trees from rows of distances and predecessors (:func:`_batch_routes`),
    read without numpy or copying, each row a view of the bytes (the
    predecessors' a writable copy); a predecessor left unset is worked out by
    :func:`_pred_from` (or an exact run) when a route needs it."""
    rows = memoryview(routes[0]).cast("d")
    before = memoryview(bytearray(routes[1])).cast("i")
    return [_Tree(source, rows[k * n : (k + 1) * n], before[k * n : (k + 1) * n]) for k, source in enumerate(sources)]


# A forked copy of this process that imports scipy ahead of time and then
# computes the next large batch (see start_route_worker).
_worker: Server | None = None


def start_route_worker(wait_for: int | None = None) -> None:
    """Start a forked copy that imports scipy now and computes the next large batch of routes.

    For a command about to read a large spec: the import (about 0.4 s with
    numpy) happens on the other core while this process reads the spec, and
    the Dijkstra runs while it works out lineage. Nothing happens where this
    process may not fork (``MEDPLAN_PARALLEL=0``, other threads, not Linux).

    ``wait_for`` is the read end of a pipe whose write end only another
    copy holds, busy on the other core (reading part of the spec): the
    import waits for that copy to end.
    """
    global _worker
    if _worker is None:
        _worker = Server.start(lambda: _start_after(wait_for), lambda _, batch: _batch_answer(*batch))


def _start_after(wait_for: int | None) -> None:
    if wait_for is not None:
        while os.read(wait_for, 1 << 16):  # until the other copy ends (and its end of the pipe with it)
            pass
    _import_scipy()


def _import_scipy() -> None:
    import scipy.sparse.csgraph  # noqa: F401 - the point of starting early


def _batch_answer(adj: _Adjacency, sources: list[int], pairs: list[tuple[int, int]], names: list[str], keys: list[dict[int, str]]) -> tuple:
    """The worker's answer to a batch: :func:`_batch_routes` of ``sources``,
    and the parts of the route (see :func:`_route_parts`) between each of
    ``pairs`` of site numbers, each pair's source among ``sources`` (None
    where its target is not reached)."""
    routes = _batch_routes(adj, sources)
    trees = dict(zip(sources, _trees_from(routes, sources, len(adj)))) if pairs else {}
    found: list[tuple | None] = []
    for source, at in pairs:
        tree = trees[source]
        if tree.distance[at] == _INF:
            found.append(None)
        else:
            trees[source], parts = _route_parts(adj, names, keys, tree, at)
            found.append(parts)
    return routes, found


def _send_batch(
    adj: _Adjacency, sources: list[int], pairs: list[tuple[int, int]], names: list[str], keys: list[dict[int, str]]
) -> tuple[Server, int] | None:
    """Hand a batch to the started worker, if any: the worker and the ticket of its answer, or None."""
    global _worker
    worker, _worker = _worker, None
    if worker is None:
        return None
    try:
        return worker, worker.ask((adj, sources, pairs, names, keys), ROUTES_TIMEOUT)
    except ServerLost:  # stopped: it ended, or took no batch in time
        return None


def stop_route_worker() -> None:
    """Stop a started worker that no batch came for."""
    global _worker
    worker, _worker = _worker, None
    if worker is not None:
        worker.stop()


def _pred_from(adj: _Adjacency, distance: list[float], v: int) -> int | None:
    """networkx's predecessor of reached site ``v`` from the distances alone, None if they cannot tell.

    networkx settles sites by (distance, push counter) and keeps as
    predecessor the first settled neighbour ``u`` whose ``distance[u] +
    latency`` equals ``v``'s distance. Nearer sites settle first, so that is
    the candidate with the least distance when only one has it, even at
    ``v``'s own distance over a zero-latency link: no other site could have
    set that distance. Candidates sharing the least distance settle in push
    order, which only the exact run knows.
    """
    dv = distance[v]
    found, least, tied = -1, _INF, False
    for u, w in adj[v]:
        du = distance[u]
        if du + w == dv:
            if du < least:
                found, least, tied = u, du, False
            elif du == least:
                tied = True
    return None if tied or found < 0 else found


def _walk(adj: _Adjacency, tree: _Tree, at: int) -> list[int] | None:
    """The sites from the tree's source to the reached site ``at``, working
    out (and keeping in the tree) predecessors not yet known; None where a
    tie only networkx's push order breaks, or (never expected) a walk longer
    than there are sites: the exact run decides then."""
    pred = tree.pred
    path = [at]
    v = at
    while (before := pred[v]) != -1:
        if before == _UNSET:
            before = _pred_from(adj, tree.distance, v)
            if before is None or len(path) > len(adj):
                return None
            pred[v] = before
        path.append(before)
        v = before
    path.reverse()
    return path


def _route_parts(
    adj: _Adjacency, names: list[str], keys: list[dict[int, str]], tree: _Tree, at: int
) -> tuple[_Tree, tuple]:
    """The route from the tree's source to the reached site ``at`` as
    (latency, sites, links), and the tree it was read from: ``tree``, or
    the exact run's where a tie needed it (keep it in place of ``tree``)."""
    path = _walk(adj, tree, at)
    if path is None:
        tree = _dijkstra(adj, tree.source)
        path = _walk(adj, tree, at)
        assert path is not None  # the exact run leaves nothing unset
    sites = tuple([names[v] for v in path])
    links = tuple([keys[a][b] for a, b in zip(path, path[1:])])
    return tree, (tree.latency(at), sites, links)


@dataclass
class SiteGraph:
    """Sites joined by links, with lowest-latency routes computed on demand."""

    spec: Spec
    _trees: dict[str, _Tree] = field(default_factory=dict, repr=False)
    _latencies: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    _routes: dict[tuple[str, str], Route] = field(default_factory=dict, repr=False)  # asked for already
    _pending: tuple | None = field(default=None, repr=False)  # a batch the worker computes: (worker, ticket, names, numbers)

    @cached_property
    def _topology(self) -> tuple[dict[str, int], list[str], _Adjacency, list[dict[int, str]]]:
        """Site numbers, names, (neighbour, latency) lists and link keys, in networkx's order.

        As in ``graph``: sites in spec order, then any other site a link
        names; neighbours in the order links first join them; a repeated
        pair keeps its first place but takes the last link's latency and key.
        """
        number: dict[str, int] = {}
        for site in self.spec.sites:
            number.setdefault(site.id, len(number))
        joined: list[dict[int, tuple[float, str]]] = [{} for _ in number]
        for link in self.spec.links:
            a, b = link.between
            for name in (a, b):
                if name not in number:
                    number[name] = len(number)
                    joined.append({})
            ia, ib = number[a], number[b]
            joined[ia][ib] = joined[ib][ia] = (link.latency_ms, link.key)
        names = list(number)
        adj = [tuple((u, w) for u, (w, _) in edges.items()) for edges in joined]
        keys = [{u: key for u, (_, key) in edges.items()} for edges in joined]
        return number, names, adj, keys

    @cached_property
    def graph(self) -> nx.Graph:
        """The sites and links as a networkx graph (edge data: latency, key)."""
        import networkx as nx

        g = nx.Graph()
        for site in self.spec.sites:
            g.add_node(site.id)
        for link in self.spec.links:
            a, b = link.between
            g.add_edge(a, b, latency=link.latency_ms, key=link.key)
        return g

    @cached_property
    def _components(self) -> list[int]:
        """Per site number, the number of the first site of its connected part."""
        adj = self._topology[2]
        part = [-1] * len(adj)
        for start in range(len(adj)):
            if part[start] < 0:
                part[start] = start
                stack = [start]
                while stack:
                    for u, _ in adj[stack.pop()]:
                        if part[u] < 0:
                            part[u] = start
                            stack.append(u)
        return part

    def connected(self, source: str, target: str) -> bool:
        """Whether any route joins the two sites (no shortest paths needed)."""
        number = self._topology[0]
        a, b = number.get(source), number.get(target)
        return a is not None and b is not None and self._components[a] == self._components[b]

    def prepare(self, sources: Iterable[str], pairs: Iterable[tuple[str, str]] = ()) -> None:
        """Compute the routes from all of ``sources`` at once, ahead of the questions.

        With enough of them, one call to scipy's C Dijkstra gives the
        distances of all and routes are read from those (a source whose route
        meets an equal-latency tie is recomputed exactly); otherwise each is
        left to the Python Dijkstra when first asked. Results are the same.
        A worker started by :func:`start_route_worker` computes the batch
        while this process goes on until the first question (:meth:`collect`),
        and also reads the routes between ``pairs`` (source, target) from
        those of its sources, which :meth:`route` then finds ready.
        """
        self.collect()
        number, names, adj, keys = self._topology
        todo = {s: number[s] for s in sources if s in number and s not in self._trees}
        if len(todo) * (len(adj) + sum(map(len, adj))) < BATCH_MIN_WORK:
            stop_route_worker()
            return
        at = list(todo.values())
        asked = list(dict.fromkeys((s, t) for s, t in pairs if s in todo and t in number and (s, t) not in self._routes))
        sent = _send_batch(adj, at, [(todo[s], number[t]) for s, t in asked], names, keys)
        if sent is None:
            self._trees.update(zip(todo, _batch_trees(adj, at)))
        else:
            self._pending = (*sent, list(todo), at, asked)

    def collect(self) -> None:
        """Take the routes the worker computed (see :meth:`prepare`), or compute them here if it failed."""
        if self._pending is None:
            return
        (worker, ticket, sources, at, asked), self._pending = self._pending, None
        adj = self._topology[2]
        try:
            answer = worker.answer(ticket, ROUTES_TIMEOUT)
        except ServerLost:
            answer = None
        finally:
            worker.stop()
        if answer is None:
            self._trees.update(zip(sources, _batch_trees(adj, at)))
            return
        routes, found = answer
        self._trees.update(zip(sources, _trees_from(routes, at, len(adj))))
        for (source, target), parts in zip(asked, found):
            self._routes[(source, target)] = Route(source, target, False) if parts is None else Route(source, target, True, *parts)

    def __del__(self) -> None:
        if self._pending is not None:  # dropped before a route was asked: stop the worker
            self._pending[0].stop()

    def _tree(self, source: str) -> _Tree | None:
        """Routes from ``source``, computed in full the first time (None: not a site)."""
        if self._pending is not None:
            self.collect()
        found = self._trees.get(source)
        if found is None:
            number, _, adj, _ = self._topology
            at = number.get(source)
            if at is None:
                return None
            found = self._trees[source] = _dijkstra(adj, at)
        return found

    def latencies_from(self, source: str) -> dict[str, float]:
        """Latency in ms from ``source`` to every reachable site (0 to itself); order not promised."""
        found = self._latencies.get(source)
        if found is None:
            tree = self._tree(source)
            names = self._topology[1]
            found = {} if tree is None else {names[v]: d for v, d in enumerate(tree.latencies()) if d != _INF}
            self._latencies[source] = found
        return found

    def latency_list(self, source: str, sites: list[str] | tuple[str, ...]) -> list[float]:
        """Latency in ms from ``source`` to each of ``sites``, in that order (inf: no route).

        The same figures as :meth:`latencies_from` without building a mapping
        per source: the solver asks this for every input site of a spec."""
        tree = self._tree(source)
        if tree is None:
            return [_INF] * len(sites)
        number, latency = self._topology[0], tree.latency
        if sites == self._spec_sites:  # numbered first, in this order
            return tree.latencies(len(sites))
        return [latency(number[s]) if s in number else _INF for s in sites]

    @cached_property
    def _spec_sites(self) -> tuple[str, ...]:
        """The spec's site ids in order (as :meth:`latency_list` is asked for them), where no id repeats."""
        ids = tuple(site.id for site in self.spec.sites)
        return ids if len(set(ids)) == len(ids) else ()

    def route(self, source: str, target: str) -> Route:
        """The lowest-latency route; asked again (flows between the same two sites), the same object."""
        found = self._routes.get((source, target))
        if found is None:
            found = self._routes[(source, target)] = self._route(source, target)
        return found

    def _route(self, source: str, target: str) -> Route:
        number, names, adj, keys = self._topology
        tree = self._tree(source)
        at = number.get(target)
        if tree is None or at is None or tree.distance[at] == _INF:
            return Route(source, target, False)
        self._trees[source], parts = _route_parts(adj, names, keys, tree, at)
        return Route(source, target, True, *parts)


def flow_end(spec_index: dict[str, dict[str, object]], name: str) -> FlowEnd:
    """Resolve a flow end (``id`` or ``KIND/ID``); references were checked at load."""
    if "/" in name:
        kind, _, ident = name.partition("/")
        kinds = [kind]
    else:
        ident = name
        kinds = ["dataset", "workload", "site"]
    for kind in kinds:
        item = spec_index[kind].get(ident)
        if item is None:
            continue
        if kind == "dataset":
            return FlowEnd(kind, ident, item.site)  # type: ignore[attr-defined]
        if kind == "site":
            return FlowEnd(kind, ident, ident)
        return FlowEnd(kind, ident, None)
    raise KeyError(name)


class FlowEnds(dict):
    """Flow ends resolved once per name: ``ends[name]`` is ``flow_end(index, name)``."""

    def __init__(self, spec_index: dict[str, dict[str, object]]):
        super().__init__()
        self.index = spec_index

    def __missing__(self, name: str) -> FlowEnd:
        end = self[name] = flow_end(self.index, name)
        return end


def spec_index(spec: Spec) -> dict[str, dict[str, object]]:
    return {
        "site": {s.id: s for s in spec.sites},
        "dataset": {d.id: d for d in spec.datasets},
        "workload": {w.id: w for w in spec.workloads},
        "flow": {f.id: f for f in spec.flows},
    }


def lineage(
    spec: Spec, placed: dict[str, set[str]] | None = None, *, ends: FlowEnds | None = None
) -> dict[str, dict[str, list[str]]]:
    """Where each dataset's personal data ends up.

    Data moves from a dataset to each workload that reads it, and along every
    declared flow whose classification is still personal (a flow declared
    de-identified or public carries no personal data onward). ``placed`` maps
    workloads to the sites a plan put them on; without it workloads reach no
    site. Returns, per dataset, the sorted sites, zones and nodes reached.
    ``ends`` may pass flow ends already resolved for this spec.
    """
    if ends is None:
        ends = FlowEnds(spec_index(spec))
    # Nodes are numbered per kind; onward[n] lists the nodes data at n moves to.
    number: dict[str, dict[str, int]] = {"dataset": {}, "workload": {}, "site": {}}
    kinds: list[str] = []
    idents: list[str] = []
    onward: list[list[int]] = []

    def node(kind: str, ident: str) -> int:
        of_kind = number.get(kind)
        if of_kind is None:
            of_kind = number[kind] = {}
        found = of_kind.get(ident)
        if found is None:
            found = of_kind[ident] = len(kinds)
            kinds.append(kind)
            idents.append(ident)
            onward.append([])
        return found

    for d in spec.datasets:
        onward[node("dataset", d.id)].append(node("site", d.site))
    for w in spec.workloads:
        at = node("workload", w.id)
        for name in w.inputs:
            onward[node("dataset", name)].append(at)
        for site in (placed or {}).get(w.id, ()):
            onward[at].append(node("site", site))
    for f in spec.flows:
        if f.classification not in PERSONAL:
            continue
        a, b = ends[f.from_], ends[f.to]
        onward[node(a.kind, a.id)].append(node(b.kind, b.id))
    datasets = number["dataset"]

    zone = {s.id: s.zone for s in spec.sites}
    out: dict[str, dict[str, list[str]]] = {}
    for d in spec.datasets:
        if d.classification not in PERSONAL:
            out[d.id] = {"sites": [d.site], "zones": [zone.get(d.site, "")], "workloads": [], "datasets": []}
            continue
        start = datasets[d.id]
        reached = {start}
        stack = [start]
        while stack:
            for n in onward[stack.pop()]:
                if n not in reached:
                    reached.add(n)
                    stack.append(n)
        reached.discard(start)  # a dataset is not among what it reaches, even round a cycle
        found: dict[str, set[str]] = {"site": {d.site}, "workload": set(), "dataset": set()}
        for n in reached:
            of_kind = found.get(kinds[n])
            if of_kind is not None:
                of_kind.add(idents[n])
        site_ids = sorted(found["site"])
        out[d.id] = {
            "sites": site_ids,
            "zones": sorted({zone[s] for s in site_ids if s in zone}),
            "workloads": sorted(found["workload"]),
            "datasets": sorted(found["dataset"]),
        }
    return out
