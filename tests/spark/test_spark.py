"""b12drugs.spark against a real local Spark session (``local[2]``), not a mock.

Run by the ``spark`` tox environment only (the main environments ignore this folder):
they need Java 17+ and pyspark.  Without Java they fail, saying so.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from b12drugs.config import Config
from b12drugs.engines import run_inputs
from b12drugs.models import Report
from b12drugs.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "dispensing.csv"
CONFIG = Config()


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from b12drugs.spark import session

    s = session("local[2]")  # raises "Apache Spark needs Java 17+ ..." without Java
    s.conf.set("spark.sql.shuffle.partitions", "3")
    yield s
    s.stop()


def _columnar(path: Path, notice_limit: int | None = None) -> Report:
    options = None if notice_limit is None else {"notice_limit": notice_limit}
    result = run_inputs([path], config=CONFIG, manager=get_plugin_manager(),
                        engine="columnar", columnar_options=options)
    try:
        return result.to_report()
    finally:
        result.close()


def _alerts(screening: Any) -> list[dict[str, Any]]:
    """The alerts DataFrame's rows in its order, as the report's JSON form."""
    return [json.loads(data) for _, _, data in screening.alert_json.collect()]


def _notices(report: Report, *, where: bool = True) -> list[str]:
    drop = set() if where else {"location", "source"}
    return sorted(json.dumps(n.model_dump(mode="json", exclude=drop), sort_keys=True)
                  for n in report.notices)


def _generate(path: Path, rows: int) -> Path:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from generate_dispensing import generate
    finally:
        sys.path.pop(0)
    generate(rows, path, seed=5, distinct=400, b12_share=0.2)
    # add what a real export holds besides: bad rows, rows without a patient
    with path.open(encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    extra = [
        {"rx_id": "RXL1", "drug_name": "metformin 500 mg tablet", "start_date": "2020-01-01",
         "days_supply": "90"},
        {"patient_id": "P0000001", "rx_id": "RXB1", "drug_name": "omeprazole 20 mg",
         "start_date": "2020-13-45", "birth_date": "1950-01-01"},
        {"patient_id": "P0000002", "rx_id": "RXB2", "drug_name": "omeprazole 20 mg",
         "days_supply": "x", "birth_date": "1950-01-01"},
        {"patient_id": "P0000003", "rx_id": "RXU1", "drug_name": "Qzzyx 5 mg"},
    ]
    with path.open("a", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, header, restval="")
        for row in extra:
            w.writerow({"status": "active", **row})
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("gen") / "generated.csv", 4000)


def test_example_equals_the_columnar_engine(spark: Any) -> None:
    from b12drugs.spark import screen_files

    single = _columnar(EXAMPLE)
    screening = screen_files(spark, [EXAMPLE], config=CONFIG)
    try:
        assert single.alerts, "the example should alert"
        assert _alerts(screening) == [a.model_dump(mode="json") for a in single.alerts]
        assert screening.report.counts == single.counts
        assert _notices(screening.report) == _notices(single)
        assert screening.report.sources == single.sources
        # the DataFrames hold the same as the report
        assert [r.asDict() for r in screening.counts.collect()] == [single.counts.model_dump()]
        assert [r["class_id"] for r in screening.alerts.collect()] == \
            [a.class_id for a in single.alerts]
        assert screening.notices.count() == len(single.notices)
    finally:
        screening.unpersist()


def test_generated_table_with_patient_columns(spark: Any, generated: Path) -> None:
    from b12drugs.spark import screen_files

    single = _columnar(generated)
    screening = screen_files(spark, [generated], config=CONFIG)
    try:
        assert len(single.alerts) > 100
        assert single.counts.rejected == 2 and single.counts.skipped > 0
        assert _alerts(screening) == [a.model_dump(mode="json") for a in single.alerts]
        assert screening.report.counts == single.counts
        assert _notices(screening.report) == _notices(single)
    finally:
        screening.unpersist()


def test_notices_re_limited_per_kind_with_exact_counts(spark: Any, generated: Path) -> None:
    from b12drugs.spark import screen_files

    single = _columnar(generated, notice_limit=3)
    screening = screen_files(spark, [generated], config=CONFIG, notice_limit=3,
                             partitions=5)
    try:
        summaries = [n.message for n in single.notices if "not listed" in n.message]
        assert any(m.startswith(f"{single.counts.skipped - 3} more skipped") for m in summaries)
        # each partition listed up to 3 per kind: the merge keeps the first 3 of the run
        assert _notices(screening.report) == _notices(single)
        assert _alerts(screening) == [a.model_dump(mode="json") for a in single.alerts]
    finally:
        screening.unpersist()


def test_a_dataframe_and_a_patient_table(spark: Any, generated: Path, tmp_path: Path) -> None:
    """Patient columns from a separate table, joined by patient, give the same alerts as
    the same columns on every row."""
    from b12drugs.spark import screen_dataframe

    single = _columnar(generated)
    rows = spark.read.csv(str(generated), header=True)
    dispensing = rows.drop("birth_date", "conditions")
    patients = rows.filter(rows.patient_id.isNotNull()).select(
        "patient_id", "birth_date", "conditions").dropDuplicates(["patient_id"])
    screening = screen_dataframe(dispensing, patients, config=CONFIG, source="claims")
    try:
        assert _alerts(screening) != [], "patients with findings"
        got = [{**a, "sources": []} for a in _alerts(screening)]
        assert got == [{**a.model_dump(mode="json"), "sources": []} for a in single.alerts]
        assert screening.report.counts == single.counts
        assert _notices(screening.report, where=False) == _notices(single, where=False)
        locations = {n.location for n in screening.report.notices if n.location}
        assert locations and all(loc.startswith("claims row ") for loc in locations)
    finally:
        screening.unpersist()


def test_parquet_folder(spark: Any, generated: Path, tmp_path: Path) -> None:
    """A folder of Parquet files is one report, as for the single-machine engine."""
    import polars as pl

    from b12drugs.spark import screen_files

    frame = pl.read_csv(generated, infer_schema=False)
    folder = tmp_path / "lake"
    folder.mkdir()
    frame.slice(0, 1500).write_parquet(folder / "part-1.parquet")
    frame.slice(1500).write_parquet(folder / "part-2.parquet")
    single = _columnar(folder)
    screening = screen_files(spark, [folder], config=CONFIG)
    try:
        assert _alerts(screening) == [a.model_dump(mode="json") for a in single.alerts]
        assert screening.report.counts == single.counts
        assert _notices(screening.report) == _notices(single)
        assert screening.report.sources == single.sources
    finally:
        screening.unpersist()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "b12drugs", "screen", *args],
                          capture_output=True, text=True, timeout=600,
                          env=env if env is not None else os.environ.copy())


def _lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        item = json.loads(line)
        item.pop("generated_at", None)
        out.append(item)
    return out


def test_cli_jsonl_equals_the_columnar_engine(tmp_path: Path) -> None:
    spark_out, single_out = tmp_path / "spark.jsonl", tmp_path / "single.jsonl"
    done = _cli(str(EXAMPLE), "--engine", "spark", "--spark-master", "local[2]",
                "--format", "jsonl", "--output", str(spark_out))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert _cli(str(EXAMPLE), "--format", "jsonl", "--output", str(single_out)).returncode == 0
    got, want = _lines(spark_out), _lines(single_out)
    assert any(i["type"] == "alert" for i in got)
    assert got == want


def test_cli_without_java_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path)  # no java on it
    done = _cli(str(EXAMPLE), "--engine", "spark", "--format", "jsonl",
                "--output", str(tmp_path / "out.jsonl"), env=env)
    assert done.returncode == 3, done.stderr
    assert "Apache Spark needs Java 17+ (java not found)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.jsonl").exists() or not (tmp_path / "out.jsonl").read_text()
