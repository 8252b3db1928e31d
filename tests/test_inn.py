"""International INN spellings: the normaliser, the guard, and the resolver using them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b12drugs.classify import classify
from b12drugs.knowledge import load_knowledge
from b12drugs.models import DrugQuery
from b12drugs.resolve.inn import InnIndex, fold_accents, inn_key
from b12drugs.resolve.offline import OfflineResolver

KB = load_knowledge()
RESOLVER = OfflineResolver(KB)
DATA = Path(__file__).resolve().parents[1] / "data"


def classes(text: str) -> set[str]:
    res = RESOLVER.resolve_one(DrugQuery(texts=(text,)))
    return {h.class_id for h in classify(res, KB)} if res is not None else set()


def names(text: str) -> list[str]:
    res = RESOLVER.resolve_one(DrugQuery(texts=(text,)))
    return [m.name for m in res.ingredients] if res is not None else []


@pytest.mark.parametrize(("text", "ingredient"), [
    ("doxorubicinum", "doxorubicin"),  # Latin
    ("Doxorubicini hydrochloridum", "doxorubicin"),
    ("ciclofosfamida 50 mg comprimidos", "cyclophosphamide"),  # es/pt
    ("Fenitoína sódica 100 mg cápsulas", "phenytoin"),
    ("fenobarbital 100 mg", "phenobarbital"),
    ("Metotrexato 2,5 mg", "methotrexate"),
    ("metformina 850 mg compresse rivestite", "metformin"),  # it
    ("doxorubicine", "doxorubicin"),  # fr
    ("acide ascorbique 1 g", "ascorbic acid"),
    ("Cyclophosphamid", "cyclophosphamide"),  # de
    ("cyklofosfamid", "cyclophosphamide"),  # sv/da/no
    ("Zytarabin", "cytarabine"),
    ("ácido fólico 5 mg", "folic acid"),
    ("Omeprazol 20 mg cápsulas", "omeprazole"),
    ("Colchicina 0,5 mg", "colchicine"),
    ("Estreptomicina 1 g", "streptomycin"),  # es/pt "es-" before a consonant
    ("Gencitabina", "gemcitabine"),  # pt "nc" for "mc"
    ("Doxorrubicina", "doxorubicin"),  # pt doubled r
    ("Etoposido", "etoposide"),
    ("Bussulfano", "busulfan"),
    ("Melfalano", "melphalan"),
    ("Hidroxicarbamida", "hydroxyurea"),  # the INN synonym, in Portuguese
    ("Clorambucilo", "chlorambucil"),  # es "clor-" for "chlor-"
])
def test_international_spellings_resolve(text: str, ingredient: str) -> None:
    assert names(text) == [ingredient]


def test_combination_in_another_language() -> None:
    assert set(names("metformina y sitagliptina 850/50 mg")) == {"metformin", "sitagliptin"}
    assert set(names("Metformin und Sitagliptin")) == {"metformin", "sitagliptin"}


def test_non_b12_drugs_stay_non_b12() -> None:
    for text in ("ciclosporina 100 mg", "Metoprolol", "paracetamol 1 g", "tamoxifeno 20 mg",
                 "mesalazina 500 mg", "azatioprina 50 mg", "Pentobarbital", "Espironolactona",
                 "Estradiol", "Messalazina", "Ácido 5-aminosalicílico", "Imatinibe"):
        assert classes(text) == set(), text


def test_keys_meet() -> None:
    assert inn_key("Ciclofosfamida") == inn_key("cyclophosphamide")
    assert inn_key("ácido fólico") == inn_key("folic acid")
    assert inn_key("Phenytoinum natricum") == inn_key("phenytoin")
    assert fold_accents("Fenitoína ß") == "fenitoina ss"
    assert inn_key("phenobarbital") != inn_key("pentobarbital")


def test_guard_refuses_a_key_shared_by_classes() -> None:
    index = InnIndex(
        {"fenitoin": ["phenytoin"], "phenytoin": ["phenytoin"]},
        {"fenitoin": ["phenytoin"], "phenytoin": ["phenytoin"], "madeupoline": ["madeupol"]},
        {"phenytoin": frozenset({"phenytoin"}), "madeupol": frozenset()},
    )
    assert index.get("fenitoína") == "phenytoin"
    index = InnIndex(
        {"phenytoin": ["phenytoin"]},
        {"phenytoin": ["phenytoin"], "fenytoin": ["madeupol"]},  # a non-B12 brand, same key
        {"phenytoin": frozenset({"phenytoin"}), "madeupol": frozenset()},
    )
    assert index.get("fenitoína") is None and "fenitoin" in index.refused


# ------------------------------------------------------------------ properties

def _other_names() -> list[str]:
    out = []
    with (DATA / "other_drugs.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.append(row["ingredient"])
            out += [s for s in row["synonyms"].split(";") if s]
            out += [b for b in row["brands"].split(";") if b]
    return out


OTHER = _other_names()
_SWAPS = [("ph", "f"), ("f", "ph"), ("th", "t"), ("t", "th"), ("y", "i"), ("i", "y"),
          ("c", "k"), ("k", "c"), ("c", "z"), ("z", "c"), ("e", "é"), ("a", "á"), ("i", "í"),
          ("o", "ó"), ("u", "ü"), ("ine", "ina"), ("ide", "ida"), ("ate", "ato"),
          ("ol", "ole"), ("s", "ss"), ("l", "ll")]
_ENDINGS = ["", "um", "a", "o", "e", "i", "ae", "ina", "inum", "e sódica", " natricum",
            " clorhidrato", " comprimidos", " 500 mg cápsulas"]


@st.composite
def variant(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(OTHER))
    for a, b in draw(st.lists(st.sampled_from(_SWAPS), max_size=4)):
        name = name.replace(a, b, 1) if draw(st.booleans()) else name.replace(a, b)
    name += draw(st.sampled_from(_ENDINGS))
    return name.upper() if draw(st.booleans()) else name


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variant())
def test_no_variant_turns_a_non_b12_drug_into_a_b12_one(text: str) -> None:
    assert not {c for c in classes(text) if KB.classes[c].role == "alert"}, text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_normaliser_never_crashes(text: str) -> None:
    key = inn_key(text)
    assert isinstance(key, str)
    RESOLVER.inn.get(text)
    RESOLVER.resolve_one(DrugQuery(texts=(text,))) if text.strip() else None


def test_every_other_drug_name_stays_without_a_class() -> None:
    for text in OTHER:
        for form in (text, text + "a", text + "um", fold_accents(text)):
            assert not {c for c in classes(form) if KB.classes[c].role == "alert"}, form
