"""MLLP framing over asyncio streams, with a bound on the message size.

A frame is ``0x0b <message> 0x1c 0x0d``.  Bytes between frames are ignored (counted
only).  A frame larger than ``max_bytes`` is not buffered: its first
:data:`~b12drugs_hl7v2.framing.HEAD_KEEP` bytes are kept (to read MSH and answer AR)
and the rest is discarded up to the end block, so the connection stays usable.

A start block inside an unfinished frame means the sender gave up on that frame and
began again (a sender's timeout and resend, a reconnecting interface engine): the
bytes so far are yielded as an *abandoned* frame (the listener answers AR when they
name a control id) and the new frame is read as a message of its own.  ``0x0b`` is
never data in HL7 v2, so nothing valid is cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .framing import END_BLOCK, HEAD_KEEP, START_BLOCK

FRAME_END = END_BLOCK + b"\r"


@dataclass
class Frame:
    data: bytes
    size: int
    oversize: bool = False
    #: cut short by a new start block before its end block (see the module docstring)
    abandoned: bool = False


@dataclass
class Progress:
    """What a connection has sent, for choosing which one to close when the listener
    is full: bytes so far, when the last chunk came (loop time), inside a frame now."""

    received: int = 0
    last: float = 0.0
    inside: bool = False


def frame(message: bytes) -> bytes:
    """Wrap one message in an MLLP frame."""
    return START_BLOCK + message + FRAME_END


class FrameTimeout(asyncio.TimeoutError):
    """A frame was not complete within the per-frame time limit."""


async def read_frames(
    reader: asyncio.StreamReader,
    *,
    max_bytes: int,
    idle_timeout: float | None,
    frame_timeout: float | None = None,
    chunk_size: int = 64 * 1024,
    progress: Progress | None = None,
) -> AsyncIterator[Frame]:
    """Yield each frame received on ``reader`` until EOF or ``idle_timeout`` seconds of
    silence (raises :class:`TimeoutError` then).

    The idle timeout restarts with every chunk, so a sender trickling one byte at a
    time (slow-loris) would hold the connection for ever: ``frame_timeout`` bounds the
    total time from a frame's first byte (after the previous frame) to its end block
    (raises :class:`FrameTimeout`).  ``progress``, when given, is kept up to date."""
    loop = asyncio.get_running_loop()
    progress = progress or Progress()
    progress.last = loop.time()
    inside = False
    parts: list[bytes] = []
    size = 0
    oversize = False
    deadline: float | None = None  # set when the bytes of the next frame start
    while True:
        wait = idle_timeout
        if deadline is not None:
            left = deadline - loop.time()
            if left <= 0:
                raise FrameTimeout
            wait = left if wait is None else min(wait, left)
        try:
            chunk = await asyncio.wait_for(reader.read(chunk_size), wait)
        except asyncio.TimeoutError:
            if deadline is not None and loop.time() >= deadline:
                raise FrameTimeout from None
            raise
        if not chunk:
            return
        progress.received += len(chunk)
        progress.last = loop.time()
        if deadline is None and frame_timeout is not None:
            deadline = loop.time() + frame_timeout
        pos = 0
        n = len(chunk)
        while pos < n:
            if not inside:
                start = chunk.find(START_BLOCK, pos)
                if start < 0:
                    break
                inside, parts, size, oversize = True, [], 0, False
                progress.inside = True
                pos = start + 1
                continue
            end = chunk.find(END_BLOCK, pos)
            restart = chunk.find(START_BLOCK, pos, None if end < 0 else end)
            if restart >= 0:  # the sender began again: yield what came, read anew
                # (only the head is kept: the listener reads nothing but its MSH)
                piece = chunk[pos:restart]
                size += len(piece)
                head = b"".join(parts) if oversize else b"".join(parts) + piece
                yield Frame(head[:HEAD_KEEP], size, oversize or size > max_bytes,
                            abandoned=True)
                parts, size, oversize = [], 0, False
                pos = restart + 1
                if frame_timeout is not None:  # the new frame's clock starts now
                    deadline = loop.time() + frame_timeout
                continue
            piece = chunk[pos:] if end < 0 else chunk[pos:end]
            size += len(piece)
            if not oversize:
                if size > max_bytes:
                    oversize = True
                    head = b"".join(parts) + piece
                    parts = [head[:HEAD_KEEP]]
                else:
                    parts.append(piece)
            if end < 0:
                break
            progress.inside = False
            yield Frame(b"".join(parts), size, oversize)
            inside, parts = False, []
            pos = end + 1
            # the clock of the next frame starts with its first byte
            deadline = None
            if frame_timeout is not None and pos < n:
                deadline = loop.time() + frame_timeout
