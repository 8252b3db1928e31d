"""Apache Spark: the columnar engine's work on a cluster, for what outgrows one machine.

Design (issue 13, section 4), and why:

1. *Positions.*  Both engines order alerts by the position of each patient's first
   finding and list notices in row order, so every row gets its position in the input
   (``_seq``) and its row number within its file (``_line``).  They are computed in the
   JVM (``spark_partition_id`` and ``monotonically_increasing_id`` on the scan, plus the
   row count of each input partition, one small job), the same numbering
   ``zipWithIndex`` gives, without sending every row through Python.
2. *Resolve once, on the driver.*  The distinct drug keys (the
   :data:`~b12drugs.read.tabular.DRUG_KEY` columns, checked and normalised exactly as
   the engine does: :func:`~b12drugs.read.tabular.checked`) are collected, resolved
   once through a :class:`~b12drugs.engines.Runtime` (resolver chain and hooks, the
   RxNav cache) and broadcast as ``DrugQuery -> Outcome``.  Executors never resolve:
   each worker process builds one runtime (cached in a module global) and pre-fills its
   drug cache with the broadcast outcomes.
3. *A partition, not a patient, per Python call.*  Rows are repartitioned by patient
   (``repartition(n, patient_id)``, so a patient's rows meet in one partition), sorted
   by position within each partition, and each partition is handed to the columnar
   engine as Arrow batches (``mapInArrow``).  ``groupBy(patient).applyInArrow`` pays a
   Python call per patient (44 s for the 245,000 patients of 1M rows in the issue's
   measurement); here the Python cost is one :class:`ColumnarScreener` per partition,
   which does the per-patient assessment (the shared assess layer) itself.
4. *Merge on the driver.*  Each partition yields rows ``(record, phase, seq, n, kind,
   json)``: its alerts (seq: position of the patient's first finding), the notices it
   listed with their positions, and its books (counts, notice counts, policy counts).
   Counts are summed; alerts are ordered by ``(seq, n)``, the single-machine order;
   notices are re-limited per kind (a window over ``(phase, seq, n)``), and the closing
   notices (policy notes, "N more ... not listed", exact counts) are made by the same
   :class:`~b12drugs.engines.books.Books` as one run makes them.

What differs from the single-machine engine on the same file (everything else is equal:
alerts and counts exactly, notices as a set while under the limit):

* CSV lines are taken as row number + 1 (the header is line 1): equal unless the file
  has blank lines or quoted cells with line breaks (Spark reads CSV line by line, as a
  splittable file must be read).  Rows with more or fewer fields than the header are
  rejected too, but the reason reads "fields do not match the header's W columns" (Spark
  does not tell how many fields it found) and the notice keeps the row's id.  Bytes that
  are not UTF-8 are read as U+FFFD, not as Windows-1252 (no "not UTF-8" notice).
* Notices are the same set; in the report's list, rows' notices come in row order and
  the closing notices (policy notes, "N more ... not listed") last, as in one run, but
  the closing "not listed" notices may come in another order of kinds.
* A DataFrame given to :func:`screen_dataframe` has no lines: its rows are located as
  ``SOURCE row N`` (N from 1, in the DataFrame's partition order).
* Plugins registered programmatically on the driver's plugin manager do not exist on
  the executors: executors load the installed plugins (entry points) of their Python.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import InputError
from .models import Alert, Counts, Notice, Rejection, Report, SourceLocation

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

    from .engines.result import Result
    from .engines.runtime import Runtime
    from .plugins import PluginManager

#: Schema of what each partition yields.
OUTPUT_SCHEMA = "record string, phase int, seq long, n long, kind string, json string"
#: The columns of a row handed to the executors (besides the canonical columns).
_META = ("_src", "_loc", "_seq", "_line")
#: Rows per Arrow batch handed to the columnar engine (``run_spark``'s session).
ARROW_BATCH_ROWS = 65_536
#: The oldest Java Spark 4 runs on.
MIN_JAVA = 17


# -- the driver -----------------------------------------------------------------------


@dataclass
class SparkScreening:
    """What :func:`screen_dataframe` gives back.

    ``alerts``: one row per alert with the report contract's fields (:class:`Alert`),
    ordered as the single-machine report orders them; ``notices``: the report's
    notices (:class:`Notice` fields), limited per kind with the closing notices;
    ``counts``: one row (:class:`Counts`).  ``report`` is the same as a report (its
    alerts left out: they are in ``alerts``), ``severities`` the alerts per severity.
    :meth:`unpersist` frees the cached partition results.
    """

    alerts: DataFrame
    notices: DataFrame
    counts: DataFrame
    report: Report
    severities: dict[str, int]
    alert_json: DataFrame  # (seq, n, json), for writers that stream
    _cached: DataFrame | None = field(default=None, repr=False)

    def unpersist(self) -> None:
        if self._cached is not None:
            self._cached.unpersist()
            self._cached = None


def screen_dataframe(
    df: DataFrame,
    patients: DataFrame | None = None,
    *,
    config: Config | None = None,
    manager: PluginManager | None = None,
    source: str = "dataframe",
    partitions: int | None = None,
    notice_limit: int | None = None,
    temp_dir: str | None = None,
) -> SparkScreening:
    """Screen a Spark DataFrame of dispensing rows.

    ``df``: columns named as in a CSV export (``patient_id``, ``rx_id``, ``drug_name``,
    ``rxcui``, ``ndc``, ``status``, ``start_date``, ``days_supply``, ...; the aliases of
    :data:`b12drugs.read.columns.ALIASES`, case-insensitive), any types (read as the
    text a CSV export would hold).  ``patients``: an optional table, one row per
    ``patient_id``, of ``birth_date``, ``sex``, ``diet``, ``conditions``; joined by
    patient, its values fill in where a row has none.  Rows are located as
    ``SOURCE row N``.  ``partitions``: how many partitions rows are spread over by
    patient (default: 4 per core of the session).

    :raises InputError: no drug column, or a patient table without ``patient_id`` or
        with a patient on more than one row.
    """
    from pyspark.sql import functions as F

    prepared = _canonical(df, source, "row", 0)
    prepared = _positioned([prepared], [0])
    if patients is not None:
        prepared = _with_patients(prepared, patients)
    return _screen(prepared, [source], [], config=config, manager=manager,
                   partitions=partitions, notice_limit=notice_limit, temp_dir=temp_dir,
                   functions=F)


def _screen(prepared: DataFrame, sources: Sequence[str], rejected: Sequence[Rejection], *,
            config: Config | None, manager: PluginManager | None, partitions: int | None,
            notice_limit: int | None, temp_dir: str | None, functions: Any) -> SparkScreening:
    """Screen rows already in the executors' layout (canonical columns and ``_META``)."""
    from pyspark.sql import Window

    from .engines.books import DEFAULT_NOTICE_LIMIT, Books
    from .engines.runtime import Runtime

    F = functions
    spark = prepared.sparkSession
    limit = DEFAULT_NOTICE_LIMIT if notice_limit is None else notice_limit
    config = config or Config()
    runtime = Runtime(config, manager)
    try:
        outcomes = _resolve_distinct(prepared, runtime)
        sc = spark.sparkContext
        job = _Job(config.model_copy(update={"sinks": ()}), sc.broadcast(outcomes),
                   uuid.uuid4().hex, limit, temp_dir)
        n = partitions or max(sc.defaultParallelism * 4, 1)
        out = (prepared.repartition(n, "patient_id").sortWithinPartitions("_seq")
               .mapInArrow(functools.partial(_screen_partition, job), OUTPUT_SCHEMA))
        out = out.persist()
        books = Books(limit)
        for src in sources:
            books.source(src)
        for rec in rejected:
            books.reject(rec, rec.location.file or "")
        severities: dict[str, int] = {}
        for (data,) in out.filter(F.col("record") == "books").select("json").collect():
            _add_books(books, severities, json.loads(data))
        notices = out.filter(F.col("record") == "notice")
        window = Window.partitionBy("kind").orderBy("phase", "seq", "n")
        listed = (notices.withColumn("_k", F.row_number().over(window))
                  .filter(F.col("_k") <= limit).orderBy("phase", "seq", "n")
                  .select("json").collect())
        books.notices.extend(Notice.model_validate_json(data) for (data,) in listed)
        books.close(config, runtime.disabled_rules)
        report = books.report(runtime.kb.version)
    except BaseException:
        runtime.close()
        raise
    runtime.close()
    alert_json = (out.filter(F.col("record") == "alert").orderBy("seq", "n")
                  .select("seq", "n", "json"))
    alerts = alert_json.select(F.from_json("json", _spark_schema(Alert)).alias("a")) \
        .select("a.*")
    notice_rows = [n.model_dump(mode="json") for n in report.notices]
    notices_df = spark.createDataFrame(notice_rows, _spark_schema(Notice)) if notice_rows \
        else spark.createDataFrame([], _spark_schema(Notice))
    counts_df = spark.createDataFrame([report.counts.model_dump()], _spark_schema(Counts))
    return SparkScreening(alerts, notices_df, counts_df, report, severities, alert_json, out)


