"""The engine's books and the resolver chain, with real and plugin-provided resolvers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from b12drugs import hookimpl
from b12drugs.engines import Screener, screen, screen_inputs
from b12drugs.models import (
    DrugQuery,
    IngredientMatch,
    Notice,
    Order,
    PatientContext,
    PatientEnd,
    Rejection,
    Resolution,
    Skip,
    SourceLocation,
)
from b12drugs.plugins import PluginManager
from b12drugs.records import ResolveFn, Resolver


def test_every_record_is_accounted_for() -> None:
    loc = SourceLocation(file="f.csv", line=9)
    records = [
        Order(id="1", patient_id="p", text="metformin 500 mg", status="active"),
        Order(id="2", patient_id="p", text="lisinopril 10 mg", status="active"),
        Order(id="3", patient_id="p", text="omeprazole", status="cancelled"),
        Order(id="4", patient_id="p", text="qqqzzz unknownium", status="active"),
        Rejection(location=loc, reason="bad date"),
        Skip(location=loc, reason="not a medication record"),
    ]
    report = screen(records)
    c = report.counts
    assert (c.read, c.screened, c.skipped, c.rejected) == (6, 3, 2, 1)
    kinds = {(n.kind, n.order_id) for n in report.notices}
    assert ("unresolved", "4") in kinds and ("skipped", "3") in kinds
    assert any(n.kind == "rejected" and n.location == "f.csv:9" for n in report.notices)
    assert [a.class_id for a in report.alerts] == ["metformin"]


def test_unresolved_is_never_silent() -> None:
    report = screen([Order(id="x", text="Zorvanex 25 mg")])
    assert report.alerts == ()
    [notice] = [n for n in report.notices if n.kind == "unresolved"]
    assert "NOT checked" in notice.message and notice.order_id == "x"
    report = screen([Order(id="y")])  # neither code nor text
    assert any(n.kind == "unresolved" and n.order_id == "y" for n in report.notices)


def test_notices_are_capped_but_counted() -> None:
    s = Screener(notice_limit=5)
    s.feed([Order(id=str(i), text=f"zzunknown{i}") for i in range(12)], "t")
    report = s.finish()
    unresolved = [n for n in report.notices if n.kind == "unresolved"]
    assert len(unresolved) == 6  # 5 listed + 1 summary
    assert "7 more unresolved notices" in unresolved[-1].message
    assert report.counts.screened == 12


def test_resolution_is_done_once_per_distinct_drug(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []

    class Counting:
        @hookimpl
        def b12drugs_resolvers(self) -> list[Resolver]:
            def factory(config: object) -> ResolveFn:
                def resolve(qs: Sequence[DrugQuery]) -> dict[DrugQuery, Resolution]:
                    calls.append(len(qs))
                    return {}
                return resolve
            return [Resolver("counting", 10, factory)]

    register_plugin(Counting(), "counting")
    orders = [Order(id=str(i), text=["metformin", "omeprazole", "zz"][i % 3]) for i in range(3000)]
    s = Screener(manager=plugin_manager)
    s.feed(orders, "t")
    s.finish()
    assert sum(calls) == 3  # three distinct drugs, asked once each


def test_chain_order_and_first_resolved_wins(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def make(name: str, answer: bool) -> Callable[[object], ResolveFn]:
        def factory(config: object) -> ResolveFn:
            def resolve(qs: Sequence[DrugQuery]) -> dict[DrugQuery, Resolution]:
                seen.append(name)
                if not answer:
                    return {q: Resolution(resolved=False, resolver=name, notices=(
                        Notice(kind="source_unavailable", message=f"{name} down"),)) for q in qs}
                return {q: Resolution(resolved=True, resolver=name, ingredients=(
                    IngredientMatch(name="metformin", method="exact_name", confidence=1.0,
                                    source=name),)) for q in qs}
            return resolve
        return factory

    class Vendor:
        @hookimpl
        def b12drugs_resolvers(self) -> list[Resolver]:
            return [Resolver("down", 5, make("down", False)),
                    Resolver("formulary", 50, make("formulary", True))]

    register_plugin(Vendor(), "vendor")
    report = screen([Order(id="1", patient_id="p", text="house code 77")], manager=plugin_manager)
    assert seen == ["down", "formulary"]  # knowledge base (100) never asked
    assert [a.class_id for a in report.alerts] == ["metformin"]
    # resolved later in the chain: the earlier source_unavailable notice is moot
    assert not any(n.kind == "source_unavailable" for n in report.notices)


def test_source_unavailable_travels_with_unresolved(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    class Down:
        @hookimpl
        def b12drugs_resolvers(self) -> list[Resolver]:
            def factory(config: object):  # type: ignore[no-untyped-def]
                return lambda qs: {q: Resolution(resolved=False, resolver="down", notices=(
                    Notice(kind="source_unavailable", message="RxNav could not be reached"),))
                    for q in qs}
            return [Resolver("down", 400, factory)]

    register_plugin(Down(), "down")
    report = screen([Order(id="9", text="zzunknownzz")], manager=plugin_manager)
    kinds = sorted(n.kind for n in report.notices)
    assert kinds == ["source_unavailable", "unresolved"]
    assert all(n.order_id == "9" for n in report.notices)


def test_a_failing_resolver_does_not_stop_screening(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    plugin_manager.hooks.strict = False

    class Bad:
        @hookimpl
        def b12drugs_resolvers(self) -> list[Resolver]:
            def factory(config: object):  # type: ignore[no-untyped-def]
                def resolve(qs):  # type: ignore[no-untyped-def]
                    raise RuntimeError("vendor db down")
                return resolve
            return [Resolver("bad", 1, factory)]

    register_plugin(Bad(), "bad")
    report = screen([Order(id="1", patient_id="p", text="metformin")], manager=plugin_manager)
    assert [a.class_id for a in report.alerts] == ["metformin"]
    assert any("vendor db down" in p.error for p in plugin_manager.hooks.problems)


def test_patient_end_finalises_early_and_frees_memory() -> None:
    s = Screener()
    s.feed([PatientContext(id="a", age=80), Order(id="1", patient_id="a", text="metformin"),
            PatientEnd(patient_id="a")], "t")
    assert len(s.alerts) == 1 and s.alerts[0].severity == "warning"
    assert "a" not in s._patients and "a" not in s._contexts
    report = s.finish()
    assert len(report.alerts) == 1


def test_patients_without_findings_are_not_kept() -> None:
    s = Screener()
    s.feed([Order(id=str(i), patient_id=f"p{i}", text="lisinopril 10 mg") for i in range(500)], "t")
    assert s._patients == {}


def test_orders_without_patient_are_screened_alone() -> None:
    report = screen([Order(id="1", text="metformin"), Order(id="2", text="omeprazole")])
    assert {a.severity for a in report.alerts} == {"info"}  # no cross-escalation
    assert all(a.patient_id is None for a in report.alerts)


def test_parser_yielding_garbage_is_a_plugin_error() -> None:
    from b12drugs.errors import PluginError

    s = Screener()
    with pytest.raises(PluginError, match="yielded dict"):
        s.feed([{"id": "1"}], "t")  # type: ignore[list-item]


def test_screen_attributes_orders_to_the_given_patient() -> None:
    report = screen([Order(id="1", text="metformin")], patient=PatientContext(id="p1", age=70))
    assert report.alerts[0].patient_id == "p1" and report.alerts[0].severity == "warning"


def test_sinks_receive_the_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from b12drugs.config import Config, SinkConfig

    path = tmp_path / "alerts.jsonl"
    config = Config(sinks=(SinkConfig(name="jsonl-file", path=str(path)),))
    screen([Order(id="1", patient_id="p", text="metformin")], config=config)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0]["class_id"] == "metformin" and rows[0]["schema_version"]


def test_unknown_sink_is_an_error() -> None:
    from b12drugs.config import Config, SinkConfig
    from b12drugs.errors import PluginError

    with pytest.raises(PluginError, match="not installed"):
        screen([], config=Config(sinks=(SinkConfig(name="nope"),)))


def test_isolated_manager_fixture_is_strict(plugin_manager: PluginManager) -> None:
    assert plugin_manager.strict and "csv" in plugin_manager.infos


def test_resolvers_are_closed_at_the_end_of_a_run(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    closed: list[str] = []

    class Resolve:
        def __call__(self, qs):  # type: ignore[no-untyped-def]
            return {}

        def close(self) -> None:
            closed.append("yes")

    class Holder:
        @hookimpl
        def b12drugs_resolvers(self) -> list[Resolver]:
            return [Resolver("holder", 400, lambda config: Resolve())]

    register_plugin(Holder(), "holder")
    screen([Order(id="1", text="metformin")], manager=plugin_manager)
    assert closed == ["yes"]


def test_runtime_is_shared_by_many_runs(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    """A long-running service builds resolvers once per thread, resolves each distinct
    drug once across runs, and closes everything once."""
    import threading

    from b12drugs.engines import Runtime

    built: list[str] = []
    asked: list[int] = []
    closed: list[str] = []

    class Resolve:
        def __call__(self, qs):  # type: ignore[no-untyped-def]
            asked.append(len(qs))
            return {}

        def close(self) -> None:
            closed.append(threading.current_thread().name)

    def factory(config):  # type: ignore[no-untyped-def]
        built.append(threading.current_thread().name)
        return Resolve()

    class Counting:
        @hookimpl
        def b12drugs_resolvers(self) -> list[Resolver]:
            return [Resolver("counting", 10, factory)]

    register_plugin(Counting(), "counting")
    with Runtime(manager=plugin_manager) as runtime:
        for _ in range(5):
            s = Screener(runtime=runtime)
            s.feed([Order(id="1", patient_id="p", text="metformin 500 mg")], "msg")
            assert [a.class_id for a in s.finish().alerts] == ["metformin"]
        def other_thread() -> None:
            s = Screener(runtime=runtime)
            s.feed([Order(id="2", patient_id="p", text="omeprazole 20 mg")], "msg")
            s.finish()

        worker = threading.Thread(target=other_thread, name="w")
        worker.start()
        worker.join()
        assert closed == []  # runs do not close a shared runtime
    # one distinct drug, resolved once for five runs; the other thread's new drug once,
    # by that thread's own chain (built on its first use)
    assert sum(asked) == 2
    assert sorted(built) == sorted(["MainThread", "w"])
    assert len(closed) == 2


def test_runtime_cache_is_bounded() -> None:
    from b12drugs.engines import Runtime

    runtime = Runtime(cache_limit=10)
    for i in range(30):
        s = Screener(runtime=runtime)
        s.feed([Order(id="1", text=f"zzdrug{i}")], "msg")
        s.finish()
    assert len(runtime.outcomes) <= 11
    runtime.close()


def test_parser_notices_are_reported_not_counted() -> None:
    report = screen([Order(id="1", patient_id="p", text="metformin"),
                     Notice(kind="info", message="birth date 19X0 ignored", order_id="1")])
    assert report.counts.read == 1
    assert any(n.message == "birth date 19X0 ignored" and n.source == "api"
               for n in report.notices)


def test_records_after_patient_end_are_reported_once_and_keep_their_context() -> None:
    """Records after a PatientEnd used to be evaluated again, silently, without context."""
    records = [
        PatientContext(id="p", age=80),
        Order(id="1", patient_id="p", text="metformin 500 mg"),
        PatientEnd(patient_id="p"),
        PatientContext(id="p", age=81),
        Order(id="2", patient_id="p", text="metformin 500 mg"),
        Order(id="3", patient_id="p", text="omeprazole 20 mg"),
    ]
    report = screen(records)
    late = [n for n in report.notices if "after the patient was completed" in n.message]
    assert [(n.kind, n.patient_id) for n in late] == [("info", "p")]
    assert len(report.alerts) >= 2
    assert all(a.patient_id == "p" for a in report.alerts)


class _Failing:
    """A plugin whose rule, risk factors and sink all fail (with patient data in the
    exception message, which must not reach the report)."""

    @hookimpl
    def b12drugs_rules(self):  # type: ignore[no-untyped-def]
        from b12drugs.records import Rule

        def evaluate(case, kb, config):  # type: ignore[no-untyped-def]
            raise RuntimeError(f"boom for {case.patient_id} SECRET")

        return [Rule(name="broken-rule", description="fails", evaluate=evaluate)]

    @hookimpl
    def b12drugs_risk_factors(self, patient):  # type: ignore[no-untyped-def]
        raise KeyError(f"SECRET {patient.id}")

    @hookimpl
    def b12drugs_alert_sinks(self):  # type: ignore[no-untyped-def]
        from b12drugs.records import AlertSink

        def factory(options):  # type: ignore[no-untyped-def]
            def deliver(report):  # type: ignore[no-untyped-def]
                raise OSError("SECRET disk full")
            return deliver

        return [AlertSink(name="broken-sink", description="fails", factory=factory)]


def test_plugin_failures_reach_the_report_without_their_messages() -> None:
    """The "plugin_error" notice kind is additive (an enum value), so SCHEMA_VERSION
    stays "1.0"; the schema snapshot was refreshed for it."""
    from b12drugs.config import Config, SinkConfig

    manager = PluginManager(strict=False, entry_points=False)
    manager.register(_Failing(), "failing")
    config = Config(sinks=(SinkConfig(name="broken-sink"),))
    records = [PatientContext(id="p1", age=80),
               Order(id="1", patient_id="p1", text="metformin 500 mg")]
    report = screen(records, config=config, manager=manager)
    errors = [n for n in report.notices if n.kind == "plugin_error"]
    text = " ".join(n.message for n in errors)
    assert "broken-rule" in text and "RuntimeError" in text and "KeyError" in text
    assert "broken-sink" in text and "OSError" in text
    assert "SECRET" not in text
    assert {n.patient_id for n in errors} == {"p1", None}
    assert any(a.class_id == "metformin" for a in report.alerts)  # the builtin rule ran


@pytest.mark.parametrize("answer", [["not", "a", "mapping"], {"q": "not a Resolution"}])
def test_a_resolver_returning_the_wrong_type_is_its_problem(  # type: ignore[no-untyped-def]
        register_plugin, plugin_manager, tmp_path, answer) -> None:
    """A wrong answer used to raise inside the engine, blamed on the input reader, and
    the rest of the file was lost."""
    from b12drugs.engines import screen_inputs

    plugin_manager.hooks.strict = False

    class Wrong:
        @hookimpl
        def b12drugs_resolvers(self) -> list[Resolver]:
            def factory(config: object):  # type: ignore[no-untyped-def]
                def resolve(qs):  # type: ignore[no-untyped-def]
                    return answer if isinstance(answer, list) else {q: answer["q"] for q in qs}
                return resolve
            return [Resolver("wrong", 1, factory)]

    register_plugin(Wrong(), "wrong")
    path = tmp_path / "rx.csv"
    path.write_text("patient_id,rx_id,drug_name\np1,r1,metformin 500 mg\np2,r2,omeprazole\n")
    report = screen_inputs([path], manager=plugin_manager)
    assert report.counts.screened == 2 and report.counts.rejected == 0
    assert {a.patient_id for a in report.alerts} == {"p1", "p2"}
    [prob] = plugin_manager.hooks.problems
    assert prob.where == "resolver wrong" and prob.exc_type == "TypeError"


def test_unavailable_source_outcomes_are_not_kept(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    """A shared runtime used to remember "source unavailable" forever: the drug was never
    looked up again once the source was back."""
    from b12drugs.engines import Runtime

    asked: list[int] = []

    def factory(config: object):  # type: ignore[no-untyped-def]
        def resolve(qs):  # type: ignore[no-untyped-def]
            asked.append(len(qs))
            return {q: Resolution(resolved=False, resolver="down", notices=(
                Notice(kind="source_unavailable", message="source could not be reached"),))
                for q in qs}
        return resolve

    class Down:
        @hookimpl
        def b12drugs_resolvers(self) -> list[Resolver]:
            return [Resolver("down", 400, factory)]

    register_plugin(Down(), "down")
    with Runtime(manager=plugin_manager) as runtime:
        for _ in range(2):
            s = Screener(runtime=runtime)
            s.feed([Order(id=str(i), text="zzunknownzz") for i in range(3)], "msg")
            report = s.finish()
            assert report.counts.screened == 3
        assert asked == [1, 1]  # once per run, not once per order, and again next run
        s = Screener(runtime=runtime)
        s.feed([Order(id="1", text="metformin 500 mg")], "msg")
        s.finish()
        assert len(runtime.outcomes) == 1  # a resolved drug stays cached


def _mixed_export(rows: int) -> bytes:
    """Every kind of row a run meets: findings, plain, unresolved, inactive, bad values,
    a bad field count and quoted fields."""
    kinds = (
        "P{i},R{i},metformin 500 mg tab,active,2020-01-01,1950-01-01,Anemia",
        "P{i},R{i},atorvastatin 20 mg,active,2020-01-01,1950-01-01,",
        "P{i},R{i},zzqx unknown {i},active,2020-01-01,,",
        "P{i},R{i},omeprazole 20 mg,stopped,2020-01-01,,",
        "P{i},R{i},lisinopril,active,not-a-date,,",
        "P{i},R{i},too,many,fields,here,x,y",
        'P{i},R{i},"folic acid, 1 mg",active,2020-01-01,1960-05-05,"Pernicious anemia"',
    )
    lines = [kinds[i % len(kinds)].format(i=i % 97) for i in range(rows)]
    return ("patient_id,rx_id,drug_name,status,start_date,birth_date,conditions\n"
            + "\n".join(lines) + "\n").encode()


def test_screening_creates_no_reference_cycles_per_record(tmp_path: Path) -> None:
    """What the CLI relies on to run with the cyclic collector off: a run leaves the
    same cyclic garbage (its knowledge base and resolvers) whatever the input's size,
    so memory cannot grow with records read."""
    import gc

    left = []
    for rows in (700, 2800):
        path = tmp_path / f"export-{rows}.csv"
        path.write_bytes(_mixed_export(rows))
        gc.collect()
        gc.disable()
        try:
            report = screen_inputs([path])
            assert report.counts.read == rows and report.alerts and report.counts.rejected
            del report
            left.append(gc.collect())
        finally:
            gc.enable()
    assert left[0] == left[1]
