"""ORU^R01 lab results and OBX segments: B12 status results become patient context."""

from __future__ import annotations

from datetime import date

import hl7_helpers as h
from b12drugs_hl7v2.message import RESULT_MESSAGES

from b12drugs import screen

ORU = (
    "OBR|1|ORD-L1|FIL-L1|2132-9^Vitamin B12^LN|||20260920081500",
    "OBX|1|NM|2132-9^Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma^LN||450|"
    "pg/mL^pg/mL^UCUM|200-900|N|||F|||20260920081500",
    "OBX|2|SN|13964-2^Methylmalonic acid^LN||<^0.2|umol/L|||||F",
    "OBX|3|NM|4548-4^Hemoglobin A1c^LN||7.1|%||H|||F",
    "OBX|4|NM|72160-5^Holotranscobalamin^LN||18|pmol/L||L|||X",
    "OBX|5|ST|LAB77^Active B12 (holoTC)^L||25 pmol/L|pmol/L|||||F|||20261001",
)


def test_oru_gives_labs_and_a_skip_but_no_patient_end() -> None:
    assert "ORU" in RESULT_MESSAGES
    recs = h.parse_bytes(h.message(msg_type="ORU^R01^ORU_R01", body=ORU).encode())
    (ctx,) = h.patients(recs)
    assert ctx.id == "HOSP:PAT1"
    kinds = [(lab.kind, lab.value, lab.unit, lab.date, lab.interpretation) for lab in ctx.labs]
    assert kinds == [
        ("b12", 450, "pg/mL", date(2026, 9, 20), "normal"),
        ("mma", 0.2, "umol/L", date(2026, 9, 20), None),  # date from OBR-7
        ("holotc", 25, "pmol/L", date(2026, 10, 1), None),  # by name, local code
    ]  # HbA1c not a B12 test; OBX-11 X (no result) not used
    (skip,) = h.skips(recs)
    assert "3 B12 status result(s)" in skip.reason
    assert h.ends(recs) == [] and h.orders(recs) == []


def test_oru_before_the_order_message_changes_the_alert() -> None:
    oru = h.message("L1", msg_type="ORU^R01^ORU_R01", body=ORU[:2])
    rde = h.message("C2")
    recs = h.parse_bytes((oru + rde).encode())
    report = screen(recs, config=h.config(as_of=date(2026, 11, 21)))
    alert = next(a for a in report.alerts if a.class_id == "metformin")
    assert alert.monitoring is not None and alert.monitoring.due is False
    assert "last B12 450 pg/mL on 2026-09-20; next due 2027-09" in alert.summary
    alone = screen(h.parse_bytes(rde.encode()), config=h.config(as_of=date(2026, 11, 21)))
    assert alone.alerts[0].monitoring is not None and alone.alerts[0].monitoring.due


def test_obx_beside_an_order_is_read_too() -> None:
    body = ("ORC|NW|ORD1",
            "RXE|^QD|861007^metformin hydrochloride 500 MG Oral Tablet^RXNORM|500||mg",
            "OBX|1|NM|2132-9^Vitamin B12^LN||120|pg/mL||L|||F|||20261101")
    recs = h.parse_bytes(h.message(body=body).encode())
    (ctx,) = h.patients(recs)
    assert ctx.labs[0].interpretation == "low"
    report = screen(recs, config=h.config(as_of=date(2026, 11, 21)))
    alert = report.alerts[0]
    assert alert.severity == "critical" and "low_serum_b12" in alert.risk_factors