def _add_books(books: Any, severities: dict[str, int], part: dict[str, Any]) -> None:
    """Add one partition's books to the run's."""
    for key, n in part["counts"].items():
        books.counts[key] += n
    for kind, n in part["notice_counts"].items():
        books.notice_counts[kind] = books.notice_counts.get(kind, 0) + n
    books.unreported += part["unreported"]
    books.not_due += part["not_due"]
    for class_id, n in part["disabled_seen"].items():
        books.disabled_seen[class_id] = books.disabled_seen.get(class_id, 0) + n
    for severity, n in part["severities"].items():
        severities[severity] = severities.get(severity, 0) + n


def _resolve_distinct(prepared: DataFrame, runtime: Runtime) -> dict[Any, Any]:
    """Every distinct drug of the rows resolved once: ``DrugQuery -> Outcome``."""
    import polars as pl

    from .models import DrugQuery
    from .read.tabular import DRUG_KEY, checked, codings_of

    raw_key = [k for k in DRUG_KEY if k != "codings"]
    rows = prepared.select(*raw_key).distinct().collect()
    if not rows:
        return {}
    raw = pl.DataFrame([tuple(r) for r in rows], schema=dict.fromkeys(raw_key, pl.String),
                       orient="row").with_row_index("_line").with_columns(
        pl.col("_line").cast(pl.Int64))
    keys = checked(raw).filter(pl.col("_reject").is_null()).select(*DRUG_KEY).unique()
    queries = [DrugQuery.from_parts(codings_of(rxcui, ndc, atc, cods), text)
               for rxcui, ndc, atc, cods, text in keys.iter_rows()]
    return runtime.resolve(queries)


