"""The engine: runs read -> resolve -> classify -> assess -> emit, and keeps the books.

Every record read ends as *screened*, *skipped* (with a reason) or *rejected* (with a
location and a reason): ``read == screened + skipped + rejected`` always.

Speed: resolution is paid once per distinct drug (codings + text), never once per
row; records are processed in chunks so that each chunk's new distinct drugs are
resolved together (resolvers may look them up concurrently).  Memory grows with the
patients that have findings and with alerts, not with rows: a patient's state is
dropped as soon as a parser says the patient is complete (:class:`PatientEnd`), and
patients without any B12-relevant order are never stored.

One exception, for correctness: a CSV-style reader puts a patient's columns (birth date,
conditions, ...) on every row, and a patient's risk factors may be filled in only on rows
whose drug has no B12 class.  So for rows with patient columns the engine keeps the
first non-blank raw columns per patient until the patient is finalised, and builds a
context from them only for patients with findings.  Trade-off: this costs about 200 bytes
per patient with patient columns (not per row; nothing for inputs without them, and a
:class:`PatientEnd` frees it) and ~8% of a large CSV run (one lookup of the patient per
row); a *second*, different set of columns on another row without findings is not kept
(comparing every row's columns cost ~12%), so a reader should repeat a patient's columns
on every row.
"""

from __future__ import annotations

import functools
import gc
import inspect
import io
import itertools
import logging
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from ..__about__ import __version__
from ..assess.monitoring import kept_out
from ..classify import classify
from ..config import Config
from ..errors import ConfigError, InputError, PluginError
from ..knowledge import KnowledgeBase, load_knowledge
from ..models import (
    INACTIVE_STATUSES,
    SEVERITIES,
    Alert,
    ClassHit,
    Counts,
    DrugQuery,
    Notice,
    Order,
    OrderBlock,
    OrderRow,
    PatientContext,
    PatientEnd,
    PatientFactory,
    Rejection,
    Report,
    Resolution,
    Skip,
    SourceLocation,
)
from ..plugins import PluginManager, get_plugin_manager
from ..records import (
    InputFormat,
    OrderFindings,
    PatientCase,
    Record,
    ResolveFn,
    Resolver,
    Rule,
)

log = logging.getLogger(__name__)

# Records per chunk: big enough to batch each chunk's new drugs for the resolvers, small
# enough that few records are alive at once (measured: 512 rather than 2048 cuts the
# cyclic garbage collector's work on a 250,000-row CSV by half, ~18% of the run).
CHUNK = 512
SNIFF_BYTES = 64 * 1024
DEFAULT_NOTICE_LIMIT = 1000
#: Completed patients remembered, to report records that arrive after their PatientEnd.
COMPLETED_LIMIT = 100_000


@dataclass(eq=False, slots=True)  # by identity: ``x in outcomes`` stays a C-level check
class _Outcome:
    """What one distinct drug resolved to (cached for the run).

    ``plain`` marks the common case (resolved, no class hit, nothing to report): the
    engine only counts such orders, so it is worked out once here, not once per row;
    ``hitless`` (no class hit) marks the orders whose patient columns are held.
    """

    hits: tuple[ClassHit, ...]
    resolved: bool
    notices: tuple[Notice, ...]
    description: str
    plain: bool = field(init=False)
    hitless: bool = field(init=False)
    #: For column-wise screening: 0 plain, 2 something to report, 6 class hits (bit 0
    #: is left for "inactive", see :meth:`Screener._block`).
    code: int = field(init=False)

    def __post_init__(self) -> None:
        self.hitless = not self.hits
        self.plain = self.resolved and self.hitless and not self.notices
        self.code = 0 if self.plain else 2 if self.hitless else 6


#: Stands for a drug not resolved yet in column-wise lookups (never plain).
_UNSEEN = _Outcome((), False, (), "")
_CODE = operator.attrgetter("code")
#: By row code (inactive | outcome code): whether the row's patient columns are held
#: (active, no class hit).
_HOLD = (True, False, True, False, False, False, False, False)
#: By row code: whether the row is active with a notice or class hits to report.
_TAKE_ACTIVE = (False, False, True, False, False, False, True, False)


class _InactiveStatus(dict[str | None, bool]):
    """``status -> inactive?``, worked out once per distinct status string.

    Orders carry a handful of distinct statuses, so a dict lookup (``memo[status]``)
    replaces a ``lower()`` and a set lookup on every row.  Bounded: a hostile input
    with endless distinct statuses is still answered, just not remembered.
    """

    LIMIT = 256

    def __missing__(self, status: str | None) -> bool:
        inactive = status is not None and status.lower() in INACTIVE_STATUSES
        if len(self) < self.LIMIT:
            self[status] = inactive
        return inactive


@dataclass(slots=True)
class _PatientState:
    findings: list[OrderFindings] = field(default_factory=list)


class _FewerCollections:
    """While records are fed, let CPython's cyclic garbage collector run less often.

    A large run allocates millions of short-lived containers (CSV rows, order tuples)
    while it holds a growing set of findings.  With the default first-generation
    threshold (700 allocations) the collector keeps re-scanning those findings: about a
    third of a 1,000,000-row CSV run (measured: 7.9 s of CPU -> 5.7 s with 50,000, same
    peak memory).  Nothing in a run needs prompt cycle collection (records are freed by
    reference counting), so the threshold is raised while feeding and restored after.

    Re-entrant and thread-safe: concurrent runs share one raise and the last one out
    restores the thresholds; a threshold already higher, or a disabled collector
    (threshold 0), is left alone.
    """

    FIRST_GENERATION = 50_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: tuple[int, int, int] | None = None

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                current = gc.get_threshold()
                if 0 < current[0] < self.FIRST_GENERATION:
                    self._saved = current
                    gc.set_threshold(self.FIRST_GENERATION, current[1], current[2])
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._saved is not None:
                if gc.get_threshold()[0] == self.FIRST_GENERATION:  # nobody changed it since
                    gc.set_threshold(*self._saved)
                self._saved = None


