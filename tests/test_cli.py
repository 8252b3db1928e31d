"""The ``b12drugs`` command: outputs, exit codes, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from b12drugs import NLM_ATTRIBUTION
from b12drugs.cli import EXIT_ALERTS, EXIT_INPUT, EXIT_OK, EXIT_USAGE, cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dispensing.csv"


def run(*args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_screen_example_json_report() -> None:
    result = run("screen", str(EXAMPLE), "--format", "json", "--as-of", "2026-11-21")
    assert result.exit_code == EXIT_OK, result.output
    report = json.loads(result.stdout)
    c = report["counts"]
    assert c["read"] == c["screened"] + c["skipped"] + c["rejected"] == 15
    by = {(a["patient_id"], a["class_id"]): a for a in report["alerts"]}
    assert by[("P001", "metformin")]["severity"] == "warning"  # age + neuropathy
    assert by[("P003", "folate_masking")]["severity"] == "critical"
    assert by[("P004", "metformin")]["severity"] == "info"  # on B12 therapy
    assert ("P007", "metformin") not in by  # metoprolol is not metformin
    kinds = {(n["kind"], n.get("order_id")) for n in report["notices"]}
    assert ("unresolved", "RX5002") in kinds
    assert ("skipped", "RX2002") in kinds
    assert any(n["kind"] == "rejected" and n["location"].endswith("dispensing.csv:16")
               for n in report["notices"])


def test_table_output_is_readable() -> None:
    result = run("screen", str(EXAMPLE))
    assert result.exit_code == EXIT_OK
    assert "B12 alerts" in result.stdout and "Notices" in result.stdout
    assert "read 15" in result.stdout


def test_jsonl_output_and_output_file(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    result = run("screen", str(EXAMPLE), "-f", "jsonl", "-o", str(out))
    assert result.exit_code == EXIT_OK
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[-1]["type"] == "counts" and any(r["type"] == "alert" for r in rows)


def test_fail_on_sets_exit_code() -> None:
    assert run("screen", str(EXAMPLE), "--fail-on", "critical").exit_code == EXIT_ALERTS
    csv = b"rx_id,drug_name\n1,omeprazole\n"
    assert run("screen", "-", "--fail-on", "warning", input=csv).exit_code == EXIT_OK
    assert run("screen", "-", "--fail-on", "info", input=csv).exit_code == EXIT_ALERTS


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("screen").exit_code == EXIT_USAGE
    assert run("screen", str(EXAMPLE), "--format", "nope").exit_code == EXIT_USAGE
    bad = tmp_path / "c.toml"
    bad.write_text("[policy]\nnope = 1\n")
    result = run("screen", str(EXAMPLE), "--config", str(bad))
    assert result.exit_code == EXIT_USAGE and "policy.nope" in result.stderr


def test_input_errors_exit_3_without_traceback(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)))
    result = run("screen", str(junk))
    assert result.exit_code == EXIT_INPUT
    assert "Traceback" not in result.output
    result = run("screen", str(EXAMPLE), "--input-format", "nope")
    assert result.exit_code == EXIT_INPUT and "unknown input format" in result.stderr


def test_several_inputs_and_folders_make_one_report(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("patient_id,rx_id,drug_name\nA,1,metformin\n")
    sub = tmp_path / "more"
    sub.mkdir()
    (sub / "b.csv").write_text("patient_id,rx_id,drug_name\nB,2,omeprazole\n")
    (sub / "notes.bin").write_bytes(b"\x00\x01\x02")
    result = run("screen", str(tmp_path), "-f", "json")
    report = json.loads(result.stdout)
    assert {a["sources"][0] for a in report["alerts"]} == {str(tmp_path / "a.csv"),
                                                          str(sub / "b.csv")}
    assert any(n["kind"] == "rejected" and "not recognised" in n["message"]
               for n in report["notices"])


def test_version_carries_nlm_attribution() -> None:
    result = run("--version")
    assert NLM_ATTRIBUTION in result.stdout


def test_lookup_shows_the_chain() -> None:
    result = run("lookup", "Glucophage 500 mg", "--format", "json")
    data = json.loads(result.stdout)
    assert data["steps"][0]["resolver"] == "knowledge-base"
    assert [h["class_id"] for h in data["classes"]] == ["metformin"]
    text = run("lookup", "metoprolol 50 mg").stdout
    assert "no B12-lowering class" in text
    text = run("lookup", "zorvanex").stdout
    assert "unresolved" in text


def test_classes_lists_member_counts() -> None:
    data = json.loads(run("classes", "--format", "json").stdout)
    rows = {r["class_id"]: r for r in data["classes"]}
    assert rows["cytostatics"]["members"] > 100
    assert rows["nitrous_oxide"]["default_severity"] == "warning"
    assert rows["folate"]["role"] == "context"


def test_formats_lists_providers() -> None:
    data = json.loads(run("formats", "--format", "json").stdout)
    assert {"direction": "input", "name": "csv", "provider": "csv"}.items() <= next(
        r for r in data if r["name"] == "csv").items()


def test_runs_as_a_real_process() -> None:
    proc = subprocess.run([sys.executable, "-m", "b12drugs", "screen", str(EXAMPLE), "-f", "json"],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["counts"]["read"] == 15
    assert b"Traceback" not in proc.stderr


def test_table_prints_markup_in_input_as_text() -> None:
    """Cells used to be rich markup: "[/red]" in a drug name raised MarkupError."""
    csv = (b"patient_id,rx_id,drug_name\n"
           b'p1,r1,"zorvanex [/red] 5 mg"\n'
           b'"[bold red]FAKE[/]",r2,metformin 500 mg\n')
    result = run("screen", "-", input=csv)
    assert result.exit_code == EXIT_OK, result.output
    assert "'zorvanex [/red] 5 mg'" in result.stdout
    assert "[bold red]FAKE[/]" in result.stdout


def test_unwritable_output_is_a_usage_error_before_screening(tmp_path: Path) -> None:
    result = run("screen", str(EXAMPLE), "-o", str(tmp_path / "no" / "dir" / "x.json"))
    assert result.exit_code == EXIT_USAGE
    assert "does not exist" in result.stderr and "Traceback" not in result.output


def test_every_record_rejected_exits_3_after_printing_the_report(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("rx_id,drug_name,start_date\n1,metformin,2024-13-01\n2,omeprazole,nope\n")
    result = run("screen", str(bad), "-f", "json")
    assert result.exit_code == EXIT_INPUT
    assert json.loads(result.stdout)["counts"]["rejected"] == 2
    assert "nothing could be screened" in result.stderr


def test_sinks_misconfigured_exit_2_and_failing_exit_4(tmp_path: Path) -> None:
    from b12drugs.cli import EXIT_PLUGIN

    conf = tmp_path / "c.toml"
    conf.write_text('[[sinks]]\nname = "jsonl-file"\n')  # no path
    result = run("screen", str(EXAMPLE), "--config", str(conf))
    assert result.exit_code == EXIT_USAGE and "path" in result.stderr
    conf.write_text(f'[[sinks]]\nname = "jsonl-file"\npath = "{tmp_path}"\n')  # a folder
    result = run("screen", str(EXAMPLE), "-f", "json", "--config", str(conf))
    assert result.exit_code == EXIT_PLUGIN
    assert json.loads(result.stdout)["counts"]["read"] == 15
    assert result.stderr.count("sink jsonl-file") == 1  # printed once, not also logged


def test_screen_leaves_the_garbage_collector_as_it_found_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The batch command runs with the collector off and switches it back on; the
    library itself never touches it (issue 13)."""
    import gc

    import b12drugs.engines
    from b12drugs.engines import inputs

    seen: list[bool] = []
    real = inputs.run_inputs

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(inputs, "run_inputs", spy)
    monkeypatch.setattr(b12drugs.engines, "run_inputs", spy)
    before = (gc.isenabled(), gc.get_threshold())
    assert run("screen", str(EXAMPLE), "-f", "json").exit_code == EXIT_OK
    assert seen == [False] and (gc.isenabled(), gc.get_threshold()) == before
    gc.disable()
    try:
        assert run("screen", str(EXAMPLE), "-f", "json").exit_code == EXIT_OK
        assert not gc.isenabled()
    finally:
        gc.enable()
    # the library on its own leaves it on
    from b12drugs.engines import screen_inputs

    seen.clear()
    screen_inputs([EXAMPLE])
    assert seen == [True]
