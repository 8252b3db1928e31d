"""The columnar engine: engine choice, Parquet, spilling by patient, temporary files,
notices past their limit, the progress bar, and lazy imports."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from b12drugs.cli import cli
from b12drugs.config import Config, PolicyConfig
from b12drugs.engines import run_inputs, screen_inputs
from b12drugs.errors import InputError
from b12drugs.plugins import PluginManager
from b12drugs.testing import comparable

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dispensing.csv"
CONFIG = Config(policy=PolicyConfig(as_of=date(2026, 1, 1)))


def _export(path: Path, rows: int, patients: int = 300) -> Path:
    """A dispensing export with patient columns on every row (as real ones have)."""
    drugs = ["metformin 500 mg tablet", "lisinopril 10 mg", "omeprazole 20 mg", "Zqx 5 mg",
             "atorvastatin 20 mg", "amlodipine 5 mg", "famotidine 20 mg", "sertraline 50 mg"]
    frame = pl.DataFrame({
        "patient_id": [f"P{i % patients:05d}" for i in range(rows)],
        "rx_id": [f"R{i:08d}" for i in range(rows)],
        "drug_name": [drugs[(i * 7) % len(drugs)] for i in range(rows)],
        "status": ["stopped" if i % 19 == 0 else "active" for i in range(rows)],
        "start_date": ["2020-01-01"] * rows,
        "days_supply": ["30"] * rows,
        "birth_date": [f"19{40 + i % patients % 50}-02-03" for i in range(rows)],
        "sex": ["F" if i % 2 else "M" for i in range(rows)],
        "conditions": ["Anemia" if i % patients % 5 == 0 else "" for i in range(rows)],
    })
    frame.write_csv(path)
    return path


def test_auto_picks_columnar_for_tables_and_record_otherwise(tmp_path: Path) -> None:
    """A run of tables only is columnar; one holding a message is read by the record
    engine whole (patients may span inputs); forcing columnar onto a message is refused."""
    hl7 = tmp_path / "m.hl7"
    hl7.write_bytes(b"MSH|^~\\&|A|B|C|D|20240101||RDE^O11|1|P|2.5\r")
    tables = run_inputs([EXAMPLE], config=CONFIG)
    assert tables.spool is not None  # the columnar engine spools its alerts
    tables.close()
    mixed = run_inputs([EXAMPLE, hl7], config=CONFIG)
    assert mixed.spool is None and mixed.report.counts.read >= 15
    with pytest.raises(InputError, match="columnar engine reads tables"):
        run_inputs([EXAMPLE, hl7], config=CONFIG, engine="columnar")


def test_parquet_is_read_like_the_same_csv(tmp_path: Path) -> None:
    csv_path = tmp_path / "export.csv"
    csv_path.write_bytes(EXAMPLE.read_bytes())
    frame = pl.read_csv(EXAMPLE, infer_schema=False).with_columns(
        pl.col("days_supply").cast(pl.Int32, strict=False),
        pl.col("start_date").str.to_date(strict=False))
    pq_path = tmp_path / "export.parquet"
    frame.write_parquet(pq_path)
    manager = PluginManager(entry_points=False)
    from_csv = screen_inputs([csv_path], config=CONFIG, manager=manager)
    from_parquet = screen_inputs([pq_path], config=CONFIG, manager=manager)
    record = screen_inputs([pq_path], config=CONFIG, manager=manager, engine="record")
    assert comparable(from_parquet) == comparable(record)
    assert [a.model_dump(exclude={"sources"}) for a in from_parquet.alerts] == \
        [a.model_dump(exclude={"sources"}) for a in from_csv.alerts]
    # a Parquet row is located by its row number; the bad birth date is still rejected
    rejected = [n for n in from_parquet.notices if n.kind == "rejected"]
    assert rejected and rejected[0].location == f"{pq_path} row 15"  # CSV line 16


def test_held_rows_go_to_disk_by_patient_and_the_report_is_unchanged(tmp_path: Path) -> None:
    path = _export(tmp_path / "big.csv", 20_000)
    manager = PluginManager(entry_points=False)
    whole = run_inputs([path], config=CONFIG, manager=manager)
    spilled = run_inputs([path], config=CONFIG, manager=manager, temp_dir=str(tmp_path / "t"),
                         columnar_options={"budget": 1, "partitions": 7})
    try:
        assert spilled.temp is not None and spilled.temp.used
        parts = list((spilled.temp.path).glob("p*/findings-*.parquet"))
        assert len({p.parent for p in parts}) == 7  # every partition got rows
        assert comparable(whole.to_report()) == comparable(spilled.to_report())
        assert len(whole.to_report().alerts) > 100
    finally:
        whole.close()
        spilled.close()
    assert not list((tmp_path / "t").iterdir())  # removed on success


def test_temporary_files_are_removed_when_the_run_fails(tmp_path: Path) -> None:
    from b12drugs import hookimpl
    from b12drugs.errors import PluginError
    from b12drugs.records import Rule

    class Failing:
        @hookimpl
        def b12drugs_rules(self) -> list[Rule]:
            def evaluate(case, kb, config):  # type: ignore[no-untyped-def]
                raise PluginError("stop the run")
            return [Rule("failing", "raises", evaluate)]

    manager = PluginManager(entry_points=False)
    manager.register(Failing(), "failing", dist="test", version="0")
    path = _export(tmp_path / "big.csv", 5_000)
    temp = tmp_path / "t"
    with pytest.raises(PluginError):
        run_inputs([path], config=CONFIG, manager=manager, temp_dir=str(temp),
                   columnar_options={"budget": 1})
    assert temp.is_dir() and not list(temp.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_temporary_files_are_removed_on_ctrl_c_and_sigterm(tmp_path: Path, sig: int) -> None:
    path = _export(tmp_path / "big.csv", 400_000, patients=50_000)
    temp = tmp_path / "t"
    conf = tmp_path / "b12drugs.toml"
    conf.write_text("[engine]\nmemory_mb = 8\npartitions = 4\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "b12drugs", "screen", str(path), "-f", "json", "-o",
         str(tmp_path / "out.json"), "--temp-dir", str(temp), "--config", str(conf)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if temp.is_dir() and any(temp.glob("*/p*")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it wrote temporary files"
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert temp.is_dir() and not list(temp.iterdir())


def test_notices_past_the_limit_are_counted_exactly(tmp_path: Path) -> None:
    from b12drugs.engines import Runtime, Screener
    from b12drugs.engines.columnar import ColumnarScreener
    from b12drugs.read import delimited

    path = _export(tmp_path / "big.csv", 10_000)
    manager = PluginManager(entry_points=False)
    with Runtime(CONFIG, manager) as runtime:
        columnar = ColumnarScreener(runtime=runtime, notice_limit=10)
        columnar.feed_table(delimited.read_batches(path.open("rb"), str(path)), str(path))
        result = columnar.finish()
        report = result.to_report()
        result.close()
        record = Screener(runtime=runtime, notice_limit=10)
        record.feed(delimited.parse(path.open("rb"), str(path)), str(path))
        assert comparable(record.finish()) == comparable(report)
    skipped = [n for n in report.notices if n.kind == "skipped"]
    stopped = sum(1 for i in range(10_000) if i % 19 == 0)
    assert len(skipped) == 11  # ten listed, one that says how many more
    assert skipped[-1].message.startswith(f"{stopped - 10} more skipped notices")
    assert report.counts.skipped == stopped


def test_the_progress_bar_shows_rows_on_a_terminal(tmp_path: Path) -> None:
    """Bytes and rows while reading, then (a run that spilled) partitions assessed."""
    path = _export(tmp_path / "big.csv", 200_000, patients=20_000)
    assert path.stat().st_size > 5_000_000
    conf = tmp_path / "b12drugs.toml"
    conf.write_text("[engine]\nmemory_mb = 8\npartitions = 5\n")
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "b12drugs", "screen", str(path), "-f", "json",
                             "-o", str(tmp_path / "out.json"), "--config", str(conf)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=follower, env={**os.environ, "COLUMNS": "160"})
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 0
    assert b"reading" in seen and b"rows/s" in seen
    assert b"assessing" in seen and b"/5 partitions" in seen


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    path = _export(tmp_path / "big.csv", 80_000)
    done = subprocess.run([sys.executable, "-m", "b12drugs", "screen", str(path), "-f", "json",
                           "-o", str(tmp_path / "out.json")], capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stderr == b""


@pytest.mark.parametrize("args", [["formats"], ["screen", "MESSAGE", "-f", "json"]])
def test_the_command_starts_without_the_table_libraries(args: list[str]) -> None:
    """Start-up counts: polars and pyarrow load only for runs that read tables (not to
    list the formats, nor to screen an HL7 v2 message)."""
    message = ROOT / "plugins" / "b12drugs-hl7v2" / "tests" / "data" / "rde_o25_v27.hl7"
    argv = [str(message) if a == "MESSAGE" else a for a in args]
    code = ("import sys; from click.testing import CliRunner; from b12drugs.cli import cli;"
            f"r = CliRunner().invoke(cli, {argv!r}); assert r.exit_code in (0, 1), r.output;"
            "print(sorted(m for m in ('polars', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_json_report_streams_the_spooled_alerts(tmp_path: Path) -> None:
    """The JSON written from spooled alerts equals the one written from the whole report."""
    path = _export(tmp_path / "big.csv", 5_000)
    streamed = CliRunner().invoke(cli, ["screen", str(path), "-f", "json", "--as-of",
                                        "2026-01-01"])
    whole = CliRunner().invoke(cli, ["screen", str(path), "-f", "json", "--as-of", "2026-01-01",
                                     "--engine", "record"])
    a, b = json.loads(streamed.stdout), json.loads(whole.stdout)
    a.pop("generated_at"), b.pop("generated_at")
    assert a == b and len(a["alerts"]) > 100
