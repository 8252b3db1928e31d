"""JWT bearer verification as the CDS Hooks specification requires of services.

Each request carries ``Authorization: Bearer <JWT>`` signed by the CDS client.  Trust
is configured, never inferred: the ``iss`` must be a configured issuer, its keys come
from a JWK Set file or from ``jku`` URLs on that issuer's allowlist, the ``kid`` picks
the key, and only asymmetric algorithms that fit the key are accepted (``none`` and
HMAC are refused before any key is looked at, which also defeats the "HS256 with the
public key as secret" confusion).  ``aud`` must be the exact URL of the endpoint
called, ``exp``/``iat`` are checked with a small clock skew, the token lifetime is
bounded and each ``jti`` is accepted once (replay cache until the token expires).

A refused token is answered ``401`` with ``invalid token (<class>)`` only, the class
one of :data:`REASONS`.  The detail (an unknown issuer, an unknown ``kid``, a ``jku``
off the allowlist...) goes to the log, not to the caller: telling them apart would
let anyone probe which issuers and keys the service trusts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
from jwt.exceptions import InvalidTokenError, PyJWKError

from b12drugs.errors import ConfigError

from .outcome import Problem
from .settings import ASYMMETRIC_ALGORITHMS, CDSHooksSettings, IssuerSettings

log = logging.getLogger("b12drugs.cdshooks.auth")

#: JWK key type (and EC curve) each algorithm needs.
_KEY_TYPE = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}

#: An unknown ``kid`` triggers a re-fetch of a ``jku`` set at most this often.
_REFETCH_INTERVAL = 10.0


#: The classes of token refusal a caller is told, and what each covers.
REASONS = {
    "malformed": "not a JWT, or a header or claim of the wrong form",
    "algorithm": "alg none, HMAC or another algorithm the service never accepts",
    "untrusted": "issuer, jku, kid or key not trusted, or the signature does not verify",
    "expired": "past exp, or a lifetime longer than allowed",
    "not-yet-valid": "iat or nbf in the future",
    "audience": "aud is not the URL of the endpoint called",
    "replay": "the jti was used before",
}


class TokenRefused(Problem):
    """A 401 that tells the caller the class only; ``detail`` is for the log."""

    def __init__(self, reason: str, detail: str):
        super().__init__(
            401,
            f"invalid token ({reason})",
            code="security",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
        self.reason = reason
        self.detail = detail


def _unauthorized(reason: str, detail: str) -> TokenRefused:
    """Log the refusal with its detail (no token, no claims values) and build the 401."""
    log.info("token refused: %s: %s", reason, detail)
    return TokenRefused(reason, detail)


@dataclass(frozen=True)
class Caller:
    """Who called, after verification (for audit and logs; no patient data)."""

    issuer: str
    tenant: str | None = None
    authenticated: bool = True


def parse_jwks(data: Any, where: str) -> dict[str, dict[str, Any]]:
    """The keys of a JWK Set by ``kid``; keys without ``kid`` cannot be selected."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError(f"{where}: a JWK Set is an object with a 'keys' array")
    keys: dict[str, dict[str, Any]] = {}
    for item in data["keys"]:
        if isinstance(item, dict) and isinstance(item.get("kid"), str):
            keys[item["kid"]] = item
    return keys


class NeedsFetch(Exception):
    """Raised instead of fetching a JWK Set when the caller asked for no network I/O."""


class ReplayCache:
    """``jti`` values seen, kept until their token expires; bounded in size."""

    def __init__(self, max_entries: int):
        self._seen: dict[str, float] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def check_and_add(self, key: str, expires_at: float, now: float) -> bool:
        """False when ``key`` was already used (a replay)."""
        with self._lock:
            known = self._seen.get(key)
            if known is not None and known >= now:
                return False
            if len(self._seen) >= self._max:
                self._seen = {k: v for k, v in self._seen.items() if v >= now}
                if len(self._seen) >= self._max:
                    raise Problem(503, "replay cache is full; try again shortly",
                                  code="transient")
            self._seen[key] = expires_at
            return True


