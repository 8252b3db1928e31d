"""Normalising pharmacy free text (b12drugs.resolve.text)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b12drugs.resolve.text import (
    MAX_INPUT,
    base_key,
    candidates,
    components,
    expand_abbreviations,
    fold,
    name_key,
    normalize,
    parse,
)

NORMALIZE_CASES = [
    ("METFORMIN HCL 500MG TAB", "metformin"),
    ("Metformin ER 750 mg 24 hr tablet", "metformin"),
    ("24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", "metformin"),
    ("metformin500mg", "metformin"),
    ("Apo-Metformin 500", "metformin"),
    ("omeprazole DR 20 mg cap", "omeprazole"),
    ("pantoprazole sodium 40mg EC", "pantoprazole"),
    ("esomeprazole magnesium 40 mg capsule, delayed release", "esomeprazole"),
    ("famotidine 20mg", "famotidine"),
    ("gentamicin sulfate 40 mg/mL inj", "gentamicin"),
    ("GENTAMICIN SULPHATE 80MG/2ML AMPOULE", "gentamicin"),
    ("neomycin 500 mg tab", "neomycin"),
    ("phenytoin sodium ER 100 mg", "phenytoin"),
    ("phenobarbital 30mg", "phenobarbital"),
    ("aminosalicylic acid granules", "aminosalicylic acid"),
    ("nitrous oxide gas", "nitrous oxide"),
    ("colchicine 0.6 mg", "colchicine"),
    ("cholestyramine powder", "cholestyramine"),
    ("methotrexate 2.5mg", "methotrexate"),
    ("Methotrexate 2.5 MG Oral Tablet", "methotrexate"),
    ("cisplatin 50 MG Injection", "cisplatin"),
    ("PACLitaxel 100 MG Injection", "paclitaxel"),
    ("1 ML DOCEtaxel 20 MG/ML Injection", "docetaxel"),
    ("10 ML oxaliplatin 5 MG/ML Injection", "oxaliplatin"),
    ("Cyanocobalamin 1 MG/ML Injectable Solution", "cyanocobalamin"),
    ("0.25 ML Leuprolide Acetate 30 MG/ML Prefilled Syringe", "leuprolide"),
    ("Abuse-Deterrent 12 HR Oxycodone Hydrochloride 15 MG Extended Release Oral Tablet",
     "oxycodone"),
    ("NDA020800 0.3 ML Epinephrine 1 MG/ML Auto-Injector", "epinephrine"),
    ("NuvaRing 0.12/0.015 MG per 24HR 21 Day Vaginal Ring", "nuvaring"),
    ("Camila 28 Day Pack", "camila"),
    ("amoxicillin 250 mg/5 mL oral suspension, 100 mL bottle", "amoxicillin"),
    ("metformin 500 mg film-coated tablets, blister pack 30 ct", "metformin"),
    ("Nexium 24HR 20 mg", "nexium"),
    ("lansoprazole 15 mg ODT", "lansoprazole"),
    ("leucovorin calcium 25 mg", "leucovorin"),
    ("levothyroxine sodium 50 mcg", "levothyroxine"),
    ("insulin glargine 100 units/mL pen", "insulin glargine"),
    ("epinephrine 1:1000", "epinephrine"),
    ("Penicillin V Potassium 250 MG Oral Tablet", "penicillin v"),
    # salt words only: the salt is the drug
    ("potassium chloride ER 20 mEq", "potassium chloride"),
    ("magnesium sulfate 50%", "magnesium sulfate"),
    # names with digits and hyphens survive
    ("interferon alfa-2b 3 million units", "interferon alfa2b"),
    ("VP-16 100 mg", "vp16"),
    ("CPT-11", "cpt11"),
    ("metformin ER-500", "metformin"),
    ("vitamin D3 1000 IU", "vitamin d3"),
    ("co-trimoxazole 960 mg", "co trimoxazole"),
    # abbreviations
    ("MTX", "methotrexate"),
    ("MTX 2.5 mg weekly", "methotrexate"),
    ("metformin 500mg tab, take 1 tab by mouth twice daily", "metformin"),
    ("5-FU 500 mg/m2", "fluorouracil"),
    ("5FU", "fluorouracil"),
    ("6-MP 50mg", "mercaptopurine"),
    ("ARA-C", "cytarabine"),
    ("HCTZ 25", "hydrochlorothiazide"),
    ("N2O", "nitrous oxide"),
    ("N₂O 50%", "nitrous oxide"),
    ("PAS granules 4 g", "aminosalicylic acid"),
    ("para-aminosalicylic acid", "aminosalicylic acid"),
    ("ASA 81 mg EC", "aspirin"),
    ("B12 1000 mcg", "cyanocobalamin"),
    ("Methyl-B12 1 mg", "methylcobalamin"),
    ("methyl B12", "methylcobalamin"),
    ("Vitamin B 12 5 MG/ML Injectable Solution", "cyanocobalamin"),
    ("vit. C 500mg", "ascorbic acid"),
    # 5-ASA is mesalamine, never aspirin and never aminosalicylic acid (PAS)
    ("5-ASA 800 mg", "mesalamine"),
    ("5 ASA", "mesalamine"),
    ("5-aminosalicylic acid", "mesalamine"),
    # Unicode: full-width, micro sign, ligature, zero-width and control characters
    ("ＭＥＴＦＯＲＭＩＮ ５００ｍｇ", "metformin"),
    ("cyanocobalamin 1000 µg", "cyanocobalamin"),
    ("metfor\u200bmin", "metformin"),
    ("metformin\x00\x07 500", "metformin"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZE_CASES)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


COMPONENT_CASES = [
    ("glipizide / metformin 5/500", ["glipizide", "metformin"]),
    ("glipizide/metformin 2.5-500mg", ["glipizide", "metformin"]),
    ("sitagliptin and metformin", ["sitagliptin", "metformin"]),
    ("sitagliptin + metformin ER", ["sitagliptin", "metformin"]),
    ("amoxicillin & clavulanate", ["amoxicillin", "clavulanate"]),
    ("metformin w/ glyburide", ["metformin", "glyburide"]),
    ("metformin 500 mg po bid with meals", ["metformin"]),
    ("Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet", ["amoxicillin", "clavulanate"]),
    ("Acetaminophen 21.7 MG/ML / Dextromethorphan Hydrobromide 1 MG/ML / doxylamine succinate "
     "0.417 MG/ML Oral Solution", ["acetaminophen", "dextromethorphan", "doxylamine"]),
    ("24 HR Donepezil hydrochloride 10 MG / Memantine hydrochloride 28 MG Extended Release Oral "
     "Capsule", ["donepezil", "memantine"]),
    ("TMP-SMX DS", ["sulfamethoxazole", "trimethoprim ds"]),
    # a slash inside a strength does not split
    ("cyanocobalamin 1 mg/mL", ["cyanocobalamin"]),
    ("Janumet 50-1000", ["janumet"]),
    # nothing left
    ("10 mg/5 mL syrup", []),
    ("", []),
]


@pytest.mark.parametrize(("text", "expected"), COMPONENT_CASES)
def test_components(text: str, expected: list[str]) -> None:
    assert components(text) == expected


def test_brand_hint_is_kept_apart() -> None:
    p = parse("Colchicine 0.6 MG [Colcrys]")
    assert [c.base for c in p.components] == ["colchicine"]
    assert p.hints == ("colcrys",)
    p = parse("Carbamazepine[Tegretol]")
    assert [c.base for c in p.components] == ["carbamazepine"]
    assert p.hints == ("tegretol",)
    p = parse("24 HR metoprolol succinate 100 MG Extended Release Oral Tablet [Toprol]")
    assert [c.base for c in p.components] == ["metoprolol"]
    assert p.hints == ("toprol",)


def test_salt_form_kept_next_to_base() -> None:
    (comp,) = parse("METFORMIN HCL 500MG TAB").components
    (piece,) = comp.pieces
    assert (piece.text, piece.base) == ("metformin hcl", "metformin")


def test_commas_are_weak_separators_inside_a_component() -> None:
    p = parse("insulin human, isophane 70 UNT/ML / Regular Insulin, Human 30 UNT/ML")
    assert [[x.text for x in c.pieces] for c in p.components] == [
        ["insulin human", "isophane"],
        ["insulin", "human"],
    ]


def test_candidates_most_specific_first_without_repeats() -> None:
    got = [(c.text, c.kind, c.component) for c in candidates("glipizide HCl / metformin [Foo]")]
    assert got == [
        ("glipizide hcl / metformin", "whole", None),
        ("glipizide hcl", "component", 0),
        ("glipizide", "base", 0),
        ("metformin", "component", 1),
        ("foo", "hint", None),
    ]


def test_expansions_are_recorded() -> None:
    assert parse("MTX 2.5 mg").expansions == ("methotrexate",)
    assert parse("methotrexate 2.5 mg").expansions == ()
    applied: list[str] = []
    assert expand_abbreviations("hctz and asa", applied).split() == [
        "hydrochlorothiazide", "and", "aspirin"
    ]
    assert applied == ["hydrochlorothiazide", "aspirin"]


@pytest.mark.parametrize(
    "text",
    ["pasta", "basal insulin", "mtxa", "casa", "b120", "nasal spray", "glasatin", "5-fut"],
)
def test_abbreviations_only_as_whole_words(text: str) -> None:
    folded = fold(text)
    assert expand_abbreviations(folded) == folded


def test_name_key_matches_query_normalisation() -> None:
    assert name_key("Nexium 24HR") == "nexium"
    assert name_key("5-FU") == "fluorouracil"
    assert name_key("Vitamin B12") == "cyanocobalamin"
    assert name_key("cholestyramine resin") == "cholestyramine resin"
    assert base_key("cholestyramine resin") == "cholestyramine"
    assert base_key("sodium chloride") == ""


def test_fold_is_idempotent_and_bounded() -> None:
    s = "ﬁ" * (MAX_INPUT + 500)  # a ligature expands under NFKC
    once = fold(s)
    assert len(once) <= MAX_INPUT
    assert fold(once) == once


# --------------------------------------------------------------------------- properties

_any_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300
)
_pharmacy_text = st.lists(
    st.sampled_from(
        ["metformin", "HCl", "500", "mg", "/", "ER", "[Glucophage]", "(", ")", "5-FU", ",",
         "and", "0.5", "mg/mL", "tab", "-", "&", "+", "µg", "ＭＧ", "\x00", "\u200b", "ß",
         "Ⅻ", "метформин", "二甲双胍", "ميتفورمين", "%", "24", "hr", "w/", ":"]
    ),
    max_size=40,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_any_text, _pharmacy_text))
def test_never_raises_and_is_deterministic(text: str) -> None:
    n1, c1, k1 = normalize(text), components(text), candidates(text)
    assert (n1, c1, k1) == (normalize(text), components(text), candidates(text))
    assert all(c and c == c.strip() for c in c1)
    assert all(k.text for k in k1)
    # normalising is stable: the normal form normalises to itself
    assert normalize(n1) == n1


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=5), st.integers(min_value=MAX_INPUT, max_value=20000))
def test_huge_input_is_bounded(chunk: str, size: int) -> None:
    text = (chunk * (size // len(chunk) + 1))[:size]
    assert len(fold(text)) <= MAX_INPUT
    assert len(normalize(text)) <= MAX_INPUT * 2
    components(text)


@settings(max_examples=200, deadline=None)
@given(_any_text)
def test_fold_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)
