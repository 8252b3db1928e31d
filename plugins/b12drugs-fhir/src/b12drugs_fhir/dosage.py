"""FHIR ``Dosage`` to the few dose facts the engine uses.

Only ``daily_dose_mg`` feeds a rule (the high-dose ascorbic acid class); the strings
(``dose``, ``frequency``, ``route``) are carried for the reader of an alert.  A daily
dose is computed only when it is unambiguous: a mass dose (mg, g, microgram) times a
schedule (``timing.repeat`` frequency/period, ``when``/``timeOfDay`` counts or a
``timing.code`` abbreviation).  Several instructions with the same ``sequence`` (or none)
run concurrently and are added; different sequences are alternatives in time (a taper)
and the largest daily dose is taken.  As-needed instructions without a schedule use
``maxDosePerPeriod`` (an upper bound) when present.  Doses in tablets, mL or units are
not converted: that needs the product strength, and an unknown daily dose is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .fields import FhirDataError, get_bool, get_list, get_num, get_obj, get_str, objects

UCUM = "http://unitsofmeasure.org"

#: Milligrams per unit (UCUM codes and common spellings).
_MG_PER_UNIT = {
    "mg": 1.0,
    "milligram": 1.0,
    "milligrams": 1.0,
    "g": 1000.0,
    "gram": 1000.0,
    "grams": 1000.0,
    "ug": 0.001,
    "mcg": 0.001,
    "µg": 0.001,
    "μg": 0.001,
    "microgram": 0.001,
    "micrograms": 0.001,
}

#: Days per UCUM time unit as FHIR ``Timing.repeat.periodUnit`` uses them.
DAYS_PER_UNIT = {
    "s": 1 / 86400,
    "min": 1 / 1440,
    "h": 1 / 24,
    "d": 1.0,
    "wk": 7.0,
    "mo": 30.0,
    "a": 365.0,
}

#: Administrations per day of the FHIR ``timing-abbreviation`` codes with a fixed rate.
_PER_DAY_BY_CODE = {
    "QD": 1.0,
    "AM": 1.0,
    "PM": 1.0,
    "BED": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "QOD": 0.5,
    "Q1H": 24.0,
    "Q2H": 12.0,
    "Q3H": 8.0,
    "Q4H": 6.0,
    "Q6H": 4.0,
    "Q8H": 3.0,
    "WK": 1 / 7,
    "MO": 1 / 30,
}


@dataclass
class DoseFacts:
    dose: str | None = None
    frequency: str | None = None
    route: str | None = None
    daily_dose_mg: float | None = None


def _fmt(value: float) -> str:
    return f"{value:g}"


def _quantity_mg(q: Mapping[str, Any], ptr: str) -> tuple[float | None, str | None]:
    """(mg or None, display string) of a Quantity; negative values are an error."""
    value = get_num(q, "value", ptr)
    unit = get_str(q, "unit", ptr)
    code = get_str(q, "code", ptr)
    system = get_str(q, "system", ptr)
    if value is None:
        return None, None
    if value < 0:
        raise FhirDataError(f"{ptr}/value", "a dose cannot be negative")
    label = (code if system == UCUM and code else None) or unit or code or ""
    factor = _MG_PER_UNIT.get(label.strip().lower())
    if factor is None and unit:
        factor = _MG_PER_UNIT.get(unit.strip().lower())
    display = f"{_fmt(value)} {unit or code or ''}".strip()
    return (value * factor if factor is not None else None), display


def _per_day(timing: Mapping[str, Any] | None, ptr: str) -> tuple[float | None, str | None]:
    if timing is None:
        return None, None
    tptr = f"{ptr}/timing"
    repeat = get_obj(timing, "repeat", tptr)
    code_cc = get_obj(timing, "code", tptr)
    code_text = None
    code_value = None
    if code_cc is not None:
        cptr = f"{tptr}/code"
        code_text = get_str(code_cc, "text", cptr)
        for coding, coding_ptr in objects(code_cc, "coding", cptr):
            code_value = code_value or get_str(coding, "code", coding_ptr)
    if repeat is not None:
        rptr = f"{tptr}/repeat"
        freq = get_num(repeat, "frequency", rptr)
        period = get_num(repeat, "period", rptr)
        unit = get_str(repeat, "periodUnit", rptr)
        when = get_list(repeat, "when", rptr)
        times_of_day = get_list(repeat, "timeOfDay", rptr)
        if period is not None and unit is not None:
            days = DAYS_PER_UNIT.get(unit)
            if days is None:
                raise FhirDataError(f"{rptr}/periodUnit",
                                    "not a UCUM period unit (s, min, h, d, wk, mo, a)")
            if period <= 0:
                raise FhirDataError(f"{rptr}/period", "period must be positive")
            f = freq if freq is not None else 1.0
            return f / (period * days), f"{_fmt(f)} per {_fmt(period)} {unit}"
        if when or times_of_day:
            n = float(len(when) or len(times_of_day))
            return n * (freq or 1.0), f"{_fmt(n * (freq or 1.0))} per day"
    if code_value is not None and code_value.upper() in _PER_DAY_BY_CODE:
        return _PER_DAY_BY_CODE[code_value.upper()], code_text or code_value
    return None, code_text or code_value


def _route(d: Mapping[str, Any], ptr: str) -> str | None:
    route = get_obj(d, "route", ptr)
    if route is None:
        return None
    rptr = f"{ptr}/route"
    text = get_str(route, "text", rptr)
    for coding, cptr in objects(route, "coding", rptr):
        text = text or get_str(coding, "display", cptr) or get_str(coding, "code", cptr)
    return text


def _one(d: Mapping[str, Any], ptr: str) -> tuple[DoseFacts, float | None]:
    facts = DoseFacts()
    mg = None
    for dr, dr_ptr in objects(d, "doseAndRate", ptr):
        dq = get_obj(dr, "doseQuantity", dr_ptr)
        if dq is not None:
            mg, facts.dose = _quantity_mg(dq, f"{dr_ptr}/doseQuantity")
        else:
            rng = get_obj(dr, "doseRange", dr_ptr)
            high = get_obj(rng, "high", f"{dr_ptr}/doseRange") if rng is not None else None
            if high is not None:  # the upper end: never under-estimate a dose
                mg, high_text = _quantity_mg(high, f"{dr_ptr}/doseRange/high")
                facts.dose = f"up to {high_text}" if high_text else None
        break
    per_day, facts.frequency = _per_day(get_obj(d, "timing", ptr), ptr)
    facts.route = _route(d, ptr)
    text = get_str(d, "text", ptr)
    if facts.dose is None and text:
        facts.dose = text[:256]
    daily = mg * per_day if mg is not None and per_day is not None else None
    if daily is None and get_bool(d, "asNeededBoolean", ptr) is not False:
        # R4: one Ratio; R5: an array of Ratios (the first is used).
        raw = d.get("maxDosePerPeriod")
        ratios = objects(d, "maxDosePerPeriod", ptr)[:1] if isinstance(raw, list) else (
            [(r, f"{ptr}/maxDosePerPeriod")] if (r := get_obj(d, "maxDosePerPeriod", ptr)) else []
        )
        for ratio, rptr in ratios:
            num = get_obj(ratio, "numerator", rptr)
            den = get_obj(ratio, "denominator", rptr)
            if num is None or den is None:
                continue
            num_mg, _ = _quantity_mg(num, f"{rptr}/numerator")
            den_value = get_num(den, "value", f"{rptr}/denominator")
            den_unit = get_str(den, "code", f"{rptr}/denominator") or get_str(
                den, "unit", f"{rptr}/denominator"
            )
            days = DAYS_PER_UNIT.get(den_unit or "")
            if num_mg is not None and den_value and days:
                daily = num_mg / (den_value * days)
    return facts, daily


def dose_facts(dosages: list[tuple[Mapping[str, Any], str]]) -> DoseFacts:
    """Dose strings from the first instruction and the daily dose over all of them."""
    if not dosages:
        return DoseFacts()
    groups: dict[float | None, list[float | None]] = {}
    first: DoseFacts | None = None
    for d, ptr in dosages:
        facts, daily = _one(d, ptr)
        first = first or facts
        groups.setdefault(get_num(d, "sequence", ptr), []).append(daily)
    totals = [sum(v for v in g if v is not None) for g in groups.values() if None not in g]
    assert first is not None
    if totals:
        first.daily_dose_mg = round(max(totals), 6)
    return first