def _canonical(df: DataFrame, source: str, location: str, header_lines: int,
               reject: Column | None = None, header: Sequence[str] | None = None,
               ) -> DataFrame:
    """``df``'s columns found by their names (``header``: the names to find them by,
    one per column of ``df``, when not its own), as text, in the canonical names, with
    the row's source and location kind; ``header_lines`` is added to row numbers."""
    from pyspark.sql import functions as F

    from .read.columns import ALIASES, DRUG_COLUMNS, header_columns

    names = df.columns
    given = list(header) if header is not None else names
    found = header_columns(given)
    if not any(c in found for c in DRUG_COLUMNS):
        raise InputError(f"no drug column (need one of drug_name, rxcui, ndc, atc; found "
                         f"{', '.join(given[:20])})", source)
    types = dict(df.dtypes)
    cols = []
    for canon in ALIASES:
        if canon in found:
            name = names[found[canon]]
            cols.append(_as_text(F.col(_quoted(name)), types[name]).alias(canon))
        else:
            cols.append(F.lit(None).cast("string").alias(canon))
    cols += [F.lit(source).alias("_src"), F.lit(location).alias("_loc"),
             F.lit(header_lines).cast("long").alias("_head"),
             (reject if reject is not None else F.lit(None).cast("string")).alias("_reject")]
    return df.select(*cols)


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _as_text(col: Column, dtype: str) -> Column:
    """A typed column as the text a CSV export would hold (whole floats as integers,
    dates and times as ISO dates), as the Parquet reader does."""
    from pyspark.sql import functions as F

    if dtype in ("double", "float") or dtype.startswith("decimal"):
        return F.when(col == F.floor(col), col.cast("long").cast("string")) \
            .otherwise(col.cast("string"))
    if dtype == "date" or dtype.startswith("timestamp"):
        return F.date_format(col, "yyyy-MM-dd")
    return col.cast("string")


