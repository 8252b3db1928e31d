"""The three hook services over real HTTP: cards, scope, dedupe, prefetch and fetching."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from cds_support import (
    FhirEmulator,
    Service,
    bundle,
    draft,
    full_prefetch,
    hook_request,
    load,
    synthea,
)

SELECT = "/cds-services/b12drugs-order-select"
SIGN = "/cds-services/b12drugs-order-sign"
VIEW = "/cds-services/b12drugs-patient-view"


def _metformin_session(encounter: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Danae (Synthea): metformin drafted anew, her other medications prefetched."""
    data = synthea()
    meds = data["medicationRequests"]
    metformin = next(m for m in meds if "Metformin" in m["medicationCodeableConcept"]["text"])
    others = [m for m in meds if m is not metformin]
    context: dict[str, Any] = {
        "userId": "Practitioner/dr-1",
        "patientId": "danae",
        "draftOrders": bundle([draft(metformin, "rx-metformin")]),
    }
    if encounter:
        context["encounterId"] = encounter
    return context, full_prefetch(data, meds=others)


def _assert_spec_card(card: dict[str, Any]) -> None:
    """Shape rules of the specification for every card we send."""
    assert set(card) >= {"uuid", "summary", "indicator", "source"}
    uuid.UUID(card["uuid"])
    assert len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert card["source"]["label"]

    def no_empty(value: Any, where: str) -> None:
        assert value is not None and value != "" and value != [] and value != {}, where
        if isinstance(value, dict):
            for k, v in value.items():
                no_empty(v, f"{where}/{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                no_empty(v, f"{where}/{i}")

    no_empty(card, "card")
    if "suggestions" in card:
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for s in card["suggestions"]:
            uuid.UUID(s["uuid"])
            assert s["label"] and s["actions"]
    else:
        assert "selectionBehavior" not in card
    for reason in card.get("overrideReasons", []):
        assert reason["display"] and reason["code"] and reason["system"]


def test_discovery_lists_three_services_with_prefetch(service: Service) -> None:
    resp = service.get("/cds-services")
    assert resp.status_code == 200
    services = {s["hook"]: s for s in resp.json()["services"]}
    assert set(services) == {"order-select", "order-sign", "patient-view"}
    for s in services.values():
        assert s["id"] and s["description"] and s["title"]
        prefetch = s["prefetch"]
        assert prefetch["patient"] == "Patient/{{context.patientId}}"
        assert "MedicationRequest?patient={{context.patientId}}&status=active" in prefetch[
            "medications"]
        assert "clinical-status=active" in prefetch["conditions"]
        assert "http://loinc.org|2132-9" in prefetch["labs"]


def test_order_sign_synthea_metformin_gives_warning_with_lab_suggestion(service: Service) -> None:
    context, prefetch = _metformin_session()
    resp = service.post(SIGN, hook_request("order-sign", context, prefetch))
    assert resp.status_code == 200, resp.text
    cards = resp.json()["cards"]
    assert len(cards) == 1
    card = cards[0]
    _assert_spec_card(card)
    # anaemia and diabetic neuropathy are in her prefetched conditions: one step up
    assert card["indicator"] == "warning"
    assert "metformin" in card["summary"].lower()
    detail = card["detail"]
    for heading in ("**Drugs:**", "**Why:**", "**Evidence:**", "**Patient risk factors:**",
                    "**Monitor:**"):
        assert heading in detail
    assert "neuropathy" in detail
    assert card["source"]["url"] == "https://example.org/b12drugs"
    assert card["source"]["topic"]["code"] == "metformin"
    (suggestion,) = card["suggestions"]
    assert card["selectionBehavior"] == "at-most-one"
    assert suggestion["isRecommended"] is True
    (action,) = suggestion["actions"]
    assert action["type"] == "create"
    resource = action["resource"]
    assert resource["resourceType"] == "ServiceRequest"
    assert resource["subject"] == {"reference": "Patient/danae"}
    assert resource["code"]["coding"] == [{
        "system": "http://loinc.org", "code": "2132-9",
        "display": "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma"}]
    assert len(card["overrideReasons"]) >= 3


def test_recent_b12_result_replaces_the_lab_suggestion(service: Service) -> None:
    from datetime import date

    context, prefetch = _metformin_session()
    obs = {
        "resourceType": "Observation", "id": "b12-1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2132-9"}]},
        "effectiveDateTime": date.today().isoformat(),
        "valueQuantity": {"value": 410, "unit": "pg/mL"},
    }
    prefetch["labs"] = bundle([obs])
    card = service.post(SIGN, hook_request("order-sign", context, prefetch)).json()["cards"][0]
    assert "suggestions" not in card and "selectionBehavior" not in card
    assert "**Last serum B12:** 410 pg/mL" in card["detail"]


