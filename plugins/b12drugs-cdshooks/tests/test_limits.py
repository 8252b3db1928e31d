"""Bad requests get 4xx OperationOutcomes, never a 500 or a traceback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from b12drugs_cdshooks import create_app
from b12drugs_cdshooks.settings import settings_from_config
from cds_support import (
    FhirEmulator,
    LiveServer,
    Service,
    bound_socket,
    hook_request,
)

from b12drugs.config import Config
from b12drugs.errors import ConfigError

SIGN = "/cds-services/b12drugs-order-sign"
VIEW = "/cds-services/b12drugs-patient-view"


def _outcome(resp: requests.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome"
    assert "Traceback" not in resp.text
    return body  # type: ignore[no-any-return]


def test_oversize_body_by_content_length(service: Service) -> None:
    body = _outcome(service.post(SIGN, None, raw=b" " * (1024 * 1024 + 1)), 413)
    assert body["issue"][0]["code"] == "too-costly"  # type: ignore[index]


def test_oversize_chunked_body(service: Service) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536 * 2

    resp = requests.post(service.url + SIGN, data=chunks(), timeout=10, headers={
        "Authorization": f"Bearer {service.token(service.url + SIGN)}",
        "Content-Type": "application/json"})
    _outcome(resp, 413)


@pytest.mark.parametrize("raw,message", [
    (b"", "empty"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b"\xff\xfe{}", "UTF-8"),
    (b'{"hook": "order-sign"}', "hookInstance"),
    (b"[" * 100000 + b"]" * 100000, "nesting"),
])
def test_malformed_bodies(service: Service, raw: bytes, message: str) -> None:
    body = _outcome(service.post(SIGN, None, raw=raw), 400)
    assert message in body["issue"][0]["diagnostics"]  # type: ignore[index]


def test_deep_but_parseable_json_is_refused(service: Service) -> None:
    deep: object = {}
    for _ in range(80):
        deep = {"a": deep}
    req = hook_request("order-sign", {"userId": "u", "patientId": "p", "draftOrders": {
        "resourceType": "Bundle", "entry": [{"resource": deep}]}})
    body = _outcome(service.post(SIGN, req), 400)
    assert "nesting" in body["issue"][0]["diagnostics"]  # type: ignore[index]


def test_context_errors_name_json_pointers(service: Service) -> None:
    req = hook_request("order-select", {"patientId": "p1", "draftOrders": {"resourceType": "x"}})
    body = _outcome(service.post("/cds-services/b12drugs-order-select", req), 400)
    text = body["issue"][0]["diagnostics"]  # type: ignore[index]
    assert "/context/userId" in text and "/context/selections" in text
    # values are never echoed back
    req = hook_request("order-sign", {"userId": "u", "patientId": "secret id!",
                                      "draftOrders": {"resourceType": "Bundle"}})
    resp = service.post(SIGN, req)
    _outcome(resp, 400)
    assert "secret" not in resp.text


def test_fhir_authorization_requires_fhir_server(service: Service) -> None:
    req = hook_request("patient-view", {"userId": "u", "patientId": "p"}, fhirAuthorization={
        "access_token": "t", "token_type": "Bearer", "scope": "s", "subject": "x"})
    body = _outcome(service.post(VIEW, req), 400)
    assert "fhirServer" in body["issue"][0]["diagnostics"]  # type: ignore[index]


def test_bad_prefetch_value(service: Service) -> None:
    req = hook_request("patient-view", {"userId": "u", "patientId": "p"},
                       prefetch={"medications": [1, 2]})
    body = _outcome(service.post(VIEW, req), 400)
    assert body["issue"][0]["expression"] == ["/prefetch/medications"]  # type: ignore[index]


def test_too_many_draft_orders(service: Service) -> None:
    entries = [{"resource": {"resourceType": "MedicationRequest", "id": f"m{i}",
                             "status": "draft", "intent": "order",
                             "medicationCodeableConcept": {"text": "metformin"}}}
               for i in range(501)]
    req = hook_request("order-sign", {"userId": "u", "patientId": "p", "draftOrders": {
        "resourceType": "Bundle", "entry": entries}})
    _outcome(service.post(SIGN, req), 413)


def test_unknown_service_and_method(service: Service) -> None:
    _outcome(service.post("/cds-services/no-such-service", {}), 404)
    _outcome(service.post("/cds-services/no-such-service/feedback", {}), 404)
    resp = requests.delete(service.url + SIGN, timeout=5)
    _outcome(resp, 405)
    resp = requests.get(service.url + "/nowhere", timeout=5)
    _outcome(resp, 404)


def test_openapi_document_is_served(service: Service) -> None:
    resp = requests.get(service.url + "/openapi.json", timeout=5)
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/cds-services", "/cds-services/{service_id}",
                                 "/cds-services/{service_id}/feedback"}
    assert doc["servers"] == [{"url": service.url}]


# -- configuration ---------------------------------------------------------------------


def test_service_refuses_to_start_without_issuers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no trusted issuers"):
        create_app(Config(plugin={"cdshooks": {"audit_db": str(tmp_path / "a.db")}}))


def test_service_requires_base_url_with_auth(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    with pytest.raises(ConfigError, match="base_url"):
        create_app(Config(plugin={"cdshooks": {"audit_db": str(tmp_path / "a.db"),
                                               "issuers": {"x": {"jwks_file": str(jwks)}}}}))


@pytest.mark.parametrize("section,needle", [
    ({"dedup": True}, "dedup"),
    ({"issuers": {"x": {}}}, "jwks_file"),
    ({"issuers": {"x": {"jku": ["u"], "algorithms": ["HS256"]}}}, "not allowed"),
    ({"fhir_servers": ["ftp://x"]}, "http(s)"),
    ({"limits": {"max_body_bytes": 10}}, "max_body_bytes"),
])
def test_invalid_settings_are_refused(section: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=r"plugin\.cdshooks") as info:
        settings_from_config(Config(plugin={"cdshooks": section}))
    assert needle in str(info.value)


def test_unreadable_jwks_file_is_a_config_error(tmp_path: Path) -> None:
    config = Config(plugin={"cdshooks": {
        "audit_db": str(tmp_path / "a.db"), "base_url": "http://127.0.0.1:1",
        "issuers": {"x": {"jwks_file": str(tmp_path / "missing.json")}}}})
    with pytest.raises(ConfigError, match="JWK Set"):
        create_app(config)


def test_request_time_limit(tmp_path: Path, fhir: FhirEmulator) -> None:
    """A slow FHIR server cannot hold a request beyond the request time limit."""
    config = Config(plugin={"cdshooks": {
        "audit_db": str(tmp_path / "a.db"), "fhir_servers": [fhir.url],
        "limits": {"request_timeout_seconds": 0.5, "fetch_timeout_seconds": 5.0}}})
    live = LiveServer(create_app(config, insecure_no_auth=True), bound_socket()).start()
    try:
        fhir.fault = "slow"
        req = hook_request("patient-view", {"userId": "u", "patientId": "p"},
                           fhirServer=fhir.url, fhirAuthorization={
                               "access_token": "t", "token_type": "Bearer", "scope": "s",
                               "subject": "x"})
        resp = requests.post(live.url + VIEW, data=json.dumps(req), timeout=10,
                             headers={"Content-Type": "application/json",
                                      "X-Request": str(uuid.uuid4())})
        body = _outcome(resp, 503)
        assert body["issue"][0]["code"] == "timeout"  # type: ignore[index]
    finally:
        live.stop()


def test_slow_rxnav_does_not_freeze_the_service(tmp_path: Path) -> None:
    """With RxNav on, an unknown drug waiting on RxNav answers 503 at the time limit
    and /healthz answers meanwhile (screening runs off the event loop)."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked = threading.Event()

    class SlowRxNav(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.set()
            time.sleep(1.6)  # accepts, then answers well after the time limit
            self.send_response(503)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    rxnav = ThreadingHTTPServer(("127.0.0.1", 0), SlowRxNav)
    rxnav.daemon_threads = True
    threading.Thread(target=rxnav.serve_forever, daemon=True).start()
    config = Config(
        rxnav={"enabled": True, "base_url": f"http://127.0.0.1:{rxnav.server_address[1]}",
               "timeout": 5.0, "retries": 0, "cache_path": str(tmp_path / "rxnav.sqlite")},
        rxnorm_index={"enabled": False},
        plugin={"cdshooks": {"audit_db": str(tmp_path / "a.db"),
                             "limits": {"request_timeout_seconds": 0.8}}},
    )
    live = LiveServer(create_app(config, insecure_no_auth=True), bound_socket()).start()
    try:
        req = hook_request("order-sign", {
            "userId": "u", "patientId": "p",
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": {
                "resourceType": "MedicationRequest", "id": "x", "status": "draft",
                "intent": "order", "subject": {"reference": "Patient/p"},
                "medicationCodeableConcept": {"text": "zorblaxinate 5 mg tablet"}}}]}},
            prefetch={"patient": None, "medications": None, "conditions": None, "labs": None})
        answer: dict[str, object] = {}

        def call() -> None:
            started = time.monotonic()
            answer["resp"] = requests.post(live.url + SIGN, data=json.dumps(req), timeout=10,
                                           headers={"Content-Type": "application/json"})
            answer["seconds"] = time.monotonic() - started

        caller = threading.Thread(target=call)
        caller.start()
        assert asked.wait(5), "the service never asked RxNav"
        health = requests.get(live.url + "/healthz", timeout=0.5)
        assert health.status_code == 200
        caller.join(10)
        body = _outcome(answer["resp"], 503)  # type: ignore[arg-type]
        assert body["issue"][0]["code"] == "timeout"  # type: ignore[index]
        assert answer["seconds"] < 2.0  # type: ignore[operator]
    finally:
        live.stop()
        rxnav.shutdown()


