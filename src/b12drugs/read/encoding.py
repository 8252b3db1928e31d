"""Text encodings of inputs: what a reader sees is UTF-8, whatever the file was.

Pharmacy exports from Windows systems are often Windows-1252 or Latin-1, and some are
UTF-16 with a byte order mark.  Before format detection:

* a UTF-8 byte order mark is dropped;
* a UTF-16 byte order mark (either byte order) makes the input decoded as UTF-16 and
  handed on as UTF-8, with an ``info`` notice naming the file and the encoding;
* ``--encoding NAME`` decodes the input as NAME, whatever it holds.

Anything else is handed on as it is: the CSV reader takes cells that are not UTF-8 as
Windows-1252 and says so once per file (:mod:`b12drugs.read.delimited`); the other
formats' own parsers judge their bytes.
"""

from __future__ import annotations

import codecs
import io
from typing import IO

from ..errors import InputError
from ..models import Notice

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class _Transcoder(io.RawIOBase):
    """A binary stream of the UTF-8 encoding of ``raw`` decoded as ``encoding``."""

    def __init__(self, raw: IO[bytes], encoding: str):
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            chunk = self._raw.read(1 << 16)
            final = not chunk
            self._pending = self._decoder.decode(chunk, final).encode("utf-8")
            self._done = final
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def decoded(stream: io.BufferedReader, source: str, encoding: str | None = None,
            ) -> tuple[io.BufferedReader, Notice | None]:
    """``stream`` as UTF-8 (see the module doc), and a notice when it was re-encoded.

    :raises InputError: ``encoding`` names no codec.
    """
    if encoding is not None:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise InputError(f"unknown encoding {encoding!r}") from None
        if name != "utf-8":
            return io.BufferedReader(_Transcoder(stream, name), 1 << 16), None
    head = stream.peek(4)[:4]
    if head.startswith(codecs.BOM_UTF8):
        stream.read(3)
        return stream, None
    if head.startswith(_UTF16_BOMS) and encoding is None:
        notice = Notice(kind="info", source=source[:256] or None,
                        message="the file is UTF-16 (byte order mark): it was decoded as such")
        return io.BufferedReader(_Transcoder(stream, "utf-16"), 1 << 16), notice
    return stream, None


class Utf8Text:
    """A binary reader of ``raw`` in which every byte that is not UTF-8 is re-encoded
    from Windows-1252, so that a reader that needs UTF-8 (pyarrow's CSV reader) loses no
    row to its encoding.

    Data is handed on in pieces cut after a line break (a line break is never inside a
    UTF-8 sequence), so checking a piece is one C-level ``decode`` and the bytes go on
    as they are; only a piece that fails is re-encoded.  :attr:`fell_back` says whether
    any byte was; :attr:`quotes` counts the ``"`` characters read (an odd count at the
    end means a quoted field was left open).
    """

    PIECE = 1 << 22

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._carry = b""
        self._eof = False
        self.fell_back = False
        self.quotes = 0
        self.closed = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """A piece of at most about :attr:`PIECE` bytes, whatever ``size`` asks (a reader
        may ask for the whole file at once), ending after a line break or at the end."""
        while not self._eof:
            chunk = self._raw.read(self.PIECE)
            if not chunk:
                self._eof = True
                data, self._carry = self._carry, b""
                return self._checked(data)
            data = self._carry + chunk if self._carry else chunk
            cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
            if cut == 0:  # no line break yet: read on
                self._carry = data
                continue
            if cut == len(data):
                self._carry = b""
                return self._checked(data)
            self._carry = data[cut:]
            return self._checked(data[:cut])
        return b""

    def _checked(self, data: bytes) -> bytes:
        self.quotes += data.count(b'"')
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            self.fell_back = True
            return as_utf8(data).encode("utf-8")
        return data

    def close(self) -> None:
        self.closed = True


def as_utf8(data: bytes) -> str:
    """``data`` decoded as UTF-8 where it is, and as Windows-1252 (Latin-1 for the five
    bytes Windows-1252 leaves undefined) where it is not, byte for byte."""
    out: list[str] = []
    pos = 0
    while True:
        try:
            out.append(data[pos:].decode("utf-8"))
            return "".join(out)
        except UnicodeDecodeError as exc:
            out.append(data[pos:pos + exc.start].decode("utf-8"))
            bad = data[pos + exc.start:pos + exc.end]
            out.append("".join(_cp1252(bytes([b])) for b in bad))
            pos += exc.end


def _cp1252(byte: bytes) -> str:
    try:
        return byte.decode("cp1252")
    except UnicodeDecodeError:  # 0x81 0x8D 0x8F 0x90 0x9D: undefined there
        return byte.decode("latin-1")
