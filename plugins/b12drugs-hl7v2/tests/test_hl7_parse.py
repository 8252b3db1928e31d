"""The hl7v2 parser on hand-written messages of each type, version and layout."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from b12drugs_hl7v2.fields import Encoding, parse_ts, unescape
from b12drugs_hl7v2.reader import sniff
from hl7_helpers import (
    data,
    ends,
    message,
    orders,
    parse_bytes,
    patients,
    rejections,
    skips,
)

from b12drugs.errors import InputError
from b12drugs.models import RXNORM_SYSTEM, SNOMED_SYSTEM


def test_rde_o11_v25_patient_order_and_diagnosis() -> None:
    recs = parse_bytes(data("rde_o11_v25.hl7"), "rde.hl7")
    assert [type(r).__name__ for r in recs] == ["PatientContext", "Order", "PatientEnd"]
    (pat,) = patients(recs)
    assert pat.id == "EXAMPLE-HOSP:PAT1001"
    assert pat.birth_date == date(1948, 3, 15)
    assert pat.sex == "female"
    (cond,) = pat.conditions
    assert (cond.system, cond.code) == (SNOMED_SYSTEM, "368581000119106")
    assert cond.text == "Neuropathy due to type 2 diabetes mellitus"
    (o,) = orders(recs)
    assert o.id == "ORD-1001@msg1"
    assert o.patient_id == "EXAMPLE-HOSP:PAT1001"
    assert o.rxnorm_codes() == ("861007",)
    assert o.text == "metformin hydrochloride 500 MG Oral Tablet"
    assert o.status == "active"
    assert o.dose == "500 mg"
    assert o.daily_dose_mg == 1000.0  # RXE-19 total daily dose
    assert o.frequency == "BID"
    assert o.route == "oral"
    assert o.start_date == date(2024, 1, 5)  # ORC-15
    assert o.days_supply == 91  # TQ1-7 .. TQ1-8 inclusive
    assert o.source is not None
    assert o.source.file == "rde.hl7" and o.source.line == 7
    assert o.source.pointer == "message 1 (MSH-10 RDE0001), RXE[1]"
    assert ends(recs)[0].patient_id == "EXAMPLE-HOSP:PAT1001"


def test_rds_o13_v26_fake_ndc_and_rxnorm_alternate_with_newline_separators() -> None:
    recs = parse_bytes(data("rds_o13_v26.hl7"))
    (o,) = orders(recs)
    assert o.ndc_codes() == ("99999000101",)  # 5-4-2 normalised, labeler 99999 is fake
    assert o.rxnorm_codes() == ("198051",)
    assert o.status == "dispensed"  # ORC-5 CM on a dispense: the patient has the drug
    assert o.id == "ORD-2002@msg1"
    assert o.start_date == date(2024, 2, 10)
    assert o.source is not None and o.source.pointer is not None
    assert o.source.pointer.endswith("RXD[1]")  # the dispensed drug is the primary one


def test_omp_o09_v28_text_only_with_crlf_and_problem() -> None:
    recs = parse_bytes(data("omp_o09_v28.hl7"))
    (o,) = orders(recs)
    assert o.codings == ()
    assert o.text == "colchicine 0.6 mg tablet"
    assert o.days_supply == 30
    assert o.start_date == date(2024, 3, 1)
    (pat,) = patients(recs)
    assert pat.birth_date == date(1962, 3, 31)  # YYYYMM: last day, never overstate age
    assert [c.text for c in pat.conditions] == ["Gout"]


def test_rde_o01_v23_custom_encoding_characters_and_escapes() -> None:
    recs = parse_bytes(data("rde_o01_v23.hl7"))
    (o,) = orders(recs)
    assert o.text == "metformin 500 mg tablet # generic"  # !F! is the field separator '#'
    assert o.frequency == "TID"
    assert o.daily_dose_mg == 1500.0
    assert o.start_date == date(2024, 4, 1)  # RXE-1 TQ start
    assert o.days_supply == 30
    (pat,) = patients(recs)
    assert pat.id == "EXAMPLE-HOSP:PAT4004"
    assert pat.birth_date == date(1950, 12, 31)


def test_rde_o25_v27_compound_components_are_separate_orders_and_dc_is_stopped() -> None:
    recs = parse_bytes(data("rde_o25_v27.hl7"))
    by_id = {o.id: o for o in orders(recs)}
    assert set(by_id) == {
        "ORD-5005A@msg1",
        "ORD-5005A@msg1/RXC1",
        "ORD-5005A@msg1/RXC2",
        "ORD-5005B@msg1",
    }
    additive = by_id["ORD-5005A@msg1/RXC2"]
    assert additive.rxnorm_codes() == ("11248",)
    assert additive.dose == "1 mg"
    assert by_id["ORD-5005A@msg1/RXC1"].text == "sodium chloride 0.9% injection"
    assert by_id["ORD-5005B@msg1"].status == "stopped"
    assert by_id["ORD-5005A@msg1"].status == "active"


@pytest.mark.parametrize(
    ("control", "order_status", "expected"),
    [
        ("NW", "", "active"),
        ("XO", "", "active"),
        ("RP", "", "active"),
        ("DC", "", "stopped"),
        ("OD", "", "stopped"),
        ("CA", "", "cancelled"),
        ("OC", "", "cancelled"),
        ("SC", "CM", "completed"),
        ("SC", "DC", "stopped"),
        ("SC", "CA", "cancelled"),
        ("SC", "IP", "active"),
        ("HD", "", "on-hold"),
    ],
)
def test_order_control_and_status_mapping(control: str, order_status: str, expected: str) -> None:
    body = (f"ORC|{control}|ORD1|||{order_status}", "RXE|^QD|^metformin 500 mg tablet|1")
    (o,) = orders(parse_bytes(message(body=body).encode()))
    assert o.status == expected


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_all_segment_separators(sep: str) -> None:
    raw = (message("A", sep=sep) + message("B", sep=sep)).encode()
    recs = parse_bytes(raw)
    assert [o.id for o in orders(recs)] == ["ORD1@msg1", "ORD1@msg2"]
    assert not rejections(recs)


def test_batch_envelope_is_dropped_and_messages_read() -> None:
    recs = parse_bytes(data("batch.hl7"))
    assert [o.id for o in orders(recs)] == ["ORD-B1@msg1", "ORD-B2@msg2", "ORD-B3@msg3"]
    assert not rejections(recs) and not skips(recs)


def test_mllp_framed_file() -> None:
    recs = parse_bytes(data("mllp_stream.hl7"))
    assert [o.patient_id for o in orders(recs)] == ["EXAMPLE-HOSP:PAT7001", "EXAMPLE-HOSP:PAT7002"]
    assert not rejections(recs)


def test_versions_2_3_to_2_8_are_read() -> None:
    for version in ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"):
        recs = parse_bytes(message(version=version).encode())
        assert len(orders(recs)) == 1, version


@pytest.mark.parametrize(
    "msg_type", ["RDE^O11", "RDE^O25", "RDE^O01", "RDS^O13", "RDS^O17", "OMP^O09"]
)
def test_event_code_variants(msg_type: str) -> None:
    assert len(orders(parse_bytes(message(msg_type=msg_type).encode()))) == 1


def test_non_pharmacy_message_is_skipped_with_reason() -> None:
    recs = parse_bytes((message("A1", msg_type="ADT^A01") + message("R1")).encode())
    (skip,) = skips(recs)
    assert "ADT^A01" in skip.reason and "not screened" in skip.reason
    assert skip.location.pointer == "message 1 (MSH-10 A1), MSH[1]-9"
    assert len(orders(recs)) == 1


def test_orders_without_orc_and_ids_from_prescription_number() -> None:
    body: tuple[str, ...] = ("RXE|^QD|^metformin 500 mg|1||mg||||||||||RX-77",)
    (o,) = orders(parse_bytes(message("C9", body=body).encode()))
    assert o.id == "RX-77@msg1"
    body = ("ORC|NW||FILLER-5", "RXE|^QD|^metformin 500 mg|1")
    (o,) = orders(parse_bytes(message(body=body).encode()))
    assert o.id == "FILLER-5@msg1"


def test_missing_pid_gets_a_message_scoped_patient() -> None:
    recs = parse_bytes(message("C1", pid="").encode())
    (o,) = orders(recs)
    assert o.patient_id == "unidentified-message-1"
    assert ends(recs)[0].patient_id == "unidentified-message-1"


def test_local_codes_and_alternate_codes() -> None:
    body = ("ORC|NW|O1", "RXE|^QD|MET500^metformin 500 mg tab^LOCALRX^6809^metformin^RXNORM|1")
    (o,) = orders(parse_bytes(message(body=body).encode()))
    assert [(c.system, c.code) for c in o.codings] == [
        ("LOCALRX", "MET500"),
        (RXNORM_SYSTEM, "6809"),
    ]
    body = ("ORC|NW|O1", "RXE|^QD|MET500^metformin 500 mg tab|1")
    (o,) = orders(parse_bytes(message(body=body).encode()))
    assert [(c.system, c.code) for c in o.codings] == [("local:PHARM", "MET500")]


def test_invalid_ndc_is_kept_as_a_named_local_code_and_text_still_screened() -> None:
    body = ("ORC|NW|O1", "RXE|^QD|12-34^omeprazole 20 mg^NDC|1")
    (o,) = orders(parse_bytes(message(body=body).encode()))
    assert o.ndc_codes() == ()
    assert o.text == "omeprazole 20 mg"
    assert [(c.system, c.code) for c in o.codings] == [("NDC", "12-34")]


def test_rxo_and_rxe_codes_are_united_rxe_first() -> None:
    body = (
        "ORC|NW|O1",
        "RXO|^metformin 500 mg tablet|500||mg",
        "RXE|^BID|861007^metformin hydrochloride 500 MG Oral Tablet^RXNORM|500||mg",
    )
    (o,) = orders(parse_bytes(message(body=body).encode()))
    assert o.rxnorm_codes() == ("861007",)
    assert o.text == "metformin hydrochloride 500 MG Oral Tablet"
    assert o.daily_dose_mg == 1000.0


def test_prb_deleted_and_resolved_problems() -> None:
    pid = "PID|1||PAT1||X^Y||1950|F"
    body = (
        "PRB|DE|20240101|^Peripheral neuropathy^I10",
        "PRB|AD|20240101|^Anemia^I10|||||||||||^resolved",
        "DG1|1||^^^^Atrophic gastritis",
        "ORC|NW|O1",
        "RXE|^QD|^metformin 500 mg|1",
    )
    (pat,) = patients(parse_bytes(message(pid=pid, body=body).encode()))
    assert [(c.text, c.active) for c in pat.conditions] == [
        ("Anemia", False),
        ("Atrophic gastritis", True),
    ]


def test_stray_lines_before_the_first_message_are_reported() -> None:
    recs = parse_bytes(b"garbage line\nmore\n" + message().encode())
    (rej,) = rejections(recs)
    assert rej.location.line == 1
    assert "2 line(s) outside any HL7 message" in rej.reason
    assert len(orders(recs)) == 1


def test_no_message_at_all_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no HL7 v2 message"):
        parse_bytes(b"")
    with pytest.raises(InputError):
        parse_bytes(b"hello,world\n1,2\n")


def test_sniff() -> None:
    assert sniff(data("rde_o11_v25.hl7"), "x.txt") == 1.0
    assert sniff(data("mllp_stream.hl7"), "x") == 1.0
    assert sniff(b"\xef\xbb\xbfMSH|^~\\&|", "x") == 1.0
    assert sniff(data("batch.hl7"), "x") >= 0.9
    assert sniff(b"id,drug\n1,metformin\n", "x.csv") == 0.0
    assert sniff(b'{"resourceType": "Bundle"}', "x.json") == 0.0
    assert sniff(b"<Message/>", "x.xml") == 0.0
    assert sniff(b"MSHX", "x") == 0.0


def test_unescape_sequences() -> None:
    enc = Encoding()
    assert unescape("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", enc) == "a|b^c&d~e\\f"
    assert unescape("line\\.br\\two", enc) == "line two"
    assert unescape("\\X4D45\\", enc) == "ME"
    assert unescape("bad \\Xzz\\ hex", enc) == "bad  hex"
    assert unescape("unterminated \\F", enc) == "unterminated \\F"
    assert unescape("\\H\\bold\\N\\ \\Cxxxx\\ \\Zlocal\\", enc) == "bold  "


def test_parse_ts_precisions() -> None:
    assert parse_ts("19480315") == date(1948, 3, 15)
    assert parse_ts("194803") == date(1948, 3, 1)
    assert parse_ts("194802", latest=True) == date(1948, 2, 29)
    assert parse_ts("1948", latest=True) == date(1948, 12, 31)
    assert parse_ts("202401051230+0100") == date(2024, 1, 5)
    assert parse_ts("20241345") is None
    assert parse_ts("") is None


def test_invalid_dates_are_ignored_with_a_notice_not_silently() -> None:
    from b12drugs.models import Notice

    raw = message(
        pid="PID|1||PAT9^^^HOSP^MR||Example^Test||19X00315|F",
        body=("ORC|NW|ORD9" + "|" * 13 + "20241345",
              "RXE|^QD|^metformin 500 mg tablet|500||mg"),
    ).encode()
    records = parse_bytes(raw)
    assert len(orders(records)) == 1  # still screened
    notes = [r for r in records if isinstance(r, Notice)]
    pointers = sorted(n.message.split(":")[0] for n in notes)
    assert any("PID" in p and "7" in p for p in pointers), pointers
    assert any("ORC" in p and "15" in p for p in pointers), pointers
    assert all("19X0" not in n.message for n in notes)  # no patient data echoed


@pytest.mark.parametrize(
    ("pid3", "expected"),
    [
        ("12345^^^HOSP-A^MR", "HOSP-A:12345"),
        ("12345^^^&1.2.3.4&ISO^MR", "1.2.3.4:12345"),
        ("12345", "12345"),
    ],
)
def test_pid3_is_qualified_by_its_assigning_authority(pid3: str, expected: str) -> None:
    """Two hospitals may both issue 12345: CX.4 keeps their patients apart."""
    pid = f"PID|1||{pid3}||X^Y||1950|F"
    body = ("ORC|NW|O1", "RXE|^QD|^metformin 500 mg|1")
    (pat,) = patients(parse_bytes(message(pid=pid, body=body).encode()))
    assert pat.id == expected
    (o,) = orders(parse_bytes(message(pid=pid, body=body).encode()))
    assert o.patient_id == expected


def test_social_security_number_is_never_the_patient_id() -> None:
    pid = "PID|1||99-FAKE^^^SSA^SS~PAT5^^^HOSP^MR||X^Y||1950|F"
    body = ("ORC|NW|O1", "RXE|^QD|^metformin 500 mg|1")
    (pat,) = patients(parse_bytes(message(pid=pid, body=body).encode()))
    assert pat.id == "HOSP:PAT5"
    only_ssn = "PID|1||99-FAKE^^^SSA^SS||X^Y||1950|F"
    (pat,) = patients(parse_bytes(message("C9", pid=only_ssn, body=body).encode()))
    assert "99-FAKE" not in pat.id
