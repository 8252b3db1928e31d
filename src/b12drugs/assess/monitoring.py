"""Assess: the patient's B12 lab history, and whether a B12 status test is due.

Every alert of a B12-lowering class gets a :class:`~b12drugs.models.Monitoring` object
worked out here from :attr:`PatientContext.labs <b12drugs.models.PatientContext.labs>`,
so every engine gets it from the same rules:

* the **last result** is the latest dated B12 status test (serum B12, holotranscobalamin,
  methylmalonic acid, homocysteine; on one day the worst of them), read as ``low``,
  ``borderline`` or ``normal`` (:func:`b12_status`), its value in the kind's normalised
  unit (:func:`normalise`);
* **normal** within the class's monitoring interval (``monitoring_interval_days`` in
  ``data/drug_classes.csv``, ``[policy.monitoring] interval_days`` in the config): not
  due, ``due_date`` = result date + interval; the rules make the alert one step softer;
* **borderline** (the grey zone between low and clearly normal; raised MMA or
  homocysteine): due since the result, confirm with methylmalonic acid / homocysteine;
* **low**: due; the known deficiency itself is a risk factor (:mod:`.risk`), escalating
  as before;
* **no result, or only a normal one older than the interval**: due.

Thresholds (``[policy.monitoring]``, references in ``data/README.md``): serum B12 below
200 pg/mL low, 200 to under 400 pg/mL borderline; holotranscobalamin below 20 pmol/L low,
20 to under 30 pmol/L borderline; MMA above 400 nmol/L and total homocysteine above
15 umol/L raised.

A lab's own flag is combined with the value: a ``low`` flag always counts as low; a
``normal`` flag on a value in the grey zone (or under the low threshold: labs' reference
ranges differ) reads as borderline, never as low, so a deficiency is only "known" when
the lab or the value below an unflagged result says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING

from ..models import Alert, B12Status, LabResult, LastResult, Monitoring

if TYPE_CHECKING:
    from ..config import Config, MonitoringPolicy
    from ..knowledge import ClassDef

#: Lab kinds that are a test of B12 status.
STATUS_KINDS = frozenset({"b12", "holotc", "mma", "homocysteine"})
#: Normalised unit per kind.
UNITS = {"b12": "pg/mL", "holotc": "pmol/L", "mma": "nmol/L", "homocysteine": "umol/L"}
#: Default interval when a class (e.g. from a plugin) names none: annual.
DEFAULT_INTERVAL_DAYS = 365
#: Serum cobalamin: 148 pmol/L = 200 pg/mL (Langan & Goodbred, Am Fam Physician
#: 2017;96:384), the factor :mod:`.risk` has always used.
PMOL_PER_PG = 148.0 / 200.0
_WORSE = {"low": 2, "borderline": 1, "normal": 0}
#: Short names used in wording ("last B12 450 pg/mL").
KIND_LABELS = {"b12": "B12", "holotc": "holoTC", "mma": "MMA", "homocysteine": "homocysteine"}

# Unit spellings: case, spaces, micro signs (U+00B5, U+03BC) and "micromol".
_MICRO = re.compile(r"[\u00b5\u03bc]|micro")
#: factor to the normalised unit, per kind and normalised spelling
_FACTORS: dict[str, dict[str, float]] = {
    "b12": {"pg/ml": 1.0, "ng/l": 1.0, "ng/ml": 1000.0, "pmol/l": 1.0 / PMOL_PER_PG},
    "holotc": {"pmol/l": 1.0, "nmol/l": 1000.0},
    "mma": {"nmol/l": 1.0, "umol/l": 1000.0, "nmol/ml": 1000.0, "mmol/l": 1e6},
    "homocysteine": {"umol/l": 1.0, "nmol/ml": 1.0, "mmol/l": 1000.0},
}
_DIGITS = {"b12": 0, "holotc": 1, "mma": 0, "homocysteine": 1}


def unit_key(unit: str) -> str:
    """A unit spelling reduced for lookup: ``"µmol/L"``, ``"umol/l"`` and ``"micromol/L"``
    are all ``"umol/l"``; UCUM's square brackets and spaces are dropped."""
    u = _MICRO.sub("u", unit.strip().lower()).replace(" ", "").replace("[", "").replace("]", "")
    return u.replace("mol/litre", "mol/l").replace("/liter", "/l").replace("/litre", "/l")


def _converted(kind: str, value: float | None, unit: str | None) -> float | None:
    if value is None or unit is None or kind not in _FACTORS:
        return None
    factor = _FACTORS[kind].get(unit_key(unit))
    if factor is None or not math.isfinite(value):
        return None
    return value * factor


def normalise(kind: str, value: float | None, unit: str | None) -> tuple[float, str] | None:
    """``(value, unit)`` in the kind's normalised unit (:data:`UNITS`), rounded for
    display, or ``None`` when the kind, the value or the unit is unknown (never a
    guess).  Readings compare the unrounded value."""
    got = _converted(kind, value, unit)
    return None if got is None else (round(got, _DIGITS[kind]), UNITS[kind])


def _value_reading(kind: str, value: float, policy: MonitoringPolicy) -> B12Status:
    if kind == "b12":
        low, normal = policy.b12_low_pg_ml, policy.b12_normal_pg_ml
    elif kind == "holotc":
        low, normal = policy.holotc_low_pmol_l, policy.holotc_normal_pmol_l
    else:
        high = policy.mma_high_nmol_l if kind == "mma" else policy.homocysteine_high_umol_l
        return "borderline" if value > high else "normal"
    return "low" if value < low else "borderline" if value < normal else "normal"


