"""Fault suite for the CDS Hooks service (issue 15): odd but valid JSON, failed
deliveries, the OpenAPI contract, content types and token refusals.

Everything runs against the real service under uvicorn on 127.0.0.1 (the session
fixtures of ``cds_support``), with the audit log a real SQLite file; no mocks.  Each
case here failed on the service before issue 15 was fixed.
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from cds_support import (
    FhirEmulator,
    Service,
    TokenFactory,
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
FEEDBACK = SIGN + "/feedback"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _metformin_sign() -> dict[str, Any]:
    """An order-sign call drafting metformin (RxNorm coded, with text and display)."""
    data = synthea()
    meds = data["medicationRequests"]
    metformin = next(m for m in meds if "Metformin" in m["medicationCodeableConcept"]["text"])
    others = [m for m in meds if m is not metformin]
    context = {"userId": "Practitioner/dr-1", "patientId": "danae",
               "draftOrders": bundle([draft(metformin, "rx-metformin")])}
    return hook_request("order-sign", context, full_prefetch(data, meds=others))


def _raw_with(body: dict[str, Any], old: str, new: str) -> bytes:
    """``body`` serialised with the JSON text ``old`` replaced by ``new`` (once at
    least): a way to write escapes such as a lone ``\\ud800`` that json.dumps never
    produces."""
    text = json.dumps(body)
    assert old in text, old
    return text.replace(old, new).encode()


def _kinds(cards: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((c["indicator"], c["source"].get("topic", {}).get("code", "")) for c in cards)


def _audit_rows(service: Service, hook_instance: str, *, expect: int = 0,
                wait: float = 5.0) -> list[dict[str, Any]]:
    """The issued-card records of one call, read from the SQLite file itself.

    Cards are recorded after their answer was sent, so the client can read the
    answer a moment before the record is queued: wait (bounded) for ``expect`` rows.
    """
    deadline = time.monotonic() + wait
    while True:
        rows = _read_cards(service, hook_instance)
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _read_cards(service: Service, hook_instance: str) -> list[dict[str, Any]]:
    service.app.state.cdshooks.audit.flush()
    db = sqlite3.connect(str(service.audit_db))
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute("SELECT * FROM cards WHERE hook_instance = ?",
                          (hook_instance,)).fetchall()
    finally:
        db.close()
    return [dict(r) for r in rows]


# -- 4. never a 500 --------------------------------------------------------------------


def test_lone_surrogate_in_drug_text_is_screened_not_a_500(service: Service) -> None:
    body = _metformin_sign()
    clean = service.post(SIGN, body)
    assert clean.status_code == 200
    body["hookInstance"] = str(uuid.uuid4())
    text = body["context"]["draftOrders"]["entry"][0]["resource"][
        "medicationCodeableConcept"]["text"]
    raw = _raw_with(body, json.dumps(text), json.dumps(text)[:-1] + '\\ud800"')
    resp = service.post(SIGN, None, raw=raw)
    assert resp.status_code == 200, resp.text[:300]
    assert _kinds(resp.json()["cards"]) == _kinds(clean.json()["cards"])
    assert "\ud800" not in resp.text


def test_lone_surrogate_in_coding_display_still_screens_the_rxnorm_code(
        service: Service) -> None:
    body = _metformin_sign()
    clean = service.post(SIGN, body)
    coding = body["context"]["draftOrders"]["entry"][0]["resource"][
        "medicationCodeableConcept"]["coding"][0]
    assert coding["system"] == RXNORM
    body["hookInstance"] = str(uuid.uuid4())
    display = json.dumps(coding["display"])
    raw = _raw_with(body, display, '"\\udfff' + display[1:])
    resp = service.post(SIGN, None, raw=raw)
    assert resp.status_code == 200, resp.text[:300]
    cards = resp.json()["cards"]
    assert any(c["indicator"] in ("warning", "critical") for c in cards), cards
    assert _kinds(cards) == _kinds(clean.json()["cards"])
    assert not any("could not be checked" in c["summary"] for c in cards)


@pytest.mark.parametrize("where", ["key", "userId", "hookInstance", "prefetch-text"])
def test_lone_surrogates_elsewhere_get_an_answer_not_a_500(service: Service, where: str
                                                           ) -> None:
    body = _metformin_sign()
    if where == "key":
        raw = _raw_with(body, '"hook":', '"\\ud83d": 1, "hook":')
    elif where == "userId":
        raw = _raw_with(body, '"Practitioner/dr-1"', '"Practitioner/\\udc00"')
    elif where == "hookInstance":
        raw = _raw_with(body, body["hookInstance"], body["hookInstance"] + "\\ud800")
    else:
        raw = _raw_with(body, '"text": "', '"text": "\\ud800')  # every text, drafts too
    resp = service.post(SIGN, None, raw=raw)
    assert resp.status_code in (200, 400), resp.text[:300]
    assert resp.json()  # a JSON answer either way: cards or an OperationOutcome


@pytest.mark.parametrize("where", ["top", "resource", "prefetch", "expires_in", "selection"])
def test_integer_of_thousands_of_digits_gets_an_answer_not_a_500(
        service: Service, where: str) -> None:
    big = "9" * 5000
    body = _metformin_sign()
    if where == "top":
        raw = _raw_with(body, '"hook":', f'"extension": {big}, "hook":')
    elif where == "resource":
        repeats = f'"dispenseRequest": {{"numberOfRepeatsAllowed": {big}}}'
        raw = _raw_with(body, '"status": "draft"', f'"status": "draft", {repeats}')
    elif where == "prefetch":
        raw = _raw_with(body, '"resourceType": "Patient"',
                        f'"resourceType": "Patient", "multipleBirthInteger": {big}')
    elif where == "expires_in":
        body["fhirServer"] = "https://fhir.example.org"
        body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer",
                                     "expires_in": 1, "scope": "x", "subject": "s"}
        raw = _raw_with(body, '"expires_in": 1', f'"expires_in": {big}')
    else:
        body = hook_request("order-select", {
            "userId": "u", "patientId": "p", "selections": ["MedicationRequest/1"],
            "draftOrders": {"resourceType": "Bundle", "entry": [], "total": 0}})
        raw = _raw_with(body, '"total": 0', f'"total": -{big}')
    resp = service.post(SIGN if where != "selection" else SELECT, None, raw=raw)
    assert 200 <= resp.status_code < 500, resp.text[:300]
    if resp.status_code >= 400:
        assert "digits" in resp.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity", "1" + "0" * 400 + ".5"])
def test_numbers_beyond_double_range_get_an_answer_not_a_500(service: Service, number: str
                                                              ) -> None:
    body = _metformin_sign()
    raw = _raw_with(body, '"status": "draft"',
                    f'"status": "draft", "dispenseRequest": {{"numberOfRepeatsAllowed": {number},'
                    f' "quantity": {{"value": {number}}}}}')
    resp = service.post(SIGN, None, raw=raw)
    assert 200 <= resp.status_code < 500, resp.text[:300]
    assert resp.json()


def test_integers_past_64_bits_in_a_resource_still_screen(service: Service) -> None:
    body = _metformin_sign()
    raw = _raw_with(body, '"status": "draft"',
                    f'"status": "draft", "dispenseRequest": {{"numberOfRepeatsAllowed": {2**80}}}')
    resp = service.post(SIGN, None, raw=raw)
    assert resp.status_code == 200, resp.text[:300]
    assert any(c["indicator"] in ("warning", "critical") for c in resp.json()["cards"])


# -- 5. the audit log records what was delivered ---------------------------------------


def test_cards_recorded_are_exactly_the_cards_delivered(service: Service) -> None:
    """Before issue 15 a call whose answer could not be rendered (a lone surrogate in a
    drug text) got a 500, and its cards stayed in the audit log nobody saw."""
    body = _metformin_sign()
    text = body["context"]["draftOrders"]["entry"][0]["resource"][
        "medicationCodeableConcept"]["text"]
    raw = _raw_with(body, json.dumps(text), json.dumps(text)[:-1] + '\\ud800"')
    resp = service.post(SIGN, None, raw=raw)
    delivered = {c["uuid"] for c in resp.json().get("cards", [])}
    rows = _audit_rows(service, body["hookInstance"], expect=len(delivered))
    time.sleep(0.2)  # nothing more may come
    rows = _audit_rows(service, body["hookInstance"])
    assert {r["card_uuid"] for r in rows} == delivered
    assert all(r["delivery"] == "delivered" for r in rows)


def _hang_up_during_fetch(service: Service, fhir: FhirEmulator, encounter: str | None = None
                          ) -> dict[str, Any]:
    """Send an order-sign call whose data must be fetched from a slow FHIR server, and
    hang up before the answer: the cards are built but reach nobody."""
    fhir.fault = "slow"
    data = synthea()
    meds = data["medicationRequests"]
    metformin = next(m for m in meds if "Metformin" in m["medicationCodeableConcept"]["text"])
    context = {"userId": "Practitioner/dr-1", "patientId": "danae",
               "draftOrders": bundle([draft(metformin, "rx-metformin")])}
    if encounter:
        context["encounterId"] = encounter
    body = hook_request(
        "order-sign", context, fhirServer=fhir.url,
        fhirAuthorization={"access_token": "t", "token_type": "Bearer", "scope": "x",
                           "subject": "s"})
    payload = json.dumps(body).encode()
    host, port = service.url.removeprefix("http://").split(":")
    token = service.token(service.url + SIGN)
    head = (f"POST {SIGN} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json"
            f"\r\nAuthorization: Bearer {token}\r\nContent-Length: {len(payload)}\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode() + payload)
        time.sleep(0.3)  # the request is read and its fetch has started
    return body


def test_cards_of_a_call_whose_client_went_away_are_recorded_as_not_sent(
        service: Service, fhir: FhirEmulator) -> None:
    """The client hangs up while its data is fetched (the FHIR server is slow): the
    cards are built but never reach anyone, and the audit record says so."""
    body = _hang_up_during_fetch(service, fhir)
    rows = _audit_rows(service, body["hookInstance"], expect=1, wait=10)
    assert rows, "the cards of the call were never recorded"
    assert {r["delivery"] for r in rows} == {"send-failed"}


def test_cards_nobody_received_are_not_hidden_by_de_duplication(
        service: Service, fhir: FhirEmulator) -> None:
    """Same encounter, prescriber and orders: the second call de-duplicates what the
    first showed.  When the first answer never arrived, the second must show it."""
    encounter = f"enc-{uuid.uuid4().hex[:12]}"
    lost = _hang_up_during_fetch(service, fhir, encounter)
    assert _audit_rows(service, lost["hookInstance"], expect=1, wait=10)
    again = dict(lost, hookInstance=str(uuid.uuid4()))  # the FHIR server still slow:
    # the same data, so the same cards and de-duplication keys
    resp = service.post(SIGN, again)
    assert resp.status_code == 200
    topics = [c["source"].get("topic", {}).get("code") for c in resp.json()["cards"]]
    assert "metformin" in topics, topics


def test_old_audit_file_gains_the_delivery_column(tmp_path: Path) -> None:
    from b12drugs_cdshooks.audit import AuditLog

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(str(path))
    db.executescript(
        "CREATE TABLE cards (card_uuid TEXT PRIMARY KEY, issued_at TEXT NOT NULL,"
        " service_id TEXT NOT NULL, hook_instance TEXT NOT NULL, kind TEXT NOT NULL,"
        " indicator TEXT NOT NULL, suggestions TEXT NOT NULL);"
        "INSERT INTO cards VALUES ('old-1','2025-01-01','s','h','k','info','[]');")
    db.close()
    log = AuditLog(path)
    log.record_cards("s", "h2", [("new-1", "k", "info", [])], delivery="delivered")
    log.close()
    db = sqlite3.connect(str(path))
    rows = dict(db.execute("SELECT card_uuid, delivery FROM cards").fetchall())
    db.close()
    assert rows == {"old-1": None, "new-1": "delivered"}


# -- 6. the OpenAPI document, content types, token refusals ------------------------------


def _validator(doc: dict[str, Any], ref: str) -> jsonschema.protocols.Validator:
    """A JSON Schema 2020-12 validator for ``#/components/schemas/<ref>`` of ``doc``."""
    schema = {"$ref": f"#/components/schemas/{ref}", "components": doc["components"]}
    cls = jsonschema.validators.validator_for({"$schema": doc["jsonSchemaDialect"]})
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _spec_request(name: str, hook: str) -> dict[str, Any]:
    spec = load(name)
    return hook_request(hook, spec["context"], spec.get("prefetch"))


