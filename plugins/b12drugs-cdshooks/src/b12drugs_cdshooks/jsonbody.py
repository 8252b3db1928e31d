"""Reading request bodies within bounds: size, JSON validity and nesting depth.

A CDS client is trusted only after its JWT is verified, and even then a bug on its
side must not cost the service unbounded memory or a deep recursion.  The body is read
in chunks and refused as soon as it passes the limit (also when ``Content-Length``
lies); JSON nesting deeper than the limit is refused before any model sees it.

orjson decodes (about half the standard library's time for an order-sign request).
The standard library stays
the judge of what is refused and why: a body orjson does not take is decoded again by
``json``, which accepts exactly what the service accepted before (``NaN``, unpaired
surrogate escapes) and words the error with line and column.  One difference in
values remains: orjson reads an integer beyond 64 bits as a float; no field the
service reads holds one.
"""

from __future__ import annotations

import json
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


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests containers deeper than ``limit`` (iterative walk).

    Only containers are pushed on the stack, which keeps this cheaper than parsing.
    """
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if depth > limit:
            return True
        for child in item.values() if type(item) is dict else item:
            if type(child) is dict or type(child) is list:
                push((child, depth + 1))
    return False


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
    if depth_exceeds(value, max_depth):
        raise Problem(400, f"JSON nesting exceeds the limit of {max_depth}", code="too-costly")
    return value


def _strict_loads(body: bytes, max_depth: int) -> Any:
    """The standard library's decoding, for bodies orjson refused: the value, or a 400
    :class:`Problem` that says why and where."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"request body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise Problem(400, f"request body is not valid JSON: {exc.msg} at {where}") from None
    except RecursionError:
        raise Problem(400, f"JSON nesting exceeds the limit of {max_depth}",
                      code="too-costly") from None
    return value

