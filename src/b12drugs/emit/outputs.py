"""Builtin plugin: output formats ``json`` (the report contract), ``jsonl``, ``table``
and ``html`` (:mod:`b12drugs.emit.html`)."""

from __future__ import annotations

import codecs
import itertools
from collections.abc import Iterable, Iterator
from typing import IO

from pydantic import TypeAdapter

from ..hookspecs import hookimpl
from ..models import Alert, Counts, Notice, Report
from ..records import AlertJson, OutputFormat

_REPORT = TypeAdapter(Report)
_ALERT = TypeAdapter(Alert)
_NOTICE = TypeAdapter(Notice)
_COUNTS = TypeAdapter(Counts)
#: Alerts or notices serialised at a time by :func:`report_json`.
JSON_CHUNK = 1000


def report_json(report: Report, alerts: Iterable[Alert] | None = None) -> Iterator[bytes]:
    """The report as JSON (UTF-8), in pieces: the report's fields indented as
    ``TypeAdapter(Report).dump_json(report, indent=2)`` writes them, and each alert and
    notice in its list on one line of its own (compact).

    Why one line each: a report of a population has tens of thousands of alerts, and a
    line per alert is what ``grep`` and a reader paging through it want; it is also the
    alert's compact JSON, which a spooled run (:class:`~b12drugs.records.AlertJson`)
    already holds, so its alerts are copied, not serialised again.  Why pieces: a
    1,000,000-row run's report is about 60 MiB; written whole it would be a fresh
    allocation of that size, while ``JSON_CHUNK`` items at a time reuse the memory of
    the piece before.

    ``alerts``: the alerts one by one instead of ``report.alerts`` (a spooled run, see
    :class:`~b12drugs.records.OutputFormat`); the bytes are the same.
    """
    rest = _REPORT.dump_json(report.model_copy(update={"alerts": (), "notices": ()}),
                             indent=2)
    lists = [("alerts", alert_json(report.alerts if alerts is None else alerts)),
             ("notices", (_NOTICE.dump_json(n) for n in report.notices))]
    for name, items in lists:
        empty = b'\n  "%s": [],' % name.encode()
        head, found, rest = rest.partition(empty)
        if not found:
            raise RuntimeError(f"pydantic wrote the report without an empty {name} list")
        yield head
        first = True
        while chunk := list(itertools.islice(items, JSON_CHUNK)):
            yield (b'\n  "%s": [\n    ' % name.encode() if first else b",\n    ") \
                + b",\n    ".join(chunk)
            first = False
        yield empty if first else b"\n  ],"
    yield rest


def alert_json(alerts: Iterable[Alert]) -> Iterator[bytes]:
    """Each alert's compact JSON, in order: copied when the alerts come with it
    (:class:`~b12drugs.records.AlertJson`), else written from the models."""
    if isinstance(alerts, AlertJson):
        return alerts.json()
    return (_ALERT.dump_json(a) for a in alerts)


def write_json(report: Report, out: IO[str], alerts: Iterable[Alert] | None = None) -> None:
    """The report as JSON (:func:`report_json`; ``alerts`` as there)."""
    _write(out, itertools.chain(report_json(report, alerts), (b"\n",)))


def write_jsonl(report: Report, out: IO[str], alerts: Iterable[Alert] | None = None) -> None:
    """One alert per line, then one notice per line, then the counts: for pipelines.

    ``alerts``: the alerts one by one instead of ``report.alerts`` (streamed)."""
    def lines() -> Iterator[bytes]:
        for data in alert_json(report.alerts if alerts is None else alerts):
            yield b'{"type":"alert",' + data[1:] + b"\n"
        for notice in report.notices:
            yield b'{"type":"notice",' + _NOTICE.dump_json(notice)[1:] + b"\n"
        yield b'{"type":"counts",' + _COUNTS.dump_json(report.counts)[1:] + b"\n"

    _write(out, lines())


def _write(out: IO[str], pieces: Iterable[bytes]) -> None:
    """UTF-8 pieces to a text stream.  When ``out`` is a UTF-8 text file over a byte
    buffer (a file, usually stdout) they go to the buffer as they are, skipping a decode
    and an encode of the whole report (a tenth of a second per 40,000 alerts)."""
    buffer = getattr(out, "buffer", None)
    if buffer is not None and _is_utf8(getattr(out, "encoding", None)):
        out.flush()
        for piece in pieces:
            buffer.write(piece)
        buffer.flush()
    else:
        for piece in pieces:
            out.write(piece.decode())


def _is_utf8(encoding: str | None) -> bool:
    try:
        return encoding is not None and codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _stream_json(report: Report, alerts: Iterable[Alert], out: IO[str]) -> None:
    write_json(report, out, alerts)


def _stream_jsonl(report: Report, alerts: Iterable[Alert], out: IO[str]) -> None:
    write_jsonl(report, out, alerts)


_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


def write_table(report: Report, out: IO[str]) -> None:
    """A readable terminal view (rich); colours only when ``out`` is a terminal."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Every cell is a Text (never markup): drug names, ids and messages come from input
    # files, and "[/red]" in a drug name must print as it is, not break the output.
    def cell(value: str, style: str = "") -> Text:
        return Text(value, style=style)

    console = Console(file=out, width=max(100, Console(file=out).width), soft_wrap=False)
    if report.alerts:
        table = Table(title=f"B12 alerts ({len(report.alerts)})", show_lines=True)
        for col in ("severity", "patient", "class", "drugs", "orders", "summary"):
            table.add_column(col, overflow="fold")
        for a in report.alerts:
            table.add_row(cell(a.severity, _STYLE[a.severity]), cell(a.patient_id or "-"),
                          cell(a.class_id), cell(", ".join(a.drugs)),
                          cell(", ".join(a.orders)), cell(a.summary))
        console.print(table)
    else:
        console.print("No B12 alerts.")
    if report.notices:
        nt = Table(title=f"Notices ({len(report.notices)})")
        for col in ("kind", "where", "message"):
            nt.add_column(col, overflow="fold")
        for n in report.notices:
            where = n.location or n.order_id or n.source or "-"
            nt.add_row(cell(n.kind), cell(where), cell(n.message))
        console.print(nt)
    c = report.counts
    console.print(f"read {c.read}: screened {c.screened}, skipped {c.skipped}, "
                  f"rejected {c.rejected}", highlight=False)


@hookimpl(trylast=True)
def b12drugs_output_formats() -> Iterable[OutputFormat]:
    return [
        OutputFormat("table", "readable table for a terminal", write_table),
        OutputFormat("json", "the JSON report (schema_version, alerts, notices, counts)",
                     write_json, "application/json", write_stream=_stream_json),
        OutputFormat("jsonl", "one JSON object per alert/notice line, then counts",
                     write_jsonl, "application/x-ndjson", write_stream=_stream_jsonl),
        OutputFormat("html", "one self-contained HTML page: charts, sortable alert table, "
                     "notices, accounting", _write_html, "text/html"),
    ]


def _write_html(report: Report, out: IO[str]) -> None:
    from .html import write_html  # imported when used: the page's CSS and JS are large

    write_html(report, out)
