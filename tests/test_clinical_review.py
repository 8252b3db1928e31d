"""Regression tests for the clinical review findings (rescue folinic acid, negated
condition texts, code mappings, text gaps, false-friend drug names, local routes)."""

from __future__ import annotations

from datetime import date

import pytest

from b12drugs import screen
from b12drugs.config import Config, PolicyConfig
from b12drugs.models import Alert, Condition, Order, PatientContext

AS_OF = date(2026, 11, 1)


def _order(i: str, text: str, **kw: object) -> Order:
    return Order(id=i, patient_id="p", text=text, status="active", **kw)  # type: ignore[arg-type]


def _alerts(texts: list[str], conditions: tuple[str, ...] = ()) -> dict[str, Alert]:
    pat = PatientContext(
        id="p", birth_date=date(1980, 1, 1),
        conditions=tuple(Condition(text=c) for c in conditions),
    )
    orders = [_order(str(i), t) for i, t in enumerate(texts)]
    report = screen(orders, pat, Config(policy=PolicyConfig(as_of=AS_OF)))
    return {a.class_id: a for a in report.alerts}


# --- 1. folinic acid rescue is not "folate alone" ---------------------------------------


@pytest.mark.parametrize(
    "cytostatic", ["methotrexate 2.5 mg tablet", "fluorouracil 500 mg/m2 injection",
                   "pemetrexed 500 mg/m2", "capecitabine 500 mg tablet"],
)
@pytest.mark.parametrize("rescue", ["leucovorin calcium 15 mg", "levoleucovorin 50 mg"])
def test_rescue_folinic_acid_is_not_folate_masking(cytostatic: str, rescue: str) -> None:
    got = _alerts([cytostatic, rescue], ("Pernicious anemia",))
    assert "folate_masking" not in got
    cyto = got["cytostatics"]
    assert cyto.severity == "critical"
    assert "rescue" in cyto.detail and "does not treat" in cyto.detail


def test_folic_acid_beside_a_cytostatic_still_masks() -> None:
    got = _alerts(["methotrexate 2.5 mg", "leucovorin 15 mg", "folic acid 5 mg"],
                  ("Pernicious anemia",))
    assert got["folate_masking"].drugs == ("folic acid",)


def test_folinic_acid_without_a_cytostatic_still_masks() -> None:
    got = _alerts(["leucovorin 15 mg"], ("Pernicious anemia",))
    assert got["folate_masking"].severity == "critical"


# --- 2. negated, family-history and screening texts are not risk factors -----------------

from b12drugs.assess.risk import condition_risk_factors  # noqa: E402


def _factors(text: str) -> frozenset[str]:
    return condition_risk_factors(Condition(text=text))


@pytest.mark.parametrize(
    ("text", "factor"),
    [
        ("Family history of pernicious anemia", "pernicious_anemia"),
        ("FH: pernicious anaemia", "pernicious_anemia"),
        ("B12 deficiency ruled out", "b12_deficiency"),
        ("No anemia", "anemia"),
        ("Anemia ruled out", "anemia"),
        ("Dementia screening negative", "neurological"),
        ("Screening for dementia", "neurological"),
        ("Patient denies paresthesia", "peripheral_neuropathy"),
        ("Intrinsic factor antibody negative", "pernicious_anemia"),
        ("No evidence of Crohn's disease", "malabsorption"),
        ("History of anemia", "anemia"),
        ("Rule out megaloblastic anemia", "megaloblastic_anemia"),
        ("Family history of alcoholism", "alcohol_use_disorder"),
        ("Negative for celiac disease", "malabsorption"),
    ],
)
def test_negated_condition_texts_do_not_count(text: str, factor: str) -> None:
    assert factor not in _factors(text), text


