"""The ``b12drugs`` command line.

Exit codes (distinct, for scripts and pharmacy pipelines):

=====  ==============================================================
0      clean run (no alert at or above ``--fail-on``)
1      alerts at or above ``--fail-on``
2      usage or configuration error
3      input error (no input could be read, every record was rejected, unknown
       format); the report is still printed when there is one
4      plugin error (a plugin failed and strict mode is on, or a sink failed)
=====  ==============================================================

Plugin commands (``b12drugs_cli_commands``) are attached lazily: the plugin manager is
only created when a command that needs it runs or when help lists commands.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from .__about__ import __version__
from .errors import B12DrugsError, ConfigError, InputError, PluginError

if TYPE_CHECKING:
    from .records import OutputFormat

EXIT_OK, EXIT_ALERTS, EXIT_USAGE, EXIT_INPUT, EXIT_PLUGIN = 0, 1, 2, 3, 4
FAIL_ON = ("info", "warning", "critical", "never")


def _attribution() -> str:
    from . import NLM_ATTRIBUTION

    return NLM_ATTRIBUTION


class _Group(click.Group):
    """Attaches plugin commands on first use."""

    _loaded = False

    def _load_plugins(self, ctx: click.Context) -> None:
        if self._loaded:
            return
        self._loaded = True
        from .plugins import get_plugin_manager

        try:
            commands = get_plugin_manager().hooks.cli_commands()
        except PluginError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_PLUGIN)
        for cmd in commands:
            if cmd.name in self.commands:
                click.echo(f"warning: plugin command {cmd.name!r} clashes with a builtin "
                           "command and was not added", err=True)
                continue
            self.add_command(cmd)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None:
            self._load_plugins(ctx)
            cmd = super().get_command(ctx, cmd_name)
        return cmd


def _version_message() -> str:
    return f"b12drugs {__version__}\n\n{_attribution()}"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message=_version_message())
def cli() -> None:
    """Screen prescriptions for drugs that lower vitamin B12."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn b12drugs errors into messages and exit codes, never tracebacks.

    Public so that plugin commands map errors to the same exit codes."""
    try:
        yield
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except InputError as exc:
        click.echo(f"input error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    except PluginError as exc:
        click.echo(f"plugin error: {exc}", err=True)
        sys.exit(EXIT_PLUGIN)
    except B12DrugsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INPUT)


def _config(path: str | None, rxnav: bool | None, as_of: str | None = None) -> Any:
    from .config import load_config

    config = load_config(path)
    updates: dict[str, Any] = {}
    if rxnav is not None:
        updates["rxnav"] = config.rxnav.model_copy(update={"enabled": rxnav})
    if as_of:
        from datetime import date

        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            raise ConfigError(f"--as-of {as_of!r} is not an ISO date (YYYY-MM-DD)") from None
        updates["policy"] = config.policy.model_copy(update={"as_of": day})
    return config.model_copy(update=updates) if updates else config


def _manager(strict: bool) -> Any:
    from .plugins import PluginManager, get_plugin_manager

    return PluginManager(strict=True) if strict else get_plugin_manager()


def _check_output(path: str | None) -> None:
    """Refuse an output path that cannot be written before screening, not after."""
    if path is None or path == "-":
        return
    parent = Path(path).parent
    if not parent.is_dir():
        raise ConfigError(f"--output {path}: folder {str(parent)!r} does not exist")


@contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdout
        return
    try:
        fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise ConfigError(f"--output {path}: cannot write ({exc.strerror or exc})") from None
    with fh:
        yield fh


class _NotTwice(logging.Filter):
    """Drops the plugins module's problem log records: the command prints each problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "b12drugs_problem", False)


@contextmanager
def _problems_printed_not_logged() -> Iterator[None]:
    """While a command prints plugin problems itself, keep them out of the log output."""
    logger, flt = logging.getLogger("b12drugs.plugins"), _NotTwice()
    logger.addFilter(flt)
    try:
        yield
    finally:
        logger.removeFilter(flt)


_config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                              help="TOML configuration file.")
_rxnav_option = click.option("--rxnav/--offline", "rxnav", default=None,
                             help="Use the RxNav REST API (default: config; offline otherwise).")


