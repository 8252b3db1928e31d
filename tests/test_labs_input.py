"""The CSV labs file (``labs`` input format): sniffing, reading, and screening it beside a
dispensing export."""

from __future__ import annotations

import io
import json
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from b12drugs.cli import cli
from b12drugs.engines.record import detect_format
from b12drugs.models import Notice, PatientContext, Rejection
from b12drugs.plugins import get_plugin_manager
from b12drugs.read import delimited, labs

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dispensing.csv"
LABS = (
    "patient_id,code,value,unit,date,interpretation\n"
    "P001,2132-9,450,pg/mL,2026-09-20,N\n"
    "P001,4548-4,7.1,%,2026-09-20,\n"
    "P002,13964-2,0.52,umol/L,2026-10-02,H\n"
    ",2132-9,300,pg/mL,2026-10-02,\n"
    "P003,2132-9,300,pg/mL,20-10-2026,\n"
    "P004,72160-5,18,pmol/L,2026-10-03T08:15:00Z,\n"
)


def records(text: str) -> list[object]:
    return list(labs.parse(io.BytesIO(text.encode()), "labs.csv"))


def test_sniffer_claims_labs_and_leaves_dispensing_exports_alone() -> None:
    formats = get_plugin_manager().hooks.input_formats()
    head = LABS.encode()
    got = detect_format(head, "labs.csv", formats)
    assert got is not None and got.name == "labs"
    disp = detect_format(EXAMPLE.read_bytes()[:4096], "dispensing.csv", formats)
    assert disp is not None and disp.name == "csv"
    assert labs.sniff(b"patient_id,drug_name,code,value,unit,date\n", "x.csv") == 0.0
    assert labs.sniff(b"patient_id,value,unit,date\n", "x.csv") == 0.0  # no code column
    assert labs.sniff(b"MRN;LOINC;Result;Units;Result_Date\n", "x.txt") > 0.9
    assert delimited.sniff(head, "labs.csv") < labs.sniff(head, "labs.csv")


def test_rows_become_patient_contexts_with_labs() -> None:
    got = records(LABS)
    contexts = [r for r in got if isinstance(r, PatientContext)]
    assert [c.id for c in contexts] == ["P001", "P002", "P004"]
    p1 = contexts[0].labs
    assert len(p1) == 1 and (p1[0].kind, p1[0].value, p1[0].unit) == ("b12", 450, "pg/mL")
    assert p1[0].interpretation == "normal" and str(p1[0].date) == "2026-09-20"
    assert contexts[1].labs[0].kind == "mma" and contexts[1].labs[0].interpretation == "high"
    assert contexts[2].labs[0].kind == "holotc" and str(contexts[2].labs[0].date) == "2026-10-03"
    rejected = [r for r in got if isinstance(r, Rejection)]
    assert (rejected[0].location.line, rejected[0].reason) == (5, "no patient_id")
    assert rejected[1].location.line == 6 and rejected[1].record_id == "P003"
    notes = [r for r in got if isinstance(r, Notice)]
    assert len(notes) == 1 and notes[0].message.startswith("1 lab row(s)")


def test_test_name_is_used_when_the_code_is_local() -> None:
    got = records("mrn,test_code,test_name,result,units,collection_date\n"
                  "A1,LAB123,Vitamin B12 serum,<150,pg/mL,2026-01-05\n")
    ctx = got[0]
    assert isinstance(ctx, PatientContext)
    assert ctx.labs[0].kind == "b12" and ctx.labs[0].value == 150


def test_screen_takes_labs_beside_dispensing(tmp_path: Path) -> None:
    path = tmp_path / "labs.csv"
    path.write_text(LABS)
    plain = CliRunner().invoke(cli, ["screen", str(EXAMPLE), "-f", "json", "--as-of",
                                     "2026-11-21"], catch_exceptions=False)
    both = CliRunner().invoke(cli, ["screen", str(EXAMPLE), str(path), "-f", "json",
                                    "--as-of", "2026-11-21"], catch_exceptions=False)
    before = {(a["patient_id"], a["class_id"]): a for a in json.loads(plain.stdout)["alerts"]}
    after = {(a["patient_id"], a["class_id"]): a for a in json.loads(both.stdout)["alerts"]}
    key = ("P001", "metformin")
    assert before[key]["monitoring"] == {"last_result": None, "due": True, "due_date": None}
    assert after[key]["monitoring"]["due"] is False
    assert after[key]["monitoring"]["due_date"] == "2027-09-20"
    assert after[key]["severity"] == "info" and before[key]["severity"] != "info"
    assert "next due 2027-09" in after[key]["summary"]
    report = json.loads(both.stdout)
    assert str(path) in report["sources"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_parser_never_crashes(data: bytes) -> None:
    body = b"patient_id,code,value,unit,date\n" + data
    try:
        out = list(labs.parse(io.BytesIO(body), "x.csv"))
    except Exception as exc:  # only the documented whole-input error
        from b12drugs.errors import InputError

        assert isinstance(exc, InputError)
        return
    assert all(isinstance(r, (PatientContext, Rejection, Notice)) for r in out)
