"""Daily dose and duration from HL7 v2 dose and timing fields.

Only what is safely computable is computed: a dose in mass units (g, mg, mcg/ug) times
a frequency whose meaning is unambiguous (QD, BID, TID, QID, QnH, Q24H ...).  Anything
else (tablets without a strength, PRN, ``Q2D``, free text) leaves ``daily_dose_mg``
empty; the engine then falls back to the order text.  A wrong number would be worse
than none: the ascorbic-acid class is dose dependent.
"""

from __future__ import annotations

import re
from datetime import date

_MG_PER_UNIT = {
    "MG": 1.0,
    "MILLIGRAM": 1.0,
    "MILLIGRAMS": 1.0,
    "G": 1000.0,
    "GM": 1000.0,
    "GRAM": 1000.0,
    "GRAMS": 1000.0,
    "MCG": 0.001,
    "UG": 0.001,
    "MICROGRAM": 0.001,
    "MICROGRAMS": 0.001,
}

_FIXED = {
    "QD": 1.0,
    "DAILY": 1.0,
    "OD": 1.0,
    "QAM": 1.0,
    "QPM": 1.0,
    "QHS": 1.0,
    "HS": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "Q1D": 1.0,
}
_QNH = re.compile(r"^Q(\d{1,2})H$")


def frequency_per_day(code: str) -> float | None:
    """Administrations per day for an HL7 repeat pattern code, or None when unsure."""
    key = code.strip().upper().replace(" ", "")
    if key in _FIXED:
        return _FIXED[key]
    m = _QNH.match(key)
    if m:
        hours = int(m.group(1))
        if hours and 24 % hours == 0:
            return 24.0 / hours
    return None


def daily_dose_mg(amount: float | None, units: str, per_day: float | None) -> float | None:
    """``amount`` in ``units`` given ``per_day`` times a day, in mg; None if not mass."""
    if amount is None or per_day is None or amount < 0:
        return None
    factor = _MG_PER_UNIT.get(units.strip().upper())
    if factor is None:
        return None
    return round(amount * factor * per_day, 6)


def days_between(start: date | None, end: date | None) -> int | None:
    """Days supply from a start and an end date (inclusive), when both are known."""
    if start is None or end is None or end < start:
        return None
    days = (end - start).days + 1
    return days if days <= 36500 else None
