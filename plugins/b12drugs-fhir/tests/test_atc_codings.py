"""WHO ATC codings in FHIR medications reach the resolvers as ATC codings."""

from __future__ import annotations

import sys
from pathlib import Path

from b12drugs_fhir.convert import order_from_resource

from b12drugs.engines import screen
from b12drugs.models import ATC_SYSTEM, Order

sys.path.insert(0, str(Path(__file__).parent))
import fhir_helpers as h


def _with_atc(code: str, system: str = ATC_SYSTEM, text: str | None = None) -> dict:
    res = h.med_request("rx-atc", code=None)
    cc: dict = {"coding": [{"system": system, "code": code}]}
    if text:
        cc["text"] = text
    res["medicationCodeableConcept"] = cc
    return res


def test_atc_coding_is_handed_on_and_screened() -> None:
    for system in (ATC_SYSTEM, "urn:oid:2.16.840.1.113883.6.73"):
        got = order_from_resource(_with_atc("A10BD07", system))
        assert isinstance(got, Order)
        assert [(c.system, c.code) for c in got.codings] == [(ATC_SYSTEM, "A10BD07")]
        report = screen([got])
        assert [a.class_id for a in report.alerts] == ["metformin"]


def test_atc_eye_drops_give_the_route_notice_and_bad_codes_a_notice() -> None:
    eye = order_from_resource(_with_atc("S01AA12"))
    bad = order_from_resource(_with_atc("A10-BA"))
    assert isinstance(eye, Order) and isinstance(bad, Order)
    report = screen([eye, bad])
    assert report.alerts == ()
    messages = [n.message for n in report.notices]
    assert any("ophthalmic product, no alert" in m for m in messages)
    assert any("not a well-formed WHO ATC code" in m for m in messages)
