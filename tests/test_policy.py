"""The default alert policy, end to end through ``b12drugs.screen`` with the real
knowledge base and offline resolver."""

from __future__ import annotations

from datetime import date

import pytest

from b12drugs import screen
from b12drugs.config import Config, PolicyConfig
from b12drugs.models import Condition, LabResult, Order, PatientContext

AS_OF = date(2026, 11, 1)


def cfg(**policy: object) -> Config:
    return Config(policy=PolicyConfig(as_of=AS_OF, **policy))  # type: ignore[arg-type]


def order(i: str, text: str, **kw: object) -> Order:
    return Order(id=i, patient_id="p", text=text, status=kw.pop("status", "active"), **kw)  # type: ignore[arg-type]


def patient(**kw: object) -> PatientContext:
    return PatientContext(id="p", **kw)  # type: ignore[arg-type]


def alerts(orders: list[Order], pat: PatientContext | None = None, **policy: object):  # type: ignore[no-untyped-def]
    report = screen(orders, pat or patient(birth_date=date(1980, 1, 1)), cfg(**policy))
    return {a.class_id: a for a in report.alerts}, report


def test_base_severity_is_info_and_nitrous_oxide_warning() -> None:
    got, _ = alerts([order("1", "metformin 500 mg tablet"), ])
    assert got["metformin"].severity == "info"
    got, _ = alerts([order("2", "nitrous oxide")])
    assert got["nitrous_oxide"].severity == "warning"


def test_one_risk_factor_raises_one_level() -> None:
    got, _ = alerts([order("1", "metformin 500 mg")], patient(birth_date=date(1950, 1, 1)))
    a = got["metformin"]
    assert a.severity == "warning"
    assert "older_age" in a.risk_factors


@pytest.mark.parametrize(
    "condition",
    ["Diabetic peripheral neuropathy", "Anemia", "History of gastrectomy", "Crohn's disease",
     "Alcohol dependence"],
)
def test_condition_risk_factors_escalate(condition: str) -> None:
    got, _ = alerts([order("1", "omeprazole 20 mg")],
                    patient(birth_date=date(1990, 1, 1), conditions=(Condition(text=condition),)))
    assert got["proton_pump_inhibitors"].severity == "warning", condition


def test_known_deficiency_raises_two_levels_and_caps_at_critical() -> None:
    pat = patient(birth_date=date(1950, 1, 1), conditions=(Condition(text="Pernicious anemia"),))
    got, _ = alerts([order("1", "metformin 1000 mg")], pat)
    assert got["metformin"].severity == "critical"
    got, _ = alerts([order("2", "nitrous oxide")], pat)
    assert got["nitrous_oxide"].severity == "critical"  # capped


def test_low_serum_b12_counts_as_known_deficiency() -> None:
    pat = patient(labs=(LabResult(kind="b12", value=120, unit="pg/mL"),))
    got, _ = alerts([order("1", "famotidine 20 mg")], pat)
    a = got["h2_receptor_antagonists"]
    assert a.severity == "critical" and "low_serum_b12" in a.risk_factors
    pat = patient(labs=(LabResult(kind="b12", value=400, unit="pmol/L"),))
    got, _ = alerts([order("1", "famotidine 20 mg")], pat)
    assert got["h2_receptor_antagonists"].severity == "info"


def test_b12_therapy_softens_but_keeps_the_alert() -> None:
    orders = [order("1", "metformin 500 mg"), order("2", "cyanocobalamin 1000 mcg injection")]
    got, _ = alerts(orders, patient(birth_date=date(1950, 1, 1)))
    a = got["metformin"]
    assert a.severity == "info" and "on_b12_therapy" in a.risk_factors
    assert "B12 therapy" in a.detail
    assert "b12_therapy" not in got  # context roles never alert on their own


