"""Security and robustness: DTD/XXE/entity expansion refused, sizes bounded,
random and mutated input never raises anything but InputError, streams stay flat."""

from __future__ import annotations

import io
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from b12drugs_ncpdp import NcpdpReader, parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b12drugs.errors import InputError
from b12drugs.models import Order, PatientContext, PatientEnd, Rejection, Skip

sys.path.insert(0, str(Path(__file__).parent))
import ncpdp_helpers as h

RECORDS = (Order, PatientContext, PatientEnd, Rejection, Skip)

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE Message [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">\n'
              for i in range(1, 10))
    + "]>\n<Message><Header><MessageID>&lol9;</MessageID></Header><Body/></Message>\n"
)


def xxe(url: str) -> str:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE Message [<!ENTITY ext SYSTEM "{url}">]>\n'
            "<Message><Header><MessageID>&ext;</MessageID></Header><Body/></Message>\n")


DTD_ONLY = ('<?xml version="1.0"?>\n<!DOCTYPE Message SYSTEM "http://127.0.0.1:9/script.dtd">\n'
            + h.strip_declaration(h.message_2017071()))

PARAMETER_ENTITY = ('<?xml version="1.0"?>\n<!DOCTYPE Message [<!ENTITY % p SYSTEM '
                    '"file:///etc/passwd"> %p;]>\n<Message/>\n')


def records(data: str | bytes, reader: NcpdpReader | None = None) -> list[object]:
    raw = data.encode() if isinstance(data, str) else data
    return list((reader or NcpdpReader()).parse(io.BytesIO(raw), "t.xml"))


@pytest.fixture
def canary() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 that records every request: an XXE that
    fetched anything would show up here."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"SECRET")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/secret", hits
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, DTD_ONLY, PARAMETER_ENTITY],
                         ids=["billion-laughs", "external-dtd", "parameter-entity"])
def test_single_message_attacks_are_an_input_error(doc: str) -> None:
    with pytest.raises(InputError, match="DTD"):
        records(doc)


def test_xxe_is_refused_and_fetches_nothing(canary: tuple[str, list[str]]) -> None:
    url, hits = canary
    with pytest.raises(InputError, match="refused: the document declares a DTD"):
        records(xxe(url))
    with pytest.raises(InputError):
        records(xxe("file:///etc/passwd"))
    assert hits == []


@pytest.mark.parametrize("attack", ["laughs", "xxe", "dtd"])
def test_attack_inside_a_batch_rejects_only_that_message(
    attack: str, canary: tuple[str, list[str]]
) -> None:
    url, hits = canary
    bad = {"laughs": BILLION_LAUGHS, "xxe": xxe(url), "dtd": DTD_ONLY}[attack]
    data = h.concatenated([h.message_2017071("A"), bad, h.message_106("C")])
    recs = records(data)
    (rej,) = [r for r in recs if isinstance(r, Rejection)]
    assert "DTD" in rej.reason and rej.location.pointer == "message 2 /Message"
    doctype_line = 1 + next(n for n, t in enumerate(data.split("\n")) if t.startswith("<!DOCTYPE"))
    assert rej.location.line == doctype_line
    assert [o.id for o in recs if isinstance(o, Order)] == ["A", "C"]
    assert "lol" not in str(recs) and hits == []


def test_undeclared_entity_reference_is_a_rejection_in_a_batch() -> None:
    bad = h.message_2017071("B", description="x LOL y").replace("LOL", "&lol9;")
    data = h.container([h.message_2017071("A"), bad, h.message_2017071("C")])
    recs = records(data)
    (rej,) = [r for r in recs if isinstance(r, Rejection)]
    assert rej.location.pointer == (
        "message 2 /Message/Body/NewRx/MedicationPrescribed/DrugDescription")
    assert "undefined entity" in rej.reason
    assert [o.id for o in recs if isinstance(o, Order)] == ["A", "C"]


def test_malformed_message_in_a_partly_bad_batch() -> None:
    good = [h.message_2017071(f"G{i}") for i in range(3)]
    broken = h.message_2017071("BAD").replace("</DrugDescription>", "</DrugDescr>")
    truncated = h.message_2017071("TRUNC")[:-40]
    for layout in (h.container, h.concatenated):
        recs = records(layout([good[0], broken, good[1], good[2], truncated]))
        assert [o.id for o in recs if isinstance(o, Order)] == ["G0", "G1", "G2"]
        rejected = [r for r in recs if isinstance(r, Rejection)]
        assert [r.location.pointer.split()[1] for r in rejected] == ["2", "5"]
        assert "mismatched tag" in rejected[0].reason


