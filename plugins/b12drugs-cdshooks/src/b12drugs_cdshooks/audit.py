"""Append-only SQLite audit log of card feedback (accepted / overridden).

Why SQLite: it is embedded (no server to run), a single file a hospital can back up,
and safe for one writer process.  The log is append-only: triggers abort every UPDATE
and DELETE.  Clients may send the same feedback more than once (the specification says
so); a UNIQUE key over service, card uuid, outcome and outcome timestamp makes a
repeat a no-op, so the log counts each decision once.

No patient identifier is stored: feedback carries card and suggestion uuids, the
outcome, the override reason and the clinician's comment.  Each issued card is also
recorded (uuid, service, hook instance, class, indicator) so that feedback can be read
as "which advice was overridden, and why" without the patient.

A card is recorded only once its answer has been rendered and handed to the server,
with how that went in ``delivery``: ``delivered`` (sent to a client still connected)
or ``send-failed`` (the client had gone, or sending raised).  A call whose answer
could not be produced (an error, the time limit) records nothing: the log holds only
advice somebody was sent.  Rows written before this column existed have it NULL.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .hookrequest import FeedbackItem

log = logging.getLogger("b12drugs.cdshooks.audit")

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    service_id TEXT NOT NULL,
    card_uuid TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    outcome_timestamp TEXT NOT NULL,
    accepted_suggestions TEXT NOT NULL,
    override_system TEXT,
    override_code TEXT,
    override_display TEXT,
    user_comment TEXT,
    issuer TEXT,
    UNIQUE (service_id, card_uuid, outcome, outcome_timestamp)
);
CREATE TABLE IF NOT EXISTS cards (
    card_uuid TEXT PRIMARY KEY,
    issued_at TEXT NOT NULL,
    service_id TEXT NOT NULL,
    hook_instance TEXT NOT NULL,
    kind TEXT NOT NULL,
    indicator TEXT NOT NULL,
    suggestions TEXT NOT NULL,
    delivery TEXT
);
CREATE TRIGGER IF NOT EXISTS feedback_no_update BEFORE UPDATE ON feedback
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS feedback_no_delete BEFORE DELETE ON feedback
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS cards_no_update BEFORE UPDATE ON cards
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS cards_no_delete BEFORE DELETE ON cards
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

EXPORT_COLUMNS = (
    "id",
    "received_at",
    "service_id",
    "card_uuid",
    "outcome",
    "outcome_timestamp",
    "accepted_suggestions",
    "override_system",
    "override_code",
    "override_display",
    "user_comment",
    "issuer",
    "card_kind",
    "card_indicator",
    "hook_instance",
    "card_delivery",
)

#: What ``delivery`` of an issued card may say.
DELIVERED = "delivered"
SEND_FAILED = "send-failed"


#: A row of the ``cards`` table, in column order.
_CardRow = tuple[str, str, str, str, str, str, str, str]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class AuditLog:
    """One SQLite file; thread-safe (one connection guarded by a lock, WAL mode).

    Checkpoints (copying the write-ahead log back into the database file, with an
    fsync) run in a background thread every ``checkpoint_seconds`` instead of inside
    whichever insert crosses SQLite's 1000-page threshold: there they stalled one call
    in a few hundred for 4-8 ms, and every call queued behind it on the event loop.  A
    passive checkpoint never blocks the writer, and sqlite3 releases the GIL meanwhile.

    Issued cards are written by a background thread too: :meth:`record_cards` queues
    them and returns, and the writer inserts what has queued up in one transaction
    every ``batch_seconds``.  A hook call's answer no longer waits for a commit (about
    75 us of the call, on the event loop), and the writer wakes a few times a second
    rather than once per call (a wake per call cost more in thread switches than the
    commit it moved).  Order is kept for readers in this process:
    :meth:`record_feedback`, :meth:`rows` and :meth:`close` first have the cards queued
    before them written.  If the process dies, the cards of the last ``batch_seconds``
    may be missing from the table of issued cards (feedback is written at once).  A card
    the writer cannot store is logged as an error with the count (the card was already
    shown; there is nothing to refuse).
    """

    def __init__(self, path: Path, *, checkpoint_seconds: float = 0.5,
                 batch_seconds: float = 0.05):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(cards)")}
        if "delivery" not in columns:  # a log from before issue 15: add, never rewrite
            self._db.execute("ALTER TABLE cards ADD COLUMN delivery TEXT")
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, args=(checkpoint_seconds,),
            name="b12drugs-audit-checkpoint", daemon=True,
        )
        self._checkpointer.start()
        # Items: a list of card rows, an Event to set once everything before it is
        # written (flush), or None (stop).
        self._pending: queue.SimpleQueue[list[_CardRow] | threading.Event | None] = (
            queue.SimpleQueue()
        )
        self._hurry = threading.Event()  # a flush or close is waiting: write now
        self._writer = threading.Thread(target=self._write_loop, args=(batch_seconds,),
                                        name="b12drugs-audit-cards", daemon=True)
        self._writer.start()

    def _checkpoint_loop(self, interval: float) -> None:
        db = sqlite3.connect(str(self.path), isolation_level=None)
        try:
            while not self._stop.wait(interval):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # retried at the next interval
                    log.warning("audit log checkpoint failed: %s", type(exc).__name__)
        finally:
            db.close()

    def close(self) -> None:
        self._pending.put(None)
        self._hurry.set()
        self._writer.join(timeout=10)
        self._stop.set()
        self._checkpointer.join(timeout=10)
        with self._lock:
            self._db.close()  # the last connection to close checkpoints the rest

    def record_feedback(self, service_id: str, items: Iterable[FeedbackItem],
                        issuer: str | None) -> tuple[int, int]:
        """Append feedback; returns ``(stored, duplicates)``."""
        self.flush()
        rows = []
        for item in items:
            reason = item.overrideReason.reason if item.overrideReason else None
            rows.append((
                _now(),
                service_id,
                item.card,
                item.outcome,
                item.outcomeTimestamp,
                json.dumps([s.id for s in item.acceptedSuggestions]),
                reason.system if reason else None,
                reason.code if reason else None,
                reason.display if reason else None,
                item.overrideReason.userComment if item.overrideReason else None,
                issuer,
            ))
        stored = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO feedback (received_at, service_id, card_uuid,"
                        " outcome, outcome_timestamp, accepted_suggestions, override_system,"
                        " override_code, override_display, user_comment, issuer)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        row,
                    )
                    stored += cur.rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return stored, len(rows) - stored

    def record_cards(self, service_id: str, hook_instance: str,
                     cards: Iterable[tuple[str, str, str, list[str]]],
                     delivery: str = DELIVERED) -> None:
        """Queue issued cards for the writer: ``(uuid, kind, indicator, suggestion uuids)``.

        Call it once the answer holding the cards was sent (or failed to be):
        ``delivery`` says which (:data:`DELIVERED`, :data:`SEND_FAILED`).
        """
        rows = [
            (uuid, _now(), service_id, hook_instance, kind, indicator, json.dumps(sugg),
             delivery)
            for uuid, kind, indicator, sugg in cards
        ]
        if rows:
            self._pending.put(rows)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the cards queued so far are written; ``False`` on timeout."""
        done = threading.Event()
        self._pending.put(done)
        self._hurry.set()
        return done.wait(timeout) if self._writer.is_alive() else False

    def _write_loop(self, batch_seconds: float) -> None:
        stop = False
        while not stop:
            rows: list[_CardRow] = []
            flushed: list[threading.Event] = []
            item = self._pending.get()  # block for the first item
            if isinstance(item, list):  # let a batch gather, unless someone waits
                self._hurry.wait(batch_seconds)
            self._hurry.clear()
            while True:  # then take everything queued so far
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    flushed.append(item)
                else:
                    rows.extend(item)
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
            if rows:
                self._insert_cards(rows)
            for event in flushed:
                event.set()

    def _insert_cards(self, rows: list[_CardRow]) -> None:
        try:
            with self._lock:
                # One transaction for the batch: in autocommit mode every row would be
                # its own commit (a WAL append each, about 20 us).
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        "INSERT OR IGNORE INTO cards (card_uuid, issued_at, service_id,"
                        " hook_instance, kind, indicator, suggestions, delivery)"
                        " VALUES (?,?,?,?,?,?,?,?)",
                        rows,
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            log.error("audit log: %d issued card record(s) could not be written: %s",
                      len(rows), type(exc).__name__)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Feedback joined with the card it is about, oldest first."""
        query = (
            "SELECT f.id, f.received_at, f.service_id, f.card_uuid, f.outcome,"
            " f.outcome_timestamp, f.accepted_suggestions, f.override_system,"
            " f.override_code, f.override_display, f.user_comment, f.issuer,"
            " c.kind, c.indicator, c.hook_instance, c.delivery"
            " FROM feedback f LEFT JOIN cards c ON c.card_uuid = f.card_uuid ORDER BY f.id"
        )
        self.flush()
        with self._lock:
            fetched = self._db.execute(query).fetchall()
        for row in fetched:
            out = dict(zip(EXPORT_COLUMNS, row, strict=True))
            out["accepted_suggestions"] = json.loads(out["accepted_suggestions"])
            yield out


def export(log: AuditLog, fmt: str, stream: io.TextIOBase | Any) -> int:
    """Write the feedback log as ``csv`` or ``json``; returns the number of rows."""
    rows = list(log.rows())
    if fmt == "json":
        json.dump(rows, stream, indent=2)
        stream.write("\n")
    elif fmt == "csv":
        writer = csv.DictWriter(stream, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "accepted_suggestions": ";".join(row["accepted_suggestions"])})
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    return len(rows)
