"""Robustness: random and mutated input, partly bad files, size bounds, flat memory."""

from __future__ import annotations

import io
import sys
import tracemalloc
from pathlib import Path
from typing import IO, Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from b12drugs_hl7v2.framing import RawMessage, iter_messages
from b12drugs_hl7v2.message import SAFETY_NET
from b12drugs_hl7v2.reader import parse
from b12drugs_hl7v2.samples import synthetic_stream
from hl7_helpers import data, message, orders, parse_bytes, rejections

from b12drugs.errors import InputError
from b12drugs.models import Notice, Order, PatientContext, PatientEnd, Rejection, Skip

RECORDS = (Order, PatientContext, PatientEnd, Rejection, Skip, Notice)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(raw: bytes) -> list[Any]:
    """Parse; only InputError may escape; the safety net must never be needed."""
    try:
        recs = parse_bytes(raw)
    except InputError:
        return []
    assert all(isinstance(r, RECORDS) for r in recs)
    for r in recs:
        if isinstance(r, Rejection):
            assert SAFETY_NET not in r.reason, r
            assert r.location.line is not None or r.location.pointer
    return recs


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes(raw: bytes) -> None:
    _check(raw)


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes_after_a_message_header(tail: bytes) -> None:
    _check(b"MSH|^~\\&|A|B|C|D|2024||RDE^O11|X|P|2.5\r" + tail)
    _check(b"\x0bMSH" + tail + b"\x1c\r")


SAMPLE = data("sample.hl7") + data("rde_o25_v27.hl7") + data("rde_o01_v23.hl7")


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(SAMPLE) - 1),
            st.sampled_from([b"", b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"\x0b", b"\x1c"])
            | st.binary(max_size=5),
            st.integers(0, 4),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_mutated_valid_messages(edits: list[tuple[int, bytes, int]]) -> None:
    buf = bytearray(SAMPLE)
    for pos, blob, cut in edits:
        buf[pos : pos + cut] = blob
    _check(bytes(buf))


_SEGMENT_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x0b\x1c", blacklist_categories=["Cs"]),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(_SEGMENT_TEXT, min_size=1, max_size=4)), max_size=8))
def test_valid_messages_in_a_partly_bad_file_are_still_screened(
    plan: list[list[str] | None],
) -> None:
    """None = a valid message; a list = a message with random segments after MSH."""
    chunks: list[str] = []
    expected: list[str] = []
    for number, item in enumerate(plan, start=1):
        if item is None:
            chunks.append(
                message(
                    f"OK{number}",
                    body=(f"ORC|NW|ORD{number}", "RXE|^QD|^metformin 500 mg tablet|500||mg"),
                )
            )
            expected.append(f"ORD{number}@msg{number}")
        else:
            segs = [
                s
                for s in item
                if not s.lstrip(" \t\x00").startswith(("MSH", "FHS", "BHS", "BTS", "FTS"))
            ]
            head = f"MSH|^~\\&|A|B|C|D|2024||RDE^O11|BAD{number}|P|2.5"
            chunks.append("\r".join([head, *segs]) + "\r")
    recs = _check("".join(chunks).encode("utf-8"))
    got = [o.id for o in orders(recs) if o.id.startswith("ORD")]
    for order_id in expected:
        assert order_id in got


def test_oversize_message_is_rejected_and_the_next_one_read() -> None:
    big = message("BIG", body=("ORC|NW|O1", "NTE|1||" + "x" * 5000, "RXE|^QD|^metformin|1"))
    raw = (big + message("SMALL")).encode()
    recs = list(parse(io.BytesIO(raw), "big.hl7", max_message_bytes=2000))
    (rej,) = rejections(recs)
    assert rej.location.pointer == "message 1 (MSH-10 BIG), MSH"
    assert "2000-byte limit" in rej.reason
    assert [o.id for o in orders(recs)] == ["ORD1@msg2"]


def test_overlong_line_without_separator_is_bounded() -> None:
    raw = message("LONG").encode() + b"MSH|^~\\&|A|B|C|D|2024||RDE^O11|L2|P|2.5|" + b"y" * 300_000
    recs = list(parse(io.BytesIO(raw), "long.hl7", max_message_bytes=10_000))
    assert len(orders(recs)) == 1
    (rej,) = rejections(recs)
    assert "message 2 (MSH-10 L2)" in str(rej.location)


