"""Split a byte stream into SCRIPT ``Message`` trees, safely and with flat memory.

Accepted layouts (see the README):

* one ``Message`` document (the usual case: one file per transaction);
* a *container* document whose root (any name, e.g. ``Messages`` or ``Batch``) holds
  many ``Message`` children -- children that are not ``Message`` are reported;
* several ``Message`` documents one after another in one file (each may carry its own
  XML declaration), as message logs and queue dumps often are.

Why a hand-driven parser rather than ``iterparse``: a bad document in a concatenated
stream (a DTD, an XML error) must cost only that document, so the splitter has to know
byte positions in order to restart after the damage; ``iterparse`` cannot restart.
Parsing goes through :class:`defusedxml.ElementTree.DefusedXMLParser` with
``forbid_dtd=True`` (so DTDs, entity declarations -- "billion laughs" -- and external
entities are refused before anything is expanded or fetched), fed in chunks.  Memory is
bounded by the size of one message: each ``Message`` is built as a small
:class:`~b12drugs_ncpdp.tree.Node` tree, handed out, and dropped; a message larger than
``max_message_bytes`` stops being built (it is reported, not read); a single XML token
larger than that bound aborts its document.

Recovery after an error: a DTD refuses its whole document (the splitter skips to the
document's closing root tag); an XML syntax error rejects the message being read and
reading resumes at the next ``<?xml``, ``<Message`` or after the next ``</Message>``.
Recovery scans raw bytes, so it assumes an ASCII-compatible encoding (UTF-8, Latin-1);
UTF-16 input parses but does not recover after an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Union
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import DefusedXMLParser

from b12drugs.errors import InputError

from .tree import Node, local_name

#: Default bound on the size of one message (bytes of XML).
DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
#: Bounds on the tree built for one message: a byte bound alone lets a small message
#: cost a lot of memory (500,000 empty elements fit in 2 MB and take >100 MiB as
#: nodes).  A real SCRIPT message has a few hundred elements, nested about 8 deep.
MAX_ELEMENTS = 20_000
MAX_DEPTH = 32
CHUNK = 64 * 1024

_NAME = rb"(?:[A-Za-z_][\w.\-]*:)?"
_NEXT_DOC = re.compile(rb"<\?xml[\s?]|<" + _NAME + rb"Message[\s/>]|</" + _NAME + rb"Message\s*>")
_BETWEEN_DOCS = re.compile(rb"(?:\s+|</[^<>]{0,256}>)+")


@dataclass
class MessageItem:
    """One ``Message`` element; ``node`` is ``None`` when it exceeded the size bound."""

    index: int
    line: int
    node: Node | None
    #: why the message was not built (``node`` is ``None``) when not the byte bound,
    #: and the XPath of the element where that was found
    reason: str | None = None
    xpath: str | None = None


@dataclass
class OtherItem:
    """A child of a container document that is not a ``Message``."""

    name: str
    line: int


@dataclass
class ProblemItem:
    """Something unreadable: a message (``index``, ``xpath``) or a whole document."""

    reason: str
    line: int | None
    index: int | None = None
    xpath: str | None = None


Item = Union[MessageItem, OtherItem, ProblemItem]  # noqa: UP007 (runtime alias, py3.10)


class _Oversize(Exception):
    """Raised from inside the parser when a single token exceeds the size bound."""


class _Target:
    """Parser target: builds ``Message`` subtrees, ignores everything else."""

    def __init__(self, owner: MessageStream, base_line: int) -> None:
        self.owner = owner
        self.expat: Any = None
        self.base_line = base_line
        self.depth = 0
        self.root: str | None = None
        self.doc_done = False
        self.out: list[Item] = []
        self.last_pos = 0
        # state of the message being read
        self.in_message = False
        self.msg_depth = 0
        self.msg_index = 0
        self.msg_line = 0
        self.msg_start = 0
        self.names: list[str] = []
        self.stack: list[Node] = []
        self.discarding = False
        self.elements = 0
        self.refusal: tuple[str, str] | None = None  # (reason, xpath)

    # -- positions -------------------------------------------------------
    def line(self) -> int:
        return self.base_line + int(self.expat.CurrentLineNumber)

    def _tick(self) -> int:
        pos = int(self.expat.CurrentByteIndex)
        self.last_pos = pos
        if self.in_message and not self.discarding and pos - self.msg_start > self.owner.max_bytes:
            self.discarding = True
            self.stack = []
        return pos

    # -- expat callbacks (through ElementTree's XMLParser) -----------------
    def start(self, tag: str, attrib: dict[str, str]) -> None:
        pos = self._tick()
        name = local_name(tag)
        depth = self.depth
        self.depth += 1
        if self.in_message:
            self.names.append(name)
            self.elements += 1
            if not self.discarding and (
                self.elements > MAX_ELEMENTS or len(self.names) > MAX_DEPTH
            ):
                what = (f"more than {MAX_ELEMENTS} elements" if self.elements > MAX_ELEMENTS
                        else f"elements nested more than {MAX_DEPTH} deep")
                self.refusal = (f"message has {what}; not read", self.xpath() or "/Message")
                self.discarding = True
                self.stack = []
            if not self.discarding:
                node = Node(name, {local_name(k): v for k, v in attrib.items()} if attrib else None)
                self.stack[-1].children.append(node)
                self.stack.append(node)
            return
        if depth == 0:
            self.root = name
        if (depth == 0 and name == "Message") or (depth == 1 and name == "Message"):
            self.owner.count += 1
            self.in_message = True
            self.msg_depth = depth
            self.msg_index = self.owner.count
            self.msg_line = self.line()
            self.msg_start = pos
            self.names = [name]
            self.discarding = False
            self.elements = 1
            self.refusal = None
            self.stack = [Node(name)]
        elif depth == 1:
            self.out.append(OtherItem(name, self.line()))

    def end(self, tag: str) -> None:
        self._tick()
        self.depth -= 1
        if self.in_message:
            if self.depth == self.msg_depth:
                node = None if self.discarding else self.stack[0]
                reason, xpath = self.refusal or (None, None)
                self.out.append(MessageItem(self.msg_index, self.msg_line, node, reason, xpath))
                self.in_message = False
                self.stack = []
                self.names = []
            else:
                self.names.pop()
                if not self.discarding:
                    self.stack.pop()
        if self.depth == 0:
            self.doc_done = True

    def data(self, text: str) -> None:
        if self.in_message and not self.discarding:
            self._tick()
            if not self.discarding:
                self.stack[-1].add_text(text)

    def close(self) -> None:
        return None

    def xpath(self) -> str | None:
        return "/" + "/".join(self.names) if self.in_message else None


class MessageStream:
    """Iterate over the messages of a binary stream as :data:`Item` objects.

    Raises :class:`~b12drugs.errors.InputError` only when nothing at all in the input
    could be read (an empty input, a lone refused or broken document); otherwise every
    problem is an :class:`ProblemItem` in stream order.
    """

    def __init__(
        self,
        stream: IO[bytes],
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        chunk_size: int = CHUNK,
    ) -> None:
        self.stream = stream
        self.max_bytes = max_message_bytes
        self.chunk_size = chunk_size
        self.count = 0  # messages started so far (1-based numbering)
        self.buf = bytearray()
        self.buf_abs = 0  # absolute offset of buf[0]
        self.lines_before_buf = 0
        self.eof = False
        self.pos = 0  # absolute offset where the next document starts
        self._emitted = False
        self._deferred: list[ProblemItem] = []

    # -- buffer ------------------------------------------------------------
    def _read(self) -> bytes:
        if self.eof:
            return b""
        chunk = self.stream.read(self.chunk_size)
        if not chunk:
            self.eof = True
            return b""
        self.buf.extend(chunk)
        return bytes(chunk)

    def _trim(self, upto: int) -> None:
        """Forget bytes before absolute offset ``upto``."""
        k = min(upto, self.buf_abs + len(self.buf)) - self.buf_abs
        if k > 0:
            self.lines_before_buf += self.buf.count(b"\n", 0, k)
            del self.buf[:k]
            self.buf_abs += k

    def _line_at(self, pos: int) -> int:
        return self.lines_before_buf + self.buf.count(b"\n", 0, max(0, pos - self.buf_abs)) + 1

    # -- iteration -----------------------------------------------------------
    def __iter__(self) -> Iterator[Item]:
        try:
            for item in self._items():
                if isinstance(item, ProblemItem) and not self._emitted:
                    self._deferred.append(item)
                    continue
                if self._deferred:
                    yield from self._deferred
                    self._deferred = []
                self._emitted = True
                yield item
        except OSError as exc:
            raise InputError(f"cannot read the input: {exc}") from exc
        if self._deferred and not self._emitted:
            first = self._deferred[0]
            more = len(self._deferred) - 1
            where = f"line {first.line}" if first.line else None
            reason = first.reason + (f" (and {more} more problem(s))" if more else "")
            raise InputError(reason, where)
        if not self._emitted and not self._deferred:
            raise InputError("no NCPDP SCRIPT content: the input is empty")

    def _items(self) -> Iterator[Item]:
        self._read()
        while self._start_next_document():
            yield from self._document()

    def _start_next_document(self) -> bool:
        """Skip white space and stray closing tags; ``False`` at the end of input."""
        while True:
            self._trim(self.pos)
            while len(self.buf) < 1024 and not self.eof:
                self._read()
            m = _BETWEEN_DOCS.match(self.buf)
            skipped = m.end() if m else 0
            if skipped == len(self.buf) and not self.eof:
                self.pos = self.buf_abs + skipped
                self._read()
                continue
            self.pos = self.buf_abs + skipped
            return skipped < len(self.buf)

    def _document(self) -> Iterator[Item]:
        start = self.pos
        self._trim(start)
        base_line = self.lines_before_buf
        target = _Target(self, base_line)
        parser = DefusedXMLParser(target=target, forbid_dtd=True)
        target.expat = parser.parser
        fed_to = self.buf_abs + len(self.buf)
        try:
            data = bytes(self.buf)
            while True:
                if data:
                    parser.feed(data)
                yield from self._drain(target)
                self._trim(start + target.last_pos)
                if fed_to - (start + target.last_pos) > self.max_bytes + self.chunk_size:
                    raise _Oversize
                data = self._read()
                if not data:
                    parser.close()
                    yield from self._drain(target)
                    self.pos = fed_to
                    self._trim(self.pos)
                    return
                fed_to += len(data)
        except (ParseError, DefusedXmlException, _Oversize, ValueError, LookupError) as exc:
            yield from self._drain(target)
            err_at = start + max(0, int(parser.parser.ErrorByteIndex))
            if target.doc_done and isinstance(exc, ParseError):
                # Something follows a complete document: the next one starts there.
                k = err_at - self.buf_abs
                if k > 0 and self.buf[k - 1 : k] == b"<":
                    err_at -= 1
                self.pos = max(err_at, start + 1)
                return
            yield self._problem(exc, target, err_at)
            self._resync(exc, target, max(err_at, start) + 1)

    def _drain(self, target: _Target) -> Iterator[Item]:
        if target.out:
            out, target.out = target.out, []
            yield from out

    def _problem(self, exc: BaseException, target: _Target, err_at: int) -> ProblemItem:
        if isinstance(exc, DefusedXmlException):
            doctype = getattr(exc, "name", None) or "?"
            reason = (
                f"refused: the document declares a DTD (<!DOCTYPE {doctype}>); DTDs, entity "
                "declarations and external entities are not accepted in NCPDP SCRIPT input "
                "(protection against XXE and entity expansion)"
            )
            index = None
            if local_name(str(doctype).rpartition(":")[2]) == "Message":
                self.count += 1
                index = self.count
            return ProblemItem(reason, self._line_at(err_at), index=index)
        if isinstance(exc, _Oversize):
            reason = f"an XML token is larger than the {self.max_bytes}-byte message limit"
        elif isinstance(exc, ParseError):
            line, col = exc.position
            msg = str(exc).split(":")[0]
            reason = f"XML not well-formed: {msg} (line {target.base_line + line}, column {col})"
        else:
            reason = f"XML cannot be read: {exc}"
        if target.in_message:
            return ProblemItem(reason, target.msg_line, index=target.msg_index,
                               xpath=target.xpath())
        return ProblemItem(reason, self._line_at(err_at))

    def _resync(self, exc: BaseException, target: _Target, search_from: int) -> None:
        """Move ``self.pos`` to where the next readable document may start."""
        if isinstance(exc, DTDForbidden) and exc.name:
            closer = re.escape(str(exc.name).rpartition(":")[2].encode("ascii", "replace"))
            pattern = re.compile(rb"</" + _NAME + closer + rb"\s*>")
        else:
            pattern = _NEXT_DOC
        self._trim(search_from)
        offset = 0
        while True:
            m = pattern.search(self.buf, offset)
            if m is not None:
                token = m.group(0)
                at = m.end() if token.startswith(b"</") else m.start()
                self.pos = self.buf_abs + at
                return
            if self.eof:
                self.pos = self.buf_abs + len(self.buf)
                return
            keep = 512
            if len(self.buf) > keep:
                self._trim(self.buf_abs + len(self.buf) - keep)
            offset = 0
            self._read()