def test_long_term_use_thresholds_are_configurable() -> None:
    orders = [order("1", "metformin 500 mg", start_date=date(2026, 5, 1))]  # 184 days
    got, _ = alerts(orders)
    assert "long_term_use" in got["metformin"].risk_factors
    got, _ = alerts(orders, long_term_days={"metformin": 365})
    assert got["metformin"].severity == "info"
    ppi = [order("2", "pantoprazole 40 mg", start_date=date(2026, 5, 1))]
    got, _ = alerts(ppi)
    assert got["proton_pump_inhibitors"].severity == "info"  # < 12 months
    ppi = [order("2", "pantoprazole 40 mg", days_supply=400)]
    got, _ = alerts(ppi)
    assert "long_term_use" in got["proton_pump_inhibitors"].risk_factors


def test_two_classes_escalate_each_other() -> None:
    got, _ = alerts([order("1", "metformin 500 mg"), order("2", "omeprazole 20 mg")])
    assert got["metformin"].severity == "warning"
    assert "multiple_b12_lowering_drugs" in got["proton_pump_inhibitors"].risk_factors
    got, _ = alerts([order("1", "metformin 500 mg"), order("2", "omeprazole 20 mg")],
                    escalate_on_multiple_classes=False)
    assert got["metformin"].severity == "info"


def test_one_alert_per_class_lists_every_order() -> None:
    orders = [order("1", "omeprazole 20 mg"), order("2", "esomeprazole 40 mg"),
              order("3", "omeprazole 40 mg")]
    got, report = alerts(orders)
    assert len(report.alerts) == 1
    a = got["proton_pump_inhibitors"]
    assert a.orders == ("1", "2", "3")
    assert set(a.drugs) == {"omeprazole", "esomeprazole"}
    assert len(a.summary) < 140


def test_folate_masking_is_critical_without_b12_therapy() -> None:
    pat = patient(conditions=(Condition(text="Pernicious anaemia"),))
    got, _ = alerts([order("1", "folic acid 1 mg tablet")], pat)
    assert got["folate_masking"].severity == "critical"
    assert got["folate_masking"].orders == ("1",)
    got, _ = alerts([order("1", "folic acid 1 mg"), order("2", "hydroxocobalamin injection")], pat)
    assert "folate_masking" not in got
    got, _ = alerts([order("1", "folic acid 1 mg")])  # no known deficiency
    assert got == {}


def test_inactive_orders_are_skipped_not_alerted() -> None:
    got, report = alerts([order("1", "metformin 500 mg", status="stopped"),
                          order("2", "omeprazole", status="entered-in-error")])
    assert got == {}
    assert report.counts.skipped == 2 and report.counts.read == 2
    assert {n.order_id for n in report.notices if n.kind == "skipped"} == {"1", "2"}


def test_config_disables_classes_and_filters_severity() -> None:
    orders = [order("1", "metformin 500 mg"), order("2", "nitrous oxide")]
    got, _ = alerts(orders, disabled_classes=("metformin",))
    assert set(got) == {"nitrous_oxide"}
    got, _ = alerts([order("1", "metformin 500 mg")], min_severity="warning")
    assert got == {}


def _policy_remarks(report: object) -> list[str]:
    return [n.message for n in report.notices  # type: ignore[attr-defined]
            if n.kind == "info" and "[policy]" in n.message]


def test_what_the_policy_keeps_out_of_the_report_is_said() -> None:
    """A quiet report must not read as a clean one: alerts under min_severity and
    patients in a disabled class are counted in one notice each (no patient data)."""
    orders = [order("1", "metformin 500 mg"), order("2", "nitrous oxide"),
              order("3", "metformin 850 mg").model_copy(update={"patient_id": "p2"}),
              order("4", "omeprazole 20 mg").model_copy(update={"patient_id": "p3"})]
    got, report = alerts(orders, disabled_classes=("metformin",), min_severity="warning")
    assert set(got) == {"nitrous_oxide"}
    remarks = _policy_remarks(report)
    assert remarks == [
        "1 alert(s) under the reporting threshold were not reported "
        "([policy] min_severity = 'warning')",
        "class 'metformin' is disabled ([policy] disabled_classes): 2 patient(s) with "
        "orders in it were not alerted for it",
    ]
    assert all("p2" not in r and "omeprazole" not in r for r in remarks)
    assert report.counts.read == 4  # notices, not records: the counts are unchanged


