"""``b12drugs serve`` and ``b12drugs audit export``: attached to the b12drugs CLI.

Errors are messages with the CLI's exit codes (2 usage/config, 3 input), never
tracebacks.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from b12drugs.cli import EXIT_INPUT, EXIT_USAGE
from b12drugs.config import load_config
from b12drugs.errors import B12DrugsError, ConfigError


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="TOML configuration file ([plugin.cdshooks] configures the service).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Accept requests without a JWT. Local testing only: logs a warning.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(host: str, port: int, config_path: str | None, insecure_no_auth: bool,
          log_level: str) -> None:
    """Run the CDS Hooks service (order-select, order-sign, patient-view) with uvicorn."""
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        app = create_app(load_config(config_path), insecure_no_auth=insecure_no_auth)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
        return
    except B12DrugsError as exc:
        _fail(str(exc), EXIT_INPUT)
        return
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        timeout_keep_alive=5,
        access_log=False,  # our own log line has timing and counts, no query data
    )


@click.group("audit")
def audit() -> None:
    """The CDS Hooks feedback audit log."""


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("--db", "db_path", type=click.Path(dir_okay=False),
              help="Audit database (default: from --config, else the user data directory).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="TOML configuration file.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write here instead of standard output.")
def export_cmd(fmt: str, db_path: str | None, config_path: str | None,
               output: str | None) -> None:
    """Write the feedback log (accepted/overridden cards, reasons) as CSV or JSON."""
    from .audit import AuditLog, export
    from .settings import settings_from_config

    try:
        path = Path(db_path) if db_path else settings_from_config(
            load_config(config_path)).audit_path()
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
        return
    if not path.is_file():
        _fail(f"audit database {path} does not exist", EXIT_INPUT)
        return
    log = AuditLog(path)
    try:
        if output:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                n = export(log, fmt, fh)
            click.echo(f"{n} feedback rows written to {output}", err=True)
        else:
            export(log, fmt, sys.stdout)
    finally:
        log.close()
