"""Inputs: files, folders and stdin, their formats, and the engine that screens them.

Each input's format is detected from its content (or forced with ``--input-format``).
Tabular inputs (formats with ``read_table``: CSV, Parquet, JSON Lines orders) go to the
columnar engine when every input of the run is tabular; otherwise every input goes to
the record engine (a run's inputs are one report, and a patient's orders may come from
several of them).  ``engine`` forces one: ``"record"`` reads tables row by row (for
comparison and debugging); ``"columnar"`` refuses inputs that are not tables.

An input that cannot be identified or opened is counted as one rejected record with a
notice; the other inputs are still screened.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..config import Config
from ..errors import InputError, PluginError
from ..models import Notice, Rejection, Report, SourceLocation
from ..plugins import PluginManager
from ..records import InputFormat
from .record import Screener
from .result import Result
from .runtime import Runtime

SNIFF_BYTES = 64 * 1024
ENGINES = ("auto", "record", "columnar", "spark")

ProgressFn = Callable[[int], None]


def detect_format(
    head: bytes, filename: str, formats: Sequence[InputFormat], hooks: object | None = None
) -> InputFormat | None:
    """The format whose sniffer is most confident (>= 0.5) about ``head``."""
    import logging

    best: tuple[float, InputFormat] | None = None
    for fmt in formats:
        try:
            score = float(fmt.sniff(head, filename))
        except Exception as exc:  # a broken sniffer must not stop detection
            logging.getLogger(__name__).warning("sniffer of format %s failed: %s", fmt.name,
                                                type(exc).__name__)
            continue
        if score >= 0.5 and (best is None or score > best[0]):
            best = (score, fmt)
    return best[1] if best else None


def iter_input_files(path: Path) -> Iterator[Path]:
    """Files below a folder, sorted, skipping hidden files and folders."""
    for p in sorted(path.rglob("*")):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts):
            yield p


class _CountingReader(io.RawIOBase):
    """Binary reader that reports bytes read (for progress bars)."""

    def __init__(self, raw: IO[bytes], progress: ProgressFn):
        self._raw = raw
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._progress(n)
        return n


@dataclass
class _Input:
    """One input of a run: where it is, and its format or why it cannot be read."""

    source: str
    path: Path | None = None
    stream: io.BufferedReader | None = None  # stdin, already opened for sniffing
    fmt: InputFormat | None = None
    folder: bool = False  # a folder read whole by its format (FHIR Bulk Data)
    reason: str | None = None
    notice: Notice | None = None  # about the stdin stream's encoding

    @property
    def tabular(self) -> bool:
        return self.fmt is not None and self.fmt.read_table is not None and not self.folder


def _xml_with_dtd(head: bytes) -> bool:
    start = head.lstrip()[:1]
    return start == b"<" and (b"<!DOCTYPE" in head or b"<!ENTITY" in head)


class _Planner:
    def __init__(self, formats: Sequence[InputFormat], forced: InputFormat | None,
                 encoding: str | None):
        self.formats = formats
        self.forced = forced
        self.encoding = encoding

    def sniff(self, item: _Input, stream: io.BufferedReader) -> None:
        from ..read.encoding import decoded

        text, notice = decoded(stream, item.source, self.encoding)
        if item.stream is not None:  # stdin is read once: keep what was decoded
            item.stream, item.notice = text, notice
        head = text.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        if not head.strip():
            item.reason = "empty input"
            return
        item.fmt = self.forced or detect_format(head, Path(item.source).name, self.formats)
        if item.fmt is None:
            if _xml_with_dtd(head):
                item.reason = ("XML with a document type declaration (DTD) refused: entity "
                               "declarations and external DTDs are not accepted")
            else:
                names = ", ".join(sorted(f.name for f in self.formats))
                item.reason = (f"format not recognised (installed formats: {names}); "
                               "use --input-format")

    def plan(self, paths: Sequence[str | Path], stdin: IO[bytes] | None) -> list[_Input]:
        out: list[_Input] = []
        for raw in paths:
            if str(raw) == "-":
                if stdin is None:
                    raise InputError("'-' (standard input) given but no stdin stream")
                stream: Any = stdin if hasattr(stdin, "peek") else io.BufferedReader(stdin)  # type: ignore[arg-type]
                item = _Input("<stdin>", stream=stream)
                self.sniff(item, stream)
                out.append(item)
                continue
            path = Path(raw)
            if path.is_dir():
                forced = self.forced
                dir_fmt = forced if forced and forced.parse_dir else None
                if dir_fmt is None and forced is None:
                    dir_fmt = next((f for f in self.formats
                                    if f.sniff_dir and f.sniff_dir(path) >= 0.5), None)
                if dir_fmt is not None and dir_fmt.parse_dir is not None:
                    out.append(_Input(str(path), path, fmt=dir_fmt, folder=True))
                    continue
                files = list(iter_input_files(path))
                if not files:
                    out.append(_Input(str(path), reason="folder holds no input files"))
                out.extend(self.file(f) for f in files)
                continue
            out.append(self.file(path))
        return out

    def file(self, path: Path) -> _Input:
        item = _Input(str(path), path)
        try:
            with path.open("rb") as fh:
                self.sniff(item, fh)  # type: ignore[arg-type]
        except OSError as exc:
            item.reason = f"cannot open: {exc.strerror or exc}"
        return item


def run_inputs(
    paths: Sequence[str | Path],
    input_format: str | None = None,
    config: Config | None = None,
    manager: PluginManager | None = None,
    *,
    stdin: IO[bytes] | None = None,
    progress: ProgressFn | None = None,
    engine: str = "auto",
    encoding: str | None = None,
    temp_dir: str | None = None,
    on_rows: Callable[[int], None] | None = None,
    on_assessed: Callable[[int, int], None] | None = None,
    columnar_options: dict[str, Any] | None = None,
    spark_master: str | None = None,
    workers: int | None = None,
) -> Result:
    """Screen files, folders (and ``-`` for stdin) into one result.

    ``on_rows(n)`` and ``on_assessed(done, total)``: progress of a columnar run (rows
    read; partitions of patients assessed).

    ``workers``: processes that assess a columnar run that spilled to disk, this one
    included (:mod:`b12drugs.engines.workers`); None: ``[engine] workers``, else 1.
    Worker processes are started with multiprocessing's ``spawn``, so a script that
    asks for more than one needs the ``if __name__ == "__main__":`` guard.

    ``engine="spark"`` hands the inputs (CSV or Parquet files or folders) to Apache
    Spark (:func:`b12drugs.spark.run_spark`, master ``spark_master``).

    :raises InputError: ``input_format`` names no installed format, ``engine`` is
        ``"columnar"`` but an input is not a table, or ``encoding`` is unknown.
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    if engine == "spark":
        from ..spark import run_spark  # pyspark: the 'spark' extra

        return run_spark(paths, config, manager, master=spark_master, temp_dir=temp_dir)
    runtime = Runtime(config, manager)
    try:
        formats = runtime.hooks.input_formats()
        forced = None
        if input_format is not None:
            forced = runtime.hooks.format_for(input_format)
            if forced is None:
                names = ", ".join(sorted(f.name for f in formats))
                raise InputError(f"unknown input format {input_format!r} (installed: {names})")
        plan = _Planner(formats, forced, encoding).plan(paths, stdin)
        readable = [i for i in plan if i.reason is None]
        if engine == "columnar":
            other = [i.source for i in readable if not i.tabular]
            if other:
                raise InputError("the columnar engine reads tables (csv, parquet, jsonl); "
                                 f"not a table: {', '.join(other[:3])}; use --engine record")
        columnar = engine == "columnar" or (engine == "auto" and bool(readable)
                                            and all(i.tabular for i in readable))
        run = _Run(runtime, encoding, progress)
        if columnar:
            settings = runtime.config.engine
            options = {"budget": settings.memory_mb << 20, "partitions": settings.partitions,
                       "workers": workers or settings.workers or 1, "on_assessed": on_assessed,
                       **(columnar_options or {})}
            return run.columnar(plan, temp_dir or settings.temp_dir, on_rows, options)
        return run.records(plan)
    finally:
        runtime.close()


