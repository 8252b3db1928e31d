"""The RxNorm resolver over the RxNav client, against the emulator on 127.0.0.1."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import rxnav_emulator as emu
from rxnav_fixtures import AttemptCounter, ClientFactory, closed_port_url, start_emulator

from b12drugs.classify import classify
from b12drugs.config import Config, RxNavConfig
from b12drugs.knowledge import ClassDef, KBEntry, KnowledgeBase
from b12drugs.models import DrugQuery, Resolution
from b12drugs.resolve import rxnav_plugin
from b12drugs.resolve.rxnav import RxNavClient
from b12drugs.resolve.rxnav_resolver import ClosingResolveFn, ConceptResolver
from b12drugs.resolve.source import AtcClass, Concept, History, NdcInfo


@pytest.fixture
def em() -> Iterator[emu.RxNavEmulator]:
    server = start_emulator()
    yield server
    server.stop()


@pytest.fixture
def make(em: emu.RxNavEmulator, tmp_path: Path) -> Iterator[ClientFactory]:
    factory = ClientFactory(em.base_url, tmp_path)
    yield factory
    factory.close()


def _ingredients(res: Resolution) -> list[tuple[str, str | None]]:
    return [(i.name, i.rxcui) for i in res.ingredients]


def resolve1(client: RxNavClient, **query: tuple[str, ...]) -> Resolution:
    q = DrugQuery(**query)
    return ConceptResolver(client).resolve([q])[q]


# -- the ladder -----------------------------------------------------------------------------


def test_scd_from_the_corpus_resolves_to_metformin(make: ClientFactory) -> None:
    res = resolve1(make(), rxcuis=(emu.METFORMIN_ER,))
    assert res.resolved and res.resolver == "rxnav" and res.data_version == emu.VERSION
    [m] = res.ingredients
    assert (m.name, m.rxcui, m.method, m.confidence) == ("metformin", "6809", "rxnav", 1.0)
    assert m.atc == ("A10BA",)
    assert m.source == f"rxnav {emu.VERSION}"
    assert "860975" in (m.detail or "")


def test_remapped_rxcui_resolves_through_its_successor(make: ClientFactory) -> None:
    res = resolve1(make(), rxcuis=(emu.REMAPPED,))
    assert res.resolved and _ingredients(res) == [("metformin", "6809")]
    assert "remapped to 860975" in (res.ingredients[0].detail or "")
    assert res.ingredients[0].confidence < 1.0


@pytest.mark.parametrize(("rxcui", "expected", "atc"), [
    (emu.OBSOLETE, ("omeprazole", "7646"), ("A02BC",)),
    (emu.NOT_CURRENT, ("cisplatin", "2555"), ("L01XA",)),
])
def test_retired_rxcui_resolves_through_history_ingredients(
        make: ClientFactory, rxcui: str, expected: tuple[str, str], atc: tuple[str, ...]) -> None:
    res = resolve1(make(), rxcuis=(rxcui,))
    assert res.resolved and _ingredients(res) == [expected]
    assert res.ingredients[0].atc == atc
    assert "history" in (res.ingredients[0].detail or "")


def test_active_ndc_in_any_layout(make: ClientFactory, em: emu.RxNavEmulator) -> None:
    ndc, rxcui = em.data.product_ndcs[0]
    assert ndc == "99999000101"
    ingredient = em.data.related[rxcui][0]
    res = resolve1(make(), ndcs=("99999-001-01",))
    assert res.resolved and _ingredients(res) == [(ingredient.name, ingredient.rxcui)]
    assert res.ingredients[0].confidence == 1.0


def test_obsolete_ndcs_resolve_through_ndc_history(make: ClientFactory) -> None:
    client = make()
    res = resolve1(client, ndcs=("99998-0001-01",))
    assert res.resolved and _ingredients(res) == [("metformin", "6809")]
    assert "obsolete" in (res.ingredients[0].detail or "")
    # history points to a concept that is itself obsolete: follow its history too
    chain = resolve1(client, ndcs=(emu.OBSOLETE_NDC_CHAIN,))
    assert chain.resolved and _ingredients(chain) == [("omeprazole", "7646")]


def test_unresolvable_codes_pass_on_with_reasons(make: ClientFactory) -> None:
    client = make()
    alien = resolve1(client, ndcs=(emu.ALIEN_NDC,))
    assert not alien.resolved and "alien" in alien.notices[0].message
    unknown = resolve1(client, rxcuis=(emu.UNKNOWN,))
    assert not unknown.resolved and "unknown to RxNav" in unknown.notices[0].message
    empty = resolve1(client, rxcuis=(emu.NO_INGREDIENT,))
    assert not empty.resolved and "no ingredient" in empty.notices[0].message
    bad = resolve1(client, ndcs=("12-34",))
    assert not bad.resolved and "NDC" in bad.notices[0].message
    assert all(n.kind == "info" for r in (alien, unknown, empty, bad) for n in r.notices)


def test_codes_are_tried_in_turn(make: ClientFactory) -> None:
    res = resolve1(make(), rxcuis=(emu.UNKNOWN, emu.METFORMIN_ER), ndcs=(emu.ALIEN_NDC,))
    assert res.resolved and _ingredients(res) == [("metformin", "6809")]


def test_combination_product_gives_every_ingredient(make: ClientFactory) -> None:
    res = resolve1(make(), rxcuis=(emu.COMBO_SCD,))
    # IN concepts preferred; the MIN "metformin / sitagliptin" is not an ingredient itself
    assert _ingredients(res) == [("metformin", "6809"), ("sitagliptin", emu.SITAGLIPTIN)]


def test_pin_is_mapped_to_its_ingredient(make: ClientFactory) -> None:
    res = resolve1(make(), rxcuis=(emu.PIN_ONLY,))
    assert _ingredients(res) == [("metformin", "6809")]


def test_text_exact_then_approximate(make: ClientFactory) -> None:
    client = make()
    exact = resolve1(client, texts=("Metformin",))
    assert exact.resolved and exact.ingredients[0].method == "rxnav"
    assert exact.ingredients[0].confidence == 0.95
    approx = resolve1(client, texts=("metforminn",))
    assert approx.resolved and _ingredients(approx) == [("metformin", "6809")]
    m = approx.ingredients[0]
    assert m.method == "approximate" and m.score == pytest.approx(9.1)
    assert m.confidence < exact.ingredients[0].confidence
    assert [n.kind for n in approx.notices] == ["approximate"]


def test_ambiguous_approximate_match_is_refused(make: ClientFactory) -> None:
    res = resolve1(make(), texts=("metformin tablet",))  # two RxCUIs share rank 1
    assert not res.resolved
    assert "no confident approximate match" in res.notices[-1].message


def test_approximate_needs_a_clear_margin(make: ClientFactory) -> None:
    # rank 1 (8.0) vs rank 2 (7.9): too close with the default 10 % margin
    client = make()
    q = DrugQuery(texts=("emulatoplatn inj",))
    assert not ConceptResolver(client).resolve([q])[q].resolved
    loose = ConceptResolver(client, min_margin=0.0).resolve([q])[q]
    assert loose.resolved and _ingredients(loose) == [("emulatoplatin", emu.EMULATOPLATIN)]


def test_l01_cytotoxic_unknown_to_the_kb_is_classified_by_atc(make: ClientFactory) -> None:
    res = resolve1(make(), rxcuis=(emu.EMULATOPLATIN_SCD,))
    assert res.ingredients[0].atc == ("L01XA",)
    # a knowledge base that lists cisplatin but not this made-up platinum compound;
    # cytostatics' ATC prefixes as clinical.md gives them
    kb = KnowledgeBase(
        classes={"cytostatics": ClassDef(
            class_id="cytostatics", label="Cytostatics", role="alert",
            atc_prefixes=("L01A", "L01B", "L01C", "L01D", "L01XA", "L01XX"))},
        entries=[KBEntry(class_id="cytostatics", ingredient="cisplatin", rxcui="2555")],
        version="test",
    )
    [hit] = classify(res, kb)
    assert (hit.class_id, hit.ingredient, hit.method) == ("cytostatics", "emulatoplatin", "atc")
    # a targeted agent (L01E / L01F) is not placed in the cytostatics class
    kinase = resolve1(make(), rxcuis=("282388",))  # imatinib
    assert kinase.ingredients[0].atc == ("L01E",) and classify(kinase, kb) == ()


# -- batches: concurrency, cache, offline, dead service ---------------------------------------


def _batch(em: emu.RxNavEmulator) -> list[DrugQuery]:
    products = sorted(r for r, c in em.data.concepts.items() if c.tty == "SCD")[:30]
    queries = [DrugQuery(rxcuis=(r,)) for r in products]
    queries += [DrugQuery(ndcs=(n,)) for n, _ in em.data.product_ndcs[100:110]]
    queries += [DrugQuery(texts=("metformin",)), DrugQuery(rxcuis=(emu.REMAPPED,))]
    return queries


def test_second_run_of_a_batch_makes_no_request(make: ClientFactory,
                                                em: emu.RxNavEmulator) -> None:
    queries = _batch(em)
    first_client = make(cache_name="batch.sqlite")
    first = ConceptResolver(first_client).resolve(queries + queries[:5])  # repeats
    assert len(first) == len(queries) and all(r.resolved for r in first.values())
    counts = em.by_endpoint()
    assert counts["/rxcui/{id}/related.json"] <= len(queries) + 2
    # each ingredient's ATC classes asked once however many products share it
    ingredient_count = len({i.rxcui for r in first.values() for i in r.ingredients})
    assert counts["/rxclass/class/byRxcui.json"] == ingredient_count
    assert counts["/version.json"] == 1
    first_client.close()
    em.reset_log()
    second = ConceptResolver(make(cache_name="batch.sqlite")).resolve(queries)
    assert em.requests == []
    assert second == first


def test_batch_runs_on_the_client_workers(make: ClientFactory, em: emu.RxNavEmulator) -> None:
    client = make(cache=False, max_workers=4)
    em.inject("/related", "slow", None, delay=0.2)
    queries = [DrugQuery(rxcuis=(r,)) for r in sorted(em.data.related)[:8]]
    t0 = time.monotonic()
    out = ConceptResolver(client).resolve(queries)
    assert len(out) == 8 and all(r.resolved for r in out.values())
    assert time.monotonic() - t0 < 8 * 0.2  # 4 at a time, not one after another


def test_offline_mode_resolves_cached_drugs_and_flags_the_rest(make: ClientFactory,
                                                               em: emu.RxNavEmulator) -> None:
    known = DrugQuery(rxcuis=(emu.METFORMIN_ER,))
    ConceptResolver(make(cache_name="off.sqlite")).resolve([known])
    em.reset_log()
    offline = make(cache_name="off.sqlite", offline=True)
    new = DrugQuery(rxcuis=("1736854",))
    out = ConceptResolver(offline).resolve([known, new])
    assert out[known].resolved and _ingredients(out[known]) == [("metformin", "6809")]
    assert not out[new].resolved
    [notice] = out[new].notices
    assert notice.kind == "source_unavailable"
    assert notice.message.startswith("RxNav could not be reached: RxCUI 1736854 was not checked")
    assert "offline" in notice.message
    assert em.requests == []


def test_dead_server_degrades_with_notices_and_few_requests(make: ClientFactory) -> None:
    client = make(base_url=closed_port_url(), retries=1, failure_threshold=3, max_workers=4)
    attempts = AttemptCounter(client)
    queries = [DrugQuery(rxcuis=(str(6800 + i),), texts=(f"drug {i}",)) for i in range(200)]
    out = ConceptResolver(client).resolve(queries)
    assert len(out) == 200
    for q, res in out.items():
        assert not res.resolved and res.resolver == "rxnav"
        [notice] = res.notices
        assert notice.kind == "source_unavailable"
        assert notice.message.startswith(f"RxNav could not be reached: {q.describe()}")
    assert client.breaker.is_open
    # up to failure_threshold lookups plus those already in flight, two attempts each
    assert 3 <= attempts.count <= 2 * (3 + 4) + 1


def test_failing_atc_lookup_keeps_the_ingredient_and_says_so(make: ClientFactory,
                                                             em: emu.RxNavEmulator) -> None:
    client = make(retries=0)
    em.inject("/rxclass/class/byRxcui", "status", None, status=503)
    res = resolve1(client, rxcuis=(emu.METFORMIN_ER,))
    assert res.resolved and _ingredients(res) == [("metformin", "6809")]
    assert res.ingredients[0].atc == ()
    assert [n.kind for n in res.notices] == ["source_unavailable"]
    assert "ATC classes of metformin were not checked" in res.notices[0].message


def test_queries_without_codes_or_text_are_passed_on(make: ClientFactory,
                                                     em: emu.RxNavEmulator) -> None:
    assert ConceptResolver(make()).resolve([DrugQuery()]) == {}
    assert em.requests == []


# -- source-agnostic: any ConceptSource, without approximate matching --------------------------


class DictSource:
    """A tiny in-memory ConceptSource, like the local RxNorm index (no approximate)."""

    name = "rxnorm-index"

    def data_version(self) -> str | None:
        return "2025-01"

    def properties(self, rxcui: str) -> Concept | None:
        return None

    def ingredients(self, rxcui: str) -> list[Concept]:
        return [Concept("6809", "metformin", "IN")] if rxcui == "860975" else []

    def rxcuis_by_name(self, name: str) -> list[str]:
        return []

    def rxcuis_by_ndc(self, ndc11: str) -> list[str]:
        return []

    def ndc_status(self, ndc11: str) -> NdcInfo | None:
        return None

    def history(self, rxcui: str) -> History | None:
        return None

    def atc_classes(self, rxcui: str) -> list[AtcClass]:
        return [AtcClass("A10BA")] if rxcui == "6809" else []

    def class_members(self, class_id: str, ttys: str = "IN") -> list[Concept]:
        return []


def test_resolver_works_on_any_concept_source() -> None:
    resolver = ConceptResolver(DictSource(), label="the local RxNorm index")
    assert not resolver.approximate
    q, text = DrugQuery(rxcuis=("860975",)), DrugQuery(texts=("metforminn",))
    out = resolver.resolve([q, text])
    m = out[q].ingredients[0]
    assert (m.method, m.source, m.atc) == ("local_index", "rxnorm-index 2025-01", ("A10BA",))
    assert out[q].resolver == "rxnorm-index"
    assert not out[text].resolved


# -- the builtin plugin -------------------------------------------------------------------------


def test_plugin_is_off_by_default() -> None:
    [record] = rxnav_plugin.b12drugs_resolvers()
    assert (record.name, record.order) == ("rxnav", 300)
    assert record.factory(Config()) is None


def test_plugin_factory_resolves_when_enabled(em: emu.RxNavEmulator, tmp_path: Path) -> None:
    config = Config(rxnav=RxNavConfig(enabled=True, base_url=em.base_url,
                                      cache_path=str(tmp_path / "p.sqlite")))
    [record] = rxnav_plugin.b12drugs_resolvers()
    fn = record.factory(config)
    assert isinstance(fn, ClosingResolveFn)
    try:
        q = DrugQuery(rxcuis=(emu.METFORMIN_ER,))
        assert fn([q])[q].resolved
    finally:
        fn.close()


def test_env_url_enables_rxnav(em: emu.RxNavEmulator, monkeypatch: pytest.MonkeyPatch,
                               tmp_path: Path) -> None:
    from b12drugs.config import load_config

    monkeypatch.setenv("B12DRUGS_RXNAV_URL", em.base_url)
    config = load_config()
    assert config.rxnav.enabled and config.rxnav.base_url == em.base_url
    config = config.model_copy(update={"rxnav": config.rxnav.model_copy(
        update={"cache_path": str(tmp_path / "env.sqlite")})})
    fn = rxnav_plugin.make_resolver(config)
    assert fn is not None
    try:
        q = DrugQuery(ndcs=(emu.OBSOLETE_NDC,))
        assert fn([q])[q].resolved
    finally:
        fn.close()  # type: ignore[attr-defined]