class KeyStore:
    """Public keys per issuer: JWK Set files (read at start) and cached ``jku`` sets."""

    def __init__(self, issuers: Mapping[str, IssuerSettings], *, timeout: float,
                 max_bytes: int, cache_seconds: float):
        self._issuers = dict(issuers)
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._cache_seconds = cache_seconds
        self._files: dict[str, dict[str, dict[str, Any]]] = {}
        self._urls: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
        self._failures: dict[str, float] = {}  # url -> when a fetch last failed
        self._url_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        for iss, conf in self._issuers.items():
            if conf.jwks_file:
                path = Path(conf.jwks_file).expanduser()
                try:
                    self._files[iss] = parse_jwks(json.loads(path.read_text("utf-8")), str(path))
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"JWK Set for issuer {iss!r} unreadable: {exc}") from exc

    def _fetch(self, url: str) -> dict[str, dict[str, Any]]:
        try:
            with requests.get(
                url, timeout=self._timeout, stream=True, allow_redirects=False,
                headers={"Accept": "application/json"},
            ) as resp:
                if resp.status_code != 200:
                    raise ValueError(f"HTTP {resp.status_code}")
                body = b""
                for chunk in resp.iter_content(65536):
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise ValueError(f"larger than {self._max_bytes} bytes")
            return parse_jwks(json.loads(body), url)
        except (requests.RequestException, ValueError) as exc:
            log.warning("JWK Set %s could not be fetched: %s", url, type(exc).__name__)
            raise _unauthorized("untrusted",
                                "the JWK Set of the issuer could not be fetched") from None

    def _cached(self, url: str, kid: str) -> tuple[bool, dict[str, Any] | None]:
        """``(True, key or None)`` when the cache (or a recent failure) decides."""
        now = time.monotonic()
        with self._lock:
            cached = self._urls.get(url)
            failed_at = self._failures.get(url)
        if cached is not None:
            fetched_at, keys = cached
            fresh = now - fetched_at < self._cache_seconds
            if kid in keys and fresh:
                return True, keys[kid]
            if fresh and now - fetched_at < _REFETCH_INTERVAL:
                return True, keys.get(kid)
        if failed_at is not None and now - failed_at < _REFETCH_INTERVAL:
            # A failed fetch is remembered: forged tokens naming a trusted issuer must not
            # turn the service into a stream of outbound requests.
            raise _unauthorized("untrusted", "the JWK Set of the issuer could not be fetched")
        return False, None

    def _from_url(self, url: str, kid: str, allow_fetch: bool) -> dict[str, Any] | None:
        decided, jwk = self._cached(url, kid)
        if decided:
            return jwk
        if not allow_fetch:
            raise NeedsFetch(url)
        with self._lock:
            url_lock = self._url_locks.setdefault(url, threading.Lock())
        with url_lock:  # one fetch per URL in flight; the others wait for its outcome
            decided, jwk = self._cached(url, kid)
            if decided:
                return jwk
            try:
                keys = self._fetch(url)
            except Problem:
                with self._lock:
                    self._failures[url] = time.monotonic()
                raise
            with self._lock:
                self._urls[url] = (time.monotonic(), keys)
                self._failures.pop(url, None)
        return keys.get(kid)

    def key_for(self, iss: str, kid: str, jku: str | None, allow_fetch: bool = True
                ) -> dict[str, Any]:
        conf = self._issuers[iss]
        jwk: dict[str, Any] | None
        if jku is not None:
            if jku.rstrip("/") not in conf.jku:
                raise _unauthorized("untrusted",
                                    "the jku of the token is not on the issuer's allowlist")
            jwk = self._from_url(jku.rstrip("/"), kid, allow_fetch)
        elif iss in self._files:
            jwk = self._files[iss].get(kid)
        elif len(conf.jku) == 1:
            jwk = self._from_url(conf.jku[0], kid, allow_fetch)
        else:
            raise _unauthorized("untrusted",
                                "the token names no jku and the issuer has no JWK Set file")
        if jwk is None:
            raise _unauthorized("untrusted", "no key with this kid in the issuer's JWK Set")
        return jwk