def test_bad_segment_id_rejects_that_message_only() -> None:
    raw = (
        message("A", body=("ORC|NW|O1", "rx e|bad", "RXE|^QD|^metformin|1")) + message("B")
    ).encode()
    recs = parse_bytes(raw)
    (rej,) = rejections(recs)
    assert "does not start with a segment id" in rej.reason
    assert rej.location.line == 4
    assert rej.location.pointer == "message 1 (MSH-10 A), segment 4"
    assert [o.id for o in orders(recs)] == ["ORD1@msg2"]


def test_non_hl7v2_version_and_missing_type_are_rejected() -> None:
    recs = parse_bytes((message("V3", version="3.0") + message("NT", msg_type="")).encode())
    reasons = [f"{r.location.pointer}: {r.reason}" for r in rejections(recs)]
    assert reasons == [
        "message 1 (MSH-10 V3), MSH[1]-12: version '3.0' is not HL7 v2",
        "message 2 (MSH-10 NT), MSH[1]-9: message type missing",
    ]


def test_rxc_without_code_and_order_without_drug_segment() -> None:
    body = ("ORC|NW|O1", "RXE|^QD|^base|1", "RXC|A||1|mg", "ORC|NW|O2")
    recs = parse_bytes(message("E1", body=body).encode())
    reasons = sorted(f"{r.location.pointer}: {r.reason}" for r in rejections(recs))
    assert reasons == [
        "message 1 (MSH-10 E1), ORC[2]: order has no RXO, RXE or RXD segment",
        "message 1 (MSH-10 E1), RXC[1]-2: no compound component code or text",
    ]


class _GeneratedStream(io.RawIOBase):
    """A file-like object producing ``count`` messages on the fly (never all in memory)."""

    def __init__(self, count: int):
        self._gen = synthetic_stream(count)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._gen)
            except StopIteration:
                break
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


@pytest.mark.slow  # ~5-15 s: tracemalloc traces every allocation of 10,000 messages
def test_ten_thousand_messages_stream_with_flat_memory() -> None:
    tracemalloc.start()
    try:
        count = 0
        for rec in parse(cast(IO[bytes], _GeneratedStream(10_000)), "10k.hl7"):
            count += isinstance(rec, Order)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    # one message and one 64 KiB read chunk at a time: far below what 3.5 MB of input
    # (or 30,000 records) would take if anything accumulated
    assert peak < 2 * 1024 * 1024, peak


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40))
def test_read_chunk_boundaries_do_not_change_the_messages(chunk_size: int) -> None:
    """A \\r\\n or an MLLP byte split across two reads must not change the segments."""
    raw = data("omp_o09_v28.hl7") + data("mllp_stream.hl7") + data("batch.hl7")

    def split(size: int) -> list[tuple[int, list[bytes], list[int]]]:
        items = iter_messages(io.BytesIO(raw), chunk_size=size)
        return [(m.number, m.segments, m.lines) for m in items if isinstance(m, RawMessage)]

    assert split(chunk_size) == split(64 * 1024)


def test_line_feed_inside_a_field_of_a_cr_message_is_data() -> None:
    """Segments end with \\r: a \\n inside NTE text must not split the segment (and
    so must not refuse the whole message)."""
    body = (
        "ORC|NW|ORD1",
        "RXE|^QD|861007^metformin hydrochloride 500 MG Oral Tablet^RXNORM|500||mg",
        "NTE|1||take with\nfood",
    )
    raw = (message("LF1", body=body) + message("LF2")).encode()
    recs = parse_bytes(raw)
    assert rejections(recs) == []
    assert [o.id for o in orders(recs)] == ["ORD1@msg1", "ORD1@msg2"]
    assert orders(recs)[0].rxnorm_codes() == ("861007",)


def test_line_feed_separated_messages_still_split_on_line_feeds() -> None:
    raw = (message("N1", sep="\n") + message("N2", sep="\r\n")).encode()
    assert len(orders(parse_bytes(raw))) == 2
