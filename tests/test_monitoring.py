"""Lab history changes the alert (issue 14, section 1): monitoring status, unit
normalisation, severity, wording and the report switch."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from b12drugs import screen
from b12drugs.assess import monitoring as mon
from b12drugs.config import Config, MonitoringPolicy, PolicyConfig
from b12drugs.models import LabResult, Order, PatientContext

AS_OF = dt.date(2026, 11, 21)
POLICY = MonitoringPolicy()


def run(labs: tuple[LabResult, ...] = (), *, birth: dt.date | None = dt.date(1950, 1, 1),
        text: str = "metformin 500 mg tablet", conditions: tuple = (),  # type: ignore[type-arg]
        **policy: object):
    config = Config(policy=PolicyConfig(as_of=AS_OF, **policy))  # type: ignore[arg-type]
    return screen([PatientContext(id="p1", birth_date=birth, labs=labs, conditions=conditions),
                   Order(id="rx1", patient_id="p1", text=text)], config=config)


def b12(value: float, unit: str = "pg/mL", day: dt.date = dt.date(2026, 9, 20),
        flag: str | None = None) -> LabResult:
    return LabResult(kind="b12", value=value, unit=unit, date=day,
                     interpretation=flag)  # type: ignore[arg-type]


# -- unit normalisation --------------------------------------------------------------

@pytest.mark.parametrize(("kind", "value", "unit", "expected"), [
    ("b12", 450, "pg/mL", (450, "pg/mL")),
    ("b12", 450, "ng/L", (450, "pg/mL")),
    ("b12", 148, "pmol/L", (200, "pg/mL")),
    ("b12", 0.45, "ng/mL", (450, "pg/mL")),
    ("holotc", 45, "pmol/l", (45, "pmol/L")),
    ("mma", 0.25, "µmol/L", (250, "nmol/L")),
    ("mma", 0.25, "μmol/L", (250, "nmol/L")),
    ("mma", 0.25, "nmol/mL", (250, "nmol/L")),
    ("homocysteine", 12, "micromol/L", (12, "umol/L")),
    ("homocysteine", 12, "umol/L", (12, "umol/L")),
])
def test_units_are_normalised(kind: str, value: float, unit: str,
                              expected: tuple[float, str]) -> None:
    assert mon.normalise(kind, value, unit) == expected


@pytest.mark.parametrize(("kind", "unit"), [("b12", "mg/dL"), ("b12", "%"), ("mma", "pg/mL"),
                                            ("folate", "ng/mL"), ("b12", "")])
def test_unknown_units_are_never_guessed(kind: str, unit: str) -> None:
    assert mon.normalise(kind, 300, unit) is None


@given(value=st.floats(min_value=0, max_value=1e6, allow_nan=False),
       spelling=st.sampled_from(["pg/mL", "PG/ML", " pg/ml ", "ng/L", "ng/l", "[pg]/mL"]))
def test_b12_mass_units_are_one_quantity(value: float, spelling: str) -> None:
    got = mon.normalise("b12", value, spelling)
    assert got is not None and got[1] == "pg/mL" and got[0] == round(value)


@given(pmol=st.floats(min_value=0, max_value=1e5, allow_nan=False))
def test_pmol_and_pg_give_the_same_reading(pmol: float) -> None:
    pg = pmol / mon.PMOL_PER_PG
    lab_pmol = LabResult(kind="b12", value=pmol, unit="pmol/L", date=AS_OF)
    lab_pg = LabResult(kind="b12", value=pg, unit="pg/mL", date=AS_OF)
    # away from the thresholds (rounding), the reading does not depend on the unit
    if all(abs(pg - t) > 1 for t in (POLICY.b12_low_pg_ml, POLICY.b12_normal_pg_ml)):
        assert mon.b12_status(lab_pmol, POLICY) == mon.b12_status(lab_pg, POLICY)


@given(kind=st.sampled_from(["b12", "holotc", "mma", "homocysteine", "folate", "other"]),
       value=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
       unit=st.one_of(st.none(), st.text(max_size=20)),
       flag=st.sampled_from([None, "low", "borderline", "normal", "high"]))
def test_status_never_crashes(kind: str, value: float | None, unit: str | None,
                              flag: str | None) -> None:
    lab = LabResult(kind=kind, value=value, unit=unit, date=AS_OF,  # type: ignore[arg-type]
                    interpretation=flag)  # type: ignore[arg-type]
    got = mon.b12_status(lab, POLICY)
    assert got in (None, "low", "borderline", "normal")
    norm = mon.normalise(kind, value, unit)
    assert norm is None or math.isfinite(norm[0])


# -- reading one result --------------------------------------------------------------

@pytest.mark.parametrize(("lab", "expected"), [
    (b12(150), "low"),
    (b12(199.9), "low"),
    (b12(200), "borderline"),
    (b12(399), "borderline"),
    (b12(400), "normal"),
    (b12(450, flag="low"), "low"),               # the lab's low flag always counts
    (b12(190, flag="normal"), "borderline"),     # lab range says normal: grey zone, not low
    (b12(300, flag="normal"), "borderline"),
    (b12(800, flag="high"), "normal"),
    (LabResult(kind="b12", interpretation="normal", date=AS_OF), "normal"),
    (LabResult(kind="b12", date=AS_OF), None),   # neither value nor flag
    (LabResult(kind="holotc", value=15, unit="pmol/L", date=AS_OF), "low"),
    (LabResult(kind="holotc", value=25, unit="pmol/L", date=AS_OF), "borderline"),
    (LabResult(kind="holotc", value=60, unit="pmol/L", date=AS_OF), "normal"),
    (LabResult(kind="mma", value=0.6, unit="umol/L", date=AS_OF), "borderline"),
    (LabResult(kind="mma", value=200, unit="nmol/L", date=AS_OF), "normal"),
    (LabResult(kind="homocysteine", interpretation="high", date=AS_OF), "borderline"),
    (LabResult(kind="folate", value=2, unit="ng/mL", date=AS_OF), None),
])
def test_b12_status(lab: LabResult, expected: str | None) -> None:
    assert mon.b12_status(lab, POLICY) == expected


def test_last_result_is_the_latest_dated_and_the_worst_of_its_day() -> None:
    labs = (b12(120, day=dt.date(2025, 1, 1)), b12(500, day=dt.date(2026, 3, 1)),
            LabResult(kind="mma", value=600, unit="nmol/L", date=dt.date(2026, 3, 1)),
            LabResult(kind="b12", value=90, unit="pg/mL"))  # undated: not usable
    last = mon.last_result(labs, POLICY)
    assert last is not None
    assert (last.kind, last.date, last.interpretation) == ("mma", dt.date(2026, 3, 1),
                                                           "borderline")


# -- the alert -----------------------------------------------------------------------

def test_normal_result_within_interval_softens_and_says_when_next() -> None:
    without = run().alerts[0]
    alert = run((b12(450),)).alerts[0]
    assert without.severity == "warning"  # age 65+
    assert alert.severity == "info"
    assert "last B12 450 pg/mL on 2026-09-20; next due 2027-09" in alert.summary
    assert "consider a B12 level" not in alert.summary
    m = alert.monitoring
    assert m is not None and m.due is False and m.due_date == dt.date(2027, 9, 20)
    assert m.last_result is not None and m.last_result.interpretation == "normal"
    assert "No B12 status test due before 2027-09" in alert.recommendation


def test_softened_never_above_info_without_known_deficiency() -> None:
    # nitrous oxide is warning by default, +1 for age: critical without a result
    assert run(text="nitrous oxide").alerts[0].severity == "critical"
    assert run((b12(450),), text="nitrous oxide").alerts[0].severity == "info"


def test_known_deficiency_with_normal_result_is_one_step_softer() -> None:
    from b12drugs.models import Condition

    pa = (Condition(text="Pernicious anemia"),)
    assert run(conditions=pa).alerts[0].severity == "critical"
    assert run((b12(450),), conditions=pa).alerts[0].severity == "warning"


def test_no_result_and_old_result_are_due() -> None:
    never = run().alerts[0].monitoring
    assert never is not None and never.due and never.due_date is None
    assert never.last_result is None
    old = run((b12(450, day=dt.date(2024, 5, 2)),)).alerts[0]
    assert old.severity == "warning"
    assert old.monitoring is not None and old.monitoring.due
    assert old.monitoring.due_date == dt.date(2025, 5, 2)
    assert "a B12 level is due" in old.summary


def test_borderline_is_due_and_recommends_confirmation() -> None:
    alert = run((b12(250),)).alerts[0]
    assert alert.severity == "warning"  # as without a result
    assert alert.monitoring is not None and alert.monitoring.due
    assert alert.monitoring.due_date == dt.date(2026, 9, 20)
    assert "methylmalonic acid" in alert.recommendation and "homocysteine" in alert.recommendation
    assert "borderline" in alert.summary


def test_low_result_is_a_known_deficiency_as_before() -> None:
    alert = run((b12(120),)).alerts[0]
    assert alert.severity == "critical"
    assert "low_serum_b12" in alert.risk_factors
    assert alert.monitoring is not None and alert.monitoring.due
    folate = screen([PatientContext(id="p1", labs=(b12(120),)),
                     Order(id="rx2", patient_id="p1", text="folic acid 5 mg")],
                    config=Config(policy=PolicyConfig(as_of=AS_OF)))
    assert [a.class_id for a in folate.alerts] == ["folate_masking"]


def test_interval_comes_from_the_knowledge_base_and_the_config() -> None:
    from b12drugs.knowledge import load_knowledge

    kb = load_knowledge()
    assert all(c.monitoring_interval_days and c.monitoring_reference
               for c in kb.classes.values() if c.role == "alert")
    short = run((b12(450, day=dt.date(2026, 5, 1)),),
                monitoring=MonitoringPolicy(interval_days={"metformin": 90})).alerts[0]
    assert short.monitoring is not None and short.monitoring.due
    assert short.monitoring.due_date == dt.date(2026, 7, 30)


def test_thresholds_are_configurable() -> None:
    strict = MonitoringPolicy(b12_normal_pg_ml=500)
    alert = run((b12(450),), monitoring=strict).alerts[0]
    assert alert.monitoring is not None
    assert alert.monitoring.last_result is not None
    assert alert.monitoring.last_result.interpretation == "borderline"


def test_not_due_alerts_can_be_kept_out_and_are_counted() -> None:
    report = run((b12(450),), monitoring=MonitoringPolicy(report_not_due=False))
    assert report.alerts == ()
    notes = [n.message for n in report.notices if "monitoring interval" in n.message]
    assert notes and notes[0].startswith("1 alert(s)")
    # a due patient is still reported under the same switch
    due = run((b12(450, day=dt.date(2020, 1, 1)),),
              monitoring=MonitoringPolicy(report_not_due=False))
    assert len(due.alerts) == 1


def test_config_file_reads_the_monitoring_section(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from b12drugs.config import load_config
    from b12drugs.errors import ConfigError

    path = tmp_path / "b.toml"
    path.write_text("[policy.monitoring]\nreport_not_due = false\nb12_normal_pg_ml = 350\n"
                    "[policy.monitoring.interval_days]\nmetformin = 180\n")
    m = load_config(path).policy.monitoring
    assert (m.report_not_due, m.b12_normal_pg_ml, m.interval_days) == (False, 350,
                                                                      {"metformin": 180})
    path.write_text("[policy.monitoring]\nreport_not_dew = false\n")
    with pytest.raises(ConfigError):
        load_config(path)


def test_policy_refuses_unknown_classes_and_inverted_grey_zones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from b12drugs.config import load_config
    from b12drugs.errors import ConfigError

    with pytest.raises(ConfigError, match=r"monitoring\.interval_days"):
        run(monitoring=MonitoringPolicy(interval_days={"metformine": 90}))
    path = tmp_path / "b.toml"
    path.write_text("[policy.monitoring]\nb12_low_pg_ml = 500\nb12_normal_pg_ml = 400\n")
    with pytest.raises(ConfigError, match="b12_low_pg_ml"):
        load_config(path)