def _positioned(parts: Sequence[DataFrame], ranks: Sequence[int]) -> DataFrame:
    """The inputs (in order) as one frame, each row with its position in the whole run
    (``_seq``, from 0) and its row number in its input (``_line``: from 1, plus the
    input's header lines).  One small job counts the rows of each input partition."""
    from pyspark.sql import functions as F

    frames = [p.withColumn("_rank", F.lit(r)) for p, r in zip(parts, ranks, strict=True)]
    whole = frames[0]
    for other in frames[1:]:
        whole = whole.unionByName(other)
    # non-deterministic columns: evaluated on the scan, never moved past it
    whole = whole.withColumn("_pid", F.spark_partition_id()) \
        .withColumn("_mid", F.monotonically_increasing_id())
    sizes = sorted(whole.groupBy("_rank", "_pid").agg(
        F.count(F.lit(1)).alias("n"), F.min("_mid").alias("m0")).collect(),
        key=lambda r: (r["_rank"], r["_pid"]))
    offsets = []
    seq = 0
    row = 0
    rank = None
    for r in sizes:
        if r["_rank"] != rank:
            rank, row = r["_rank"], 0
        offsets.append((r["_rank"], r["_pid"], r["m0"], seq, row))
        seq += r["n"]
        row += r["n"]
    spark = whole.sparkSession
    table = spark.createDataFrame(
        offsets, "_rank int, _pid int, _m0 long, _seq0 long, _row0 long")
    step = F.col("_mid") - F.col("_m0")
    return (whole.join(F.broadcast(table), ["_rank", "_pid"])
            .withColumn("_seq", F.col("_seq0") + step)
            .withColumn("_line", F.col("_row0") + step + 1 + F.col("_head"))
            .drop("_rank", "_pid", "_mid", "_m0", "_seq0", "_row0", "_head"))


def _with_patients(prepared: DataFrame, patients: DataFrame) -> DataFrame:
    """Rows with the patient table's columns where a row has none."""
    from pyspark.sql import functions as F

    from .read.columns import PATIENT_COLUMNS, header_columns

    names = patients.columns
    found = header_columns(names)
    if "patient_id" not in found:
        raise InputError(f"the patient table has no patient_id column (found "
                         f"{', '.join(names[:20])})")
    types = dict(patients.dtypes)
    cols = [_as_text(F.col(_quoted(names[found[c]])), types[names[found[c]]]).alias(c)
            for c in ("patient_id", *PATIENT_COLUMNS) if c in found]
    table = patients.select(*cols)
    twice = table.groupBy("patient_id").count().filter(F.col("count") > 1).limit(1).collect()
    if twice:
        raise InputError(f"the patient table has patient {twice[0]['patient_id']!r} on more "
                         "than one row (one row per patient expected)")
    given = [c for c in PATIENT_COLUMNS if c in found]
    table = table.select("patient_id", *(F.col(c).alias(f"_p_{c}") for c in given))
    joined = prepared.join(table, "patient_id", "left")
    return joined.select(*(F.coalesce(F.col(c), F.col(f"_p_{c}")).alias(c) if c in given
                           else F.col(c) for c in prepared.columns))


def _spark_schema(model: Any) -> Any:
    """The Spark schema of a pydantic model's JSON form (dates as ISO text)."""
    from pyspark.sql import types as T

    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def of(node: dict[str, Any]) -> Any:
        if "$ref" in node:
            return of(defs[node["$ref"].rsplit("/", 1)[-1]])
        if "anyOf" in node:
            kinds = [k for k in node["anyOf"] if k.get("type") != "null"]
            return of(kinds[0]) if kinds else T.StringType()
        if "allOf" in node:
            return of(node["allOf"][0])
        kind = node.get("type")
        if kind == "object" and "properties" in node:
            return T.StructType([T.StructField(k, of(v), True)
                                 for k, v in node["properties"].items()])
        if kind == "array":
            item = node.get("items") or (node.get("prefixItems") or [{}])[0]
            return T.ArrayType(of(item), True)
        return {"integer": T.LongType(), "number": T.DoubleType(),
                "boolean": T.BooleanType()}.get(kind or "", T.StringType())

    return of(schema)


# -- the executors ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What every partition of one run needs (pickled to the executors)."""

    config: Config
    outcomes: Any  # Broadcast[dict[DrugQuery, Outcome]]
    run: str  # names the run, so a reused worker refills its drug cache once per run
    notice_limit: int
    temp_dir: str | None


#: The worker process's runtime and the broadcast it was filled from.
_WORKER: dict[str, Any] = {}


