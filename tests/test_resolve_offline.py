"""The offline knowledge-base resolver (b12drugs.resolve.offline) and its builtin plugin."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b12drugs.knowledge import ClassDef, KBEntry, KnowledgeBase, load_knowledge
from b12drugs.models import DrugQuery, Order, Resolution
from b12drugs.resolve.offline import (
    FuzzyMatcher,
    OfflineResolver,
    Vocabulary,
    lookup_steps,
    osa_distance,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge()


@pytest.fixture(scope="module")
def resolver(kb: KnowledgeBase) -> OfflineResolver:
    return OfflineResolver(kb)


def one(resolver: OfflineResolver, *texts: str, rxcuis: tuple[str, ...] = ()) -> Resolution | None:
    q = DrugQuery(texts=texts, rxcuis=rxcuis)
    return resolver.resolve([q]).get(q)


def classes_of(kb: KnowledgeBase, res: Resolution | None) -> set[str]:
    if res is None:
        return set()
    return {
        c.class_id for m in res.ingredients for c in kb.classes_for_ingredient(m.name, m.rxcui)
    }


# ----------------------------------------------------------------------- real-world text

CASES: list[tuple[str, set[str]]] = [
    ("METFORMIN HCL 500MG TAB", {"metformin"}),
    ("Metformin ER 750 mg 24 hr tablet", {"metformin"}),
    ("glipizide / metformin 5/500", {"metformin"}),
    ("glyburide-metformin 5-500 mg", {"metformin"}),
    ("sitagliptin and metformin", {"metformin"}),
    ("Janumet 50-1000", {"metformin"}),
    ("Glucophage XR 500mg", {"metformin"}),
    ("omeprazole DR 20 mg cap", {"proton_pump_inhibitors"}),
    ("Nexium", {"proton_pump_inhibitors"}),
    ("Nexium 24HR 20 mg", {"proton_pump_inhibitors"}),
    ("pantoprazole sodium 40mg EC", {"proton_pump_inhibitors"}),
    ("esomeprazole magnesium 40 mg capsule, delayed release", {"proton_pump_inhibitors"}),
    ("lansoprazole 15 mg ODT", {"proton_pump_inhibitors"}),
    ("famotidine 20mg", {"h2_receptor_antagonists"}),
    ("cimetidine 400 mg", {"h2_receptor_antagonists"}),
    ("gentamicin sulfate 40 mg/mL inj", {"aminoglycosides"}),
    ("neomycin 500 mg tab", {"aminoglycosides"}),
    ("phenytoin sodium ER 100 mg", {"phenytoin"}),
    ("Dilantin", {"phenytoin"}),
    ("phenobarbital 30mg", {"phenobarbital"}),
    ("primidone", {"phenobarbital"}),
    ("aminosalicylic acid granules", {"aminosalicylic_acid"}),
    ("Paser", {"aminosalicylic_acid"}),
    ("PAS granules 4 g", {"aminosalicylic_acid"}),
    ("nitrous oxide gas", {"nitrous_oxide"}),
    ("N2O 50% inhalation gas", {"nitrous_oxide"}),
    ("colchicine 0.6 mg", {"colchicine"}),
    ("Colchicine 0.6 MG [Colcrys]", {"colchicine"}),
    ("cholestyramine powder", {"bile_acid_sequestrants"}),
    ("methotrexate 2.5mg", {"cytostatics"}),
    ("MTX", {"cytostatics"}),
    ("5-FU", {"cytostatics"}),
    ("6-MP 50 mg", {"cytostatics"}),
    ("ARA-C", {"cytostatics"}),
    ("cisplatin", {"cytostatics"}),
    ("paclitaxel", {"cytostatics"}),
    ("oxaliplatin", {"cytostatics"}),
    ("pemetrexed disodium 500 mg vial", {"cytostatics"}),
    ("Cyanocobalamin 1 MG/ML Injectable Solution", {"b12_therapy"}),
    ("B12 1000 mcg", {"b12_therapy"}),
    ("Leucovorin 100 MG Injection", {"folate"}),
    ("leucovorin calcium 25 mg", {"folate"}),
    # small misspellings (as approximate matches, or as synonyms when the KB lists them)
    ("metformine", {"metformin"}),
    ("omeprazol", {"proton_pump_inhibitors"}),
    ("pantoprazol", {"proton_pump_inhibitors"}),
    ("colchicin", {"colchicine"}),
    ("metforman 500 mg", {"metformin"}),
    ("methotrexat", {"cytostatics"}),
    ("phenobarbitol", {"phenobarbital"}),
    ("gentamycin 80 mg", {"aminoglycosides"}),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_resolves_pharmacy_text(
    resolver: OfflineResolver, kb: KnowledgeBase, text: str, expected: set[str]
) -> None:
    res = one(resolver, text)
    assert res is not None and res.resolved, f"{text!r} not resolved"
    assert classes_of(kb, res) == expected
    for m in res.ingredients:
        assert m.source == "knowledge-base"
        assert m.matched_text
        assert 0.85 <= m.confidence <= 1.0
        assert m.method in {"exact_name", "synonym", "brand", "approximate"}
    assert not [n for n in res.notices if n.kind == "unresolved"]


@pytest.mark.parametrize(
    ("text", "names", "method"),
    [
        ("glipizide / metformin 5/500", {"glipizide", "metformin"}, "exact_name"),
        ("sitagliptin and metformin", {"sitagliptin", "metformin"}, "exact_name"),
        ("Nexium", {"esomeprazole"}, "brand"),
        ("MTX", {"methotrexate"}, "synonym"),
        ("5-FU", {"fluorouracil"}, "synonym"),
        ("colchicene", {"colchicine"}, "approximate"),
        ("colchicin", {"colchicine"}, "synonym"),  # the German INN spelling
        ("METFORMIN HCL 500MG TAB", {"metformin"}, "exact_name"),
    ],
)
def test_methods_and_ingredients(
    resolver: OfflineResolver, text: str, names: set[str], method: str
) -> None:
    res = one(resolver, text)
    assert res is not None
    assert {m.name for m in res.ingredients} == names
    assert {m.method for m in res.ingredients} == {method}


def test_approximate_match_is_announced(resolver: OfflineResolver) -> None:
    res = one(resolver, "colchicene 0.6 mg")
    assert res is not None
    (m,) = res.ingredients
    assert m.method == "approximate" and m.score is not None and m.confidence < 0.96
    assert m.detail and "colchicine" in m.detail
    (n,) = res.notices
    assert n.kind == "approximate" and "colchicene" in n.message and "colchicine" in n.message


# ----------------------------------------------------------------------- false friends

FALSE_FRIENDS = [
    "metoprolol",
    "metoprolol succinate ER 50 mg",
    "Toprol XL",
    "phentermine 37.5 mg",
    "mesalamine 1.2 g DR tab",
    "5-ASA",
    "5-aminosalicylic acid",
    "aspirin 81 mg EC",
    "ASA 81",
    "acetylsalicylic acid",
    "sulfasalazine",
    "azithromycin 250 mg",
    "vancomycin 125 mg cap",
    "clarithromycin",
    "erythromycin",
    "tamoxifen 20 mg",
    "leuprolide acetate 22.5 mg",
    "anastrozole",
    "cyclosporine",
    "azathioprine",
    "imatinib",
    "pentobarbital",
    "cinnarizine",
    "carbamazepine",
    "metolazone",
    "metronidazole",
    "mercaptamine",
    "nizatidin",  # too short for an approximate read as any look-alike but nizatidine
    "tizanidine",
    "prednisone",
    "methylprednisolone",
    "fenobaritol",  # a misspelling that starts differently is refused, not guessed
]


@pytest.mark.parametrize("text", FALSE_FRIENDS)
def test_false_friends_never_reach_a_b12_class(
    resolver: OfflineResolver, kb: KnowledgeBase, text: str
) -> None:
    got = classes_of(kb, one(resolver, text))
    if text == "nizatidin":
        assert got <= {"h2_receptor_antagonists"}
    else:
        assert not got, f"{text!r} resolved to {got}"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("metoprolol tartrate 25 mg", "metoprolol"),
        ("phentermine", "phentermine"),
        ("mesalamine", "mesalamine"),
        ("5-ASA 800mg", "mesalamine"),
        ("aspirin", "aspirin"),
        ("ASA", "aspirin"),
        ("azithromycin", "azithromycin"),
        ("vancomycin", "vancomycin"),
        ("tamoxifen", "tamoxifen"),
        ("leuprolide", "leuprolide"),
    ],
)
def test_false_friends_resolve_to_the_right_other_drug(
    resolver: OfflineResolver, text: str, name: str
) -> None:
    res = one(resolver, text)
    assert res is not None and res.resolved
    assert [m.name for m in res.ingredients] == [name]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("albuterol inh", ["albuterol"]),  # "inh" (isoniazid) only as the whole text
        ("INH 300 mg", ["isoniazid"]),
        ("VP-16 100 mg IV", ["etoposide"]),
        ("ethinyl estradiol / norethindrone", ["ethinyl estradiol", "norethindrone"]),
    ],
)
def test_short_codes_match_only_a_whole_piece(
    resolver: OfflineResolver, text: str, names: list[str]
) -> None:
    res = one(resolver, text)
    assert res is not None and [m.name for m in res.ingredients] == names


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ("ferrous gluconate 324 mg", "ferrous sulfate"),
        ("mycophenolate sodium 360 mg", "mycophenolate mofetil"),
        ("aluminum hydroxide", "magnesium hydroxide"),
    ],
)
def test_salt_free_forms_do_not_pick_a_sibling_salt(
    resolver: OfflineResolver, text: str, wrong: str
) -> None:
    res = one(resolver, text)
    assert res is None or wrong not in {m.name for m in res.ingredients}


def test_known_other_drug_is_checked_nothing_found(
    resolver: OfflineResolver, kb: KnowledgeBase
) -> None:
    res = one(resolver, "lisinopril 10 mg tab")
    assert res is not None and res.resolved
    assert [m.name for m in res.ingredients] == ["lisinopril"]
    assert classes_of(kb, res) == set()
    assert res.resolver == "knowledge-base" and res.data_version == kb.version


def test_every_knowledge_base_name_resolves_to_its_ingredient(
    resolver: OfflineResolver, kb: KnowledgeBase
) -> None:
    """Names, synonyms and brands survive normalisation: the KB is reachable by text."""
    failures = []
    for e in kb.entries:
        for name in (e.ingredient, *e.synonyms, *e.brands):
            res = one(resolver, name)
            if res is None or e.ingredient not in {m.name for m in res.ingredients}:
                failures.append((name, e.ingredient))
    assert failures == []


def test_other_drug_names_never_bring_a_b12_class(
    resolver: OfflineResolver, kb: KnowledgeBase
) -> None:
    """The generic names and synonyms of other_drugs.csv resolve to unclassed drugs only."""
    leaks = []
    for e in kb.entries:
        if e.class_id is None:
            for name in (e.ingredient, *e.synonyms):
                got = classes_of(kb, one(resolver, name))
                if got:
                    leaks.append((name, got))
    assert leaks == []


# ----------------------------------------------------------------------- codes, misses, partials


def test_rxcui_in_kb(resolver: OfflineResolver, kb: KnowledgeBase) -> None:
    # 6809 metformin: /work/shared/reference/verified_rxcui.csv
    assert kb.by_rxcui.get("6809")
    res = one(resolver, "something else entirely", rxcuis=("6809",))
    assert res is not None
    (m,) = res.ingredients
    assert (m.name, m.rxcui, m.method, m.confidence) == ("metformin", "6809", "rxcui", 1.0)


def test_unknown_rxcui_falls_back_to_its_text(resolver: OfflineResolver) -> None:
    # 860975: a clinical-drug code from the Synthea corpus, not an ingredient code
    res = one(
        resolver,
        "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
        rxcuis=("860975",),
    )
    assert res is not None
    assert [(m.name, m.method) for m in res.ingredients] == [("metformin", "exact_name")]


def test_unmatched_query_is_left_out_for_the_next_resolver(resolver: OfflineResolver) -> None:
    qs = [
        DrugQuery(texts=("zzqx 10 mg tablet",)),
        DrugQuery(rxcuis=("99999999",)),
        DrugQuery(ndcs=("00093101001",)),
        DrugQuery(),
        DrugQuery(texts=("10 mg/5 mL syrup",)),
        DrugQuery(texts=("metformin",)),
    ]
    got = resolver.resolve(qs)
    assert list(got) == [qs[-1]]


def test_partial_combination_names_the_unknown_component(
    resolver: OfflineResolver, kb: KnowledgeBase
) -> None:
    res = one(resolver, "zzqxumab 5 mg / metformin 500 mg tablet")
    assert res is not None and res.resolved
    assert [m.name for m in res.ingredients] == ["metformin"]
    (n,) = [n for n in res.notices if n.kind == "unresolved"]
    assert "zzqxumab" in n.message and "not recognised" in n.message


def test_later_text_preferred_when_it_resolves_completely(resolver: OfflineResolver) -> None:
    res = one(resolver, "zzqx / metformin", "glipizide / metformin")
    assert res is not None
    assert {m.name for m in res.ingredients} == {"glipizide", "metformin"}
    assert not res.notices


def test_first_text_that_resolves_wins(resolver: OfflineResolver) -> None:
    res = one(resolver, "zzqx unknown", "Nexium 40 mg")
    assert res is not None and [m.name for m in res.ingredients] == ["esomeprazole"]


def test_bracketed_brand_rescues_an_unknown_generic_spelling(resolver: OfflineResolver) -> None:
    res = one(resolver, "zzqx 0.6 MG [Colcrys]")
    assert res is not None and [m.name for m in res.ingredients] == ["colchicine"]
    assert not res.notices


def test_text_cache_shared_across_queries(kb: KnowledgeBase) -> None:
    r = OfflineResolver(kb)
    a = DrugQuery(texts=("Metformin 500 mg",), rxcuis=("1",))
    b = DrugQuery(texts=("METFORMIN  500 MG",), rxcuis=("2",))
    out = r.resolve([a, b, a])
    assert out[a].ingredients == out[b].ingredients
    info = r.cache_info()
    assert (info.misses, info.hits) == (1, 1)


# ----------------------------------------------------------------------- explain / lookup


def test_lookup_steps_text(kb: KnowledgeBase) -> None:
    steps = lookup_steps(kb, "pantoprazol sodium 40 mg")
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    assert all(set(s) == {"step", "method", "input", "result"} for s in steps)
    methods = [s["method"] for s in steps]
    assert methods[0] == "normalize" and methods[-1] == "result"
    assert "proton_pump_inhibitors" in steps[-1]["result"]


def test_lookup_steps_code_and_miss(kb: KnowledgeBase) -> None:
    steps = lookup_steps(kb, "6809")
    assert steps[0]["method"] == "rxcui" and steps[0]["result"] == "metformin"
    steps = lookup_steps(kb, "00093-1010-01")
    assert steps[0]["method"] == "ndc"
    assert "passed on" in steps[-1]["result"]
    steps = lookup_steps(kb, "zzqx")
    assert steps[-1]["method"] == "result" and "passed on" in steps[-1]["result"]


# ----------------------------------------------------------------------- Synthea corpus


def _synthea() -> list[tuple[str, str]]:
    with (DATA / "resolve_synthea_displays.csv").open(newline="", encoding="utf-8") as fh:
        return [(r["rxcui"], r["display"]) for r in csv.DictReader(fh)]


#: Displays the offline resolver is not expected to resolve (none at present).
SYNTHEA_EXPECTED_UNRESOLVED: set[str] = set()

SYNTHEA_CLASSES = {
    "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet": {"metformin"},
    "Cisplatin 50 MG Injection": {"cytostatics"},
    "PACLitaxel 100 MG Injection": {"cytostatics"},
    "1 ML DOCEtaxel 20 MG/ML Injection": {"cytostatics"},
    "10 ML oxaliplatin 5 MG/ML Injection": {"cytostatics"},
    "Etoposide 100 MG Injection": {"cytostatics"},
    "Methotrexate 10 MG Oral Tablet": {"cytostatics"},
    "Colchicine 0.6 MG [Colcrys]": {"colchicine"},
    "Leucovorin 100 MG Injection": {"folate"},
    "Vitamin B 12 5 MG/ML Injectable Solution": {"b12_therapy"},
    "0.25 ML Leuprolide Acetate 30 MG/ML Prefilled Syringe": set(),
    "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet [Toprol]": set(),
    "cycloSPORINE 50 MG Oral Capsule": set(),
    "Camila 28 Day Pack": set(),
}


def test_every_synthea_display_resolves(resolver: OfflineResolver, kb: KnowledgeBase) -> None:
    rows = _synthea()
    assert len(rows) >= 60
    missing, partial = [], []
    for code, display in rows:
        res = one(resolver, display, rxcuis=(code,))
        if res is None:
            missing.append(display)
        elif any(n.kind == "unresolved" for n in res.notices):
            partial.append(display)
    assert set(missing) == SYNTHEA_EXPECTED_UNRESOLVED
    assert partial == []


@pytest.mark.parametrize(("display", "expected"), sorted(SYNTHEA_CLASSES.items()))
def test_synthea_classes(
    resolver: OfflineResolver, kb: KnowledgeBase, display: str, expected: set[str]
) -> None:
    res = one(resolver, display)
    assert res is not None
    assert classes_of(kb, res) == expected


def test_cyanocobalamin_synthea_display(resolver: OfflineResolver, kb: KnowledgeBase) -> None:
    res = one(resolver, "Cyanocobalamin 1 MG/ML Injectable Solution")
    assert classes_of(kb, res) == {"b12_therapy"}


# ----------------------------------------------------------------------- fuzzy rules, small KB


def _mini_kb(*entries: tuple[str | None, str]) -> KnowledgeBase:
    classes = {
        cid: ClassDef(class_id=cid, label=cid, role="alert", default_severity="info")
        for cid in {c for c, _ in entries if c}
    }
    return KnowledgeBase(
        classes, [KBEntry(class_id=c, ingredient=n) for c, n in entries], "mini"
    )


def test_fuzzy_refuses_ties_between_different_drugs() -> None:
    kb = _mini_kb(("a", "abcdefgh"), (None, "abcdefgi"))
    r = OfflineResolver(kb)
    assert r.resolve([DrugQuery(texts=("abcdefgx",))]) == {}


def test_fuzzy_refuses_a_classed_drug_near_a_known_other_drug() -> None:
    # "abcdefghij" is 1 edit from the classed drug and 3 from the other one: accepted.
    kb = _mini_kb(("a", "abcdefghik"), (None, "abcdefgzzz"))
    r = OfflineResolver(kb)
    res = r.resolve([DrugQuery(texts=("abcdefghij",))])
    assert [m.name for v in res.values() for m in v.ingredients] == ["abcdefghik"]
    # 1 edit from the classed drug but only 2 from the other one (one edit more than the
    # best): refused, as "celebyx" between Cerebyx and Celebrex.
    kb = _mini_kb(("a", "abcdefghik"), (None, "abcdefghzz"))
    r = OfflineResolver(kb)
    assert r.resolve([DrugQuery(texts=("abcdefghij",))]) == {}
    # At 14+ letters two edits are allowed, the other drug is within reach: refused,
    # even though the classed drug is closer.
    kb = _mini_kb(("a", "abcdefghijklmnop"), (None, "abcdefghijklmnzz"))
    r = OfflineResolver(kb)
    assert r.resolve([DrugQuery(texts=("abcdefghijklmnoq",))]) == {}


def test_fuzzy_first_letter_and_length_rules() -> None:
    kb = _mini_kb(("a", "phenobarbital"), ("a", "metformin"))
    r = OfflineResolver(kb)
    assert r.resolve([DrugQuery(texts=("fhenobarbital",))]) == {}  # first letter differs
    assert r.resolve([DrugQuery(texts=("pentobarbital",))]) == {}  # 2 edits at 13 letters
    assert r.resolve([DrugQuery(texts=("metfrmn",))]) == {}  # 2 edits
    res = r.resolve([DrugQuery(texts=("metfromin",))])  # a swap is one edit
    assert [m.method for v in res.values() for m in v.ingredients] == ["approximate"]
    kb = _mini_kb(("a", "abcdef"))
    assert OfflineResolver(kb).resolve([DrugQuery(texts=("abcdeg",))]) == {}  # too short


def test_fuzzy_matcher_reasons() -> None:
    kb = _mini_kb(("a", "metformin"))
    fm = FuzzyMatcher(Vocabulary(kb), frozenset({"metformin"}))
    assert fm.match("metformim").key == "metformin"
    assert "too short" in fm.match("metf").reason
    assert "no known name" in fm.match("zzzzzzzzz").reason


def _osa_reference(a: str, b: str) -> int:
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


@settings(max_examples=300, deadline=None)
@given(st.text("abcde", max_size=9), st.text("abcde", max_size=9), st.integers(0, 4))
def test_osa_distance_matches_reference(a: str, b: str, limit: int) -> None:
    ref = _osa_reference(a, b)
    assert osa_distance(a, b, limit) == (ref if ref <= limit else limit + 1)


# ----------------------------------------------------------------------- robustness


_texts = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200),
    st.lists(
        st.sampled_from(
            ["metformin", "metformine", "HCl", "500", "mg", "/", "ER", "[Glucophage]", "5-FU",
             ",", "and", "Nexium", "(", "]", "\x00", "метформин", "二甲双胍", "ASA", "5-ASA",
             "phenobarbitol", "&", "+", "zzqx"]
        ),
        max_size=30,
    ).map(" ".join),
)


@pytest.fixture(scope="module")
def second_resolver(kb: KnowledgeBase) -> OfflineResolver:
    return OfflineResolver(kb, cache_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(_texts, min_size=1, max_size=3))
def test_resolve_never_raises_and_is_deterministic(
    resolver: OfflineResolver, second_resolver: OfflineResolver, texts: list[str]
) -> None:
    q = DrugQuery(texts=tuple(t[:2000] for t in texts))
    first = resolver.resolve([q])
    assert first == second_resolver.resolve([q]) == resolver.resolve([q])
    for res in first.values():
        assert res.resolved and res.ingredients


def test_huge_text_is_bounded(resolver: OfflineResolver) -> None:
    q = DrugQuery(texts=(("metformin / zzqx " * 200)[:2000],))
    res = resolver.resolve([q])[q]
    assert [m.name for m in res.ingredients] == ["metformin"]
    q = DrugQuery(texts=("metformin " + "x" * 100_000,))  # cut to MAX_INPUT, not fatal
    assert [m.name for m in resolver.resolve([q])[q].ingredients] == ["metformin"]


def test_approximate_lookups_per_text_are_bounded(kb: KnowledgeBase) -> None:
    from b12drugs.resolve.offline import MAX_FUZZY_PER_TEXT

    words = [f"zzq{chr(97 + i)}xumabol" for i in range(20)]
    steps = lookup_steps(kb, " / ".join(words))
    tried = [s for s in steps if s["method"] == "approximate"]
    assert len([s for s in tried if "not tried" not in s["result"]]) == MAX_FUZZY_PER_TEXT
    assert any("not tried" in s["result"] for s in tried)
    steps = lookup_steps(kb, "z" * 60)
    assert not [s for s in steps if s["method"] == "approximate"]


# ----------------------------------------------------------------------- plugin and engine


def test_builtin_plugin_registers_the_resolver(kb: KnowledgeBase) -> None:
    from b12drugs.config import Config
    from b12drugs.plugins import PluginManager
    from b12drugs.resolve import kb_plugin as kb_resolver

    pm = PluginManager(strict=True, entry_points=False)
    (rec,) = [r for r in pm.hooks.resolvers() if r.name == "knowledge-base"]
    assert rec.order == 100
    fn = rec.factory(Config())
    assert fn is not None
    q = DrugQuery(texts=("Nexium",))
    assert [m.name for m in fn([q])[q].ingredients] == ["esomeprazole"]
    extra = KBEntry(class_id="metformin", ingredient="zzqx-formin", brands=("Zzqxphage",))
    merged = KnowledgeBase(kb.classes, [*kb.entries, extra], "merged")
    fn2 = kb_resolver.make_resolver(Config(), merged)
    q2 = DrugQuery(texts=("Zzqxphage 500 mg",))
    assert [m.name for m in fn2([q2])[q2].ingredients] == ["zzqx-formin"]


def test_engine_end_to_end() -> None:
    from b12drugs.engines import screen

    report = screen(
        [
            Order(id="rx1", patient_id="p1", text="METFORMIN HCL 500MG TAB", status="active"),
            Order(id="rx2", patient_id="p1", text="zzqx 10 mg", status="active"),
            Order(id="rx3", patient_id="p1", text="metoprolol 25 mg", status="active"),
        ]
    )
    assert [a.class_id for a in report.alerts] == ["metformin"]
    assert report.alerts[0].orders == ("rx1",)
    unresolved = [n for n in report.notices if n.kind == "unresolved"]
    assert [n.order_id for n in unresolved] == ["rx2"]