def test_prefetched_observations_set_monitoring_on_the_card(service: Service) -> None:
    """A borderline B12 last month: due, and the suggestion is a confirmatory MMA; a
    normal one within the year: softened to info, "next due", no suggestion."""
    from datetime import date, timedelta

    context, prefetch = _metformin_session()
    when = (date.today() - timedelta(days=30)).isoformat()

    def b12(value: float) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": "b12-x", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2132-9"}]},
                "effectiveDateTime": when, "valueQuantity": {"value": value, "unit": "pg/mL"}}

    prefetch["labs"] = bundle([b12(260)])
    card = service.post(SIGN, hook_request("order-sign", context, prefetch)).json()["cards"][0]
    assert card["indicator"] == "warning"
    assert "(borderline)" in card["detail"] and "borderline" in card["summary"]
    (suggestion,) = card["suggestions"]
    code = suggestion["actions"][0]["resource"]["code"]["coding"][0]["code"]
    assert code == "13964-2" and suggestion["isRecommended"] is True
    prefetch["labs"] = bundle([b12(520)])
    card = service.post(SIGN, hook_request("order-sign", context, prefetch)).json()["cards"][0]
    assert card["indicator"] == "info" and "next due" in card["summary"]
    assert "suggestions" not in card


def test_discovery_prefetches_every_b12_status_test(service: Service) -> None:
    labs = service.get("/cds-services").json()["services"][0]["prefetch"]["labs"]
    for code in ("2132-9", "72160-5", "13964-2", "13965-9"):
        assert f"http://loinc.org|{code}" in labs


def test_order_select_only_reports_selected_orders(service: Service) -> None:
    data = synthea()
    colch = synthea("synthea_colchicine.json")
    metformin = next(m for m in data["medicationRequests"]
                     if "Metformin" in m["medicationCodeableConcept"]["text"])
    colchicine = next(m for m in colch["medicationRequests"]
                      if "Colchicine" in m["medicationCodeableConcept"]["text"])
    context = {
        "userId": "Practitioner/dr-1", "patientId": "danae",
        "selections": ["MedicationRequest/rx-colchicine"],
        "draftOrders": bundle([draft(metformin, "rx-metformin"),
                               draft(colchicine, "rx-colchicine")]),
    }
    prefetch = full_prefetch(data, meds=[])
    cards = service.post(SELECT, hook_request("order-select", context, prefetch)).json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["colchicine"]
    # the other draft is weighed in: two B12-lowering drugs at once
    assert "several B12-lowering drugs" in cards[0]["detail"]
    # selecting the metformin instead reports the metformin
    context["selections"] = ["MedicationRequest/rx-metformin"]
    cards = service.post(SELECT, hook_request("order-select", context, prefetch)).json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["metformin"]


