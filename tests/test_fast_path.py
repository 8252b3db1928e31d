"""The high-volume path (CSV blocks, OrderRow, the engine's hot loop) keeps exact books:
line numbers across blocks, capped-but-counted notices, patient contexts, and the
garbage-collector setting it borrows while feeding.  The engine's column-wise path
(:class:`OrderBlock`) and its row path give the same report."""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b12drugs.engines import Screener
from b12drugs.models import OrderRow, PatientEnd, Rejection
from b12drugs.read import delimited as csv_input
from b12drugs.read.delimited import make_patient
from b12drugs.records import Record, iter_rows


def _records(data: bytes) -> list[Record]:
    return list(iter_rows(csv_input.parse(io.BytesIO(data), "f.csv")))


def _blocks(data: bytes) -> list[Record]:
    return list(csv_input.parse(io.BytesIO(data), "f.csv"))


Reader = Callable[[bytes], list[Record]]


@pytest.fixture(params=["rows", "blocks"])
def read(request: pytest.FixtureRequest) -> Reader:
    """The engine's two paths for CSV rows: one by one, and column-wise in blocks."""
    return _records if request.param == "rows" else _blocks


def test_line_numbers_stay_exact_across_blocks_with_multiline_rows() -> None:
    rows = [f"R{i},metformin,2024-01-01\n" for i in range(1500)]
    rows[10] = 'R10,"metformin\n500 mg\ntablet",2024-01-01\n'  # spans 3 lines
    rows[700] = "R700,omeprazole,2024-13-01\n"  # bad date, second block
    rows[1300] = 'R1300,"a\r\nb",2024-01-01\n'  # spans 2 lines, third block
    data = ("rx_id,drug_name,start_date\n" + "".join(rows) + "R1500,x,2024-02-30\n").encode()
    records = _records(data)
    orders = {r.id: r.line for r in records if isinstance(r, OrderRow)}
    rejected = {r.record_id: r.location.line for r in records if isinstance(r, Rejection)}
    # header is line 1, row i starts at line i + 2, plus 2 extra lines after R10 and
    # 1 more after R1300
    assert orders["R9"] == 11 and orders["R10"] == 12 and orders["R11"] == 15
    assert rejected == {"R700": 704, "R1500": 1505}
    assert orders["R1300"] == 1304 and orders["R1301"] == 1306
    assert len(orders) + len(rejected) == 1501


def test_bad_bytes_reject_only_their_row_in_a_later_block() -> None:
    head = b"rx_id,drug_name\n" + b"".join(b"R%d,metformin\n" % i for i in range(1000))
    data = head + b"R1000,met\xffformin\n" + b"R1001,omeprazole\n"
    records = _records(data)
    [rej] = [r for r in records if isinstance(r, Rejection)]
    assert rej.location.line == 1002 and "UTF-8" in rej.reason
    assert sum(isinstance(r, OrderRow) for r in records) == 1001


@pytest.mark.parametrize("batch", [1 << 16, 64])  # one block; blocks past the limit
def test_inactive_rows_beyond_the_notice_limit_are_counted_not_listed(
        read: Reader, batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_input._Reader, "BATCH_BYTES", batch)
    data = b"rx_id,patient_id,drug_name,status\n" + b"".join(
        b"R%d,P%d,%s,%s\n" % (i, i % 7, b"metformin" if i % 3 else b"omeprazole",
                              b"stopped" if i % 2 else b"active") for i in range(60))
    s = Screener(notice_limit=5)
    s.feed(read(data), "f.csv")
    report = s.finish()
    skipped = [n for n in report.notices if n.kind == "skipped"]
    assert report.counts.skipped == 30 and report.counts.screened == 30
    assert [n.location for n in skipped[:5]] == ["f.csv:3", "f.csv:5", "f.csv:7", "f.csv:9",
                                                 "f.csv:11"]
    assert "25 more skipped notices" in skipped[5].message
    orders = sorted(o for a in report.alerts for o in a.orders)
    assert orders == sorted(f"R{i}" for i in range(0, 60, 2))  # every active row alerted


def _row(rx: str, text: str, line: int, fields: tuple[str, ...]) -> OrderRow:
    return OrderRow(rx, "P1", text, (), "active", None, None, None, "f.csv", line, fields,
                    make_patient)


def test_patient_context_follows_changed_columns_and_patient_end() -> None:
    plain = ("1940-01-01", "", "", "")
    anemic = ("1940-01-01", "", "", "Anemia")
    s = Screener()
    s.feed([
        _row("1", "metformin 500 mg", 2, plain),
        _row("2", "metformin 850 mg", 3, plain),  # same columns: context reused
        _row("3", "metformin 1000 mg", 4, anemic),  # changed columns: merged in
        PatientEnd(patient_id="P1"),
        _row("4", "omeprazole 20 mg", 6, anemic),  # after the end: built again
    ], "f.csv")
    report = s.finish()
    by_class = {a.class_id: a for a in report.alerts}
    assert set(by_class["metformin"].orders) == {"1", "2", "3"}
    assert "anemia" in " ".join(by_class["metformin"].risk_factors).lower()
    assert "anemia" in " ".join(by_class["proton_pump_inhibitors"].risk_factors).lower()


