"""The RxNav client against a real HTTP server (the emulator) on 127.0.0.1."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

import rxnav_emulator as emu
from rxnav_fixtures import (
    AttemptCounter,
    ClientFactory,
    closed_port_url,
    start_emulator,
)

from b12drugs import NLM_ATTRIBUTION
from b12drugs.errors import SourceUnavailable
from b12drugs.resolve import rxnav as rxnav_module
from b12drugs.resolve.rxnav import (
    CircuitBreaker,
    RateLimiter,
    RxNavClient,
    RxNavResponseError,
)
from b12drugs.resolve.source import AtcClass, Concept, ConceptSource, History, NdcInfo


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


# -- every endpoint, including empty and odd shapes ---------------------------------------


def test_client_is_a_concept_source(make: ClientFactory) -> None:
    assert isinstance(make(), ConceptSource)


def test_terms_of_use_are_in_the_module_docs() -> None:
    doc = rxnav_module.__doc__ or ""
    assert "20" in doc and "12-24 hours" in doc and "NLM_ATTRIBUTION" in doc
    assert "National Library of Medicine" in NLM_ATTRIBUTION


def test_version_and_properties(make: ClientFactory) -> None:
    c = make()
    assert c.data_version() == emu.VERSION
    assert c.properties("6809") == Concept("6809", "metformin", "IN")
    assert c.properties(emu.UNKNOWN) is None  # answer {}
    assert c.properties("12ab") is None  # not an RxCUI: nothing asked
    odd = c.properties(emu.ODD_SHAPES)  # rxcui as a number, name null
    assert odd == Concept(emu.ODD_SHAPES, "", "SCD")


def test_ingredients_of_products_and_ingredients(make: ClientFactory, em: emu.RxNavEmulator
                                                 ) -> None:
    c = make()
    assert [x.rxcui for x in c.ingredients(emu.METFORMIN_ER)] == ["6809"]
    assert [(x.rxcui, x.tty) for x in c.ingredients(emu.COMBO_SCD)] == [
        ("6809", "IN"), (emu.SITAGLIPTIN, "IN"), (emu.COMBO_MIN, "MIN")]
    assert c.ingredients("6809")[0].name == "metformin"
    assert c.ingredients(emu.UNKNOWN) == []  # groups without conceptProperties
    # a single conceptGroup object instead of a list, a single conceptProperties object
    assert [x.rxcui for x in c.ingredients(emu.ODD_SHAPES)] == ["6809"]
    # the tty list went out with literal '+' (RxNav has failed on %2B)
    assert any(r.query == "tty=IN+MIN+PIN" for r in em.requests if "related" in r.path)


def test_rxcui_by_name_and_by_ndc_in_every_layout(make: ClientFactory,
                                                  em: emu.RxNavEmulator) -> None:
    c = make()
    assert c.rxcuis_by_name("metformin") == ["6809"]
    assert c.rxcuis_by_name("  Metformin ") == ["6809"]
    assert c.rxcuis_by_name("no such drug") == []  # idGroup without rxnormId
    assert c.rxcuis_by_name("") == []
    ndc, rxcui = em.data.product_ndcs[0]
    assert ndc == "99999000101"
    for layout in (ndc, "99999-0001-01", "99999-001-01", "99999-0001-1"):
        assert c.rxcuis_by_ndc(layout) == [rxcui]
    assert c.rxcuis_by_ndc("99998-0001-01") == []  # obsolete: no active concept
    assert c.rxcuis_by_ndc("12-34") == []  # not an NDC: nothing asked


def test_ndc_status_with_history(make: ClientFactory) -> None:
    c = make()
    assert c.ndc_status(emu.OBSOLETE_NDC) == NdcInfo(
        emu.OBSOLETE_NDC, "OBSOLETE", None, (emu.METFORMIN_ER,))
    # ndcHistory as a single object instead of a list, activeRxcui empty
    chain = c.ndc_status(emu.OBSOLETE_NDC_CHAIN)
    assert chain is not None and chain.history_rxcuis == (emu.OBSOLETE,)
    alien = c.ndc_status(emu.ALIEN_NDC)
    assert alien is not None and alien.status == "ALIEN" and alien.history_rxcuis == ()
    unknown = c.ndc_status("99997-0000-01")
    assert unknown is not None and unknown.status == "UNKNOWN"


def test_history_statuses(make: ClientFactory) -> None:
    c = make()
    remapped = c.history(emu.REMAPPED)
    assert remapped is not None and remapped.status == "Remapped"
    assert [x.rxcui for x in remapped.remapped_to] == [emu.METFORMIN_ER]
    assert c.history(emu.OBSOLETE) == History(
        emu.OBSOLETE, "Obsolete", (), (Concept("7646", "omeprazole", "IN"),))
    active = c.history("6809")
    assert active is not None and active.status == "Active"
    unknown = c.history(emu.UNKNOWN)
    assert unknown is not None and unknown.status.lower() == "unknown"


def test_atc_classes_filter_combinations_and_repeats(make: ClientFactory) -> None:
    c = make()
    # the answer also holds an A10BD row of a combination product and a repeated row
    assert c.atc_classes("6809") == [AtcClass("A10BA", "Biguanides", "6809")]
    assert [a.class_id for a in c.atc_classes("2555")] == ["L01XA"]
    assert c.atc_classes(emu.UNKNOWN) == []  # answer {}
    assert c.atc_classes(emu.ODD_SHAPES) == []  # junk rows ignored


def test_class_members(make: ClientFactory, em: emu.RxNavEmulator) -> None:
    c = make()
    members = {x.name for x in c.class_members("L01XA")}
    assert {"cisplatin", "carboplatin", "oxaliplatin", "emulatoplatin"} <= members
    assert c.class_members("Z99ZZ") == []  # answer {}
    assert any("ttys=IN" in r.query for r in em.requests if "classMembers" in r.path)


def test_approximate_term_dedupes_and_orders(make: ClientFactory) -> None:
    c = make()
    cands = c.approximate_term("metforminn")
    assert [(x.rxcui, x.rank) for x in cands] == [("6809", 1), (emu.METFORMIN_ER, 2)]
    assert cands[0].score == pytest.approx(9.1)
    assert c.approximate_term("qqqqqqqqqq") == []  # no candidate key


def test_spelling_suggestions(make: ClientFactory) -> None:
    c = make()
    assert c.spelling_suggestions("metforminn") == ["metformin", "Metformin", "metformine"]
    assert c.spelling_suggestions("ambienn") == []  # suggestionList null


# -- defensive parsing: no JSON shape crashes a lookup -------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["idGroup", "rxnormId", "relatedGroup", "conceptGroup",
                         "conceptProperties", "rxcui", "tty", "name", "properties",
                         "ndcStatus", "status", "ndcHistory", "rxcuiStatusHistory",
                         "metaData", "derivedConcepts", "remappedConcept",
                         "rxclassDrugInfoList", "rxclassDrugInfo", "minConcept",
                         "rxclassMinConceptItem", "classId", "approximateGroup", "candidate",
                         "rank", "score", "suggestionGroup", "suggestionList", "suggestion",
                         "drugMemberGroup", "drugMember", "version"]),
        kids, max_size=5),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=_json)
def test_any_answer_shape_is_parsed_or_reported(payload: Any) -> None:
    client = RxNavClient.__new__(RxNavClient)  # parsing only: no session needed
    client._version_known = False
    client.get_json = lambda *a, **k: payload  # type: ignore[method-assign]
    calls = [
        lambda: client.properties("1"), lambda: client.ingredients("1"),
        lambda: client.rxcuis_by_name("x"), lambda: client.rxcuis_by_ndc("99999000101"),
        lambda: client.ndc_status("99999000101"), lambda: client.history("1"),
        lambda: client.atc_classes("1"), lambda: client.class_members("L01"),
        lambda: client.approximate_term("x"), lambda: client.spelling_suggestions("x"),
        lambda: client.data_version(),
    ]
    for call in calls:
        client._version_known = False
        try:
            result = call()
        except RxNavResponseError as exc:
            assert exc.path.startswith("/")
            continue
        assert result is None or isinstance(result, (list, str, Concept, NdcInfo, History))


# -- retries ---------------------------------------------------------------------------------

FAULTS = [
    pytest.param({"kind": "status", "status": 500}, id="500"),
    pytest.param({"kind": "status", "status": 503}, id="503"),
    pytest.param({"kind": "status", "status": 403}, id="403"),
    pytest.param({"kind": "status", "status": 429}, id="429"),
    pytest.param({"kind": "status", "status": 503, "retry_after": "garbage"}, id="503-bad-RA"),
    pytest.param({"kind": "truncated"}, id="truncated-json"),
    pytest.param({"kind": "invalid_json"}, id="invalid-json"),
    pytest.param({"kind": "not_object"}, id="json-not-an-object"),
    pytest.param({"kind": "reset"}, id="connection-reset"),
    pytest.param({"kind": "timeout", "delay": 0.8}, id="timeout"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_retries_recover_from_each_fault(make: ClientFactory, em: emu.RxNavEmulator,
                                         fault: dict[str, Any]) -> None:
    c = make(timeout=0.4)
    em.inject(r"/rxcui/6809/related", count=2, **fault)
    assert [x.name for x in c.ingredients("6809")] == ["metformin"]
    assert em.count(r"/rxcui/6809/related") == 3
    assert not c.breaker.is_open


def test_retry_after_is_honoured_for_429_and_403(make: ClientFactory,
                                                 em: emu.RxNavEmulator) -> None:
    c = make()
    em.inject(r"/rxcui/6809/properties", "status", 1, status=429, retry_after="1")
    em.inject(r"/rxcui/2555/properties", "status", 1, status=403, retry_after="1")
    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(c.properties, ["6809", "2555"]))
    elapsed = time.monotonic() - t0
    assert [x.name for x in got if x] == ["metformin", "cisplatin"]
    assert elapsed >= 0.95  # backoff alone is ~0.02 s
    times = [r.at for r in em.requests if r.path == "/rxcui/6809/properties.json"]
    assert len(times) == 2 and times[1] - times[0] >= 0.95


def test_retry_after_is_capped(make: ClientFactory, em: emu.RxNavEmulator) -> None:
    c = make(max_retry_after=0.2)
    em.inject(r"/properties", "status", 1, status=429, retry_after="3600")
    t0 = time.monotonic()
    assert c.properties("6809") is not None
    assert time.monotonic() - t0 < 2


def test_slow_answer_within_timeout_is_not_retried(make: ClientFactory,
                                                   em: emu.RxNavEmulator) -> None:
    c = make(timeout=1.0)
    em.inject(r"/properties", "slow", 1, delay=0.3)
    assert c.properties("6809") is not None
    assert em.count("/properties") == 1


def test_exhausted_retries_name_the_lookup(make: ClientFactory, em: emu.RxNavEmulator) -> None:
    c = make(retries=2)
    em.inject(r"/properties", "status", None, status=503)
    with pytest.raises(SourceUnavailable, match=r"HTTP 503.*/rxcui/6809/properties.json"):
        c.properties("6809")
    assert em.count("/properties") == 3


def test_client_errors_are_not_retried(make: ClientFactory, em: emu.RxNavEmulator) -> None:
    c = make()
    with pytest.raises(RxNavResponseError, match="HTTP 404"):
        c.get_json("/no/such/endpoint.json")
    assert em.count("/no/such") == 1
    assert not c.breaker.is_open


def test_failed_answers_are_not_cached(make: ClientFactory, em: emu.RxNavEmulator) -> None:
    c = make(retries=0)
    em.inject(r"/properties", "invalid_json", 1)
    with pytest.raises(RxNavResponseError, match="invalid JSON"):
        c.properties("6809")
    em.inject(r"/properties", "status", 1, status=500)
    with pytest.raises(SourceUnavailable):
        c.properties("6809")
    assert c.properties("6809") is not None  # a real request, now cached
    assert c.properties("6809") is not None
    assert em.count("/properties") == 3
    assert c.cache_info()["responses"] == 1


# -- rate limit, single flight, cache --------------------------------------------------------


def test_rate_limit_holds_in_a_concurrent_burst(make: ClientFactory,
                                                em: emu.RxNavEmulator) -> None:
    limit = 10.0
    c = make(rate_limit=limit, cache=False, max_workers=8)
    rxcuis = sorted(em.data.related)[:25]
    t0 = time.monotonic()
    results = list(c.map(c.ingredients, rxcuis))
    elapsed = time.monotonic() - t0
    assert len(results) == 25 and all(results)
    assert em.count("/related") == 25
    # measured at the server: no one-second window holds more than the limit (+1 for
    # the window's edges)
    assert em.max_in_window(1.0) <= limit + 1
    assert elapsed >= (25 - 1) / limit - 0.2


def test_rate_limiter_is_shared_per_base_url(make: ClientFactory, em: emu.RxNavEmulator) -> None:
    a, b = make(cache_name="a.sqlite"), make(cache_name="b.sqlite")
    assert a.limiter is b.limiter
    other = make(base_url=closed_port_url(), cache_name="c.sqlite")
    assert other.limiter is not a.limiter


def test_token_bucket_spacing() -> None:
    limiter = RateLimiter(50.0)
    t0 = time.monotonic()
    for _ in range(11):
        limiter.acquire()
    assert time.monotonic() - t0 >= 10 / 50 - 0.02


def test_identical_in_flight_queries_are_made_once(make: ClientFactory,
                                                   em: emu.RxNavEmulator) -> None:
    c = make(cache=False)
    em.inject(r"/rxcui/6809/related", "slow", 1, delay=0.4)
    barrier = threading.Barrier(8)

    def ask(_: int) -> list[Concept]:
        barrier.wait()
        return c.ingredients("6809")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, range(8)))
    assert all([x.rxcui for x in r] == ["6809"] for r in results)
    assert em.count(r"/rxcui/6809/related") == 1


def test_cache_persists_across_clients(make: ClientFactory, em: emu.RxNavEmulator) -> None:
    first = make(cache_name="shared.sqlite")
    assert first.ingredients(emu.METFORMIN_ER)
    assert first.atc_classes("6809")
    first.close()
    em.reset_log()
    second = make(cache_name="shared.sqlite")
    assert [x.rxcui for x in second.ingredients(emu.METFORMIN_ER)] == ["6809"]
    assert second.atc_classes("6809")[0].class_id == "A10BA"
    assert em.requests == []
    info = second.cache_info()
    assert info["responses"] == 2 and str(info["path"]).endswith("shared.sqlite")
    second.clear_cache()
    assert second.cache_info()["responses"] == 0


def test_default_cache_path_is_in_the_user_cache_dir(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = rxnav_module.default_cache_path()
    assert path.name == "rxnav.sqlite" and "b12drugs" in path.parts


def test_offline_answers_from_cache_and_reports_misses(make: ClientFactory,
                                                       em: emu.RxNavEmulator) -> None:
    online = make(cache_name="off.sqlite")
    assert online.properties("6809") is not None
    online.close()
    em.reset_log()
    offline = make(cache_name="off.sqlite", offline=True)
    assert offline.properties("6809") == Concept("6809", "metformin", "IN")
    with pytest.raises(SourceUnavailable, match=r"offline.*/rxcui/2555/properties\.json"):
        offline.properties("2555")
    assert em.requests == []


def test_offline_needs_a_cache(make: ClientFactory) -> None:
    with pytest.raises(SourceUnavailable, match="offline"):
        make(cache=False, offline=True)


# -- dead service: circuit breaker -------------------------------------------------------------


def test_dead_server_fails_fast_once_the_breaker_opens(make: ClientFactory) -> None:
    c = make(base_url=closed_port_url(), retries=2, failure_threshold=3, reset_after=60)
    attempts = AttemptCounter(c)
    for rx in ["1", "2", "3"]:
        with pytest.raises(SourceUnavailable, match="could not be reached"):
            c.properties(rx)
    assert c.breaker.is_open
    assert attempts.count == 9  # 3 lookups x (1 + 2 retries)
    t0 = time.monotonic()
    for rx in range(100, 150):
        with pytest.raises(SourceUnavailable, match="circuit open"):
            c.properties(str(rx))
    assert attempts.count == 9  # nothing more went on the wire
    assert time.monotonic() - t0 < 1


def test_open_breaker_still_answers_from_cache(make: ClientFactory,
                                               em: emu.RxNavEmulator) -> None:
    c = make(failure_threshold=1, retries=0)
    assert c.properties("6809") is not None
    em.inject(".", "status", None, status=500)
    with pytest.raises(SourceUnavailable):
        c.properties("2555")
    assert c.breaker.is_open
    assert c.properties("6809") is not None  # cached
    assert em.count("/rxcui/2555") == 1


def test_breaker_half_open_probe_closes_it() -> None:
    b = CircuitBreaker(threshold=2, reset_after=0.1)
    b.failure()
    assert b.allow()
    b.failure()
    assert b.is_open and not b.allow()
    time.sleep(0.12)
    assert b.allow()  # the probe
    assert not b.allow()  # only one probe at a time
    b.failure()  # probe failed: open again
    assert not b.allow()
    time.sleep(0.12)
    assert b.allow()
    b.success()
    assert not b.is_open and b.allow()


def test_breaker_recovers_against_the_server(make: ClientFactory, em: emu.RxNavEmulator) -> None:
    c = make(failure_threshold=2, retries=0, reset_after=0.2)
    em.inject(r"/properties", "status", 2, status=503)
    for rx in ["1", "2"]:
        with pytest.raises(SourceUnavailable):
            c.properties(rx)
    assert c.breaker.is_open
    with pytest.raises(SourceUnavailable, match="circuit open"):
        c.properties("6809")
    time.sleep(0.25)
    assert c.properties("6809") is not None
    assert not c.breaker.is_open