def test_order_sign_reports_all_drafts_but_not_old_medications(service: Service) -> None:
    data = synthea()
    colch = synthea("synthea_colchicine.json")
    colchicine = next(m for m in colch["medicationRequests"]
                      if "Colchicine" in m["medicationCodeableConcept"]["text"])
    # Danae's own active metformin is a current medication, the colchicine is new
    context = {"userId": "Practitioner/dr-1", "patientId": "danae",
               "draftOrders": bundle([draft(colchicine, "rx-colchicine")])}
    cards = service.post(SIGN, hook_request("order-sign", context, full_prefetch(data))).json()[
        "cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["colchicine"]
    assert "Together with" not in cards[0]["detail"]


def _assert_amoxicillin_only(cards: list[dict[str, Any]]) -> None:
    """Amoxicillin/clavulanate lowers no B12 and the offline knowledge base knows
    amoxicillin by name: screened, nothing to say.  (Were it unknown, the one card would
    say it was not checked; it must never say it could not be *read*.)"""
    assert cards == []


def test_spec_order_select_example(service: Service) -> None:
    # The spec's R4 draft gives dosageInstruction[0].doseAndRate as an object (R4 says
    # array).  The drug is identified by RxNorm and text, so the draft is screened
    # without its dosage (an info notice, no card) instead of "could not be read".
    context = load("spec_order_select_r4.json")["context"]
    draft_res = context["draftOrders"]["entry"][1]["resource"]
    assert isinstance(draft_res["dosageInstruction"][0]["doseAndRate"], dict)
    context["encounterId"] = f"enc-{uuid.uuid4().hex[:12]}"
    resp = service.post(SELECT, hook_request("order-select", context, {
        "patient": None, "medications": None, "conditions": None, "labs": None}))
    assert resp.status_code == 200, resp.text
    _assert_amoxicillin_only(resp.json()["cards"])


def test_draft_with_unreadable_dosage_and_bad_ndc_still_alerts(service: Service) -> None:
    """Metformin drafted with the spec example's dosage shape, an impossible date and an
    invalid NDC beside its RxNorm code: screened (alert card), no "could not be checked"
    card for the left-out detail."""
    context, prefetch = _metformin_session()
    res = context["draftOrders"]["entry"][0]["resource"]
    res["dosageInstruction"] = [{"text": "500 mg twice daily",
                                 "doseAndRate": {"doseQuantity": {"value": 500, "unit": "mg"}}}]
    res["authoredOn"] = "2019-02-30"
    res["medicationCodeableConcept"]["coding"].append(
        {"system": "http://hl7.org/fhir/sid/ndc", "code": "0093-72"})
    context["selections"] = ["MedicationRequest/rx-metformin"]
    resp = service.post(SELECT, hook_request("order-select", context, prefetch))
    assert resp.status_code == 200, resp.text
    cards = resp.json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["metformin"]
    assert cards[0]["indicator"] in ("warning", "critical")
    for card in cards:
        _assert_spec_card(card)
        assert "could not" not in card["summary"] + card["detail"]


def test_spec_order_sign_example(service: Service) -> None:
    context = load("spec_order_sign_r4.json")["context"]
    context["encounterId"] = f"enc-{uuid.uuid4().hex[:12]}"
    resp = service.post(SIGN, hook_request("order-sign", context, {
        "patient": None, "medications": None, "conditions": None, "labs": None}))
    assert resp.status_code == 200, resp.text
    _assert_amoxicillin_only(resp.json()["cards"])


def test_order_select_of_a_non_medication_order_says_nothing(service: Service) -> None:
    context = load("spec_order_select_r4.json")["context"]
    context["selections"] = ["NutritionOrder/pureeddiet-simple"]
    resp = service.post(SELECT, hook_request("order-select", context, {
        "patient": None, "medications": None, "conditions": None, "labs": None}))
    assert resp.status_code == 200
    assert resp.json() == {"cards": []}


def test_spec_patient_view_example_without_our_prefetch_is_412(service: Service) -> None:
    # The spec's own example: a FHIR server we do not trust, prefetch keys we did not ask for.
    body = load("spec_patient_view.json")["request"]
    resp = service.post(VIEW, body)
    assert resp.status_code == 412
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "medication" in outcome["issue"][0]["diagnostics"]
    assert "allowlist" in outcome["issue"][0]["diagnostics"]


def test_patient_view_reviews_active_medication_list(service: Service) -> None:
    data = synthea()
    context = {"userId": "Practitioner/dr-1", "patientId": "danae"}
    cards = service.post(VIEW, hook_request("patient-view", context, full_prefetch(data))).json()[
        "cards"]
    assert [c["source"]["topic"]["code"] for c in cards] == ["metformin"]
    _assert_spec_card(cards[0])


def test_patient_view_without_medications_nothing_to_say(service: Service) -> None:
    data = synthea()
    prefetch = full_prefetch(data, meds=[])
    prefetch["medications"] = None  # the client has no data: "checked, nothing found"
    context = {"userId": "Practitioner/dr-1", "patientId": "danae"}
    resp = service.post(VIEW, hook_request("patient-view", context, prefetch))
    assert resp.status_code == 200
    assert resp.json() == {"cards": []}


def test_unresolved_draft_gets_info_card(service: Service) -> None:
    unknown = {
        "resourceType": "MedicationRequest", "id": "rx-unknown", "status": "draft",
        "intent": "order", "subject": {"reference": "Patient/danae"},
        "medicationCodeableConcept": {"text": "Zyxolimab [compounded] 5 mg *test*"},
    }
    context = {"userId": "Practitioner/dr-1", "patientId": "danae",
               "draftOrders": bundle([unknown])}
    body = hook_request("order-sign", context, full_prefetch(synthea(), meds=[]))
    cards = service.post(SIGN, body).json()["cards"]
    assert len(cards) == 1
    card = cards[0]
    _assert_spec_card(card)
    assert card["indicator"] == "info"
    assert "could not be checked" in card["summary"]
    # the prescriber's text is shown, escaped so it cannot inject markdown
    assert r"Zyxolimab \[compounded\] 5 mg \*test\*" in card["detail"]
    assert "not** mean they are safe" in card["detail"]


def test_dedupe_between_order_select_and_order_sign(service: Service) -> None:
    encounter = f"enc-{uuid.uuid4().hex[:12]}"
    context, prefetch = _metformin_session(encounter)
    select_ctx = dict(context, selections=["MedicationRequest/rx-metformin"])
    first = service.post(SELECT, hook_request("order-select", select_ctx, prefetch)).json()["cards"]
    assert len(first) == 1
    again = service.post(SIGN, hook_request("order-sign", context, prefetch)).json()["cards"]
    assert again == []
    # another encounter is another ordering session
    other = dict(context, encounterId=f"enc-{uuid.uuid4().hex[:12]}")
    assert len(service.post(SIGN, hook_request("order-sign", other, prefetch)).json()["cards"]) == 1
    # without an encounter nothing is suppressed
    no_enc = {k: v for k, v in context.items() if k != "encounterId"}
    for _ in range(2):
        cards = service.post(SIGN, hook_request("order-sign", no_enc, prefetch)).json()["cards"]
        assert len(cards) == 1


def test_dedupe_cache_holds_no_patient_id(service: Service) -> None:
    state = service.app.state.cdshooks
    assert state.dedupe is not None and len(state.dedupe) > 0
    for key in state.dedupe._seen:
        assert b"danae" not in key and len(key) == 20


# -- missing prefetch -------------------------------------------------------------------


def test_missing_prefetch_without_fhir_access_is_stated_in_the_alert(service: Service) -> None:
    """The missing context concerns the metformin alert: it is said inside that card,
    not on a card of its own."""
    context, _ = _metformin_session()
    cards = service.post(SIGN, hook_request("order-sign", context)).json()["cards"]
    kinds = [c["summary"] for c in cards]
    assert len(cards) == 1, kinds
    (alert,) = cards
    # without conditions the neuropathy is unknown: info, not warning
    assert alert["indicator"] == "info"
    assert "**Screened without:**" in alert["detail"]
    assert "current medications" in alert["detail"]
    assert "no FHIR server access" in alert["detail"]


def test_partial_prefetch_names_only_what_is_missing(service: Service) -> None:
    context, prefetch = _metformin_session()
    del prefetch["labs"]
    cards = service.post(SIGN, hook_request("order-sign", context, prefetch)).json()["cards"]
    (alert,) = cards
    line = next(x for x in alert["detail"].split("\n\n") if x.startswith("**Screened without"))
    assert "B12 / methylmalonic acid" in line
    assert "current medications" not in line


def test_spec_order_sign_example_without_prefetch_says_nothing(service: Service) -> None:
    """Issue 14: the specification's order-sign example (amoxicillin/clavulanate and a
    NutritionOrder), no prefetch and no FHIR server: no drug of a B12 class, so no
    "screened without demographics ..." card; the missing context is logged and audited."""
    import sqlite3

    context = load("spec_order_sign_r4.json")["context"]
    context["encounterId"] = f"enc-{uuid.uuid4().hex[:12]}"
    body = hook_request("order-sign", context)
    assert "prefetch" not in body and "fhirServer" not in body
    resp = service.post(SIGN, body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"cards": []}
    deadline = time.monotonic() + 5
    with sqlite3.connect(service.audit_db) as db:
        while True:
            rows = db.execute("SELECT kind, indicator FROM cards WHERE hook_instance = ?",
                              (body["hookInstance"],)).fetchall()
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.01)
    assert len(rows) == 1
    kind, indicator = rows[0]
    assert kind.startswith("withheld:incomplete:") and "patient" in kind
    assert "medications" in kind and indicator == "info"


