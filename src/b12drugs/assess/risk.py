"""Assess: which of the patient's own risk factors apply.

Risk factors come from the clinical reference (``clinical.md``): age, diet, conditions
that impair absorption, neurological signs, anaemia, alcohol use disorder, pregnancy,
and a known deficiency (which escalates a second step).  Conditions are matched by code
(SNOMED CT, ICD-10 prefixes) and by text patterns kept as data in
``data/risk_conditions.csv``.  Order-level factors (long-term use, several classes at
once) are decided by the alert policy in :mod:`b12drugs.assess.rules`.

Condition texts are free text, so a pattern alone would also match what a condition
list says is *absent*: "Family history of pernicious anemia", "B12 deficiency ruled out",
"No anemia", "Dementia screening negative".  :func:`negated` drops such texts centrally
(for every text row of ``risk_conditions.csv``) before the patterns are tried:

* family history (``family history``, ``FH``, ``FHx``) never counts: it is not the patient;
* negation and exclusion (``no ...`` at the start, ``no evidence/history/signs of``,
  ``ruled out``, ``rule out``/``r/o``, ``excluded``, ``negative``, ``denies``/``denied``,
  ``not present/found/confirmed/detected``) and screening or suspicion (``screening``,
  ``screen for``, ``suspected``, ``at risk of``) never count: they are not a diagnosis;
* ``history of`` drops only the transient states (:data:`TRANSIENT`: anaemia, megaloblastic
  anaemia, pregnancy).  It still counts for permanent or persisting factors: a gastrectomy
  or ileal resection stays (deficiency can appear years later), as do pernicious anaemia,
  atrophic gastritis, malabsorbing bowel disease, neuropathy, dementia, alcohol use
  disorder and a documented past B12 deficiency (whose cause usually persists; alerting
  is the safer error).

Coded conditions are not affected: a code already says what it means.

This module is the builtin implementation of the ``b12drugs_risk_factors`` hook.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache

from ..config import Config, MonitoringPolicy
from ..knowledge import data_dir
from ..models import ICD10_SYSTEMS, SNOMED_SYSTEM, Condition, LabResult, PatientContext
from .monitoring import b12_status

_DEFAULT_MONITORING = MonitoringPolicy()

#: Human-readable labels, also the vocabulary of risk-factor ids.
RISK_LABELS: dict[str, str] = {
    "older_age": "age {age_limit} or over",
    "long_term_use": "long-term use",
    "multiple_b12_lowering_drugs": "several B12-lowering drugs at once",
    "gastric_surgery": "gastrectomy or ileal resection",
    "atrophic_gastritis": "atrophic gastritis",
    "malabsorption": "malabsorption (e.g. Crohn's disease, coeliac disease)",
    "peripheral_neuropathy": "peripheral neuropathy",
    "neurological": "myelopathy, dementia or cognitive decline",
    "anemia": "anaemia",
    "alcohol_use_disorder": "alcohol use disorder",
    "vegetarian_diet": "vegetarian or vegan diet",
    "pregnancy": "pregnancy",
    "elevated_mma": "raised methylmalonic acid or homocysteine",
    "b12_deficiency": "known vitamin B12 deficiency",
    "pernicious_anemia": "pernicious anaemia",
    "megaloblastic_anemia": "megaloblastic or macrocytic anaemia",
    "low_serum_b12": "low serum vitamin B12",
}

#: Risk factors that mean the deficiency is already known: a second escalation step,
#: and the condition for the folate-masking rule.
KNOWN_DEFICIENCY = frozenset(
    {"b12_deficiency", "pernicious_anemia", "megaloblastic_anemia", "low_serum_b12"}
)

#: Serum cobalamin below which a result counts as low when the lab sent no
#: interpretation flag: 200 pg/mL = 148 pmol/L (Langan & Goodbred, Am Fam Physician
#: 2017;96:384); the default of ``[policy.monitoring] b12_low_pg_ml``.
LOW_B12_PG_ML = 200.0


#: Short forms for the one-line alert summary (cards allow < 140 characters).
SHORT_LABELS: dict[str, str] = {
    "older_age": "age {age_limit}+",
    "long_term_use": "long-term use",
    "multiple_b12_lowering_drugs": "2+ B12-lowering drugs",
    "gastric_surgery": "gastric surgery",
    "malabsorption": "malabsorption",
    "peripheral_neuropathy": "neuropathy",
    "neurological": "neurological signs",
    "alcohol_use_disorder": "alcohol use",
    "vegetarian_diet": "vegetarian/vegan",
    "elevated_mma": "raised MMA",
    "b12_deficiency": "known B12 deficiency",
    "pernicious_anemia": "pernicious anaemia",
    "megaloblastic_anemia": "megaloblastic anaemia",
    "low_serum_b12": "low serum B12",
}

#: Order in which risk factors are named: the most telling first.
PRIORITY = (
    "low_serum_b12", "b12_deficiency", "pernicious_anemia", "megaloblastic_anemia",
    "peripheral_neuropathy", "neurological", "anemia", "elevated_mma", "gastric_surgery",
    "atrophic_gastritis", "malabsorption", "alcohol_use_disorder", "vegetarian_diet",
    "pregnancy", "older_age", "long_term_use", "multiple_b12_lowering_drugs",
)


_RANK = {r: i for i, r in enumerate(PRIORITY)}


def _rank(risk_factor: str) -> tuple[int, str]:
    return _RANK.get(risk_factor, len(_RANK)), risk_factor


def ordered(risk_factors: set[str] | list[str]) -> list[str]:
    """Risk factors, most telling first (unknown plugin ids last, alphabetically)."""
    return sorted(risk_factors, key=_rank)


def short_label(risk_factor: str, config: Config | None = None) -> str:
    limit = config.policy.age_limit if config else 65
    text = SHORT_LABELS.get(risk_factor) or label(risk_factor, config)
    return text.format(age_limit=limit)


def label(risk_factor: str, config: Config | None = None) -> str:
    limit = config.policy.age_limit if config else 65
    return RISK_LABELS.get(risk_factor, risk_factor.replace("_", " ")).format(age_limit=limit)


#: Texts that deny, exclude or only screen for a condition, or concern a relative.
_NEGATION = re.compile(
    r"\bfamily (?:medical )?history\b|\bfh\b|\bfhx\b|^\W*no\b"
    r"|\bno (?:evidence|history|signs?|symptoms?|sign or symptoms?) of\b"
    r"|\bruled? out\b|\br/o\b|\bexcluded\b|\bnegative\b|\bdenie[sd]\b"
    r"|\bnot (?:present|found|confirmed|detected|seen)\b"
    r"|\bscreen(?:ing)?\b|\bsuspected\b|\bat risk (?:of|for)\b",
    re.IGNORECASE,
)
_HISTORY_OF = re.compile(r"\bhistory of\b|\bh/o\b|\bhx of\b", re.IGNORECASE)
#: Risk factors that are past once resolved: "history of" them does not count.
TRANSIENT = frozenset({"anemia", "megaloblastic_anemia", "pregnancy"})


def negated(text: str, risk_factor: str) -> bool:
    """True when a condition text does not assert the risk factor for this patient."""
    if _NEGATION.search(text):
        return True
    return risk_factor in TRANSIENT and bool(_HISTORY_OF.search(text))


@dataclass(frozen=True)
class _ConditionRule:
    risk_factor: str
    system: str
    code: str
    pattern: re.Pattern[str] | None


@cache
def condition_rules() -> tuple[_ConditionRule, ...]:
    """Rules from ``data/risk_conditions.csv`` (compiled once)."""
    rules = []
    with (data_dir() / "risk_conditions.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            pattern = row.get("pattern") or ""
            rules.append(
                _ConditionRule(
                    risk_factor=row["risk_factor"],
                    system=(row.get("system") or "text").strip().lower(),
                    code=(row.get("code") or "").strip().upper(),
                    pattern=re.compile(pattern, re.IGNORECASE) if pattern else None,
                )
            )
    return tuple(rules)


def _system_kind(system: str | None) -> str:
    if not system:
        return ""
    s = system.lower()
    if s == SNOMED_SYSTEM or "snomed" in s or s in ("sct", "snm"):
        return "snomed"
    if s in ICD10_SYSTEMS or "icd-10" in s or "icd10" in s or s in ("i10", "i10c", "abf"):
        return "icd10"
    return s


@lru_cache(maxsize=8192)
def condition_risk_factors(condition: Condition) -> frozenset[str]:
    """Risk factors named by one condition, by code or by text.

    Cached: the same few hundred condition texts and codes recur across patients, and
    every one is matched against every pattern of ``risk_conditions.csv``."""
    found: set[str] = set()
    if not condition.active:
        return frozenset()
    kind = _system_kind(condition.system)
    code = (condition.code or "").strip().upper()
    text = condition.text or ""
    for rule in condition_rules():
        if rule.system == "text":
            if (
                rule.pattern is not None and text and rule.pattern.search(text)
                and not negated(text, rule.risk_factor)
            ):
                found.add(rule.risk_factor)
        elif code and rule.system == kind:
            if rule.system == "icd10":
                # ICD-10 rows are category prefixes: D51 covers D51.0 ... D51.9.
                if code.replace(".", "").startswith(rule.code.replace(".", "")):
                    found.add(rule.risk_factor)
            elif code == rule.code:
                found.add(rule.risk_factor)
    return frozenset(found)


def lab_risk_factors(lab: LabResult, config: Config | None = None) -> set[str]:
    """``low_serum_b12`` for a low serum B12 or holotranscobalamin (the lab's ``low``
    flag, or an unflagged value under ``[policy.monitoring] b12_low_pg_ml`` /
    ``holotc_low_pmol_l``; units normalised by :mod:`.monitoring`), ``elevated_mma`` for
    raised methylmalonic acid or homocysteine flagged ``high`` by the lab."""
    if lab.kind in ("b12", "holotc"):
        policy = config.policy.monitoring if config is not None else _DEFAULT_MONITORING
        if b12_status(lab, policy) == "low":
            return {"low_serum_b12"}
    if lab.kind in ("mma", "homocysteine") and lab.interpretation == "high":
        return {"elevated_mma"}
    return set()


def age_on(birth: date, as_of: date) -> int:
    return as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))


def patient_age(patient: PatientContext, as_of: date) -> int | None:
    if patient.birth_date is not None:
        return age_on(patient.birth_date, as_of)
    return patient.age


def patient_risk_factors(patient: PatientContext, as_of: date, config: Config) -> set[str]:
    """Every patient-level risk factor the builtin rules recognise."""
    found: set[str] = set()
    age = patient_age(patient, as_of)
    if age is not None and age >= config.policy.age_limit:
        found.add("older_age")
    if patient.diet in ("vegetarian", "vegan"):
        found.add("vegetarian_diet")
    for condition in patient.conditions:
        found |= condition_risk_factors(condition)
    for lab in patient.labs:
        found |= lab_risk_factors(lab, config)
    return found
