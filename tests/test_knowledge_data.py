"""Consistency checks for the clinical knowledge base in data/.

Pure data tests: no project imports, only csv/re/pathlib. They guard the provenance
rules (every RxCUI verified, every ATC code sourced), the class boundaries (no false
friends in alert classes) and the ambiguity of names, brands and synonyms.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
VERIFIED = ROOT / "tests" / "data" / "verified_rxcui.csv"

DRUG_MAP_HEADER = [
    "class_id",
    "ingredient",
    "rxcui",
    "atc",
    "synonyms",
    "brands",
    "evidence",
    "reference",
    "rxcui_source",
    "atc_source",
    "notes",
]
CLASSES_HEADER = [
    "class_id",
    "label",
    "role",
    "default_severity",
    "evidence",
    "mechanism",
    "monitoring",
    "atc_prefixes",
    "atc_exclude",
    "long_term_days",
    "min_daily_dose_mg",
    "references",
    "exclude_routes",
    "monitoring_interval_days",
    "monitoring_reference",
]
OTHER_HEADER = [
    "ingredient", "rxcui", "atc", "synonyms", "brands", "category", "rxcui_source", "atc_source",
    "note",
]
RISK_HEADER = ["risk_factor", "system", "code", "pattern", "source"]

ALERT_CLASSES = {
    "cytostatics",
    "aminoglycosides",
    "phenytoin",
    "phenobarbital",
    "aminosalicylic_acid",
    "ascorbic_acid",
    "metformin",
    "proton_pump_inhibitors",
    "h2_receptor_antagonists",
    "colchicine",
    "nitrous_oxide",
    "bile_acid_sequestrants",
}
CONTEXT_ROLES = {"b12_therapy", "folate"}
ALL_CLASSES = ALERT_CLASSES | CONTEXT_ROLES
EVIDENCE = {"strong", "moderate", "low", "disputed"}
RISK_FACTORS = {
    "gastric_surgery",
    "atrophic_gastritis",
    "malabsorption",
    "peripheral_neuropathy",
    "neurological",
    "anemia",
    "alcohol_use_disorder",
    "vegetarian_diet",
    "pregnancy",
    "b12_deficiency",
    "pernicious_anemia",
    "megaloblastic_anemia",
}

# Documented naming caveats of the verified file (shared/reference/README.md): the source
# name differs from the ingredient name used in the knowledge base.
RXCUI_NAME_CAVEATS = {
    "1151": {"ascorbic acid"},  # named "vitamin c"
    "11248": {"cyanocobalamin"},  # RxNorm: vitamin B 12
    "2447": {"cholestyramine"},  # named "cholestyramine resin"
    "1025342": {"levomefolic acid", "levomefolate", "l-methylfolate"},
}

# Multi-ingredient products whose ingredients legitimately sit in two classes/roles
# (folic acid + cyanocobalamin; L-methylfolate + methylcobalamin). Any other name shared
# across classes is an ambiguity and fails the test.
CROSS_CLASS_COMBINATION_BRANDS = {"foltx", "folbee", "folbic", "folgard", "metanx", "cerefolin"}

SALT_WORDS = (
    "hydrochloride",
    "sodium",
    "potassium",
    "sulfate",
    "sulphate",
    "mesylate",
    "maleate",
    "tartrate",
    "succinate",
    "besylate",
    "fumarate",
    "citrate",
    "phosphate",
    "bromide",
)

ATC_CODE = re.compile(r"^[A-Z]\d{2}[A-Z]{2}\d{2}$")
ATC_PREFIX = re.compile(r"^[A-Z](?:\d{2}(?:[A-Z](?:[A-Z](?:\d{2})?)?)?)?$")
SOURCE = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{7,40}:\S")


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _split(field: str) -> list[str]:
    return [item.strip() for item in field.split(";") if item.strip()]


@pytest.fixture(scope="module")
def drug_map() -> list[dict[str, str]]:
    return _read(DATA / "drug_map.csv")[1]


@pytest.fixture(scope="module")
def classes() -> list[dict[str, str]]:
    return _read(DATA / "drug_classes.csv")[1]


@pytest.fixture(scope="module")
def other() -> list[dict[str, str]]:
    return _read(DATA / "other_drugs.csv")[1]


@pytest.fixture(scope="module")
def risk() -> list[dict[str, str]]:
    return _read(DATA / "risk_conditions.csv")[1]


@pytest.fixture(scope="module")
def verified() -> dict[str, list[dict[str, str]]]:
    by_rxcui: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in _read(VERIFIED)[1]:
        by_rxcui[row["rxcui"]].append(row)
    return by_rxcui


# ------------------------------------------------------------------ structure


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("drug_map.csv", DRUG_MAP_HEADER),
        ("drug_classes.csv", CLASSES_HEADER),
        ("other_drugs.csv", OTHER_HEADER),
        ("risk_conditions.csv", RISK_HEADER),
    ],
)
def test_headers_exact(name: str, header: list[str]) -> None:
    fieldnames, rows = _read(DATA / name)
    assert fieldnames == header
    assert rows, f"{name} is empty"
    for i, row in enumerate(rows, start=2):
        assert None not in row and all(v is not None for v in row.values()), (
            f"{name}:{i}: wrong field count"
        )


def test_verified_copy_matches_shared_header() -> None:
    fieldnames, rows = _read(VERIFIED)
    assert fieldnames == ["rxcui", "name", "tty", "group", "evidence_repo", "evidence_path"]
    assert len(rows) >= 250


def test_class_ids_allowed(drug_map: list[dict[str, str]], classes: list[dict[str, str]]) -> None:
    assert {r["class_id"] for r in drug_map} <= ALL_CLASSES
    assert [r["class_id"] for r in classes] and {r["class_id"] for r in classes} == ALL_CLASSES
    assert len(classes) == len(ALL_CLASSES)
    assert {r["class_id"] for r in drug_map} == ALL_CLASSES, (
        "every class has at least one ingredient"
    )


def test_class_definitions(classes: list[dict[str, str]]) -> None:
    by_id = {r["class_id"]: r for r in classes}
    for cid, row in by_id.items():
        assert row["label"] and row["mechanism"] and row["monitoring"] and row["references"], cid
        assert row["atc_prefixes"], cid
        for code in _split(row["atc_prefixes"]) + _split(row["atc_exclude"]):
            assert ATC_PREFIX.match(code), f"{cid}: bad ATC prefix {code!r}"
        for field in ("long_term_days", "min_daily_dose_mg"):
            assert row[field] == "" or row[field].isdigit(), (cid, field)
        if cid in ALERT_CLASSES:
            assert row["role"] == "alert" and row["evidence"] in EVIDENCE, cid
            expected = "warning" if cid == "nitrous_oxide" else "info"
            assert row["default_severity"] == expected, cid
        else:
            assert row["role"] == "context" and row["default_severity"] == "", cid
    assert by_id["cytostatics"]["atc_prefixes"] == "L01A;L01B;L01C;L01D;L01XA"
    assert set(_split(by_id["cytostatics"]["atc_exclude"])) == {"L01E", "L01F"}
    assert by_id["metformin"]["long_term_days"] == "120"
    assert by_id["proton_pump_inhibitors"]["long_term_days"] == "365"
    assert by_id["h2_receptor_antagonists"]["long_term_days"] == "365"
    assert by_id["ascorbic_acid"]["min_daily_dose_mg"] == "1000"
    assert by_id["ascorbic_acid"]["evidence"] == "disputed"
    assert "disput" in by_id["ascorbic_acid"]["mechanism"].lower()
    assert [c for c, r in by_id.items() if r["min_daily_dose_mg"]] == ["ascorbic_acid"]
    assert "methylmalonic" in by_id["nitrous_oxide"]["monitoring"].lower()
    assert "homocysteine" in by_id["nitrous_oxide"]["monitoring"].lower()
    for cid, row in by_id.items():
        assert set(_split(row["exclude_routes"])) <= {"topical", "ophthalmic", "otic"}, cid
    assert [c for c, r in by_id.items() if r["exclude_routes"]] == [
        "cytostatics", "aminoglycosides"
    ]


def test_alert_rows_have_evidence_and_reference(drug_map: list[dict[str, str]]) -> None:
    for row in drug_map:
        if row["class_id"] in ALERT_CLASSES:
            assert row["evidence"] in EVIDENCE, row["ingredient"]
            assert row["reference"].strip(), row["ingredient"]
        else:
            assert row["evidence"] == "n/a", row["ingredient"]


def test_ingredients_lower_case_and_unique_per_class(drug_map: list[dict[str, str]]) -> None:
    seen: set[tuple[str, str]] = set()
    for row in drug_map:
        ing = row["ingredient"]
        assert ing and ing == ing.strip().lower(), ing
        key = (row["class_id"], ing)
        assert key not in seen, f"duplicate row {key}"
        seen.add(key)


def test_other_ingredients_unique(other: list[dict[str, str]]) -> None:
    names = [r["ingredient"].lower() for r in other]
    assert len(names) == len(set(names))
    assert all(r["category"].strip() for r in other)
    assert len(other) >= 400


# ------------------------------------------------------------------ provenance


def _check_rxcui(row: dict[str, str], verified: dict[str, list[dict[str, str]]]) -> None:
    rxcui, ing = row["rxcui"], row["ingredient"].lower()
    assert rxcui.isdigit(), f"{ing}: rxcui {rxcui!r}"
    candidates = verified.get(rxcui)
    assert candidates, f"{ing}: rxcui {rxcui} is not in the verified file"
    ok = [
        c
        for c in candidates
        if c["name"].lower() == ing or ing in RXCUI_NAME_CAVEATS.get(rxcui, set())
    ]
    assert ok, f"{ing}: rxcui {rxcui} belongs to {[c['name'] for c in candidates]}"
    expected = {f"{c['evidence_repo']}:{c['evidence_path']}" for c in ok}
    assert row["rxcui_source"] in expected, f"{ing}: rxcui_source {row['rxcui_source']!r}"


def test_drug_map_rxcuis_verified(drug_map: list[dict[str, str]], verified) -> None:
    filled = [r for r in drug_map if r["rxcui"]]
    assert filled
    for row in drug_map:
        if row["rxcui"]:
            _check_rxcui(row, verified)
        else:
            assert row["rxcui_source"] == "", row["ingredient"]


def test_other_rxcuis_verified(other: list[dict[str, str]], verified) -> None:
    for row in other:
        if row["rxcui"]:
            _check_rxcui(row, verified)
        else:
            assert row["rxcui_source"] == "", row["ingredient"]


def test_documented_rxcui_caveats(
    drug_map: list[dict[str, str]], other: list[dict[str, str]]
) -> None:
    rx = {(r["class_id"], r["ingredient"]): r["rxcui"] for r in drug_map}
    assert rx[("aminoglycosides", "gentamicin")] == "1596450"
    assert rx[("aminosalicylic_acid", "aminosalicylic acid")] == "7833"
    assert rx[("b12_therapy", "methylcobalamin")] == ""
    others = {r["ingredient"]: r["rxcui"] for r in other}
    assert others["mesalamine"] == "52582"
    assert others["azathioprine"] == "1256"


def test_atc_codes_sourced(drug_map: list[dict[str, str]]) -> None:
    for row in drug_map:
        if row["atc"]:
            for code in _split(row["atc"]):
                assert ATC_CODE.match(code), f"{row['ingredient']}: bad ATC {code!r}"
            assert SOURCE.match(row["atc_source"]), (
                f"{row['ingredient']}: atc_source {row['atc_source']!r}"
            )
        else:
            assert row["atc_source"] == "", row["ingredient"]
        if row["rxcui_source"]:
            assert SOURCE.match(row["rxcui_source"]), row["ingredient"]


# ------------------------------------------------------------------ clinical boundaries


def test_cytostatics_broad(drug_map: list[dict[str, str]]) -> None:
    cyto = {r["ingredient"] for r in drug_map if r["class_id"] == "cytostatics"}
    assert len(cyto) > 100
    for must in (
        "methotrexate",
        "fluorouracil",
        "capecitabine",
        "gemcitabine",
        "cytarabine",
        "cisplatin",
        "carboplatin",
        "oxaliplatin",
        "cyclophosphamide",
        "paclitaxel",
        "docetaxel",
        "etoposide",
        "doxorubicin",
        "vincristine",
        "hydroxyurea",
        "irinotecan",
        "topotecan",
        "pemetrexed",
        "mercaptopurine",
        "trabectedin",
        "eribulin",
    ):
        assert must in cyto, must


def test_cytostatic_atc_codes_are_cytotoxic(drug_map: list[dict[str, str]]) -> None:
    for row in drug_map:
        if row["class_id"] == "cytostatics":
            for code in _split(row["atc"]):
                assert not code.startswith(("L01E", "L01F", "L02")), (row["ingredient"], code)


def test_no_ingredient_both_alert_and_other(
    drug_map: list[dict[str, str]], other: list[dict[str, str]]
) -> None:
    flagged = {r["ingredient"].lower() for r in drug_map}
    benign = {r["ingredient"].lower() for r in other}
    assert not flagged & benign, sorted(flagged & benign)


def test_false_friends(drug_map: list[dict[str, str]], other: list[dict[str, str]]) -> None:
    by_class: dict[str, set[str]] = defaultdict(set)
    for row in drug_map:
        by_class[row["class_id"]].add(row["ingredient"])
        for term in _split(row["synonyms"]):
            by_class[row["class_id"]].add(term.lower())
    for name in (
        "mesalamine",
        "mesalazine",
        "aspirin",
        "acetylsalicylic acid",
        "sulfasalazine",
        "5-aminosalicylic acid",
        "5-asa",
    ):
        assert name not in by_class["aminosalicylic_acid"], name
    for name in (
        "tamoxifen",
        "leuprolide",
        "azathioprine",
        "cyclosporine",
        "imatinib",
        "rituximab",
    ):
        assert name not in by_class["cytostatics"], name
    benign = {r["ingredient"] for r in other}
    for name in (
        "metoprolol",
        "phentermine",
        "mesalamine",
        "aspirin",
        "sulfasalazine",
        "azithromycin",
        "vancomycin",
        "tamoxifen",
        "leuprolide",
        "cyclosporine",
        "azathioprine",
        "carbamazepine",
        "chloramphenicol",
        "potassium chloride",
        "ethinyl estradiol",
        "levonorgestrel",
        "norethindrone",
        "drospirenone",
        "desogestrel",
        "norgestimate",
        "etonogestrel",
    ):
        assert name in benign, name
    notes = {r["ingredient"]: r["note"].lower() for r in other}
    assert "opt-in" in notes["chloramphenicol"]
    assert "opt-in" in notes["potassium chloride"]


def test_verified_candidates_not_in_cytostatics(drug_map: list[dict[str, str]], verified) -> None:
    """Targeted / antibody / hormone rows of the verified file never sit in cytostatics."""
    cyto_rx = {r["rxcui"] for r in drug_map if r["class_id"] == "cytostatics" and r["rxcui"]}
    for rxcui, rows in verified.items():
        group = rows[0]["group"]
        if any(
            tag in group
            for tag in (
                "kinase_inhibitor",
                "monoclonal_antibody",
                "L04",
                "PARP_inhibitor",
                "proteasome_inhibitor",
            )
        ):
            assert rxcui not in cyto_rx, (rxcui, rows[0]["name"])
        if group.startswith("antineoplastic_candidate") and rxcui in cyto_rx:
            assert rows[0]["name"] == "bendamustine", rows[0]["name"]


def test_no_salt_words_in_synonyms(
    drug_map: list[dict[str, str]], other: list[dict[str, str]]
) -> None:
    for row in drug_map + other:
        for term in _split(row["synonyms"]):
            words = term.lower().split()
            assert not (len(words) > 1 and words[-1] in SALT_WORDS), (row["ingredient"], term)


# ------------------------------------------------------------------ ambiguity


def test_names_unambiguous_across_classes(
    drug_map: list[dict[str, str]], other: list[dict[str, str]]
) -> None:
    owners: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in drug_map:
        group, ing = row["class_id"], row["ingredient"].lower()
        for term in [ing, *_split(row["synonyms"]), *_split(row["brands"])]:
            owners[term.lower()].add((group, ing))
    for row in other:
        ing = row["ingredient"].lower()
        for term in [ing, *_split(row["synonyms"]), *_split(row["brands"])]:
            owners[term.lower()].add(("other_drugs", ing))
    clashes = {
        term: sorted(who)
        for term, who in owners.items()
        if len({g for g, _ in who}) > 1 and term not in CROSS_CLASS_COMBINATION_BRANDS
    }
    assert not clashes, clashes


def test_allowed_cross_class_brands_are_really_combinations(drug_map: list[dict[str, str]]) -> None:
    holders: dict[str, set[str]] = defaultdict(set)
    for row in drug_map:
        for brand in _split(row["brands"]):
            holders[brand.lower()].add(row["class_id"])
    for brand in CROSS_CLASS_COMBINATION_BRANDS:
        assert holders.get(brand, set()) <= CONTEXT_ROLES, brand


# ------------------------------------------------------------------ risk conditions


def test_risk_conditions_valid(risk: list[dict[str, str]]) -> None:
    covered = set()
    for i, row in enumerate(risk, start=2):
        assert row["risk_factor"] in RISK_FACTORS, (i, row["risk_factor"])
        assert row["system"] in {"text", "snomed", "icd10"}, (i, row["system"])
        assert row["source"].strip(), i
        if row["system"] == "text":
            assert row["pattern"] and not row["code"], i
            assert row["pattern"] == row["pattern"].lower() or "\\b" in row["pattern"], i
            re.compile(row["pattern"])
        else:
            assert row["code"] and not row["pattern"], i
            if row["system"] == "snomed":
                assert row["code"].isdigit() and row["source"].startswith("synthea corpus: "), i
            else:
                assert re.match(r"^[A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?$", row["code"]), (
                    i,
                    row["code"],
                )
                assert SOURCE.match(row["source"]), i
        covered.add(row["risk_factor"])
    assert covered == RISK_FACTORS
    text_covered = {r["risk_factor"] for r in risk if r["system"] == "text"}
    assert text_covered == RISK_FACTORS


def _matches(risk: list[dict[str, str]], text: str) -> set[str]:
    lowered = text.lower()
    return {
        r["risk_factor"] for r in risk if r["system"] == "text" and re.search(r["pattern"], lowered)
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("History of gastrectomy", {"gastric_surgery"}),
        ("Roux-en-Y gastric bypass", {"gastric_surgery"}),
        ("Bariatric surgery status", {"gastric_surgery"}),
        ("Chronic atrophic gastritis", {"atrophic_gastritis"}),
        ("Crohn's disease of small intestine", {"malabsorption"}),
        ("Coeliac disease", {"malabsorption"}),
        ("Exocrine pancreatic insufficiency", {"malabsorption"}),
        ("Neuropathy due to type 2 diabetes mellitus (disorder)", {"peripheral_neuropathy"}),
        ("Alzheimer's disease (disorder)", {"neurological"}),
        ("Subacute combined degeneration of spinal cord", {"neurological"}),
        ("Mild cognitive impairment", {"neurological"}),
        ("Anemia (disorder)", {"anemia"}),
        ("Anaemia of chronic disease", {"anemia"}),
        ("Alcoholism", {"alcohol_use_disorder"}),
        ("Alcohol dependence, uncomplicated", {"alcohol_use_disorder"}),
        ("Vegan diet", {"vegetarian_diet"}),
        ("Normal pregnancy", {"pregnancy"}),
        ("Vitamin B12 deficiency", {"b12_deficiency"}),
        ("Cobalamin deficiency", {"b12_deficiency"}),
        ("Pernicious anaemia", {"pernicious_anemia", "anemia"}),
        (
            "Vitamin B12 deficiency anemia due to intrinsic factor deficiency",
            {"b12_deficiency", "pernicious_anemia", "megaloblastic_anemia", "anemia"},
        ),
        ("Megaloblastic anemia", {"megaloblastic_anemia", "anemia"}),
        ("Macrocytic anaemia", {"megaloblastic_anemia", "anemia"}),
        ("Hypertension", set()),
        ("Non-vegetarian diet", set()),
        ("Tubal pregnancy", set()),
        ("Coeliac artery stenosis", set()),
        ("Vitamin B12 level normal", set()),
    ],
)
def test_risk_text_patterns(risk: list[dict[str, str]], text: str, expected: set[str]) -> None:
    assert _matches(risk, text) == expected


def test_synthea_codes_present_in_corpus(risk: list[dict[str, str]]) -> None:
    corpus = ROOT.parent / "shared" / "corpus"
    if not corpus.is_dir():
        pytest.skip("shared corpus not available")
    for row in risk:
        if row["system"] == "snomed":
            name = row["source"].removeprefix("synthea corpus: ")
            candidates = list(corpus.glob(f"*/{name}"))
            assert candidates, name
            assert f'"{row["code"]}"' in candidates[0].read_text(encoding="utf-8"), (
                name,
                row["code"],
            )
