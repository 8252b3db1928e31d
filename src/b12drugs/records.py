"""Typed records that registration hooks return.

Registration hooks take no arguments and return (or yield) these records; the plugin
manager stamps each with the plugin that provided it, so conflicts and failures can
name their providers.  They are frozen dataclasses rather than pydantic models
because they carry callables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from .models import (
    Alert,
    ClassHit,
    DrugQuery,
    Notice,
    Order,
    PatientContext,
    PatientEnd,
    Rejection,
    Report,
    Resolution,
    Skip,
)

if TYPE_CHECKING:
    from .config import Config
    from .knowledge import ClassDef, KBEntry, KnowledgeBase
    from .read.tabular import TableBatch

#: What an input parser yields.
Record = Order | PatientContext | Rejection | Skip | PatientEnd | Notice


#: ``parse(stream, source_name)``: read a binary stream, yield records.  Must not raise
#: for bad content: yield :class:`~b12drugs.models.Rejection` and go on.  May raise
#: :class:`~b12drugs.errors.InputError` when the whole input is unreadable.  A ``Notice``
#: reports something about a record that was still screened (e.g. an ignored bad date).
ParseFn = Callable[[IO[bytes], str], Iterator[Record]]

#: ``sniff(head, filename)``: a confidence from 0 (not mine) to 1 (certainly mine),
#: given the first bytes (up to 64 KiB) of the input and its file name.
SniffFn = Callable[[bytes, str], float]

#: ``resolve(queries)``: answers for the queries it can resolve; leave a query out
#: (or answer ``resolved=False``) to pass it on to the next resolver.
ResolveFn = Callable[[Sequence[DrugQuery]], Mapping[DrugQuery, Resolution]]


#: ``sniff_dir(path)``: confidence that a folder is one input of this format (e.g. a
#: FHIR Bulk Data export); ``parse_dir(path, source)`` reads the whole folder.
SniffDirFn = Callable[[Path], float]
ParseDirFn = Callable[[Path, str], Iterator[Record]]

#: ``read_table(stream, source_name)``: a tabular format's rows as checked batches of
#: columns (:class:`~b12drugs.read.tabular.TableBatch`, in the layout of
#: :data:`~b12drugs.read.tabular.ORDER_SCHEMA`), and notices; what the columnar engine
#: reads.  Same duties as ``parse``: bad rows keep their place with a reason.  It may
#: also yield ``PatientContext``, ``Rejection`` and ``Skip`` records (a labs file).
#: The columnar engine consumes the iterator from a background thread, one or two
#: batches ahead of its screening (:mod:`b12drugs.engines.ahead`); it is never consumed
#: from two threads at once.
ReadTableFn = Callable[[IO[bytes], str], Iterator["TableBatch | Record"]]


@dataclass(frozen=True)
class InputFormat:
    """An input format: a name, a content sniffer and a streaming parser.

    Formats whose unit is a folder (FHIR Bulk Data export) also set ``sniff_dir`` and
    ``parse_dir``; other folders are expanded into their files, each sniffed alone.
    Tabular formats (CSV, Parquet, JSON Lines orders) also set ``read_table``: such
    inputs are screened by the columnar engine, which reads them as batches of columns.
    """

    name: str
    description: str
    parse: ParseFn
    sniff: SniffFn
    extensions: tuple[str, ...] = ()
    sniff_dir: SniffDirFn | None = None
    parse_dir: ParseDirFn | None = None
    provider: str = ""
    read_table: ReadTableFn | None = None


@runtime_checkable
class AlertJson(Protocol):
    """Alerts given one by one that also have each alert's compact JSON at hand
    (``json()``, in the same order): the columnar engine keeps its alerts that way, and a
    writer of JSON copies those bytes instead of serialising every model again."""

    def __iter__(self) -> Iterator[Alert]: ...

    def json(self) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class OutputFormat:
    """An output format: writes a finished report to a text stream.

    ``write_stream(report, alerts, out)``, when set, writes the same output with the
    alerts given one by one (in report order) instead of in ``report.alerts``: the
    columnar engine keeps a large run's alerts on disk, and a writer that streams them
    writes a report of millions of alerts in bounded memory.  ``alerts`` may be an
    :class:`AlertJson`; iterating it gives the models either way.
    """

    name: str
    description: str
    write: Callable[[Report, IO[str]], None]
    media_type: str = "text/plain"
    provider: str = ""
    write_stream: Callable[[Report, Iterable[Alert], IO[str]], None] | None = None


@dataclass(frozen=True)
class Resolver:
    """A step of the resolution chain.

    ``factory(config[, knowledge])`` builds the resolve function for one run (or
    returns ``None`` when the resolver is disabled by that config).  The core walks resolvers in
    ascending ``order`` and stops, per query, at the first resolved answer.  Builtins
    use: knowledge base 100, local RxNorm index 200, RxNav 300.  ``close`` releases
    sessions and files at the end of a run.
    """

    name: str
    order: int
    #: ``factory(config)`` or ``factory(config, knowledge)`` (the merged knowledge base).
    factory: Callable[..., ResolveFn | None]
    description: str = ""
    provider: str = ""


@dataclass(frozen=True)
class Knowledge:
    """Extra knowledge from a plugin: class definitions and ingredient rows."""

    name: str
    classes: tuple[ClassDef, ...] = ()
    entries: tuple[KBEntry, ...] = ()
    provider: str = ""


@dataclass(slots=True)
class OrderFindings:
    """One screened order and the class hits of its ingredients."""

    order: Order
    hits: tuple[ClassHit, ...]
    source: str = ""


@dataclass
class PatientCase:
    """Everything a rule sees about one patient at the end of screening."""

    patient_id: str | None
    context: PatientContext | None
    findings: list[OrderFindings] = field(default_factory=list)
    risk_factors: tuple[str, ...] = ()
    as_of: date = field(default_factory=date.today)
    _groups: dict[str, list[OrderFindings]] | None = field(
        default=None, init=False, repr=False, compare=False)

    def by_class(self) -> dict[str, list[OrderFindings]]:
        """The findings grouped by class id (or role), each finding once per class, in
        order.  Worked out once per case: every rule starts from it.  Treat as read-only."""
        groups = self._groups
        if groups is None:
            groups = self._groups = {}
            for f in self.findings:
                for h in f.hits:
                    group = groups.setdefault(h.class_id, [])
                    if not group or group[-1] is not f:
                        group.append(f)
        return groups


#: ``evaluate(case, knowledge, config)`` yields alerts for one patient, and notices for
#: orders it checked and deliberately did not alert.
RuleFn = Callable[[PatientCase, "KnowledgeBase", "Config"], Iterable[Alert | Notice]]


@dataclass(frozen=True)
class Rule:
    """An alert rule.  All enabled rules run for each patient; their alerts are merged."""

    name: str
    description: str
    evaluate: RuleFn
    provider: str = ""


@dataclass(frozen=True)
class AlertSink:
    """Somewhere alerts are delivered besides the report (a file, a queue, a vendor API).

    ``factory(options)`` returns a callable that receives each finished report.
    """

    name: str
    description: str
    factory: Callable[[Mapping[str, Any]], Callable[[Report], None]]
    provider: str = ""

