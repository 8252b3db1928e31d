"""The record engine: screens what arrives one message or request at a time.

HL7 v2 messages, NCPDP transactions, FHIR bundles and CDS Hooks calls are screened
record by record: every order is looked at once, its drug resolved (the new drugs of
each chunk of records together, so that resolvers can batch them; each distinct drug
once per run), and the orders with class hits kept per patient until the patient is
complete.  At the end (or when a parser says a patient is complete,
:class:`~b12drugs.models.PatientEnd`) each patient with findings is handed to the shared
assess layer (:class:`~b12drugs.assess.case.Assessor`).

Memory grows with the patients that are open, with their contexts and with alerts, not
with rows: patients without any B12-relevant order keep only their context, which a
:class:`PatientEnd` frees.  Tables go to the columnar engine (:mod:`.columnar`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from ..assess.case import Assessor
from ..config import Config
from ..errors import PluginError
from ..knowledge import KnowledgeBase
from ..models import (
    INACTIVE_STATUSES,
    Alert,
    Coding,
    DrugQuery,
    Notice,
    Order,
    PatientContext,
    PatientEnd,
    Rejection,
    Report,
    Skip,
)
from ..plugins import PluginManager
from ..records import OrderFindings, Record
from ..resolve.chain import Outcome
from .books import DEFAULT_NOTICE_LIMIT, Books
from .runtime import Runtime

log = logging.getLogger(__name__)

#: Records per chunk: the new drugs of a chunk are resolved together.
CHUNK = 512
#: Completed patients remembered, to report records that arrive after their PatientEnd.
COMPLETED_LIMIT = 100_000

_DrugKey = tuple[tuple[Coding, ...], str | None]


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
        self.as_of = self.config.as_of()
        self.books = Books(notice_limit)
        self.assessor = Assessor(self.hooks, self.kb, runtime.rules, self.config, self.as_of)
        self.alerts: list[Alert] = []
        # this run's drugs, by the order's own key (codings, text): no query per order
        self._outcomes: dict[_DrugKey, Outcome] = {}
        self._patients: dict[object, list[OrderFindings]] = {}
        self._contexts: dict[str, PatientContext] = {}
        # patients a parser said are complete -> whether a late record was reported
        self._completed: dict[str, bool] = {}

    @property
    def counts(self) -> dict[str, int]:
        return self.books.counts

    @property
    def notices(self) -> list[Notice]:
        return self.books.notices

    def outcome_of(self, codings: tuple[Coding, ...], text: str | None) -> Outcome | None:
        """What this run resolved an active order's drug to (None if it saw no such
        order): lets a caller tell which orders were of a B12 class."""
        return self._outcomes.get((codings, text))

    # -- feeding -----------------------------------------------------------------
    def feed(self, records: Iterable[Record], source: str = "") -> None:
        """Screen a stream of records from one source (a file name, a message id)."""
        self.books.source(source)
        chunk: list[Record] = []
        for rec in records:
            chunk.append(rec)
            if len(chunk) == CHUNK:
                self._process(chunk, source)
                chunk = []
        if chunk:
            self._process(chunk, source)

    def _process(self, chunk: list[Record], source: str) -> None:
        """Screen one chunk of records, in order, after resolving its new drugs."""
        self._resolve_new(chunk)
        for rec in chunk:
            kind = type(rec)
            if kind is Order:
                self._order(rec, source)  # type: ignore[arg-type]
            elif kind is PatientContext:
                ctx: PatientContext = rec  # type: ignore[assignment]
                if ctx.id in self._completed:
                    self._late(ctx.id, source)
                self._add_context(ctx)
            elif kind is Rejection:
                self.books.reject(rec, source)  # type: ignore[arg-type]
            elif kind is Skip:
                sk: Skip = rec  # type: ignore[assignment]
                self.books.skip(sk.reason, source, order_id=sk.record_id,
                                location=str(sk.location))
            elif kind is PatientEnd:
                pid: str = rec.patient_id  # type: ignore[union-attr,assignment]
                self._finalize(pid)
                self._complete(pid)
            elif kind is Notice:
                # A parser's remark about a record it still screened (e.g. a bad birth
                # date ignored): reported, not counted as a record.
                note: Notice = rec  # type: ignore[assignment]
                self.books.notice(note if note.source else note.model_copy(
                    update={"source": source or None}))
            else:
                raise PluginError(
                    f"input parser for {source or 'input'} yielded {kind.__name__}, "
                    "expected Order, PatientContext, Rejection, Skip, PatientEnd or Notice")

    def _resolve_new(self, chunk: list[Record]) -> None:
        """Resolve the distinct drugs of the chunk's active orders not seen in this run."""
        known = self._outcomes
        new: dict[_DrugKey, DrugQuery] = {}
        for rec in chunk:
            if type(rec) is Order and not _inactive(rec.status):
                key = (rec.codings, rec.text)
                if key not in known and key not in new:
                    new[key] = DrugQuery.from_parts(*key)
        if new:
            got = self.runtime.resolve(list(new.values()))
            for key, q in new.items():
                known[key] = got[q]

    def _order(self, order: Order, source: str) -> None:
        books = self.books
        if _inactive(order.status):
            books.counts["read"] += 1
            books.counts["skipped"] += 1
            if books.listed("skipped"):
                books.notices.append(skipped_notice(order, source))
            return
        outcome = self._outcomes[order.codings, order.text]
        books.counts["read"] += 1
        books.counts["screened"] += 1
        if outcome.plain:
            return
        for n in order_notices(order, outcome, source, books):
            books.notices.append(n)
        if outcome.hits:
            key: object = order.patient_id or ("order", source, order.id)
            findings = self._patients.get(key)
            if findings is None:
                if key in self._completed:
                    self._late(key, source)  # type: ignore[arg-type]
                findings = self._patients[key] = []
            findings.append(OrderFindings(order, outcome.hits, source))

    # -- patients ---------------------------------------------------------------
    def _add_context(self, ctx: PatientContext) -> None:
        old = self._contexts.get(ctx.id)
        if old is None:
            self._contexts[ctx.id] = ctx
        elif old != ctx:
            self._contexts[ctx.id] = old.merged(ctx)

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
        if self.books.listed("info"):
            self.books.notices.append(Notice(
                kind="info", patient_id=patient_id, source=source or None,
                message="records for this patient arrived after the patient was completed: "
                        "screened separately"))

    def _finalize(self, key: object) -> None:
        findings = self._patients.pop(key, None)
        context = self._contexts.pop(key, None) if isinstance(key, str) else None
        if findings is None:
            return
        result = self.assessor.assess(key if isinstance(key, str) else None, context, findings)
        self.alerts.extend(result.alerts)
        self.books.case(result)

    def finish(self) -> Report:
        """Finalize every patient still open, deliver to sinks, return the report."""
        from ..emit.delivery import deliver

        try:
            for key in list(self._patients):
                self._finalize(key)
            self._contexts.clear()
            self.books.close(self.config, self.runtime.disabled_rules)
            report = self.books.report(self.kb.version, tuple(self.alerts))
            return deliver(report, self.config, self.hooks)
        finally:
            self.close()

    def close(self) -> None:
        """Close the runtime if this screener built it (a shared one stays open)."""
        if self._owns_runtime:
            self.runtime.close()


def _inactive(status: str | None) -> bool:
    return status is not None and status.lower() in INACTIVE_STATUSES


def skipped_notice(order: Order, source: str) -> Notice:
    """The notice of an inactive order (both engines word it alike)."""
    return Notice(kind="skipped", message=f"status {order.status!r}: inactive orders are "
                  "not screened", order_id=order.id, patient_id=order.patient_id,
                  location=_loc(order), source=source or None)


def order_notices(order: Order, outcome: Outcome, source: str, books: Books,
                  ) -> Iterator[Notice]:
    """The notices of a screened order whose drug has something to say, those still to
    be listed (each counted in ``books``): the resolvers' notices, then "unresolved"."""
    for n in outcome.notices:
        if books.listed(n.kind):
            yield n.model_copy(update={"order_id": order.id, "patient_id": order.patient_id,
                                       "source": source or None})
    if not outcome.resolved and books.listed("unresolved"):
        yield Notice(kind="unresolved",
                     message=f"drug not recognised ({outcome.description}): "
                             "it was NOT checked for B12 risk",
                     order_id=order.id, patient_id=order.patient_id, location=_loc(order),
                     source=source or None)


def _loc(order: Order) -> str | None:
    return str(order.source)[:256] if order.source is not None else None


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