@cli.command()
@click.argument("inputs", nargs=-1, type=click.Path(allow_dash=True))
@click.option("--input-format", "-i", help="Input format (default: detected from content).")
@click.option("--format", "-f", "output_format", default="table", show_default=True,
              help="Output format: table, json, jsonl or one a plugin adds.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the report here instead of stdout.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="never", show_default=True,
              help="Exit with 1 when an alert is at or above this severity.")
@click.option("--as-of", help="Reference date for ages and durations (YYYY-MM-DD).")
@click.option("--engine", type=click.Choice(["auto", "record", "columnar", "spark"]),
              default="auto", show_default=True,
              help="auto: columnar for tables (CSV, Parquet, JSON Lines), record otherwise.")
@click.option("--encoding", help="Decode the inputs with this encoding (default: UTF-8 or "
              "UTF-16 by byte order mark; cells that are not UTF-8 read as Windows-1252).")
@click.option("--temp-dir", type=click.Path(file_okay=False),
              help="Folder for temporary files of large runs (default: [engine] temp_dir, "
                   "else the system's).")
@click.option("--spark-master", default=None,
              help="Spark master URL for --engine spark (default: local[*]).")
@click.option("--strict-plugins", is_flag=True, help="Treat any plugin problem as an error.")
@_config_option
@_rxnav_option
def screen(
    inputs: tuple[str, ...],
    input_format: str | None,
    output_format: str,
    output: str | None,
    fail_on: str,
    as_of: str | None,
    engine: str,
    encoding: str | None,
    temp_dir: str | None,
    spark_master: str | None,
    strict_plugins: bool,
    config_path: str | None,
    rxnav: bool | None,
) -> None:
    """Screen files, folders or - (stdin) and print alerts and notices."""
    if not inputs:
        raise click.UsageError("give at least one input file, folder or - for stdin")
    if spark_master is not None and engine != "spark":
        raise click.UsageError("--spark-master goes with --engine spark")
    with user_errors(), _problems_printed_not_logged(), _interrupts_cleaned_up():
        _check_output(output)
        config = _config(config_path, rxnav, as_of)
        manager = _manager(strict_plugins)
        writer = manager.hooks.output_for(output_format)
        if writer is None:
            names = ", ".join(sorted(f.name for f in manager.hooks.output_formats()))
            raise click.UsageError(f"unknown output format {output_format!r} (installed: {names})")
        # The plugin manager lives for the process (an embedding program may run many
        # commands): only the problems of this run count.
        before = manager.hooks.problems.mark()
        with _batch_collection():
            code = _run(inputs, input_format, config, manager, writer, output, fail_on,
                        before, engine, encoding, temp_dir, spark_master)
        if code != EXIT_OK:
            sys.exit(code)


def _run(inputs: tuple[str, ...], input_format: str | None, config: Any, manager: Any,
         writer: OutputFormat, output: str | None, fail_on: str, before: int, engine: str,
         encoding: str | None, temp_dir: str | None, spark_master: str | None) -> int:
    """Screen, write the report and work out the exit code: a function of its own, so
    that everything the run built is freed when it returns (see ``_batch_collection``)."""
    from .engines import run_inputs

    with _progress(inputs) as progress:
        result = run_inputs(inputs, input_format, config, manager, stdin=sys.stdin.buffer,
                            progress=progress.bytes, on_rows=progress.rows,
                            on_assessed=progress.assessed, engine=engine,
                            encoding=encoding, temp_dir=temp_dir, spark_master=spark_master,
                            workers=command_workers(config))
    try:
        return _write_and_judge(result, writer, output, fail_on, manager, before)
    finally:
        result.close()


def command_workers(config: Any) -> int:
    """Processes that assess a large run: ``[engine] workers``, else one per core (at
    most 4).  The command can start workers safely: its main module is guarded."""
    from .engines.cores import default_workers

    return int(config.engine.workers or default_workers())


