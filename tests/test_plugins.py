"""Plugin manager: entry points loaded in isolation, with fake distributions.

Each test writes a real ``.dist-info`` (METADATA + entry_points.txt) and a module into
a temporary folder on ``sys.path``, so ``importlib.metadata`` discovers it exactly as
it would an installed plugin.
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from b12drugs.errors import PluginError
from b12drugs.plugins import PluginManager, PluginProblem, ProblemLog

GOOD = """
from b12drugs import hookimpl
from b12drugs.records import InputFormat

def _parse(stream, source):
    return iter(())

@hookimpl
def b12drugs_input_formats():
    return [InputFormat("{fmt}", "fake format", _parse, lambda head, name: 0.0)]
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("B12DRUGS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("B12DRUGS_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("B12DRUGS_STRICT_PLUGINS", raising=False)
    yield tmp_path
    for name in list(sys.modules):
        if name.startswith("fakeplug_"):
            del sys.modules[name]


def make_dist(site: Path, dist: str, ep_name: str, module: str, source: str) -> None:
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[b12drugs]\n{ep_name} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))


def test_good_plugin_is_loaded_and_listed(site: Path) -> None:
    make_dist(site, "b12drugs-fake", "fake", "fakeplug_good", GOOD.format(fmt="fake"))
    pm = PluginManager()
    info = pm.infos["fake"]
    assert (info.status, info.distribution, info.version) == ("active", "b12drugs-fake", "1.2.3")
    assert info.hooks == ("b12drugs_input_formats",)
    fmt = pm.hooks.format_for("fake")
    assert fmt is not None and fmt.provider == "fake"


def test_broken_plugin_is_reported_and_the_rest_works(site: Path) -> None:
    make_dist(site, "b12drugs-broken", "broken", "fakeplug_broken", "raise ImportError('no x')\n")
    pm = PluginManager()
    info = pm.infos["broken"]
    assert info.status == "failed" and "no x" in (info.error or "")
    assert any(p.plugin == "broken" and p.distribution == "b12drugs-broken"
               for p in pm.hooks.problems)
    assert pm.hooks.format_for("csv") is not None  # builtins unaffected


def test_strict_mode_turns_problems_into_errors(site: Path) -> None:
    make_dist(site, "b12drugs-broken", "broken", "fakeplug_broken2", "raise ImportError('x')\n")
    with pytest.raises(PluginError, match="broken"):
        PluginManager(strict=True)


def test_unknown_hook_fails_the_plugin(site: Path) -> None:
    make_dist(site, "b12drugs-typo", "typo", "fakeplug_typo", """
        from b12drugs import hookimpl

        @hookimpl
        def b12drugs_input_fromats():
            return []
    """)
    pm = PluginManager()
    assert pm.infos["typo"].status == "failed"
    assert "b12drugs_input_fromats" in (pm.infos["typo"].error or "")


