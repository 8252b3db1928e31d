"""The default alert policy: quiet by default, escalating only with reason.

Alert fatigue is the main reason clinicians ignore screening, so (``clinical.md``,
"Default severity policy"):

* base severity per class from the knowledge base (``info``; nitrous oxide ``warning``);
* +1 level when at least one risk factor applies (patient factors from
  :mod:`b12drugs.assess.risk`, plus long-term use of the class and several B12-lowering
  classes at once);
* +1 further level when a deficiency is already known (documented deficiency,
  pernicious or megaloblastic anaemia, low serum B12); capped at ``critical``.  The
  summary names the factor found ("megaloblastic anaemia", "low serum B12") rather than
  always "known B12 deficiency": a folate-deficiency anaemia is megaloblastic without
  being a B12 deficiency;
* -1 level (floor ``info``) when the patient is already on B12 therapy — the alert
  stays, and says so, because monitoring is still needed;
* a folate for a patient with known deficiency and no B12 therapy is ``critical``
  (``folate_masking``): folate corrects the anaemia while nerve damage goes on.

Folinic acid rescue is not "folate alone": leucovorin or levoleucovorin ordered for a
patient who also has an antifolate or fluoropyrimidine cytostatic
(:data:`RESCUE_PARTNERS`: methotrexate rescue, FOLFOX/FOLFIRI modulation) must never be
withheld, so those folinic-acid orders do not raise ``folate_masking`` (telling the
prescriber not to give the rescue would be dangerous).  Instead the cytostatic alert says
that the rescue does not treat B12 deficiency.  Folic acid or levomefolate beside the
cytostatic still raises ``folate_masking``.

Local products do not raise systemic alerts: a class may list ``exclude_routes``
(``data/drug_classes.csv``; aminoglycosides and cytostatics: ``topical;ophthalmic;otic``)
because its mechanism is gut malabsorption (clinical.md: "mainly oral neomycin") or
mucosal damage from systemic exposure, which a cream, eye drop or ear drop does not
give.  The route is read from ``Order.route``, from route words in the order text
(cream, ointment, gel, lotion, eye/ear drops, ophthalmic, otic, topical, cutaneous ...),
from WHO ATC codes of local products (D dermatologicals, S01 eye, S02 ear, S03 eye and
ear: gentamicin S01AA11 eye drops, neomycin D06AX04) and from a short list of brands sold
only for local use (:data:`LOCAL_BRANDS`: Efudex, Carac, Tolak, Mitosol, Neosporin,
Tobradex, Maxitrol).  A brand-only order of another local product without a route word
still alerts (the safe direction).

Dose: a class with ``min_daily_dose_mg`` (ascorbic acid, 1000 mg/day) counts an order
whose daily dose reaches it; an order without a daily dose and without a frequency
counts when one unit's strength reaches it, since one unit a day already does
("ascorbic acid 1000 mg tablet" is an alert; "500 mg tablet" is not).

No silent negatives: an order of a B12-lowering class left out by route, or by dose
(ascorbic acid below 1000 mg/day, or with no known dose), gets an ``info`` notice that
names the drug and the reason, so a reader of the report sees it was checked.

Lab history (:mod:`b12drugs.assess.monitoring`): every alert carries a ``monitoring``
object.  A normal B12 status result within the class's monitoring interval makes the
alert one step softer than for the same patient without a result, and never above
``info`` unless a deficiency is known; its summary says "last B12 450 pg/mL on
2026-09-20; next due 2027-09".  A borderline result keeps the severity and recommends a
confirmatory methylmalonic acid / homocysteine test; a low one is a known deficiency.

One alert per patient and class, listing every contributing order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date
from functools import lru_cache

from ..config import Config
from ..knowledge import ClassDef, KnowledgeBase
from ..models import MAX_TEXT, SEVERITIES, Alert, Monitoring, Notice, Order, Severity
from ..records import OrderFindings, PatientCase
from ..resolve.atc import atc_codes, local_route
from . import monitoring as mon
from .risk import KNOWN_DEFICIENCY, label, ordered, short_label

FOLATE_MASKING = "folate_masking"

#: Folinic acid ingredients given as rescue/modulation with the cytostatics below.
FOLINIC_ACIDS = frozenset({"leucovorin", "levoleucovorin"})
#: Antifolate and fluoropyrimidine cytostatics whose folinic acid is rescue or
#: modulation, matched by ingredient name of the patient's findings.
RESCUE_PARTNERS = frozenset(
    {"methotrexate", "pemetrexed", "pralatrexate", "raltitrexed", "fluorouracil",
     "capecitabine", "tegafur"}
)
#: Route words in an order's route or text, by local route.
_ROUTE_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ophthalmic", re.compile(
        r"\bophthalmic|\bophth?\b|\beye[\s-]?(?:drops?|ointment|gel|solution|suspension)"
        r"|\bsolution for (?:the )?eye|\bconjunctival|\bocular\b|\bintraocular"
        # es/pt/it/fr/de: colirio, colírio, collirio, collyre, oftálmico, ophtalmique,
        # Augentropfen, Augensalbe
        r"|\bcol[ií]rio|\bcollirio|\bcollyre|\boft[aá]lmic|\bophtalmique|\baugen",
        re.IGNORECASE)),
    ("otic", re.compile(
        r"\botic\b|\bauricular|\bear[\s-]?(?:drops?|solution|suspension)"
        r"|\b[oó]tic[oa]s?\b|\bauriculaire|\bohren", re.IGNORECASE)),
    ("topical", re.compile(
        r"\btopical|\bcutaneous|\bdermal\b|\bcream\b|\bointment|\bgel\b|\blotion"
        r"|\bexternal use|\bapply to (?:the )?(?:skin|affected)"
        # crema, pomada, pommade, crème, Salbe, Creme, ungüento, tópico, cutáneo, cutanée
        r"|\bcrema\b|\bpomada|\bpommade|\bcr[eè]me\b|\bsalbe\b|\bung[uü]ento"
        r"|\bt[oó]pic[oa]|\bcut[aá]ne[oa]|\bcutan[ée]e", re.IGNORECASE)),
)
#: Brands sold only as local (skin, eye, surgical-site) products.
LOCAL_BRANDS: dict[str, str] = {
    "efudex": "topical", "carac": "topical", "tolak": "topical", "neosporin": "topical",
    "mitosol": "ophthalmic", "tobradex": "ophthalmic", "maxitrol": "ophthalmic",
}
_LOCAL_BRAND = re.compile(r"\b(" + "|".join(LOCAL_BRANDS) + r")\b", re.IGNORECASE)
_SYSTEMIC = re.compile(r"\btransdermal|\b(?:oral|tablets?|capsules?|inject|intraven|\biv\b)",
                       re.IGNORECASE)


def local_routes(order: Order) -> frozenset[str]:
    """The local routes (topical, ophthalmic, otic) an order's route or text names."""
    displays = tuple(c.display or "" for c in order.codings) if order.codings else ()
    found = _local_routes(order.route or "", order.text or "", displays)
    if order.codings and not _SYSTEMIC.search(order.route or ""):
        # WHO ATC codes of local products: D (skin), S01 (eye), S02 (ear), S03 (eye and ear)
        for code in atc_codes(order.codings):
            found |= local_route(code)
    return found