@pytest.mark.parametrize(
    ("text", "factor"),
    [
        ("History of gastrectomy", "gastric_surgery"),
        ("History of pernicious anemia", "pernicious_anemia"),
        ("History of B12 deficiency", "b12_deficiency"),
        ("History of Crohn's disease", "malabsorption"),
        ("Pernicious anemia", "pernicious_anemia"),
        ("Anemia", "anemia"),
        ("Megaloblastic anemia, not elsewhere classified", "megaloblastic_anemia"),
        ("Crohn's disease without complications", "malabsorption"),
        ("Dementia", "neurological"),
        ("Vitamin B12 deficiency", "b12_deficiency"),
        ("Acquired absence of stomach", "gastric_surgery"),
        ("Alcohol dependence", "alcohol_use_disorder"),
    ],
)
def test_affirmed_condition_texts_count(text: str, factor: str) -> None:
    assert factor in _factors(text), text


def test_family_history_does_not_raise_folate_masking() -> None:
    got = _alerts(["folic acid 5 mg"], ("Family history of pernicious anemia",))
    assert "folate_masking" not in got


# --- 3. code mappings and summaries name the actual known factor ------------------------


def _coded(code: str) -> frozenset[str]:
    return condition_risk_factors(Condition(system="http://hl7.org/fhir/sid/icd-10-cm", code=code))


def test_e53_8_is_not_a_known_b12_deficiency() -> None:
    # E53.8 also covers folate, biotin and pantothenic acid deficiency.
    assert not _coded("E53.8") & {"b12_deficiency", "pernicious_anemia",
                                   "megaloblastic_anemia", "low_serum_b12"}


def test_folate_deficiency_anaemia_is_named_not_called_b12_deficiency() -> None:
    got = _alerts(["metformin 500 mg", "folic acid 5 mg"], ("Folate deficiency anemia",))
    for class_id in ("metformin", "folate_masking"):
        a = got[class_id]
        assert "known B12 deficiency" not in a.summary, a.summary
        assert "megaloblastic anaemia" in a.summary, a.summary


def test_documented_b12_deficiency_keeps_its_wording() -> None:
    got = _alerts(["metformin 500 mg"], ("Vitamin B12 deficiency",))
    assert "known B12 deficiency" in got["metformin"].summary


# --- 4. text gaps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "factor"),
    [
        ("Polyneuropathy due to diabetes", "peripheral_neuropathy"),
        ("Polyneuropathy", "peripheral_neuropathy"),
        ("Sensorimotor polyneuropathy", "peripheral_neuropathy"),
        ("Gastric sleeve", "gastric_surgery"),
        ("Status post gastric sleeve surgery", "gastric_surgery"),
        ("Sleeve gastrectomy", "gastric_surgery"),
        ("Gluten enteropathy", "malabsorption"),
        ("Gluten-induced enteropathy", "malabsorption"),
    ],
)
def test_text_gaps_closed(text: str, factor: str) -> None:
    assert factor in _factors(text), text


# --- 5. false friends ------------------------------------------------------------------------


def _classes(text: str) -> dict[str, tuple[str, ...]]:
    report = screen([_order("1", text)], None, Config(policy=PolicyConfig(as_of=AS_OF)))
    return {a.class_id: a.drugs for a in report.alerts}


def _notices(text: str) -> list[str]:
    report = screen([_order("1", text)], None, Config(policy=PolicyConfig(as_of=AS_OF)))
    return [n.kind for n in report.notices]


@pytest.mark.parametrize("text", ["5-aminosalicylate 1.2 g", "5 aminosalicylate 800 mg tablet",
                                  "5-aminosalicylic acid 500 mg"])
def test_5_aminosalicylate_is_mesalamine_not_pas(text: str) -> None:
    assert _classes(text) == {}
    assert "unresolved" not in _notices(text)


def test_dph_is_not_read_as_phenytoin() -> None:
    assert "phenytoin" not in _classes("DPH 25 mg capsule")
    assert _classes("phenytoin 100 mg") == {"phenytoin": ("phenytoin",)}


def test_zantac_360_is_famotidine_only() -> None:
    assert _classes("Zantac 360 20 mg tablet") == {"h2_receptor_antagonists": ("famotidine",)}
    assert _classes("Zantac 150 mg") == {"h2_receptor_antagonists": ("ranitidine",)}


