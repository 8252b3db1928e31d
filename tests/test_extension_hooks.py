"""Each extension hook, implemented by a test plugin, changes what the engine does."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import click
import pytest
from click.testing import CliRunner

from b12drugs import hookimpl, plugins
from b12drugs.config import Config, PolicyConfig, SinkConfig
from b12drugs.engines import screen
from b12drugs.knowledge import ClassDef, KBEntry
from b12drugs.models import Alert, Notice, Order, PatientContext, Report
from b12drugs.plugins import PluginManager
from b12drugs.records import AlertSink, Knowledge, PatientCase, Rule

CONFIG = Config(policy=PolicyConfig(as_of=date(2026, 1, 1)))


def test_b12drugs_knowledge_adds_local_names_and_classes(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    class Formulary:
        @hookimpl
        def b12drugs_knowledge(self) -> Iterable[Knowledge]:
            cls = ClassDef(class_id="local_trial_drug", label="Trial drug", role="alert",
                           default_severity="warning", evidence="low",
                           mechanism="site protocol", monitoring="B12 every 3 months",
                           references=("Site protocol 12",))
            return [Knowledge(
                name="site-formulary",
                classes=(cls,),
                entries=(
                    KBEntry(class_id="metformin", ingredient="zorvanex", evidence="strong",
                            reference="site formulary: Zorvanex is metformin"),
                    KBEntry(class_id="local_trial_drug", ingredient="trialzumab",
                            evidence="low", reference="Site protocol 12"),
                ),
            )]

    register_plugin(Formulary(), "formulary")
    report = screen([Order(id="1", patient_id="p", text="Zorvanex 500 mg"),
                     Order(id="2", patient_id="q", text="trialzumab 10 mg")],
                    config=CONFIG, manager=plugin_manager)
    got = {a.class_id: a for a in report.alerts}
    assert set(got) == {"metformin", "local_trial_drug"}
    assert got["local_trial_drug"].severity == "warning"
    assert "+1c2e" in report.knowledge_version


def test_b12drugs_knowledge_with_unknown_class_is_refused(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    class Bad:
        @hookimpl
        def b12drugs_knowledge(self) -> Iterable[Knowledge]:
            return [Knowledge(name="bad", entries=(KBEntry(class_id="nope", ingredient="x"),))]

    register_plugin(Bad(), "bad")
    with pytest.raises(ValueError, match="unknown class 'nope'"):
        screen([], manager=plugin_manager)


def test_b12drugs_rules_adds_alerts_and_can_be_disabled(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    def every_ppi_is_critical(case: PatientCase, kb: Any, config: Config) -> Iterable[Alert]:
        for f in case.findings:
            if any(h.class_id == "proton_pump_inhibitors" for h in f.hits):
                yield Alert(patient_id=case.patient_id, class_id="site_ppi_policy",
                            severity="critical", summary="Site policy: PPI review",
                            detail="d", orders=(f.order.id,), drugs=("ppi",),
                            recommendation="review", evidence="local", rule="site-ppi")

    class SiteRules:
        @hookimpl
        def b12drugs_rules(self) -> Iterable[Rule]:
            return [Rule("site-ppi", "PPI review", every_ppi_is_critical)]

    register_plugin(SiteRules(), "site")
    orders = [Order(id="1", patient_id="p", text="omeprazole 20 mg")]
    report = screen(orders, config=CONFIG, manager=plugin_manager)
    assert {a.rule for a in report.alerts} == {"default-policy", "site-ppi"}
    off = Config(policy=PolicyConfig(as_of=date(2026, 1, 1),
                                     disabled_rules=("site-ppi", "default-policy")))
    quiet = screen(orders, config=off, manager=plugin_manager)
    assert quiet.alerts == ()
    assert [n.message for n in quiet.notices if n.kind == "info"] == [
        "rules disabled ([policy] disabled_rules), so not applied: default-policy, site-ppi"]


def test_b12drugs_rules_may_yield_notices() -> None:
    """A rule says why it checked an order and raised nothing; anything else it yields is
    that plugin's problem (reported), and its alerts still count."""
    def local_formulary(case: PatientCase, kb: Any, config: Config) -> Iterable[Any]:
        for f in case.findings:
            yield Notice(kind="info", order_id=f.order.id, message="on the local formulary")
        yield "not a result"

    class SiteRules:
        @hookimpl
        def b12drugs_rules(self) -> Iterable[Rule]:
            return [Rule("site-formulary", "formulary remark", local_formulary)]

    manager = PluginManager(strict=False, entry_points=False)  # the bad result is reported
    manager.register(SiteRules(), "site", dist="test", version="0")
    orders = [Order(id="1", patient_id="p", text="omeprazole 20 mg")]
    report = screen(orders, config=CONFIG, manager=manager)
    [note] = [n for n in report.notices if n.kind == "info"]
    assert (note.order_id, note.patient_id, note.message) == ("1", "p", "on the local formulary")
    [err] = [n for n in report.notices if n.kind == "plugin_error"]
    assert "site" in err.message and "TypeError" in err.message
    assert {a.rule for a in report.alerts} == {"default-policy"}