_FEWER_COLLECTIONS = _FewerCollections()


class Runtime:
    """What is costly to build and safe to share across many screening runs.

    The knowledge base, the rules and each resolver (its vocabulary, HTTP session,
    cache file) are built once; distinct drugs resolved by one run are remembered for
    the next (up to ``cache_limit`` distinct drugs).  Services that screen one message
    or one CDS Hooks request at a time (the HL7 listener, the CDS Hooks service) keep one
    runtime and give it to every :class:`Screener`.

    Resolvers are built lazily once per thread, because some hold objects that must not
    cross threads (SQLite connections); :meth:`close` releases every one.

    >>> with Runtime() as runtime:
    ...     for message in (["metformin"], ["omeprazole"]):
    ...         s = Screener(runtime=runtime)
    ...         s.feed([Order(id="1", patient_id="p", text=t) for t in message], "msg")
    ...         report = s.finish()
    """

    def __init__(
        self,
        config: Config | None = None,
        manager: PluginManager | None = None,
        *,
        knowledge: KnowledgeBase | None = None,
        cache_limit: int = 100_000,
    ):
        self.config = config or Config()
        self.manager = manager or get_plugin_manager()
        self.hooks = self.manager.hooks
        self.kb = knowledge or load_knowledge(
            (k.classes, k.entries) for k in self.hooks.knowledge()
        )
        _check_policy(self.config, self.kb, self.hooks.rules())
        disabled_rules = set(self.config.policy.disabled_rules)
        every_rule = self.hooks.rules()
        self.rules: list[Rule] = [r for r in every_rule if r.name not in disabled_rules]
        #: rules installed but switched off by ``[policy] disabled_rules`` (for the report)
        self.disabled_rules = tuple(sorted({r.name for r in every_rule} & disabled_rules))
        self.outcomes: dict[object, _Outcome] = {}
        self.cache_limit = cache_limit
        self._local = threading.local()
        self._built: list[list[tuple[str, ResolveFn]]] = []
        self._lock = threading.Lock()

    def resolvers(self) -> list[tuple[str, ResolveFn]]:
        """This thread's resolver chain, in order, built on first use."""
        chain: list[tuple[str, ResolveFn]] | None = getattr(self._local, "chain", None)
        if chain is None:
            chain = []
            for r in self.hooks.resolvers():
                build = functools.partial(_build, r, self.config, self.kb)
                fn = self.hooks.call_isolated(r.provider, f"resolver {r.name}", build)
                if fn is not None:
                    chain.append((r.name, fn))
            self._local.chain = chain
            with self._lock:
                self._built.append(chain)
        return chain

    def close(self) -> None:
        """Release what resolvers hold (HTTP sessions, cache files, worker threads)."""
        with self._lock:
            chains, self._built = self._built, []
        for chain in chains:
            for name, fn in chain:
                close = getattr(fn, "close", None)
                if callable(close):
                    self.hooks.call_isolated(name, f"closing resolver {name}", close)
        self._local = threading.local()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Screener:
    """A screening run: feed it records from one or more sources, then :meth:`finish`.

    Without a ``runtime`` the screener builds its own and closes it when finished;
    with one, it reuses the runtime's knowledge, resolvers and resolution cache.

    >>> s = Screener()
    >>> s.feed([Order(id="1", patient_id="p", text="metformin 500 mg")], "example")
    >>> report = s.finish()
    """

    def __init__(
        self,
        config: Config | None = None,
        manager: PluginManager | None = None,
        *,
        knowledge: KnowledgeBase | None = None,
        notice_limit: int = DEFAULT_NOTICE_LIMIT,
        runtime: Runtime | None = None,
    ):
        self._owns_runtime = runtime is None
        if runtime is None:
            runtime = Runtime(config, manager, knowledge=knowledge)
        self.runtime = runtime
        self.config = config or runtime.config
        self.manager = runtime.manager
        self.hooks = runtime.hooks
        self.kb = runtime.kb
        self.rules = runtime.rules
        self.as_of = self.config.as_of()
        self.resolvers = runtime.resolvers()
        self.counts = {"read": 0, "screened": 0, "skipped": 0, "rejected": 0}
        self.notices: list[Notice] = []
        self.alerts: list[Alert] = []
        self.sources: list[str] = []
        self._notice_limit = notice_limit
        self._notice_counts: dict[str, int] = {}
        self._outcomes = runtime.outcomes
        # outcomes shaped by an unavailable source: used for this run, not kept for the next
        self._transient: list[object] = []
        self._patients: dict[object, _PatientState] = {}
        self._contexts: dict[str, PatientContext] = {}
        # patient id -> (raw patient columns, the context they went into): see _has_context_of
        self._row_contexts: dict[str, tuple[object, PatientContext]] = {}
        # patient id -> rows without findings that carry patient columns (see module doc)
        # (raw columns only: tuples of strings, which the garbage collector stops tracking)
        self._held: dict[str, tuple[str, ...]] = {}
        self._makers: dict[str, PatientFactory] = {}  # when not self._maker
        # patients a parser said are complete -> whether a late record was reported
        self._completed: dict[str, bool] = {}
        self._maker: PatientFactory | None = None
        self._reported = frozenset(SEVERITIES[SEVERITIES.index(self.config.policy.min_severity):])
        # What the policy kept from the report, said once at the end (_policy_notices):
        # alerts under min_severity, patients whose orders fall in a disabled class.
        self._unreported = 0
        self._disabled_classes = frozenset(self.config.policy.disabled_classes)
        self._disabled_seen: dict[str, int] = {}
        self._not_due = 0  # alerts kept out: normal B12 result within the interval
        self._rule_calls = [(rule, f"rule {rule.name}") for rule in self.rules]
        self._inactive = _InactiveStatus()
        self._by_text: dict[str | None, _Outcome] = {}  # see _block_outcomes

    # -- books -----------------------------------------------------------------
    def notice(self, notice: Notice) -> None:
        if self._listed(notice.kind):
            self.notices.append(notice)

    def _listed(self, kind: str) -> bool:
        """Count one notice of ``kind``; true while it is still to be listed.

        Notices are listed up to the limit per kind and counted beyond it.  Callers ask
        first and build the :class:`Notice` only when it will be listed: a file with
        50,000 stopped orders then builds 1,000 skip notices, not 50,000.
        """
        n = self._notice_counts.get(kind, 0) + 1
        self._notice_counts[kind] = n
        return n <= self._notice_limit

    def _reject(self, rec: Rejection, source: str) -> None:
        self.counts["read"] += 1
        self.counts["rejected"] += 1
        if self._listed("rejected"):
            self.notices.append(Notice(
                kind="rejected",
                message=rec.reason,
                order_id=rec.record_id,
                location=str(rec.location)[:256],
                source=source or rec.location.file,
            ))

    def _skip(self, reason: str, source: str, *, order_id: str | None = None,
              patient_id: str | None = None, location: str | None = None) -> None:
        self.counts["read"] += 1
        self.counts["skipped"] += 1
        if self._listed("skipped"):
            self.notices.append(Notice(kind="skipped", message=reason, order_id=order_id,
                                       patient_id=patient_id, location=location,
                                       source=source or None))

    def _skip_inactive(self, order: Order | OrderRow, source: str) -> None:
        """Skip an inactive order; its message and location are only built when the
        notice will be listed (most of a large file's skips are only counted)."""
        self.counts["read"] += 1
        self.counts["skipped"] += 1
        if self._listed("skipped"):
            self.notices.append(Notice(
                kind="skipped",
                message=f"status {order.status!r}: inactive orders are not screened",
                order_id=order.id, patient_id=order.patient_id, location=_loc(order),
                source=source or None))

    # -- resolution --------------------------------------------------------------
    def _resolve_new(self, orders: Sequence[Order | OrderRow]) -> None:
        """Resolve the distinct drugs of ``orders`` not seen before (in this run or, with
        a shared runtime, in earlier runs)."""
        pending: dict[DrugQuery, list[object]] = {}
        for order in orders:
            key: object = (order.codings, order.text)
            if key in self._outcomes:
                continue
            q = DrugQuery.from_order(order)
            keys = pending.setdefault(q, [])
            if key not in keys:
                keys.append(key)
        if not pending:
            return
        answers: dict[DrugQuery, Resolution] = {}
        attempts: dict[DrugQuery, list[Notice]] = {}
        todo = list(pending)
        for name, fn in self.resolvers:
            if not todo:
                break
            got = self.hooks.call_isolated(name, f"resolver {name}",
                                          functools.partial(fn, todo))
            got = self._checked_answers(name, got)
            rest = []
            for q in todo:
                res = got.get(q)
                if res is not None and res.resolved:
                    answers[q] = res
                else:
                    if res is not None and res.notices:
                        attempts.setdefault(q, []).extend(res.notices)
                    rest.append(q)
            todo = rest
        for q, keys in pending.items():
            res = answers.get(q)
            if res is not None:
                outcome = _Outcome(classify(res, self.kb), True, res.notices, q.describe())
            else:
                outcome = _Outcome((), False, tuple(attempts.get(q, ())), q.describe())
            for key in keys:
                self._outcomes[key] = outcome
            if any(n.kind == "source_unavailable" for n in outcome.notices):
                self._transient.extend(keys)  # forgotten at the end of this run

    def _checked_answers(self, name: str, got: object) -> Mapping[DrugQuery, Resolution]:
        """A resolver's answers if they are a mapping of queries to resolutions; anything
        else is that resolver's problem (its queries go on down the chain), never the
        input reader's."""
        if got is None:
            return {}
        if isinstance(got, Mapping):
            if all(isinstance(v, Resolution) for v in got.values()):
                return got
            bad = next(type(v).__name__ for v in got.values() if not isinstance(v, Resolution))
            why = f"returned a mapping holding {bad}, expected Resolution values"
        else:
            why = f"returned {type(got).__name__}, expected a mapping DrugQuery -> Resolution"
        self.hooks.problem(name, f"resolver {name}", TypeError(why))
        return {}

    # -- feeding -----------------------------------------------------------------
    def feed(self, records: Iterable[Record], source: str = "") -> None:
        """Screen a stream of records from one source (a file name, a message id)."""
        if source and source not in self.sources:
            self.sources.append(source)
        chunk: list[Record] = []
        with _FEWER_COLLECTIONS:
            for rec in records:
                if type(rec) is OrderBlock:  # already a batch: screened column-wise
                    if chunk:
                        self._process(chunk, source)
                        chunk = []
                    self._block(rec, source)
                    continue
                chunk.append(rec)
                if len(chunk) == CHUNK:
                    self._process(chunk, source)
                    chunk = []
            if chunk:
                self._process(chunk, source)

    def _process(self, chunk: list[Record], source: str) -> None:
        """Screen one chunk of records, in order: the hot loop of a run.

        Most rows of a dispensing file are active orders of an already resolved drug with
        nothing to report.  For those the loop does one status lookup and one outcome
        lookup and counts them in bulk; models (validated orders, patient contexts,
        notices) are built only for the rows that are skipped, unresolved or contribute
        to an alert (:meth:`_screen_order`).
        """
        self._bound_cache()
        inactive, outcomes, held = self._inactive, self._outcomes, self._held
        plain = 0
        try:
            for rec in chunk:
                kind = type(rec)
                if kind is OrderRow or kind is Order:
                    order: Order | OrderRow = rec  # type: ignore[assignment]
                    if inactive[order.status]:
                        self._skip_inactive(order, source)
                        continue
                    outcome = outcomes.get((order.codings, order.text))
                    if outcome is None:
                        # A drug not seen before: resolve every new drug of the chunk now,
                        # together (resolvers may batch); later chunks mostly have none.
                        self._resolve_chunk(chunk)
                        outcome = outcomes[order.codings, order.text]
                    if outcome.plain:
                        plain += 1
                        # patient columns: looked at until a patient has non-blank ones
                        if kind is OrderRow and rec[10] and rec[1] not in held:  # type: ignore[index,operator]
                            self._hold(rec)  # type: ignore[arg-type]
                    else:
                        self._screen_order(order, outcome, source)
                elif kind is PatientContext:
                    if rec.id in self._completed:  # type: ignore[union-attr]
                        self._late(rec.id, source)  # type: ignore[union-attr]
                    self._add_context(rec)  # type: ignore[arg-type]
                elif kind is Rejection:
                    self._reject(rec, source)  # type: ignore[arg-type]
                elif kind is Skip:
                    sk: Skip = rec  # type: ignore[assignment]
                    self._skip(sk.reason, source, order_id=sk.record_id,
                               location=str(sk.location))
                elif kind is PatientEnd:
                    self._finalize(rec.patient_id)  # type: ignore[union-attr]
                    self._complete(rec.patient_id)  # type: ignore[union-attr,arg-type]
                    self._row_contexts.pop(rec.patient_id, None)  # type: ignore[union-attr,arg-type]
                elif kind is Notice:
                    # A parser's remark about a record it still screened (e.g. a bad birth
                    # date ignored): reported, not counted as a record.
                    note: Notice = rec  # type: ignore[assignment]
                    self.notice(note if note.source else note.model_copy(
                        update={"source": source or None}))
                else:
                    raise PluginError(
                        f"input parser for {source or 'input'} yielded {kind.__name__}, "
                        "expected Order, OrderRow, PatientContext, Rejection, Skip, "
                        "PatientEnd or Notice"
                    )
        finally:
            self.counts["read"] += plain
            self.counts["screened"] += plain

    def _bound_cache(self) -> None:
        """Bounded memory for long-running services: past the runtime's limit, start a
        fresh cache.  Swap, never clear, so that other runs sharing the old one keep
        their answers."""
        if len(self._outcomes) > self.runtime.cache_limit:
            self._outcomes = self.runtime.outcomes = {}
            self._by_text = {}

    def _block(self, block: OrderBlock, source: str) -> None:
        """Screen a block of rows column by column (see :class:`OrderBlock`).

        The same books as :meth:`_process` row by row, in C-level passes over the
        columns: each row's status and drug are looked up with ``map`` and combined into
        one code per row (:data:`_HOLD`); the rows with nothing to report (code 0, almost
        all) are only counted, and their patient columns are held per patient (the first
        non-blank ones, as :meth:`_hold` does).  The other rows (inactive, unresolved,
        with class hits or notices) are taken one by one in file order, as
        :class:`OrderRow`.
        """
        self._bound_cache()
        n = len(block)
        inactive = list(map(self._inactive.__getitem__, block.statuses))
        outs = self._block_outcomes(block, inactive)
        codes = list(map(operator.or_, inactive, map(_CODE, outs)))
        if block.make_patient is not None:
            self._hold_block(block, list(map(_HOLD.__getitem__, codes)))
        plain = codes.count(0)
        self.counts["read"] += plain
        self.counts["screened"] += plain
        if self._notice_counts.get("skipped", 0) >= self._notice_limit:
            # Past the limit, inactive rows are only counted (as _skip_inactive does),
            # all at once; the active rows with something to report are taken in order.
            stopped = inactive.count(True)
            self._notice_counts["skipped"] += stopped
            self.counts["read"] += stopped
            self.counts["skipped"] += stopped
            for i in itertools.compress(range(n), map(_TAKE_ACTIVE.__getitem__, codes)):
                self._screen_order(block.row(i), outs[i], source, hold=False)
            return
        for i in itertools.compress(range(n), codes):
            if not inactive[i]:
                self._screen_order(block.row(i), outs[i], source, hold=False)
            else:
                self._skip_inactive(block.row(i), source)

    def _block_outcomes(self, block: OrderBlock, inactive: list[bool]) -> list[_Outcome]:
        """Each row's drug outcome (:data:`_UNSEEN` for an inactive row's new drug: it
        is not resolved).  A block without codings (an export of drug texts) is looked
        up by text alone (``_by_text``, this run's view of the cache), with no key tuple
        per row."""
        n = len(block)
        blank = block.codings.count(()) == n
        if blank:
            table: dict[Any, _Outcome] = self._by_text
            keys: Sequence[Any] = block.texts
        else:
            table, keys = self._outcomes, list(zip(block.codings, block.texts, strict=True))
        outs = list(map(table.get, keys, itertools.repeat(_UNSEEN, n)))
        if _UNSEEN not in outs:
            return outs
        unseen = list(itertools.compress(range(n), map(operator.is_, outs,
                                                       itertools.repeat(_UNSEEN))))
        new = [block.row(i) for i in unseen if not inactive[i]]
        if new:
            self._resolve_new(new)
        if blank:
            outcomes = self._outcomes
            for i in unseen:
                text = keys[i]
                if text not in table and (got := outcomes.get(((), text))) is not None:
                    table[text] = got
        return list(map(table.get, keys, itertools.repeat(_UNSEEN, n)))

    def _hold_block(self, block: OrderBlock, hold: list[bool]) -> None:
        """:meth:`_hold` for the block's active rows without class hits, column-wise."""
        pids: list[Any] = list(itertools.compress(block.patient_ids, hold))
        fields: list[Any] = list(itertools.compress(block.patient_fields, hold))
        if not all(pids):  # rows without a patient id have no patient columns
            fields = list(itertools.compress(fields, pids))
            pids = list(itertools.compress(pids, pids))
        if not pids:
            return
        if not any(min(fields)):  # all-blank columns are not held (the least tuple is
            # all-blank when any is: nothing sorts before "")
            filled = list(map(any, fields))
            pids = list(itertools.compress(pids, filled))
            fields = list(itertools.compress(fields, filled))
        held = self._held
        # Membership only (one C pass; the values, scattered in memory, stay untouched):
        # nearly every row's patient is held already.
        known = list(map(held.__contains__, pids))
        if all(known):
            return
        maker = block.make_patient
        assert maker is not None  # the caller checked
        if self._maker is None:
            self._maker = maker
        for i in itertools.compress(range(len(pids)), map(operator.not_, known)):
            pid = pids[i]
            if pid not in held:  # a patient's first row wins (also within the block)
                held[pid] = fields[i]
                if maker is not self._maker:
                    self._makers[pid] = maker

    def _resolve_chunk(self, chunk: list[Record]) -> None:
        """Resolve the new distinct drugs of the chunk's active orders."""
        inactive, outcomes = self._inactive, self._outcomes
        self._resolve_new([r for r in chunk  # type: ignore[misc]
                           if (type(r) is OrderRow or type(r) is Order)
                           and (r.codings, r.text) not in outcomes  # type: ignore[union-attr]
                           and not inactive[r.status]])  # type: ignore[union-attr]

    def _screen_order(self, order: Order | OrderRow, outcome: _Outcome, source: str,
                      *, hold: bool = True) -> None:
        """An active order whose drug has something to say: class hits (the order is
        validated and kept as a finding of its patient) or notices.  ``hold=False``: the
        caller holds the row's patient columns itself (:meth:`_hold_block`)."""
        if outcome.hits and type(order) is OrderRow:
            row = order
            try:
                order = row.to_order()
                context = None if self._has_context_of(row) else row.patient(order.source)
            except (ValidationError, ValueError) as exc:
                self._reject(Rejection(location=row.location(), reason=_explain(exc),
                                       record_id=row.id[:256]), source)
                return
            if context is not None:
                self._add_context(context)
                self._row_contexts[context.id] = (row.patient_fields, self._contexts[context.id])
        elif hold and type(order) is OrderRow:
            self._hold(order)
        self.counts["read"] += 1
        self.counts["screened"] += 1
        if not outcome.resolved:
            self._unresolved(order, outcome, source)
        else:
            self._order_notices(order, outcome, source)
        if outcome.hits:
            key: object = order.patient_id or ("order", source, order.id)
            state = self._patients.get(key)
            if state is None:
                if key in self._completed:
                    self._late(key, source)  # type: ignore[arg-type]
                state = self._patients[key] = _PatientState()
            state.findings.append(OrderFindings(order, outcome.hits, source))  # type: ignore[arg-type]

    def _complete(self, patient_id: str) -> None:
        """Remember that a parser said the patient is complete (the last
        COMPLETED_LIMIT ones, so memory stays flat on endless streams)."""
        done = self._completed
        done[patient_id] = False
        if len(done) > COMPLETED_LIMIT:
            del done[next(iter(done))]

    def _late(self, patient_id: str, source: str) -> None:
        """A record for a completed patient: it is screened on its own (with the context
        that arrives with it); say so once per patient."""
        if self._completed.get(patient_id):
            return
        self._completed[patient_id] = True
        if self._listed("info"):
            self.notices.append(Notice(
                kind="info", patient_id=patient_id, source=source or None,
                message="records for this patient arrived after the patient was completed: "
                        "screened separately"))

    def _hold(self, row: OrderRow) -> None:
        """Remember the first non-blank patient columns of a patient's rows without
        findings (see the module doc)."""
        pid, fields, maker = row.patient_id, row.patient_fields, row.make_patient
        if not pid or not fields or maker is None or not any(fields) or pid in self._held:
            return
        self._held[pid] = fields
        if self._maker is None:
            self._maker = maker
        elif maker is not self._maker:
            self._makers[pid] = maker

    def _held_contexts(self, patient_id: str) -> None:
        """Merge the contexts built from the patient's held columns into its context."""
        held = self._held.pop(patient_id, None)
        maker = self._makers.pop(patient_id, None) or self._maker
        if held is None or maker is None:
            return
        seen = self._row_contexts.get(patient_id)
        current = self._contexts.get(patient_id)
        if seen is not None and seen[0] == held and current is seen[1]:
            return  # the usual case: the same columns as the rows with findings
        try:
            context = maker(patient_id, held, SourceLocation())
        except (ValidationError, ValueError):
            return  # the reader checked these columns; nothing usable in them
        self._add_context(context)

    def _has_context_of(self, row: OrderRow) -> bool:
        """Whether the patient's context already holds exactly this row's patient columns.

        A patient's rows repeat the same birth date and conditions; building the context
        again and merging it into the one held would give an equal context, so the
        rebuild (validation, comparison, merge) is skipped.  The identity check makes sure
        the held context is still the one built from those columns.
        """
        seen = self._row_contexts.get(row.patient_id) if row.patient_id else None
        return (seen is not None and seen[0] == row.patient_fields
                and self._contexts.get(row.patient_id) is seen[1])  # type: ignore[arg-type]

    def _add_context(self, ctx: PatientContext) -> None:
        old = self._contexts.get(ctx.id)
        if old is None:
            self._contexts[ctx.id] = ctx
        elif old != ctx:
            self._contexts[ctx.id] = old.merged(ctx)

    def _order_notices(self, order: Order | OrderRow, outcome: _Outcome, source: str) -> None:
        """The resolution notices of a drug, attributed to one order (copied only when
        they will be listed)."""
        for n in outcome.notices:
            if self._listed(n.kind):
                self.notices.append(n.model_copy(update={"order_id": order.id,
                                                         "patient_id": order.patient_id,
                                                         "source": source or None}))

    def _unresolved(self, order: Order | OrderRow, outcome: _Outcome, source: str) -> None:
        self._order_notices(order, outcome, source)
        if self._listed("unresolved"):
            self.notices.append(Notice(
                kind="unresolved",
                message=f"drug not recognised ({outcome.description}): "
                        "it was NOT checked for B12 risk",
                order_id=order.id,
                patient_id=order.patient_id,
                location=_loc(order),
                source=source or None,
            ))

    # -- patients ---------------------------------------------------------------
    def _finalize(self, key: object) -> None:
        state = self._patients.pop(key, None)
        if state is not None and isinstance(key, str):
            self._held_contexts(key)
        elif isinstance(key, str):
            self._held.pop(key, None)
            self._makers.pop(key, None)
        context = self._contexts.pop(key, None) if isinstance(key, str) else None
        if state is None:
            return
        patient_id = key if isinstance(key, str) else None
        hooks, problems = self.hooks, self.hooks.problems
        risk: tuple[str, ...] = ()
        if context is not None:
            before = problems.mark()
            risk = tuple(sorted(hooks.risk_factors(context, self.as_of, self.config)))
            if problems.total > before:
                self._plugin_failed(before, patient_id, "risk factors: some of this patient's "
                                    "risk factors may be missing")
        case = PatientCase(patient_id, context, state.findings, risk, self.as_of)
        if self._disabled_classes:
            seen = self._disabled_seen
            for class_id in self._disabled_classes.intersection(case.by_class()):
                seen[class_id] = seen.get(class_id, 0) + 1
        kb, config, reported, alerts = self.kb, self.config, self._reported, self.alerts
        for rule, where in self._rule_calls:
            before = problems.mark()
            try:
                got: list[Alert | Notice] = list(rule.evaluate(case, kb, config))
            except PluginError:
                raise
            except Exception as exc:
                hooks.problem(rule.provider, where, exc)
                got = []
            if problems.total > before:
                self._plugin_failed(before, patient_id, f"{where}: this patient was not "
                                    "checked by it")
            for item in got:
                if isinstance(item, Alert):
                    if item.severity not in reported:
                        self._unreported += 1
                    elif item.monitoring is not None and kept_out(item, config):
                        self._not_due += 1
                    else:
                        alerts.append(item)
                elif isinstance(item, Notice):
                    self._rule_notice(item, patient_id)
                else:
                    hooks.problem(rule.provider, where, TypeError(
                        f"yielded {type(item).__name__}, expected Alert or Notice"))
                    self._plugin_failed(problems.total - 1, patient_id,
                                        f"{where}: some of its results were dropped")

    def _rule_notice(self, notice: Notice, patient_id: str | None) -> None:
        """A rule's remark on an order it checked, listed with the run's notices."""
        if self._listed(notice.kind):
            if notice.patient_id is None and patient_id is not None:
                notice = notice.model_copy(update={"patient_id": patient_id})
            self.notices.append(notice)

    def _plugin_failed(self, before: int, patient_id: str | None, what: str) -> None:
        """Report plugin problems recorded since ``before`` as notices: the failure is
        part of the result (type name only: a plugin's message may hold patient data)."""
        for prob in self.hooks.problems.since(before):
            if self._listed("plugin_error"):
                self.notices.append(Notice(
                    kind="plugin_error", patient_id=patient_id,
                    message=f"plugin {prob.plugin!r} failed in {what} "
                            f"({prob.exc_type or 'error'})"[:1000]))

    def finish(self) -> Report:
        """Finalize every patient still open, deliver to sinks, return the report."""
        with _FEWER_COLLECTIONS:  # many alerts built while many findings are alive
            for key in list(self._patients):
                self._finalize(key)
        self._contexts.clear()
        self._row_contexts.clear()
        self._held.clear()
        self._makers.clear()
        self.notices.extend(self._policy_notices())
        for kind, n in self._notice_counts.items():
            if n > self._notice_limit:
                self.notices.append(
                    Notice(kind=kind,  # type: ignore[arg-type]
                           message=f"{n - self._notice_limit} more {kind} notices not listed "
                                   f"(limit {self._notice_limit} per kind; counts are exact)")
                )
        c = self.counts
        assert c["read"] == c["screened"] + c["skipped"] + c["rejected"]
        report = Report(
            generated_at=datetime.now(timezone.utc),
            b12drugs_version=__version__,
            knowledge_version=self.kb.version,
            sources=tuple(self.sources),
            alerts=tuple(self.alerts),
            notices=tuple(self.notices),
            counts=Counts(**c),
        )
        before = self.hooks.problems.mark()
        self._deliver(report)
        failed = [Notice(kind="plugin_error", message=f"plugin {p.plugin!r} failed in "
                         f"{p.where} ({p.exc_type or 'error'}): alerts were not delivered "
                         "there"[:1000]) for p in self.hooks.problems.since(before)]
        if failed:  # the sinks got the report without these; the caller sees them
            report = report.model_copy(update={"notices": (*report.notices, *failed)})
        self.close()
        return report

    def _policy_notices(self) -> list[Notice]:
        """What the configured policy left out of this report, so that a quiet report
        is not mistaken for a clean one: alerts under ``min_severity``, classes in
        ``disabled_classes`` that patients' orders fell in (and the folate-masking check
        when it is listed there), rules in ``disabled_rules``.  Counts and names from the
        configuration only, no patient data."""
        policy = self.config.policy
        out = []
        if self._unreported:
            out.append(Notice(kind="info", message=(
                f"{self._unreported} alert(s) under the reporting threshold were not "
                f"reported ([policy] min_severity = {policy.min_severity!r})")))
        if self._not_due:
            out.append(Notice(kind="info", message=(
                f"{self._not_due} alert(s) for patients with a normal B12 status result "
                "within the monitoring interval were not reported ([policy.monitoring] "
                "report_not_due = false)")))
        for class_id, patients in sorted(self._disabled_seen.items()):
            out.append(Notice(kind="info", message=(
                f"class {class_id!r} is disabled ([policy] disabled_classes): {patients} "
                "patient(s) with orders in it were not alerted for it")))
        off = [c for c in _PSEUDO_CLASSES if c in self._disabled_classes]
        if off:
            out.append(Notice(kind="info", message=(
                "checks disabled ([policy] disabled_classes), so not applied: "
                + ", ".join(off))))
        if self.runtime.disabled_rules:
            out.append(Notice(kind="info", message=(
                "rules disabled ([policy] disabled_rules), so not applied: "
                + ", ".join(self.runtime.disabled_rules))[:1000]))
        return out

    def close(self) -> None:
        """Close the runtime if this screener built it (a shared one stays open).

        Drugs that could not be resolved because a source was unavailable are dropped
        from the shared cache, so that the next run asks again."""
        outcomes = self.runtime.outcomes
        transient, self._transient = self._transient, []
        for key in transient:
            outcome = self._outcomes.get(key)
            if outcome is not None and outcomes.get(key) is outcome:
                del outcomes[key]
        if self._owns_runtime:
            self.runtime.close()

    def _deliver(self, report: Report) -> None:
        if not self.config.sinks:
            return
        sinks = {s.name: s for s in self.hooks.alert_sinks()}
        for cfg in self.config.sinks:
            sink = sinks.get(cfg.name)
            if sink is None:
                raise PluginError(f"alert sink {cfg.name!r} is not installed "
                                  f"(installed: {', '.join(sorted(sinks)) or 'none'})")
            options = cfg.model_dump(exclude={"name"})
            try:
                deliver = sink.factory(options)
            except (ConfigError, PluginError):
                raise  # a misconfigured sink is a configuration error, not a lost report
            except Exception as exc:
                self.hooks.problem(sink.provider, f"sink {sink.name}", exc)
                continue
            if deliver is not None:
                self.hooks.call_isolated(sink.provider, f"sink {sink.name}",
                                         functools.partial(deliver, report))


