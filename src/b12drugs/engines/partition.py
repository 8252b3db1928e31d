"""The columnar engine's last step for one partition of held rows: its patients assessed.

A partition (:class:`~b12drugs.engines.spill.PartitionStore`) holds every finding row
and every patient column of the patients hashed to it, so it can be assessed alone: in
this process, or in a worker process (:mod:`b12drugs.engines.workers`).  Either way
:class:`PartitionAssessor` does it, and gives a :class:`PartitionResult` that the engine
merges: the alerts go to a sink in the order of each patient's first finding, and the
notices and tallies come back in the result.

Notices of the assessment are listed, like every notice, up to the run's per-kind limit
in input order.  A partition keeps its first ``limit`` of each kind (its patients are
assessed in input order, so those are its earliest) and counts the rest; the engine
sorts what the partitions kept by position and lists the first ``limit`` of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..assess.case import Assessor
from ..models import Alert, ClassHit, Notice, Order, PatientContext
from ..plugins import PluginProblem
from ..read.tabular import TableBatch, location, orders, row_context
from ..records import OrderFindings
from .spill import distinct_patients

#: Key of a row without a patient id: a patient of its own (as in the record engine).
LONE = "\x00order\x1f"
#: Finding rows turned into orders at a time.
ROWS_PER_CHUNK = 80_000


@dataclass
class PartitionResult:
    """What assessing a partition gave, besides its alerts."""

    #: notices to list, ``(position of the patient's first finding, n, notice)``
    kept: list[tuple[int, int, Notice]] = field(default_factory=list)
    #: notices past the partition's limit, by kind
    dropped: dict[str, int] = field(default_factory=dict)
    unreported: int = 0
    not_due: int = 0
    disabled_seen: dict[str, int] = field(default_factory=dict)
    severities: dict[str, int] = field(default_factory=dict)
    #: plugin problems a worker process recorded (in this process they are recorded
    #: in the run's own log as they happen)
    problems: list[PluginProblem] = field(default_factory=list)
    #: a worker's alerts: a file of one sorted run (:class:`~b12drugs.engines.spill.AlertSpool`)
    alerts: Path | None = None


class PartitionAssessor:
    """Assesses partitions with one run's assessor and what the feed learnt.

    ``hits``: the class hits of each distinct drug, by its index (``_oid``);
    ``inputs``: ``(source, kind of location)`` by index (``_src``); ``contexts``: patient
    contexts given as records, ``(position, context)`` by patient id.
    """

    def __init__(self, assessor: Assessor, hits: Mapping[int, tuple[ClassHit, ...]],
                 inputs: list[tuple[str, str]],
                 contexts: Mapping[str, list[tuple[int, PatientContext]]], limit: int):
        self.assessor = assessor
        self.hits = hits
        self.inputs = inputs
        self.contexts = contexts
        self.limit = limit

    def assess(self, findings: pl.DataFrame, patients: pl.DataFrame,
               add_alert: Callable[[int, Alert], None]) -> PartitionResult:
        """Assess the partition's patients in input order (of first finding); each alert
        goes to ``add_alert(position, alert)``."""
        c = pl.col
        findings = findings.sort("_seq")
        first = findings.group_by("_case").agg(c("_seq").min().alias("_first"))
        findings = findings.join(first, on="_case").sort("_first", "_seq")
        contexts = self._contexts_of(patients, findings)
        out = PartitionResult()
        per_kind: dict[str, int] = {}
        n = 0
        case_id: str | None = None
        case_first = 0
        group: list[OrderFindings] = []

        def assess() -> None:
            nonlocal n
            lone = case_id is not None and case_id.startswith(LONE)
            pid = None if lone else case_id
            result = self.assessor.assess(pid, None if pid is None else contexts.get(pid),
                                          group)
            for alert in result.alerts:
                add_alert(case_first, alert)
                out.severities[alert.severity] = out.severities.get(alert.severity, 0) + 1
            for notice in result.notices:
                k = per_kind.get(notice.kind, 0)
                if k < self.limit:
                    out.kept.append((case_first, n, notice))
                    per_kind[notice.kind] = k + 1
                else:
                    out.dropped[notice.kind] = out.dropped.get(notice.kind, 0) + 1
                n += 1
            out.unreported += result.unreported
            out.not_due += result.not_due
            for class_id in result.disabled_classes:
                out.disabled_seen[class_id] = out.disabled_seen.get(class_id, 0) + 1

        for start in range(0, findings.height, ROWS_PER_CHUNK):
            chunk = findings.slice(start, ROWS_PER_CHUNK)
            for (case, first_seq, src, oid), order in zip(
                    chunk.select("_case", "_first", "_src", "_oid").iter_rows(),
                    self._orders(chunk), strict=True):
                if case != case_id:
                    if group:
                        assess()
                    case_id, case_first, group = case, first_seq, []
                group.append(OrderFindings(order, self.hits[oid], self.inputs[src][0]))
        if group:
            assess()
        return out

    def _contexts_of(self, patients: pl.DataFrame, findings: pl.DataFrame,
                     ) -> dict[str, PatientContext]:
        """The context of every patient with findings: each distinct set of their rows'
        patient columns (and any context records), merged in input order."""
        wanted = findings.filter(~pl.col("_case").str.starts_with(LONE))["_case"].unique()
        rows = distinct_patients(patients.filter(pl.col("patient_id").is_in(wanted.implode())))
        parts: dict[str, list[tuple[int, PatientContext]]] = {}
        for pid, birth, sex, diet, conds, seq, line, src in rows.iter_rows():
            source, kind = self.inputs[src]
            context = row_context(pid, birth, sex, diet, conds, location(source, kind, line))
            if context is not None:
                parts.setdefault(pid, []).append((seq, context))
        if self.contexts:
            for pid in wanted.to_list():
                if pid in self.contexts:
                    parts.setdefault(pid, []).extend(self.contexts[pid])
        out: dict[str, PatientContext] = {}
        for pid, found in parts.items():
            found.sort(key=lambda item: item[0])
            merged = found[0][1]
            for _, ctx in found[1:]:
                if merged != ctx:
                    merged = merged.merged(ctx)
            out[pid] = merged
        return out

    def _orders(self, frame: pl.DataFrame) -> Iterator[Order]:
        """Orders of held findings rows, each with the location in its own input (runs
        of consecutive rows of one input at a time)."""
        inputs = frame["_src"].to_list()
        start = 0
        for i in range(1, len(inputs) + 1):
            if i == len(inputs) or inputs[i] != inputs[start]:
                part = frame.slice(start, i - start)
                source, kind = self.inputs[inputs[start]]
                yield from orders(part, TableBatch(part, source, kind))
                start = i