@contextmanager
def _batch_collection() -> Iterator[None]:
    """A one-shot screening run, with CPython's cyclic garbage collector off.

    The command's choice, not the library's (the services and the Python API leave the
    collector alone): a run holds long-lived findings, orders, contexts and alerts
    while it makes many short-lived objects, and the collector would scan the
    long-lived ones again and again with nothing to collect (measured on 1,000,000 rows:
    about a fifth of the run).  The run frees everything it made before the collector
    is switched back on (``_run`` returns first), so that its first pass finds little.
    A collector the caller switched off stays off.
    """
    import gc

    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _write_and_judge(result: Any, writer: OutputFormat, output: str | None, fail_on: str,
                     manager: Any, before: int) -> int:
    """Write the report and work out the exit code.

    Writers that stream (``json``, ``jsonl``) take the alerts one at a time from where
    the run kept them, so a run with millions of alerts is written in bounded memory;
    other writers get the whole report.
    """
    from .models import SEVERITIES

    report = result.report
    with _output(output) as out:
        if writer.write_stream is not None and result.spool is not None:
            writer.write_stream(report, result.alerts(), out)
        else:
            writer.write(result.to_report(), out)
    problems = manager.hooks.problems.since(before)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    c = report.counts
    if c.read == 0 and c.rejected == 0:
        raise InputError("no records were read")
    if c.read and c.read == c.rejected:
        raise InputError(f"nothing could be screened: all {c.read} records were "
                         "rejected (see the rejected notices)")
    if any(p.where.startswith("sink ") for p in problems):
        click.echo("plugin error: alerts were not delivered to every configured sink",
                   err=True)
        return EXIT_PLUGIN
    worst = result.max_severity()
    if fail_on != "never" and worst is not None and (
        SEVERITIES.index(worst) >= SEVERITIES.index(fail_on)  # type: ignore[arg-type]
    ):
        return EXIT_ALERTS
    return EXIT_OK