def test_missing_context_keeps_its_card_for_a_b12_draft_without_alert(service: Service) -> None:
    """Folic acid alerts only with a known deficiency, which the missing conditions and
    labs could show: the missing context could change what the prescriber sees, so its
    card stays."""
    context, _ = _metformin_session()
    folic = {"resourceType": "MedicationRequest", "id": "folic-1", "status": "draft",
             "intent": "order", "subject": {"reference": "Patient/danae"},
             "medicationCodeableConcept": {"text": "Folic acid 5 mg oral tablet"}}
    context["draftOrders"] = bundle([folic])
    cards = service.post(SIGN, hook_request("order-sign", context)).json()["cards"]
    assert len(cards) == 1
    assert cards[0]["summary"].startswith("Vitamin B12 screening was done without")


def _fhir_auth(token: str = "opaque-fhir-token-123") -> dict[str, Any]:
    return {"access_token": token, "token_type": "Bearer", "expires_in": 300,
            "scope": "patient/*.read", "subject": "b12drugs"}


def test_fetch_on_demand_from_allowlisted_server(service: Service, fhir: FhirEmulator) -> None:
    data = synthea()
    colch = synthea("synthea_colchicine.json")
    colchicine = next(m for m in colch["medicationRequests"]
                      if "Colchicine" in m["medicationCodeableConcept"]["text"])
    context = {"userId": "Practitioner/dr-1", "patientId": "danae",
               "draftOrders": bundle([draft(colchicine, "rx-colchicine")])}
    # only the patient was prefetched; medications, conditions and labs are fetched
    body = hook_request("order-sign", context, {"patient": data["patient"]},
                        fhirServer=fhir.url, fhirAuthorization=_fhir_auth())
    cards = service.post(SIGN, body).json()["cards"]
    paths = sorted(p.split("?")[0] for p, _ in fhir.requests)
    assert paths == ["/fhir/Condition", "/fhir/MedicationRequest", "/fhir/Observation"]
    assert all(auth == "Bearer opaque-fhir-token-123" for _, auth in fhir.requests)
    assert all("patient=danae" in p for p, _ in fhir.requests)
    # the fetched metformin counts as a second B12-lowering drug; no "incomplete" card
    assert len(cards) == 1
    assert "several B12-lowering drugs" in cards[0]["detail"]
    assert "neuropathy" in cards[0]["detail"]


