"""Conversion of single resources: medications, statuses, doses, patient context."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pytest
from b12drugs_fhir.convert import (
    condition_from_resource,
    lab_from_observation,
    order_from_resource,
    order_records,
    patient_context,
    record_from_resource,
)
from b12drugs_fhir.fields import FhirDataError

from b12drugs.models import NDC_SYSTEM, RXNORM_SYSTEM, Notice, Order, Rejection, Skip

sys.path.insert(0, str(Path(__file__).parent))
import fhir_helpers as h


def order(resource: dict, **kw: object) -> Order:
    got = order_from_resource(resource, **kw)  # type: ignore[arg-type]
    assert isinstance(got, Order), got
    return got


def rejection(resource: dict, **kw: object) -> Rejection:
    got = order_from_resource(resource, **kw)  # type: ignore[arg-type]
    assert isinstance(got, Rejection), got
    return got


# -- medications ---------------------------------------------------------------------------
def test_codeable_concept_gives_rxnorm_coding_text_and_fhir_id() -> None:
    o = order(h.med_request("abc", authoredOn="2019-04-02T10:00:00+02:00"))
    assert o.id == "MedicationRequest/abc"
    assert o.patient_id == "p1"
    assert o.rxnorm_codes() == ("860975",)
    assert o.text == h.METFORMIN_ER[1]
    assert o.start_date == date(2019, 4, 2)
    assert o.status == "active"


def test_contained_medication_is_used() -> None:
    res = h.med_request(code=None, medicationReference={"reference": "#m1"}, contained=[
        {"resourceType": "Medication", "id": "m1", "code": {"coding": [
            {"system": RXNORM_SYSTEM, "code": h.B12_INJECTION[0], "display": h.B12_INJECTION[1]}
        ]}}])
    o = order(res)
    assert o.rxnorm_codes() == (h.B12_INJECTION[0],)
    assert o.texts() == (h.B12_INJECTION[1],)


@pytest.mark.parametrize("key", ["Medication/m9", "urn:uuid:0b8f2a6e-1111-4c2b-9d9e-abcdefabcdef"])
def test_bundled_medication_by_id_or_full_url(key: str) -> None:
    med = {"resourceType": "Medication", "id": "m9",
           "code": {"text": "methotrexate 2.5 mg tablet"}}
    o = order(h.med_request(code=None, medicationReference={"reference": key}),
              medications={key: med})
    assert o.text == "methotrexate 2.5 mg tablet"
    assert o.codings == ()


def test_medication_without_code_uses_its_ingredients() -> None:
    med = {"resourceType": "Medication", "id": "m2", "ingredient": [
        {"itemCodeableConcept": {"text": "colchicine"}},
        {"itemCodeableConcept": {"text": "probenecid"}}]}
    o = order(h.med_request(code=None, medicationReference={"reference": "Medication/m2"}),
              medications={"Medication/m2": med})
    assert o.texts() == ("colchicine",) or set(o.texts()) >= {"colchicine"}


def test_missing_medication_with_display_is_screened_by_name() -> None:
    o = order(h.med_request(code=None, medicationReference={
        "reference": "Medication/gone", "display": "metformin 500 mg tablet"}))
    assert o.codings == ()
    assert o.text == "metformin 500 mg tablet"


def test_missing_medication_without_display_says_so() -> None:
    o = order(h.med_request(code=None, medicationReference={"reference": "Medication/gone"}))
    assert o.codings == ()
    assert o.text == "Medication reference 'Medication/gone' could not be found in the input"


def test_no_medication_at_all_is_rejected_at_the_resource() -> None:
    r = rejection(h.med_request(code=None), source="f.json", pointer="/entry/2/resource")
    assert r.location.pointer == "/entry/2/resource"
    assert "medicationCodeableConcept" in r.reason


def test_ndc_is_normalised_and_other_codings_kept() -> None:
    res = h.med_request(code=None, medicationCodeableConcept={"coding": [
        {"system": NDC_SYSTEM, "code": "0093-7214-01"},
        {"system": "http://www.whocc.no/atc", "code": "A10BA02", "display": "metformin"}]})
    o = order(res)
    assert o.ndc_codes() == ("00093721401",)
    assert any(c.system == "http://www.whocc.no/atc" for c in o.codings)


def test_bad_ndc_is_dropped_but_text_kept() -> None:
    bad = {"system": NDC_SYSTEM, "code": "12-34", "display": "Metformin 500 MG"}
    res = h.med_request(code=None, medicationCodeableConcept={"text": "metformin 500 mg",
                                                              "coding": [bad]})
    o = order(res)
    assert o.ndc_codes() == ()
    assert o.texts() == ("metformin 500 mg",)
    only_display = h.med_request(code=None, medicationCodeableConcept={"coding": [
        {"system": NDC_SYSTEM, "code": "12-34", "display": "Metformin 500 MG"}]})
    assert order(only_display).texts() == ("Metformin 500 MG",)


def test_bad_code_alone_names_itself_for_the_unresolved_notice() -> None:
    res = h.med_request(code=None, medicationCodeableConcept={"coding": [
        {"system": NDC_SYSTEM, "code": "nonsense"}, {"system": RXNORM_SYSTEM, "code": "86O975"}]})
    o = order(res)
    assert o.codings == ()
    assert o.text == "invalid NDC 'nonsense'; invalid RxNorm code '86O975'"
    _, *notes = order_records(res)
    assert [n.message for n in notes if isinstance(n, Notice)] == [
        "/medicationCodeableConcept/coding/0: NDC 'nonsense' is not 10/11 digits (11 digits, "
        "or 10 digits with hyphens); nothing else names the drug, so it is reported as not "
        "recognised",
        "/medicationCodeableConcept/coding/1: RxNorm code '86O975' is not 1-10 digits; nothing "
        "else names the drug, so it is reported as not recognised"]


def test_dropped_codes_beside_valid_ones_are_noticed_with_their_pointer() -> None:
    res = h.med_request(code=None, medicationCodeableConcept={"text": "metformin", "coding": [
        {"system": RXNORM_SYSTEM, "code": h.METFORMIN_ER[0]},
        {"system": NDC_SYSTEM, "code": "12-34"},
        {"system": NDC_SYSTEM, "code": "1234567890123456789012345"},
        {"system": RXNORM_SYSTEM, "code": "RX-860975"}]})
    o, *notes = order_records(res, source="f.json", pointer="/entry/0/resource")
    assert isinstance(o, Order) and o.rxnorm_codes() == (h.METFORMIN_ER[0],)
    assert all(isinstance(n, Notice) and n.kind == "info" for n in notes)
    messages = [n.message for n in notes]
    base = "/entry/0/resource/medicationCodeableConcept/coding"
    assert messages[0].startswith(f"{base}/1: NDC '12-34' is not a hyphenated 10-digit NDC")
    assert messages[1].startswith(f"{base}/2: NDC '12345678901234567890…' is not 10/11 digits")
    assert "1234567890123456789012345" not in messages[1]  # shown truncated
    assert messages[2].startswith(f"{base}/3: RxNorm code 'RX-860975' is not 1-10 digits")
    assert all(m.endswith("the coding was left out and the order screened on its other "
                          "codes and text") for m in messages)
    assert [n.location for n in notes] == [f"f.json {base}/{i}" for i in (1, 2, 3)]
    assert order_from_resource(res, source="f.json", pointer="/entry/0/resource") == o


def test_dropped_code_in_a_referenced_medication_is_noticed() -> None:
    res = h.med_request(code=None, medicationReference={"reference": "#m1"}, contained=[
        {"resourceType": "Medication", "id": "m1", "code": {"text": "metformin", "coding": [
            {"system": NDC_SYSTEM, "code": "0093-72140-1"}]}}])
    o, note = order_records(res)
    assert isinstance(o, Order) and o.text == "metformin"
    assert isinstance(note, Notice)
    assert note.message.startswith("/contained/0/code/coding/0: NDC '0093-72140-1'")


# -- statuses ------------------------------------------------------------------------------
@pytest.mark.parametrize(("rtype", "status", "mapped"), [
    ("MedicationRequest", "on-hold", "on-hold"),
    ("MedicationRequest", "draft", "draft"),
    ("MedicationRequest", "stopped", "stopped"),
    ("MedicationDispense", "completed", "dispensed"),
    ("MedicationDispense", "in-progress", "active"),
    ("MedicationDispense", "declined", "declined"),
    ("MedicationStatement", "intended", "intended"),
    ("MedicationStatement", "not-taken", "not-taken"),
])
def test_status_mapping(rtype: str, status: str, mapped: str) -> None:
    res = h.med_request(status=status)
    res["resourceType"] = rtype
    o = order(res)
    assert o.status == mapped
    assert o.id.startswith(f"{rtype}/")


def test_unknown_status_is_a_skip_with_reason() -> None:
    got = record_from_resource(h.med_request(status="unknown"), source="f", pointer="/entry/0")
    assert isinstance(got, Skip)
    assert "unknown" in got.reason
    assert got.location.pointer == "/entry/0"


def test_invented_status_is_a_skip() -> None:
    got = record_from_resource(h.med_request(status="paused"))
    assert isinstance(got, Skip) and "paused" in got.reason


def test_do_not_perform_is_not_a_prescription() -> None:
    assert order(h.med_request(doNotPerform=True)).status == "not-taken"


# -- dose ----------------------------------------------------------------------------------
def _dosage(value: float, unit: str, **timing: object) -> dict:
    return {"timing": {"repeat": timing}, "route": {"coding": [{"display": "Oral"}]},
            "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}]}


def test_daily_dose_from_dose_times_frequency() -> None:
    o = order(h.med_request(dosageInstruction=[_dosage(500, "mg", frequency=2, period=1,
                                                         periodUnit="d")]))
    assert o.daily_dose_mg == 1000
    assert o.dose == "500 mg"
    assert o.frequency == "2 per 1 d"
    assert o.route == "Oral"


def test_daily_dose_in_grams_weekly() -> None:
    o = order(h.med_request(dosageInstruction=[_dosage(7, "g", frequency=1, period=1,
                                                         periodUnit="wk")]))
    assert o.daily_dose_mg == pytest.approx(1000)


def test_concurrent_doses_add_and_tapers_take_the_largest() -> None:
    morning = _dosage(1000, "mg", frequency=1, period=1, periodUnit="d")
    evening = _dosage(500, "mg", frequency=1, period=1, periodUnit="d")
    assert order(h.med_request(dosageInstruction=[morning, evening])).daily_dose_mg == 1500
    step1 = {**_dosage(2, "g", frequency=1, period=1, periodUnit="d"), "sequence": 1}
    step2 = {**_dosage(500, "mg", frequency=1, period=1, periodUnit="d"), "sequence": 2}
    assert order(h.med_request(dosageInstruction=[step1, step2])).daily_dose_mg == 2000


def test_timing_code_and_tablets() -> None:
    bid = {"timing": {"code": {"coding": [{"code": "BID"}]}},
           "doseAndRate": [{"doseQuantity": {"value": 250, "unit": "mg"}}]}
    assert order(h.med_request(dosageInstruction=[bid])).daily_dose_mg == 500
    tabs = _dosage(2, "tablet", frequency=1, period=1, periodUnit="d")
    assert order(h.med_request(dosageInstruction=[tabs])).daily_dose_mg is None


def test_as_needed_uses_max_dose_per_period() -> None:
    prn = {"asNeededBoolean": True, "maxDosePerPeriod": {
        "numerator": {"value": 3, "unit": "g"}, "denominator": {"value": 1, "unit": "d"}}}
    assert order(h.med_request(dosageInstruction=[prn])).daily_dose_mg == 3000


def test_days_supply_from_request_and_dispense() -> None:
    req = h.med_request(dispenseRequest={"expectedSupplyDuration": {"value": 3, "code": "mo"}})
    assert order(req).days_supply == 90
    disp = h.med_request(daysSupply={"value": 28, "unit": "days"},
                         whenHandedOver="2020-01-05T09:00:00Z", status="completed")
    disp["resourceType"] = "MedicationDispense"
    o = order(disp)
    assert (o.days_supply, o.start_date, o.status) == (28, date(2020, 1, 5), "dispensed")


def test_statement_effective_period_start() -> None:
    st = h.med_request(effectivePeriod={"start": "2018-06"})
    st["resourceType"] = "MedicationStatement"
    st["dosage"] = [_dosage(1, "g", frequency=1, period=1, periodUnit="d")]
    o = order(st)
    assert o.start_date == date(2018, 6, 1)
    assert o.daily_dose_mg == 1000


# -- bad data ------------------------------------------------------------------------------
# Identity (what the drug is, whose, whether it is current, which record): unreadable ->
# the whole order is a Rejection.  Optional detail (dosage, dates, supply): left out with
# an info Notice and the order is still screened.
@pytest.mark.parametrize(("patch", "pointer"), [
    ({"status": 7}, "/entry/1/resource/status"),
    ({"id": 12}, "/entry/1/resource/id"),
    ({"doNotPerform": "yes"}, "/entry/1/resource/doNotPerform"),
    ({"medicationCodeableConcept": {"coding": {"code": "1"}}},
     "/entry/1/resource/medicationCodeableConcept/coding"),
    ({"medicationCodeableConcept": {"coding": [{"code": 860975, "system": RXNORM_SYSTEM}]}},
     "/entry/1/resource/medicationCodeableConcept/coding/0/code"),
    ({"medicationCodeableConcept": ["metformin"]},
     "/entry/1/resource/medicationCodeableConcept"),
    ({"subject": "Patient/p1"}, "/entry/1/resource/subject"),
])
def test_unreadable_identity_is_rejected_at_its_json_pointer(patch: dict, pointer: str) -> None:
    r = rejection({**h.med_request(), **patch}, source="in.json", pointer="/entry/1/resource")
    assert r.location.pointer == pointer, r.reason
    assert r.location.file == "in.json"
    assert r.record_id == ("rx1" if "id" not in patch else None)
    got = order_records({**h.med_request(), **patch}, pointer="/entry/1/resource")
    assert got == [r.model_copy(update={"location": r.location.model_copy(
        update={"file": None})})]  # a Rejection never comes with notices


GOOD_DOSAGE = [_dosage(500, "mg", frequency=2, period=1, periodUnit="d")]
DETAIL_CASES = [
    ({"authoredOn": "yesterday"}, "/authoredOn", "start date (authoredOn)", "start_date"),
    ({"authoredOn": "2019-02-30"}, "/authoredOn", "start date (authoredOn)", "start_date"),
    ({"authoredOn": 20190101}, "/authoredOn", "start date (authoredOn)", "start_date"),
    ({"dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": "500"}}]}]},
     "/dosageInstruction/0/doseAndRate/0/doseQuantity/value", "dosage", "dose"),
    ({"dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": -5}}]}]},
     "/dosageInstruction/0/doseAndRate/0/doseQuantity/value", "dosage", "dose"),
    ({"dosageInstruction": [{"text": "5 mL bid", "doseAndRate": {"doseQuantity": {
        "value": 5, "unit": "mL"}}}]}, "/dosageInstruction/0/doseAndRate", "dosage", "daily"),
    ({"dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1,
                                                   "periodUnit": "fortnight"}}}]},
     "/dosageInstruction/0/timing/repeat/periodUnit", "dosage", "frequency"),
    ({"dosageInstruction": {"text": "once daily"}}, "/dosageInstruction", "dosage", "daily"),
    ({"dosageInstruction": [*GOOD_DOSAGE, "twice"]}, "/dosageInstruction/1", "dosage",
     "daily"),
    ({"dispenseRequest": {"expectedSupplyDuration": {"value": 1e9, "unit": "d"}}},
     "/dispenseRequest/expectedSupplyDuration/value", "days supply", "days_supply"),
    ({"dispenseRequest": {"expectedSupplyDuration": {"value": 3, "unit": "lunar"}}},
     "/dispenseRequest/expectedSupplyDuration/unit", "days supply", "days_supply"),
    ({"dispenseRequest": []}, "/dispenseRequest", "days supply", "days_supply"),
]


@pytest.mark.parametrize(("patch", "field", "what", "attr"), DETAIL_CASES)
def test_unreadable_detail_is_left_out_with_a_notice(
    patch: dict, field: str, what: str, attr: str
) -> None:
    res = {**h.med_request(authoredOn="2019-04-02"), **patch}
    records = order_records(res, source="in.json", pointer="/entry/1/resource", line=None)
    assert [type(r) for r in records] == [Order, Notice], records
    o, note = records
    assert isinstance(o, Order) and isinstance(note, Notice)
    # the drug is still identified and screened
    assert o.rxnorm_codes() == ("860975",) and o.status == "active" and o.patient_id == "p1"
    if attr == "start_date":
        assert o.start_date is None
    elif attr == "days_supply":
        assert o.days_supply is None
    else:
        assert o.daily_dose_mg is None and o.frequency is None
    pointer = "/entry/1/resource" + field
    assert note.kind == "info"
    assert note.message.startswith(f"{pointer}: the {what} could not be read (")
    assert "screened without it" in note.message
    assert (note.order_id, note.patient_id) == ("MedicationRequest/rx1", "p1")
    assert note.location == f"in.json {pointer}"
    # never the patient's value
    for value in ("yesterday", "2019-02-30", "20190101", "500", "-5", "1e9", "1000000000",
                  "fortnight", "lunar"):
        assert value not in note.message
    # the old API: same Order, no notice
    assert order_from_resource(res, source="in.json", pointer="/entry/1/resource") == o
    assert record_from_resource(res, source="in.json", pointer="/entry/1/resource") == o


def test_unreadable_dosage_keeps_its_text_and_the_rest() -> None:
    res = h.med_request(dosageInstruction=[{"text": "5 mL bid x 10 days", "doseAndRate": {
        "doseQuantity": {"value": 5, "unit": "mL"}}}],
        dispenseRequest={"expectedSupplyDuration": {"value": 10, "code": "d"}},
        authoredOn="2019-04-02")
    o, note = order_records(res)
    assert isinstance(o, Order) and isinstance(note, Notice)
    assert o.dose == "5 mL bid x 10 days"
    assert (o.days_supply, o.start_date) == (10, date(2019, 4, 2))
    assert note.message == ("/dosageInstruction/0/doseAndRate: the dosage could not be read "
                            "(expected an array, got object); screened without it "
                            "(its text is kept)")


def test_negative_frequency_drops_the_daily_dose_only() -> None:
    res = h.med_request(dosageInstruction=[_dosage(500, "mg", frequency=-2, period=1,
                                                   periodUnit="d")])
    o, note = order_records(res)
    assert isinstance(o, Order) and isinstance(note, Notice)
    assert o.daily_dose_mg is None and o.dose == "500 mg"
    assert note.message.startswith("/dosageInstruction: the daily dose could not be read")


def test_bad_later_start_date_falls_back_to_the_next_field() -> None:
    res = h.med_request(authoredOn="nonsense",
                        dispenseRequest={"validityPeriod": {"start": "2020-03-01"}})
    o, note = order_records(res)
    assert isinstance(o, Order) and o.start_date == date(2020, 3, 1)
    assert isinstance(note, Notice) and note.message.startswith("/authoredOn:")


def test_statement_and_dispense_detail_is_optional_too() -> None:
    st = h.med_request(effectivePeriod={"start": "June"}, dosage=[{"sequence": "one"}])
    st["resourceType"] = "MedicationStatement"
    o, *notes = order_records(st)
    assert isinstance(o, Order) and o.start_date is None
    assert sorted(n.message.split(":")[0] for n in notes if isinstance(n, Notice)) == [
        "/dosage/0/sequence", "/effectivePeriod/start"]
    disp = h.med_request(daysSupply={"value": "28"}, whenHandedOver="2020-01-05",
                         status="completed")
    disp["resourceType"] = "MedicationDispense"
    o, note = order_records(disp)
    assert isinstance(o, Order) and o.days_supply is None and o.status == "dispensed"
    assert isinstance(note, Notice) and note.message.startswith("/daysSupply/value: the days")


def test_no_notices_for_orders_that_are_not_screened() -> None:
    bad_date = {"authoredOn": "yesterday"}
    for status in ("stopped", "unknown", "entered-in-error"):
        records = order_records(h.med_request(status=status, **bad_date))
        assert len(records) == 1 and not isinstance(records[0], Notice), status
    # decide=False (the CDS service decides itself): 'unknown' stays an Order, noticed
    o, note = order_records(h.med_request(status="unknown", **bad_date), decide=False)
    assert isinstance(o, Order) and o.status == "unknown" and isinstance(note, Notice)


def test_huge_text_is_rejected_not_crashing() -> None:
    huge = {"text": "x" * 100_000}
    r = rejection(h.med_request(code=None, medicationCodeableConcept=huge))
    assert r.location.pointer == "/medicationCodeableConcept/text"
    assert "exceeds" in r.reason
    long_id = order(h.med_request("a" * 300))  # not a FHIR id: located id instead
    assert long_id.id.startswith("MedicationRequest@")


def test_huge_pointer_and_source_stay_within_limits() -> None:
    r = rejection(h.med_request(code=None), source="d/" * 400, pointer="/entry" * 100)
    assert len(r.location.file or "") <= 256 and len(r.location.pointer or "") <= 256


# -- patient context -----------------------------------------------------------------------
def test_conditions_active_resolved_refuted() -> None:
    active = condition_from_resource(h.condition("Neuropathy due to type 2 diabetes mellitus",
                                                 "368581000119106"))
    assert active is not None and active.active and active.code == "368581000119106"
    resolved = condition_from_resource(h.condition("Anemia", "271737000", status="resolved"))
    assert resolved is not None and not resolved.active
    no_status = h.condition("Pernicious anemia")
    del no_status["clinicalStatus"]
    c = condition_from_resource(no_status)
    assert c is not None and c.active and c.text == "Pernicious anemia"
    refuted = {**h.condition("Anemia"), "verificationStatus": {"coding": [{"code": "refuted"}]}}
    assert condition_from_resource(refuted) is None


@pytest.mark.parametrize("status, pointer", [
    ({"coding": [{"code": 3}]}, "/c/clinicalStatus/coding/0/code"),
    ({"coding": [{"code": None}, "active"]}, "/c/clinicalStatus/coding/1"),
    ({"coding": {"code": "active"}}, "/c/clinicalStatus/coding"),
    ("active", "/c/clinicalStatus"),
])
def test_condition_status_of_wrong_type_names_the_field(status: object, pointer: str) -> None:
    bad = {**h.condition("Anemia"), "clinicalStatus": status}
    with pytest.raises(FhirDataError) as err:
        condition_from_resource(bad, "/c")
    assert err.value.pointer == pointer


def test_patient_context_drops_repeated_conditions_keeps_order() -> None:
    conds = [h.condition("Anemia", "271737000"), h.condition("Neuropathy", "test-code-2"),
             h.condition("Anemia", "271737000")]
    ctx = patient_context({"resourceType": "Patient", "id": "p1"}, conds)
    assert [c.code for c in ctx.conditions] == ["271737000", "test-code-2"]


def _obs(code: str | None, text: str, value: float, unit: str, **extra: object) -> dict:
    cc: dict = {"text": text}
    if code:
        cc["coding"] = [{"system": "http://loinc.org", "code": code}]
    return {"resourceType": "Observation", "status": "final", "code": cc,
            "valueQuantity": {"value": value, "unit": unit},
            "effectiveDateTime": "2024-05-01", **extra}


def test_labs_by_loinc_text_interpretation_and_range() -> None:
    b12 = lab_from_observation(_obs("2132-9", "B12", 150, "pg/mL",
                                    interpretation=[{"coding": [{"code": "L"}]}]))
    assert b12 is not None and (b12.kind, b12.interpretation, b12.code) == ("b12", "low", "2132-9")
    by_text = lab_from_observation(_obs(None, "Serum cobalamin", 1000, "pg/mL",
                                        referenceRange=[{"low": {"value": 200},
                                                         "high": {"value": 900}}]))
    assert by_text is not None and by_text.interpretation == "high"
    mma = lab_from_observation(_obs("13964-2", "MMA", 0.2, "umol/L"))
    assert mma is not None and mma.kind == "mma" and mma.date == date(2024, 5, 1)
    assert lab_from_observation(_obs("8302-2", "Body Height", 170, "cm")) is None
    cancelled = _obs("2132-9", "B12", 150, "pg/mL", status="cancelled")
    assert lab_from_observation(cancelled) is None


def test_patient_context_public_api() -> None:
    bad = {"resourceType": "Condition", "code": {"coding": "x"}}
    rejections: list[Rejection] = []
    ctx = patient_context(h.patient(), [h.condition("Crohn disease"), bad],
                          [_obs("2132-9", "B12", 150, "pg/mL")], rejections=rejections)
    assert (ctx.id, ctx.birth_date, ctx.sex) == ("p1", date(1950, 2, 1), "female")
    assert [c.text for c in ctx.conditions] == ["Crohn disease"]
    assert ctx.labs[0].kind == "b12"
    assert [r.location.pointer for r in rejections] == ["/conditions/1/code/coding"]
    assert patient_context(None, patient_id="x").id == "x"
    with pytest.raises(ValueError, match="patient id"):
        patient_context(None)


@pytest.mark.parametrize(("birth", "expected"), [
    ("1960", date(1960, 12, 31)),
    ("1960-02", date(1960, 2, 29)),
    ("1961-02", date(1961, 2, 28)),
    ("1960-06-15", date(1960, 6, 15)),
])
def test_partial_birth_date_takes_the_latest_possible_day(birth: str, expected: date) -> None:
    """"1960" must not become 1960-01-01: that overstates the age (wrong escalation)."""
    ctx = patient_context(h.patient(birth=birth))
    assert ctx.birth_date == expected


def test_bad_partial_birth_month_is_rejected_without_the_value() -> None:
    rejections: list[Rejection] = []
    ctx = patient_context(h.patient(birth="1960-13"), rejections=rejections)
    assert ctx.birth_date is None
    assert [(r.location.pointer, r.reason) for r in rejections] == [
        ("/birthDate", "not a valid calendar date")]


def test_labs_holotc_value_string_instant_and_registered() -> None:
    holo = lab_from_observation(_obs("72160-5", "Holotranscobalamin", 25, "pmol/L"))
    assert holo is not None and holo.kind == "holotc"
    by_name = lab_from_observation(_obs(None, "Active B12 (holoTC)", 25, "pmol/L"))
    assert by_name is not None and by_name.kind == "holotc"
    text = {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2132-9"}]},
            "valueString": "<150 pg/mL", "effectiveInstant": "2026-03-02T10:00:00Z"}
    lab = lab_from_observation(text)
    assert lab is not None and (lab.value, lab.unit, lab.date) == (150, "pg/mL",
                                                                   date(2026, 3, 2))
    assert lab_from_observation({**text, "valueString": "see note"}) is not None
    registered = _obs("2132-9", "B12", 450, "pg/mL", status="registered")
    assert lab_from_observation(registered) is None  # ordered, no result yet


def test_observation_in_a_bundle_sets_the_alerts_monitoring(tmp_path: Path) -> None:
    """A FHIR bundle with a normal B12 Observation: the metformin alert is not due."""
    import json

    from b12drugs.config import Config, PolicyConfig
    from b12drugs.engines import screen_inputs

    obs = _obs("2132-9", "Cobalamin", 450, "pg/mL", id="o1",
               subject={"reference": "Patient/p1"})
    obs["effectiveDateTime"] = "2026-09-20"
    path = tmp_path / "b.json"
    path.write_text(json.dumps(h.bundle(h.patient(), obs, h.med_request("m1"))))
    report = screen_inputs([str(path)], None, Config(policy=PolicyConfig(as_of=date(2026, 11, 21))))
    alert = next(a for a in report.alerts if a.class_id == "metformin")
    assert alert.monitoring is not None and alert.monitoring.due is False
    assert alert.monitoring.due_date == date(2027, 9, 20)
    assert "next due 2027-09" in alert.summary