def test_feeding_raises_the_collector_threshold_and_restores_it() -> None:
    seen: list[int] = []

    def records() -> Iterator[Record]:
        seen.append(gc.get_threshold()[0])
        yield _row("1", "metformin", 2, ("", "", "", ""))

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, before[1], before[2])
        Screener().feed(records(), "f.csv")
        assert seen == [50_000] and gc.get_threshold()[0] == 700
        gc.set_threshold(0, before[1], before[2])  # a disabled collector is left alone
        Screener().feed(records(), "f.csv")
        assert seen[-1] == 0 and gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


def test_patient_columns_on_rows_without_findings_still_count(read: Reader) -> None:
    """The fast path used to build a patient's context only from rows with findings, so a
    risk factor written only on an unrelated row (lisinopril) was lost."""
    data = (b"patient_id,rx_id,drug_name,start_date,birth_date,conditions\n"
            b"P1,R1,lisinopril 10 mg,2020-01-01,1940-01-01,Pernicious anemia\n"
            b"P1,R2,metformin 500 mg,2020-01-01,,\n")
    s = Screener()
    s.feed(read(data), "f.csv")
    report = s.finish()
    [alert] = report.alerts
    assert alert.patient_id == "P1" and alert.severity == "critical"
    assert s._held == {}


def test_patient_columns_after_blank_ones_still_count(read: Reader) -> None:
    data = (b"patient_id,rx_id,drug_name,start_date,birth_date,conditions\n"
            b"P1,R0,amlodipine 5 mg,2020-01-01,,\n"
            b"P1,R1,lisinopril 10 mg,2020-01-01,1940-01-01,Pernicious anemia\n"
            b"P1,R2,metformin 500 mg,2020-01-01,,\n"
            b"P2,R3,metformin 500 mg,2020-01-01,,\n"
            b"P2,R4,lisinopril 10 mg,2020-01-01,,\n")
    s = Screener()
    s.feed(read(data), "f.csv")
    report = s.finish()
    severity = {a.patient_id: a.severity for a in report.alerts}
    assert severity["P1"] == "critical" and severity["P2"] != "critical"


_DRUGS = ("metformin 500 mg", "omeprazole 20 mg", "lisinopril 10 mg", "xyzzy 5 mg",
          "folic acid 1 mg", "neomycin cream", "cyanocobalamin 1000 mcg")
_CELLS = st.tuples(
    st.sampled_from(("P1", "P2", "P3", "")),  # patient_id
    st.sampled_from(_DRUGS),
    st.sampled_from(("active", "stopped", "")),
    st.sampled_from(("", "1940-01-01", "1990-05-05", " 1950-02-03", "1950-02-30",
                     "19500203", "1950-02-03x")),  # birth_date: padded, bad, compact
    st.sampled_from(("", "Pernicious anemia", "Anemia", "Vegan diet")),  # conditions
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_CELLS, max_size=40))
def test_blocks_and_rows_give_the_same_report(rows: list[tuple[str, ...]]) -> None:
    """Column-wise blocks (several per file here) and single rows: the same alerts, the
    same notices in the same order, the same counts."""
    lines = [f"{p},R{i},{d},{st_},2020-01-01,{b},{c}\n" for i, (p, d, st_, b, c) in
             enumerate(rows)]
    data = ("patient_id,rx_id,drug_name,status,start_date,birth_date,conditions\n"
            + "".join(lines)).encode()
    reports = []
    for read in (_records, _blocks):
        saved = csv_input._Reader.CHUNK, csv_input._Reader.BATCH_BYTES
        csv_input._Reader.CHUNK, csv_input._Reader.BATCH_BYTES = 7, 200
        try:
            s = Screener()
            s.feed(read(data), "f.csv")
        finally:
            csv_input._Reader.CHUNK, csv_input._Reader.BATCH_BYTES = saved
        reports.append(s.finish().model_dump(exclude={"generated_at"}))
    assert reports[0] == reports[1]
    assert reports[0]["counts"]["read"] == len(rows)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["", " ", "1950-02-03", "1950-02-29", "19500203",
                                           "1952-02-29", "2024-W01-1", "0001-01-01"]),
                          st.text(alphabet="0123456789-T: W", max_size=12)), max_size=4))
def test_plain_birth_dates_are_dates_the_exact_check_accepts(values: list[str]) -> None:
    """``_plain_dates`` (one C loop) may only accept what ``_date`` accepts: it decides
    alone for a block when it says yes."""
    if csv_input._plain_dates(values):
        for value in values:
            assert csv_input._date(value.strip(), "birth_date") is not None


def test_plain_birth_dates_take_the_c_loop_and_the_rest_the_exact_check() -> None:
    assert csv_input._plain_dates(["1950-02-03", "1952-02-29"])
    for odd in ([""], [" 1950-02-03"], ["1950-02-30"], ["1950-02-03", "x"]):
        assert not csv_input._plain_dates(odd), odd


# -- the reader's split path and the csv module read every file alike ------------------