def test_unavailable_knowledge_source_is_named_on_the_card(tmp_path: Path) -> None:
    """RxNav down: the card names RxNav (the notice message), not the feed name."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class DownRxNav(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    rxnav = ThreadingHTTPServer(("127.0.0.1", 0), DownRxNav)
    threading.Thread(target=rxnav.serve_forever, daemon=True).start()
    config = Config(
        rxnav={"enabled": True, "base_url": f"http://127.0.0.1:{rxnav.server_address[1]}",
               "timeout": 2.0, "retries": 0, "cache_path": str(tmp_path / "rxnav.sqlite")},
        rxnorm_index={"enabled": False},
        plugin={"cdshooks": {"audit_db": str(tmp_path / "a.db")}},
    )
    live = LiveServer(create_app(config, insecure_no_auth=True), bound_socket()).start()
    try:
        req = hook_request("order-sign", {
            "userId": "u", "patientId": "p",
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": {
                "resourceType": "MedicationRequest", "id": "x", "status": "draft",
                "intent": "order", "subject": {"reference": "Patient/p"},
                "medicationCodeableConcept": {"text": "zorblaxinate 5 mg tablet"}}}]}},
            prefetch={"patient": None, "medications": None, "conditions": None, "labs": None})
        resp = requests.post(live.url + SIGN, data=json.dumps(req), timeout=10,
                             headers={"Content-Type": "application/json"})
        assert resp.status_code == 200, resp.text
        detail = resp.json()["cards"][0]["detail"]
        line = next(x for x in detail.split("\n\n") if "knowledge source unavailable" in x)
        assert "RxNav" in line and "could not be reached" in line
        assert "draftOrders" not in line
    finally:
        live.stop()
        rxnav.shutdown()


def test_alert_sinks_are_not_fed_by_the_cds_service(tmp_path: Path) -> None:
    """Cards are the delivery channel: [[sinks]] of the config get nothing."""
    sink = tmp_path / "alerts.jsonl"
    config = Config(sinks=[{"name": "jsonl-file", "path": str(sink)}],
                    plugin={"cdshooks": {"audit_db": str(tmp_path / "a.db")}})
    live = LiveServer(create_app(config, insecure_no_auth=True), bound_socket()).start()
    try:
        req = hook_request("order-sign", {
            "userId": "u", "patientId": "p",
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": {
                "resourceType": "MedicationRequest", "id": "x", "status": "draft",
                "intent": "order", "subject": {"reference": "Patient/p"},
                "medicationCodeableConcept": {"text": "metformin 500 mg oral tablet"}}}]}},
            prefetch={"patient": None, "medications": None, "conditions": None, "labs": None})
        resp = requests.post(live.url + SIGN, data=json.dumps(req), timeout=10,
                             headers={"Content-Type": "application/json"})
        assert resp.status_code == 200, resp.text
        assert [c["source"]["topic"]["code"] for c in resp.json()["cards"]] == ["metformin"]
        assert not sink.exists() or sink.read_text() == ""
    finally:
        live.stop()


def test_a_timed_out_call_does_not_hide_its_card_from_order_sign(tmp_path: Path) -> None:
    """order-select answered 503 (time limit) while screening went on in a thread: its
    card was never shown, so order-sign of the same encounter must still show it."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cds_support import bundle, draft, synthea

    class SlowForUnknown(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "zorblax" in self.path:
                time.sleep(1.5)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    rxnav = ThreadingHTTPServer(("127.0.0.1", 0), SlowForUnknown)
    rxnav.daemon_threads = True
    threading.Thread(target=rxnav.serve_forever, daemon=True).start()
    config = Config(
        rxnav={"enabled": True, "base_url": f"http://127.0.0.1:{rxnav.server_address[1]}",
               "timeout": 5.0, "retries": 0, "cache_path": str(tmp_path / "rxnav.sqlite")},
        rxnorm_index={"enabled": False},
        plugin={"cdshooks": {"audit_db": str(tmp_path / "a.db"),
                             "limits": {"request_timeout_seconds": 0.5}}},
    )
    live = LiveServer(create_app(config, insecure_no_auth=True), bound_socket()).start()
    try:
        data = synthea()
        metformin = draft(next(m for m in data["medicationRequests"]
                               if "Metformin" in m["medicationCodeableConcept"]["text"]),
                          "rx-metformin")
        unknown = {"resourceType": "MedicationRequest", "id": "rx-unknown", "status": "draft",
                   "intent": "order", "subject": {"reference": "Patient/danae"},
                   "medicationCodeableConcept": {"text": "zorblaxinate 5 mg tablet"}}
        empty = {"patient": None, "medications": None, "conditions": None, "labs": None}
        common = {"userId": "Practitioner/dr-1", "patientId": "danae", "encounterId": "enc-t"}
        select = hook_request("order-select", dict(
            common, selections=["MedicationRequest/rx-metformin"],
            draftOrders=bundle([metformin, unknown])), empty)
        headers = {"Content-Type": "application/json"}
        resp = requests.post(live.url + "/cds-services/b12drugs-order-select",
                             data=json.dumps(select), timeout=10, headers=headers)
        _outcome(resp, 503)
        time.sleep(2.0)  # the abandoned screening finishes meanwhile
        sign = hook_request("order-sign", dict(common, draftOrders=bundle([metformin])), empty)
        resp = requests.post(live.url + SIGN, data=json.dumps(sign), timeout=10,
                             headers=headers)
        assert resp.status_code == 200, resp.text
        assert [c["source"]["topic"]["code"] for c in resp.json()["cards"]] == ["metformin"]
    finally:
        live.stop()
        rxnav.shutdown()