def test_patient_view_fetches_medications(service: Service, fhir: FhirEmulator) -> None:
    body = hook_request("patient-view", {"userId": "Practitioner/dr-1", "patientId": "danae"},
                        fhirServer=fhir.url + "/", fhirAuthorization=_fhir_auth())
    resp = service.post(VIEW, body)
    assert resp.status_code == 200, resp.text
    assert [c["source"]["topic"]["code"] for c in resp.json()["cards"]] == ["metformin"]
    assert len(fhir.requests) == 4


def test_server_not_on_allowlist_gets_no_request_and_no_token(service: Service,
                                                              fhir: FhirEmulator) -> None:
    other = fhir.url.replace("/fhir", "/other-fhir")
    context, _ = _metformin_session()
    body = hook_request("order-sign", context, fhirServer=other, fhirAuthorization=_fhir_auth())
    cards = service.post(SIGN, body).json()["cards"]
    assert fhir.requests == []
    assert "not on the allowlist" in cards[-1]["detail"]
    # and patient-view cannot screen anything: 412
    view = hook_request("patient-view", {"userId": "Practitioner/x", "patientId": "danae"},
                        fhirServer=other, fhirAuthorization=_fhir_auth())
    assert service.post(VIEW, view).status_code == 412


@pytest.mark.parametrize("fault,reason", [
    ("slow", "did not answer in time"),
    ("huge", "exceeded"),
    ("500", "HTTP 500"),
    ("redirect", "HTTP 302"),
])
def test_fetch_faults_are_bounded_and_reported(service: Service, fhir: FhirEmulator,
                                               fault: str, reason: str) -> None:
    fhir.fault = fault
    context, _ = _metformin_session()
    body = hook_request("order-sign", context, fhirServer=fhir.url, fhirAuthorization=_fhir_auth())
    resp = service.post(SIGN, body)
    assert resp.status_code == 200
    cards = resp.json()["cards"]
    assert cards[0]["source"]["topic"]["code"] == "metformin"  # the drafts are still screened
    assert reason in cards[-1]["detail"]
    if fault == "redirect":
        assert all("steal" not in p for p, _ in fhir.requests)


