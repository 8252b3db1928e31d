"""Benchmark the CDS Hooks service against a bare Starlette endpoint (the floor).

    python plugins/b12drugs-cdshooks/benchmarks/bench_cdshooks.py [--runs 3] [--duration 5]
        [--concurrency 1 10 50] [--auth] [--algs ES384 RS384]

Starts each server with uvicorn (one worker; ``--http httptools``, what ``b12drugs
serve`` uses since the plugin depends on httptools, or ``h11``; the same for every
target) on 127.0.0.1 and drives it with
``loadgen.py`` in a separate process: order-sign requests with realistic draft orders
(two Synthea MedicationRequests drafted anew: metformin and colchicine) and full
prefetch (the Synthea patient, her active medications and conditions).  Each
(target, concurrency) is run ``--runs`` times; the table shows the median of each figure.
``--auth`` adds the service with JWT verification, one row group per algorithm of
``--algs`` (default: both algorithms the specification recommends, ES384 and RS384).
Every request carries its own token with a unique ``jti`` that the server verifies in
full (signature, aud, exp/iat, replay); the tokens are signed before the timed window,
in this process, so that signing does not take CPU from the server during the run (the
EHR signs on its own machine).  The load generator stops with an error rather than
reuse a token.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
PATH = "/cds-services/b12drugs-order-sign"


def request_body() -> bytes:
    danae = json.loads((DATA / "synthea_metformin_neuropathy.json").read_text("utf-8"))
    courtney = json.loads((DATA / "synthea_colchicine.json").read_text("utf-8"))
    meds = danae["medicationRequests"]
    metformin = next(m for m in meds if "Metformin" in m["medicationCodeableConcept"]["text"])
    colchicine = next(m for m in courtney["medicationRequests"]
                      if "Colchicine" in m["medicationCodeableConcept"]["text"])
    drafts = [dict(metformin, id="draft-1", status="draft"),
              dict(colchicine, id="draft-2", status="draft")]

    def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "searchset",
                "entry": [{"resource": r} for r in resources]}

    body = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/bench", "patientId": "bench-patient",
                    "draftOrders": bundle(drafts)},
        "prefetch": {
            "patient": danae["patient"],
            "medications": bundle([m for m in meds if m is not metformin]),
            "conditions": bundle(danae["conditions"]),
            "labs": None,
        },
    }
    return json.dumps(body).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(factory: str, port: int, env: dict[str, str], http: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", f"bench_apps:{factory}",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log", "--http", http],
        cwd=HERE, env={**os.environ, **env, "PYTHONPATH": str(HERE)},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{factory} did not start")


def tokens_file(key: Any, alg: str, url: str, count: int, directory: Path) -> Path:
    import jwt

    now = int(time.time())
    path = directory / f"tokens-{uuid.uuid4().hex}.txt"
    with path.open("w", encoding="ascii") as fh:
        for _ in range(count):
            fh.write(jwt.encode({"iss": "bench-ehr", "aud": url, "iat": now, "exp": now + 600,
                                 "jti": uuid.uuid4().hex}, key, algorithm=alg,
                                headers={"kid": f"bench-{alg}", "typ": "JWT"}) + "\n")
    return path


def signing_keys(algs: list[str], directory: Path) -> tuple[dict[str, Any], Path]:
    """A private key per algorithm and the JWK Set file with their public halves."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    private: dict[str, Any] = {}
    jwks = []
    for alg in algs:
        if alg == "ES384":
            key: Any = ec.generate_private_key(ec.SECP384R1())
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        elif alg == "RS384":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        else:
            raise SystemExit(f"unsupported --algs value {alg!r} (ES384, RS384)")
        jwk.update(kid=f"bench-{alg}", use="sig", alg=alg)
        private[alg] = key
        jwks.append(jwk)
    path = directory / "jwks.json"
    path.write_text(json.dumps({"keys": jwks}))
    return private, path


def loadgen(url: str, body: Path, concurrency: int, duration: float,
            tokens: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "loadgen.py"), "--url", url, "--body", str(body),
           "--concurrency", str(concurrency), "--duration", str(duration)]
    if tokens:
        cmd += ["--tokens", str(tokens)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--auth", action="store_true", help="also benchmark with JWT verification")
    ap.add_argument("--http", choices=["h11", "httptools"], default="httptools",
                    help="uvicorn's HTTP parser, the same for every target (httptools is "
                    "what `b12drugs serve` picks; h11 is uvicorn's pure-Python parser)")
    ap.add_argument("--algs", nargs="+", default=["ES384", "RS384"],
                    help="JWT algorithms benchmarked with --auth (RSA keys are 2048-bit)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        body = tmp / "order-sign.json"
        body.write_bytes(request_body())
        targets: list[tuple[str, str, dict[str, str]]] = [
            ("bare Starlette endpoint (fixed card)", "bare_app", {}),
            ("b12drugs CDS service (no auth)", "service_app", {"BENCH_DIR": tmp_name}),
        ]
        private: dict[str, Any] = {}
        if args.auth:
            private, jwks_path = signing_keys(args.algs, tmp)
            for alg in args.algs:
                targets.append((f"b12drugs CDS service (JWT {alg})", "service_app",
                                {"BENCH_DIR": tmp_name, "BENCH_JWKS": str(jwks_path),
                                 "BENCH_ALG": alg}))
        print(f"request body: {body.stat().st_size} bytes; {args.runs} runs x "
              f"{args.duration:g} s per cell; medians; uvicorn --http {args.http}, "
              "one worker per server\n")
        print("| target | clients | p50 ms | p95 ms | p99 ms | req/s | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, factory, env in targets:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            if "BENCH_JWKS" in env:
                env = {**env, "BENCH_BASE_URL": base}
            proc = start(factory, port, env, args.http)
            try:
                for conc in args.concurrency:
                    results = []
                    for _ in range(args.runs):
                        tokens = None
                        if "BENCH_JWKS" in env:
                            # more than the service can answer in warm-up + run
                            alg = env["BENCH_ALG"]
                            tokens = tokens_file(private[alg], alg, base + PATH,
                                                 int(2500 * (args.duration + 1)), tmp)
                        results.append(loadgen(base + PATH, body, conc, args.duration, tokens))
                    med = {k: statistics.median(r[k] for r in results)
                           for k in ("p50", "p95", "p99", "throughput")}
                    errors = sum(r["errors"] for r in results)
                    print(f"| {label} | {conc} | {med['p50']:.2f} | {med['p95']:.2f} | "
                          f"{med['p99']:.2f} | {med['throughput']:.0f} | {errors} |", flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    main()