def b12_status(lab: LabResult, policy: MonitoringPolicy) -> B12Status | None:
    """What one result says about B12 status, or ``None`` (not a B12 status test, or
    neither a usable value nor a flag)."""
    if lab.kind not in STATUS_KINDS:
        return None
    got = _converted(lab.kind, lab.value, lab.unit)
    reading = _value_reading(lab.kind, got, policy) if got is not None else None
    flag = lab.interpretation
    if lab.kind in ("mma", "homocysteine"):
        if flag == "high" or flag == "borderline" or reading == "borderline":
            return "borderline"
        return "normal" if (reading or flag) else None
    if flag == "low":
        return "low"
    if flag in ("normal", "high") and reading == "low":
        return "borderline"  # the lab's range says normal, the grey zone says not quite
    if flag == "borderline" and reading != "low":
        return "borderline"
    if reading is not None:
        return reading
    return "normal" if flag in ("normal", "high") else None


def last_result(labs: Iterable[LabResult], policy: MonitoringPolicy) -> LastResult | None:
    """The latest dated B12 status test (the worst reading on that day)."""
    best: tuple[date, int, LabResult, B12Status] | None = None
    for lab in labs:
        if lab.date is None:
            continue
        status = b12_status(lab, policy)
        if status is None:
            continue
        key = (lab.date, _WORSE[status])
        if best is None or key > best[:2]:
            best = (lab.date, _WORSE[status], lab, status)
    if best is None:
        return None
    lab, status = best[2], best[3]
    got = normalise(lab.kind, lab.value, lab.unit)
    value, unit = got if got is not None else (lab.value, lab.unit)
    return LastResult(kind=lab.kind, value=value, unit=unit, date=lab.date,
                      interpretation=status)


def interval_days(cls: ClassDef, config: Config) -> int:
    """The class's monitoring interval: the config's override, else the knowledge base."""
    override = config.policy.monitoring.interval_days.get(cls.class_id)
    if override is not None:
        return override
    return cls.monitoring_interval_days or DEFAULT_INTERVAL_DAYS


#: The answer for a patient never tested (most alerts): one shared, immutable object.
NEVER_TESTED = Monitoring(last_result=None, due=True, due_date=None)


def monitoring(last: LastResult | None, interval: int, as_of: date) -> Monitoring:
    """Due or not, and when, for one class given the patient's last result."""
    if last is None or last.date is None:
        return NEVER_TESTED if last is None else Monitoring(last_result=last, due=True)
    if last.interpretation != "normal":
        return Monitoring(last_result=last, due=True, due_date=last.date)
    due_date = last.date + timedelta(days=interval)
    return Monitoring(last_result=last, due=due_date <= as_of, due_date=due_date)


def describe(last: LastResult) -> str:
    """``"B12 450 pg/mL on 2026-09-20"`` (no interpretation)."""
    what = KIND_LABELS.get(last.kind, last.kind)
    value = f" {last.value:g}" if last.value is not None else ""
    unit = f" {last.unit}" if last.value is not None and last.unit else ""
    return f"{what}{value}{unit} on {last.date}"


def phrase(mon: Monitoring) -> str | None:
    """The monitoring part of an alert's summary, or ``None`` without a result:
    ``"last B12 450 pg/mL on 2026-09-20; next due 2027-09"``."""
    last = mon.last_result
    if last is None:
        return None
    text = f"last {describe(last)}"
    if last.interpretation == "borderline":
        return f"{text} (borderline): confirm with MMA/homocysteine"
    if last.interpretation == "low":
        return f"{text} (low)"
    if mon.due:
        return f"{text}; a B12 level is due"
    assert mon.due_date is not None
    return f"{text}; next due {mon.due_date:%Y-%m}"


CONFIRM = ("Borderline B12 status: confirm with methylmalonic acid (LOINC 13964-2) and/or "
           "total homocysteine (LOINC 13965-9) before deciding on treatment; repeat serum "
           "B12 (LOINC 2132-9) or holotranscobalamin (LOINC 72160-5) as the lab advises.")


def recommendation(mon: Monitoring, advice: str) -> str:
    """The alert's recommendation in the light of the last result."""
    last = mon.last_result
    if last is not None and last.interpretation == "borderline":
        return CONFIRM
    if last is not None and not mon.due and mon.due_date is not None:
        return (f"No B12 status test due before {mon.due_date:%Y-%m} (last result normal, "
                f"{describe(last)}). {advice}").strip()
    return advice


def detail_line(mon: Monitoring) -> str:
    """The alert detail's line about lab history."""
    last = mon.last_result
    if last is None:
        return "**Last B12 status test:** none on record; a B12 level is due."
    when = (f"next due {mon.due_date:%Y-%m}" if not mon.due and mon.due_date
            else "a test is due now")
    return f"**Last B12 status test:** {describe(last)} ({last.interpretation}); {when}."


def kept_out(alert: Alert, config: Config) -> bool:
    """Whether the configuration keeps this alert out of the report: a normal result
    within the interval, with ``[policy.monitoring] report_not_due = false``.  Engines
    count these for the run's policy notice."""
    mon = alert.monitoring
    return (mon is not None and not mon.due and not config.policy.monitoring.report_not_due)