def test_openapi_is_generated_from_the_models(service: Service) -> None:
    from b12drugs_cdshooks.hookrequest import HookRequest

    doc = requests.get(service.url + "/openapi.json", timeout=5).json()
    assert doc["openapi"].startswith("3.1")
    generated = HookRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    assert set(doc["components"]["schemas"]["HookRequest"]["required"]) == set(
        generated["required"])
    # every request the suite sends, and the specification's own examples, conform
    requests_ok = [
        _spec_request("spec_order_select_r4.json", "order-select"),
        _spec_request("spec_order_sign_r4.json", "order-sign"),
        load("spec_patient_view.json")["request"],
        _metformin_sign(),
    ]
    validator = _validator(doc, "HookRequest")
    for body in requests_ok:
        validator.validate(body)
    examples = load("spec_feedback.json")
    for key in ("accepted", "overridden"):
        _validator(doc, "FeedbackRequest").validate(examples[key])
    # and a request the service refuses does not
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"hook": "order-sign", "context": {}})


def test_real_responses_conform_to_the_generated_schema(service: Service) -> None:
    doc = requests.get(service.url + "/openapi.json", timeout=5).json()
    cards = service.post(SIGN, _metformin_sign())
    assert cards.status_code == 200 and cards.json()["cards"]
    _validator(doc, "CardsResponse").validate(cards.json())
    _validator(doc, "DiscoveryResponse").validate(service.get("/cds-services").json())
    refused = service.post(SIGN, {"hook": "order-sign"})
    assert refused.status_code == 400
    _validator(doc, "OperationOutcome").validate(refused.json())


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "application/xml", "multipart/form-data; boundary=x",
                                   "application/jsonx", None])