@lru_cache(maxsize=16384)
def _local_routes(route: str, text: str, displays: tuple[str, ...]) -> frozenset[str]:
    # Cached: the same few thousand drug texts recur across every patient.
    found: set[str] = set()
    for t in (route, text, *displays):
        if not t or _SYSTEMIC.search(t):
            continue
        found |= {r for r, pattern in _ROUTE_WORDS if pattern.search(t)}
    m = _LOCAL_BRAND.search(text)
    if m and not _SYSTEMIC.search(route):
        found.add(LOCAL_BRANDS[m.group(1).lower()])
    return frozenset(found)


def _systemic(cls: ClassDef, findings: list[OrderFindings]) -> list[OrderFindings]:
    """Drop orders given by a route the class excludes (``exclude_routes``)."""
    excluded = cls.exclude_routes
    if not excluded:
        return findings
    return [f for f in findings if local_routes(f.order).isdisjoint(excluded)]


def _not_alerted(case: PatientCase, cls: ClassDef, f: OrderFindings) -> Notice:
    """Why an order of a B12-lowering class raised no alert (no silent negatives)."""
    drugs = _listed(_drugs([f], cls.class_id), 3)
    label = cls.label[:1].lower() + cls.label[1:]
    routes = sorted(local_routes(f.order) & set(cls.exclude_routes))
    if routes:
        why = (f"{'/'.join(routes)} product, no alert (the B12 risk of {label} comes from "
               "systemic exposure)")
    else:
        dose = f.order.daily_dose_mg
        unit = unit_strength_mg(f.order) if dose is None else None
        shown = "unknown" if dose is None else f"{dose:g} mg"
        if unit is not None:
            shown += f" (unit strength {unit:g} mg)"
        why = (f"daily dose {shown}, no alert ({label} counts from "
               f"{cls.min_daily_dose_mg:g} mg/day)")
    return Notice(kind="info", order_id=f.order.id[:256], patient_id=case.patient_id,
                  source=f.source or None,
                  message=f"{drugs}: {why}"[:MAX_TEXT])


