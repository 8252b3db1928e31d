"""Fault suite for the MLLP listener (issue 15): broken frames, idle connections that
fill the listener, shutdown with messages in flight, hostile bytes in logged fields.

Real listeners on 127.0.0.1 (in a thread, or the ``b12drugs hl7 listen`` process for
signals), real sockets, the jsonl-file sink writing real files; every loop and wait
is bounded.  Each case here failed on the listener before issue 15 was fixed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from b12drugs_hl7v2.client import MLLPClient
from b12drugs_hl7v2.listener import BackgroundListener
from b12drugs_hl7v2.mllp import frame
from hl7_helpers import config, message

from b12drugs.models import Report
from b12drugs.records import Record

START, END = b"\x0b", b"\x1c\r"


def _listener(tmp_path: Path, **kwargs: Any) -> BackgroundListener:
    kwargs.setdefault("config", config())
    kwargs.setdefault("sink_path", str(tmp_path / "alerts.jsonl"))
    return BackgroundListener(**kwargs)


def _sink_lines(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def _closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the server closed ``sock`` (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# -- 7. a start block inside an unfinished frame restarts the frame -----------------------


def test_start_block_inside_a_frame_answers_ar_for_the_partial_and_reads_the_next(
        tmp_path: Path) -> None:
    text = message("PART1").encode()
    partial = text[: text.index(b"\r") + 12]  # MSH complete, the message cut off
    good = message("NEXT1").encode()
    with _listener(tmp_path) as bg, MLLPClient(bg.host, bg.port, timeout=10) as client:
        client.send_raw(START + partial + START + good + END)
        first = client.receive()
        second = client.receive()
    assert (first.code, first.control_id) == ("AR", "PART1")
    assert "start block" in first.text
    assert (second.code, second.control_id) == ("AA", "NEXT1")
    assert "1 alert(s)" in second.text
    assert [a["class_id"] for a in _sink_lines(tmp_path)] == ["metformin"]


def test_partial_frame_without_a_control_id_gets_no_answer_and_the_next_is_read(
        tmp_path: Path) -> None:
    with _listener(tmp_path) as bg, MLLPClient(bg.host, bg.port, timeout=10) as client:
        client.send_raw(START + b"MSH|^~\\&|PH" + START + message("NEXT2").encode() + END)
        ack = client.receive()
        assert (ack.code, ack.control_id) == ("AA", "NEXT2")
        assert client.send(message("NEXT3").encode()).control_id == "NEXT3"


def test_start_blocks_split_across_reads_and_repeated(tmp_path: Path) -> None:
    good = message("NEXT4").encode()
    with _listener(tmp_path) as bg, MLLPClient(bg.host, bg.port, timeout=10) as client:
        for piece in (START, b"MSH|^~\\&|A|B|C|D|2024||RDE^O11|CUT1|P|2.5\r", START,
                      START, good[:30]):
            client.send_raw(piece)
            time.sleep(0.05)
        client.send_raw(good[30:] + END)
        acks = [client.receive(), client.receive()]
    assert [(a.code, a.control_id) for a in acks] == [("AR", "CUT1"), ("AA", "NEXT4")]


def test_oversize_frame_cut_by_a_start_block_is_answered_and_the_next_read(
        tmp_path: Path) -> None:
    head = message("BIG1").encode()
    with (_listener(tmp_path, max_message_bytes=2048) as bg,
          MLLPClient(bg.host, bg.port, timeout=10) as client):
        client.send_raw(START + head + b"NTE|1||" + b"x" * 10_000)
        client.send_raw(START + message("AFTER1").encode() + END)
        acks = [client.receive(), client.receive()]
    assert [(a.code, a.control_id) for a in acks] == [("AR", "BIG1"), ("AA", "AFTER1")]


# -- 8. idle connections cannot lock senders out ---------------------------------------


def test_silent_connections_are_closed_to_admit_a_sender(tmp_path: Path) -> None:
    with _listener(tmp_path, max_connections=4) as bg:
        silent = [socket.create_connection((bg.host, bg.port), timeout=5) for _ in range(4)]
        try:
            assert _wait(lambda: bg.listener._open == 4)
            with MLLPClient(bg.host, bg.port, timeout=10) as sender:
                assert sender.send(message("REAL1").encode()).code == "AA"
            assert sum(_closed_by_server(s, 2.0) for s in silent) >= 1
            assert bg.listener.stats.evicted_connections >= 1
        finally:
            for s in silent:
                s.close()


def test_a_connection_that_never_sent_a_byte_goes_before_one_that_did(tmp_path: Path) -> None:
    with _listener(tmp_path, max_connections=2) as bg:
        worked = MLLPClient(bg.host, bg.port, timeout=10)
        assert worked.send(message("W1").encode()).code == "AA"
        silent = socket.create_connection((bg.host, bg.port), timeout=5)
        try:
            assert _wait(lambda: bg.listener._open == 2)
            time.sleep(1.2)  # the worked connection is now the one idle longest
            with MLLPClient(bg.host, bg.port, timeout=10) as sender:
                assert sender.send(message("W2").encode()).code == "AA"
            assert _closed_by_server(silent)
            assert worked.send(message("W3").encode()).code == "AA"  # kept
        finally:
            silent.close()
            worked.close()


def test_a_connection_whose_message_is_being_screened_is_never_closed_for_a_newcomer(
        tmp_path: Path) -> None:
    holder: list[BackgroundListener] = []
    entered = [0]
    bg = _listener(tmp_path, max_connections=2, screen=_slow_screen(holder, 1.5, entered))
    holder.append(bg)
    with bg:
        busy = MLLPClient(bg.host, bg.port, timeout=10)
        busy.send_raw(frame(message("BUSY1").encode()))
        assert _wait(lambda: entered[0] == 1, 5)
        time.sleep(1.1)  # idle past the threshold, but its message is being screened
        silent = socket.create_connection((bg.host, bg.port), timeout=5)
        try:
            assert _wait(lambda: bg.listener._open == 2)
            newcomer = socket.create_connection((bg.host, bg.port), timeout=5)
            assert _closed_by_server(silent)  # the silent one went, not the busy one
            ack = busy.receive()
            assert (ack.code, ack.control_id) == ("AA", "BUSY1")
            newcomer.close()
        finally:
            silent.close()
            busy.close()


def test_per_peer_cap_limits_one_address(tmp_path: Path) -> None:
    with _listener(tmp_path, max_connections=10, max_connections_per_peer=2) as bg:
        held = [socket.create_connection((bg.host, bg.port), timeout=5) for _ in range(5)]
        try:
            time.sleep(0.5)
            assert bg.listener._open <= 2
            assert sum(_closed_by_server(s, 2.0) for s in held) >= 3
            with MLLPClient(bg.host, bg.port, timeout=10) as sender:
                assert sender.send(message("PEER1").encode()).code == "AA"
        finally:
            for s in held:
                s.close()


def test_per_peer_cap_from_config_and_cli(tmp_path: Path) -> None:
    from b12drugs.config import Config, PolicyConfig

    cfg = Config(policy=PolicyConfig(as_of=config().policy.as_of),
                 plugin={"hl7v2": {"listener": {"max_connections_per_peer": 3,
                                                "drain_timeout_seconds": 2.5}}})
    with _listener(tmp_path, config=cfg) as bg:
        assert bg.listener.max_connections_per_peer == 3
        assert bg.listener.drain_timeout == 2.5
    exe = Path(sys.executable).parent / "b12drugs"
    out = subprocess.run([str(exe), "hl7", "listen", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert "--max-connections-per-peer" in out.stdout and "--drain-timeout" in out.stdout


# -- 9. graceful shutdown ----------------------------------------------------------------


def _slow_screen(bg_holder: list[BackgroundListener], seconds: float,
                 entered: list[int]) -> Any:
    """A screening function that takes ``seconds`` (a slow resolver), then screens;
    ``entered[0]`` counts the messages it has begun."""
    lock = threading.Lock()

    def screen(records: list[Record], source: str) -> Report:
        with lock:
            entered[0] += 1
        time.sleep(seconds)
        return bg_holder[0].listener._default_screen(records, source)
    return screen


def test_stop_lets_in_flight_messages_finish_and_ack(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    holder: list[BackgroundListener] = []
    entered = [0]
    bg = _listener(tmp_path, screen=_slow_screen(holder, 0.8, entered))  # default drain
    holder.append(bg)
    acks: list[Any] = []
    errors: list[BaseException] = []

    def send(control_id: str) -> None:
        try:
            with MLLPClient(bg.host, bg.port, timeout=15) as client:
                acks.append(client.send(message(control_id).encode()))
        except (OSError, ValueError) as exc:
            errors.append(exc)

    with caplog.at_level(logging.INFO, logger="b12drugs_hl7v2.listener"):
        bg.__enter__()
        senders = [threading.Thread(target=send, args=(f"FLY{i}",)) for i in range(3)]
        for t in senders:
            t.start()
        assert _wait(lambda: entered[0] == 3, 5)  # all three are being screened
        bg.__exit__(None, None, None)  # stop while the three are being screened
        for t in senders:
            t.join(15)
    assert not errors, errors
    assert sorted((a.code, a.control_id) for a in acks) == [
        ("AA", "FLY0"), ("AA", "FLY1"), ("AA", "FLY2")]
    assert len(_sink_lines(tmp_path)) == 3  # every alert written, once
    assert "drained 3 in-flight message(s)" in caplog.text


def test_drain_timeout_answers_ae(tmp_path: Path) -> None:
    holder: list[BackgroundListener] = []
    entered = [0]
    bg = _listener(tmp_path, screen=_slow_screen(holder, 3.0, entered), drain_timeout=0.3)
    holder.append(bg)
    bg.__enter__()
    try:
        client = MLLPClient(bg.host, bg.port, timeout=15)
        client.send_raw(frame(message("SLOW1").encode()))
        assert _wait(lambda: entered[0] == 1, 5)  # being screened (3 s)
        stopper = threading.Thread(target=bg.__exit__, args=(None, None, None))
        started = time.monotonic()
        stopper.start()
        ack = client.receive()
        assert (ack.code, ack.control_id) == ("AE", "SLOW1")
        assert "shut" in ack.text
        assert time.monotonic() - started < 2.5
        stopper.join(15)
        client.close()
        stats = bg.listener.stats  # counted once, as the AE the sender got
        assert (stats.messages, stats.acks["AE"], stats.acks["AA"]) == (1, 1, 0)
        assert stats.drain_timeouts == 1
    finally:
        if bg._thread.is_alive():
            bg.__exit__(None, None, None)


def test_stop_refuses_new_connections_and_closes_idle_ones(tmp_path: Path) -> None:
    bg = _listener(tmp_path)
    bg.__enter__()
    idle = MLLPClient(bg.host, bg.port, timeout=10)
    assert idle.send(message("IDLE1").encode()).code == "AA"
    host, port = bg.host, bg.port
    bg.__exit__(None, None, None)
    assert _closed_by_server(idle.sock)
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()


def test_sigterm_drains_in_flight_messages_of_the_cli_listener(tmp_path: Path) -> None:
    """``b12drugs hl7 listen`` with messages arriving on several connections: after
    SIGTERM every message sent got its ACK, or its connection was closed before the
    message was read; every AA'd alert is in the sink file; the log says the drain."""
    exe = Path(sys.executable).parent / "b12drugs"
    sink = tmp_path / "cli-alerts.jsonl"
    cfg = tmp_path / "b12.toml"
    cfg.write_text("[policy]\nas_of = 2025-01-01\n")
    proc = subprocess.Popen(
        [str(exe), "hl7", "listen", "--port", "0", "--sink-path", str(sink), "--config",
         str(cfg), "-v"],  # the default drain timeout
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        logged: list[str] = []
        reader = threading.Thread(target=lambda: logged.extend(proc.stderr or ()), daemon=True)
        reader.start()  # -v logs a line per message: keep the pipe from filling
        assert _wait(lambda: any("listening on" in x for x in logged), 30)
        line = next(x for x in logged if "listening on" in x)
        port = int(line.split("127.0.0.1:")[1].split()[0])
        acked: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + 20

        def sender(n: int) -> None:
            try:
                with MLLPClient("127.0.0.1", port, timeout=15) as client:
                    for i in range(200):
                        if time.monotonic() > stop_at:
                            return
                        ack = client.send(message(f"S{n}-{i}").encode())
                        with lock:
                            acked.append(ack.code)
            except (OSError, ValueError):
                return  # closed at shutdown between messages

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        assert _wait(lambda: len(acked) >= 20, 15)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        reader.join(10)
        for t in threads:
            t.join(20)
        rest = "".join(logged)
        assert "drained" in rest and "in-flight message(s)" in rest
        alerts = sink.read_text().splitlines()
        assert acked.count("AA") == len(alerts)  # one metformin alert per AA, none more
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- 10. control characters from message fields are escaped in the log --------------------


@pytest.mark.parametrize("control_id", ["C\x1b[2J1", "C\x07\x08X", "C\x7fY\x00Z", "C\u202eZ"])
def test_control_characters_in_logged_fields_are_escaped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, control_id: str) -> None:
    with (caplog.at_level(logging.INFO, logger="b12drugs_hl7v2"), _listener(tmp_path) as bg,
          MLLPClient(bg.host, bg.port, timeout=10) as client):
        ack = client.send(message(control_id, msg_type="RDE\x1b^O11\x00^RDE_O11").encode())
        assert ack.code in ("AA", "AE", "AR")
    lines = [r.getMessage() for r in caplog.records if "control_id=" in r.getMessage()]
    assert lines
    for text in lines:
        assert not any(ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0 or ch == "\u202e"
                       for ch in text), repr(text)
    assert any("\\x1b" in t or "\\x07" in t or "\\x7f" in t or "\\u202e" in t for t in lines)