def screen_inputs(
    paths: Sequence[str | Path],
    input_format: str | None = None,
    config: Config | None = None,
    manager: PluginManager | None = None,
    *,
    stdin: IO[bytes] | None = None,
    progress: ProgressFn | None = None,
    engine: str = "auto",
    encoding: str | None = None,
) -> Report:
    """:func:`run_inputs`, as a whole report (alerts in memory)."""
    result = run_inputs(paths, input_format, config, manager, stdin=stdin, progress=progress,
                        engine=engine, encoding=encoding)
    try:
        return result.to_report()
    finally:
        result.close()


class _Run:
    def __init__(self, runtime: Runtime, encoding: str | None, progress: ProgressFn | None):
        self.runtime = runtime
        self.encoding = encoding
        self.progress = progress

    @contextmanager
    def _open(self, item: _Input) -> Iterator[tuple[io.BufferedReader, Notice | None]]:
        """The input's stream, as UTF-8 (see :mod:`b12drugs.read.encoding`), counted for
        the progress bar, and the notice about its encoding, if any."""
        from ..read.encoding import decoded

        if item.stream is not None:
            yield item.stream, item.notice
            return
        assert item.path is not None
        with item.path.open("rb") as fh:
            raw: Any = fh
            if self.progress is not None:
                raw = io.BufferedReader(_CountingReader(fh, self.progress), 1 << 16)
            yield decoded(raw, item.source, self.encoding)

    def records(self, plan: list[_Input]) -> Result:
        s = Screener(runtime=self.runtime)
        for item in plan:
            if item.reason is not None:
                s.books.reject(_rejection(item), item.source)
                continue
            fmt = item.fmt
            assert fmt is not None
            if item.folder:
                assert fmt.parse_dir is not None and item.path is not None
                self._guard(s.books, s.feed, fmt, functools.partial(
                    fmt.parse_dir, item.path, item.source), item.source)
                continue
            try:
                with self._open(item) as (stream, notice):
                    if notice is not None:
                        s.books.notice(notice)
                    self._guard(s.books, s.feed, fmt,
                                functools.partial(fmt.parse, stream, item.source), item.source)
            except OSError as exc:
                s.books.reject(_rejection(item, f"cannot read: {exc.strerror or exc}"),
                               item.source)
        return Result.of(s.finish())

    def columnar(self, plan: list[_Input], temp_dir: str | None,
                 on_rows: Callable[[int], None] | None, options: dict[str, Any]) -> Result:
        from .columnar import ColumnarScreener  # polars: only for runs that need it

        s = ColumnarScreener(runtime=self.runtime, temp_dir=temp_dir, on_rows=on_rows,
                             **options)
        try:
            self._feed_columnar(s, plan)
        except BaseException:  # a failure or Ctrl-C: no process or file is left behind
            s.abort()
            raise
        return s.finish()

    def _feed_columnar(self, s: Any, plan: list[_Input]) -> None:
        for item in plan:
            if item.reason is not None:
                s.reject_input(item.source, item.reason)
                continue
            fmt = item.fmt
            assert fmt is not None and fmt.read_table is not None
            try:
                with self._open(item) as (stream, notice):
                    if notice is not None:
                        s.books.notice(notice)
                    self._guard(s.books, s.feed_table, fmt, functools.partial(
                        _ahead, fmt.read_table, stream, item.source), item.source)
            except OSError as exc:
                s.reject_input(item.source, f"cannot read: {exc.strerror or exc}")

    def _guard(self, books: Any, feed: Callable[[Iterable[Any], str], None], fmt: InputFormat,
               parse: Callable[[], Iterable[Any]], source: str) -> None:
        """Feed a parser's records; an :class:`InputError` rejects the rest of that
        input, any other exception is a plugin problem; other inputs go on either way."""
        try:
            feed(parse(), source)
        except InputError as exc:
            books.reject(_rejection(_Input(source), str(exc)), source)
        except PluginError:
            raise
        except Exception as exc:
            self.runtime.hooks.problem(fmt.provider, f"input format {fmt.name}", exc)
            books.reject(_rejection(_Input(source), f"the {fmt.name} reader failed "
                                    f"({type(exc).__name__}); records after this point were "
                                    "not read"), source)


def _ahead(read: Callable[[Any, str], Iterable[Any]], stream: Any, source: str,
           ) -> Iterator[Any]:
    """A table reader's batches, read one batch ahead of the screening (a thread)."""
    from .ahead import read_ahead

    return read_ahead(read(stream, source))


def _rejection(item: _Input, reason: str | None = None) -> Rejection:
    return Rejection(location=SourceLocation(file=item.source[:256]),
                     reason=reason or item.reason or "unreadable")
