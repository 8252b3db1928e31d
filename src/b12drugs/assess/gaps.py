"""Assess: the B12 care-gap list, from a screening report.

The question of a population-health pharmacist running a monitoring programme: *which
of my patients on B12-lowering drugs are due for a B12 status test?*  The answer is
worked out from a finished :class:`~b12drugs.models.Report` only (its alerts and their
``monitoring`` objects), so it is the same whichever engine screened the inputs.

One :class:`Gap` per patient who is due for at least one of their classes: the classes
and drugs, risk factors, the last result, the earliest due date and the days overdue
(``None`` when never tested).  Ordered by priority (:func:`priority`):

1. known deficiency (documented deficiency, pernicious or megaloblastic anaemia, a low
   result);
2. signs that may be deficiency (peripheral neuropathy, myelopathy/dementia, anaemia,
   raised MMA/homocysteine, a borderline result);
3. other risk factors (age, diet, gastric surgery, long-term use, several drugs ...);
4. no risk factor;

then never tested before tested, then longest overdue first, then patient id.

The list is a data model (:class:`GapList`), not a format: the writers in
:mod:`b12drugs.emit.gaps` (table, JSON, CSV, FHIR) all read it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pydantic import Field

from ..models import SEVERITIES, Alert, LastResult, Model, Notice, Report, Severity, ShortText
from .risk import KNOWN_DEFICIENCY, ordered

#: Risk factors that may be signs of deficiency (priority 2).
SIGNS = frozenset({"peripheral_neuropathy", "neurological", "anemia", "elevated_mma"})
PRIORITY_LABELS = {1: "known deficiency", 2: "possible signs of deficiency",
                   3: "risk factors", 4: "no risk factor"}


class Gap(Model):
    """One patient due for a B12 status test."""

    patient_id: ShortText
    priority: int
    priority_label: ShortText
    severity: Severity
    classes: tuple[ShortText, ...]
    drugs: tuple[ShortText, ...]
    orders: tuple[ShortText, ...]
    risk_factors: tuple[ShortText, ...]
    last_result: LastResult | None = None
    due_date: dt.date | None = None
    days_overdue: int | None = None
    recommendation: str


class GapCounts(Model):
    """How the list came about: patients on a B12-lowering drug, and why each is or is
    not on the list."""

    patients: int = 0
    due: int = 0
    never_tested: int = 0
    overdue: int = 0
    borderline: int = 0
    low: int = 0
    not_due: int = 0
    without_patient_id: int = 0
    by_class: dict[str, int] = Field(default_factory=dict)
    by_priority: dict[str, int] = Field(default_factory=dict)


class GapList(Model):
    """The care-gap list of one run."""

    as_of: dt.date
    generated_at: dt.datetime
    b12drugs_version: str
    knowledge_version: str
    sources: tuple[str, ...] = ()
    gaps: tuple[Gap, ...] = ()
    counts: GapCounts = GapCounts()
    notices: tuple[Notice, ...] = ()


def priority(risk_factors: Iterable[str], last: LastResult | None) -> int:
    """1 known deficiency, 2 possible signs, 3 other risk factors, 4 none."""
    factors = set(risk_factors) - {"on_b12_therapy"}
    if factors & KNOWN_DEFICIENCY or (last is not None and last.interpretation == "low"):
        return 1
    if factors & SIGNS or (last is not None and last.interpretation == "borderline"):
        return 2
    return 3 if factors else 4


def _gap(pid: str, alerts: list[Alert], as_of: dt.date) -> Gap | None:
    monitored = [a for a in alerts if a.monitoring is not None]
    due = [a for a in monitored if a.monitoring is not None and a.monitoring.due]
    if not due:
        return None
    last = due[0].monitoring.last_result if due[0].monitoring else None
    dates = [a.monitoring.due_date for a in due if a.monitoring and a.monitoring.due_date]
    due_date = min(dates) if dates and last is not None else None
    factors = ordered(list({f for a in alerts for f in a.risk_factors}))
    tier = priority(factors, last)
    worst = max((a.severity for a in due), key=SEVERITIES.index)
    first = max(due, key=lambda a: SEVERITIES.index(a.severity))
    return Gap(
        patient_id=pid,
        priority=tier,
        priority_label=PRIORITY_LABELS[tier],
        severity=worst,
        classes=tuple(dict.fromkeys(a.class_id for a in due)),
        drugs=tuple(dict.fromkeys(d for a in due for d in a.drugs)),
        orders=tuple(dict.fromkeys(o for a in due for o in a.orders)),
        risk_factors=tuple(factors),
        last_result=last,
        due_date=due_date,
        days_overdue=(as_of - due_date).days if due_date is not None else None,
        recommendation=first.recommendation,
    )


def _sort_key(gap: Gap) -> tuple[int, int, int, str]:
    never = gap.last_result is None
    return (gap.priority, 0 if never else 1, -(gap.days_overdue or 0), gap.patient_id)


def compute_gaps(report: Report, as_of: dt.date) -> GapList:
    """The care-gap list of a screening report (see the module docstring)."""
    by_patient: dict[str, list[Alert]] = {}
    counts: dict[str, int] = dict.fromkeys(
        ("never_tested", "overdue", "borderline", "low", "not_due", "without_patient_id"), 0)
    for alert in report.alerts:
        if alert.monitoring is None:
            continue
        if alert.patient_id is None:
            counts["without_patient_id"] += 1
            continue
        by_patient.setdefault(alert.patient_id, []).append(alert)
    gaps: list[Gap] = []
    for pid, alerts in by_patient.items():
        gap = _gap(pid, alerts, as_of)
        if gap is None:
            counts["not_due"] += 1
            continue
        gaps.append(gap)
        last = gap.last_result
        if last is None:
            counts["never_tested"] += 1
        elif last.interpretation == "normal":
            counts["overdue"] += 1
        else:
            counts[last.interpretation] += 1
    gaps.sort(key=_sort_key)
    by_class: dict[str, int] = {}
    by_priority: dict[str, int] = {}
    for gap in gaps:
        for c in gap.classes:
            by_class[c] = by_class.get(c, 0) + 1
        by_priority[gap.priority_label] = by_priority.get(gap.priority_label, 0) + 1
    return GapList(
        as_of=as_of,
        generated_at=report.generated_at,
        b12drugs_version=report.b12drugs_version,
        knowledge_version=report.knowledge_version,
        sources=report.sources,
        gaps=tuple(gaps),
        counts=GapCounts(patients=len(by_patient), due=len(gaps), by_class=by_class,
                         by_priority=by_priority, **counts),
        notices=report.notices,
    )
