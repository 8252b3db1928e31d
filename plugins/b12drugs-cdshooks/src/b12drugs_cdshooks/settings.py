"""Service configuration: the ``[plugin.cdshooks]`` section of the b12drugs TOML config.

Example::

    [plugin.cdshooks]
    base_url = "https://cds.example.org"          # the audience: what the EHR calls
    audit_db = "/var/lib/b12drugs/audit.sqlite3"
    fhir_servers = ["https://fhir.example.org/r4"]  # fetch-on-demand allowlist
    dedupe = true
    dedupe_ttl_seconds = 3600

    [plugin.cdshooks.issuers."https://ehr.example.org"]
    jwks_file = "/etc/b12drugs/ehr-jwks.json"     # JWK Set shared out of band
    jku = ["https://ehr.example.org/.well-known/jwks.json"]  # allow-listed JWK Set URLs

    [plugin.cdshooks.limits]
    max_body_bytes = 1048576

Validated with pydantic so that a typo refuses to start the service instead of, say,
silently turning de-duplication off.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from b12drugs.config import Config
from b12drugs.errors import ConfigError

#: Asymmetric JWS algorithms the service accepts.  ``none`` and HMAC are never allowed.
ASYMMETRIC_ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} must not carry a query or fragment")
    return value.rstrip("/")


class IssuerSettings(_Section):
    """One trusted CDS client (JWT ``iss``) and where its public keys are."""

    jwks_file: str | None = None
    jku: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS

    @field_validator("jku")
    @classmethod
    def _urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_http_url(u) for u in v)

    @field_validator("algorithms")
    @classmethod
    def _algs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in v if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(
                f"algorithms {bad} are not allowed; use asymmetric ones: "
                + ", ".join(ASYMMETRIC_ALGORITHMS)
            )
        if not v:
            raise ValueError("at least one algorithm is needed")
        return v

    @model_validator(mode="after")
    def _has_keys(self) -> IssuerSettings:
        if not self.jwks_file and not self.jku:
            raise ValueError("an issuer needs jwks_file and/or jku (allow-listed JWK Set URLs)")
        return self


class Limits(_Section):
    """Bounds on what one request may cost."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_json_depth: int = Field(default=64, ge=8, le=512)
    max_orders: int = Field(default=500, ge=1, le=100_000)
    max_prefetch_entries: int = Field(default=5000, ge=1, le=1_000_000)
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    fetch_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    fetch_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    jwks_max_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    jwks_cache_seconds: float = Field(default=300.0, ge=0, le=86400)
    clock_skew_seconds: int = Field(default=30, ge=0, le=600)
    max_token_lifetime_seconds: int = Field(default=3600, ge=10, le=86400)
    replay_cache_size: int = Field(default=100_000, ge=100, le=10_000_000)


class CDSHooksSettings(_Section):
    """Everything ``[plugin.cdshooks]`` may say."""

    base_url: str | None = None
    issuers: dict[str, IssuerSettings] = Field(default_factory=dict)
    audit_db: str | None = None
    fhir_servers: tuple[str, ...] = ()
    dedupe: bool = True
    dedupe_ttl_seconds: float = Field(default=3600.0, gt=0, le=7 * 86400)
    dedupe_max_entries: int = Field(default=100_000, ge=100, le=10_000_000)
    warn_missing_prefetch: bool = True
    recent_lab_days: int = Field(default=90, ge=0, le=3650)
    source_label: str = Field(default="b12drugs: drugs that lower vitamin B12", max_length=200)
    source_url: str | None = None
    override_reason_system: str = "urn:b12drugs:cdshooks:override-reason"
    limits: Limits = Limits()

    @field_validator("base_url", "source_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _check_http_url(v) if v else v

    @field_validator("fhir_servers")
    @classmethod
    def _servers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_http_url(u) for u in v)

    def audit_path(self) -> Path:
        """The audit SQLite file: configured, else the user's data directory."""
        if self.audit_db:
            return Path(self.audit_db).expanduser()
        return Path(platformdirs.user_data_dir("b12drugs")) / "cdshooks-audit.sqlite3"


def settings_from_config(config: Config) -> CDSHooksSettings:
    """Validate ``[plugin.cdshooks]``; a :class:`ConfigError` names each bad key."""
    try:
        return CDSHooksSettings.model_validate(config.plugin_options("cdshooks"))
    except ValidationError as exc:
        lines = [
            f"  plugin.cdshooks.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ConfigError("[plugin.cdshooks] is invalid:\n" + "\n".join(lines)) from exc
