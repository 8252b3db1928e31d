"""Builtin plugin: JSON Lines and JSON of b12drugs' own models.

``jsonl``: one object per line; ``"record": "patient"`` makes a
:class:`~b12drugs.models.PatientContext`, anything else (or ``"record": "order"``) an
:class:`~b12drugs.models.Order`::

    {"record": "patient", "id": "p1", "birth_date": "1950-01-01"}
    {"record": "order", "id": "rx1", "patient_id": "p1", "text": "metformin 500 mg"}

``json``: one document ``{"patients": [...], "orders": [...]}`` (or a single
``"patient"``).  Bad lines/items become rejections naming line or JSON pointer.  A
record's location is where the reader found it (a ``source`` field in the input is
replaced).

JSON Lines are tabular for the columnar engine (:func:`read_batches`): each line is
checked by the same models as for the record engine, and the orders are handed on as
batches of columns, their codings as JSON; patients go on as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from pydantic import ValidationError

from ..errors import InputError
from ..hookspecs import hookimpl
from ..models import Order, PatientContext, Rejection, SourceLocation
from ..records import InputFormat, Record

MAX_LINE = 1 << 20


def _explain(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()[:3]
    )


def _record(obj: Any, loc: SourceLocation) -> Record:
    if not isinstance(obj, dict):
        return Rejection(location=loc, reason=f"expected a JSON object, got {type(obj).__name__}")
    data = dict(obj)
    kind = data.pop("record", "order")
    try:
        if kind == "patient":
            return PatientContext.model_validate({**data, "source": loc.model_dump()})
        if kind == "order":
            return Order.model_validate({**data, "source": loc.model_dump()})
    except ValidationError as exc:
        rid = data.get("id") if isinstance(data.get("id"), str) else None
        return Rejection(location=loc, reason=_explain(exc), record_id=rid and rid[:256])
    return Rejection(location=loc, reason=f"unknown record kind {str(kind)[:40]!r}")


def _bounded_lines(stream: IO[bytes]) -> Iterator[tuple[bytes, bool]]:
    """``(line, too long?)`` per physical line, never holding more than ``MAX_LINE + 1``
    bytes of one: the rest of an over-long line is read in pieces and dropped."""
    while raw := stream.readline(MAX_LINE + 1):
        if len(raw) <= MAX_LINE or raw.endswith(b"\n"):
            yield raw, False
            continue
        while (rest := stream.readline(MAX_LINE + 1)) and not rest.endswith(b"\n"):
            pass
        yield b"", True


def parse_jsonl(stream: IO[bytes], source: str) -> Iterator[Record]:
    for n, (raw, too_long) in enumerate(_bounded_lines(stream), 1):
        loc = SourceLocation(file=source[:256], line=n)
        if too_long:
            yield Rejection(location=loc, reason=f"line longer than {MAX_LINE} bytes")
            continue
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            yield Rejection(location=loc, reason=f"invalid JSON: {exc}"[:300])
            continue
        yield _record(obj, loc)


#: Orders per batch handed to the columnar engine.
BATCH_ROWS = 50_000


def read_batches(stream: IO[bytes], source: str) -> Iterator[Any]:
    """JSON Lines as the columnar engine reads them: orders and rejections as batches
    of rows (:class:`~b12drugs.read.tabular.TableBatch`), patients as they are."""
    import polars as pl

    from .tabular import ORDER_SCHEMA, TableBatch

    rows: list[dict[str, Any]] = []

    def batch() -> TableBatch:
        frame = pl.DataFrame(rows, schema=ORDER_SCHEMA)
        rows.clear()
        return TableBatch(frame, source)

    for rec in parse_jsonl(stream, source):
        if isinstance(rec, Order):
            rows.append(_row(rec))
        elif isinstance(rec, Rejection):
            rows.append({"_line": rec.location.line, "_reject": rec.reason,
                         "_rid": rec.record_id})
        else:
            yield rec
        if len(rows) == BATCH_ROWS:
            yield batch()
    if rows:
        yield batch()


def _row(order: Order) -> dict[str, Any]:
    codings = None
    if order.codings:
        codings = json.dumps([c.model_dump(exclude_none=True) for c in order.codings])
    return {"id": order.id, "patient_id": order.patient_id, "text": order.text,
            "codings": codings, "status": order.status, "start_date": order.start_date,
            "days_supply": order.days_supply, "daily_dose_mg": order.daily_dose_mg,
            "route": order.route, "dose": order.dose, "strength": order.strength,
            "frequency": order.frequency,
            "_line": order.source.line if order.source is not None else None}


def parse_json(stream: IO[bytes], source: str) -> Iterator[Record]:
    try:
        doc = json.load(stream)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"invalid JSON: {exc}", source) from None
    if not isinstance(doc, dict):
        raise InputError("expected a JSON object with 'patients' and 'orders'", source)
    patients = doc.get("patients", [])
    if "patient" in doc:
        patients = [doc["patient"], *patients]
    for key, items, kind in (("patients", patients, "patient"),
                             ("orders", doc.get("orders", []), "order")):
        if not isinstance(items, list):
            yield Rejection(location=SourceLocation(file=source[:256], pointer=f"/{key}"),
                            reason=f"'{key}' must be a list")
            continue
        for i, item in enumerate(items):
            loc = SourceLocation(file=source[:256], pointer=f"/{key}/{i}")
            yield _record({"record": kind, **item} if isinstance(item, dict) else item, loc)


def _first_json(head: bytes) -> Any:
    line = head.lstrip().split(b"\n", 1)[0]
    try:
        return json.loads(line)
    except ValueError:
        return None


def sniff_jsonl(head: bytes, filename: str) -> float:
    obj = _first_json(head)
    if isinstance(obj, dict) and "resourceType" not in obj and (
        "record" in obj or "text" in obj or "codings" in obj
    ):
        return 0.8
    return 0.0


def sniff_json(head: bytes, filename: str) -> float:
    start = head.lstrip()[:200]
    if start.startswith(b"{") and (b'"orders"' in head or b'"patients"' in head) and (
        b'"resourceType"' not in head[:2000]
    ):
        return 0.7
    return 0.0


@hookimpl(trylast=True)
def b12drugs_input_formats() -> Iterable[InputFormat]:
    return [
        InputFormat("jsonl", "JSON Lines of b12drugs orders and patients", parse_jsonl,
                    sniff_jsonl, (".jsonl", ".ndjson"), read_table=read_batches),
        InputFormat("json", "JSON document {patients: [...], orders: [...]}", parse_json,
                    sniff_json, (".json",)),
    ]
