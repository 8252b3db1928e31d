"""Recognise NCPDP SCRIPT XML from the first bytes of an input.

Mine: XML whose root element (after an optional BOM, XML declaration, comments and
processing instructions) is ``Message`` -- in the NCPDP namespace
``http://www.ncpdp.org/schema/SCRIPT``, under any prefix, or without a namespace -- or a
container element whose first child is a ``Message``.  A document with a DOCTYPE naming
``Message`` is claimed too, so that it meets the parser's clear "DTD refused" error
rather than "unknown format".
"""

from __future__ import annotations

import re

NCPDP_NAMESPACE = "http://www.ncpdp.org/schema/SCRIPT"

_PROLOG = re.compile(r"\A\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*", re.S)
_DOCTYPE = re.compile(r"<!DOCTYPE\s+(?:[\w.\-]+:)?([\w.\-]+)")
_TAG = re.compile(r"<(?:[A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)(?=[\s/>])")
_FILLER = re.compile(r"\A[^<]*(?:<!--.*?-->[^<]*)*", re.S)


def _decode(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.decode("latin-1")


def sniff(head: bytes, filename: str) -> float:
    """Confidence (0-1) that ``head`` starts an NCPDP SCRIPT document."""
    text = _decode(head)
    if "\x00" in text[:256]:
        return 0.0
    rest = text[_PROLOG.match(text).end():]  # type: ignore[union-attr]
    namespaced = NCPDP_NAMESPACE in text
    doctype = _DOCTYPE.match(rest)
    if doctype:
        return 0.9 if doctype.group(1) == "Message" else 0.0
    root = _TAG.match(rest)
    if root is None:
        return 0.0
    if root.group(1) == "Message":
        if namespaced:
            return 1.0
        return 0.9 if re.search(r"<(?:[\w.\-]+:)?(?:Body|Header)[\s/>]", rest) else 0.6
    # A container: the first child element must be a Message.
    after = rest[rest.find(">", root.end()) + 1:]
    after = after[_FILLER.match(after).end():]  # type: ignore[union-attr]
    child = _TAG.match(after)
    if child is not None and child.group(1) == "Message":
        return 0.95 if namespaced else 0.8
    return 0.0