def test_celebyx_is_not_read_as_cerebyx() -> None:
    assert "phenytoin" not in _classes("Celebyx 200 mg")
    assert _classes("Cerebyx 500 mg") == {"phenytoin": ("fosphenytoin",)}
    assert _classes("metformn 500 mg") == {"metformin": ("metformin",)}  # typos still read


@pytest.mark.parametrize("text", ["pentobarbital 100 mg", "cinnarizine 25 mg", "Nembutal 50 mg"])
def test_look_alikes_are_known_non_b12_drugs(text: str) -> None:
    assert _classes(text) == {}
    assert "unresolved" not in _notices(text)


# --- 6. topical, ophthalmic and otic products raise no systemic alert --------------------


@pytest.mark.parametrize(
    "text",
    [
        "gentamicin 0.1% cream", "gentamicin ointment", "Neosporin ointment",
        "Tobradex eye drops", "neomycin/polymyxin/dexamethasone eye drops",
        "tobramycin 0.3% ophthalmic solution", "neomycin otic suspension",
        "ciprofloxacin/gentamicin ear drops", "fluorouracil 5% cream", "Efudex 5% cream",
        "Efudex", "Carac 0.5% cream", "Mitosol 0.2 mg kit", "fluorouracil topical solution",
        "gentamicin sulfate 0.3% solution for eye",
    ],
)
def test_local_products_raise_no_systemic_alert(text: str) -> None:
    got = _classes(text)
    assert "aminoglycosides" not in got and "cytostatics" not in got, text
    # checked, and said so: no silent negative
    report = screen([_order("1", text)], None, Config(policy=PolicyConfig(as_of=AS_OF)))
    [note] = [n for n in report.notices if n.kind == "info" and "no alert" in n.message]
    assert note.order_id == "1" and note.patient_id == "p"
    assert any(r in note.message for r in ("topical", "ophthalmic", "otic")), note.message


@pytest.mark.parametrize("route", ["ophthalmic", "Topical", "OTIC", "cutaneous"])
def test_order_route_field_is_used(route: str) -> None:
    report = screen([_order("1", "gentamicin 0.3%", route=route)], None,
                    Config(policy=PolicyConfig(as_of=AS_OF)))
    assert report.alerts == ()
    [note] = [n for n in report.notices if n.kind == "info"]
    assert note.message.startswith("gentamicin: ") and "systemic exposure" in note.message


@pytest.mark.parametrize(
    ("text", "route", "class_id"),
    [
        ("neomycin 500 mg tablet", None, "aminoglycosides"),
        ("gentamicin 80 mg injection", "intravenous", "aminoglycosides"),
        ("fluorouracil 500 mg/m2 injection", None, "cytostatics"),
        ("capecitabine 500 mg tablet", "oral", "cytostatics"),
        ("methotrexate 2.5 mg tablet", "oral", "cytostatics"),
    ],
)
def test_systemic_products_still_alert(text: str, route: str | None, class_id: str) -> None:
    report = screen([_order("1", text, route=route)], None,
                    Config(policy=PolicyConfig(as_of=AS_OF)))
    assert class_id in {a.class_id for a in report.alerts}
    assert not [n for n in report.notices if "no alert" in n.message]


def test_metformin_gel_name_is_not_excluded() -> None:
    # exclude_routes applies only to the classes that list it.
    assert "metformin" in _classes("metformin 500 mg gel-coated tablet")


def test_exclude_routes_loaded_from_data() -> None:
    from b12drugs.knowledge import load_knowledge

    kb = load_knowledge()
    assert set(kb.classes["aminoglycosides"].exclude_routes) == {"topical", "ophthalmic", "otic"}
    assert set(kb.classes["cytostatics"].exclude_routes) == {"topical", "ophthalmic", "otic"}
    assert kb.classes["metformin"].exclude_routes == ()


def test_topical_fluorouracil_does_not_make_folinic_acid_a_rescue() -> None:
    got = _alerts(["fluorouracil 5% cream", "leucovorin 15 mg"], ("Pernicious anemia",))
    assert got["folate_masking"].drugs == ("leucovorin",)