def test_invalid_patient_id_cannot_inject_into_fhir_queries(service: Service,
                                                            fhir: FhirEmulator) -> None:
    body = hook_request("patient-view",
                        {"userId": "Practitioner/x", "patientId": "danae&_include=*"},
                        fhirServer=fhir.url, fhirAuthorization=_fhir_auth())
    resp = service.post(VIEW, body)
    assert resp.status_code == 400
    assert resp.json()["issue"][0]["expression"] == ["/context/patientId"]
    assert fhir.requests == []


def test_wrong_hook_for_service_is_400(service: Service) -> None:
    context, prefetch = _metformin_session()
    resp = service.post(SELECT, hook_request("order-sign", context, prefetch))
    assert resp.status_code == 400
    assert resp.json()["issue"][0]["expression"] == ["/hook"]


def test_cards_are_recorded_in_audit_log_without_patient_data(service: Service) -> None:
    import sqlite3

    context, prefetch = _metformin_session()
    card = service.post(SIGN, hook_request("order-sign", context, prefetch)).json()["cards"][0]
    deadline = time.monotonic() + 5  # issued cards are written in batches (50 ms)
    with sqlite3.connect(service.audit_db) as db:
        while True:
            row = db.execute("SELECT service_id, kind, indicator FROM cards"
                             " WHERE card_uuid = ?", (card["uuid"],)).fetchone()
            if row is not None or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        dump = "\n".join(db.iterdump())
    assert row == ("b12drugs-order-sign", "metformin", "warning")
    assert "danae" not in dump and "Metformin" not in dump


def test_logs_carry_counts_but_no_patient_data(service: Service,
                                               caplog: pytest.LogCaptureFixture) -> None:
    context, prefetch = _metformin_session()
    body = hook_request("order-sign", context, prefetch)
    with caplog.at_level("INFO", logger="b12drugs.cdshooks"):
        assert service.post(SIGN, body).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "b12drugs.cdshooks"]
    line = next(m for m in lines if body["hookInstance"] in m)
    for field in ("service=b12drugs-order-sign", "status=200", "ms=", "orders=", "alerts=1",
                  "cards=1"):
        assert field in line
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "danae" not in text and "etformin" not in text


def test_order_select_matches_selections_by_full_url(service: Service) -> None:
    """A draft named by its fullUrl (urn:uuid, no id) is screened when selected."""
    data = synthea()
    metformin = next(m for m in data["medicationRequests"]
                     if "Metformin" in m["medicationCodeableConcept"]["text"])
    resource = draft(metformin, "x")
    resource.pop("id")
    full_url = f"urn:uuid:{uuid.uuid4()}"
    context = {
        "userId": "Practitioner/dr-1", "patientId": "danae", "selections": [full_url],
        "draftOrders": {"resourceType": "Bundle", "entry": [
            {"fullUrl": full_url, "resource": resource}]},
    }
    prefetch = full_prefetch(data, meds=[])
    cards = service.post(SELECT, hook_request("order-select", context, prefetch)).json()["cards"]
    assert [c["source"]["topic"]["code"] for c in cards if "topic" in c["source"]] == [
        "metformin"]