_RESCUE_NOTE = (
    "**Folinic acid rescue:** leucovorin/levoleucovorin given with this cytostatic is "
    "rescue or modulation and must not be withheld, but it does not treat B12 "
    "deficiency: check B12 status and add B12 replacement if deficient."
)
_SUMMARY_MAX = 139
_LEVEL = {severity: i for i, severity in enumerate(SEVERITIES)}


def duration_days(order: Order, as_of: date) -> int:
    """How long the drug has been taken, as far as the order tells."""
    days = order.days_supply or 0
    if order.start_date is not None and order.start_date <= as_of:
        days = max(days, (as_of - order.start_date).days)
    return days


def long_term_threshold(cls: ClassDef, config: Config) -> int | None:
    return config.policy.long_term_days.get(cls.class_id, cls.long_term_days)


def _summary(text: str) -> str:
    if len(text) <= _SUMMARY_MAX:
        return text
    return text[: _SUMMARY_MAX - 1].rstrip(" ,;(") + "…"


def _order_ids(findings: Sequence[OrderFindings]) -> tuple[str, ...]:
    if len(findings) == 1:
        return (findings[0].order.id,)
    return tuple(dict.fromkeys(f.order.id for f in findings))


def _sources(findings: Sequence[OrderFindings]) -> tuple[str, ...]:
    if len(findings) == 1:
        return (findings[0].source,) if findings[0].source else ()
    return tuple(dict.fromkeys(f.source for f in findings if f.source))