def _worker_runtime(job: _Job) -> Runtime:
    """One runtime per worker process (knowledge base, rules, plugins loaded once), its
    drug cache filled with the run's broadcast outcomes."""
    from .engines.runtime import Runtime

    key = job.config.model_dump_json()
    runtime: Runtime | None = _WORKER.get("runtime")
    if runtime is None or _WORKER.get("config") != key:
        if runtime is not None:
            runtime.close()
        runtime = Runtime(job.config)
        _WORKER.update(runtime=runtime, config=key, broadcast=None)
    if _WORKER.get("broadcast") != job.run:
        runtime.outcomes = dict(job.outcomes.value)
        runtime.cache_limit = max(runtime.cache_limit, len(runtime.outcomes) * 2)
        _WORKER["broadcast"] = job.run
    return runtime


def _screen_partition(job: _Job, batches: Iterator[pa.RecordBatch],
                      ) -> Iterator[pa.RecordBatch]:
    """One partition's rows (a patient's rows all here, in input order) through the
    columnar engine; its alerts, listed notices and books as output rows."""
    import polars as pl

    from .engines.columnar import ColumnarScreener
    from .read.columns import ALIASES
    from .read.tabular import TableBatch, checked

    screener: ColumnarScreener | None = None
    positions: list[pl.Series] = []
    raw_names = [*ALIASES, "_line", "_reject"]
    for batch in batches:
        if not batch.num_rows:
            continue
        if screener is None:
            screener = ColumnarScreener(runtime=_worker_runtime(job),
                                        notice_limit=job.notice_limit, temp_dir=job.temp_dir)
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        for part in frame.partition_by("_src", "_loc", maintain_order=True):
            src, loc = part["_src"][0], part["_loc"][0]
            positions.append(part["_seq"])
            screener.feed_table([TableBatch(checked(part.select(raw_names)), src, loc)], src)
    if screener is None:
        return
    result = screener.finish()
    try:
        where = pl.concat(positions).to_numpy()
        yield from _output_rows(screener, result, where)
    finally:
        result.close()


def _output_rows(screener: Any, result: Result, where: Any) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    schema = pa.schema([("record", pa.string()), ("phase", pa.int32()), ("seq", pa.int64()),
                        ("n", pa.int64()), ("kind", pa.string()), ("json", pa.string())])
    rows: list[tuple[str, int, int, int, str | None, str]] = []

    def flush() -> pa.RecordBatch:
        cols = list(zip(*rows, strict=True))
        rows.clear()
        return pa.RecordBatch.from_arrays([pa.array(c, t.type) for c, t in
                                           zip(cols, schema, strict=True)], schema=schema)

    assert result.spool is not None
    for seq, n, data in result.spool.entries():
        rows.append(("alert", 0, int(where[seq]), n, None, data.decode()))
        if len(rows) >= 10_000:
            yield flush()
    books = screener.books
    for index, (phase, seq, n) in screener.notice_positions.items():
        notice = books.notices[index]
        rows.append(("notice", phase, int(where[seq]), n, notice.kind,
                     notice.model_dump_json()))
        if len(rows) >= 10_000:
            yield flush()
    rows.append(("books", 0, 0, 0, None, json.dumps({
        "counts": books.counts, "notice_counts": books.notice_counts,
        "unreported": books.unreported, "not_due": books.not_due,
        "disabled_seen": books.disabled_seen, "severities": result.severities})))
    yield flush()


# -- the command line ---------------------------------------------------------------------


def java_version() -> int:
    """The major version of the ``java`` Spark would start (``JAVA_HOME``, else PATH).

    :raises InputError: no Java, or older than 17.
    """
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if java is None or not Path(java).exists():
        raise InputError(f"Apache Spark needs Java {MIN_JAVA}+ (java not found); install a "
                         f"JRE {MIN_JAVA} or later, or set JAVA_HOME")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True,
                             timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"Apache Spark needs Java {MIN_JAVA}+ ({java} does not run: "
                         f"{exc})") from None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if found is None:
        raise InputError(f"Apache Spark needs Java {MIN_JAVA}+ (cannot tell the version of "
                         f"{java})")
    major = int(found.group(1))
    if major == 1 and found.group(2):  # "1.8.0_..." is Java 8
        major = int(found.group(2))
    if major < MIN_JAVA:
        raise InputError(f"Apache Spark needs Java {MIN_JAVA}+ (found Java {major} at "
                         f"{java}); install a newer JRE or set JAVA_HOME")
    return major


