"""Run configuration, from code or a TOML file (``--config``).

Example ``b12drugs.toml``::

    [policy]
    disabled_classes = ["ascorbic_acid"]
    min_severity = "warning"        # report only warning and critical
    age_limit = 65
    disabled_rules = []

    [policy.long_term_days]         # override per class
    metformin = 120
    proton_pump_inhibitors = 365

    [policy.monitoring]             # lab history (see b12drugs.assess.monitoring)
    report_not_due = true           # false: leave out alerts with a normal result
                                    # within the interval (counted in a notice)
    b12_low_pg_ml = 200             # serum B12 grey zone: [low, normal) is borderline
    b12_normal_pg_ml = 400
    [policy.monitoring.interval_days]
    metformin = 365                 # override data/drug_classes.csv per class

    [rxnav]
    enabled = true
    base_url = "https://rxnav.nlm.nih.gov/REST"

    [plugin.cdshooks]               # free-form sections for plugins
    dedupe = true

Unknown keys are refused (a typo must not silently change clinical behaviour),
except inside ``[plugin.*]`` sections, which belong to plugins.
"""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError
from .models import Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MonitoringPolicy(_Section):
    """Lab-history policy: test intervals and the grey zone (see
    :mod:`b12drugs.assess.monitoring`; defaults and references in ``data/README.md``)."""

    #: Per-class override of ``monitoring_interval_days`` in ``drug_classes.csv``.
    interval_days: dict[str, int] = Field(default_factory=dict)
    #: Keep alerts whose patient had a normal result within the interval in the report.
    report_not_due: bool = True
    #: Serum B12 (pg/mL = ng/L): below ``low`` is low, below ``normal`` borderline.
    b12_low_pg_ml: float = Field(default=200.0, gt=0)
    b12_normal_pg_ml: float = Field(default=400.0, gt=0)
    #: Holotranscobalamin (pmol/L), same reading.
    holotc_low_pmol_l: float = Field(default=20.0, gt=0)
    holotc_normal_pmol_l: float = Field(default=30.0, gt=0)
    #: Methylmalonic acid (nmol/L) and total homocysteine (umol/L) above which a result
    #: is raised (read as borderline B12 status: due, work-up advised).
    mma_high_nmol_l: float = Field(default=400.0, gt=0)
    homocysteine_high_umol_l: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _grey_zones(self) -> MonitoringPolicy:
        if self.b12_low_pg_ml > self.b12_normal_pg_ml:
            raise ValueError("b12_low_pg_ml must not be above b12_normal_pg_ml")
        if self.holotc_low_pmol_l > self.holotc_normal_pmol_l:
            raise ValueError("holotc_low_pmol_l must not be above holotc_normal_pmol_l")
        if any(d <= 0 for d in self.interval_days.values()):
            raise ValueError("interval_days must be positive")
        return self


class PolicyConfig(_Section):
    """The alert policy's knobs (see :mod:`b12drugs.assess.rules`)."""

    disabled_classes: tuple[str, ...] = ()
    disabled_rules: tuple[str, ...] = ()
    min_severity: Severity = "info"
    age_limit: int = Field(default=65, ge=0, le=150)
    long_term_days: dict[str, int] = Field(default_factory=dict)
    escalate_on_multiple_classes: bool = True
    as_of: date | None = None
    monitoring: MonitoringPolicy = MonitoringPolicy()


class RxNavConfig(_Section):
    """RxNav REST client settings (see :mod:`b12drugs.resolve.rxnav`)."""

    enabled: bool = False
    base_url: str = "https://rxnav.nlm.nih.gov/REST"
    timeout: float = Field(default=10.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    backoff: float = Field(default=0.5, ge=0)
    rate_limit: float = Field(default=20.0, gt=0)
    max_workers: int = Field(default=8, ge=1, le=64)
    cache_path: str | None = None
    cache_ttl_hours: float = Field(default=24.0, ge=0)
    offline: bool = False
    failure_threshold: int = Field(default=5, ge=1)
    reset_after: float = Field(default=30.0, ge=0)


class LocalIndexConfig(_Section):
    """The local RxNorm SQLite index (see :mod:`b12drugs.resolve.local_index`)."""

    path: str | None = None
    enabled: bool = True


class EngineConfig(_Section):
    """How tables are screened (the columnar engine, :mod:`b12drugs.engines.columnar`)."""

    #: where temporary files go (rows held by patient, spooled alerts); None: the
    #: system's temporary folder.  Removed when the run ends, fails or is interrupted.
    temp_dir: str | None = None
    #: MiB of held rows kept in memory before they are written to disk by patient (and
    #: MiB of alerts' JSON before they are)
    memory_mb: int = Field(default=32, ge=8, le=65536)
    #: files the held rows are spread over, by a hash of the patient
    partitions: int = Field(default=32, ge=1, le=4096)
    #: processes that assess the partitions of a run that spilled, this one included
    #: (None: one per core, at most 4; 1: this process only)
    workers: int | None = Field(default=None, ge=1, le=64)


class SinkConfig(BaseModel):
    """One alert sink: its registered name and options."""

    model_config = ConfigDict(frozen=True, extra="allow")
    name: str


class Config(_Section):
    """Everything that changes a run."""

    policy: PolicyConfig = PolicyConfig()
    rxnav: RxNavConfig = RxNavConfig()
    rxnorm_index: LocalIndexConfig = LocalIndexConfig()
    engine: EngineConfig = EngineConfig()
    sinks: tuple[SinkConfig, ...] = ()
    plugin: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def as_of(self) -> date:
        return self.policy.as_of or date.today()

    def plugin_options(self, name: str) -> dict[str, Any]:
        return dict(self.plugin.get(name, {}))


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load a TOML config; ``None`` gives the defaults (plus environment overrides).

    ``B12DRUGS_RXNAV_URL`` sets ``rxnav.base_url`` and enables RxNav;
    ``B12DRUGS_RXNORM_INDEX`` sets the local index path.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {p} not found") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    url = os.environ.get("B12DRUGS_RXNAV_URL")
    if url:
        data.setdefault("rxnav", {}).setdefault("base_url", url)
        data["rxnav"].setdefault("enabled", True)
    index = os.environ.get("B12DRUGS_RXNORM_INDEX")
    if index:
        data.setdefault("rxnorm_index", {}).setdefault("path", index)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        where = f"config file {path}" if path else "configuration"
        lines = [
            f"  {'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
        raise ConfigError(f"{where} is invalid:\n" + "\n".join(lines)) from exc