def _listed(items: Sequence[str], limit: int = 20) -> str:
    """A comma list that stays readable (and within the detail's size) for long lists."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _detail(lines: list[str]) -> str:
    return _bounded("\n".join(lines))


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _drugs(findings: Sequence[OrderFindings], class_id: str) -> tuple[str, ...]:
    if len(findings) == 1 and len(hits := findings[0].hits) == 1:  # the usual case
        return (hits[0].ingredient,) if hits[0].class_id == class_id else ()
    names = (h.ingredient for f in findings for h in f.hits if h.class_id == class_id)
    return tuple(dict.fromkeys(names))


def _ingredients(findings: Sequence[OrderFindings]) -> set[str]:
    return {h.ingredient.lower() for f in findings for h in f.hits}


def _rescue(case: PatientCase) -> bool:
    """True when the patient has a systemic antifolate/fluoropyrimidine cytostatic and
    folinic acid (a fluorouracil cream needs no rescue)."""
    if not _ingredients(case.findings) & FOLINIC_ACIDS:
        return False  # the usual case: no folinic acid at all
    systemic = _ingredients([f for f in case.findings if not local_routes(f.order)])
    return bool(systemic & RESCUE_PARTNERS)


def _known_phrase(known: Sequence[str], config: Config) -> str:
    """Name the actual known-deficiency factors ("megaloblastic anaemia", "low serum B12"):
    a folate-deficiency anaemia (ICD-10 D52) is megaloblastic but not a B12 deficiency."""
    names = [short_label(k, config) for k in ordered(list(known))]
    return " and ".join(names[:2]) + (" ..." if len(names) > 2 else "")


_MASS = re.compile(
    r"(?<![\w.,])(\d+(?:[.,]\d{3})*(?:[.,]\d+)?)\s*(mg|milligrams?|g|gm|grams?|mcg|µg|μg|ug)"
    r"(?![\w/])(?!\s*/)", re.IGNORECASE)
_TO_MG = {"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "g": 1000.0, "gm": 1000.0,
          "gram": 1000.0, "grams": 1000.0, "mcg": 0.001, "µg": 0.001, "μg": 0.001, "ug": 0.001}


def unit_strength_mg(order: Order) -> float | None:
    """The strength of one unit in mg, read from ``Order.strength``, else the order text
    ("ascorbic acid 1000 mg tablet", "Vitamin C 1 g"); ``None`` when no single mass
    strength is stated (none, several, or per volume such as "500 mg/5 mL")."""
    for text in (order.strength, order.text):
        if not text:
            continue
        values = set()
        for number, unit in _MASS.findall(text[:MAX_TEXT]):
            raw = number.replace(",", "") if re.fullmatch(r"\d{1,3}(?:,\d{3})+", number) \
                else number.replace(",", ".")
            try:
                values.add(round(float(raw) * _TO_MG[unit.lower()], 6))
            except ValueError:
                continue
        if len(values) == 1:
            return values.pop()
        if values:
            return None  # several strengths: which one is the drug's is not known
    return None


def meets_min_dose(order: Order, limit: float) -> bool:
    """At or above ``limit`` mg/day: the known daily dose; without one and without a
    frequency, a unit strength at or above the limit (one unit a day already reaches
    it: "ascorbic acid 1000 mg tablet")."""
    if order.daily_dose_mg is not None:
        return order.daily_dose_mg >= limit
    if order.frequency:
        return False  # a frequency without a daily dose: the dose is not known
    unit = unit_strength_mg(order)
    return unit is not None and unit >= limit


def _dose_qualifies(cls: ClassDef, findings: list[OrderFindings]) -> list[OrderFindings]:
    """For dose-dependent classes (ascorbic acid) keep orders at or above the dose."""
    if cls.min_daily_dose_mg is None:
        return findings
    limit = cls.min_daily_dose_mg
    return [f for f in findings if meets_min_dose(f.order, limit)]


def default_policy(case: PatientCase, kb: KnowledgeBase,
                   config: Config) -> Iterator[Alert | Notice]:
    """One alert per B12-lowering class present, severity per the policy above; an
    ``info`` notice for each order of such a class left out by route or dose."""
    disabled = config.policy.disabled_classes
    groups = case.by_class()
    present: dict[str, list[OrderFindings]] = {}
    rank = kb.alert_rank()
    ids = [c for c in groups if c in rank and c not in disabled]
    if len(ids) > 1:
        ids.sort(key=rank.__getitem__)  # knowledge-base order
    for class_id in ids:
        cls = kb.classes[class_id]
        group = groups[class_id]
        found = _systemic(cls, _dose_qualifies(cls, group))
        if len(found) < len(group):
            kept = {id(f) for f in found}
            for f in group:
                if id(f) not in kept:
                    yield _not_alerted(case, cls, f)
        if found:
            present[cls.class_id] = found
    if not present:
        return
    on_b12 = "b12_therapy" in groups
    patient_rf = frozenset(case.risk_factors)
    known = bool(patient_rf & KNOWN_DEFICIENCY)  # the added factors below never are
    several = config.policy.escalate_on_multiple_classes and len(present) > 1
    rescue = _rescue(case)
    labs = case.context.labs if case.context is not None else ()
    last = mon.last_result(labs, config.policy.monitoring) if labs else None
    for class_id, findings in present.items():
        cls = kb.classes[class_id]
        factors = set(patient_rf)
        threshold = long_term_threshold(cls, config)
        if threshold is not None and any(
            duration_days(f.order, case.as_of) > threshold for f in findings
        ):
            factors.add("long_term_use")
        if several:
            factors.add("multiple_b12_lowering_drugs")
        # +1 with a risk factor, +1 more with known deficiency (capped), -1 on B12 therapy
        level = min(_LEVEL[cls.default_severity or "info"] + bool(factors) + known, 2)
        level = max(level - on_b12, 0)
        status = mon.monitoring(last, mon.interval_days(cls, config), case.as_of)
        if not status.due:  # a normal result within the interval: one step softer
            level = max(level - 1, 0) if known else 0
        note = _RESCUE_NOTE if rescue and _ingredients(findings) & RESCUE_PARTNERS else None
        yield _alert(case, cls, findings, ordered(factors), SEVERITIES[level], on_b12, config,
                     note, status)


def _alert(
    case: PatientCase,
    cls: ClassDef,
    findings: list[OrderFindings],
    factors: list[str],
    severity: Severity,
    on_b12: bool,
    config: Config,
    note: str | None = None,
    status: Monitoring | None = None,
) -> Alert:
    drugs = _drugs(findings, cls.class_id)
    orders = _order_ids(findings)
    said = mon.phrase(status) if status is not None else None
    summary, rest = _wording(cls, drugs, tuple(factors), on_b12, note, config, said)
    if status is not None:
        rest = f"{rest}\n{mon.detail_line(status)}"
    # the model's own validator: model_validate without its Python frame (hot path)
    alert: Alert = Alert.__pydantic_validator__.validate_python({
        "patient_id": case.patient_id,
        "class_id": cls.class_id,
        "severity": severity,
        "summary": summary,
        "detail": _bounded(f"**Drugs:** {_listed(drugs)} (orders: {_listed(orders)})\n{rest}"),
        "orders": orders,
        "drugs": drugs,
        "risk_factors": (*factors, "on_b12_therapy") if on_b12 else tuple(factors),
        "recommendation": (mon.recommendation(status, cls.monitoring) if status is not None
                           else cls.monitoring),
        "evidence": cls.evidence,
        "references": cls.references,
        "rule": "default-policy",
        "sources": _sources(findings),
        "monitoring": status,
    })
    return alert


#: Wording pieces already written, keyed by everything they depend on (bounded).
_WORDINGS: dict[tuple[object, ...], tuple[str, str, str]] = {}
_WORDINGS_LIMIT = 4096


def _wording(cls: ClassDef, drugs: tuple[str, ...], factors: tuple[str, ...], on_b12: bool,
             note: str | None, config: Config, said: str | None = None) -> tuple[str, str]:
    """An alert's summary and the detail after the drugs line.

    The parts that depend only on the class, risk factors, B12 therapy and age limit
    (the phrase after the drugs, the detail lines) are remembered: many patients share
    them.  Only the summary's drug list is written per alert.
    """
    key = (cls.class_id, cls.mechanism, cls.evidence, cls.monitoring, factors, on_b12, note,
           config.policy.age_limit)
    got = _WORDINGS.get(key)
    if got is None:
        if len(_WORDINGS) >= _WORDINGS_LIMIT:
            _WORDINGS.clear()
        got = _WORDINGS[key] = _write(cls, factors, on_b12, note, config)
    head, tail, rest = got
    if said is not None and not any(f in KNOWN_DEFICIENCY for f in factors):
        head = f" can lower vitamin B12; {said}"  # the lab history, not "consider a level"
    summary = _listed(drugs, 3) + head
    return _summary(summary[0].upper() + summary[1:] + tail), rest


def _write(cls: ClassDef, factors: tuple[str, ...], on_b12: bool, note: str | None,
           config: Config) -> tuple[str, str, str]:
    """The summary around its drug list (``head`` after it, ``tail`` at the end: the
    short labels of the other risk factors), and the detail's lines after the drugs."""
    known = [f for f in factors if f in KNOWN_DEFICIENCY]
    others = [f for f in factors if f not in KNOWN_DEFICIENCY]
    if known:
        head = f" with {_known_phrase(known, config)}: review and monitor B12"
    else:
        head = " can lower vitamin B12; consider a B12 level"
    tail = f" ({', '.join(short_label(f, config) for f in others)})" if others else ""
    lines = [f"**Why:** {cls.mechanism}", f"**Evidence:** {cls.evidence}"]
    if factors:
        lines.append(f"**Patient risk factors:** {'; '.join(label(f, config) for f in factors)}")
    if on_b12:
        lines.append("**Already on B12 therapy:** severity lowered one step; keep monitoring.")
    if note:
        lines.append(note)
    lines.append(f"**Monitor:** {cls.monitoring}")
    return head, tail, "\n".join(lines)


