"""Builtin plugin: the local RxNorm index resolver (order 200) and the ``rxnorm`` / ``kb``
command groups.

The resolver runs after the offline knowledge base (100) and before RxNav (300): codes,
NDCs and names the knowledge base does not know are looked up in the SQLite index built
by ``b12drugs rxnorm import``.  It is active only when an index exists: the configured
``[rxnorm_index] path`` (or ``B12DRUGS_RXNORM_INDEX``), else ``rxnorm.sqlite`` in the
user data directory.

Commands::

    b12drugs rxnorm import PATH [--index FILE]
    b12drugs rxnorm lookup TEXT|RXCUI|NDC [--format text|json] [--rxnav/--offline]
    b12drugs rxnorm cache stats|clear
    b12drugs kb verify [--source index|rxnav]
    b12drugs kb refresh [--class ID] [--output FILE] [--write NEW_FILE]
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from ..config import Config
from ..errors import B12DrugsError, InputError, SourceUnavailable
from ..hookspecs import hookimpl
from ..records import ResolveFn, Resolver
from .source import ConceptSource

log = logging.getLogger(__name__)


def index_path(config: Config) -> Path | None:
    """The index file this configuration points at, if it exists."""
    if not config.rxnorm_index.enabled:
        return None
    from .local_index import default_index_path

    configured = config.rxnorm_index.path
    path = Path(configured).expanduser() if configured else default_index_path()
    if path.is_file():
        return path
    if configured:
        log.warning("rxnorm_index.path %s does not exist; the local index is not used", path)
    return None


def make_resolver(config: Config) -> ResolveFn | None:
    """The resolve function for one run, or ``None`` when no index is available."""
    path = index_path(config)
    if path is None:
        return None
    from .local_index import LocalIndex
    from .rxnav_resolver import ClosingResolveFn, ConceptResolver

    index = LocalIndex(path)
    resolver = ConceptResolver(index, resolver_name="rxnorm-index",
                               label="the local RxNorm index", approximate=False)
    return ClosingResolveFn(resolver, close=index.close)


@hookimpl(trylast=True)
def b12drugs_resolvers() -> Iterable[Resolver]:
    return [
        Resolver(
            name="rxnorm-index",
            order=200,
            factory=make_resolver,
            description="RxNorm codes, NDCs and names from a local index built from RRF "
            "release files with 'b12drugs rxnorm import'",
        )
    ]


@hookimpl(trylast=True)
def b12drugs_cli_commands() -> Iterable[click.Command]:
    return [rxnorm, kb]


# --------------------------------------------------------------------------- helpers

EXIT_FINDINGS = 1


class UsageFailure(click.ClickException):
    """A bad option or configuration (exit 2, as the main CLI)."""

    exit_code = 2


class InputFailure(click.ClickException):
    """An input that cannot be read, a source that cannot be reached (exit 3)."""

    exit_code = 3


def _config(config_path: str | None) -> Config:
    from ..config import load_config

    try:
        return load_config(config_path)
    except B12DrugsError as exc:
        raise UsageFailure(str(exc)) from None


def _open_index(index: str | None, config: Config) -> ConceptSource:
    from .local_index import LocalIndex, default_index_path

    path = Path(index) if index else (
        Path(config.rxnorm_index.path).expanduser() if config.rxnorm_index.path
        else default_index_path()
    )
    try:
        return LocalIndex(path)
    except SourceUnavailable as exc:
        raise InputFailure(f"{exc}") from None


def _open_rxnav(config: Config) -> Any:
    try:
        from .rxnav import RxNavClient
    except ImportError as exc:  # pragma: no cover - the client ships with the core
        raise UsageFailure(f"the RxNav client is not available ({exc})") from None
    return RxNavClient(config.rxnav)


def _source(kind: str, index: str | None, config: Config) -> ConceptSource:
    return _open_rxnav(config) if kind == "rxnav" else _open_index(index, config)


def _close(source: object) -> None:
    close = getattr(source, "close", None)
    if callable(close):
        close()


_config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                              help="TOML configuration file.")
_index_option = click.option("--index", "index", type=click.Path(dir_okay=False),
                             help="Index file (default: [rxnorm_index] path, else "
                             "rxnorm.sqlite in the user data directory).")
_kb_option = click.option("--kb", "kb_dir", type=click.Path(file_okay=False, exists=True),
                          help="Knowledge-base folder (drug_classes.csv, drug_map.csv ...) "
                          "to use instead of the shipped one.")


def _knowledge(kb_dir: str | None) -> Any:
    from ..kb_maintenance import load_kb_dir
    from ..knowledge import load_knowledge

    try:
        return load_kb_dir(kb_dir) if kb_dir else load_knowledge()
    except (OSError, ValueError, KeyError) as exc:
        raise InputFailure(f"cannot read the knowledge base: {exc}") from None


# --------------------------------------------------------------------------- rxnorm


@click.group()
def rxnorm() -> None:
    """The local RxNorm index and the RxNav cache."""


@rxnorm.command("import")
@click.argument("path", type=click.Path(exists=True))
@_index_option
@_config_option
@click.option("--release", help="Release version to record (default: from the file names).")
def import_cmd(path: str, index: str | None, config_path: str | None, release: str | None) -> None:
    """Build the local index from an RxNorm release folder or zip (full release or
    Current Prescribable Content).  The previous index is replaced only when the new
    one is complete."""
    from .local_index import import_release

    config = _config(config_path)
    target = index or config.rxnorm_index.path
    try:
        report = import_release(
            path, target, release=release, progress=lambda m: click.echo(m, err=True)
        )
    except InputError as exc:
        raise InputFailure(str(exc)) from None
    except (OSError, sqlite3.Error) as exc:
        raise InputFailure(f"import failed, the previous index is unchanged: {exc}") from None
    click.echo(report.render())


_NDC_HYPHEN = re.compile(r"^\d{4,5}-\d{3,4}-\d{1,2}$")


def classify_input(text: str) -> str:
    """``rxcui``, ``ndc``, ``atc`` or ``name`` for what the user typed."""
    from .atc import ATC_CODE

    t = text.strip()
    if _NDC_HYPHEN.match(t) or (t.isdigit() and len(t) == 11):
        return "ndc"
    if t.isdigit() and len(t) <= 10:
        return "rxcui"
    if len(t) in (3, 4, 5, 7) and ATC_CODE.match(t.upper()):
        return "atc"
    return "name"


def _concept_chain(source: ConceptSource, rxcui: str, kb: Any) -> dict[str, Any]:
    props = source.properties(rxcui)
    entry: dict[str, Any] = {
        "rxcui": rxcui,
        "name": props.name if props else None,
        "tty": props.tty if props else None,
        "status": "Active" if props and props.active is not False else None,
    }
    ingredients = source.ingredients(rxcui) if props and props.active is not False else []
    if not ingredients:
        hist = source.history(rxcui)
        if hist is not None:
            entry["status"] = hist.status
            entry["remapped_to"] = [
                {"rxcui": c.rxcui, "name": c.name} for c in hist.remapped_to
            ]
            ingredients = list(hist.ingredients)
            for c in hist.remapped_to:
                ingredients += [i for i in source.ingredients(c.rxcui) if i not in ingredients]
    ings = []
    for ing in ingredients:
        codes = sorted({a.class_id for a in source.atc_classes(ing.rxcui)})
        classes: dict[str, Any] = {}
        if kb is not None:
            for c in kb.classes_for_ingredient(ing.name, ing.rxcui) + kb.classes_for_atc(codes):
                classes[c.class_id] = {"class_id": c.class_id, "label": c.label, "role": c.role}
        ings.append({"rxcui": ing.rxcui, "name": ing.name, "tty": ing.tty, "atc": codes,
                     "classes": list(classes.values())})
    entry["ingredients"] = ings
    return entry


def lookup_chain(
    text: str, source: ConceptSource, kb: Any, kind: str | None = None
) -> dict[str, Any]:
    """input -> concept(s) -> ingredients -> ATC -> knowledge-base classes."""
    from ..models import normalize_ndc

    kind = kind or classify_input(text)
    result: dict[str, Any] = {"input": text, "kind": kind, "source": source.name,
                              "data_version": source.data_version(),
                              "knowledge_version": kb.version if kb is not None else None,
                              "concepts": [], "notes": []}
    rxcuis: list[str] = []
    if kind == "rxcui":
        rxcuis = [text.strip()]
    elif kind == "ndc":
        try:
            ndc = normalize_ndc(text)
        except ValueError as exc:
            raise UsageFailure(str(exc)) from None
        result["ndc11"] = ndc
        rxcuis = source.rxcuis_by_ndc(ndc)
        if not rxcuis:
            info = source.ndc_status(ndc)
            if info is None:
                result["notes"].append(f"NDC {ndc} is unknown to {source.name}")
            else:
                result["ndc_status"] = info.status
                rxcuis = list(dict.fromkeys(c for c in (info.rxcui, *info.history_rxcuis) if c))
    elif kind == "atc":
        code = text.strip().upper()
        rxcuis = [c.rxcui for c in source.class_members(code)]
        if kb is not None:
            classes = [c.class_id for c in kb.classes_for_atc([code])]
            result["atc_classes"] = classes
            result["notes"].append(
                f"ATC {code}: " + (", ".join(classes) if classes else "no B12 class by prefix"))
        if not rxcuis:
            result["notes"].append(f"no ingredient with ATC {code} in {source.name}")
    else:
        rxcuis = source.rxcuis_by_name(text)
        if not rxcuis:
            result["notes"].append(f"no exact or normalised name match in {source.name}")
    for rxcui in rxcuis[:20]:
        result["concepts"].append(_concept_chain(source, rxcui, kb))
    if len(rxcuis) > 20:
        result["notes"].append(f"{len(rxcuis) - 20} more concepts not shown")
    return result


def render_chain(result: dict[str, Any]) -> str:
    version = f" {result['data_version']}" if result.get("data_version") else ""
    out = [f"{result['input']} ({result['kind']}) via {result['source']}{version}"]
    if "ndc11" in result:
        status = f" [{result['ndc_status']}]" if "ndc_status" in result else ""
        out.append(f"  NDC {result['ndc11']}{status}")
    for c in result["concepts"]:
        name = c["name"] or "(not in this source)"
        out.append(f"  -> {c['rxcui']} {c['tty'] or '?'} {name} [{c['status'] or 'Unknown'}]")
        for r in c.get("remapped_to", []):
            out.append(f"     remapped to {r['rxcui']} {r['name']}")
        if not c["ingredients"]:
            out.append("     no ingredient found")
        for i in c["ingredients"]:
            atc = f" ATC {', '.join(i['atc'])}" if i["atc"] else ""
            out.append(f"     -> ingredient {i['rxcui']} {i['tty']} {i['name']}{atc}")
            classes = ", ".join(f"{k['class_id']} ({k['role']})" for k in i["classes"])
            if result.get("knowledge_version") is None:
                classes = "not checked (no knowledge base)"
            out.append(f"        classes: {classes or 'none in the knowledge base'}")
    out += [f"  note: {n}" for n in result["notes"]]
    return "\n".join(out)


@rxnorm.command("lookup")
@click.argument("text")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--rxnav/--offline", "rxnav", default=False,
              help="Ask RxNav instead of the local index (default: --offline).")
@click.option("--as", "kind", type=click.Choice(["rxcui", "ndc", "atc", "name"]),
              help="How to read TEXT (default: guessed; 11 digits or hyphens = NDC, "
                   "A10BA02 = ATC).")
@_index_option
@_kb_option
@_config_option
def lookup_cmd(text: str, fmt: str, rxnav: bool, kind: str | None, index: str | None,
               kb_dir: str | None, config_path: str | None) -> None:
    """Show how TEXT (a name, an RxCUI, an NDC or a WHO ATC code) resolves: concepts,
    ingredients, ATC codes and the knowledge-base classes they fall in."""
    config = _config(config_path)
    source = _source("rxnav" if rxnav else "index", index, config)
    kb_note = None
    try:
        kb = _knowledge(kb_dir)
    except InputFailure as exc:
        kb, kb_note = None, f"{exc.message}; classes not shown"
    try:
        result = lookup_chain(text, source, kb, kind)
        if kb_note:
            result["notes"].append(kb_note)
    except SourceUnavailable as exc:
        raise InputFailure(f"{source.name} could not answer: {exc}") from None
    finally:
        _close(source)
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(render_chain(result))


@rxnorm.group("cache")
def cache() -> None:
    """The RxNav answer cache."""


def _client_cache(config_path: str | None) -> Any:
    return _open_rxnav(_config(config_path))


@cache.command("stats")
@_config_option
def cache_stats(config_path: str | None) -> None:
    """Where the RxNav cache is and how many answers it holds."""
    client = _client_cache(config_path)
    try:
        fn = getattr(client, "cache_stats", None) or getattr(client, "cache_info", None)
        if fn is None:
            raise UsageFailure("this RxNav client does not report cache statistics")
        stats = fn()
    finally:
        _close(client)
    for key, value in stats.items():
        click.echo(f"{key}: {value}")


@cache.command("clear")
@_config_option
def cache_clear(config_path: str | None) -> None:
    """Delete every cached RxNav answer."""
    client = _client_cache(config_path)
    try:
        client.clear_cache()
    finally:
        _close(client)
    click.echo("RxNav cache cleared")


# --------------------------------------------------------------------------- kb


@click.group()
def kb() -> None:
    """Check the knowledge base against RxNorm and propose additions."""


def _kb_location(kb_dir: str | None) -> Path:
    if kb_dir:
        return Path(kb_dir)
    from ..knowledge import data_dir

    try:
        return data_dir()
    except FileNotFoundError as exc:
        raise InputFailure(str(exc)) from None


_source_option = click.option("--source", "source_kind", type=click.Choice(["index", "rxnav"]),
                              default="index", show_default=True,
                              help="Check against the local index or RxNav.")


@kb.command("verify")
@_source_option
@_index_option
@_kb_option
@_config_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def verify_cmd(source_kind: str, index: str | None, kb_dir: str | None,
               config_path: str | None, fmt: str) -> None:
    """Check every RxCUI of drug_map.csv and other_drugs.csv: exists, active, ingredient
    term type, name.  Exit 0 when clean, 1 with findings."""
    from ..kb_maintenance import verify

    config = _config(config_path)
    location = _kb_location(kb_dir)
    source = _source(source_kind, index, config)
    try:
        report = verify(location, source)
    except (OSError, ValueError) as exc:
        raise InputFailure(f"cannot read the knowledge base in {location}: {exc}") from None
    finally:
        _close(source)
    click.echo(json.dumps(report.as_dict(), indent=2) if fmt == "json" else report.render())
    raise SystemExit(report.exit_code)


@kb.command("refresh")
@click.option("--class", "class_ids", multiple=True, metavar="ID",
              help="Only this alert class (repeatable; default: every alert class).")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write the diff to this file instead of stdout.")
@click.option("--write", "write_path", type=click.Path(dir_okay=False),
              help="Write the whole proposed drug_map.csv to this NEW file (never over an "
              "existing file, never over drug_map.csv).")
@_source_option
@_index_option
@_kb_option
@_config_option
def refresh_cmd(class_ids: tuple[str, ...], output: str | None, write_path: str | None,
                source_kind: str, index: str | None, kb_dir: str | None,
                config_path: str | None) -> None:
    """Propose drug_map.csv rows for ATC class members the knowledge base lacks, as a
    unified diff.  drug_map.csv itself is never modified.  Exit 0 when nothing is
    proposed, 1 with proposals."""
    from ..kb_maintenance import refresh

    config = _config(config_path)
    location = _kb_location(kb_dir)
    drug_map = location / "drug_map.csv"
    for target in (output, write_path):
        if target and _same_file(Path(target), drug_map):
            raise UsageFailure(f"refusing to write over {drug_map}: give a new file path")
    if write_path and Path(write_path).exists():
        raise UsageFailure(f"refusing to overwrite {write_path}: --write needs a new file path")
    source = _source(source_kind, index, config)
    try:
        report = refresh(location, source, class_ids or None)
    except KeyError as exc:
        raise UsageFailure(f"unknown class {exc.args[0]!r}") from None
    except SourceUnavailable as exc:
        raise InputFailure(f"{source.name} could not answer: {exc}") from None
    except (OSError, ValueError) as exc:
        raise InputFailure(f"cannot read the knowledge base in {location}: {exc}") from None
    finally:
        _close(source)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    summary = (f"# {len(report.proposals)} proposed rows from {report.source}; "
               "fill in evidence and reference before adding them")
    if output:
        Path(output).write_text(report.diff, encoding="utf-8")
        click.echo(f"{summary}\n# diff written to {output}")
    else:
        click.echo(summary)
        click.echo(report.diff, nl=False)
    if write_path:
        with open(write_path, "x", encoding="utf-8", newline="") as fh:
            fh.write(report.proposed_text)
        click.echo(f"# proposed drug_map.csv written to {write_path}")
    raise SystemExit(report.exit_code)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False
