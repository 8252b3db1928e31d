"""MLLP listener: pharmacy systems push HL7 v2 orders, each is screened and answered.

For every framed message: read it (:mod:`.message`), screen it with a
:class:`b12drugs.engines.Screener` off the event loop (a slow resolver such as RxNav
must not stall other connections), deliver the report to the alert sinks, and answer
an ACK (:mod:`.ack`): ``AA`` when screened, ``AE`` when part of it could not be read
or the alerts could not be delivered, ``AR`` when it was refused as a whole (malformed
header, unsupported type, larger than ``max_message_bytes``).  Connections stay usable
after any of these.

Why the connection handling is as it is (issue 15):

* A start block inside an unfinished frame restarts it (:mod:`.mllp`): the partial
  frame is answered AR when its MSH names a control id, the new one is read as usual.
* Idle connections cannot lock senders out: when the listener is full, the connection
  idle longest is closed to admit the new one, a connection that never sent a byte
  first (one that sent bytes only after :data:`EVICT_AFTER_IDLE` silent seconds, and
  never one whose message is being screened); a peer address may hold at most
  ``max_connections_per_peer`` connections, the same rule choosing which of its own
  goes.  Only when nothing can go is the new connection closed.
* Stopping (SIGTERM/SIGINT) stops accepting, closes idle connections, lets messages in
  flight finish and answers their ACKs within ``drain_timeout`` (AE after it: the
  sender resends), waits for screening threads, then flushes and fsyncs the sinks.
  A frame half received at that moment is dropped unanswered: nothing of it was
  screened, so the sender's resend duplicates nothing.

Logs carry control ids, counts, ACK codes and timings only: never patient data.  Text
from a message (control id, type) is logged with control characters escaped
(:func:`log_safe`), so a hostile field cannot forge log lines or drive a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from b12drugs.config import Config
from b12drugs.engines import Runtime, Screener
from b12drugs.errors import ConfigError
from b12drugs.models import Order, Report
from b12drugs.plugins import PluginManager, get_plugin_manager
from b12drugs.records import Record

from .ack import AckDecision, build_ack
from .framing import RawMessage, iter_messages
from .message import Header, MessageResult, Problem, read_message
from .mllp import Frame, FrameTimeout, Progress, frame, read_frames

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
DEFAULT_IDLE_TIMEOUT = 300.0
#: Seconds a sender has to complete one frame once its first byte arrived.
DEFAULT_FRAME_TIMEOUT = 60.0
#: Connections served at once; past it the idlest is closed, or the new one.
DEFAULT_MAX_CONNECTIONS = 64
#: Connections one peer address may hold at once.
DEFAULT_MAX_CONNECTIONS_PER_PEER = 16
#: Seconds a stop waits for messages in flight before answering them AE.
DEFAULT_DRAIN_TIMEOUT = 10.0
#: A connection that has sent bytes may be closed for a newcomer after this many
#: silent seconds; one that never sent a byte at once.
EVICT_AFTER_IDLE = 1.0
DEFAULT_SINK = "jsonl-file"
DEFAULT_SINK_PATH = "b12drugs-alerts.jsonl"

Deliver = Callable[[Report], None]
ScreenFn = Callable[[list[Record], str], Report]


def _wanted_sinks(config: Config, sink_path: str | None) -> list[tuple[str, dict[str, Any]]]:
    wanted: list[tuple[str, dict[str, Any]]] = [
        (s.name, s.model_dump(exclude={"name"})) for s in config.sinks
    ]
    if sink_path is not None:
        wanted.append((DEFAULT_SINK, {"path": sink_path}))
    if not wanted:
        wanted.append((DEFAULT_SINK, {"path": DEFAULT_SINK_PATH}))
    return wanted


def build_sinks(
    config: Config, manager: PluginManager, sink_path: str | None = None
) -> list[tuple[str, Deliver]]:
    """The sinks the listener delivers to: ``[[sinks]]`` of the config, plus a
    ``jsonl-file`` sink at ``sink_path``; ``jsonl-file`` at ``b12drugs-alerts.jsonl``
    when neither is given.  Sinks are looked up by name among the installed ones."""
    wanted = _wanted_sinks(config, sink_path)
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


class ListenerSettings(BaseModel):
    """``[plugin.hl7v2.listener]`` of the config; command-line options win."""

    model_config = ConfigDict(extra="forbid")
    max_connections_per_peer: int | None = Field(default=None, ge=1)
    drain_timeout_seconds: float | None = Field(default=None, ge=0)


def listener_settings(config: Config) -> ListenerSettings:
    """Validate ``[plugin.hl7v2.listener]``; a :class:`ConfigError` names each bad key."""
    section = config.plugin_options("hl7v2").get("listener", {})
    try:
        return ListenerSettings.model_validate(section)
    except ValidationError as exc:
        lines = [f"  plugin.hl7v2.listener.{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
                 for e in exc.errors()]
        raise ConfigError("[plugin.hl7v2.listener] is invalid:\n" + "\n".join(lines)) from None


#: Characters never written raw into a log line: C0 and C1 controls, DEL, line and
#: paragraph separators, and the bidirectional overrides that reorder what a reader sees.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def log_safe(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters with unsafe ones escaped (``\\x1b``), or ``-``."""
    cut = text[:limit]
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), cut) or "-"


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
    #: idle connections closed to admit a new one (listener full or per-peer cap)
    evicted_connections: int = 0
    #: frames cut short by a new start block
    abandoned_frames: int = 0
    #: messages in flight at a stop that were answered within the drain timeout
    drained: int = 0
    #: messages in flight at a stop answered AE when the drain timeout ran out
    drain_timeouts: int = 0


