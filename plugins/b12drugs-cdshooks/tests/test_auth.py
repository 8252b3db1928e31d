"""The JWT matrix over real HTTP: every way a bearer token can be wrong is refused."""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from typing import Any

import jwt
import pytest
from b12drugs_cdshooks.auth import REASONS, TokenRefused
from cds_support import ISSUER, JKU_ISSUER, Keys, Service, TokenFactory
from cryptography.hazmat.primitives import serialization

DISCOVERY = "/cds-services"
SIGN = "/cds-services/b12drugs-order-sign"


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class _Detail(logging.Handler):
    """Collects what the service logs about refused tokens (the detail the caller is
    no longer told, issue 15)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _refused(service: Service, token: str, path: str = DISCOVERY) -> str:
    """Send ``token``; check the 401 says only the reason class; return the class and
    the detail the service logged for it."""
    auth_log = logging.getLogger("b12drugs.cdshooks.auth")
    detail, level = _Detail(), auth_log.level
    auth_log.addHandler(detail)
    auth_log.setLevel(logging.INFO)
    try:
        resp = service.get(path, token=token) if path == DISCOVERY else service.post(
            path, {}, token=token)
    finally:
        auth_log.removeHandler(detail)
        auth_log.setLevel(level)
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    assert resp.headers["www-authenticate"].startswith("Bearer")
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] in ("security", "login")
    said = str(outcome["issue"][0]["diagnostics"])
    m = re.fullmatch(r"invalid token \((\S+)\)", said)
    assert m and m[1] in REASONS, said
    logged = [line for line in detail.lines if line.startswith(f"token refused: {m[1]}: ")]
    assert logged, detail.lines
    return said + " | " + " ".join(logged)


def test_valid_es384_token_is_accepted(service: Service, make_token: TokenFactory) -> None:
    resp = service.get(DISCOVERY, token=make_token(service.url + DISCOVERY))
    assert resp.status_code == 200


def test_valid_rs384_token_is_accepted(service: Service, make_token: TokenFactory) -> None:
    token = make_token(service.url + DISCOVERY, alg="RS384", kid="rsa-1")
    assert service.get(DISCOVERY, token=token).status_code == 200


def test_aud_may_be_a_list(service: Service, make_token: TokenFactory) -> None:
    token = make_token([service.url + DISCOVERY])  # type: ignore[arg-type]
    assert service.get(DISCOVERY, token=token).status_code == 200


def test_allowlisted_jku_is_fetched_and_cached(service: Service, make_token: TokenFactory,
                                               jwks_server: dict[str, Any]) -> None:
    for _ in range(3):
        token = make_token(service.url + DISCOVERY, iss=JKU_ISSUER,
                           headers={"jku": jwks_server["jku"]})
        assert service.get(DISCOVERY, token=token).status_code == 200
    assert jwks_server["hits"].count("/jwks.json") == 1


def test_jku_not_on_allowlist_is_refused(service: Service, make_token: TokenFactory,
                                         jwks_server: dict[str, Any]) -> None:
    evil = jwks_server["url"] + "/evil-jwks.json"
    token = make_token(service.url + DISCOVERY, iss=JKU_ISSUER, headers={"jku": evil})
    assert "allowlist" in _refused(service, token)
    assert "/evil-jwks.json" not in jwks_server["hits"]


def test_missing_header(service: Service) -> None:
    resp = service.get(DISCOVERY, auth=False)
    assert resp.status_code == 401
    assert resp.json()["issue"][0]["code"] == "login"


def test_not_a_bearer_token(service: Service) -> None:
    said = _refused(service, "x")  # "Bearer x": not a JWT
    assert "invalid token (malformed)" in said and "well-formed" in said


def test_expired(service: Service, make_token: TokenFactory) -> None:
    token = make_token(service.url + DISCOVERY, iat=-600, exp=-120)
    assert "expired" in _refused(service, token)


def test_expiry_within_clock_skew_is_tolerated(service: Service, make_token: TokenFactory) -> None:
    token = make_token(service.url + DISCOVERY, iat=-60, exp=-5)
    assert service.get(DISCOVERY, token=token).status_code == 200


def test_future_iat(service: Service, make_token: TokenFactory) -> None:
    token = make_token(service.url + DISCOVERY, iat=600, exp=900)
    assert "not valid yet" in _refused(service, token)


def test_overlong_lifetime(service: Service, make_token: TokenFactory) -> None:
    token = make_token(service.url + DISCOVERY, exp=86400 * 30)
    assert "lifetime" in _refused(service, token)


def test_wrong_aud(service: Service, make_token: TokenFactory) -> None:
    # a token for the discovery endpoint must not open a service endpoint
    token = make_token(service.url + DISCOVERY)
    assert "aud" in _refused(service, token, SIGN)
    other_host = make_token("https://cds.example.org" + DISCOVERY)
    assert "aud" in _refused(service, other_host)


def test_unknown_iss(service: Service, make_token: TokenFactory) -> None:
    token = make_token(service.url + DISCOVERY, iss="https://evil.example.org")
    assert "issuer" in _refused(service, token)


def test_unknown_kid(service: Service, make_token: TokenFactory) -> None:
    token = make_token(service.url + DISCOVERY, kid="no-such-kid")
    assert "kid" in _refused(service, token)


def test_key_not_in_jwks(service: Service, make_token: TokenFactory, keys: Keys) -> None:
    token = make_token(service.url + DISCOVERY, key=keys.other_ec384)
    assert "signature" in _refused(service, token)


def test_alg_none(service: Service) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": "ec-1"}
    claims = {"iss": ISSUER, "aud": service.url + DISCOVERY, "exp": 9999999999,
              "iat": 1700000000, "jti": str(uuid.uuid4())}
    token = f"{_b64(header)}.{_b64(claims)}."
    assert "asymmetric" in _refused(service, token)


def test_hs256_with_public_key_as_secret(service: Service, keys: Keys) -> None:
    public_pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    claims = {"iss": ISSUER, "aud": service.url + DISCOVERY, "exp": 9999999999,
              "iat": 1700000000, "jti": str(uuid.uuid4())}
    # PyJWT refuses to sign with a PEM key as HMAC secret, so sign by hand
    import hashlib
    import hmac

    signing_input = f"{_b64(header)}.{_b64(claims)}"
    sig = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    assert "asymmetric" in _refused(service, token)


def test_alg_that_does_not_fit_the_key(service: Service, make_token: TokenFactory) -> None:
    # RSA-signed token naming the EC key's kid
    token = make_token(service.url + DISCOVERY, alg="RS384", kid="ec-1")
    assert "fit" in _refused(service, token)


def test_replayed_jti(service: Service, make_token: TokenFactory) -> None:
    token = make_token(service.url + DISCOVERY, jti="replay-me-" + uuid.uuid4().hex)
    assert service.get(DISCOVERY, token=token).status_code == 200
    assert "replay" in _refused(service, token)


def test_tampered_payload(service: Service, make_token: TokenFactory) -> None:
    token = make_token(service.url + DISCOVERY)
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tenant"] = "someone-else"
    assert "signature" in _refused(service, f"{header}.{_b64(claims)}.{sig}")


def test_missing_jti(service: Service, keys: Keys) -> None:
    import time

    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": service.url + DISCOVERY, "exp": now + 60,
                        "iat": now}, keys.ec384, algorithm="ES384",
                       headers={"kid": "ec-1", "typ": "JWT"})
    assert "JWT rejected" in _refused(service, token)


def test_wrong_typ(service: Service, make_token: TokenFactory) -> None:
    token = make_token(service.url + DISCOVERY, headers={"typ": "at+jwt"})
    assert "typ" in _refused(service, token)


@pytest.mark.parametrize("path,method", [
    ("/cds-services/b12drugs-order-sign", "post"),
    ("/cds-services/b12drugs-order-sign/feedback", "post"),
])
def test_every_endpoint_requires_a_token(service: Service, path: str, method: str) -> None:
    resp = service.post(path, {"feedback": []}, auth=False)
    assert resp.status_code == 401


def test_unauthenticated_body_is_not_read(service: Service) -> None:
    # authentication comes first: a huge body from an unknown caller is refused as 401
    resp = service.post(SIGN, None, raw=b"x" * (4 * 1024 * 1024), auth=False)
    assert resp.status_code == 401


def test_failing_jku_is_fetched_once_for_many_forged_tokens(
        tmp_path: Any, make_token: TokenFactory) -> None:
    """Concurrent and repeated tokens naming a broken jku cause one outbound fetch."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import requests
    from b12drugs_cdshooks import create_app
    from cds_support import LiveServer, bound_socket

    from b12drugs.config import Config

    hits: list[str] = []

    class Broken(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            time.sleep(0.3)
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    jwks = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    jwks.daemon_threads = True
    threading.Thread(target=jwks.serve_forever, daemon=True).start()
    jku = f"http://127.0.0.1:{jwks.server_address[1]}/jwks.json"
    sock = bound_socket()
    host, port = sock.getsockname()[:2]
    base = f"http://{host}:{port}"
    config = Config(plugin={"cdshooks": {
        "base_url": base, "audit_db": str(tmp_path / "a.db"),
        "issuers": {JKU_ISSUER: {"jku": [jku]}}}})
    live = LiveServer(create_app(config), sock).start()
    try:
        def call(_: int) -> int:
            token = make_token(base + DISCOVERY, iss=JKU_ISSUER, headers={"jku": jku})
            return requests.get(base + DISCOVERY, timeout=10,
                                headers={"Authorization": f"Bearer {token}"}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(call, range(8))) == [401] * 8
        assert [call(i) for i in range(5)] == [401] * 5
        assert hits == ["/jwks.json"]
    finally:
        live.stop()
        jwks.shutdown()


def test_rotated_key_under_the_same_kid_replaces_the_cached_key(
        keys: Keys, make_token: TokenFactory) -> None:
    """Parsed key objects are cached per kid, but only for the JWK they came from: when
    the issuer's JWK Set is re-fetched with a new key under the same kid, tokens signed
    with the old key are refused and tokens signed with the new one accepted."""
    from http.server import BaseHTTPRequestHandler
    from time import sleep

    from b12drugs_cdshooks.auth import Authenticator
    from b12drugs_cdshooks.outcome import Problem
    from b12drugs_cdshooks.settings import settings_from_config
    from cds_support import _serve

    from b12drugs.config import Config

    def jwk_set(private: Any) -> bytes:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
        jwk.update(kid="ec-1", use="sig", alg="ES384")
        return json.dumps({"keys": [jwk]}).encode()

    served = {"body": jwk_set(keys.ec384)}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(served["body"])

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd, url = _serve(Handler)
    try:
        jku = f"{url}/jwks.json"
        auth = Authenticator(settings_from_config(Config(plugin={"cdshooks": {
            "base_url": "https://cds.example.org",
            "limits": {"jwks_cache_seconds": 0.05},
            "issuers": {JKU_ISSUER: {"jku": [jku]}}}})))
        aud = "https://cds.example.org" + DISCOVERY

        def verify(key: Any) -> None:
            auth.verify("Bearer " + make_token(aud, iss=JKU_ISSUER, key=key), aud)

        verify(keys.ec384)
        verify(keys.ec384)  # served from the cached key object
        served["body"] = jwk_set(keys.other_ec384)
        sleep(0.1)  # the cached JWK Set is stale: the next token re-fetches it
        with pytest.raises(Problem) as refused:
            verify(keys.ec384)
        assert refused.value.status == 401 and isinstance(refused.value, TokenRefused)
        assert "signature" in refused.value.detail
        assert refused.value.message == "invalid token (untrusted)"
        verify(keys.other_ec384)
    finally:
        httpd.shutdown()