class Authenticator:
    """Verifies bearer tokens; see the module docstring for every check made."""

    def __init__(self, settings: CDSHooksSettings):
        limits = settings.limits
        self._issuers = dict(settings.issuers)
        self._skew = limits.clock_skew_seconds
        self._max_lifetime = limits.max_token_lifetime_seconds
        self._keys = KeyStore(
            self._issuers,
            timeout=limits.fetch_timeout_seconds,
            max_bytes=limits.jwks_max_bytes,
            cache_seconds=limits.jwks_cache_seconds,
        )
        self._replay = ReplayCache(limits.replay_cache_size)
        # Public key objects built from JWKs, by (issuer, kid, jku, alg).  Each entry keeps
        # the JWK dict it was built from and is used only while the key store still
        # answers with that same dict: a re-fetched JWK Set (key rotation) yields new
        # dicts, so a stale key is never used.  Building a key object from a JWK costs
        # 10-20 us (EC point checks), paid once per key instead of once per request.
        self._key_objects: dict[tuple[str, str, str | None, str], tuple[dict[str, Any], Any]] = {}

    def verify(self, authorization: str | None, audience: str, *, allow_fetch: bool = True
               ) -> Caller:
        """Check the ``Authorization`` header for a call to ``audience`` (a full URL).

        With ``allow_fetch=False`` a JWK Set that would have to be fetched raises
        :class:`NeedsFetch` before any state changes, so the caller can retry in a
        worker thread (the event loop never waits on the network).
        """
        if not authorization:
            raise Problem(401, "an Authorization: Bearer <JWT> header is required",
                          code="login", headers={"WWW-Authenticate": "Bearer"})
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("malformed", "the Authorization header must be 'Bearer <JWT>'")
        if len(token) > 16384:
            raise _unauthorized("malformed", "the bearer token is too long")
        try:
            # One unverified parse gives the header (kid, alg, jku) and the issuer, which
            # pick the key; the signed decode below checks everything again with that key.
            parts = jwt.decode_complete(token, options={"verify_signature": False})
        except InvalidTokenError:
            raise _unauthorized("malformed", "the bearer token is not a well-formed JWT") from None
        header, unverified = parts["header"], parts["payload"]
        if not isinstance(header, dict) or not isinstance(unverified, dict):
            raise _unauthorized("malformed", "the bearer token is not a well-formed JWT")
        alg = header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise _unauthorized("algorithm",
                                "JWT alg must be an asymmetric algorithm (RS*, PS*, ES*)")
        typ = header.get("typ")
        if typ is not None and str(typ).upper() != "JWT":
            raise _unauthorized("malformed", "JWT typ must be 'JWT'")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _unauthorized("malformed", "JWT header must name the key (kid)")
        iss = unverified.get("iss")
        if not isinstance(iss, str) or iss not in self._issuers:
            raise _unauthorized("untrusted", "JWT issuer is not trusted")
        if alg not in self._issuers[iss].algorithms:
            raise _unauthorized("untrusted", "JWT alg is not allowed for this issuer")
        jku = header.get("jku")
        if jku is not None and not isinstance(jku, str):
            raise _unauthorized("malformed", "JWT jku must be a URL")
        jwk = self._keys.key_for(iss, kid, jku, allow_fetch)
        cache_key = (iss, kid, jku, alg)
        cached = self._key_objects.get(cache_key)
        if cached is not None and cached[0] is jwk:
            key = cached[1]
        else:
            key = self._key_object(jwk, alg)
            self._key_objects[cache_key] = (jwk, key)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=iss,
                leeway=self._skew,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("expired", "JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("audience",
                                "JWT aud is not the URL of the endpoint called") from None
        except jwt.ImmatureSignatureError:
            raise _unauthorized("not-yet-valid",
                                "JWT is not valid yet (iat/nbf in the future)") from None
        except jwt.InvalidSignatureError:
            raise _unauthorized("untrusted", "JWT signature does not verify") from None
        except InvalidTokenError as exc:
            raise _unauthorized("malformed", f"JWT rejected: {type(exc).__name__}") from None
        now = time.time()
        iat, exp, jti = claims["iat"], claims["exp"], claims["jti"]
        if not isinstance(iat, (int, float)) or iat > now + self._skew:
            raise _unauthorized("not-yet-valid", "JWT is not valid yet (iat in the future)")
        if not isinstance(exp, (int, float)) or exp - iat > self._max_lifetime:
            raise _unauthorized("expired", f"JWT lifetime exceeds {self._max_lifetime} seconds")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise _unauthorized("malformed", "JWT jti must be a non-empty string")
        if not self._replay.check_and_add(f"{iss}\x00{jti}", exp + self._skew, now):
            raise _unauthorized("replay", "JWT jti was already used (replay)")
        tenant = claims.get("tenant")
        return Caller(issuer=iss, tenant=tenant if isinstance(tenant, str) else None)

    @staticmethod
    def _key_object(jwk: dict[str, Any], alg: str) -> Any:
        kty, crv = _KEY_TYPE[alg]
        if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
            raise _unauthorized("untrusted", "JWT alg does not fit the key type of this kid")
        if jwk.get("use") not in (None, "sig"):
            raise _unauthorized("untrusted", "the key of this kid is not a signing key")
        if jwk.get("alg") not in (None, alg):
            raise _unauthorized("untrusted", "JWT alg differs from the alg of the key")
        if "d" in jwk or "k" in jwk:
            # A private or symmetric key in a public JWK Set is a configuration error.
            raise _unauthorized("untrusted", "the JWK Set entry is not a public key")
        try:
            return jwt.PyJWK(jwk, algorithm=alg).key
        except (PyJWKError, ValueError, TypeError):
            raise _unauthorized("untrusted", "the key of this kid is unusable") from None
