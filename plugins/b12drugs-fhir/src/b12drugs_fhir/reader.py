"""The ``fhir`` input format for one file or stream: sniffing and parsing.

One input is either a JSON *document* (a Bundle or a single resource, possibly
pretty-printed) or *NDJSON* (one resource or Bundle per line, as FHIR Bulk Data writes
it).  It is NDJSON when its first non-blank line is a complete JSON object by itself
(``{`` ... ``}``); otherwise a document.  A gzip-compressed input is decompressed
transparently.

Memory: a document is held whole (bounded by :data:`MAX_DOCUMENT_BYTES`); NDJSON is
streamed line by line (each line bounded by :data:`MAX_LINE_BYTES`), so a file of
10,000 bundles screens with flat memory.

Errors: a document that is not JSON, or not a FHIR resource, is an
:class:`~b12drugs.errors.InputError` naming line and column; in NDJSON each bad line is
a :class:`~b12drugs.models.Rejection` naming its line and the rest is read.  A broken
first line of what is evidently NDJSON (later lines are resources) does not stop the
file either.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from typing import IO, Any

from b12drugs.errors import InputError
from b12drugs.models import Rejection, SourceLocation
from b12drugs.records import Record

from .convert import records_from_resource
from .fields import json_type

MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


def _gunzip_head(head: bytes) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 65536)
    except zlib.error:
        return b""


def sniff(head: bytes, filename: str) -> float:
    """Confidence that ``head`` starts a FHIR JSON document or NDJSON file."""
    if head[:2] == _GZIP_MAGIC:
        head = _gunzip_head(head)
    text = head.removeprefix(_BOM).lstrip()
    if not text.startswith(b"{") or b'"resourceType"' not in head:
        return 0.0
    return 0.95


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (to look for gzip magic)."""

    def __init__(self, prefix: bytes, rest: IO[bytes]):
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def _open(stream: IO[bytes]) -> IO[bytes]:
    head = stream.read(2)
    raw = io.BufferedReader(_Prefixed(head, stream), buffer_size=1 << 16)
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def _read_line(stream: IO[bytes]) -> tuple[bytes, bool]:
    """One line (bounded); ``(b"", False)`` at end.  The flag says the line was too long
    (its remainder has been consumed)."""
    line = stream.readline(MAX_LINE_BYTES + 1)
    if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
        return line, False
    while True:  # discard the rest of an over-long line without holding it
        more = stream.readline(1 << 20)
        if not more or more.endswith(b"\n"):
            return b"", True


def ndjson_lines(
    stream: IO[bytes], source: str, first_no: int = 1
) -> Iterator[tuple[int, bytes] | Rejection]:
    """Non-blank lines of an NDJSON stream with their numbers (from ``first_no``), or a
    rejection for a line longer than ``MAX_LINE_BYTES`` (never held in memory)."""
    lineno = first_no - 1
    while True:
        line, too_long = _read_line(stream)
        lineno += 1
        if too_long:
            yield Rejection(location=_loc(source, lineno),
                            reason=f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        if not line:
            return
        if line.strip():
            yield lineno, line


def _loc(source: str, line: int | None, pointer: str = "") -> SourceLocation:
    tail = source if len(source) <= 256 else "…" + source[-255:]
    return SourceLocation(file=tail or None, line=line, pointer=pointer or None)


def _line_records(raw: bytes, source: str, lineno: int) -> Iterator[Record]:
    try:
        text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        yield Rejection(location=_loc(source, lineno),
                        reason=f"not UTF-8 (byte {exc.start}): {exc.reason}")
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        yield Rejection(location=_loc(source, lineno),
                        reason=f"invalid JSON at column {exc.colno}: {exc.msg}")
        return
    except RecursionError:
        yield Rejection(location=_loc(source, lineno), reason="JSON nested too deeply")
        return
    if not isinstance(doc, dict):
        yield Rejection(location=_loc(source, lineno),
                        reason=f"expected a FHIR resource (JSON object), got {json_type(doc)}")
        return
    if not isinstance(doc.get("resourceType"), str):
        yield Rejection(location=_loc(source, lineno, "/resourceType"),
                        reason="not a FHIR resource: no resourceType string")
        return
    try:
        yield from records_from_resource(doc, source=source, line=lineno)
    except RecursionError:
        yield Rejection(location=_loc(source, lineno), reason="resource nested too deeply")


def _looks_like_ndjson_line(line: bytes) -> bool:
    s = line.strip()
    return len(s) > 1 and s.startswith(b"{") and s.endswith(b"}")


def _ndjson(first: bytes, first_no: int, stream: IO[bytes], source: str) -> Iterator[Record]:
    yield from _line_records(first, source, first_no)
    for item in ndjson_lines(stream, source, first_no + 1):
        if isinstance(item, Rejection):
            yield item
        else:
            yield from _line_records(item[1], source, item[0])


def _document(data: bytes, source: str) -> Iterator[Record]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 at byte {exc.start}: {exc.reason}", source) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = [ln for ln in data.splitlines() if ln.strip()]
        if sum(_looks_like_ndjson_line(ln) for ln in lines[1:]) >= 1:
            # NDJSON whose first line is broken: read it line by line instead.
            yield from _ndjson_bytes(data, source)
            return
        raise InputError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source
        ) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", source) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise InputError("not a FHIR resource (a JSON object with a resourceType)", source)
    try:
        yield from records_from_resource(doc, source=source)
    except RecursionError:
        raise InputError("FHIR resource nested too deeply", source) from None


def _ndjson_bytes(data: bytes, source: str) -> Iterator[Record]:
    for lineno, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield from _line_records(line, source, lineno)


def parse(stream: IO[bytes], source: str) -> Iterator[Record]:
    """Read a FHIR Bundle, resource or NDJSON stream (optionally gzip-compressed).

    :raises InputError: the input as a whole is not FHIR JSON (documents only).
    """
    try:
        fh = _open(stream)
        lineno = 0
        while True:
            first, too_long = _read_line(fh)
            lineno += 1
            if too_long:
                raise InputError(f"first line longer than {MAX_LINE_BYTES} bytes", source)
            if not first or first.strip():
                break
        if not first:
            return
        if _looks_like_ndjson_line(first):
            yield from _ndjson(first, lineno, fh, source)
            return
        rest = fh.read(MAX_DOCUMENT_BYTES + 1)
        if len(first) + len(rest) > MAX_DOCUMENT_BYTES:
            raise InputError(
                f"JSON document larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB; "
                "export it as NDJSON (one resource per line) instead", source)
        yield from _document(b"\n" * (lineno - 1) + first + rest, source)
    except (OSError, EOFError, zlib.error) as exc:  # truncated/corrupt gzip, I/O errors
        raise InputError(f"cannot read input: {exc}", source) from None
