"""Bounded memory for the columnar engine: rows by patient on disk, alerts in sorted runs.

A year of dispensing does not fit in memory, but one patient's rows always do.  The
columnar engine keeps two kinds of rows for the assessment at the end: the rows with
class hits (*findings*) and the distinct patient columns of every patient (*patients*).
:class:`PartitionStore` holds them in memory while they fit ``budget`` bytes; past it,
every held row is written to one of ``partitions`` Parquet files by a hash of its
patient, and memory is freed.  The patient columns are made distinct only when a
partition is read back, for its patients with findings: making them distinct in
memory (while held, or as they are written) was what set a large run's peak (at
10,000,000 rows, 794 MiB against 667 MiB without).  At the end the partitions are
read back one at a time (:func:`read_partition`), so a patient's rows always come
together and peak memory is about one partition, whatever the input's size.

:class:`AlertSpool` does the same for alerts: they are kept, as their JSON, in runs
sorted by the position of the patient's first finding, in memory while they fit its
budget and in files past it.  Reading merges the runs, so
the report lists alerts in input order (as the record engine does) without holding
them all.

Everything goes under one temporary folder (``--temp-dir``, ``[engine] temp_dir``,
else the system's), removed when the run ends, fails or is interrupted.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl
from pydantic import TypeAdapter

from ..models import Alert

_ALERT = TypeAdapter(Alert)

#: Bytes of held rows before the store compacts or writes them to disk.
DEFAULT_BUDGET = 32 << 20
#: Files the held rows are spread over (by a hash of the patient).
DEFAULT_PARTITIONS = 32
#: Bytes of alerts' JSON held in memory before they go to disk.
DEFAULT_ALERT_BUDGET = 64 << 20


class TempArea:
    """A temporary folder for one run, made on first use and removed by :meth:`close`."""

    def __init__(self, parent: str | os.PathLike[str] | None = None):
        self.parent = None if parent is None else Path(parent)
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def path(self) -> Path:
        if self._dir is None:
            if self.parent is not None:
                self.parent.mkdir(parents=True, exist_ok=True)
            self._dir = tempfile.TemporaryDirectory(prefix="b12drugs-", dir=self.parent)
        return Path(self._dir.name)

    @property
    def used(self) -> bool:
        return self._dir is not None

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


class PartitionStore:
    """Findings and patient columns held for the assessment, spilled by patient."""

    def __init__(self, temp: TempArea, budget: int = DEFAULT_BUDGET,
                 partitions: int = DEFAULT_PARTITIONS):
        self.temp = temp
        self.budget = budget
        self.k = partitions
        self._findings: list[pl.DataFrame] = []
        self._patients: list[pl.DataFrame] = []
        self._held = 0
        self._parts = 0  # files written per partition
        #: times rows were written to disk (for the tests and the benchmark)
        self.spills = 0

    def add(self, findings: pl.DataFrame, patients: pl.DataFrame) -> None:
        if findings.height:
            self._findings.append(findings)
            self._held += int(findings.estimated_size())
        if patients.height:
            self._patients.append(patients)
            self._held += int(patients.estimated_size())
        if self._held > self.budget:
            self._spill()

    def _spill(self) -> None:
        root = self.temp.path
        for kind, frames, key in (("findings", self._findings, "_case"),
                                  ("patients", self._patients, "patient_id")):
            if not frames:
                continue
            frame = pl.concat(frames).with_columns(
                (pl.col(key).hash(seed=0) % self.k).alias("_part"))
            for (part,), piece in frame.partition_by("_part", as_dict=True).items():
                folder = root / self.folder_name(part)
                folder.mkdir(exist_ok=True)
                piece.drop("_part").write_parquet(folder / f"{kind}-{self._parts:06d}.parquet",
                                                  compression="lz4")
        self._parts += 1
        self.spills += 1
        self._findings, self._patients, self._held = [], [], 0

    def held(self) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """A run that did not spill: its findings and patient columns, one partition
        (and the store lets go of them); None without findings."""
        assert not self.spills, "the run spilled: read its partitions"
        found = None
        if self._findings:
            found = (pl.concat(self._findings), pl.concat(self._patients)
                     if self._patients else pl.DataFrame(schema=PATIENT_SCHEMA))
        self._findings, self._patients, self._held = [], [], 0
        return found

    def spilled_partitions(self) -> list[Path]:
        """The folders of the partitions with findings, once what is still held in
        memory has been written to them too (a run that spilled)."""
        self._spill()
        return [folder for folder in sorted(self.temp.path.glob("p*"))
                if any(folder.glob("findings-*.parquet"))]

    def partition_of(self, ids: list[str]) -> list[int]:
        """The partition of each patient id (as :meth:`_spill` assigns them)."""
        return (pl.Series(ids, dtype=pl.String).hash(seed=0) % self.k).to_list()

    @staticmethod
    def folder_name(part: int) -> str:
        return f"p{part:04d}"


def read_partition(folder: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A spilled partition's findings and held patient columns."""
    findings = pl.read_parquet(sorted(folder.glob("findings-*.parquet")))
    held = sorted(folder.glob("patients-*.parquet"))
    patients = pl.read_parquet(held) if held else pl.DataFrame(schema=PATIENT_SCHEMA)
    return findings, patients


