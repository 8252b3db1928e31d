"""The ``hl7v2`` input format: content sniffing and the streaming file parser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from b12drugs.errors import InputError
from b12drugs.models import Rejection, SourceLocation
from b12drugs.records import Record

from .framing import DEFAULT_MAX_MESSAGE_BYTES, RawMessage, iter_messages
from .message import read_message

#: MSH (or a batch/file header) and a plausible field separator, at the start of the
#: input after an optional BOM, whitespace and MLLP start block.
_HEAD = re.compile(rb"^(?:\xef\xbb\xbf)?[\s\x0b]*(MSH|FHS|BHS)([^A-Za-z0-9\s])")
_MSH_ANYWHERE = re.compile(rb"(?:^|[\r\n\x0b])MSH[^A-Za-z0-9\s]")
EXTENSIONS = (".hl7", ".hl7v2", ".mllp")


def sniff(head: bytes, filename: str) -> float:
    """Confidence that ``head`` (the first bytes of an input) is HL7 v2."""
    m = _HEAD.match(head)
    if m:
        if m.group(1) == b"MSH":
            return 1.0
        return 0.95 if _MSH_ANYWHERE.search(head) else 0.6
    if filename.lower().endswith(EXTENSIONS) and _MSH_ANYWHERE.search(head):
        return 0.5  # e.g. a comment or blank lines before the first message
    return 0.0


def parse(
    stream: IO[bytes], source: str, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> Iterator[Record]:
    """Yield the records of every message in ``stream``, one message at a time.

    Bad messages become :class:`~b12drugs.models.Rejection` records and the rest of the
    input is still read.  Raises :class:`~b12drugs.errors.InputError` only when the
    input holds no HL7 v2 message at all.
    """
    found = False
    pending: list[Record] = []  # stray-content rejections seen before the first message
    for item in iter_messages(stream, max_message_bytes=max_message_bytes):
        if isinstance(item, RawMessage):
            found = True
            if pending:
                yield from pending
                pending.clear()
            yield from read_message(item, source, max_bytes=max_message_bytes).records
        else:
            what = f" (starting {item.sample!r})" if item.sample else ""
            rej = Rejection(
                location=SourceLocation(file=source[:256], line=item.line),
                reason=f"{item.count} line(s) outside any HL7 message{what}: not read",
            )
            if found:
                yield rej
            else:
                pending.append(rej)
    if not found:
        raise InputError("no HL7 v2 message found (no MSH segment)", source)