def test_a_disabled_folate_masking_check_is_said() -> None:
    _, report = alerts([order("1", "nitrous oxide")], disabled_classes=("folate_masking",))
    assert _policy_remarks(report) == [
        "checks disabled ([policy] disabled_classes), so not applied: folate_masking"]


def test_a_policy_that_hides_nothing_says_nothing() -> None:
    _, report = alerts([order("1", "nitrous oxide")], disabled_classes=("metformin",),
                       min_severity="warning")
    assert _policy_remarks(report) == []


def test_age_limit_is_configurable() -> None:
    pat = patient(birth_date=date(1960, 1, 1))  # 66
    got, _ = alerts([order("1", "metformin")], pat)
    assert got["metformin"].severity == "warning"
    got, _ = alerts([order("1", "metformin")], pat, age_limit=70)
    assert got["metformin"].severity == "info"


def test_ascorbic_acid_only_at_high_daily_doses() -> None:
    got, report = alerts([order("1", "ascorbic acid 500 mg", daily_dose_mg=500),
                          order("2", "vitamin C tablet")])
    assert "ascorbic_acid" not in got
    # each order is said to be checked, with the reason it raised nothing
    notes = {n.order_id: n.message for n in report.notices if n.kind == "info"}
    assert "daily dose 500 mg, no alert" in notes["1"] and "1000 mg/day" in notes["1"]
    assert "daily dose unknown, no alert" in notes["2"]
    got, _ = alerts([order("1", "ascorbic acid 1000 mg", daily_dose_mg=2000)])
    assert got["ascorbic_acid"].evidence == "disputed"


def test_one_unit_at_the_minimum_dose_meets_it() -> None:
    got, report = alerts([order("1", "ascorbic acid 1000 mg tablet")])
    assert got["ascorbic_acid"].severity == "info"
    assert not [n for n in report.notices if n.kind == "info"]
    for text in ("Vitamin C 1 g effervescent tablet", "ascorbic acid 1,000 mg", "vit C 1500mg"):
        got, _ = alerts([order("1", text)])
        assert "ascorbic_acid" in got, text
    got, _ = alerts([order("1", "ascorbic acid", strength="1000 mg")])
    assert "ascorbic_acid" in got
    # below the minimum, per volume, or with a frequency but no daily dose: the notice stays
    for text, kw in (("ascorbic acid 500 mg tablet", {}),
                     ("ascorbic acid 500 mg/5 mL oral solution", {}),
                     ("ascorbic acid 1000 mg tablet", {"frequency": "every other day"})):
        got, report = alerts([order("1", text, **kw)])
        assert "ascorbic_acid" not in got, text
        [note] = [n.message for n in report.notices if n.kind == "info"]
        assert "daily dose unknown" in note, text
    _, report = alerts([order("1", "ascorbic acid 500 mg tablet")])
    assert "unit strength 500 mg" in report.notices[0].message
    # a known daily dose decides, whatever the unit strength
    got, _ = alerts([order("1", "ascorbic acid 1000 mg tablet", daily_dose_mg=500)])
    assert "ascorbic_acid" not in got


def test_alert_carries_evidence_references_and_recommendation() -> None:
    got, _ = alerts([order("1", "metformin")])
    a = got["metformin"]
    assert a.evidence == "strong"
    assert any("Aroda" in r for r in a.references)
    assert "B12" in a.recommendation
    assert a.rule == "default-policy"


def test_many_orders_keep_the_alert_within_size_bounds() -> None:
    orders = [order(str(i), "metformin 500 mg") for i in range(3000)]
    got, report = alerts(orders)
    a = got["metformin"]
    assert len(a.orders) == 3000  # every contributing order is listed in the data
    assert "and 2980 more" in a.detail and len(a.detail) <= 2000
    assert not [n for n in report.notices if n.kind == "rejected"]
