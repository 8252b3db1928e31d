"""Builtin plugin: CSV laboratory results (``labs``), read beside dispensing files.

A labs file gives each patient's B12 status results, so that alerts know when the last
test was and what it said (:mod:`b12drugs.assess.monitoring`)::

    patient_id,code,value,unit,date,interpretation
    p1,2132-9,450,pg/mL,2026-09-20,N
    p2,13964-2,0.52,umol/L,2026-10-02,H

Recognised columns (case-insensitive; aliases in brackets):

==============  ==============================================================
patient_id      patient identifier [patient, patientid, mrn, member_id]
code            LOINC code of the test [loinc, loinc_code, test_code]
test            test name, used when the code is not a known LOINC code
                [test_name, name, description]
value           numeric result; a leading ``<`` or ``>`` is dropped [result]
unit            unit as the lab writes it (pg/mL, ng/L, pmol/L, nmol/L, umol/L ...)
date            ISO date (or date-time) the sample was taken [result_date,
                collection_date, effective_date, observed]
interpretation  optional flag: L, LL, H, HH, N, low, normal, high, borderline
                [flag, abnormal_flag, interp]
==============  ==============================================================

The sniffer claims a file whose header has ``patient_id``, a code column, ``value``,
``unit`` and ``date`` and no drug column (``drug_name``, ``rxcui``, ``ndc``): a
dispensing export stays with the ``csv`` format.  Each patient's consecutive rows become
one :class:`~b12drugs.models.PatientContext` holding their labs (the engine merges it
with the same patient's orders from the other inputs).  A row that cannot be read (no
patient, a bad date or number, wrong field count) is a rejection naming ``file:line``;
rows of tests that are not B12 status tests or folate (an HbA1c in a general lab export)
are not used, and one notice at the end says how many.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import date
from typing import IO

from pydantic import ValidationError

from ..errors import InputError
from ..hookspecs import hookimpl
from ..labcodes import flag, kind_of
from ..models import LabResult, Notice, PatientContext, Rejection, SourceLocation
from ..records import InputFormat, Record
from .columns import delimiter, header_columns

ALIASES: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient_id", "patient", "patientid", "mrn", "member_id"),
    "code": ("code", "loinc", "loinc_code", "test_code"),
    "test": ("test", "test_name", "name", "description"),
    "value": ("value", "result"),
    "unit": ("unit", "units"),
    "date": ("date", "result_date", "collection_date", "effective_date", "observed"),
    "interpretation": ("interpretation", "flag", "abnormal_flag", "interp"),
}
REQUIRED = ("patient_id", "code", "value", "unit", "date")
#: Headers that make a file a dispensing export, not a labs file.
DRUG_HEADERS = frozenset({"drug_name", "drug", "medication", "rxcui", "rxnorm", "ndc",
                          "ndc11", "rx_id", "rx_number"})
MAX_FIELD = 256


def _columns(header: list[str]) -> dict[str, int]:
    return header_columns(header, ALIASES)


def _header(line: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter(line)))
    except (csv.Error, StopIteration):
        return []


def sniff(head: bytes, filename: str) -> float:
    first = head.split(b"\n", 1)[0]
    try:
        text = first.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        return 0.0
    if not text or text[:1] in "{[<" or text.lower().startswith("msh|"):
        return 0.0
    header = _header(text)
    names = {h.strip().lower() for h in header}
    cols = _columns(header)
    if names & DRUG_HEADERS or not all(c in cols for c in REQUIRED):
        return 0.0
    return 0.95


def _date(value: str) -> date:
    return date.fromisoformat(value.strip()[:10])


def _number(value: str) -> float | None:
    raw = value.strip().lstrip("<>=").strip().replace(",", ".") if value.strip() else ""
    if not raw:
        return None
    number = float(raw)
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise ValueError(f"value {value!r} is not a usable number")
    return number


def parse(stream: IO[bytes], source: str) -> Iterator[Record]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    try:
        first = text.readline()
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc}", f"{source}:1") from None
    header = _header(first.rstrip("\r\n"))
    cols = _columns(header)
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise InputError(f"a labs file needs the columns {', '.join(REQUIRED)}; missing "
                         f"{', '.join(missing)}", f"{source}:1")
    width = len(header)
    reader = csv.reader(text, delimiter=delimiter(first))
    where = source[:256]
    current: str | None = None
    labs: list[LabResult] = []
    first_line = 0
    other = 0
    line = 1
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except (csv.Error, UnicodeDecodeError) as exc:
            stuck = reader.line_num + 1 <= line or isinstance(exc, UnicodeDecodeError)
            line = max(line + 1, reader.line_num + 1)
            yield Rejection(location=SourceLocation(file=where, line=line),
                            reason=f"unreadable line: {exc}"[:500])
            if stuck:  # the reader cannot go past it (bytes that are not UTF-8)
                yield Rejection(location=SourceLocation(file=where, line=line),
                                reason="the rest of the file was not read")
                break
            continue
        line = reader.line_num + 1
        if not any(f.strip() for f in row):
            continue
        loc = SourceLocation(file=where, line=line)
        if len(row) != width:
            yield Rejection(location=loc, reason=f"{len(row)} fields, header has {width}")
            continue
        if any(len(f) > MAX_FIELD for f in row):
            yield Rejection(location=loc, reason=f"a field is longer than {MAX_FIELD} characters")
            continue
        pid = row[cols["patient_id"]].strip()
        if not pid:
            yield Rejection(location=loc, reason="no patient_id")
            continue
        code = row[cols["code"]].strip()
        name = row[cols["test"]].strip() if "test" in cols else ""
        kind = kind_of(code, name)
        if kind is None:
            other += 1
            continue
        try:
            lab = LabResult(
                kind=kind,
                value=_number(row[cols["value"]]),
                unit=row[cols["unit"]].strip() or None,
                code=code or None,
                date=_date(row[cols["date"]]),
                interpretation=(flag(row[cols["interpretation"]])
                                if "interpretation" in cols else None),
            )
        except (ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0] if not isinstance(exc, ValidationError) \
                else "; ".join(str(e["msg"]) for e in exc.errors()[:2])
            yield Rejection(location=loc, reason=reason[:500], record_id=pid)
            continue
        if pid != current:
            if current is not None and labs:
                yield _context(current, labs, where, first_line)
            current, labs, first_line = pid, [], line
        if lab not in labs:
            labs.append(lab)
    if current is not None and labs:
        yield _context(current, labs, where, first_line)
    if other:
        yield Notice(kind="info", source=where or None,
                     message=f"{other} lab row(s) of tests that are not B12 status tests "
                             "(serum B12, holotranscobalamin, methylmalonic acid, "
                             "homocysteine) or folate were not used")


def _context(pid: str, labs: list[LabResult], where: str, line: int) -> PatientContext:
    return PatientContext(id=pid, labs=tuple(labs),
                          source=SourceLocation(file=where, line=line))


@hookimpl(trylast=True)
def b12drugs_input_formats() -> Iterable[InputFormat]:
    return [
        InputFormat(
            name="labs",
            description="CSV laboratory results (patient_id, code/loinc, value, unit, date, "
            "optional interpretation): B12 status tests read beside dispensing files",
            parse=parse,
            sniff=sniff,
            extensions=(".csv", ".tsv", ".txt"),
            # patient context for the columnar engine as well (it takes the records)
            read_table=parse,
        )
    ]
