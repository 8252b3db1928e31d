"""The ``ncpdp`` input format's parser: messages in, b12drugs records out.

Each ``Message`` yields its :class:`~b12drugs.models.PatientContext` (birth date, sex,
diagnoses) and then its orders, or a :class:`~b12drugs.models.Skip` with a reason
(CancelRx, transactions without a prescription), or a
:class:`~b12drugs.models.Rejection` whose pointer is ``message N /XPath``.  A
:class:`~b12drugs.models.PatientEnd` follows whenever the next message is about another
patient, so a file of messages grouped by patient screens with flat memory while
consecutive messages of one patient (a NewRx for metformin and one for omeprazole)
are weighed together.

Nothing here logs message content: patient identifiers and drugs stay in the records.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO

from pydantic import ValidationError

from b12drugs.models import PatientEnd, Rejection, Skip, SourceLocation
from b12drugs.records import Record

from .extract import FieldError, read_message
from .xmlstream import DEFAULT_MAX_MESSAGE_BYTES, MessageItem, MessageStream, OtherItem

#: Environment variable overriding the per-message size bound (bytes).
MAX_BYTES_ENV = "B12DRUGS_NCPDP_MAX_MESSAGE_BYTES"


def _max_bytes_from_env() -> int:
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return DEFAULT_MAX_MESSAGE_BYTES


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"invalid value for {where or 'a field'}: {first.get('msg', 'invalid')}"


class NcpdpReader:
    """Streaming SCRIPT reader.  ``max_message_bytes`` bounds one message (default
    10 MiB, or ``$B12DRUGS_NCPDP_MAX_MESSAGE_BYTES``)."""

    def __init__(self, max_message_bytes: int | None = None) -> None:
        self.max_message_bytes = max_message_bytes

    def parse(self, stream: IO[bytes], source: str) -> Iterator[Record]:
        limit = self.max_message_bytes or _max_bytes_from_env()
        file = (source or "")[-256:] or None
        current: str | None = None
        for item in MessageStream(stream, limit):
            if isinstance(item, MessageItem):
                where = SourceLocation(file=file, line=item.line)
                if item.node is None:
                    yield Rejection(
                        location=where.model_copy(update={
                            "pointer": f"message {item.index} {item.xpath or '/Message'}"[:256]}),
                        reason=item.reason
                        or f"message larger than the {limit}-byte limit; not read",
                    )
                    continue
                try:
                    got = read_message(item.node, item.index, where)
                except FieldError as exc:
                    yield Rejection(
                        location=where.model_copy(
                            update={"pointer": f"message {item.index} {exc.xpath}"[:256]}),
                        reason=exc.reason,
                    )
                    continue
                except ValidationError as exc:
                    yield Rejection(
                        location=where.model_copy(
                            update={"pointer": f"message {item.index} /Message"}),
                        reason=_validation_reason(exc)[:2000],
                    )
                    continue
                pid = got.patient.id if got.patient is not None else None
                if pid is not None and current is not None and pid != current:
                    yield PatientEnd(patient_id=current)
                if pid is not None:
                    current = pid
                    yield got.patient  # type: ignore[misc]
                yield from got.records
            elif isinstance(item, OtherItem):
                yield Skip(
                    location=SourceLocation(file=file, line=item.line,
                                            pointer=f"element <{item.name}>"[:256]),
                    reason=f"<{item.name}> in the container is not a SCRIPT Message",
                )
            else:
                pointer = None
                if item.index is not None:
                    pointer = f"message {item.index} {item.xpath or '/Message'}"[:256]
                yield Rejection(
                    location=SourceLocation(file=file, line=item.line, pointer=pointer),
                    reason=item.reason[:2000],
                )
        if current is not None:
            yield PatientEnd(patient_id=current)


def parse(stream: IO[bytes], source: str) -> Iterator[Record]:
    """The registered ``parse`` function (default limits)."""
    return NcpdpReader().parse(stream, source)