def folate_masking(case: PatientCase, kb: KnowledgeBase, config: Config) -> Iterator[Alert]:
    """Folate for a patient with known deficiency and no B12 therapy: ``critical``."""
    if FOLATE_MASKING in config.policy.disabled_classes:
        return
    groups = case.by_class()
    folate = groups.get("folate", [])
    known = sorted(set(case.risk_factors) & KNOWN_DEFICIENCY)
    if not folate or not known or "b12_therapy" in groups:
        return
    rescue = _rescue(case)
    if rescue:
        # Rescue folinic acid must not be withheld: only the other folates count.
        folate = [
            f for f in folate
            if any(h.class_id == "folate" and h.ingredient.lower() not in FOLINIC_ACIDS
                   for h in f.hits)
        ]
    if not folate:
        return
    cls = kb.classes.get("folate")
    drugs = tuple(d for d in _drugs(folate, "folate")
                  if not (rescue and d.lower() in FOLINIC_ACIDS))
    labels = [label(f, config) for f in known]
    refs = cls.references if cls else ()
    advice = (
        "Do not give folate alone: start B12 replacement first or together, and confirm "
        "B12 status. Folic acid corrects the anaemia of B12 deficiency while nerve damage "
        "progresses; labels advise no more than 0.4 mg/day until pernicious anaemia is "
        "excluded."
    )
    yield Alert(
        patient_id=case.patient_id,
        class_id=FOLATE_MASKING,
        severity="critical",
        summary=_summary(f"{_listed(drugs, 3).capitalize()} with "
                         f"{_known_phrase(known, config)} and no B12 therapy: folate can "
                         "mask B12 deficiency"),
        detail=_detail(
            [
                f"**Drugs:** {_listed(drugs)} (orders: {_listed(_order_ids(folate))})",
                f"**Known deficiency or megaloblastic anaemia:** {'; '.join(labels)}",
                "**Why:** folate corrects the anaemia of B12 deficiency while the "
                "neurological damage goes on, so it can hide a deficiency.",
                f"**Do:** {advice}",
            ]
        ),
        orders=_order_ids(folate),
        drugs=drugs,
        risk_factors=tuple(known),
        recommendation=advice,
        evidence="strong",
        references=refs,
        rule="folate-masking",
        sources=_sources(folate),
    )