#: Not a knowledge-base class, but disabled like one (the folate-masking rule's alerts).
_PSEUDO_CLASSES = ("folate_masking",)


def _check_policy(config: Config, kb: KnowledgeBase, rules: Sequence[Rule]) -> None:
    """A class or rule named in the policy must exist: a typo in ``disabled_classes`` or
    ``long_term_days`` would otherwise silently keep (or change) alerts.

    :raises ConfigError: naming the unknown key and the known ones.
    """
    policy = config.policy
    classes = sorted({*kb.classes, *_PSEUDO_CLASSES})
    for section, keys, known in (
        ("disabled_classes", policy.disabled_classes, classes),
        ("long_term_days", list(policy.long_term_days), sorted(kb.classes)),
        ("monitoring.interval_days", list(policy.monitoring.interval_days), sorted(kb.classes)),
        ("disabled_rules", policy.disabled_rules, sorted(r.name for r in rules)),
    ):
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ConfigError(f"policy.{section}: unknown {', '.join(map(repr, unknown))} "
                              f"(known: {', '.join(known)})")


def _build(resolver: Resolver, config: Config, kb: KnowledgeBase) -> ResolveFn | None:
    """Call a resolver factory with ``(config, knowledge)`` or just ``(config)``."""
    factory = resolver.factory
    try:
        n = len(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        n = 1
    result: ResolveFn | None = factory(config, kb) if n >= 2 else factory(config)
    return result


def _loc(order: Order | OrderRow) -> str | None:
    if type(order) is OrderRow:
        return str(order.location())[:256]
    source = order.source  # type: ignore[union-attr]
    return str(source)[:256] if source is not None else None


def _explain(exc: Exception) -> str:
    """A short reason from a validation error: fields and messages, never values."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'record'}: {e['msg']}"
                         for e in exc.errors()[:3])
    return str(exc)[:500]


# -- convenience API ------------------------------------------------------------


def screen(
    orders: Iterable[Order | Record],
    patient: PatientContext | None = None,
    config: Config | None = None,
    *,
    manager: PluginManager | None = None,
) -> Report:
    """Screen orders (and optionally one patient's context) and return the report.

    Orders without a ``patient_id`` are attributed to ``patient`` when one is given.

    >>> from b12drugs.models import Order, PatientContext
    >>> report = screen([Order(id="rx1", text="metformin 500 mg tablet")],
    ...                 patient=PatientContext(id="p1", age=72))
    >>> [(a.class_id, a.severity) for a in report.alerts]
    [('metformin', 'warning')]
    """
    s = Screener(config, manager)

    def records() -> Iterator[Record]:
        if patient is not None:
            yield patient
        for rec in orders:
            if patient is not None and type(rec) is Order and rec.patient_id is None:
                rec = rec.model_copy(update={"patient_id": patient.id})
            yield rec

    s.feed(records(), "api")
    return s.finish()


def detect_format(
    head: bytes, filename: str, formats: Sequence[InputFormat], hooks: object | None = None
) -> InputFormat | None:
    """The format whose sniffer is most confident (>= 0.5) about ``head``."""
    best: tuple[float, InputFormat] | None = None
    for fmt in formats:
        try:
            score = float(fmt.sniff(head, filename))
        except Exception as exc:  # a broken sniffer must not stop detection
            log.warning("sniffer of format %s failed: %s", fmt.name, type(exc).__name__)
            continue
        if score >= 0.5 and (best is None or score > best[0]):
            best = (score, fmt)
    return best[1] if best else None


def iter_input_files(path: Path) -> Iterator[Path]:
    """Files below a folder, sorted, skipping hidden files and folders."""
    for p in sorted(path.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts):
            yield p


ProgressFn = Callable[[int], None]


class _CountingReader:
    """Binary reader that reports bytes read (for progress bars)."""

    def __init__(self, raw: IO[bytes], progress: ProgressFn):
        self._raw = raw
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._progress(len(data))
        return data

    def readline(self, n: int = -1) -> bytes:
        data = self._raw.readline(n)
        self._progress(len(data))
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = self._raw.readlines(hint)
        self._progress(sum(map(len, lines)))
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __getattr__(self, name: str) -> object:
        return getattr(self._raw, name)


def screen_inputs(
    paths: Sequence[str | Path],
    input_format: str | None = None,
    config: Config | None = None,
    manager: PluginManager | None = None,
    *,
    stdin: IO[bytes] | None = None,
    progress: ProgressFn | None = None,
    screener: Screener | None = None,
) -> Report:
    """Screen files, folders (and ``-`` for stdin) into one report.

    The format of each file is detected from its content unless ``input_format`` is
    given.  A file that cannot be identified or opened is counted as one rejected
    record with a notice; the other inputs are still screened.

    :raises InputError: ``input_format`` names no installed format.
    """
    s = screener or Screener(config, manager)
    formats = s.hooks.input_formats()
    forced = None
    if input_format is not None:
        forced = s.hooks.format_for(input_format)
        if forced is None:
            names = ", ".join(sorted(f.name for f in formats))
            raise InputError(f"unknown input format {input_format!r} (installed: {names})")
    for raw in paths:
        if str(raw) == "-":
            if stdin is None:
                raise InputError("'-' (standard input) given but no stdin stream")
            _screen_stream(s, stdin, "<stdin>", forced, formats, progress)
            continue
        path = Path(raw)
        if path.is_dir():
            dir_fmt = forced if forced and forced.parse_dir else None
            if dir_fmt is None and forced is None:
                dir_fmt = next((f for f in formats if f.sniff_dir and f.sniff_dir(path) >= 0.5),
                               None)
            if dir_fmt is not None and dir_fmt.parse_dir is not None:
                _feed_guarded(s, dir_fmt, functools.partial(dir_fmt.parse_dir, path, str(path)),
                              str(path))
                continue
            files = list(iter_input_files(path))
            if not files:
                _file_rejected(s, str(path), "folder holds no input files")
            for f in files:
                _screen_file(s, f, forced, formats, progress)
            continue
        _screen_file(s, path, forced, formats, progress)
    return s.finish()


def _file_rejected(s: Screener, source: str, reason: str) -> None:
    s._reject(Rejection(location=SourceLocation(file=source[:256]), reason=reason), source)


def _screen_file(
    s: Screener,
    path: Path,
    forced: InputFormat | None,
    formats: Sequence[InputFormat],
    progress: ProgressFn | None,
) -> None:
    source = str(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        _file_rejected(s, source, f"cannot open: {exc.strerror or exc}")
        return
    with fh:
        _screen_stream(s, fh, source, forced, formats, progress)


def _screen_stream(
    s: Screener,
    fh: IO[bytes],
    source: str,
    forced: InputFormat | None,
    formats: Sequence[InputFormat],
    progress: ProgressFn | None,
) -> None:
    buffered: Any = fh if hasattr(fh, "peek") else io.BufferedReader(fh)  # type: ignore[type-var]
    head = buffered.peek(SNIFF_BYTES)[:SNIFF_BYTES]  # type: ignore[attr-defined]
    if not head.strip():
        _file_rejected(s, source, "empty input")
        return
    fmt = forced or detect_format(head, Path(source).name, formats)
    if fmt is None:
        names = ", ".join(sorted(f.name for f in formats))
        _file_rejected(s, source, f"format not recognised (installed formats: {names}); "
                                  "use --input-format")
        return
    stream: IO[bytes] = buffered
    if progress is not None:
        stream = _CountingReader(buffered, progress)  # type: ignore[assignment]
    _feed_guarded(s, fmt, functools.partial(fmt.parse, stream, source), source)


def _feed_guarded(
    s: Screener, fmt: InputFormat, parse: Callable[[], Iterable[Record]], source: str
) -> None:
    """Feed a parser's records; an :class:`InputError` rejects the rest of that input,
    any other exception is a plugin problem; other inputs go on either way."""
    try:
        s.feed(parse(), source)
    except InputError as exc:
        _file_rejected(s, source, str(exc))
    except PluginError:
        raise
    except Exception as exc:
        s.hooks.problem(fmt.provider, f"input format {fmt.name}", exc)
        _file_rejected(s, source, f"the {fmt.name} reader failed ({type(exc).__name__}); "
                                  "records after this point were not read")