def test_order_select_of_an_unknown_order_says_it_was_not_checked(service: Service) -> None:
    data = synthea()
    metformin = next(m for m in data["medicationRequests"]
                     if "Metformin" in m["medicationCodeableConcept"]["text"])
    context = {
        "userId": "Practitioner/dr-1", "patientId": "danae",
        "selections": ["MedicationRequest/not-in-the-bundle"],
        "draftOrders": bundle([draft(metformin, "rx-metformin")]),
    }
    resp = service.post(SELECT, hook_request("order-select", context, full_prefetch(data)))
    assert resp.status_code == 200, resp.text
    cards = resp.json()["cards"]
    assert len(cards) == 1
    assert cards[0]["indicator"] == "info"
    assert "could not be checked" in cards[0]["summary"]
    assert "not found among the draft orders" in cards[0]["detail"]
    assert "not\\-in\\-the\\-bundle" in cards[0]["detail"] or "not-in-the-bundle" in (
        cards[0]["detail"])


def test_fetch_on_demand_asks_for_a_full_page(service: Service, fhir: FhirEmulator) -> None:
    """Servers page at their own default: fetch queries say how many entries to send."""
    context, _ = _metformin_session()
    body = hook_request("order-sign", context, {"patient": synthea()["patient"]},
                        fhirServer=fhir.url, fhirAuthorization=_fhir_auth())
    assert service.post(SIGN, body).status_code == 200
    by_path = {p.split("?")[0]: p for p, _ in fhir.requests}
    assert "_count=5000" in by_path["/fhir/MedicationRequest"]
    assert "_count=5000" in by_path["/fhir/Condition"]
    assert by_path["/fhir/Observation"].count("_count=") == 1  # the template's 20 newest


@pytest.mark.parametrize("extra,reason", [
    ({"link": [{"relation": "self", "url": "https://fhir.example.org/MedicationRequest"},
               {"relation": "next", "url": "https://fhir.example.org/MedicationRequest?p=2"}]},
     "first page"),
    ({"total": 40}, "40 entries match"),
])
def test_truncated_medication_list_is_reported(service: Service, extra: dict[str, Any],
                                               reason: str) -> None:
    context, prefetch = _metformin_session()
    prefetch["medications"].update(extra)
    cards = service.post(SIGN, hook_request("order-sign", context, prefetch)).json()["cards"]
    assert cards[0]["source"]["topic"]["code"] == "metformin"
    assert len(cards) == 1  # said inside the alert it concerns
    detail = cards[0]["detail"]
    assert "the complete current medications" in detail
    assert reason in detail and "incomplete" in detail


def test_current_medication_without_id_is_not_mistaken_for_a_draft(service: Service) -> None:
    """A draft and a prefetched medication, both without id, at index 0: both count."""
    data = synthea()
    colch = synthea("synthea_colchicine.json")
    metformin = next(m for m in data["medicationRequests"]
                     if "Metformin" in m["medicationCodeableConcept"]["text"])
    colchicine = next(m for m in colch["medicationRequests"]
                      if "Colchicine" in m["medicationCodeableConcept"]["text"])
    new = draft(metformin, "x")
    new.pop("id")
    current = dict(colchicine, subject={"reference": "Patient/danae"})
    current.pop("id")
    context = {"userId": "Practitioner/dr-1", "patientId": "danae",
               "draftOrders": bundle([new])}
    prefetch = full_prefetch(data, meds=[current])
    cards = service.post(SIGN, hook_request("order-sign", context, prefetch)).json()["cards"]
    assert cards[0]["source"]["topic"]["code"] == "metformin"
    assert "several B12-lowering drugs" in cards[0]["detail"]
