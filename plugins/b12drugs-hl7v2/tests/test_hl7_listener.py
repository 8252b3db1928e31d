"""The MLLP listener with real TCP sockets on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hl7
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from b12drugs_hl7v2.client import MLLPClient, send_messages
from b12drugs_hl7v2.listener import BackgroundListener, Listener
from b12drugs_hl7v2.mllp import frame
from hl7_helpers import DATA, config, data, message

from b12drugs import hookimpl
from b12drugs.config import Config, SinkConfig
from b12drugs.models import Report
from b12drugs.plugins import PluginManager
from b12drugs.records import AlertSink, Resolver

GOOD = data("rde_o11_v25.hl7")
BAD_ORDER = message("BAD1", body=("ORC|NW|O1", "RXE|^QD||1")).encode()


def _listener(tmp_path: Path, **kwargs: Any) -> BackgroundListener:
    kwargs.setdefault("config", config())
    kwargs.setdefault("sink_path", str(tmp_path / "alerts.jsonl"))
    return BackgroundListener(**kwargs)


def _sink_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_good_message_gets_aa_and_alerts_reach_the_jsonl_sink(tmp_path: Path) -> None:
    with _listener(tmp_path) as bg, MLLPClient(bg.host, bg.port) as client:
        ack = client.send(GOOD)
    assert ack.code == "AA"
    assert ack.control_id == "RDE0001"
    assert "1 alert(s)" in ack.text
    tree = hl7.parse(ack.raw.decode())  # python-hl7 as an independent reader of the ACK
    msh = tree.segment("MSH")
    assert str(msh[3]) == "B12DRUGS" and str(msh[5]) == "PHARMSYS"  # sender/receiver swapped
    assert str(msh[4]) == "EXAMPLE-HOSP" and str(msh[6]) == "EXAMPLE-HOSP"
    assert str(msh[9]) == "ACK^O11^ACK"
    assert str(msh[12]) == "2.5"
    assert str(tree.segment("MSA")[2]) == "RDE0001"
    (line,) = _sink_lines(tmp_path)
    assert line["class_id"] == "metformin"
    assert line["patient_id"] == "EXAMPLE-HOSP:PAT1001"
    assert line["severity"] == "warning"


def test_bad_order_gets_ae_with_err_and_the_connection_stays_usable(tmp_path: Path) -> None:
    with _listener(tmp_path) as bg, MLLPClient(bg.host, bg.port) as client:
        ack = client.send(BAD_ORDER)
        again = client.send(GOOD)
    assert ack.code == "AE"
    assert ack.control_id == "BAD1"
    assert "RXE[1]-2: no drug code or text" in ack.text
    err = hl7.parse(ack.raw.decode()).segment("ERR")
    assert str(err[2]) == "RXE^1^2"  # ERR-2 location (v2.5+)
    assert str(err[3]) == "101^Required field missing^HL70357"
    assert str(err[4]) == "E"
    assert again.code == "AA"


def test_v23_message_gets_an_err_1_style_error(tmp_path: Path) -> None:
    raw = message("OLD", version="2.3", body=("ORC|NW|O1", "RXE|^QD||1")).encode()
    with _listener(tmp_path) as bg:
        (ack,) = send_messages(bg.host, bg.port, [raw])
    err = hl7.parse(ack.raw.decode()).segment("ERR")
    assert str(err[1]) == "RXE^1^2^101&Required field missing&HL70357"
    assert str(hl7.parse(ack.raw.decode()).segment("MSH")[12]) == "2.3"


def test_malformed_and_unsupported_messages_get_ar_and_connection_stays_usable(
    tmp_path: Path,
) -> None:
    broken = b"MSH|\rPID|1||P\r"
    adt = message("ADT1", msg_type="ADT^A01").encode()
    with _listener(tmp_path) as bg, MLLPClient(bg.host, bg.port) as client:
        acks = [
            client.send(broken),
            client.send(adt),
            client.send(b"not hl7 at all"),
            client.send(GOOD),
        ]
    assert [a.code for a in acks] == ["AR", "AR", "AR", "AA"]
    assert "segment too short" in acks[0].text
    assert "ADT^A01" in acks[1].text
    assert str(hl7.parse(acks[1].raw.decode()).segment("ERR")[3]).startswith("200^")
    assert "no MSH segment" in acks[2].text
    assert acks[3].control_id == "RDE0001"


def test_oversize_message_is_rejected_and_the_connection_stays_usable(tmp_path: Path) -> None:
    big = message("BIG", body=("ORC|NW|O1", "NTE|1||" + "x" * 200_000, "RXE|^QD|^metformin|1"))
    with _listener(tmp_path, max_message_bytes=4096) as bg, MLLPClient(bg.host, bg.port) as c:
        ack = c.send(big.encode())
        again = c.send(GOOD)
    assert ack.code == "AR"
    assert ack.control_id == "BIG"
    assert "4096-byte limit" in ack.text
    assert again.code == "AA"


def test_bytes_between_frames_are_ignored(tmp_path: Path) -> None:
    with _listener(tmp_path) as bg, MLLPClient(bg.host, bg.port) as client:
        client.send_raw(b"\r\nnoise" + frame(GOOD))
        ack = client.receive()
    assert ack.code == "AA"


def test_two_connections_are_screened_concurrently(tmp_path: Path) -> None:
    """Each screening waits at a barrier for the other: passes only if both run at once."""
    barrier = threading.Barrier(2, timeout=10)
    listener_box: dict[str, Listener] = {}

    def screen(records: list[Any], source: str) -> Report:
        barrier.wait()
        return listener_box["l"]._default_screen(records, source)

    bg = _listener(tmp_path, screen=screen)
    listener_box["l"] = bg.listener
    results: dict[str, str] = {}

    def client(name: str, raw: bytes) -> None:
        with MLLPClient(bg.host, bg.port) as c:
            results[name] = c.send(raw).code

    with bg:
        threads = [
            threading.Thread(target=client, args=("a", GOOD)),
            threading.Thread(
                target=client, args=("b", data("rds_o13_v26.hl7").replace(b"\n", b"\r"))
            ),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert results == {"a": "AA", "b": "AA"}
    patients = {line["patient_id"] for line in _sink_lines(tmp_path)}
    assert patients == {"EXAMPLE-HOSP:PAT1001", "EXAMPLE-HOSP:PAT2002"}


def test_many_messages_on_one_connection_keep_order(tmp_path: Path) -> None:
    msgs = [
        message(f"M{i}", body=("ORC|NW|O1", "RXE|^QD|^lisinopril 10 mg tablet|1")).encode()
        for i in range(20)
    ]
    with _listener(tmp_path) as bg:
        acks = list(send_messages(bg.host, bg.port, msgs))
    assert [a.control_id for a in acks] == [f"M{i}" for i in range(20)]
    assert {a.code for a in acks} == {"AA"}
    assert bg.listener.stats.messages == 20


def test_idle_connection_is_closed(tmp_path: Path) -> None:
    with _listener(tmp_path, idle_timeout=0.3) as bg:
        sock = socket.create_connection((bg.host, bg.port), timeout=10)
        try:
            assert sock.recv(10) == b""  # the server closed the silent connection
        finally:
            sock.close()


class _MemorySink:
    def __init__(self) -> None:
        self.reports: list[Report] = []

    @hookimpl
    def b12drugs_alert_sinks(self) -> Iterable[AlertSink]:
        return [AlertSink("memory", "test sink", lambda options: self.reports.append)]


def test_sinks_from_config_are_looked_up_by_name(tmp_path: Path) -> None:
    manager = PluginManager(strict=True, entry_points=False)
    sink = _MemorySink()
    manager.register(sink, "memory-sink")
    cfg = Config(policy=config().policy, sinks=(SinkConfig(name="memory"),))
    with BackgroundListener(config=cfg, manager=manager) as bg:
        (ack,) = send_messages(bg.host, bg.port, [GOOD])
    assert ack.code == "AA"
    (report,) = sink.reports
    assert [a.class_id for a in report.alerts] == ["metformin"]


def test_failing_sink_gives_ae(tmp_path: Path) -> None:
    def broken(report: Report) -> None:
        raise OSError("disk full")

    with BackgroundListener(config=config(), sinks=[("broken", broken)]) as bg:
        (ack,) = send_messages(bg.host, bg.port, [GOOD])
    assert ack.code == "AE"
    assert "not delivered to sink(s) broken" in ack.text


def test_unknown_sink_is_a_config_error() -> None:
    from b12drugs.errors import ConfigError

    cfg = Config(sinks=(SinkConfig(name="no-such-sink"),))
    with pytest.raises(ConfigError, match="no-such-sink"):
        Listener(config=cfg)


def test_cli_listen_send_and_sigterm(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "b12drugs"
    sink = tmp_path / "cli-alerts.jsonl"
    cfg = tmp_path / "b12.toml"
    cfg.write_text("[policy]\nas_of = 2025-01-01\n")
    proc = subprocess.Popen(
        [str(exe), "hl7", "listen", "--port", "0", "--sink-path", str(sink), "--config", str(cfg)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        out = subprocess.run(
            [str(exe), "hl7", "send", "--port", str(port), str(DATA / "sample.hl7")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "message 1: AA RDE0001" in out.stdout
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(30) == 0
        assert "stopped: 1 message(s) (AA 1, AE 0, AR 0), 2 alert(s)" in rest
        classes = sorted(json.loads(x)["class_id"] for x in sink.read_text().splitlines())
        assert classes == ["metformin", "proton_pump_inhibitors"]
        assert "EXAMPLE-HOSP:PAT1001" not in line + rest  # no patient data in the logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_listen_refuses_a_busy_port() -> None:
    exe = Path(sys.executable).parent / "b12drugs"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        out = subprocess.run(
            [str(exe), "hl7", "listen", "--port", str(port), "--sink-path", os.devnull],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert time.monotonic() - started < 60


class _CountingResolver:
    """A resolver plugin that counts how often it is built and closed."""

    def __init__(self) -> None:
        self.built = 0
        self.closed = 0
        self.queries = 0

    @hookimpl
    def b12drugs_resolvers(self) -> Iterable[Resolver]:
        return [Resolver("counting", 10, self.factory)]

    def factory(self, config: Config) -> Any:
        self.built += 1
        outer = self

        class Fn:
            def __call__(self, queries: Any) -> dict[Any, Any]:
                outer.queries += len(queries)
                return {}

            def close(self) -> None:
                outer.closed += 1

        return Fn()


def test_resolvers_are_built_once_per_worker_and_closed_at_shutdown() -> None:
    manager = PluginManager(strict=True, entry_points=False)
    counting = _CountingResolver()
    manager.register(counting, "counting")
    msgs = [
        message(f"R{i}", body=("ORC|NW|O1", f"RXE|^QD|^drug number {i}|1")).encode()
        for i in range(5)
    ]
    with BackgroundListener(config=config(), manager=manager, sinks=[], workers=1) as bg:
        acks = list(send_messages(bg.host, bg.port, msgs))
        assert counting.closed == 0
    assert [a.code for a in acks] == ["AA"] * 5
    assert counting.built == 1
    assert counting.queries == 5  # every message's drug still went through it
    assert counting.closed == 1


def test_aa_text_reports_unrecognised_and_skipped_orders_with_a_warning(tmp_path: Path) -> None:
    """An AA must not say "screened" for a drug that was not checked: MSA-3 carries the
    engine's counts and an ERR (severity W) names the order not recognised."""
    msg = message("UNK1", body=(
        "ORC|NW|O-KNOWN", "RXE|^QD|861007^metformin hydrochloride 500 MG Oral Tablet^RXNORM|1",
        "ORC|NW|O-UNKNOWN", "RXE|^QD|^zzqxv frobnicate 10 mg tablet|1",
        "ORC|DC|O-STOPPED", "RXE|^QD|^metformin 500 mg tablet|1",
    )).encode()
    with _listener(tmp_path) as bg, MLLPClient(bg.host, bg.port) as client:
        ack = client.send(msg)
    assert ack.code == "AA"
    assert "screened 2" in ack.text and "skipped 1" in ack.text
    assert "not recognised 1 (drug not checked)" in ack.text
    tree = hl7.parse(ack.raw.decode())
    errs = [s for s in tree if str(s[0]) == "ERR"]
    assert len(errs) == 1
    assert str(errs[0][4]) == "W"
    assert "O-UNKNOWN" in str(errs[0][8]) and str(errs[0][2]).startswith("RXE")