@contextmanager
def _interrupts_cleaned_up() -> Iterator[None]:
    """SIGTERM ends the command like Ctrl-C does: by an exception, so that every
    ``with`` block on the way out runs (temporary files of large runs are removed)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Progress:
    """Callbacks a run reports progress to; a bar on stderr when it is a terminal."""

    def __init__(self, bar: Any = None, task: Any = None):
        import time

        self._bar, self._task, self._rows = bar, task, 0
        self._clock = time.monotonic
        self._start = self._clock()

    @property
    def bytes(self) -> Any:
        if self._bar is None:
            return None
        return lambda n: self._bar.advance(self._task, n)

    @property
    def rows(self) -> Any:
        if self._bar is None:
            return None

        def add(n: int) -> None:
            self._rows += n
            per_second = self._rows / max(self._clock() - self._start, 1e-6)
            self._bar.update(self._task, rows=self._rows, rate=f"{per_second:,.0f} rows/s")
        return add

    @property
    def assessed(self) -> Any:
        """Partitions of patients assessed: a second bar once the reading is done (a
        large run spends a while there after the last row)."""
        if self._bar is None:
            return None
        task = None

        def done(n: int, total: int) -> None:
            nonlocal task
            if task is None:
                self._bar.update(self._task, completed=self._bar.tasks[0].total)
                task = self._bar.add_task("assessing", total=total, rows=self._rows,
                                          rate="read; patients with findings assessed")
            self._bar.update(task, completed=n)
        return done


@contextmanager
def _progress(inputs: tuple[str, ...]) -> Iterator[_Progress]:
    """A progress bar on stderr for long runs (bytes and rows read, rows per second,
    time left); nothing when stderr is not a terminal or the inputs are small."""
    total = 0
    for p in inputs:
        path = Path(p)
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    if not sys.stderr.isatty() or total < 5_000_000:
        yield _Progress()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Amount(DownloadColumn):
        """Bytes read for the reading bar, partitions for the assessing one."""

        def render(self, task: Any) -> Any:
            if task.description == "reading":
                return super().render(task)
            return Text(f"{task.completed:.0f}/{task.total:.0f} partitions",
                        style="progress.download")

    rate = TextColumn("{task.fields[rows]:,} rows  {task.fields[rate]}")
    with Progress(TextColumn("{task.description}"), BarColumn(), Amount(), rate,
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task("reading", total=total, rows=0, rate="")
        progress = _Progress(bar, task)
        yield progress
        bar.update(task, completed=total)


@cli.command()
@click.argument("query")
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "json"]), default="text")
@_config_option
@_rxnav_option
def lookup(query: str, fmt: str, config_path: str | None, rxnav: bool | None) -> None:
    """Show how a drug TEXT, RxCUI or NDC resolves, and its B12 classes."""
    from .lookup import lookup as do_lookup

    with user_errors():
        config = _config(config_path, rxnav)
        result = do_lookup(query, config, _manager(False))
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"query: {result['query']}")
    for step in result["steps"]:
        click.echo(f"  {step['resolver']:<16} {step['outcome']}")
        for sub in step.get("detail", []):
            click.echo(f"  {'':<16}   {sub['step']}. {sub['method']} {sub['input']!r}: "
                       f"{sub['result']}")
    if not result["ingredients"]:
        click.echo("ingredients: none found — this drug would be reported as unresolved")
    for ing in result["ingredients"]:
        rx = f" (RxCUI {ing['rxcui']})" if ing.get("rxcui") else ""
        click.echo(f"ingredient: {ing['name']}{rx} via {ing['method']} "
                   f"[confidence {ing['confidence']:.2f}, {ing['source']}]")
    for hit in result["classes"]:
        click.echo(f"class: {hit['class_id']} ({hit['role']}) <- {hit['ingredient']}")
    if result["ingredients"] and not result["classes"]:
        click.echo("classes: none — no B12-lowering class")
    for notice in result["notices"]:
        click.echo(f"notice: {notice['kind']}: {notice['message']}")


@cli.command()
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "json"]), default="text")
def classes(fmt: str) -> None:
    """List the B12 classes and context roles with their member counts."""
    from .knowledge import load_knowledge
    from .plugins import get_plugin_manager

    with user_errors():
        hooks = get_plugin_manager().hooks
        kb = load_knowledge((k.classes, k.entries) for k in hooks.knowledge())
    rows: list[dict[str, Any]] = [
        {"class_id": c.class_id, "label": c.label, "role": c.role,
         "default_severity": c.default_severity, "evidence": c.evidence,
         "members": len(kb.members(c.class_id))}
        for c in kb.classes.values()
    ]
    if fmt == "json":
        click.echo(json.dumps({"knowledge_version": kb.version, "classes": rows}, indent=2))
        return
    click.echo(f"knowledge base {kb.version}")
    for r in rows:
        sev = r["default_severity"] or "-"
        click.echo(f"{r['class_id']:<26} {r['role']:<8} {sev:<8} {r['evidence'][:24]:<24} "
                   f"{r['members']:>4}  {r['label']}")


@cli.command()
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "json"]), default="text")
def plugins(fmt: str) -> None:
    """List plugins: name, distribution, version, status and hooks."""
    from .plugins import get_plugin_manager

    with user_errors():
        infos = get_plugin_manager().list()
    if fmt == "json":
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    for i in infos:
        kind = "builtin" if i.builtin else "plugin"
        click.echo(f"{i.name:<16} {i.status:<8} {kind:<8} {i.distribution} {i.version}")
        if i.hooks:
            click.echo(f"{'':<16} hooks: {', '.join(i.hooks)}")
        if i.error:
            click.echo(f"{'':<16} {i.error}")


@cli.command()
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "json"]), default="text")
def formats(fmt: str) -> None:
    """List installed input and output formats and the plugins providing them."""
    from .plugins import get_plugin_manager

    hooks = get_plugin_manager().hooks
    rows = [{"direction": "input", "name": f.name, "provider": f.provider,
             "description": f.description} for f in hooks.input_formats()]
    rows += [{"direction": "output", "name": f.name, "provider": f.provider,
              "description": f.description} for f in hooks.output_formats()]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['direction']:<7} {r['name']:<20} {r['provider']:<16} {r['description']}")


from .gaps_cli import gaps as _gaps  # noqa: E402 (a command module that imports this one)

cli.add_command(_gaps)


def main() -> None:
    """Console-script entry point: click handles usage errors (exit 2)."""
    cli(prog_name="b12drugs")