def test_b12drugs_risk_factors_are_united(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    class Dialysis:
        @hookimpl
        def b12drugs_risk_factors(self, patient: PatientContext) -> Iterable[str]:
            # takes fewer arguments than the spec: pluggy allows that
            return ["on_dialysis"] if patient.sex == "dialysis-test" else []

    register_plugin(Dialysis(), "dialysis")
    pat = PatientContext(id="p", sex="dialysis-test", birth_date=date(1950, 1, 1))
    report = screen([Order(id="1", text="metformin")], pat, CONFIG, manager=plugin_manager)
    [alert] = report.alerts
    assert {"on_dialysis", "older_age"} <= set(alert.risk_factors)
    assert "on dialysis" in alert.detail


def test_b12drugs_alert_sinks_receive_reports(register_plugin, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    delivered: list[tuple[Mapping[str, Any], Report]] = []

    class Queue:
        @hookimpl
        def b12drugs_alert_sinks(self) -> Iterable[AlertSink]:
            def factory(options: Mapping[str, Any]):  # type: ignore[no-untyped-def]
                return lambda report: delivered.append((options, report))
            return [AlertSink("queue", "test queue", factory)]

    register_plugin(Queue(), "queue")
    config = Config(sinks=(SinkConfig(name="queue", topic="b12"),))
    screen([Order(id="1", patient_id="p", text="metformin")], config=config,
           manager=plugin_manager)
    [(options, report)] = delivered
    assert options == {"topic": "b12"} and report.alerts[0].class_id == "metformin"


def test_b12drugs_cli_commands_are_attached(monkeypatch: pytest.MonkeyPatch) -> None:
    from b12drugs import cli as cli_module

    @click.command("hello-vendor")
    def hello() -> None:
        click.echo("hello from the vendor")

    class Vendor:
        @hookimpl
        def b12drugs_cli_commands(self) -> Iterable[click.Command]:
            return [hello]

    pm = PluginManager(entry_points=False)
    pm.register(Vendor(), "vendor")
    monkeypatch.setattr(plugins, "_default", pm)
    group = cli_module._Group(name="b12drugs", commands=dict(cli_module.cli.commands))
    result = CliRunner().invoke(group, ["hello-vendor"])
    assert result.exit_code == 0 and "hello from the vendor" in result.stdout
    assert "hello-vendor" in CliRunner().invoke(group, ["--help"]).stdout


def test_facade_methods_cover_every_registration_hook(plugin_manager: PluginManager) -> None:
    hooks = plugin_manager.hooks
    assert {f.name for f in hooks.input_formats()} >= {"csv", "jsonl", "json"}
    assert {f.name for f in hooks.output_formats()} >= {"json", "jsonl", "table"}
    assert next(r.name for r in hooks.resolvers()) == "knowledge-base"
    assert {r.name for r in hooks.rules()} == {"default-policy", "folate-masking"}
    assert {s.name for s in hooks.alert_sinks()} == {"jsonl-file"}
    assert hooks.knowledge() == []
    assert json.dumps([i.as_dict() for i in plugin_manager.list()])
