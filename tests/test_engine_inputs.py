"""The regorus engine reuses an input it has read when the next document
repeats it with top-level keys replaced or added (the plan stage's document
repeats the validate stage's). Every rule must answer exactly as it does on a
fresh engine given the whole document."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import pytest

from planner.generate import generate_yaml
from planner.policy.engine import RegorusEngine, input_json
from tests.conftest import child_pids, failing_in_copies

POLICY = """
package t

import rego.v1

keys := sort(object.keys(input))

stage := input.medplan.stage

placed := count(input.plan.placements)

sites_named contains name if some name, _ in input.sites

every_key_seen contains k if some k, _ in input

deny contains msg if {
    some p in input.plan.placements
    input.sites[p.site].zone == "us"
    msg := sprintf("%s on %s", [p.workload, p.site])
}

undefined_here if input.nothing == 1

fails := x if x := input.medplan.stage + 1
"""

QUERIES = ["data.t.keys", "data.t.stage", "data.t.placed", "data.t.sites_named", "data.t.every_key_seen", "data.t.deny", "data.t.undefined_here", "data.t.not_a_rule"]


def _engine() -> RegorusEngine:
    engine = RegorusEngine()
    engine.load({"t.rego": POLICY})
    return engine


def _answers(engine: RegorusEngine) -> dict:
    return {q: engine.evaluate(q) for q in QUERIES}


@pytest.fixture
def documents():
    validate = {
        "medplan": {"stage": "validate"},
        "sites": {"a": {"zone": "us"}, "b": {"zone": "eu"}},
        "workloads": {"w": {"replicas": 2}},
    }
    plan = validate | {
        "medplan": validate["medplan"] | {"stage": "plan"},
        "plan": {"placements": [{"workload": "w", "site": "a"}, {"workload": "w", "site": "b"}]},
    }
    return validate, plan


def test_a_document_that_repeats_the_last_one_answers_as_on_a_fresh_engine(documents):
    validate, plan = documents
    engine = _engine()
    engine.set_input(validate)
    first = _answers(engine)
    engine.set_input(plan)
    reused = _answers(engine)

    fresh = _engine()
    fresh.set_input(plan)
    assert reused == _answers(fresh)
    assert reused["data.t.stage"] == "plan" and reused["data.t.placed"] == 2
    assert reused["data.t.keys"] == ["medplan", "plan", "sites", "workloads"]
    assert reused["data.t.deny"] == ["w on a"]
    assert first["data.t.stage"] == "validate" and first["data.t.keys"] == ["medplan", "sites", "workloads"]


def test_going_back_to_an_earlier_document_and_to_an_unrelated_one(documents):
    validate, plan = documents
    engine = _engine()
    for document in (validate, plan, validate, {"medplan": {"stage": "x"}, "sites": {}}, plan):
        engine.set_input(document)
        fresh = _engine()
        fresh.set_input(document)
        assert _answers(engine) == _answers(fresh)


@pytest.fixture
def background(monkeypatch):
    """Every background read goes to a forked copy; none is left behind."""
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        pytest.skip("inputs are read in the background by a forked copy, on Linux, from a process with one thread")
    monkeypatch.setattr(RegorusEngine, "BACKGROUND_FROM_ENTRIES", 0)
    yield
    assert not child_pids()


def _submitted(engine: RegorusEngine) -> dict:
    return {q: (value if ok else type(value).__name__) for q, (ok, value) in zip(QUERIES + ["data.t.fails"], engine.submit(QUERIES + ["data.t.fails"])())}


def _fresh_engine(document: dict) -> RegorusEngine:
    fresh = _engine()
    fresh.set_input(document)
    return fresh


def _fresh_answers(document: dict) -> dict:
    return _submitted(_fresh_engine(document))


def test_a_document_read_in_the_background_answers_as_here(documents, background, forks):
    validate, plan = documents
    engine = _engine()
    engine.set_input(validate, background=True)
    pending = engine.submit(QUERIES)
    assert len(forks) == 1 and len(child_pids()) == 1
    engine.set_input({"medplan": {"stage": "placement"}, "sites": {}})  # another document, read here meanwhile
    assert _submitted(engine) == _fresh_answers({"medplan": {"stage": "placement"}, "sites": {}})
    assert [value for _, value in pending()] == [_answers(_fresh_engine(validate))[q] for q in QUERIES]
    engine.set_input(plan)  # repeats the validate document: evaluated in the copy, with an overlay
    assert _submitted(engine) == _fresh_answers(plan)
    assert engine.evaluate("data.t.stage") == "plan" and len(forks) == 1
    engine.close()


def test_a_copy_that_ends_loses_no_answer(documents, background, forks):
    validate, plan = documents
    again = plan | {"medplan": {"stage": "again"}}

    def killed(engine: RegorusEngine) -> None:
        [server] = engine._servers
        os.kill(server.forked.pid, signal.SIGKILL)

    # Before the answers are taken in, before an overlay is made there, and before it is evaluated there.
    for steps in ([validate, killed], [validate, killed, plan], [validate, plan, killed], [validate, plan, killed, again]):
        engine = _engine()
        for step in steps:
            if callable(step):
                step(engine)
            else:
                engine.set_input(step, background=True)
        assert _submitted(engine) == _fresh_answers(steps[-1] if isinstance(steps[-1], dict) else steps[-2])
        assert not engine._servers and not child_pids()
    assert len(forks) == 4


def test_without_forking_the_document_is_read_here(documents, background, forks, monkeypatch):
    validate, _ = documents
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    engine = _engine()
    engine.set_input(validate, background=True)
    assert _submitted(engine) == _fresh_answers(validate) and not forks


def test_small_documents_are_read_here(documents, forks):
    engine = _engine()
    engine.set_input(documents[0], background=True)
    assert _submitted(engine) == _fresh_answers(documents[0]) and not forks


def test_input_json_writes_what_orjson_refuses():
    document = {"sites": {1: {"big": 2**70}}, "name": "é", "x": [1.5, None, True]}
    assert json.loads(input_json(document)) == json.loads(json.dumps(document))
    assert json.loads(input_json({"a": [0.1, 1e300, "z"]})) == {"a": [0.1, 1e300, "z"]}


def test_plan_finds_the_same_with_the_validate_stage_in_the_background(background, forks, monkeypatch, tmp_path):
    from planner import pipeline

    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(25, 250, 4), encoding="utf-8")
    away = pipeline.run_plan([str(path)], pipeline.ValidateOptions())
    assert len(forks) == 1  # the validate stage's copy; the plan stage is evaluated there too
    strict = pipeline.ValidateOptions(strict=True)
    assert pipeline.run_plan([str(path)], strict).findings == away.findings and len(forks) == 1  # --strict: here
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    here = pipeline.run_plan([str(path)], pipeline.ValidateOptions())
    assert away.findings == here.findings and any(f.rule.startswith("MP-PLAT-") for f in here.findings)
    assert away.plan.placements == here.plan.placements and len(forks) == 1


@pytest.fixture
def helper(may_fork):
    """A started input helper, as ``medplan validate`` starts one for a large spec."""
    from planner.policy.engine import start_input_helper

    start_input_helper()
    assert len(child_pids()) == 1


def _streamed(engine: RegorusEngine, document: dict, keys: list[str]) -> None:
    for key in keys:
        engine.stream({key: document[key]})


def test_a_document_read_in_parts_answers_as_here(documents, helper, forks):
    validate, plan = documents
    engine = _engine()
    _streamed(engine, validate, ["sites", "workloads"])  # "medplan" is sent with the document
    other = {"medplan": {"stage": "placement"}, "sites": {}}
    engine.set_input(other)  # not the streamed document: read here, the parts wait
    assert _submitted(engine) == _fresh_answers(other)
    engine.set_input(validate)
    assert _submitted(engine) == _fresh_answers(validate)
    assert type(engine._current).__name__ == "_RemoteInput"
    engine.set_input(plan)  # repeats the streamed document: an overlay there
    assert _submitted(engine) == _fresh_answers(plan) and type(engine._current).__name__ == "_RemoteInput"
    assert not forks  # the helper was forked before
    engine.close()
    assert not child_pids()


def _posted_parts(monkeypatch) -> list:
    """What each "part" request sent to a helper held: texts, or where in the spill."""
    from planner.process import Server

    parts: list = []
    real = Server.post
    monkeypatch.setattr(Server, "post", lambda self, request, timeout=None: (
        parts.extend(request[1]) if request[0] == "part" else None) or real(self, request, timeout))
    return parts


@pytest.mark.parametrize("spill", ["memory file", "none", "full"])
def test_parts_go_through_a_memory_file_and_answer_as_through_the_pipe(spill, documents, may_fork, monkeypatch, forks):
    """A part is written to a memory file the helper shares, and the request
    says where: sending never waits for the helper to take a large part in.
    Without such a file, or once one cannot take more, parts go in the
    requests. Either way the answers are the same, and this process's side
    of the file is closed once the document is complete."""
    from planner.policy import engine as engine_module

    if spill == "none":
        monkeypatch.setattr(engine_module._Spill, "make", classmethod(lambda cls: None))
    engine_module.start_input_helper()
    held = engine_module._helper_spill
    assert (held is None) == (spill == "none")
    if spill == "full":
        def full(self, data):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(engine_module._Spill, "write", full)
    parts = _posted_parts(monkeypatch)
    validate, plan = documents
    engine = _engine()
    _streamed(engine, validate, ["sites", "workloads"])
    assert parts and all(isinstance(p, tuple) if spill == "memory file" else isinstance(p, str) for p in parts)
    engine.set_input(validate)
    assert _submitted(engine) == _fresh_answers(validate) and type(engine._current).__name__ == "_RemoteInput"
    engine.set_input(plan)
    assert _submitted(engine) == _fresh_answers(plan)
    if held is not None:
        assert held.fd is None  # closed here once every part was sent (or once it could take no more)
    engine.close()
    assert len(forks) == 1 and not child_pids()  # the helper, started here


def test_a_stream_closed_before_its_document_closes_the_memory_file(documents, helper):
    from planner.policy import engine as engine_module

    held = engine_module._helper_spill
    engine = _engine()
    _streamed(engine, documents[0], ["sites"])
    assert held is not None and held.fd is not None and held.size > 0
    engine.close()
    assert held.fd is None and not child_pids()


def test_a_helper_that_no_engine_took_is_stopped_with_its_memory_file(helper):
    from planner.policy import engine as engine_module

    held = engine_module._helper_spill
    engine_module.stop_input_helper()
    assert held is not None and held.fd is None and engine_module._helper is None and not child_pids()


def test_a_key_sent_again_is_read_again(documents, helper, forks):
    validate, _ = documents
    engine = _engine()
    engine.stream({"sites": {"old": {"zone": "us"}}})
    engine.stream({"sites": validate["sites"], "workloads": validate["workloads"]})
    engine.set_input(validate)
    assert _submitted(engine) == _fresh_answers(validate) and type(engine._current).__name__ == "_RemoteInput"
    engine.close()


def test_a_growing_object_is_sent_in_pieces_and_joined_there(documents, helper, forks):
    validate, plan = documents
    sites: dict = {}
    document = validate | {"sites": sites}
    engine = _engine()
    for n in range(8):
        sites[f"s{n}"] = {"zone": "us" if n % 2 else "eu"}
        if n % 3 == 0:
            engine.stream({"sites": sites}, growing=True)
    engine.stream({"sites": sites}, growing=True)
    engine.stream({"sites": sites}, growing=True)  # nothing added since: nothing sent
    engine.stream({"workloads": validate["workloads"]})
    engine.stream({"workloads": validate["workloads"]})  # the very value again: not sent again
    assert engine._stream.sent["workloads"].refs == ["data.__medplan_input_part_4"]
    sent = engine._stream.sent["sites"]
    assert len(sent.refs) == 4 and sent.growing == 8
    sites["a"] = {"zone": "us"}  # added after the last piece: sent with the document
    engine.set_input(document)
    assert len(sent.refs) == 5 and sent.growing is None
    assert _submitted(engine) == _fresh_answers(document) and type(engine._current).__name__ == "_RemoteInput"
    assert _submitted(engine)["data.t.sites_named"] == sorted(sites)
    engine.set_input(plan | {"sites": sites})  # an overlay on the joined pieces
    assert _submitted(engine) == _fresh_answers(plan | {"sites": sites}) and not forks
    engine.close()


def test_rules_over_an_input_in_parts_answer_together_or_one_by_one():
    """Rules over an input read in parts are evaluated in one query, which
    joins a piecewise object once; a failing rule sends every rule back to
    being evaluated alone. The answers are those of a fresh engine, undefined
    rules and paths that are not rules included."""
    from planner.policy.engine import _Input, _Sent

    policies = RegorusEngine.compiled({"t.rego": POLICY})
    engine = policies.clone()
    pieces = [{"a": {"zone": "us"}}, {"b": {"zone": "eu"}}, {"c": {"zone": "us"}}]
    for n, piece in enumerate(pieces):
        engine.add_data_json(input_json({f"piece{n}": piece}))
    engine.add_data_json(input_json({"stage": {"stage": "validate"}}))
    parts = {"medplan": "data.stage", "sites": _Sent(None, [f"data.piece{n}" for n in range(3)]).where}
    held = _Input(engine, parts=parts)
    document = {"medplan": {"stage": "validate"}, "sites": {k: v for piece in pieces for k, v in piece.items()}}
    fresh = _fresh_engine(document)
    assert held._together(QUERIES, policies) == fresh.submit(QUERIES)()
    assert held._together(QUERIES + ["data.t.fails"], policies) is None
    answers = held.evaluate(QUERIES + ["data.t.fails"], policies)
    assert answers[:-1] == fresh.submit(QUERIES)() and answers[-1][0] is False
    assert dict(zip(QUERIES, (v for _, v in answers)))["data.t.sites_named"] == ["a", "b", "c"]


def _told(outcomes) -> list:
    return [(ok, value if ok else f"{type(value).__name__}: {value}") for ok, value in outcomes]


def test_a_shared_evaluation_answers_as_one_here(documents, may_fork, forks, monkeypatch):
    """An input server whose caller waits shares the queries with a forked
    copy of itself; the answers, failures included, come back in order. A
    copy that fails, or none at all, leaves its queries to be evaluated here."""
    from planner.policy import engine as engine_module
    from planner.policy.engine import _Input, _shared

    _, plan = documents
    policies = RegorusEngine.compiled({"t.rego": POLICY})
    held = _Input(policies.clone())
    held.engine.set_input_json(input_json(plan))
    queries = QUERIES + ["data.t.fails"] + QUERIES[:3]
    alone = _told(held.evaluate(queries, policies))
    assert alone[-4][0] is False and alone[5] == (True, ["w on a"])
    assert _told(_shared(held, queries, policies)) == alone and len(forks) == 1 and not child_pids()
    monkeypatch.setattr(_Input, "evaluate", failing_in_copies(_Input.evaluate, "the copy fails"))
    assert _told(_shared(held, queries, policies)) == alone and len(forks) == 2 and not child_pids()
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    assert _told(_shared(held, queries, policies)) == alone and len(forks) == 2
    monkeypatch.setattr(engine_module, "SHARE_FROM_QUERIES", 100)
    monkeypatch.delenv("MEDPLAN_PARALLEL")
    assert _told(_shared(held, queries, policies)) == alone and len(forks) == 2  # too few to share


def test_parts_that_are_not_the_documents_are_not_used(documents, helper):
    validate, _ = documents
    engine = _engine()
    engine.stream({"sites": dict(validate["sites"])})  # equal, but not the very value
    engine.set_input(validate)
    assert _submitted(engine) == _fresh_answers(validate) and type(engine._current).__name__ == "_Input"
    engine.close()


def test_a_helper_that_ends_loses_no_answer(documents, helper):
    validate, plan = documents

    def killed(engine: RegorusEngine) -> None:
        [server] = engine._servers
        os.kill(server.forked.pid, signal.SIGKILL)
        os.waitpid(server.forked.pid, 0)
        server.forked.pid = None

    from planner.policy.engine import start_input_helper

    for at in range(4):  # after the first part, after the second, after the document, after the overlay
        if at:
            start_input_helper()
        engine = _engine()
        steps = [lambda: engine.stream({"sites": validate["sites"]}), lambda: engine.stream({"workloads": validate["workloads"]}),
                 lambda: engine.set_input(validate), lambda: engine.set_input(plan)]
        for n, step in enumerate(steps):
            step()
            if n == at:
                killed(engine)
        assert _submitted(engine) == _fresh_answers(plan)
        assert not engine._servers and not child_pids()


def test_without_a_helper_parts_are_not_sent(documents, forks):
    validate, _ = documents
    engine = _engine()
    engine.stream({"sites": validate["sites"]})
    engine.set_input(validate)
    assert _submitted(engine) == _fresh_answers(validate) and not forks


def test_validate_reads_the_document_in_parts_and_finds_the_same(may_fork, monkeypatch, tmp_path, forks):
    from planner import pipeline, startup
    from planner.policy import document as document_module
    from planner.policy import engine as engine_module

    path = tmp_path / "g.yaml"
    path.write_text(generate_yaml(25, 250, 4), encoding="utf-8")
    monkeypatch.setattr(startup, "ROUTE_WORKER_FROM_BYTES", 0)
    monkeypatch.setattr(document_module, "EMIT_FLOWS", 64)  # the flows in pieces, as on a large spec
    finished = []
    real = engine_module._Stream.finish
    monkeypatch.setattr(engine_module._Stream, "finish", lambda self, document: finished.append(list(self.sent)) or real(self, document))
    pieces = []
    real_send = engine_module._Stream.send
    monkeypatch.setattr(engine_module._Stream, "send", lambda self, part, growing=False: pieces.append(growing) or real_send(self, part, growing))
    parts = pipeline.run_validate([str(path)], pipeline.ValidateOptions())
    assert finished == [["pools", "datasets", "workloads", "flows", "sites", "links"]]
    assert pieces.count(True) >= 4
    monkeypatch.setenv("MEDPLAN_PARALLEL", "0")
    here = pipeline.run_validate([str(path)], pipeline.ValidateOptions())
    assert len(finished) == 1
    assert [(f.rule, f.subject, f.message, f.location) for f in parts.findings] == [(f.rule, f.subject, f.message, f.location) for f in here.findings]
    assert parts.findings and not child_pids()


@pytest.mark.parametrize("spec_file", ["generated", "tests/fixtures/rules/MP-GDPR-PLACE-001/good.yaml"])
def test_the_sections_built_while_the_routes_are_worked_out_are_the_documents(spec_file, may_fork, monkeypatch, tmp_path):
    import planner.graph as graph_module
    from planner.facts import derive
    from planner.policy.document import FlowSections, early_sections, validate_document
    from planner.spec.loader import load_spec
    from tests.conftest import REPO

    path = REPO / spec_file
    if spec_file == "generated":
        path = tmp_path / "g.yaml"
        path.write_text(generate_yaml(25, 250, 4), encoding="utf-8")
        monkeypatch.setattr(graph_module, "BATCH_MIN_WORK", 0)
        graph_module.start_route_worker()
    early, seen = [], []

    def routed(facts):
        flowing = FlowSections(facts)
        seen.append((list(facts.flows), flowing))
        return lambda rf: flowing.add(rf) or seen.append(rf)

    facts = derive(load_spec(path), lambda facts: early.append((list(facts.flows), early_sections(facts))), routed)
    [(flows_then, sections)] = early
    [(flows_routed, built)] = seen[:1]
    assert not flows_then and not flows_routed and facts.flows  # the flows came after
    assert seen[1:] == facts.flows  # each given to the flow section as it was resolved
    after = validate_document(derive(load_spec(path)))
    assert json.dumps(validate_document(facts, sections=sections)) == json.dumps(after)
    assert json.dumps(validate_document(facts, sections=sections, flowing=built)) == json.dumps(after)
    assert sections == {key: after[key] for key in ("pools", "datasets", "workloads")}
    assert built.done() == (after["flows"], after["sites"], after["links"])
    if spec_file != "generated":  # a flow into a workload names its transfer mechanism
        assert after["workloads"]["signal"]["transfer_mechanisms"] == ["scc"]
