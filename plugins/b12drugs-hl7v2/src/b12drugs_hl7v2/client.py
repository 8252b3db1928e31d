"""A small blocking MLLP client: send messages, collect their ACKs.

Used by ``b12drugs hl7 send``, the tests and the benchmark; handy to try a listener
from a shell.  One TCP connection, one message at a time (send, wait for the ACK).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .fields import Encoding, unescape
from .framing import END_BLOCK, START_BLOCK
from .mllp import frame

MAX_ACK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Ack:
    """The parts of an ACK a sender acts on."""

    code: str
    control_id: str
    text: str
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Ack:
        text = raw.decode("utf-8", "replace")
        segments = [s for s in text.replace("\n", "\r").split("\r") if s]
        code = control = msg = ""
        enc = Encoding()
        for seg in segments:
            if seg.startswith("MSH") and len(seg) >= 8:
                e = seg[4:8]
                enc = Encoding(seg[3], e[0], e[1], e[2], e[3])
            if seg.startswith("MSA") and len(seg) > 3:
                parts = seg.split(enc.field)
                code = parts[1] if len(parts) > 1 else ""
                control = unescape(parts[2], enc) if len(parts) > 2 else ""
                msg = unescape(parts[3], enc) if len(parts) > 3 else ""
        return cls(code, control, msg, raw)


class MLLPClient:
    """``with MLLPClient(host, port) as c: ack = c.send(message)``."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._buf = b""

    def __enter__(self) -> MLLPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (e.g. a deliberately broken frame)."""
        self.sock.sendall(data)

    def send(self, message: bytes) -> Ack:
        self.sock.sendall(frame(message))
        return self.receive()

    def receive(self) -> Ack:
        """Read the next framed answer."""
        while True:
            start = self._buf.find(START_BLOCK)
            end = self._buf.find(END_BLOCK, start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0:
                body = self._buf[start + 1 : end]
                self._buf = self._buf[end + 1 :].lstrip(b"\r")
                return Ack.parse(body)
            if len(self._buf) > MAX_ACK_BYTES:
                raise ValueError("answer larger than 1 MiB without an MLLP end block")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before an ACK arrived")
            self._buf += chunk


def send_messages(
    host: str, port: int, messages: Iterable[bytes], *, timeout: float = 30.0
) -> Iterator[Ack]:
    """Send each message on one connection and yield its ACK."""
    with MLLPClient(host, port, timeout=timeout) as client:
        for message in messages:
            yield client.send(message)
