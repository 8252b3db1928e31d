"""Real components for the CDS Hooks tests.

* the service runs under uvicorn on 127.0.0.1 in a thread (a pre-bound socket on a
  free port, so the JWT audience is known before the app is built);
* keys are generated here with ``cryptography``; the trusted issuer's JWK Set is a file,
  a second issuer publishes its set over HTTP (``jku``);
* a FHIR server emulator (``http.server`` on 127.0.0.1) answers the prefetch queries
  from Synthea data and records what it was asked, with injectable faults.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import uvicorn
from b12drugs_cdshooks import create_app
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from b12drugs.config import Config

DATA = Path(__file__).parent / "data"
ISSUER = "https://ehr.example.org"
JKU_ISSUER = "https://other-ehr.example.org"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text("utf-8"))


def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": r} for r in resources]}


# -- live uvicorn server --------------------------------------------------------------


class LiveServer:
    """An ASGI app served by uvicorn in a background thread."""

    def __init__(self, app: Any, sock: socket.socket):
        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


# -- keys and tokens -----------------------------------------------------------------


@dataclass
class Keys:
    ec384: ec.EllipticCurvePrivateKey
    rsa: rsa.RSAPrivateKey
    other_ec384: ec.EllipticCurvePrivateKey  # not in any JWK Set

    def jwks(self) -> dict[str, Any]:
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec384.public_key()))
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk.update(kid="ec-1", use="sig", alg="ES384")
        rsa_jwk.update(kid="rsa-1", use="sig")
        return {"keys": [ec_jwk, rsa_jwk]}


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        ec384=ec.generate_private_key(ec.SECP384R1()),
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        other_ec384=ec.generate_private_key(ec.SECP384R1()),
    )


TokenFactory = Callable[..., str]


@pytest.fixture(scope="session")
def make_token(keys: Keys) -> TokenFactory:
    def make(aud: str, *, alg: str = "ES384", kid: str = "ec-1", iss: str = ISSUER,
             exp: float = 300, iat: float = 0, jti: str | None = None,
             key: Any = None, headers: dict[str, Any] | None = None,
             claims: dict[str, Any] | None = None) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": iss, "aud": aud, "exp": now + exp, "iat": now + iat,
            "jti": jti or str(uuid.uuid4()),
        }
        payload.update(claims or {})
        if key is None:
            key = keys.ec384 if alg.startswith("ES") else keys.rsa
        hdr = {"kid": kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(payload, key, algorithm=alg, headers=hdr)

    return make


# -- HTTP helpers (JWKS publisher, FHIR emulator) ----------------------------------------


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture(scope="session")
def jwks_server(keys: Keys) -> Iterator[dict[str, Any]]:
    body = json.dumps(keys.jwks()).encode()
    hits: list[str] = []

    class Handler(_Quiet):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200 if self.path == "/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if self.path == "/jwks.json":
                self.wfile.write(body)

    httpd, url = _serve(Handler)
    yield {"url": url, "jku": f"{url}/jwks.json", "hits": hits}
    httpd.shutdown()


@dataclass
class FhirEmulator:
    """What the emulator serves and records."""

    url: str = ""
    patient: dict[str, Any] = field(default_factory=dict)
    medications: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    fault: str | None = None  # "slow", "huge", "500", "redirect"


@pytest.fixture(scope="session")
def fhir() -> Iterator[FhirEmulator]:
    emu = FhirEmulator()
    synthea = load("synthea_metformin_neuropathy.json")
    emu.patient = synthea["patient"]
    emu.medications = synthea["medicationRequests"]
    emu.conditions = synthea["conditions"]

    class Handler(_Quiet):
        def do_GET(self) -> None:
            emu.requests.append((self.path, self.headers.get("Authorization")))
            if emu.fault == "slow":
                time.sleep(2.0)
            if emu.fault == "500":
                self.send_response(500)
                self.end_headers()
                return
            if emu.fault == "redirect":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:9/steal")
                self.end_headers()
                return
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if emu.fault == "huge":
                body = b'{"resourceType":"Bundle","entry":[' + b" " * (3 * 1024 * 1024) + b"]}"
            elif parts.path.startswith("/fhir/Patient/"):
                body = json.dumps(emu.patient).encode()
            elif parts.path == "/fhir/MedicationRequest":
                meds = [m for m in emu.medications
                        if m.get("status") in query.get("status", ["active"])]
                body = json.dumps(bundle(meds)).encode()
            elif parts.path == "/fhir/Condition":
                body = json.dumps(bundle(emu.conditions)).encode()
            elif parts.path == "/fhir/Observation":
                body = json.dumps(bundle(emu.observations)).encode()
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd, url = _serve(Handler)
    emu.url = f"{url}/fhir"
    yield emu
    httpd.shutdown()


@pytest.fixture(autouse=True)
def _reset_fhir(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "fhir" in request.fixturenames:
        emu: FhirEmulator = request.getfixturevalue("fhir")
        emu.fault = None
        emu.requests.clear()
        emu.observations = []


# -- the service -----------------------------------------------------------------------


@dataclass
class Service:
    url: str
    app: Any
    audit_db: Path
    token: Callable[[str], str]

    def post(self, path: str, body: Any, *, token: str | None = None,
             raw: bytes | None = None, headers: dict[str, str] | None = None,
             auth: bool = True) -> requests.Response:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if auth:
            hdrs["Authorization"] = f"Bearer {token or self.token(self.url + path)}"
        data = raw if raw is not None else json.dumps(body).encode()
        return requests.post(self.url + path, data=data, headers=hdrs, timeout=10)

    def get(self, path: str, *, token: str | None = None, auth: bool = True
            ) -> requests.Response:
        hdrs = {}
        if auth:
            hdrs["Authorization"] = f"Bearer {token or self.token(self.url + path)}"
        return requests.get(self.url + path, headers=hdrs, timeout=10)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, keys: Keys, make_token: TokenFactory,
            fhir: FhirEmulator, jwks_server: dict[str, Any]) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("cds")
    jwks_file = tmp / "ehr-jwks.json"
    jwks_file.write_text(json.dumps(keys.jwks()), "utf-8")
    sock = bound_socket()
    host, port = sock.getsockname()[:2]
    base = f"http://{host}:{port}"
    audit_db = tmp / "audit.sqlite3"
    config = Config(plugin={"cdshooks": {
        "base_url": base,
        "audit_db": str(audit_db),
        "fhir_servers": [fhir.url],
        "issuers": {
            ISSUER: {"jwks_file": str(jwks_file)},
            JKU_ISSUER: {"jku": [jwks_server["jku"]]},
        },
        "source_url": "https://example.org/b12drugs",
        "limits": {"fetch_timeout_seconds": 1.0, "fetch_max_bytes": 1024 * 1024},
    }})
    app = create_app(config)
    live = LiveServer(app, sock).start()
    yield Service(live.url, app, audit_db, lambda aud: make_token(aud))
    live.stop()


@pytest.fixture(scope="session")
def insecure_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("cds-insecure")
    config = Config(plugin={"cdshooks": {"audit_db": str(tmp / "audit.sqlite3")}})
    app = create_app(config, insecure_no_auth=True)
    live = LiveServer(app, bound_socket()).start()
    yield Service(live.url, app, tmp / "audit.sqlite3", lambda aud: "unused")
    live.stop()


# -- request builders ------------------------------------------------------------------


def synthea(name: str = "synthea_metformin_neuropathy.json") -> dict[str, Any]:
    return load(name)


def draft(resource: dict[str, Any], new_id: str) -> dict[str, Any]:
    """A Synthea MedicationRequest turned into a draft order of this session."""
    out = dict(resource, id=new_id, status="draft")
    out.pop("authoredOn", None)
    return out


def hook_request(hook: str, context: dict[str, Any], prefetch: dict[str, Any] | None = None,
                 **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


def full_prefetch(data: dict[str, Any], meds: list[dict[str, Any]] | None = None,
                  observations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "patient": data["patient"],
        "medications": bundle(data["medicationRequests"] if meds is None else meds),
        "conditions": bundle(data["conditions"]),
        "labs": bundle(observations) if observations else None,
    }