def test_fully_recognised_message_has_no_warning(tmp_path: Path) -> None:
    with _listener(tmp_path) as bg, MLLPClient(bg.host, bg.port) as client:
        ack = client.send(GOOD)
    assert ack.code == "AA" and "screened 1, skipped 0" in ack.text
    assert b"\rERR" not in ack.raw


def test_connections_beyond_max_connections_are_closed_at_once(tmp_path: Path) -> None:
    with _listener(tmp_path, max_connections=2) as bg:
        held = [MLLPClient(bg.host, bg.port) for _ in range(2)]
        try:
            assert held[0].send(GOOD).code == "AA"  # both held connections are served
            assert held[1].send(GOOD).code == "AA"
            extra = socket.create_connection((bg.host, bg.port), timeout=10)
            try:
                assert extra.recv(10) == b""  # closed by the server without an answer
            finally:
                extra.close()
            assert bg.listener.stats.refused_connections == 1
            assert held[0].send(GOOD).code == "AA"  # the held ones still work
        finally:
            for c in held:
                c.close()
        deadline = time.monotonic() + 10
        while bg.listener._open and time.monotonic() < deadline:
            time.sleep(0.02)
        with MLLPClient(bg.host, bg.port) as again:  # slots are freed on close
            assert again.send(GOOD).code == "AA"


def test_slow_sender_is_cut_off_by_the_frame_time_limit(tmp_path: Path) -> None:
    """One byte every 0.1 s never trips the 1 s idle timeout, but the frame must be
    complete within frame_timeout."""
    with _listener(tmp_path, idle_timeout=1.0, frame_timeout=0.5) as bg:
        sock = socket.create_connection((bg.host, bg.port), timeout=10)
        started = time.monotonic()
        closed = False
        try:
            for byte in frame(GOOD):
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.1)
                if time.monotonic() - started > 5:
                    break
            if not closed:
                sock.settimeout(5)
                try:
                    closed = sock.recv(10) == b""
                except OSError:
                    closed = True
        finally:
            sock.close()
        assert closed
        assert time.monotonic() - started < 5
        assert bg.listener.stats.messages == 0
