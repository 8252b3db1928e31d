"""Builtin plugin: CSV dispensing exports.

Recognised columns (header names are case-insensitive; aliases in brackets):

==============  ==============================================================
patient_id      patient identifier [patient, patientid, mrn, member_id]
rx_id           order/prescription id [order_id, rx_number, prescription_id, id]
drug_name       drug text as the system prints it [drug, medication, description]
rxcui           RxNorm concept id [rxnorm, rxnorm_code]
ndc             NDC, any layout (normalised to 11 digits) [ndc11, ndc_code]
status          order status (active, stopped, completed, cancelled, ...)
start_date      ISO date the drug was started [fill_date, date_written, written_date]
days_supply     days of supply of this fill [days]
daily_dose_mg   daily dose in mg, when known (used by dose-dependent classes)
birth_date      patient birth date, ISO [dob, date_of_birth]
sex             patient sex
diet            omnivore | vegetarian | vegan
conditions      patient conditions, ``;``-separated text or ``SYSTEM:CODE`` items
==============  ==============================================================

At least one of ``drug_name``, ``rxcui`` and ``ndc`` must be present.  The delimiter
(comma, semicolon, tab or pipe) is taken from the header line.  Each data row becomes
one order; a row that cannot be read (wrong number of fields, a bad date, bytes that
are not UTF-8, an over-long field) becomes a rejection naming ``file:line`` and the
reason, and reading goes on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date
from typing import IO

from pydantic import ValidationError

from ..errors import InputError
from ..hookspecs import hookimpl
from ..models import (
    NDC_SYSTEM,
    RXNORM_SYSTEM,
    Coding,
    Condition,
    Order,
    PatientContext,
    Rejection,
    SourceLocation,
    normalize_ndc,
)
from ..records import InputFormat, Record

ALIASES: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient_id", "patient", "patientid", "mrn", "member_id"),
    "rx_id": ("rx_id", "order_id", "rx_number", "prescription_id", "id"),
    "drug_name": ("drug_name", "drug", "medication", "description", "drug_description"),
    "rxcui": ("rxcui", "rxnorm", "rxnorm_code"),
    "ndc": ("ndc", "ndc11", "ndc_code"),
    "status": ("status", "order_status"),
    "start_date": ("start_date", "fill_date", "date_written", "written_date"),
    "days_supply": ("days_supply", "days"),
    "daily_dose_mg": ("daily_dose_mg",),
    "birth_date": ("birth_date", "dob", "date_of_birth"),
    "sex": ("sex", "gender"),
    "diet": ("diet",),
    "conditions": ("conditions", "diagnoses"),
}
DRUG_COLUMNS = ("drug_name", "rxcui", "ndc")
MAX_LINE_FIELDS = 200


def _columns(header: list[str]) -> dict[str, int]:
    lowered = [h.strip().lower().lstrip("\ufeff") for h in header]
    found: dict[str, int] = {}
    for canon, names in ALIASES.items():
        for name in names:
            if name in lowered:
                found[canon] = lowered.index(name)
                break
    return found


def sniff(head: bytes, filename: str) -> float:
    first = head.split(b"\n", 1)[0].lower()
    if not first or first.lstrip()[:1] in (b"{", b"[", b"<") or first.startswith(b"msh|"):
        return 0.0
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        return 0.0
    delim = _delimiter(text)
    cols = _columns(next(csv.reader([text], delimiter=delim)))
    if any(c in cols for c in DRUG_COLUMNS):
        return 0.9
    if filename.lower().endswith((".csv", ".tsv")):
        return 0.5
    return 0.0


def _delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _decoded_lines(stream: IO[bytes], bad: set[int]) -> Iterator[str]:
    """Decode line by line so one bad byte rejects one row, not the file."""
    for n, raw in enumerate(stream, 1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.add(n)
            yield raw.decode("utf-8", "replace")


def _conditions(value: str) -> tuple[Condition, ...]:
    out = []
    for item in value.split(";"):
        item = item.strip()
        if not item:
            continue
        system, sep, code = item.partition(":")
        if sep and system.lower() in ("snomed", "sct", "icd10", "icd-10", "icd10cm"):
            out.append(Condition(system=system.lower(), code=code.strip()))
        else:
            out.append(Condition(text=item))
    return tuple(out)


def _date(value: str, column: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ValueError(f"{column}: {value[:40]!r} is not an ISO date (YYYY-MM-DD)") from None


def parse(stream: IO[bytes], source: str) -> Iterator[Record]:
    bad: set[int] = set()
    lines = _decoded_lines(stream, bad)
    try:
        first = next(lines)
    except StopIteration:
        raise InputError("empty file", source) from None
    first = first.lstrip("\ufeff")
    delim = _delimiter(first)
    header = next(csv.reader([first], delimiter=delim))
    cols = _columns(header)
    if not any(c in cols for c in DRUG_COLUMNS):
        raise InputError(
            f"no drug column in the header (need one of {', '.join(DRUG_COLUMNS)}; "
            f"found {', '.join(h.strip() for h in header[:20])})",
            f"{source}:1",
        )
    width = len(header)
    reader = csv.reader(lines, delimiter=delim)
    get = {k: cols.get(k) for k in ALIASES}
    i_pid, i_rx, i_drug = get["patient_id"], get["rx_id"], get["drug_name"]
    i_rxcui, i_ndc, i_status = get["rxcui"], get["ndc"], get["status"]
    i_start, i_days, i_dose = get["start_date"], get["days_supply"], get["daily_dose_mg"]
    i_birth, i_sex, i_diet, i_cond = get["birth_date"], get["sex"], get["diet"], get["conditions"]
    has_context = any(i is not None for i in (i_birth, i_sex, i_diet, i_cond))
    last_context: tuple[str, ...] | None = None
    # The reader counts physical lines after the header; a quoted field may span lines,
    # so a row runs from the line after the previous row to the reader's current line.
    prev_line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num + 1
            yield _reject(source, prev_line + 1, f"unreadable CSV row: {exc}")
            prev_line = line
            continue
        start, line = prev_line + 1, reader.line_num + 1
        prev_line = line
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if bad and any(n in bad for n in range(start, line + 1)):
            yield _reject(source, start, "bytes that are not valid UTF-8")
            continue
        if len(row) != width:
            yield _reject(source, start, f"{len(row)} fields, header has {width}")
            continue
        rx_id = row[i_rx].strip() if i_rx is not None else ""
        try:
            codings: list[Coding] = []
            if i_rxcui is not None and row[i_rxcui].strip():
                codings.append(Coding(system=RXNORM_SYSTEM, code=row[i_rxcui].strip()))
            if i_ndc is not None and row[i_ndc].strip():
                try:
                    ndc = normalize_ndc(row[i_ndc])
                except ValueError as exc:
                    raise ValueError(f"ndc: {exc}") from None
                codings.append(Coding(system=NDC_SYSTEM, code=ndc))
            pid = row[i_pid].strip() or None if i_pid is not None else None
            order = Order(
                id=rx_id or f"{source}:{start}",
                patient_id=pid,
                codings=tuple(codings),
                text=(row[i_drug].strip() or None) if i_drug is not None else None,
                status=(row[i_status].strip().lower() or None) if i_status is not None else None,
                start_date=_date(row[i_start].strip(), "start_date") if i_start is not None
                else None,
                days_supply=(row[i_days].strip() or None) if i_days is not None else None,
                daily_dose_mg=(row[i_dose].strip() or None) if i_dose is not None else None,
                source=SourceLocation(file=source, line=start),
            )
            context = None
            if has_context and pid:
                sig = tuple(row[i] if i is not None else "" for i in (i_birth, i_sex, i_diet,
                                                                       i_cond))
                if sig != last_context and any(sig):
                    context = PatientContext(
                        id=pid,
                        birth_date=_date(sig[0].strip(), "birth_date"),
                        sex=sig[1].strip() or None,
                        diet=sig[2].strip().lower() or None,
                        conditions=_conditions(sig[3]),
                        source=SourceLocation(file=source, line=start),
                    )
                    last_context = sig
        except ValidationError as exc:
            yield _reject(source, start, _explain(exc), rx_id)
            continue
        except ValueError as exc:
            yield _reject(source, start, str(exc), rx_id)
            continue
        if context is not None:
            yield context
        yield order


def _explain(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def _reject(source: str, line: int, reason: str, record_id: str | None = None) -> Rejection:
    return Rejection(
        location=SourceLocation(file=source[:256], line=line),
        reason=reason[:500],
        record_id=(record_id or None) and record_id[:256],
    )


@hookimpl(trylast=True)
def b12drugs_input_formats() -> Iterable[InputFormat]:
    return [
        InputFormat(
            name="csv",
            description="CSV dispensing export (columns: patient_id, rx_id, drug_name, rxcui, "
            "ndc, status, start_date, days_supply, birth_date, conditions ...)",
            parse=parse,
            sniff=sniff,
            extensions=(".csv", ".tsv", ".txt"),
        )
    ]