_FIELD = st.text(alphabet=st.sampled_from(list("ab1-:é ,\"\n\r\t;|")), max_size=6)
_ROW = st.lists(_FIELD, min_size=1, max_size=5)


def _csv_module_only(data: bytes) -> list[Record]:
    """The reference: every batch through the csv module (no split path)."""
    saved = csv_input._Reader._split
    csv_input._Reader._split = lambda self, raw, longest=None: None  # type: ignore[assignment,method-assign]
    try:
        return _records(data)
    finally:
        csv_input._Reader._split = saved  # type: ignore[method-assign]


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(_ROW, st.booleans(), st.sampled_from(["\n", "\r\n"])),
                     max_size=30),
       batch=st.sampled_from([1, 16, 64, 1 << 16]), tail=st.booleans(),
       delim=st.sampled_from([",", ",", ";", "\t", "|"]))
def test_split_path_reads_like_the_csv_module(rows: list[tuple[list[str], bool, str]],
                                              batch: int, tail: bool, delim: str) -> None:
    """Quoted fields (also spanning lines and batches), stray quotes, blank lines, CRLF
    and LF, short and long rows, a last line without its line break, each delimiter:
    the split path and the csv module give the same orders and rejections, line
    numbers included."""
    lines = []
    for fields, quoted, end in rows:
        if quoted:  # as a CSV writer quotes
            buf = io.StringIO()
            csv.writer(buf, delimiter=delim, lineterminator=end).writerow(fields)
            lines.append(buf.getvalue())
        else:  # as a careless export joins
            lines.append(delim.join(fields) + end)
    header = delim.join(["patient_id", "rx_id", "drug_name", "status", "birth_date"])
    text = header + "\n" + "".join(lines)
    if not tail:
        text = text.rstrip("\r\n")
    data = text.encode()
    saved = csv_input._Reader.BATCH_BYTES
    csv_input._Reader.BATCH_BYTES = batch
    try:
        got = _records(data)
    finally:
        csv_input._Reader.BATCH_BYTES = saved
    assert got == _csv_module_only(data)


def test_split_path_takes_plain_batches_and_leaves_the_rest() -> None:
    """What takes the split path: unquoted batches of the header's width, LF or CRLF.
    Quotes, a CR inside a line, NUL, bad UTF-8 and a short row send a batch to the csv
    module."""
    reader = csv_input._Reader(io.BytesIO(b"rx_id,drug_name\n"), "f.csv")
    assert reader._split([b"R1,metformin\n", b"R2, omeprazole \r\n"]) == [
        ["R1", "R2"], ["metformin", " omeprazole "]]
    assert reader._split([b"R1,metformin"]) == [["R1"], ["metformin"]]  # last line
    # CRs ending a line end the row, as in the csv module, which ignores the ones after
    assert reader._split([b"R1,metformin\r\r\n", b"R2,x\r"]) == [["R1", "R2"], ["metformin", "x"]]
    assert [list(r) for r in csv.reader(["R1,metformin\r\r\n", "R2,x\r"])] == [
        ["R1", "metformin"], ["R2", "x"]]
    for raw in ([b'R1,"metformin"\n'], [b"R1,met\rformin\n"], [b"R1,met\x00\n"],
                [b"R1,m\xe9t\n"], [b"R1,metformin\n", b"R2\n"], [b"R1,a,b\n"],
                [b"\n"], [b"R1,a,b\n", b"R2\n"]):  # the last: 3 + 1 fields, 2 rows of 2
        assert reader._split(raw) is None, raw


def test_quoted_field_open_across_a_batch_boundary_is_one_row() -> None:
    """A note field with line breaks that spans two batches is read as one row, and the
    rows after it take the split path again, with their own line numbers."""
    note = "line one\nline two\nline three"
    text = ("rx_id,drug_name,note\n" + "".join(f"R{i},metformin,x\n" for i in range(5))
            + f'R5,omeprazole,"{note}"\n' + "".join(f"R{i},lisinopril,y\n" for i in range(6, 9)))
    saved = csv_input._Reader.BATCH_BYTES
    csv_input._Reader.BATCH_BYTES = 40  # a batch ends inside the note
    try:
        records = _records(text.encode())
    finally:
        csv_input._Reader.BATCH_BYTES = saved
    assert [r.id for r in records] == [f"R{i}" for i in range(9)]  # type: ignore[union-attr]
    assert [r.line for r in records] == [2, 3, 4, 5, 6, 7, 10, 11, 12]  # type: ignore[union-attr]
    assert records[5].text == "omeprazole"  # type: ignore[union-attr]


def test_long_lines_keep_the_field_limits_on_the_split_path() -> None:
    """Lines over 256 bytes are still checked field by field (a 300-character id is
    rejected with its line; the other rows are read)."""
    text = ("rx_id,drug_name\n" + "R1,metformin\n" + "R" * 300 + ",omeprazole\n"
            + "R3," + "x" * 1500 + "\n")
    records = _records(text.encode())
    assert [type(r).__name__ for r in records] == ["OrderRow", "Rejection", "OrderRow"]
    assert records[1].location.line == 3  # type: ignore[union-attr]