def test_content_type_other_than_json_is_415(service: Service, ctype: str | None) -> None:
    body = json.dumps(_metformin_sign()).encode()
    headers = {"Authorization": f"Bearer {service.token(service.url + SIGN)}"}
    if ctype is not None:
        headers["Content-Type"] = ctype
    resp = requests.post(service.url + SIGN, data=body, headers=headers, timeout=10)
    assert resp.status_code == 415, resp.text[:300]
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_feedback_with_another_content_type_is_415_and_documented(service: Service) -> None:
    examples = load("spec_feedback.json")
    resp = service.post(FEEDBACK, examples["accepted"], headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    doc = requests.get(service.url + "/openapi.json", timeout=5).json()
    for path in ("/cds-services/{service_id}", "/cds-services/{service_id}/feedback"):
        assert "415" in doc["paths"][path]["post"]["responses"]


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8",
                                   "Application/JSON;charset=UTF-8"])
def test_json_content_type_with_parameters_is_accepted(service: Service, ctype: str) -> None:
    resp = service.post(SIGN, _metformin_sign(), headers={"Content-Type": ctype})
    assert resp.status_code == 200, resp.text[:300]


def test_token_refusals_say_only_invalid_token_and_a_class(
        service: Service, make_token: TokenFactory, caplog: pytest.LogCaptureFixture) -> None:
    aud = service.url + "/cds-services"
    untrusted_issuer = make_token(aud, iss="https://evil.example.org")
    unknown_kid = make_token(aud, kid="no-such-kid")
    with caplog.at_level(logging.INFO, logger="b12drugs.cdshooks.auth"):
        a = service.get("/cds-services", token=untrusted_issuer)
        b = service.get("/cds-services", token=unknown_kid)
    assert a.status_code == b.status_code == 401
    said_a = a.json()["issue"][0]["diagnostics"]
    said_b = b.json()["issue"][0]["diagnostics"]
    assert said_a == said_b  # the caller cannot tell an unknown issuer from a kid
    assert said_a.startswith("invalid token")
    assert "issuer" not in said_a and "kid" not in said_a
    logged = caplog.text
    assert "issuer is not trusted" in logged and "kid" in logged