def test_oversized_message_is_rejected_and_the_rest_read() -> None:
    big = h.message_2017071("BIG", sig="x" * 5000)
    data = h.container([h.message_2017071("A"), big, h.message_2017071("C")])
    recs = records(data, NcpdpReader(max_message_bytes=3000))
    (rej,) = [r for r in recs if isinstance(r, Rejection)]
    assert rej.location.pointer == "message 2 /Message" and "3000-byte limit" in rej.reason
    assert [o.id for o in recs if isinstance(o, Order)] == ["A", "C"]


def test_giant_token_is_refused_with_bounded_memory() -> None:
    data = b"<Message " + b"a" * 300_000
    with pytest.raises(InputError, match="larger than the 1000-byte"):
        records(data, NcpdpReader(max_message_bytes=1000))


def test_size_limit_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B12DRUGS_NCPDP_MAX_MESSAGE_BYTES", "500")
    recs = list(parse(io.BytesIO(h.message_2017071().encode()), "t.xml"))
    assert isinstance(recs[0], Rejection) and "500-byte" in recs[0].reason


def _check(data: bytes) -> None:
    try:
        recs = records(data)
    except InputError:
        return
    assert all(isinstance(r, RECORDS) for r in recs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data: bytes) -> None:
    _check(data)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/=\"'&;!?[]-: \nMessageBodyNewRx")),
               max_size=300))
def test_random_xmlish_text_never_crashes(text: str) -> None:
    _check(text.encode())


SEEDS = [h.message_2017071(), h.message_106(), h.container([h.message_2017071(), h.message_106()]),
         h.concatenated([h.message_2017071(), h.message_106()])]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS),
       st.lists(st.tuples(st.floats(0, 1), st.integers(0, 8),
                          st.sampled_from(["", "<", ">", "&", "<!DOCTYPE x>", "</Message>",
                                           "<Message>", "\x00", "é", "]]>", "<?xml ?>", "&#0;",
                                           "9" * 300])),
                max_size=5))
def test_mutated_messages_never_crash(seed: str, edits: list[tuple[float, int, str]]) -> None:
    data = seed
    for where, cut, insert in edits:
        pos = int(where * len(data))
        data = data[:pos] + insert + data[pos + cut:]
    _check(data.encode("utf-8", "surrogatepass"))


def _batch_stream(n: int) -> io.BytesIO:
    """``n`` messages in one container, written to an in-memory stream up front so the
    measurement below covers parsing only."""
    msgs = [
        f"<Message><Header><MessageID>M{i}</MessageID></Header><Body><NewRx><Patient>"
        f"<HumanPatient><Identification><PatientAccountNumber>P{i}</PatientAccountNumber>"
        "</Identification></HumanPatient></Patient><MedicationPrescribed><DrugDescription>"
        "metformin 500 mg tablet</DrugDescription></MedicationPrescribed></NewRx></Body></Message>"
        for i in range(n)
    ]
    return io.BytesIO(("<Messages>\n" + "\n".join(msgs) + "\n</Messages>\n").encode())


def test_ten_thousand_messages_stream_with_flat_memory() -> None:
    def peak(n: int) -> tuple[int, int]:
        stream = _batch_stream(n)
        tracemalloc.start()
        orders = 0
        for rec in NcpdpReader().parse(stream, "big.xml"):
            orders += isinstance(rec, Order)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return orders, top

    small_orders, small_peak = peak(200)
    big_orders, big_peak = peak(10_000)
    assert (small_orders, big_orders) == (200, 10_000)
    # 50x the messages must not cost more than a small constant more memory.
    assert big_peak < small_peak + 256 * 1024, (small_peak, big_peak)
    assert big_peak < 2 * 1024 * 1024


def test_many_empty_elements_are_refused_with_bounded_memory() -> None:
    """500,000 empty elements fit in 2 MB but would cost >100 MiB as nodes."""
    flood = "<X/>" * 500_000
    big = h.message_2017071("FLOOD").replace("<Header>", f"<Header>{flood}", 1)
    data = h.container([h.message_2017071("A"), big, h.message_2017071("C")])
    tracemalloc.start()
    recs = records(data)
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    (rej,) = [r for r in recs if isinstance(r, Rejection)]
    assert rej.location.pointer.startswith("message 2 /Message/Header/X")
    assert "more than 20000 elements" in rej.reason
    assert [o.id for o in recs if isinstance(o, Order)] == ["A", "C"]
    assert top < 40 * 1024 * 1024


def test_deep_nesting_is_refused_naming_the_xpath() -> None:
    deep = "<D>" * 40 + "</D>" * 40
    bad = h.message_2017071("DEEP").replace("<Header>", f"<Header>{deep}", 1)
    recs = records(h.container([bad, h.message_2017071("C")]))
    (rej,) = [r for r in recs if isinstance(r, Rejection)]
    assert rej.location.pointer == "message 1 /Message/Header" + "/D" * 31
    assert "nested more than 32 deep" in rej.reason
    assert [o.id for o in recs if isinstance(o, Order)] == ["C"]
