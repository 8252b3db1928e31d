"""HL7 v2 coded elements with coding system WC (table 0396: WHO ATC)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from hl7_helpers import message, orders, parse_bytes

from b12drugs.engines import screen
from b12drugs.models import ATC_SYSTEM


def _rxe(give: str) -> bytes:
    return message("ATC1", body=("ORC|NW|ORD9", f"RXE|^QD|{give}|500||mg")).encode()


def test_wc_coding_system_is_who_atc() -> None:
    (o,) = orders(parse_bytes(_rxe("A10BA02^Metformin^WC")))
    assert [(c.system, c.code) for c in o.codings] == [(ATC_SYSTEM, "A10BA02")]
    assert [a.class_id for a in screen([o]).alerts] == ["metformin"]
    (o,) = orders(parse_bytes(_rxe("A02BC01^Omeprazol^2.16.840.1.113883.6.73")))
    assert o.codings[0].system == ATC_SYSTEM


def test_atc_in_table_0396_is_not_who_atc() -> None:
    # "ATC" is the American Type Culture Collection in table 0396: kept under its own name
    (o,) = orders(parse_bytes(_rxe("C09AA05^Ramipril^ATC")))
    assert [(c.system, c.code) for c in o.codings] == [("ATC", "C09AA05")]


def test_alternate_atc_code_and_local_primary() -> None:
    (o,) = orders(parse_bytes(_rxe("12345^Tobramycin eye drops^LOCAL^S01AA12^Tobramycin^WC")))
    assert ("ATC", "S01AA12") not in {(c.system, c.code) for c in o.codings}
    assert (ATC_SYSTEM, "S01AA12") in {(c.system, c.code) for c in o.codings}
    report = screen([o])
    assert report.alerts == ()
    assert any("ophthalmic product, no alert" in n.message for n in report.notices)
