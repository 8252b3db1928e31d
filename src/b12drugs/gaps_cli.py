"""The ``b12drugs gaps`` command: who on a B12-lowering drug is due for a B12 test.

It screens its inputs exactly as ``screen`` does (same engine, same policy) and turns
the report into the care-gap list (:mod:`b12drugs.assess.gaps`), written by one of
:data:`b12drugs.emit.gaps.GAP_FORMATS`.  Two policy settings are set for the list, as
they concern what a *report* shows, not who is due: ``min_severity`` is ``info`` (a
quiet ``info`` alert still names a patient who is due) and normal results within the
interval are kept (to be counted as not due).  Disabled classes stay disabled.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .cli import (
    EXIT_INPUT,
    EXIT_PLUGIN,
    _check_output,
    _config,
    _manager,
    _output,
    _problems_printed_not_logged,
    command_workers,
    user_errors,
)
from .errors import InputError

# Declared here as in cli.py (importing the option objects from cli.py, which imports
# this module, would leave their types unknown to mypy).
_config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                              help="TOML configuration file.")
_rxnav_option = click.option("--rxnav/--offline", "rxnav", default=None,
                             help="Use the RxNav REST API (default: config; offline otherwise).")


def list_config(config: Any) -> Any:
    """The run's config for a gap list: every alert reported, none kept out."""
    policy = config.policy
    monitoring = policy.monitoring.model_copy(update={"report_not_due": True})
    return config.model_copy(update={"policy": policy.model_copy(
        update={"min_severity": "info", "monitoring": monitoring})})


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(allow_dash=True))
@click.option("--input-format", "-i", help="Input format (default: detected from content).")
@click.option("--format", "-f", "output_format", default="table", show_default=True,
              help="Output format: table, json, csv, fhir or html.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the list here instead of stdout.")
@click.option("--as-of", help="Reference date for due dates and days overdue (YYYY-MM-DD).")
@click.option("--engine", type=click.Choice(["auto", "record", "columnar", "spark"]),
              default="auto", show_default=True,
              help="auto: columnar for tables (CSV, Parquet, JSON Lines), record otherwise.")
@click.option("--spark-master", default=None, help="Spark master URL for --engine spark.")
@click.option("--temp-dir", type=click.Path(file_okay=False),
              help="Folder for temporary files of large runs.")
@click.option("--strict-plugins", is_flag=True, help="Treat any plugin problem as an error.")
@_config_option
@_rxnav_option
def gaps(inputs: tuple[str, ...], input_format: str | None, output_format: str,
         output: str | None, as_of: str | None, engine: str, spark_master: str | None,
         temp_dir: str | None, strict_plugins: bool,
         config_path: str | None, rxnav: bool | None) -> None:
    """List the patients on B12-lowering drugs who are due for a B12 status test."""
    from .assess.gaps import compute_gaps
    from .emit.gaps import GAP_FORMATS
    from .engines import run_inputs

    if not inputs:
        raise click.UsageError("give at least one input file, folder or - for stdin")
    writer = GAP_FORMATS.get(output_format)
    if writer is None:
        raise click.UsageError(f"unknown gaps format {output_format!r} "
                               f"(available: {', '.join(GAP_FORMATS)})")
    with user_errors(), _problems_printed_not_logged():
        _check_output(output)
        config = list_config(_config(config_path, rxnav, as_of))
        manager = _manager(strict_plugins)
        before = manager.hooks.problems.mark()
        result = run_inputs(inputs, input_format, config, manager, stdin=sys.stdin.buffer,
                            engine=engine, temp_dir=temp_dir, spark_master=spark_master,
                            workers=command_workers(config))
        try:
            report = result.to_report()
        finally:
            result.close()
        listed = compute_gaps(report, config.as_of())
        with _output(output) as out:
            writer.write(listed, out)
        problems = manager.hooks.problems.since(before)
        for problem in problems:
            click.echo(f"warning: {problem}", err=True)
        c = report.counts
        if c.read == 0 and c.rejected == 0:
            raise InputError("no records were read")
        if c.read and c.read == c.rejected:
            raise InputError(f"nothing could be screened: all {c.read} records were rejected")
    if any(p.where.startswith("sink ") for p in problems):
        sys.exit(EXIT_PLUGIN)
    if c.read and c.read == c.rejected:  # pragma: no cover - raised above
        sys.exit(EXIT_INPUT)
