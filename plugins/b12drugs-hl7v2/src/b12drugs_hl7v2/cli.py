"""``b12drugs hl7 listen`` (MLLP listener) and ``b12drugs hl7 send`` (test client).

Exit codes follow the core CLI: 2 for usage/configuration errors, 3 for input errors.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from b12drugs.cli import EXIT_INPUT, EXIT_USAGE, user_errors

from .framing import RawMessage, iter_messages
from .listener import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_FRAME_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_PEER,
    DEFAULT_MAX_MESSAGE_BYTES,
    Listener,
    serve,
)


@click.group("hl7")
def hl7_group() -> None:
    """HL7 v2: MLLP listener and a small test client."""


@hl7_group.command("listen")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), required=True, help="TCP port (0: any).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config.")
@click.option(
    "--sink-path",
    type=click.Path(dir_okay=False),
    help="Append alerts to this JSON Lines file (the jsonl-file sink).",
)
@click.option(
    "--max-message-bytes",
    type=click.IntRange(1024),
    default=DEFAULT_MAX_MESSAGE_BYTES,
    show_default=True,
    help="Larger messages are answered AR and discarded.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_IDLE_TIMEOUT,
    show_default=True,
    help="Close a connection after this many silent seconds.",
)
@click.option(
    "--frame-timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_FRAME_TIMEOUT,
    show_default=True,
    help="Close a connection whose frame is not complete this many seconds after its "
    "first byte (slow senders).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    help="Connections served at once; when full, the connection idle longest (one that "
    "never sent a byte first) is closed to admit a new one.",
)
@click.option(
    "--max-connections-per-peer",
    type=click.IntRange(1),
    default=None,
    help="Connections one peer address may hold at once (default: "
    "[plugin.hl7v2.listener] max_connections_per_peer, else "
    f"{DEFAULT_MAX_CONNECTIONS_PER_PEER}).",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="At SIGTERM/SIGINT, seconds messages in flight have to finish before they are "
    "answered AE (default: [plugin.hl7v2.listener] drain_timeout_seconds, else "
    f"{DEFAULT_DRAIN_TIMEOUT:g}).",
)
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Log each message (control id, ACK, timing).")
def listen(
    host: str,
    port: int,
    config_path: str | None,
    sink_path: str | None,
    max_message_bytes: int,
    idle_timeout: float,
    frame_timeout: float,
    max_connections: int,
    max_connections_per_peer: int | None,
    drain_timeout: float | None,
    workers: int,
    verbose: bool,
) -> None:
    """Screen HL7 v2 orders pushed over MLLP; answer ACKs; deliver alerts to sinks.

    Without --sink-path and without [[sinks]] in the config, alerts are appended to
    ./b12drugs-alerts.jsonl.  Stop with Ctrl-C or SIGTERM: new connections are
    refused, messages in flight finish and get their ACKs (AE past --drain-timeout),
    and the sink files are fsynced.
    """
    from b12drugs.config import load_config

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def ready(listener: Listener) -> None:
        names = ", ".join(name for name, _ in listener.sinks)
        click.echo(f"listening on {listener.host}:{listener.port} (MLLP); sinks: {names}", err=True)

    with user_errors():
        try:
            config = load_config(config_path)
            listener = asyncio.run(
                serve(
                    host,
                    port,
                    config=config,
                    sink_path=sink_path,
                    max_message_bytes=max_message_bytes,
                    idle_timeout=idle_timeout,
                    frame_timeout=frame_timeout,
                    max_connections=max_connections,
                    max_connections_per_peer=max_connections_per_peer,
                    drain_timeout=drain_timeout,
                    workers=workers,
                    ready=ready,
                )
            )
        except OSError as exc:
            click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
            sys.exit(EXIT_USAGE)
    s = listener.stats
    click.echo(
        f"stopped: {s.messages} message(s) (AA {s.acks['AA']}, AE {s.acks['AE']}, "
        f"AR {s.acks['AR']}), {s.alerts} alert(s); drained {s.drained} in-flight "
        f"message(s), {s.drain_timeouts} answered AE at the drain timeout",
        err=True,
    )


@hl7_group.command("send")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), required=True)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True)
def send(files: tuple[str, ...], host: str, port: int, timeout: float) -> None:
    """Send every message of FILES to an MLLP listener and print each ACK."""
    from .client import MLLPClient

    try:
        with MLLPClient(host, port, timeout=timeout) as client:
            for name in files:
                with Path(name).open("rb") as fh:
                    for item in iter_messages(fh):
                        if not isinstance(item, RawMessage):
                            continue
                        ack = client.send(b"\r".join(item.segments) + b"\r")
                        click.echo(
                            f"{name} message {item.number}: {ack.code} {ack.control_id} {ack.text}"
                        )
                        click.echo(ack.raw.decode("utf-8", "replace").replace("\r", "\n"))
    except OSError as exc:
        click.echo(f"error: {host}:{port}: {exc}", err=True)
        sys.exit(EXIT_INPUT)
