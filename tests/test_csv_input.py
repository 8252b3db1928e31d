"""The builtin CSV and JSON(L) readers: columns, bad rows, robustness."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b12drugs.errors import InputError
from b12drugs.models import (
    NDC_SYSTEM,
    RXNORM_SYSTEM,
    Notice,
    Order,
    PatientContext,
    Rejection,
)
from b12drugs.read import delimited as csv_input
from b12drugs.read import jsonl as jsonl_input
from b12drugs.testing import InputFormatContract

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def parse(text: str | bytes) -> list[object]:
    data = text.encode() if isinstance(text, str) else text
    return list(csv_input.parse(io.BytesIO(data), "f.csv"))


def orders(records: list[object]) -> list[Order]:
    return [r for r in records if isinstance(r, Order)]


class TestCsvContract(InputFormatContract):
    format_name = "csv"
    sample_path = EXAMPLES / "dispensing.csv"


class TestJsonlContract(InputFormatContract):
    format_name = "jsonl"
    sample_path = EXAMPLES / "orders.jsonl"


def test_documented_columns_are_read() -> None:
    records = parse(
        "patient_id,rx_id,drug_name,rxcui,ndc,status,start_date,days_supply,birth_date,conditions\n"
        "P1,R1,Metformin 500 mg,6809,0781-1506-10,Active,2024-01-02,90,1950-03-04,"
        "Anemia;snomed:271737000\n"
    )
    ctx, order = records
    assert isinstance(order, Order)
    assert isinstance(ctx, PatientContext) and str(ctx.birth_date) == "1950-03-04"
    assert [(c.system, c.code, c.text) for c in ctx.conditions] == [
        (None, None, "Anemia"), ("snomed", "271737000", None)]
    assert order.codings[0].system == RXNORM_SYSTEM and order.codings[0].code == "6809"
    assert order.codings[1].system == NDC_SYSTEM and order.codings[1].code == "00781150610"
    assert (order.id, order.patient_id, order.status, order.days_supply) == ("R1", "P1",
                                                                             "active", 90)
    assert order.source is not None and (order.source.file, order.source.line) == ("f.csv", 2)


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
def test_delimiters_and_aliases(delim: str) -> None:
    text = delim.join(["MRN", "Order_ID", "Medication"]) + "\n" + delim.join(
        ["m1", "o1", "omeprazole 20 mg"]) + "\n"
    [order] = parse(text)
    assert isinstance(order, Order)
    assert (order.patient_id, order.id, order.text) == ("m1", "o1", "omeprazole 20 mg")


def test_bad_rows_are_rejected_with_line_and_reason_and_the_rest_read() -> None:
    text = (
        "patient_id,rx_id,drug_name,ndc,start_date,days_supply\n"
        "P1,R1,metformin,,2024-01-01,30\n"
        "P1,R2,omeprazole,,yesterday,30\n"
        "P1,R3,famotidine,,2024-01-01,thirty\n"
        "P1,R4,colchicine\n"
        "P1,R5,neomycin,12-34,2024-01-01,30\n"
        "P1,R6,lansoprazole,,2024-01-01,30\n"
    )
    records = parse(text)
    rejected = {r.location.line: r.reason for r in records if isinstance(r, Rejection)}
    assert set(rejected) == {3, 4, 5, 6}
    assert "start_date" in rejected[3] and "ISO date" in rejected[3]
    assert "days_supply" in rejected[4]
    assert "3 fields" in rejected[5]
    assert "ndc" in rejected[6]
    assert [r.id for r in records if isinstance(r, Order)] == ["R1", "R6"]


def test_cells_that_are_not_utf8_are_read_as_windows_1252_and_said_once() -> None:
    """Exports from Windows systems: no row may be lost to its encoding."""
    data = (b"rx_id,drug_name\nR1,metformin\nR2,caf\xe9 tablet\nR3,omeprazole\n"
            b"R4,na\xefve \x80 10 mg\n")
    records = parse(data)
    assert [(r.id, r.text) for r in orders(records)] == [
        ("R1", "metformin"), ("R2", "café tablet"), ("R3", "omeprazole"),
        ("R4", "naïve € 10 mg")]
    [note] = [r for r in records if isinstance(r, Notice)]
    assert note.kind == "info" and "Windows-1252" in note.message and note.source == "f.csv"


def test_huge_field_is_rejected_not_fatal() -> None:
    text = "rx_id,drug_name\nR1," + "x" * 300_000 + "\nR2,metformin\n"
    records = parse(text)
    assert [r.id for r in records if isinstance(r, Order)] == ["R2"]
    assert any(isinstance(r, Rejection) for r in records)


def test_quoted_multiline_fields_keep_line_numbers() -> None:
    text = 'rx_id,drug_name\nR1,"metformin\n500 mg"\nR2,"bad\n'
    records = parse(text)
    assert isinstance(records[0], Order) and records[0].source.line == 2  # type: ignore[union-attr]
    assert isinstance(records[1], Rejection) and records[1].location.line == 4


def test_empty_and_headerless_files_are_input_errors() -> None:
    with pytest.raises(InputError, match="empty"):
        parse(b"")
    with pytest.raises(InputError, match="no drug column"):
        parse("name,age\nx,1\n")


def test_missing_rx_id_uses_file_and_line() -> None:
    [order] = parse("drug_name\nmetformin\n")
    assert isinstance(order, Order) and order.id == "f.csv:2"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_csv_reader_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    try:
        records = parse(b"rx_id,drug_name,start_date,ndc\n" + data)
    except InputError:
        return
    assert all(isinstance(r, (Order, PatientContext, Rejection, Notice)) for r in records)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_jsonl_reader_never_raises(text: str) -> None:
    records = list(jsonl_input.parse_jsonl(io.BytesIO(text.encode("utf-8", "replace")), "x"))
    assert all(isinstance(r, (Order, PatientContext, Rejection)) for r in records)


def test_jsonl_records_and_errors() -> None:
    data = (
        b'{"record": "patient", "id": "p1", "age": 70}\n'
        b'{"record": "order", "id": "r1", "patient_id": "p1", "text": "metformin"}\n'
        b'{"id": "r2", "text": "x", "colour": "red"}\n'
        b"not json\n"
        b'{"record": "thing"}\n'
    )
    records = list(jsonl_input.parse_jsonl(io.BytesIO(data), "x.jsonl"))
    assert isinstance(records[0], PatientContext) and isinstance(records[1], Order)
    reasons = {r.location.line: r.reason for r in records if isinstance(r, Rejection)}
    assert "colour" in reasons[3] and "invalid JSON" in reasons[4] and "thing" in reasons[5]


def test_json_document_with_pointers() -> None:
    data = b'{"patient": {"id": "p"}, "orders": [{"id": "1", "text": "metformin"}, 5]}'
    records = list(jsonl_input.parse_json(io.BytesIO(data), "x.json"))
    assert isinstance(records[0], PatientContext) and isinstance(records[1], Order)
    assert isinstance(records[2], Rejection) and records[2].location.pointer == "/orders/1"
    with pytest.raises(InputError):
        list(jsonl_input.parse_json(io.BytesIO(b"[1,2"), "x.json"))


def test_one_bad_row_in_a_chunk_rejects_only_that_row() -> None:
    rows = "".join(f"R{i},metformin,2024-01-01\n" for i in range(100))
    text = "rx_id,drug_name,start_date\n" + rows + "R100,omeprazole,13/13/2024\n" + rows
    records = parse(text)
    assert sum(isinstance(r, Order) for r in records) == 200
    [rej] = [r for r in records if isinstance(r, Rejection)]
    assert rej.location.line == 102 and "start_date" in rej.reason


def test_nul_bytes_never_escape_as_csv_errors() -> None:
    # Python 3.10's csv module refuses NUL bytes; 3.11+ reads them: both end cleanly.
    assert csv_input.sniff(b"rx_id,drug\x00_name\n", "export") < 0.5
    with pytest.raises(InputError):
        parse(b"rx_id,drug\x00_name\nR1,metformin\n")
    records = parse(b"rx_id,drug_name\nR1,met\x00formin\nR2,omeprazole\n")
    assert any(isinstance(r, Order) and r.id == "R2" for r in records)


def test_unclosed_quote_at_end_of_file_is_rejected_with_its_lines() -> None:
    """A quote left open used to swallow every following row into the first row's drug
    (attributing their drugs to its patient) with no notice."""
    text = ('patient_id,rx_id,drug_name\np1,r1,"lisinopril 10 mg\n'
            "p2,r2,omeprazole 20 mg\np3,r3,metformin 500 mg\n")
    records = parse(text)
    assert not any(isinstance(r, Order) for r in records)
    [rej] = records
    assert isinstance(rej, Rejection) and rej.location.line == 2
    assert "unbalanced quote" in rej.reason and "lines 2-4" in rej.reason


def test_quote_closed_rows_later_rejects_the_swallowed_rows() -> None:
    text = ('patient_id,rx_id,drug_name\np1,r1,"lisinopril 10 mg\n'
            'p2,r2,omeprazole 20 mg\np3,r3,"\np4,r4,omeprazole\n')
    records = parse(text)
    assert [r.id for r in records if isinstance(r, Order)] == ["r4"]
    [rej] = [r for r in records if isinstance(r, Rejection)]
    assert rej.location.line == 2 and "lines 2-4" in rej.reason


def test_genuine_multiline_cell_is_still_read() -> None:
    text = 'patient_id,rx_id,drug_name\np1,r1,"metformin\n500 mg"\np2,r2,omeprazole\n'
    records = parse(text)
    assert [(r.id, r.source.line) for r in orders(records)] == [  # type: ignore[union-attr]
        ("r1", 2), ("r2", 4)]


class _RecordingStream(io.BytesIO):
    """Records the size of every piece a reader takes."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.pieces: list[int] = []

    def readline(self, size: int | None = -1) -> bytes:
        got = super().readline(size)
        self.pieces.append(len(got))
        return got

    def __next__(self) -> bytes:
        got = super().__next__()
        self.pieces.append(len(got))
        return got


def test_jsonl_never_holds_more_than_a_bounded_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader used to read a whole physical line (any size) before checking it."""
    monkeypatch.setattr(jsonl_input, "MAX_LINE", 100)
    data = (b'{"id": "1", "text": "metformin"}\n' + b'{"id": "2", "text": "' + b"x" * 1000
            + b'"}\n' + b'{"id": "3", "text": "omeprazole"}\n' + b"y" * 150)
    stream = _RecordingStream(data)
    records = list(jsonl_input.parse_jsonl(stream, "f.jsonl"))
    assert max(stream.pieces) <= 101
    assert [r.id for r in records if isinstance(r, Order)] == ["1", "3"]
    assert [(r.location.line, "longer than 100" in r.reason)
            for r in records if isinstance(r, Rejection)] == [(2, True), (4, True)]
