"""Builtin plugin: the default alert policy, folate masking and risk-factor detection."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from ..config import Config
from ..hookspecs import hookimpl
from ..models import PatientContext
from ..records import Rule
from .risk import patient_risk_factors
from .rules import default_policy, folate_masking


@hookimpl(trylast=True)
def b12drugs_rules() -> Iterable[Rule]:
    return [
        Rule(
            name="default-policy",
            description="one alert per patient and B12-lowering class; severity from the class, "
            "+1 with risk factors, +1 with known deficiency, -1 on B12 therapy",
            evaluate=default_policy,
        ),
        Rule(
            name="folate-masking",
            description="folate with known B12 deficiency (or megaloblastic anaemia) and no "
            "B12 therapy is critical; folinic-acid rescue beside a systemic antifolate or "
            "fluoropyrimidine is exempt",
            evaluate=folate_masking,
        ),
    ]


@hookimpl(trylast=True)
def b12drugs_risk_factors(patient: PatientContext, as_of: date, config: Config) -> Iterable[str]:
    return patient_risk_factors(patient, as_of, config)