def test_allowlist_and_blocklist(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dist(site, "b12drugs-fake", "fake", "fakeplug_a", GOOD.format(fmt="fake"))
    monkeypatch.setenv("B12DRUGS_LOAD_PLUGINS", "")
    pm = PluginManager()
    assert pm.infos["fake"].status == "blocked"
    assert pm.hooks.format_for("fake") is None
    monkeypatch.delenv("B12DRUGS_LOAD_PLUGINS")
    monkeypatch.setenv("B12DRUGS_DISABLE_PLUGINS", "fake,csv")
    pm = PluginManager()
    assert pm.infos["fake"].status == "blocked"
    assert pm.infos["csv"].status == "blocked" and pm.infos["csv"].builtin
    assert pm.hooks.format_for("csv") is None


def test_conflicting_format_names_name_both_providers(site: Path) -> None:
    make_dist(site, "b12drugs-one", "one", "fakeplug_one", GOOD.format(fmt="dup"))
    make_dist(site, "b12drugs-two", "two", "fakeplug_two", GOOD.format(fmt="dup"))
    pm = PluginManager()
    formats = [f for f in pm.hooks.input_formats() if f.name == "dup"]
    assert len(formats) == 1
    msg = " ".join(str(p) for p in pm.hooks.problems)
    assert "b12drugs-one" in msg and "b12drugs-two" in msg


def test_conflicting_plugin_names(site: Path) -> None:
    make_dist(site, "b12drugs-csv-clone", "csv", "fakeplug_clone", GOOD.format(fmt="clone"))
    pm = PluginManager()
    assert pm.infos["csv"].distribution == "b12drugs"  # the builtin keeps its name
    assert any("b12drugs-csv-clone" in str(p) for p in pm.hooks.problems)


def test_hook_that_raises_is_isolated(site: Path) -> None:
    make_dist(site, "b12drugs-raiser", "raiser", "fakeplug_raiser", """
        from b12drugs import hookimpl

        @hookimpl
        def b12drugs_input_formats():
            raise RuntimeError("boom")
    """)
    pm = PluginManager()
    names = {f.name for f in pm.hooks.input_formats()}
    assert "csv" in names
    assert any(p.plugin == "raiser" and "boom" in p.error for p in pm.hooks.problems)


def test_wrong_record_type_is_a_problem(site: Path) -> None:
    make_dist(site, "b12drugs-wrong", "wrong", "fakeplug_wrong", """
        from b12drugs import hookimpl

        @hookimpl
        def b12drugs_output_formats():
            return [{"name": "dict-not-record"}]
    """)
    pm = PluginManager()
    assert all(f.name != "dict-not-record" for f in pm.hooks.output_formats())
    assert any("expected OutputFormat" in p.error for p in pm.hooks.problems)


def test_plugins_command_lists_status_json(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from b12drugs import cli, plugins

    make_dist(site, "b12drugs-broken", "broken", "fakeplug_b3", "raise ImportError('x')\n")
    monkeypatch.setattr(plugins, "_default", None)
    result = CliRunner().invoke(cli.cli, ["plugins", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["broken"]["status"] == "failed"
    assert rows["csv"]["status"] == "active" and rows["csv"]["builtin"]
    monkeypatch.setattr(plugins, "_default", None)


def test_problem_logs_carry_no_exception_message(caplog: pytest.LogCaptureFixture) -> None:
    """An exception message may quote a record: logs get its type and where only."""
    import logging

    from b12drugs.plugins import PluginManager

    manager = PluginManager(strict=False, entry_points=False)
    with caplog.at_level(logging.WARNING, logger="b12drugs.plugins"):
        manager.hooks.problem("p", "rule r", ValueError("patient Jane Doe 1940-01-01"))
    assert "ValueError" in caplog.text and "rule r" in caplog.text
    assert "Jane Doe" not in caplog.text
    assert "Jane Doe" in manager.hooks.problems[0].error  # the caller still has it


def test_risk_factors_returned_as_a_string_are_a_problem() -> None:
    """A str return used to be split into one-letter risk factors."""
    from datetime import date

    from b12drugs import hookimpl
    from b12drugs.config import Config
    from b12drugs.models import PatientContext
    from b12drugs.plugins import PluginManager

    class Stringy:
        @hookimpl
        def b12drugs_risk_factors(self):  # type: ignore[no-untyped-def]
            return "neuropathy"

    manager = PluginManager(strict=False, entry_points=False)
    manager.register(Stringy(), "stringy")
    found = manager.hooks.risk_factors(PatientContext(id="p"), date(2026, 1, 1), Config())
    assert not any(len(f) == 1 for f in found)
    [prob] = [p for p in manager.hooks.problems if p.plugin == "stringy"]
    assert prob.exc_type == "TypeError"


def test_problem_log_is_bounded_and_counts_everything() -> None:
    """A service's manager lives for months: problems are kept up to the limit, counted
    beyond it, and a run's mark still finds its own problems."""
    log = ProblemLog()
    for i in range(ProblemLog.LIMIT + 250):
        log.append(PluginProblem("p", "d", "hook", f"error {i}"))
    assert len(log) == ProblemLog.LIMIT and log.total == ProblemLog.LIMIT + 250
    assert log[0].error == "error 250" and [p.error for p in log][-1] == f"error {log.total - 1}"
    mark = log.mark()
    log.append(PluginProblem("q", "d", "rule x", "late"))
    assert [p.plugin for p in log.since(mark)] == ["q"]


def test_problem_log_since_gives_only_this_threads_problems() -> None:
    log = ProblemLog()
    mark = log.mark()
    other = threading.Thread(target=log.append,
                             args=(PluginProblem("other", "d", "rule", "theirs"),))
    other.start()
    other.join()
    log.append(PluginProblem("mine", "d", "rule", "ours"))
    assert [p.plugin for p in log.since(mark)] == ["mine"]
    assert {p.plugin for p in log} == {"other", "mine"}