def session(master: str | None = None, temp_dir: str | None = None,
            app_name: str = "b12drugs") -> SparkSession:
    """A Spark session for the command line: quiet logs, no UI, Arrow batches.

    For a local master, workers run this Python (``PYSPARK_PYTHON`` set to it when
    unset), so the command works from a plain virtualenv.

    :raises InputError: pyspark is not installed, or Java is missing or too old.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError("--engine spark needs pyspark: pip install 'b12drugs[spark]'") \
            from None
    master = master or "local[*]"
    java_version()
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    log_conf = Path(__file__).with_name("spark-log4j2.properties")
    quiet = f"-Dlog4j2.configurationFile={log_conf.as_uri()}"
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.driver.extraJavaOptions", quiet)
               .config("spark.executor.extraJavaOptions", quiet)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
               .config("spark.sql.adaptive.enabled", "false"))
    cores = _local_cores(master)
    if cores is not None:  # a few shuffle partitions per core, not Spark's 200
        builder = builder.config("spark.sql.shuffle.partitions", str(max(2, 2 * cores)))
        # a local master's executor is the driver's JVM: Spark's 1 GiB is too small for
        # the Arrow batches of a few cores (cluster masters keep their own settings)
        builder = builder.config("spark.driver.memory",
                                 os.environ.get("B12DRUGS_SPARK_DRIVER_MEMORY", "4g"))
    if temp_dir is not None:
        builder = builder.config("spark.local.dir", temp_dir)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start (py4j / Java problems)
        raise InputError(f"Apache Spark did not start: {str(exc).strip()[:500]}") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _local_cores(master: str) -> int | None:
    """The cores of a local master (``local``, ``local[4]``, ``local[*]``), else None."""
    found = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master.strip())
    if found is None:
        return None
    n = found.group(1)
    return int(n) if n and n != "*" else (os.cpu_count() or 1) if n else 1


def screen_files(spark: SparkSession, inputs: Sequence[str | os.PathLike[str]], *,
                 config: Config | None = None, manager: PluginManager | None = None,
                 notice_limit: int | None = None, partitions: int | None = None,
                 temp_dir: str | None = None) -> SparkScreening:
    """Screen CSV and Parquet files (or folders of them, read in name order) on
    ``spark``: one report, as the single-machine engine gives for the same files (rows
    located as ``file:line`` for CSV, ``file row N`` for Parquet).  Inputs that are
    neither, or cannot be read, are rejected records, as in one run.

    :raises InputError: standard input (``-``) given.
    """
    from pyspark.sql import functions as F

    files, rejected = _input_files([str(i) for i in inputs])
    parts, sources = [], []
    for path, kind in files:
        try:
            parts.append(_read(spark, path, kind))
            sources.append(str(path))
        except InputError as exc:
            rejected.append(Rejection(location=SourceLocation(file=str(path)[:256]),
                                      reason=str(exc)[:500]))
    if not parts:
        return _nothing_read(spark, rejected, config, manager)
    return _screen(_positioned(parts, range(len(parts))), sources, rejected, config=config,
                   manager=manager, partitions=partitions, notice_limit=notice_limit,
                   temp_dir=temp_dir, functions=F)


def run_spark(inputs: Sequence[str | Path], config: Config | None, manager: PluginManager | None,
              *, master: str | None = None, temp_dir: str | None = None) -> Result:
    """``b12drugs screen --engine spark``: :func:`screen_files` on a session of
    ``master`` (default ``local[*]``), into a :class:`~b12drugs.engines.result.Result`
    whose alerts are spooled in order on the driver.  The session is stopped at the end.

    :raises InputError: standard input given, Spark cannot start, or a Spark job failed.
    """
    from .engines.result import Result
    from .engines.spill import AlertSpool, TempArea

    if any(str(i) == "-" for i in inputs):
        raise InputError("--engine spark reads files and folders, not standard input")
    spark = session(master, temp_dir)
    temp = TempArea(temp_dir)
    try:
        screening = screen_files(spark, inputs, config=config, manager=manager,
                                 temp_dir=temp_dir)
        spool = AlertSpool(temp)
        for seq, _, data in screening.alert_json.toLocalIterator():
            spool.add_json(seq, data.encode())  # written by the executors' spools
        screening.unpersist()
        result = Result(screening.report, spool, screening.severities, temp)
    except BaseException as exc:
        temp.close()
        if _spark_failure(exc):
            raise InputError(f"the Spark job failed: {_first_line(exc)}") from None
        raise
    finally:
        spark.stop()
    if config is not None and config.sinks:
        from .emit.delivery import deliver
        from .engines.runtime import Runtime

        with Runtime(config, manager) as runtime:
            whole = deliver(result.to_report(), config, runtime.hooks)
        result.close()
        result = Result(whole, None, result.severities)
    return result


def _spark_failure(exc: BaseException) -> bool:
    """An error raised by Spark or the JVM bridge (not by b12drugs' own checks)."""
    module = type(exc).__module__ or ""
    return module.startswith(("pyspark", "py4j"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = [ln for ln in lines if "Error" in ln or "Exception" in ln]
    return (last[-1] if last else lines[0] if lines else type(exc).__name__)[:500]


def _nothing_read(spark: SparkSession, rejected: Sequence[Rejection], config: Config | None,
                  manager: PluginManager | None) -> SparkScreening:
    """The screening of a run whose every input was rejected."""
    from .engines.books import Books
    from .engines.runtime import Runtime

    books = Books()
    with Runtime(config, manager) as runtime:
        for rec in rejected:
            books.reject(rec, rec.location.file or "")
        books.close(runtime.config, runtime.disabled_rules)
        report = books.report(runtime.kb.version)
    alert_json = spark.createDataFrame([], "seq long, n long, json string")
    notices = [n.model_dump(mode="json") for n in report.notices]
    return SparkScreening(
        spark.createDataFrame([], _spark_schema(Alert)),
        spark.createDataFrame(notices, _spark_schema(Notice)),
        spark.createDataFrame([report.counts.model_dump()], _spark_schema(Counts)),
        report, {}, alert_json)


def _input_files(inputs: Sequence[str]) -> tuple[list[tuple[Path, str]], list[Rejection]]:
    """The CSV and Parquet files of the inputs (folders read in name order), and a
    rejection for each input that is neither."""
    from .engines.inputs import iter_input_files
    from .read import delimited, parquet

    files: list[tuple[Path, str]] = []
    rejected: list[Rejection] = []

    def reject(path: Path, reason: str) -> None:
        rejected.append(Rejection(location=SourceLocation(file=str(path)[:256]), reason=reason))

    for raw in inputs:
        if raw == "-":
            raise InputError("--engine spark reads files and folders, not standard input")
        path = Path(raw)
        found = list(iter_input_files(path)) if path.is_dir() else [path]
        if path.is_dir() and not found:
            reject(path, "folder holds no input files")
        for f in found:
            try:
                with f.open("rb") as fh:
                    head = fh.read(64 * 1024)
            except OSError as exc:
                reject(f, f"cannot open: {exc.strerror or exc}")
                continue
            if parquet.sniff(head, f.name) >= 0.5:
                files.append((f, "parquet"))
            elif delimited.sniff(head, f.name) >= 0.5:
                files.append((f, "csv"))
            elif not head.strip():
                reject(f, "empty input")
            else:
                reject(f, "not a CSV or Parquet table (--engine spark reads those; use "
                          "--engine auto for other formats)")
    return files, rejected


def _read(spark: SparkSession, path: Path, kind: str) -> DataFrame:
    """One input file as rows in the executors' layout (without positions)."""
    from pyspark.sql import functions as F

    if kind == "parquet":
        return _canonical(spark.read.parquet(str(path)), str(path), "row", 0)
    from .read.columns import delimiter

    with path.open("rb") as fh:
        first = fh.readline(1 << 20).decode("utf-8-sig", "replace").rstrip("\r\n")
    delim = delimiter(first)
    header = next(csv.reader([first], delimiter=delim), [])
    names = [f"c{i}" for i in range(len(header))]
    schema = ", ".join(f"{n} string" for n in [*names, "_corrupt"])
    df = spark.read.csv(str(path), schema=schema, header=True, sep=delim, quote='"',
                        escape='"', mode="PERMISSIVE", columnNameOfCorruptRecord="_corrupt",
                        enforceSchema=True, encoding="UTF-8")
    reject = F.when(F.col("_corrupt").isNotNull(),
                    F.lit(f"fields do not match the header's {len(header)} columns"))
    return _canonical(df, str(path), "line", 1, reject, [*header, "_corrupt"])