#: The layout of held patient columns.
PATIENT_SCHEMA = {"patient_id": pl.String, "birth_date": pl.Date, "sex": pl.String,
                  "diet": pl.String, "conditions": pl.String, "_seq": pl.Int64,
                  "_line": pl.Int64, "_src": pl.Int32}


def distinct_patients(frame: pl.DataFrame) -> pl.DataFrame:
    """Each distinct set of a patient's columns once, where it first appears."""
    return frame.sort("_seq").unique(
        subset=["patient_id", "birth_date", "sex", "diet", "conditions"],
        keep="first", maintain_order=True)


class AlertSpool:
    """Alerts in runs sorted by the position of their patient, each kept as its compact
    JSON: in memory while they fit ``budget`` bytes, as lines of a file past it.

    Why JSON: it is what the report writers write (``json`` and ``jsonl`` copy it as it
    is, :class:`~b12drugs.records.AlertJson`), so an alert is serialised once, whether it
    stayed in memory or went to disk; only readers that want models parse it back.
    """

    def __init__(self, temp: TempArea, budget: int = DEFAULT_ALERT_BUDGET):
        self.temp = temp
        self.budget = budget
        # (position of the patient's first finding, order of adding, alert's JSON)
        self._run: list[tuple[int, int, bytes]] = []
        self._runs: list[list[tuple[int, int, bytes]]] = []
        self._files: list[Path] = []
        self._held = 0  # bytes of JSON in memory
        self.count = 0

    def add(self, seq: int, alert: Alert) -> None:
        self.add_json(seq, _ALERT.dump_json(alert))

    def add_json(self, seq: int, data: bytes) -> None:
        """An alert as the compact JSON another spool wrote (Spark's executors)."""
        self._run.append((seq, self.count, data))
        self.count += 1
        self._held += len(data)
        if self._held > self.budget:
            self._spill()

    def end_run(self) -> None:
        """The alerts added since the last run end are one sorted run (a partition)."""
        if self._run:
            self._runs.append(self._run)
            self._run = []

    def add_run(self, path: Path) -> None:
        """A sorted run another process wrote (:func:`write_run`: a worker's partition)."""
        self._files.append(path)

    def _spill(self) -> None:
        """Every run held in memory to a file of its own (the open one ends here: a
        partition's alerts are in order, so its two parts are sorted runs too)."""
        self.end_run()
        for run in self._runs:
            path = self.temp.path / f"alerts-{len(self._files):06d}.jsonl"
            write_run(path, run)
            self._files.append(path)
        self._runs, self._held = [], 0

    def __iter__(self) -> Iterator[Alert]:
        """Every alert as a model, in order."""
        for _, _, data in self.entries():
            yield _ALERT.validate_json(data)

    def json(self) -> Iterator[bytes]:
        """Every alert's compact JSON, in order."""
        for _, _, data in self.entries():
            yield data

    def entries(self) -> Iterator[tuple[int, int, bytes]]:
        """Every alert as ``(position of its patient's first finding, order of adding,
        JSON)``, in order (:mod:`b12drugs.spark` merges partitions' alerts by it)."""
        self.end_run()
        runs: list[Iterable[tuple[int, int, bytes]]] = list(self._runs)
        runs += [_read_run(p) for p in self._files]
        yield from heapq.merge(*runs, key=_position)


def _position(item: tuple[int, int, bytes]) -> tuple[int, int]:
    return item[0], item[1]


def write_run(path: Path, run: Iterable[tuple[int, int, bytes]]) -> None:
    """A sorted run of alerts to a file: ``position, n, JSON`` a line."""
    with path.open("wb") as fh:
        fh.writelines(b"%d\t%d\t%s\n" % item for item in run)


def _read_run(path: Path) -> Iterator[tuple[int, int, bytes]]:
    with path.open("rb") as fh:
        for line in fh:
            seq, n, data = line.rstrip(b"\n").split(b"\t", 2)
            yield int(seq), int(n), data
