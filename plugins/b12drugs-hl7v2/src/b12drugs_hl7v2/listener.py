"""MLLP listener: pharmacy systems push HL7 v2 orders, each is screened and answered.

For every framed message: read it (:mod:`.message`), screen it with a
:class:`b12drugs.engines.Screener` off the event loop (a slow resolver such as RxNav
must not stall other connections), deliver the report to the alert sinks, and answer
an ACK (:mod:`.ack`): ``AA`` when screened, ``AE`` when part of it could not be read
or the alerts could not be delivered, ``AR`` when it was refused as a whole (malformed
header, unsupported type, larger than ``max_message_bytes``).  Connections stay usable
after any of these.

Logs carry control ids, counts, ACK codes and timings only: never patient data.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from b12drugs.config import Config
from b12drugs.engines import Runtime, Screener
from b12drugs.errors import ConfigError
from b12drugs.models import Order, Report
from b12drugs.plugins import PluginManager, get_plugin_manager
from b12drugs.records import Record

from .ack import AckDecision, build_ack
from .framing import RawMessage, iter_messages
from .message import Header, MessageResult, Problem, read_message
from .mllp import Frame, FrameTimeout, frame, read_frames

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
DEFAULT_IDLE_TIMEOUT = 300.0
#: Seconds a sender has to complete one frame once its first byte arrived.
DEFAULT_FRAME_TIMEOUT = 60.0
#: Connections served at once; more are closed at once (and logged).
DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_SINK = "jsonl-file"
DEFAULT_SINK_PATH = "b12drugs-alerts.jsonl"

Deliver = Callable[[Report], None]
ScreenFn = Callable[[list[Record], str], Report]


def build_sinks(
    config: Config, manager: PluginManager, sink_path: str | None = None
) -> list[tuple[str, Deliver]]:
    """The sinks the listener delivers to: ``[[sinks]]`` of the config, plus a
    ``jsonl-file`` sink at ``sink_path``; ``jsonl-file`` at ``b12drugs-alerts.jsonl``
    when neither is given.  Sinks are looked up by name among the installed ones."""
    wanted: list[tuple[str, dict[str, Any]]] = [
        (s.name, s.model_dump(exclude={"name"})) for s in config.sinks
    ]
    if sink_path is not None:
        wanted.append((DEFAULT_SINK, {"path": sink_path}))
    if not wanted:
        wanted.append((DEFAULT_SINK, {"path": DEFAULT_SINK_PATH}))
    installed = {s.name: s for s in manager.hooks.alert_sinks()}
    out: list[tuple[str, Deliver]] = []
    for name, options in wanted:
        sink = installed.get(name)
        if sink is None:
            raise ConfigError(
                f"alert sink {name!r} is not installed (installed: "
                f"{', '.join(sorted(installed)) or 'none'})"
            )
        out.append((name, sink.factory(options)))
    return out


_SEGMENT_AT = re.compile(r", ([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?")


def _outcome(report: Report, result: MessageResult) -> tuple[str, tuple[Problem, ...]]:
    """MSA-3 text from what the engine did (not from what the parser read) and a
    warning per order whose drug was not recognised: an AA must never suggest an
    order was checked when it was not."""
    counts = report.counts
    unresolved = [n for n in report.notices if n.kind == "unresolved"]
    text = f"screened {counts.screened}, skipped {counts.skipped}"
    if counts.rejected:
        text += f", not read {counts.rejected}"
    if unresolved:
        text += f", not recognised {len(unresolved)} (drug not checked)"
    text += f"; {len(report.alerts)} alert(s)"
    pointers = {
        r.id: (r.source.pointer or "") for r in result.records if isinstance(r, Order) and r.source
    }
    warnings = []
    for notice in unresolved:
        m = _SEGMENT_AT.search(pointers.get(notice.order_id or "", ""))
        seg, index = (m[1], int(m[2] or 1)) if m else ("ORC", 0)
        reason = f"order {notice.order_id or '?'}: drug not recognised, NOT checked for B12 risk"
        warnings.append(Problem(seg, index, 0, reason, "207", severity="W"))
    return text, tuple(warnings)


@dataclass
class Stats:
    """Counters for logs and tests (no patient data)."""

    messages: int = 0
    acks: dict[str, int] = field(default_factory=lambda: {"AA": 0, "AE": 0, "AR": 0})
    alerts: int = 0
    connections: int = 0
    refused_connections: int = 0


class Listener:
    """An asyncio MLLP server.  ``port=0`` picks a free port (see :attr:`port`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        config: Config | None = None,
        manager: PluginManager | None = None,
        sinks: Sequence[tuple[str, Deliver]] | None = None,
        sink_path: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        workers: int = 4,
        screen: ScreenFn | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
    ):
        self.host = host
        self.port = port
        self.config = config or Config()
        self.manager = manager or get_plugin_manager()
        self.sinks = (
            list(sinks) if sinks is not None else build_sinks(self.config, self.manager, sink_path)
        )
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.max_connections = max_connections
        self._open = 0  # connections being served (touched on the event loop only)
        self.stats = Stats()
        self._screen = screen or self._default_screen
        # the listener delivers to its own sinks; the engine must not deliver again
        self._screen_config = self.config.model_copy(update={"sinks": ()})
        # One runtime for the listener's life: knowledge, resolvers (built once per
        # worker thread) and the resolution cache are shared by every message.
        self._runtime = Runtime(self._screen_config, self.manager)
        self._deliver_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hl7-screen")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- screening (runs in worker threads) ---------------------------------------
    def _default_screen(self, records: list[Record], source: str) -> Report:
        screener = Screener(runtime=self._runtime)
        screener.feed(records, source)
        return screener.finish()

    def process(self, data: Frame, peer: str) -> bytes:
        """Read, screen and deliver one framed message; return the ACK bytes."""
        started = time.perf_counter()
        header, decision, alerts = self._process(data, peer)
        ack = build_ack(header, decision)
        with self._stats_lock:
            self.stats.messages += 1
            self.stats.acks[decision.code] += 1
            self.stats.alerts += alerts
        log.info(
            "message control_id=%s type=%s^%s ack=%s alerts=%d bytes=%d ms=%.1f",
            header.control_id[:40] or "-",
            header.message_code[:8] or "-",
            header.event[:8] or "-",
            decision.code,
            alerts,
            data.size,
            (time.perf_counter() - started) * 1000,
        )
        return ack

    def _process(self, data: Frame, peer: str) -> tuple[Header, AckDecision, int]:
        items = list(iter_messages(io.BytesIO(data.data), max_message_bytes=self.max_message_bytes))
        raws = [i for i in items if isinstance(i, RawMessage)]
        if not raws:
            header = Header(1, 1)
            problem = Problem("MSH", 0, 0, "no MSH segment in the frame", "100", "reject")
            return header, AckDecision("AR", problem.reason, problem), 0
        raw = raws[0]
        if data.oversize:
            raw.oversize = True
        result = read_message(raw, f"mllp://{peer}", max_bytes=self.max_message_bytes)
        header = result.header
        if len(raws) > 1 or len(items) > len(raws):
            why = "one frame must hold exactly one HL7 message"
            problem = Problem("MSH", 0, 0, why, "100", "reject")
            return header, AckDecision("AR", why, problem), 0
        decision = self._decide(result)
        if decision.code == "AR":
            return header, decision, 0
        try:
            report = self._screen(result.records, f"mllp://{peer}")
        except Exception as exc:
            log.error(
                "screening failed control_id=%s error=%s",
                header.control_id[:40],
                type(exc).__name__,
            )
            problem = Problem("MSH", 0, 0, "screening failed; see the listener log", "207")
            return header, AckDecision("AE", problem.reason, problem), 0
        failed = self._deliver(report, header)
        if failed:
            why = f"alerts not delivered to sink(s) {', '.join(failed)}"
            return header, AckDecision("AE", why, Problem("MSH", 0, 0, why, "207")), 0
        summary, warnings = _outcome(report, result)
        if decision.code == "AA":
            decision = AckDecision("AA", summary, warnings=warnings)
        else:
            decision = AckDecision(decision.code, f"{decision.text}; {summary}",
                                   decision.problem, warnings)
        return header, decision, len(report.alerts)

    @staticmethod
    def _decide(result: MessageResult) -> AckDecision:
        if result.skipped is not None:
            return AckDecision("AR", result.skipped, Problem("MSH", 1, 9, result.skipped, "200"))
        if result.rejected:
            p = result.problems[0]
            return AckDecision("AR", p.reason, p)
        if result.problems:
            p = result.problems[0]
            where = f"{p.segment}[{p.index}]" + (f"-{p.field}" if p.field else "")
            n = len(result.problems)
            text = f"{n} part(s) not read; {where}: {p.reason}"
            return AckDecision("AE", text, p)
        return AckDecision("AA")

    def _deliver(self, report: Report, header: Header) -> list[str]:
        failed = []
        with self._deliver_lock:
            for name, deliver in self.sinks:
                try:
                    deliver(report)
                except Exception as exc:
                    log.error(
                        "sink %s failed control_id=%s error=%s",
                        name,
                        header.control_id[:40],
                        type(exc).__name__,
                    )
                    failed.append(name)
        return failed

    # -- networking ---------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("MLLP listener on %s:%d", self.host, self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        addr = writer.get_extra_info("peername")
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else "peer"
        if self._open >= self.max_connections:
            self.stats.refused_connections += 1
            log.warning(
                "refusing connection from %s: %d connections open (max_connections=%d)",
                peer, self._open, self.max_connections,
            )
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)
            return
        self._open += 1
        self.stats.connections += 1
        loop = asyncio.get_running_loop()
        try:
            async for data in read_frames(
                reader,
                max_bytes=self.max_message_bytes,
                idle_timeout=self.idle_timeout,
                frame_timeout=self.frame_timeout,
            ):
                ack = await loop.run_in_executor(self._executor, self.process, data, peer)
                writer.write(frame(ack))
                await writer.drain()
        except FrameTimeout:
            log.warning("closing connection from %s: frame not complete within %ss",
                        peer, self.frame_timeout)
        except asyncio.TimeoutError:
            log.info("closing idle connection from %s", peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("connection from %s lost", peer)
        except asyncio.CancelledError:
            pass
        finally:
            self._open -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def stop(self) -> None:
        """Stop accepting, close connections, wait for screening in progress."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        self._runtime.close()
        log.info(
            "MLLP listener stopped: %d message(s), acks %s, %d alert(s)",
            self.stats.messages,
            self.stats.acks,
            self.stats.alerts,
        )


async def serve(
    host: str,
    port: int,
    *,
    config: Config | None = None,
    manager: PluginManager | None = None,
    sink_path: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    workers: int = 4,
    ready: Callable[[Listener], None] | None = None,
    stop: asyncio.Event | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
) -> Listener:
    """Run a listener until SIGINT/SIGTERM (or ``stop`` is set); returns it stopped."""
    listener = Listener(
        host,
        port,
        config=config,
        manager=manager,
        sink_path=sink_path,
        max_message_bytes=max_message_bytes,
        idle_timeout=idle_timeout,
        workers=workers,
        max_connections=max_connections,
        frame_timeout=frame_timeout,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await listener.start()
        if ready is not None:
            ready(listener)
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await listener.stop()
    return listener


class BackgroundListener:
    """Run a :class:`Listener` on its own event loop in a thread (tests, benchmarks).

    >>> with BackgroundListener(sinks=[]) as bg:   # doctest: +SKIP
    ...     send_messages(bg.host, bg.port, [message])
    """

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("port", 0)
        self.listener = Listener(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="hl7-listener", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def host(self) -> str:
        return self.listener.host

    @property
    def port(self) -> int:
        return self.listener.port

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.listener.start())
        except BaseException as exc:  # surface bind errors to the caller
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.listener.stop())
        self._loop.close()

    def __enter__(self) -> BackgroundListener:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
