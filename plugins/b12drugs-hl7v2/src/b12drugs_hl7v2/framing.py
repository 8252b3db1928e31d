"""Split a byte stream into HL7 v2 messages, one at a time, with bounded memory.

Real feeds and exports mix conventions, so the splitter accepts all of them in one
pass: segment separators ``\\r``, ``\\n`` or ``\\r\\n`` (but in a message whose
MSH ends with ``\\r``, the standard terminator, a bare ``\\n`` is data inside a field);
MLLP framing bytes (``0x0b`` start block, ``0x1c`` end block) written into files; batch
and file envelopes (``FHS``/``BHS``/``BTS``/``FTS``), which are dropped; a UTF-8
byte-order mark.  A new message starts at every ``MSH`` segment.

Why not :func:`hl7.split_file` or :func:`hl7.parse_file`: they need the whole file as
one string (memory grows with the file) and only know ``\\r`` separators.  Here memory
is bounded by one message (``max_message_bytes``) plus one read chunk, whatever the
file size; a larger message is reported, not buffered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

#: MLLP start and end block bytes (HL7 v2 Minimal Lower Layer Protocol).
START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"

#: Default bound for one message read from a file.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

#: Bytes of an oversize message kept so that its MSH can still be read for errors.
HEAD_KEEP = 4096

ENVELOPE = frozenset({b"FHS", b"BHS", b"BTS", b"FTS"})

_TOKEN = re.compile(rb"\r\n|\r|\n|\x0b|\x1c")


@dataclass
class RawMessage:
    """One message's segments, still as bytes (decoding needs MSH-18)."""

    number: int
    line: int
    segments: list[bytes] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    size: int = 0
    oversize: bool = False
    #: the MSH segment ended with a bare ``\r`` (the standard segment terminator): a
    #: bare ``\n`` inside this message is then data, not a segment break
    cr_only: bool = False

    def join(self, text: bytes, limit: int) -> None:
        """Append ``text`` to the last segment after a line feed kept as data."""
        self.size += len(text) + 1
        if self.oversize:
            return
        if self.size > limit:
            self.oversize = True
            self.segments = self.segments[:1]
            self.lines = self.lines[:1]
            return
        self.segments[-1] += b"\n" + text

    def add(self, segment: bytes, line: int, limit: int) -> None:
        self.size += len(segment) + 1
        if self.oversize:
            return
        if self.size > limit:
            self.oversize = True
            # keep only the MSH (enough to name the message in the error)
            self.segments = self.segments[:1]
            self.lines = self.lines[:1]
            return
        self.segments.append(segment)
        self.lines.append(line)


@dataclass
class Stray:
    """Lines outside any message (before the first MSH, or after an end block)."""

    line: int
    count: int = 0
    sample: str = ""


def _tokens(
    stream: IO[bytes], chunk_size: int, max_line: int
) -> Iterator[tuple[int, int, bytes, bytes]]:
    """Yield ``(kind, line, data, sep)``: kind 0 segment text, 1 start block, 2 end block;
    ``sep`` is the separator that ended the text (empty at the end of the stream).

    ``line`` is 1-based and counts ``\\r\\n`` as one line break.  A line longer than
    ``max_line`` is cut to ``HEAD_KEEP`` bytes and flagged with kind 3 (overlong) so
    that the caller can reject its message without holding it in memory.
    """
    buf = b""
    line = 1
    skipping = False  # inside an overlong line, discarding until the next separator
    first = True
    while True:
        chunk = stream.read(chunk_size)
        eof = not chunk
        if first and chunk.startswith(b"\xef\xbb\xbf"):
            chunk = chunk[3:]
        first = False
        buf += chunk
        pos = 0
        for m in _TOKEN.finditer(buf):
            sep = m.group()
            if sep == b"\r" and m.end() == len(buf) and not eof:
                break  # may be the first half of \r\n: wait for the next chunk
            text = buf[pos : m.start()]
            if skipping:
                skipping = False
            elif text:
                yield 0, line, text, sep
            if sep == START_BLOCK:
                yield 1, line, b"", sep
            elif sep == END_BLOCK:
                yield 2, line, b"", sep
            else:
                line += 1
            pos = m.end()
        buf = buf[pos:]
        if len(buf) > max_line:
            if not skipping:
                yield 3, line, buf[:HEAD_KEEP], b""
                skipping = True
            buf = buf[-1:] if buf.endswith(b"\r") else b""
        if eof:
            if buf and not skipping:
                yield 0, line, buf, b""
            return


def iter_messages(
    stream: IO[bytes],
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    chunk_size: int = 64 * 1024,
) -> Iterator[RawMessage | Stray]:
    """Yield each message (and each run of stray lines) of ``stream`` in order."""
    current: RawMessage | None = None
    stray: Stray | None = None
    number = 0
    after = b""  # separator that ended the previous segment text of ``current``
    for kind, line, data, sep in _tokens(stream, chunk_size, max_message_bytes):
        if kind in (1, 2):
            if current is not None:
                yield current
                current = None
            continue
        seg = data.strip(b" \t\x00")
        name = seg[:3]
        if (
            current is not None and current.cr_only and after == b"\n" and kind == 0
            and name != b"MSH" and name not in ENVELOPE
        ):
            # a message whose segments end with \r: a bare \n is data inside a field
            # (e.g. NTE "take with\nfood"), not a segment break
            current.join(data, max_message_bytes)
            after = sep
            continue
        after = sep
        if not seg:
            continue
        if name == b"MSH":
            if stray is not None:
                yield stray
                stray = None
            if current is not None:
                yield current
            number += 1
            current = RawMessage(number, line, cr_only=sep == b"\r")
            current.add(seg, line, max_message_bytes)
            if kind == 3:
                current.oversize = True
        elif name in ENVELOPE and kind == 0:
            if current is not None:
                yield current
                current = None
        elif current is not None:
            if kind == 3:
                current.oversize = True
            current.add(seg, line, max_message_bytes)
        else:
            if stray is None:
                sample = seg[:3].decode("ascii", "replace")
                stray = Stray(line, 0, sample if sample.isalnum() else "")
            stray.count += 1
    if current is not None:
        yield current
    if stray is not None:
        yield stray
