"""The columnar engine: screens tables (CSV, Parquet, JSON Lines orders) as batches.

A dispensing export has millions of rows and a few thousand distinct drugs, and most
rows name a drug with nothing to say.  So the work is done on columns (polars), per
batch of rows (:class:`~b12drugs.read.tabular.TableBatch`):

1. *resolve*: each batch's distinct drug keys not seen before in the run go through the
   resolver chain once (:meth:`Runtime.resolve <b12drugs.engines.runtime.Runtime.resolve>`),
   and every row gets its drug's outcome by a join on the key;
2. *books*: rejected, inactive (skipped) and screened rows are counted on columns; the
   notices still to be listed (up to the per-kind limit) are built in Python for those
   rows only, in input order, and the rest are counted;
3. *findings*: the rows whose drug has class hits, and the distinct patient columns of
   every patient, are held for the end (:class:`~b12drugs.engines.spill.PartitionStore`,
   on disk by patient when they outgrow memory).

At the end each partition's patients with findings are assessed in Python, one
:class:`~b12drugs.records.PatientCase` each, by the shared assess layer
(:class:`~b12drugs.assess.case.Assessor`, through
:class:`~b12drugs.engines.partition.PartitionAssessor`): the same rules and risk-factor
hooks as the record engine, given the same orders and contexts, so the two engines'
reports are equal (tests hold them to it).  A run that spilled to disk has some of its
partitions assessed by worker processes (:mod:`b12drugs.engines.workers`).  Alerts are
spooled as JSON in input order (:class:`~b12drugs.engines.spill.AlertSpool`), so memory
does not grow with them either.  The batches themselves are read one ahead, in a thread
(:mod:`b12drugs.engines.ahead`, set up by :func:`~b12drugs.engines.inputs.run_inputs`).

Semantics shared with the record engine: a patient's context is every distinct set of
its rows' patient columns merged in input order (first birth date, sex and diet seen;
conditions united), from every row that was read and not rejected; a row without a
patient id is a patient of its own, named by source and order id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import polars as pl

from ..assess.case import Assessor
from ..config import Config
from ..errors import InputError
from ..models import (
    INACTIVE_STATUSES,
    DrugQuery,
    Notice,
    Order,
    PatientContext,
    Rejection,
    Skip,
)
from ..read.tabular import (
    DRUG_KEY,
    ORDER_SCHEMA,
    TableBatch,
    codings_of,
    orders,
)
from ..resolve.chain import Outcome
from .books import DEFAULT_NOTICE_LIMIT, Books, rejected_notice
from .partition import LONE, PartitionAssessor, PartitionResult
from .record import order_notices, skipped_notice
from .result import Result
from .runtime import Runtime
from .spill import (
    DEFAULT_BUDGET,
    DEFAULT_PARTITIONS,
    AlertSpool,
    PartitionStore,
    TempArea,
    read_partition,
)
from .workers import Workers

if TYPE_CHECKING:
    from ..plugins import PluginManager

_INACTIVE = sorted(INACTIVE_STATUSES)
#: The run's distinct drugs: key, index of the outcome, class hits, nothing to say.
_KEYS = {"_key": pl.String, "_oid": pl.Int64, "_hits": pl.Boolean, "_quiet": pl.Boolean}


class ColumnarScreener:
    """A columnar screening run: feed it table batches, then :meth:`finish`.

    ``budget``: bytes of held rows before they go to disk by patient; ``temp_dir``:
    where (the system's temporary folder by default); ``on_rows``: called with the
    number of rows of each batch read, ``on_assessed``: with the partitions assessed
    and their number, after each (progress).
    """

    def __init__(
        self,
        config: Config | None = None,
        manager: PluginManager | None = None,
        *,
        runtime: Runtime | None = None,
        notice_limit: int = DEFAULT_NOTICE_LIMIT,
        temp_dir: str | None = None,
        budget: int = DEFAULT_BUDGET,
        partitions: int = DEFAULT_PARTITIONS,
        on_rows: Callable[[int], None] | None = None,
        on_assessed: Callable[[int, int], None] | None = None,
        workers: int = 1,
    ):
        self._owns_runtime = runtime is None
        self.runtime = runtime or Runtime(config, manager)
        self.config = config or self.runtime.config
        self.hooks = self.runtime.hooks
        self.kb = self.runtime.kb
        self.as_of = self.config.as_of()
        self.books = Books(notice_limit)
        self.assessor = Assessor(self.hooks, self.kb, self.runtime.rules, self.config,
                                 self.as_of)
        self.temp = TempArea(temp_dir)
        self.store = PartitionStore(self.temp, budget, partitions)
        self.on_rows = on_rows
        self.on_assessed = on_assessed
        #: worker processes that assess partitions beside this one (None: none)
        self.workers = self._workers(workers)
        self._seq = 0
        # the run's distinct drugs, by index (_oid)
        self._outcomes: list[Outcome] = []
        # drug key -> outcome, one table per way of keying (the text alone, or every
        # drug column joined), so that keys of the two never meet
        self._keys: dict[str, pl.DataFrame] = {}
        # the inputs of held rows: (source, kind of location), by index
        self._inputs: list[tuple[str, str]] = []
        self._input_ids: dict[tuple[str, str], int] = {}
        # patient contexts given as records (JSON Lines patients): (seq, context)
        self._contexts: dict[str, list[tuple[int, PatientContext]]] = {}
        #: where each notice this engine listed from rows or from the assessment stands,
        #: by its index in ``books.notices``: ``(phase, seq, n)``; phase 0 for a row's
        #: notices (seq: the row's position, n: its order among the row's notices), 1 for
        #: the assessment's (seq: position of the patient's first finding).  Sorting by it
        #: gives the order one run lists them in: :mod:`b12drugs.spark` merges partitions
        #: with it.
        self.notice_positions: dict[int, tuple[int, int, int]] = {}

    def _workers(self, total: int) -> Workers | None:
        """Workers for ``total`` processes in all, when they would give the same report:
        plugins and knowledge as a fresh interpreter loads them."""
        runtime = self.runtime
        if total < 2 or runtime.manager.edited or not runtime.default_knowledge:
            return None
        return Workers(total - 1, self.config, runtime.manager, self.books.notice_limit,
                       self.as_of)

    @property
    def counts(self) -> dict[str, int]:
        return self.books.counts

    # -- feeding ----------------------------------------------------------------
    def feed_table(self, items: Iterable[TableBatch | Notice | PatientContext | Rejection | Skip],
                   source: str) -> None:
        """Screen one tabular input: its batches, and any records its reader gives."""
        self.books.source(source)
        for item in items:
            if isinstance(item, TableBatch):
                if item.frame.height:
                    self._batch(item)
                    if self.on_rows is not None:
                        self.on_rows(item.frame.height)
            elif isinstance(item, Notice):
                self.books.notice(item if item.source else item.model_copy(
                    update={"source": source or None}))
            elif isinstance(item, PatientContext):
                self._contexts.setdefault(item.id, []).append((self._seq, item))
                self._seq += 1
            elif isinstance(item, Rejection):
                self.books.reject(item, source)
                self._seq += 1
            elif isinstance(item, Skip):
                self.books.skip(item.reason, source, order_id=item.record_id,
                                location=str(item.location))
                self._seq += 1
            else:
                raise InputError(f"the columnar engine reads tables; {source} gave "
                                 f"{type(item).__name__}")

    def reject_input(self, source: str, reason: str) -> None:
        """A whole input that could not be read: one rejected record."""
        from ..models import SourceLocation

        self.books.reject(Rejection(location=SourceLocation(file=source[:256]),
                                    reason=reason), source)
        self._seq += 1

    def _batch(self, batch: TableBatch) -> None:
        books, c = self.books, pl.col
        frame = batch.frame.with_row_index("_seq", offset=self._seq).with_columns(
            c("_seq").cast(pl.Int64))
        self._seq += frame.height
        rejected = c("_reject").is_not_null()
        inactive = ~rejected & c("status").str.to_lowercase().is_in(_INACTIVE)
        frame = frame.with_columns(
            pl.when(rejected).then(0).when(inactive).then(1).otherwise(2).alias("_state"))
        active = frame.filter(c("_state") == 2)
        if active.height:
            active = self._outcome_of(active)
        n_rejected = int((frame["_state"] == 0).sum())
        n_inactive = int((frame["_state"] == 1).sum())
        counts = books.counts
        counts["read"] += frame.height
        counts["rejected"] += n_rejected
        counts["skipped"] += n_inactive
        counts["screened"] += active.height
        self._notices(batch, frame, active, n_rejected, n_inactive)
        findings = active.filter(c("_hits")) if active.height else active
        if findings.height:
            findings = findings.select(
                *ORDER_SCHEMA, "_seq", "_oid",
                # a row without a patient id is a patient of its own, named by its
                # source and order id (the order's id: the row's, else file:line)
                pl.coalesce(c("patient_id"), pl.concat_str(
                    pl.lit(LONE + batch.source + "\x1f"),
                    pl.coalesce(c("id"), pl.concat_str(pl.lit(batch.source[:240] + ":"),
                                                       c("_line").cast(pl.String))))
                            ).alias("_case"),
                pl.lit(self._input(batch), pl.Int32).alias("_src"))
        patients = frame.filter(
            ~rejected & c("patient_id").is_not_null()
            & pl.any_horizontal(c(n).is_not_null() for n in
                                ("birth_date", "sex", "diet", "conditions")),
        ).select("patient_id", "birth_date", "sex", "diet", "conditions", "_seq", "_line",
                 pl.lit(self._input(batch), pl.Int32).alias("_src"))
        self.store.add(findings, patients)
        if self.store.spills and self.workers is not None:
            self.workers.start()  # a large run: their start-up overlaps the rest of the feed

    def _input(self, batch: TableBatch) -> int:
        """The index of the batch's input (its source and kind of location): held rows
        carry it instead of the names."""
        key = (batch.source, batch.location)
        index = self._input_ids.get(key)
        if index is None:
            index = self._input_ids[key] = len(self._inputs)
            self._inputs.append(key)
        return index

    def _outcome_of(self, active: pl.DataFrame) -> pl.DataFrame:
        """The active rows with their drug's outcome (``_oid``) and its flags: class hits
        (``_hits``) and nothing to say (``_quiet``); new drugs resolved first."""
        c = pl.col
        used = [k for k in DRUG_KEY if active[k].null_count() < active.height]
        if used == ["text"]:  # a drug text alone (most exports): the text is the key
            # (a row without one has a null key: one drug, "no code or text", matched
            # as a value by both joins below)
            scheme, key = "text", c("text")
        else:
            scheme = "all"
            key = pl.concat_str([c(k).fill_null("\x00") for k in DRUG_KEY], separator="\x1f")
        keyed = active.with_columns(key.alias("_key"))
        known = self._keys.setdefault(scheme, pl.DataFrame(schema=_KEYS))
        new = keyed.select("_key", *DRUG_KEY).unique("_key", maintain_order=True).join(
            known, on="_key", how="anti", nulls_equal=True)
        if new.height:
            known = self._keys[scheme] = pl.concat([known, self._resolve(new)])
        return keyed.join(known, on="_key", how="left", nulls_equal=True)

    def _resolve(self, new: pl.DataFrame) -> pl.DataFrame:
        """Resolve the batch's new distinct drugs together; their rows of the key table."""
        queries = [DrugQuery.from_parts(codings_of(rxcui, ndc, atc, cods), text)
                   for _, rxcui, ndc, atc, cods, text in new.iter_rows()]
        got = self.runtime.resolve(queries)
        first = len(self._outcomes)
        for q in queries:
            self._outcomes.append(got[q])
        oids = list(range(first, len(self._outcomes)))
        outcomes = self._outcomes[first:]
        return pl.DataFrame({"_key": new["_key"], "_oid": oids,
                             "_hits": [bool(o.hits) for o in outcomes],
                             "_quiet": [o.resolved and not o.notices for o in outcomes]},
                            schema=_KEYS)

    def _notices(self, batch: TableBatch, frame: pl.DataFrame, active: pl.DataFrame,
                 n_rejected: int, n_inactive: int) -> None:
        """List the batch's notices still within their limits, in row order (as the
        record engine would), and count the others."""
        books, c = self.books, pl.col
        noisy = active.filter(~c("_quiet")) if active.height else active
        # notices per kind this batch gives, counted from the outcomes
        totals: dict[str, int] = {"rejected": n_rejected, "skipped": n_inactive}
        if noisy.height:
            per_oid = noisy.group_by("_oid").len()
            for oid, n in per_oid.iter_rows():
                outcome = self._outcomes[oid]
                for notice in outcome.notices:
                    totals[notice.kind] = totals.get(notice.kind, 0) + n
                if not outcome.resolved:
                    totals["unresolved"] = totals.get("unresolved", 0) + n
        open_kinds = {k for k, n in totals.items() if n and books.room(k)}
        listed: dict[str, int] = {}
        if open_kinds:
            rows = self._rows_with_room(batch, frame, noisy, open_kinds)
            for state, seq, oid, order, reason, rid, line in rows:
                before = dict(books.notice_counts)
                at = len(books.notices)
                if state == 0:
                    if books.listed("rejected"):
                        books.notices.append(rejected_notice(
                            Rejection(location=batch.where(line), reason=reason,
                                      record_id=rid[:256] if rid else None), batch.source))
                elif state == 1:
                    assert order is not None
                    if books.listed("skipped"):
                        books.notices.append(skipped_notice(order, batch.source))
                else:
                    assert order is not None and oid is not None
                    books.notices.extend(order_notices(order, self._outcomes[oid],
                                                       batch.source, books))
                for i in range(at, len(books.notices)):
                    self.notice_positions[i] = (0, seq, i - at)
                for kind, n in books.notice_counts.items():
                    if n != before.get(kind, 0):
                        listed[kind] = listed.get(kind, 0) + n - before.get(kind, 0)
        for kind, n in totals.items():
            books.count_only(kind, n - listed.get(kind, 0))

    def _rows_with_room(self, batch: TableBatch, frame: pl.DataFrame, noisy: pl.DataFrame,
                        kinds: set[str],
                        ) -> Iterator[tuple[int, int, int | None, Order | None, str | None,
                                            str | None, int | None]]:
        """The rows that give a notice of a kind still listed, in row order:
        ``(state, seq, outcome, order, reason, record id, line)``."""
        c = pl.col
        parts = []
        if "rejected" in kinds:
            parts.append(frame.filter(c("_state") == 0).select(
                "_state", "_seq", pl.lit(None, pl.Int64).alias("_oid")))
        if "skipped" in kinds:
            parts.append(frame.filter(c("_state") == 1).select(
                "_state", "_seq", pl.lit(None, pl.Int64).alias("_oid")))
        if noisy.height:
            wanted = [oid for oid, o in enumerate(self._outcomes)
                      if (not o.resolved and "unresolved" in kinds)
                      or any(n.kind in kinds for n in o.notices)]
            picked = noisy.filter(c("_oid").is_in(wanted))
            parts.append(picked.select("_state", "_seq", "_oid"))
        if not parts:
            return
        order_of = pl.concat(parts).sort("_seq")
        rows = frame.join(order_of.select("_seq", "_oid"), on="_seq", how="inner").sort("_seq")
        made: dict[int, Order] = {}
        screenable = rows.filter(c("_state") != 0)
        if screenable.height:
            for seq, order in zip(screenable["_seq"].to_list(), orders(screenable, batch),
                                  strict=True):
                made[seq] = order
        for state, seq, oid, reason, rid, line in rows.select(
                "_state", "_seq", "_oid", "_reject", "_rid", "_line").iter_rows():
            yield state, seq, oid, made.get(seq), reason, rid, line

    # -- the end ----------------------------------------------------------------
    def finish(self) -> Result:
        """Assess every patient with findings, close the books, give the result.

        Temporary files of the held rows are removed here; those of the spooled alerts
        with :meth:`Result.close` (after the report is written)."""
        from ..emit.delivery import deliver

        spool = AlertSpool(self.temp, self.store.budget)
        severities: dict[str, int] = {}
        kept: list[tuple[int, int, Notice]] = []  # rule notices: (seq, n, notice)
        dropped: dict[str, int] = {}
        books = self.books
        try:
            for done, (part, total) in enumerate(self._assessed(spool), 1):
                if self.on_assessed is not None:
                    self.on_assessed(done, total)
                kept += part.kept
                for kind, n in part.dropped.items():
                    dropped[kind] = dropped.get(kind, 0) + n
                for severity, n in part.severities.items():
                    severities[severity] = severities.get(severity, 0) + n
                books.unreported += part.unreported
                books.not_due += part.not_due
                for class_id, n in part.disabled_seen.items():
                    books.disabled_seen[class_id] = books.disabled_seen.get(class_id, 0) + n
                for problem in part.problems:
                    self.hooks.problems.append(problem)
                if part.alerts is not None:
                    spool.add_run(part.alerts)
            kept.sort(key=lambda item: item[:2])
            for seq, n, notice in kept:
                if books.listed(notice.kind):
                    self.notice_positions[len(books.notices)] = (1, seq, n)
                    books.notices.append(notice)
            for kind, n in dropped.items():
                books.count_only(kind, n)
            books.close(self.config, self.runtime.disabled_rules)
            report = books.report(self.kb.version)
            result = Result(report, spool, severities, self.temp)
            if self.config.sinks:
                whole = deliver(result.to_report(), self.config, self.hooks)
                result = Result(whole, None, severities, self.temp)
            return result
        except BaseException:
            self.abort()
            raise
        finally:
            if self.workers is not None:
                self.workers.close()
            if self._owns_runtime:
                self.runtime.close()

    def abort(self) -> None:
        """The run failed or was stopped: its worker processes end, then its temporary
        files are removed (no worker writes into a removed folder)."""
        if self.workers is not None:
            self.workers.close()
        self.temp.close()

    def _assessed(self, spool: AlertSpool) -> Iterator[tuple[PartitionResult, int]]:
        """Each partition assessed, with the number of partitions: by worker processes
        beside this one when the run spilled and they can give the same report
        (:mod:`b12drugs.engines.workers`)."""
        hits = {oid: outcome.hits for oid, outcome in enumerate(self._outcomes)}
        local = PartitionAssessor(self.assessor, hits, self._inputs, self._contexts,
                                  self.books.notice_limit)
        if not self.store.spills:
            held = self.store.held()
            if held is not None:
                yield local.assess(*held, spool.add), 1
                spool.end_run()
            return
        folders = self.store.spilled_partitions()
        if self.workers is not None:
            for part in self.workers.assess(folders, local, spool, hits, self._inputs,
                                            self._store_contexts()):
                yield part, len(folders)
            return
        for folder in folders:
            yield local.assess(*read_partition(folder), spool.add), len(folders)
            spool.end_run()

    def _store_contexts(self) -> dict[str, dict[str, list[tuple[int, PatientContext]]]]:
        """Context records (JSON Lines patients) by the partition folder of their patient."""
        out: dict[str, dict[str, list[tuple[int, PatientContext]]]] = {}
        if self._contexts:
            ids = list(self._contexts)
            for pid, part in zip(ids, self.store.partition_of(ids), strict=True):
                out.setdefault(self.store.folder_name(part), {})[pid] = self._contexts[pid]
        return out
