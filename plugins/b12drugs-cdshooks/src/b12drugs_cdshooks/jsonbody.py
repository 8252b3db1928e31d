"""Reading request bodies within bounds: size, JSON validity and nesting depth.

A CDS client is trusted only after its JWT is verified, and even then a bug on its
side must not cost the service unbounded memory or a deep recursion.  The body is read
in chunks and refused as soon as it passes the limit (also when ``Content-Length``
lies); JSON nesting deeper than the limit is refused before any model sees it.

orjson decodes, in about half the standard library's time for an order-sign request.
The standard library stays the judge of what is refused and why: a body orjson does
not take is decoded again by ``json``, which accepts exactly what the service accepted
before (``NaN``, integers beyond 64 bits) and words the error with line and column.

Two kinds of valid JSON used to end in a 500 and are now taken in hand here, on that
slower path only (orjson refuses both, so a well-behaved body never pays for it):

* a lone surrogate escape (``"\\ud800"``) is valid JSON but no Unicode text: it broke
  the FHIR reading of a drug text and the rendering of the answer.  Every lone
  surrogate, in a value or a key, becomes U+FFFD (the replacement character), so the
  order is still screened by its code and the answer can be written.
* an integer of more than :data:`MAX_INT_DIGITS` digits: Python refuses to convert it
  (a guard against quadratic-time conversion).  The body is refused with a 400 that
  names the line and column, since no CDS Hooks or FHIR field needs such a number.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from starlette.requests import Request

from .outcome import Problem


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, or a 413 :class:`Problem` once it exceeds ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Problem(400, "Content-Length is not a number") from None
        if size > max_bytes:
            raise Problem(
                413, f"request body of {size} bytes exceeds the limit of {max_bytes} bytes",
                code="too-costly",
            )
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise Problem(
                413, f"request body exceeds the limit of {max_bytes} bytes", code="too-costly"
            )
        chunks.append(chunk)
    return b"".join(chunks)


#: Every byte but the ones that matter to nesting: brackets, quotes and backslashes.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"\\')
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")


def depth_exceeds(document: bytes, limit: int) -> bool:
    """True when the valid JSON ``document`` nests containers deeper than ``limit``.

    Read from the bytes, not the decoded objects: walking a fresh 20 KB request's
    objects cost 70-140 us, most of it cache misses, while the bytes are contiguous and
    hot (about 30 us).  Escapes go first (``\\"`` is no quote), then everything but
    brackets and quotes, then the strings (a bracket in a string does not nest).  What
    is left is the bracket skeleton, each container written ``(...)``.  Each pass of
    ``replace(b"()", b"")`` removes exactly the containers that hold no container (a
    match is an opener right before its closer, and a pass never matches what it
    joined), so the skeleton is gone after as many passes as the document is deep.

    A skeleton of ``n`` bytes is at most ``n / 2`` deep, which ends the passes early,
    and a run of more than ``limit`` openers needs no pass at all.  At worst (a 1 MiB
    body nesting ``[[],[[],...`` past the default limit of 64) the passes take about
    0.2 s, about as long as decoding such a body.
    """
    if b"\\" in document:
        document = _ESCAPE.sub(b"", document)
    # Two quotes side by side delimit a string without brackets (or close one string
    # and open the next): dropping them leaves every other bracket on its side.
    skeleton = document.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in skeleton:  # strings with brackets in them: keep what is outside
        skeleton = b"".join(skeleton.split(b'"')[::2])
    skeleton = skeleton.translate(_BRACKETS)
    if b"(" * (limit + 1) in skeleton:  # a plain deep chain, the usual attack: one search
        return True
    for passes in range(limit):
        if len(skeleton) <= 2 * (limit - passes):  # too short to be deeper than what is left
            return False
        skeleton = skeleton.replace(b"()", b"")
    return bool(skeleton)


def parse_json_object(body: bytes, max_depth: int) -> dict[str, Any]:
    """Decode a JSON object body or raise a 400 :class:`Problem` saying why."""
    if not body.strip():
        raise Problem(400, "request body is empty; a JSON object is expected")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = _strict_loads(body, max_depth)
    if not isinstance(value, dict):
        raise Problem(400, "request body must be a JSON object", where="/")
    if depth_exceeds(body, max_depth):
        raise Problem(400, f"JSON nesting exceeds the limit of {max_depth}", code="too-costly")
    return value


#: Longest integer literal accepted: Python's own limit on converting digits to int
#: (``sys.get_int_max_str_digits()``, 4300 by default), fixed here so the service's
#: behaviour does not depend on an interpreter setting.
MAX_INT_DIGITS = 4300

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _IntegerTooLong(ValueError):
    def __init__(self, digits: int):
        super().__init__(digits)
        self.digits = digits


def _parse_int(literal: str) -> int:
    """``int()`` for the decoder, refusing literals past :data:`MAX_INT_DIGITS`."""
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise _IntegerTooLong(digits)
    return int(literal)


def _where(text: str, digits: int) -> str:
    """Line and column of the first integer literal with ``digits`` digits."""
    m = re.search(rf"-?\d{{{digits}}}", text)
    if m is None:
        return "an unknown place"
    line = text.count("\n", 0, m.start()) + 1
    return f"line {line} column {m.start() - text.rfind(chr(10), 0, m.start())}"


def replace_lone_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (and keys) replaced by U+FFFD.

    Iterative, not recursive: the body's depth is only checked after decoding.  Lists
    and dicts are changed in place; the containers are the decoder's own.
    """
    def fix(s: str) -> str:
        return _LONE_SURROGATE.sub("\ufffd", s)

    if isinstance(value, str):
        return fix(value)
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            for i, v in enumerate(item):
                if isinstance(v, str):
                    item[i] = fix(v)
                elif isinstance(v, (list, dict)):
                    stack.append(v)
        elif isinstance(item, dict):
            for k in [k for k in item if _LONE_SURROGATE.search(k)]:
                item[fix(k)] = item.pop(k)
            for k, v in item.items():
                if isinstance(v, str):
                    item[k] = fix(v)
                elif isinstance(v, (list, dict)):
                    stack.append(v)
    return value


def _strict_loads(body: bytes, max_depth: int) -> Any:
    """The standard library's decoding, for bodies orjson refused: the value (lone
    surrogates replaced), or a 400 :class:`Problem` that says why and where."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"request body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise Problem(400, f"request body is not valid JSON: {exc.msg} at {where}") from None
    except _IntegerTooLong as exc:
        raise Problem(
            400,
            f"an integer of {exc.digits} digits at {_where(text, exc.digits)} exceeds the "
            f"limit of {MAX_INT_DIGITS} digits",
            code="too-costly",
        ) from None
    except RecursionError:
        raise Problem(400, f"JSON nesting exceeds the limit of {max_depth}",
                      code="too-costly") from None
    if "\\u" in text:
        # The text is valid UTF-8, so holds no surrogate itself: a lone one can only
        # come from an escape that json.loads decoded.  Replaced here, on this slow
        # path: orjson refuses lone surrogates, so clean bodies never get this far.
        value = replace_lone_surrogates(value)
    return value