@dataclass(eq=False)
class _Connection:
    """One served connection, for admission, eviction and draining."""

    host: str
    peer: str
    task: asyncio.Task[Any]
    progress: Progress
    #: the frame being screened, until its ACK is written
    busy: Frame | None = None
    evicted: bool = False


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
        max_connections_per_peer: int | None = None,
        drain_timeout: float | None = None,
    ):
        """``max_connections_per_peer`` and ``drain_timeout`` default to
        ``[plugin.hl7v2.listener]`` of ``config``, else to the module defaults."""
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
        settings = listener_settings(self.config)
        self.max_connections_per_peer = (
            max_connections_per_peer or settings.max_connections_per_peer
            or DEFAULT_MAX_CONNECTIONS_PER_PEER
        )
        self.drain_timeout = next(
            t for t in (drain_timeout, settings.drain_timeout_seconds, DEFAULT_DRAIN_TIMEOUT)
            if t is not None
        )
        # jsonl-file sinks built here write these files: fsynced at stop
        self._sync_paths = [] if sinks is not None else [
            Path(str(opts["path"])) for name, opts in _wanted_sinks(self.config, sink_path)
            if name == DEFAULT_SINK and opts.get("path")
        ]
        self._open = 0  # connections being served (touched on the event loop only)
        self._conns: dict[asyncio.Task[Any], _Connection] = {}
        self._stopping = False
        self._answered_at_stop: set[int] = set()  # id() of frames answered AE at stop
        #: messages being screened now (read by tests and the soak benchmark)
        self.in_flight = 0
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
            # a message answered AE at the drain timeout is counted once, as that AE;
            # its alerts (delivered all the same) still count
            if id(data) not in self._answered_at_stop:
                self.stats.messages += 1
                self.stats.acks[decision.code] += 1
            self.stats.alerts += alerts
        log.info(
            "message control_id=%s type=%s^%s ack=%s alerts=%d bytes=%d ms=%.1f",
            log_safe(header.control_id),
            log_safe(header.message_code, 8),
            log_safe(header.event, 8),
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
                log_safe(header.control_id),
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
                        log_safe(header.control_id),
                        type(exc).__name__,
                    )
                    failed.append(name)
        return failed

    # -- frames that are not messages -------------------------------------------------
    def _header_of(self, data: Frame, peer: str) -> Header:
        """The MSH of a frame's first message (for an ACK), or an empty header."""
        raws = [i for i in iter_messages(io.BytesIO(data.data),
                                         max_message_bytes=self.max_message_bytes)
                if isinstance(i, RawMessage)]
        if not raws:
            return Header(1, 1)
        return read_message(raws[0], f"mllp://{peer}", max_bytes=self.max_message_bytes).header

    def abandoned(self, data: Frame, peer: str) -> bytes | None:
        """The AR for a frame cut short by a new start block, when its MSH-10 is whole.

        A control id is trusted only when the field after it began (or the MSH ended):
        an id cut in the middle would acknowledge a message the sender never sent.
        """
        with self._stats_lock:
            self.stats.abandoned_frames += 1
        msh = re.split(rb"[\r\n]", data.data, maxsplit=1)
        sep = msh[0][3:4]
        whole = msh[0].startswith(b"MSH") and sep and (
            len(msh) > 1 or msh[0].count(sep) >= 11
        )
        header = self._header_of(data, peer) if whole else Header(1, 1)
        if not header.control_id:
            log.info("abandoned frame without a control id from %s: bytes=%d", peer, data.size)
            return None
        why = "frame abandoned: a start block came before its end block; resend the message"
        decision = AckDecision("AR", why, Problem("MSH", 0, 0, why, "100"))
        with self._stats_lock:
            self.stats.messages += 1
            self.stats.acks["AR"] += 1
        log.info("abandoned frame control_id=%s ack=AR bytes=%d",
                 log_safe(header.control_id), data.size)
        return build_ack(header, decision)

    def _shutdown_ack(self, data: Frame, peer: str) -> bytes:
        """AE for a message still being screened when the drain timeout ran out."""
        why = "listener shutting down before screening finished; resend the message"
        header = self._header_of(data, peer)
        with self._stats_lock:
            self._answered_at_stop.add(id(data))
            self.stats.messages += 1
            self.stats.acks["AE"] += 1
            self.stats.drain_timeouts += 1
        log.warning("drain timeout control_id=%s ack=AE", log_safe(header.control_id))
        return build_ack(header, AckDecision("AE", why, Problem("MSH", 0, 0, why, "207")))

    # -- networking ---------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("MLLP listener on %s:%d", self.host, self.port)

    def _idlest(self, among: Sequence[_Connection]) -> _Connection | None:
        """The connection to close for a newcomer: never sent a byte, then between
        frames, then inside one; idle longest first.  Never one being screened, and one
        that has sent bytes only after :data:`EVICT_AFTER_IDLE` silent seconds."""
        now = asyncio.get_running_loop().time()
        candidates = [
            c for c in among
            if not c.evicted and c.busy is None
            and (c.progress.received == 0 or now - c.progress.last >= EVICT_AFTER_IDLE)
        ]
        if not candidates:
            return None
        return min(candidates,
                   key=lambda c: (c.progress.received > 0, c.progress.inside, c.progress.last))

    def _admit(self, host: str, peer: str) -> bool:
        """Make room for a connection from ``host`` (closing idle ones); False: refuse."""
        live = [c for c in self._conns.values() if not c.evicted]
        same = [c for c in live if c.host == host]
        checks = [(same, self.max_connections_per_peer, "max_connections_per_peer"),
                  (live, self.max_connections, "max_connections")]
        for group, limit, name in checks:
            if len(group) < limit:
                continue
            victim = self._idlest(group)
            if victim is None:
                self.stats.refused_connections += 1
                log.warning("refusing connection from %s: %d connections open, none idle "
                            "(%s=%d)", peer, len(group), name, limit)
                return False
            victim.evicted = True
            victim.task.cancel()
            self.stats.evicted_connections += 1
            log.warning("closing idle connection from %s (sent %d bytes) to admit %s (%s=%d)",
                        victim.peer, victim.progress.received, peer, name, limit)
            live.remove(victim)
            if victim in same:
                same.remove(victim)
        return True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection callback always runs in its own task
        self._tasks.add(task)
        addr = writer.get_extra_info("peername")
        host = str(addr[0]) if isinstance(addr, tuple) else "peer"
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else "peer"
        if self._stopping or not self._admit(host, peer):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)
            return
        conn = _Connection(host, peer, task, Progress())
        self._conns[task] = conn
        self._open += 1
        self.stats.connections += 1
        loop = asyncio.get_running_loop()
        try:
            async for data in read_frames(
                reader,
                max_bytes=self.max_message_bytes,
                idle_timeout=self.idle_timeout,
                frame_timeout=self.frame_timeout,
                progress=conn.progress,
            ):
                if data.abandoned:
                    answer = self.abandoned(data, peer)
                    if answer is not None:
                        writer.write(frame(answer))
                        await writer.drain()
                    continue
                conn.busy = data
                self.in_flight += 1
                try:
                    ack = await loop.run_in_executor(self._executor, self.process, data, peer)
                except asyncio.CancelledError:
                    if self._stopping:  # the drain timeout ran out: AE, the sender resends
                        writer.write(frame(self._shutdown_ack(data, peer)))
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(writer.drain(), 1.0)
                    raise
                finally:
                    self.in_flight -= 1
                writer.write(frame(ack))
                await writer.drain()
                conn.busy = None
                if self._stopping:
                    self.stats.drained += 1
                    break
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
            self._conns.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def stop(self) -> None:
        """Stop accepting; close idle connections; let messages in flight finish and
        answer them (AE after ``drain_timeout``); wait for screening; sync the sinks."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        busy = [c for c in self._conns.values() if c.busy is not None]
        in_flight = len(busy)
        for task in list(self._tasks):
            conn = self._conns.get(task)
            if conn is None or conn.busy is None:
                task.cancel()
        if busy:
            _, late = await asyncio.wait([c.task for c in busy], timeout=self.drain_timeout)
            for task in late:
                task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        loop = asyncio.get_running_loop()
        # screening threads still running (drain timeout) finish and deliver first
        await loop.run_in_executor(None, self._executor.shutdown, True)
        await loop.run_in_executor(None, self._sync_sinks)
        self._runtime.close()
        log.info(
            "MLLP listener stopped: drained %d in-flight message(s) of %d (%d answered AE "
            "after the %gs drain timeout); %d message(s), acks %s, %d alert(s)",
            self.stats.drained, in_flight, self.stats.drain_timeouts, self.drain_timeout,
            self.stats.messages, self.stats.acks, self.stats.alerts,
        )

    def _sync_sinks(self) -> None:
        """Flush every sink that can be flushed, and fsync the jsonl-file sinks' files
        (and their folders, for a file created by this run), so that what was
        acknowledged survives a power loss after the stop."""
        for name, deliver in self.sinks:
            flush = getattr(deliver, "flush", None)
            if callable(flush):
                try:
                    flush()
                except Exception as exc:
                    log.error("sink %s could not be flushed: %s", name, type(exc).__name__)
        for path in self._sync_paths:
            for target in (path, path.parent):
                try:
                    fd = os.open(target, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # no alert was ever written
                except OSError as exc:
                    log.error("sink file could not be opened for fsync: %s",
                              type(exc).__name__)
                    continue
                try:
                    os.fsync(fd)
                except OSError as exc:
                    log.error("sink file fsync failed: %s", type(exc).__name__)
                finally:
                    os.close(fd)


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
    max_connections_per_peer: int | None = None,
    drain_timeout: float | None = None,
) -> Listener:
    """Run a listener until SIGINT/SIGTERM (or ``stop`` is set); returns it stopped
    (drained: see :meth:`Listener.stop`)."""
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
        max_connections_per_peer=max_connections_per_peer,
        drain_timeout=drain_timeout,
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
