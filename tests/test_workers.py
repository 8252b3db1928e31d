"""Worker processes that assess the partitions of a spilled columnar run.

They must give the report one process gives (alerts, notices up to their per-kind limit
in input order, counts), stay out of runs whose plugins a fresh interpreter would not
have, and leave no process or temporary file behind when the run fails or is stopped.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from b12drugs import hookimpl
from b12drugs.config import Config, PolicyConfig
from b12drugs.engines import Runtime, Screener
from b12drugs.engines.columnar import ColumnarScreener
from b12drugs.models import Alert
from b12drugs.plugins import PluginManager
from b12drugs.read import delimited
from b12drugs.records import Rule
from b12drugs.testing import comparable

CONFIG = Config(policy=PolicyConfig(as_of=date(2026, 1, 1)))
#: B12 classes, local routes and doses below a class's limit (rule notices), others.
DRUGS = ["metformin 500 mg tablet", "omeprazole 20 mg capsule", "neomycin 0.5% cream",
         "vitamin C 500 mg", "famotidine 40 mg", "lisinopril 10 mg", "folic acid 5 mg",
         "Zorvanex 25 mg tablet", "tobramycin eye drops", "atorvastatin 40 mg"]


def _export(path: Path, rows: int, patients: int) -> Path:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["patient_id", "rx_id", "drug_name", "status", "start_date",
                      "days_supply", "birth_date", "sex", "conditions"])
        for i in range(rows):
            p = (i * 7919) % patients
            out.writerow([f"P{p:05d}", f"R{i:07d}", DRUGS[(i * 3 + p) % len(DRUGS)],
                          "stopped" if i % 23 == 0 else "active", "2020-01-01",
                          "30" if i % 3 else "400", f"19{40 + p % 50}-02-03",
                          "F" if p % 2 else "M", "Anemia" if p % 11 == 0 else ""])
    return path


def _columnar(path: Path, runtime: Runtime, workers: int, temp: Path) -> ColumnarScreener:
    s = ColumnarScreener(runtime=runtime, notice_limit=3, budget=1 << 14, partitions=6,
                         workers=workers, temp_dir=str(temp))
    with path.open("rb") as fh:
        s.feed_table(delimited.read_batches(fh, str(path)), str(path))
    return s


def test_workers_give_the_report_of_one_process_and_of_the_record_engine(
        tmp_path: Path) -> None:
    path = _export(tmp_path / "d.csv", 6_000, patients=900)
    runtime = Runtime(CONFIG, PluginManager())
    reports = {}
    for workers in (1, 3):
        s = _columnar(path, runtime, workers, tmp_path / f"t{workers}")
        assert s.store.spills  # the run spilled: workers are used
        result = s.finish()
        try:
            reports[workers] = comparable(result.to_report())
            assert workers == 1 or (s.workers is not None and s.workers.assessed > 0)
        finally:
            result.close()
    record = Screener(runtime=runtime, notice_limit=3)
    with path.open("rb") as fh:
        record.feed(delimited.parse(fh, str(path)), str(path))
    expected = comparable(record.finish())
    assert reports[3] == reports[1] == expected
    notices = expected["notices"]
    assert len(expected["alerts"]) > 200
    # rule notices past the limit of 3: the first three in input order, the rest counted
    info = [n["message"] for n in notices if n["kind"] == "info"]
    assert len(info) == 4 and "more info notices not listed" in info[-1]


class InCode:
    """A rule registered in code: a fresh worker interpreter would not have it."""

    @hookimpl
    def b12drugs_rules(self) -> list[Rule]:
        def evaluate(case, kb, config):  # type: ignore[no-untyped-def]
            if case.patient_id == "P00001":
                yield Alert(patient_id=case.patient_id, class_id="metformin",
                            severity="info", summary="in-code rule", detail="-", orders=(),
                            drugs=(), recommendation="-", evidence="low", rule="in-code")
        return [Rule("in-code", "an in-code rule", evaluate)]


def test_plugins_registered_in_code_keep_the_run_in_one_process(tmp_path: Path) -> None:
    manager = PluginManager()
    manager.register(InCode(), "in-code", dist="test", version="0")
    path = _export(tmp_path / "d.csv", 3_000, patients=400)
    s = _columnar(path, Runtime(CONFIG, manager), 3, tmp_path / "t")
    assert s.store.spills and s.workers is None
    result = s.finish()
    try:
        assert any(a.rule == "in-code" for a in result.alerts())
    finally:
        result.close()


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found |= {int(c) for c in fh.read().split()}
    except OSError:
        pass
    return found


def _gone(pids: set[int], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{p}") and "zombie" not in _state(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((line for line in fh if line.startswith("State:")), "").lower()
    except OSError:
        return "gone"


def test_a_failing_partition_stops_the_workers_and_removes_the_temporary_files(
        tmp_path: Path) -> None:
    path = _export(tmp_path / "d.csv", 3_000, patients=400)
    temp = tmp_path / "t"
    s = _columnar(path, Runtime(CONFIG, PluginManager()), 2, temp)
    assert s.workers is not None
    broken = sorted(temp.glob("*/p*/findings-*.parquet"))[-1]  # a worker's, from the back
    broken.write_bytes(b"not parquet")
    before = _children(os.getpid())
    with pytest.raises(Exception, match=r"(?i)parquet|magic|file"):
        s.finish()
    assert _gone(_children(os.getpid()) - before)
    assert s.workers._pool is None
    assert temp.is_dir() and not list(temp.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_the_workers(tmp_path: Path, sig: int) -> None:
    """Stopped while its workers run: they end too, no file is left, no traceback shown."""
    path = _export(tmp_path / "big.csv", 200_000, patients=40_000)
    temp = tmp_path / "t"
    conf = tmp_path / "b12drugs.toml"
    conf.write_text("[engine]\nmemory_mb = 8\npartitions = 64\nworkers = 2\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "b12drugs", "screen", str(path), "-f", "json", "-o",
         str(tmp_path / "out.json"), "--temp-dir", str(temp), "--config", str(conf)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    seen: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        seen |= _children(proc.pid)
        if any(temp.glob("*/alerts-p*.jsonl")):  # a worker has finished a partition
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before its workers had done a partition"
    seen |= _children(proc.pid)
    assert seen, "no worker process was started"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert b"Traceback" not in err, err.decode()[-2000:]
    assert _gone(seen)
    assert temp.is_dir() and not list(temp.iterdir())


def test_a_patients_partition_is_where_its_rows_were_written(tmp_path: Path) -> None:
    """Context records (JSON Lines patients) go to a worker with the partition of their
    patient: :meth:`PartitionStore.partition_of` must agree with the spill."""
    import polars as pl

    from b12drugs.engines.spill import PATIENT_SCHEMA, PartitionStore, TempArea

    ids = [f"P{i:05d}" for i in range(500)] + ["", "é-ü", "x" * 300]
    store = PartitionStore(TempArea(tmp_path), budget=1, partitions=7)
    patients = pl.DataFrame({"patient_id": ids, "_seq": list(range(len(ids)))},
                            schema_overrides={"_seq": pl.Int64}).with_columns(
        pl.lit(None, dtype).alias(name) for name, dtype in PATIENT_SCHEMA.items()
        if name not in ("patient_id", "_seq")).select(list(PATIENT_SCHEMA))
    findings = pl.DataFrame({"_case": ids})
    store.add(findings, patients)
    assert store.spills
    where = {}
    for folder in sorted(store.temp.path.glob("p*")):
        for pid in pl.read_parquet(list(folder.glob("patients-*.parquet")))["patient_id"]:
            where[pid] = folder.name
    assert where == {pid: store.folder_name(part)
                     for pid, part in zip(ids, store.partition_of(ids), strict=True)}
    store.temp.close()


def test_the_command_uses_a_process_per_core_at_most_four(monkeypatch: pytest.MonkeyPatch) -> None:
    from b12drugs.cli import command_workers
    from b12drugs.config import EngineConfig
    from b12drugs.engines import cores as cores_module

    for cores, expected in ((1, 1), (2, 2), (16, 4)):
        monkeypatch.setattr(cores_module.os, "sched_getaffinity",
                            lambda _pid, n=cores: set(range(n)))
        assert command_workers(Config()) == expected
    assert command_workers(Config(engine=EngineConfig(workers=3))) == 3


def test_a_worker_that_cannot_start_fails_its_tasks_with_the_reason(tmp_path: Path) -> None:
    """The worker's start-up, run here: a runtime that cannot be built (or other plugins
    than the run's) is kept and named by every task, instead of ending the worker (the
    pool would start it again and again)."""
    from b12drugs.engines import workers
    from b12drugs.errors import PluginError

    bad = Config(policy=PolicyConfig(disabled_classes=["no-such-class"]))
    task = workers.Task(tmp_path, tmp_path / "a.jsonl", {}, [], {})
    previous = signal.getsignal(signal.SIGINT)
    try:
        for config, plugins, why in ((bad, PluginManager().active(), "could not start"),
                                     (CONFIG, ("someone-else",), "other plugins")):
            workers._STATE.clear()
            workers._start_worker(config, False, True, plugins, 3, date(2026, 1, 1))
            with pytest.raises(PluginError, match=why):
                workers._work(task)
    finally:
        workers._STATE.clear()
        signal.signal(signal.SIGINT, previous)
