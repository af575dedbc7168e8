"""Batch scoring on Apache Spark: the local engine's code, run once per bucket of projects.

The portfolio's three tables are read as Spark DataFrames (CSV or Parquet, a local folder
or any Hadoop-compatible URI) and unioned into one frame of text columns, each row keyed by
its trimmed ``project_id``. `repartition(buckets, key)` hash-partitions that frame: every
row of a project lands in the same partition, and each partition is one *bucket* of whole
projects. `mapInPandas` hands each bucket, once, to `score_bucket`, which runs exactly what
`forewarn score` runs locally: `features.loading.validate_frames` (the contract), then
`serving.batch.score_portfolio` with the champions' portfolio context and
`serving.batch.output_frame`, so a project gets the same numbers from either engine.

A bucket holds thousands of projects, not one: the local code is vectorised over a table
and pays a fixed cost per call (parsing, the contract's checks, two booster calls), so one
call per project — what ``groupBy("project_id").applyInPandas`` would make — pays it per
project. The number of buckets defaults to one per `PROJECTS_PER_BUCKET` projects and never
fewer than the cluster's default parallelism; `score_with_spark(buckets=…)` (the CLI's
``--buckets``) sets it.

The champions travel to the executors as their text artifacts (LightGBM model text and
``risk_model.json``, the context as JSON), broadcast once and rebuilt once per Python
worker. Scores are written as Parquet partitioned by ``as_of``; rows that break the
contract as Parquet under ``quarantine/``.

pyspark is imported inside the functions: the CLI and the local engine never load it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.contract import TABLES, column_names, required_columns
from serving.batch import output_frame, score_portfolio
from serving.champions import Champion, Champions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PROJECTS_PER_BUCKET = 2_000  # the local engine's chunk size: big enough to vectorise
KIND = "_kind"  # "score" or "quarantine" in the buckets' output
KEY = "_project"  # the trimmed project id every row is partitioned by
TABLE = "_table"
SEP = "__"  # <table>__<column>: a dot would read as a struct field in Spark

# The output file's columns (serving.batch.output_frame) and their Spark types.
_SCORE_TYPES = {
    "project_id": "string",
    "as_of": "date",
    "p_late": "double",
    "p_over_budget": "double",
    "rag_late": "string",
    "rag_over_budget": "string",
    "rag": "string",
    "late_reason": "string",
    "over_budget_reason": "string",
    "drivers_late": "string",
    "drivers_over_budget": "string",
    "portfolio": "string",
    "project_type": "string",
    "elapsed_fraction": "double",
    "spi": "double",
    "cpi": "double",
    "margin_late": "double",
    "margin_over_budget": "double",
    "delay_model": "string",
    "overrun_model": "string",
}
# features.loading's quarantine columns; "row" is the row's place in its bucket, not a line
# of the file (Spark reads files in parallel and numbers no lines).
_QUARANTINE_COLUMNS = ("table", "project_id", "column", "value", "rule")


@dataclass(frozen=True)
class ScoringParameters:
    """What `score_portfolio` takes besides the data: the settings in force."""

    as_of: date
    red: float
    amber: float
    top_drivers: int
    explain: bool
    delay_tolerance: float
    overrun_tolerance: float
    extra_attributes: tuple[str, ...] = ()


@dataclass
class SparkScores:
    """What a Spark scoring job wrote."""

    out: str
    as_of: date
    projects: int
    quarantined: int
    counts: dict[str, dict[str, int]]
    models: dict[str, str]


# --------------------------------------------------------------------- the champions


def champions_payload(champions: Champions) -> dict[str, Any]:
    """The champions as text: each model's LightGBM text and JSON, the context as JSON."""
    if champions.context is None:
        raise ValueError(
            "the champions have no portfolio context (no reference sample was logged with "
            "them): the Spark engine scores buckets of projects apart and needs it"
        )
    models = {}
    for target, champion in champions.by_target.items():
        booster_text, meta_json = champion.model.to_strings()
        models[target] = {
            "booster": booster_text,
            "meta": meta_json,
            "name": champion.name,
            "version": champion.version,
            "run_id": champion.run_id,
            "tags": champion.tags,
        }
    context = champions.context
    rows = [
        [
            None if pd.isna(v) else (pd.Timestamp(v).isoformat() if c == "as_of" else v)
            for c, v in zip(context.columns, row, strict=True)
        ]
        for row in context.itertuples(index=False)
    ]
    payload = {"models": models, "context": {"columns": list(context.columns), "rows": rows}}
    text = json.dumps(payload, sort_keys=True, default=float)
    payload["key"] = hashlib.sha256(text.encode()).hexdigest()
    return payload


def champions_from_payload(payload: dict[str, Any]) -> Champions:
    """The inverse of `champions_payload`."""
    from training.models import RiskModel

    by_target = {
        target: Champion(
            target=target,
            model=RiskModel.from_strings(m["booster"], m["meta"], num_threads=1),
            name=m["name"],
            version=m["version"],
            run_id=m["run_id"],
            tags=dict(m["tags"]),
        )
        for target, m in payload["models"].items()
    }
    spec = payload["context"]
    context = pd.DataFrame(spec["rows"], columns=spec["columns"])
    context["as_of"] = pd.to_datetime(context["as_of"]).astype("datetime64[ns]")
    context["project_type"] = context["project_type"].astype(object)
    for name in spec["columns"]:
        if name not in ("as_of", "project_type"):
            context[name] = context[name].astype("float64")
    return Champions(by_target, context)


_REBUILT: dict[str, Champions] = {}  # per Python worker: rebuilt once, not once per bucket


def _champions(payload: dict[str, Any]) -> Champions:
    key = payload["key"]
    if key not in _REBUILT:
        _REBUILT.clear()
        _REBUILT[key] = champions_from_payload(payload)
    return _REBUILT[key]


# ----------------------------------------------------------------------- one bucket


def score_bucket(
    tagged: pd.DataFrame, payload: dict[str, Any], parameters: ScoringParameters
) -> pd.DataFrame:
    """Score one bucket of whole projects: the tagged rows of the three tables in, the
    output rows (scores, then quarantined rows) out, in `output_schema`'s columns."""
    from features.loading import validate_frames

    frames: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    for table in TABLES:
        prefix = f"{table}{SEP}"
        columns = [c for c in tagged.columns if c.startswith(prefix)]
        if not columns:  # no such file (changes is optional)
            continue
        rows = tagged.loc[tagged[TABLE] == table, columns]
        frames[table] = rows.set_axis([c.removeprefix(prefix) for c in columns], axis=1)
        frames[table] = frames[table].reset_index(drop=True)
        files[table] = table
    loaded = validate_frames(frames, files, parameters.extra_attributes)
    champions = _champions(payload)
    scores = score_portfolio(
        loaded.portfolio,
        champions,
        parameters.as_of,
        red=parameters.red,
        amber=parameters.amber,
        top_drivers=parameters.top_drivers,
        explain=parameters.explain,
        delay_tolerance=parameters.delay_tolerance,
        overrun_tolerance=parameters.overrun_tolerance,
    )
    out = output_frame(scores, parameters.explain)
    out[KIND] = "score"
    quarantine = loaded.quarantine
    if len(quarantine):
        bad = pd.DataFrame(
            {
                f"q_{c}": quarantine[c].astype(str) if c in quarantine else None
                for c in _QUARANTINE_COLUMNS
            }
        )
        bad["q_project_id"] = _quarantined_ids(frames, quarantine)
        bad[KIND] = "quarantine"
        out = pd.concat([out, bad], ignore_index=True)
    wanted = output_columns(parameters.explain)
    for name in wanted:
        if name not in out:
            out[name] = None
    return out[list(wanted)]


def _quarantined_ids(frames: dict[str, pd.DataFrame], quarantine: pd.DataFrame) -> list[Any]:
    """The project id of each quarantined row (what names it when there is no line)."""
    from features.loading import FIRST_DATA_ROW

    ids = []
    for table, row in zip(quarantine["table"], quarantine["row"], strict=True):
        frame = frames.get(str(table))
        position = int(row) - FIRST_DATA_ROW if pd.notna(row) else -1
        ok = frame is not None and 0 <= position < len(frame) and "project_id" in frame
        ids.append(str(frame["project_id"].iloc[position]) if ok and frame is not None else None)
    return ids


def output_columns(explain: bool) -> tuple[str, ...]:
    """The buckets' output columns: the score file's, the quarantine's, and the row kind."""
    score = tuple(
        c for c in _SCORE_TYPES if explain or c not in ("drivers_late", "drivers_over_budget")
    )
    return (*score, *(f"q_{c}" for c in _QUARANTINE_COLUMNS), KIND)


def output_schema(explain: bool) -> str:
    """`output_columns` as a Spark DDL schema."""
    return ", ".join(f"`{c}` {_SCORE_TYPES.get(c, 'string')}" for c in output_columns(explain))


# ----------------------------------------------------------------------------- Spark


def spark_session(master: str | None = None, app_name: str = "forewarn-score") -> SparkSession:
    """A Spark session; `master` None leaves it to spark-submit (or local[*])."""
    from pyspark.sql import SparkSession

    # Executors on this machine run the driver's Python (its venv has Forewarn); on a
    # cluster spark-submit's --conf spark.pyspark.python says which one to use.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if master and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # stay on loopback
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    builder = (
        builder.config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if master and master.startswith("local"):
        builder = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
        )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def read_table(spark: SparkSession, data: str, table: str) -> DataFrame | None:
    """`<data>/<table>.parquet` or `.csv` as a DataFrame of text columns (None: absent).

    Every column is read as text, as the local reader reads CSV, and parsed by the same
    contract code in `score_bucket`.
    """
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as sf

    base = data.rstrip("/")
    for suffix in (".parquet", ".csv"):
        path = f"{base}/{table}{suffix}"
        try:
            if suffix == ".parquet":
                frame = spark.read.parquet(path)
            else:
                frame = (
                    spark.read.option("header", "true")
                    .option("inferSchema", "false")
                    .option("escape", '"')
                    .option("multiLine", "true")
                    .option("encoding", "UTF-8")
                    .csv(path)
                )
        except AnalysisException as exc:
            if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc).lower():
                continue
            raise
        return frame.select([sf.col(f"`{c}`").cast("string").alias(c) for c in frame.columns])
    if table == "changes":
        return None
    raise FileNotFoundError(f"{data}: no {table} table: expected {table}.csv or {table}.parquet")


def tagged_rows(spark: SparkSession, data: str) -> DataFrame:
    """The three tables as one DataFrame: ``_table``, ``_project`` and ``<table>__<column>``.

    ``_project`` is the trimmed project id (what the contract's checks compare), so
    partitioning by it keeps every row of a project together.
    """
    from pyspark.sql import functions as sf

    tables = {t: read_table(spark, data, t) for t in TABLES}
    for table, frame in tables.items():  # whole-file problems stop here, as locally
        missing = [
            c for c in required_columns(table) if frame is not None and c not in frame.columns
        ]
        if missing:
            raise ValueError(
                f"{data}/{table}: no {', '.join(missing)} column (contract v1 requires it)"
            )
    parts = []
    for table, frame in tables.items():
        if frame is None:
            continue
        known = set(column_names(table)) | set(frame.columns)
        parts.append(
            frame.select(
                sf.lit(table).alias(TABLE),
                sf.trim(sf.col("project_id")).alias(KEY),
                *[sf.col(f"`{c}`").alias(f"{table}{SEP}{c}") for c in frame.columns if c in known],
            )
        )
    rows = parts[0]
    for part in parts[1:]:
        rows = rows.unionByName(part, allowMissingColumns=True)
    return rows


def bucket_count(spark: SparkSession, data: str, projects_per_bucket: int) -> int:
    """One bucket per `projects_per_bucket` projects, at least one per core Spark offers."""
    from pyspark.sql import functions as sf

    projects = read_table(spark, data, "projects")
    assert projects is not None
    n = projects.select(sf.trim(sf.col("project_id"))).distinct().count()
    return max(spark.sparkContext.defaultParallelism, math.ceil(n / projects_per_bucket))


def default_as_of(spark: SparkSession, data: str) -> date | None:
    """The portfolio's latest status report date (the local engine's default)."""
    from pyspark.sql import functions as sf

    reports = read_table(spark, data, "status_reports")
    assert reports is not None
    if "report_date" not in reports.columns:
        return None
    latest = reports.select(sf.max(sf.try_to_date(sf.trim("report_date")))).first()
    return None if latest is None or latest[0] is None else latest[0]


def score_with_spark(
    spark: SparkSession,
    data: str,
    out: str,
    champions: Champions,
    parameters: ScoringParameters,
    buckets: int | None = None,
    projects_per_bucket: int = PROJECTS_PER_BUCKET,
) -> SparkScores:
    """Score every running project of `data` on Spark; Parquet by ``as_of`` under `out`.

    `buckets` partitions (default: `bucket_count`), each scored by one call of the local
    engine's code.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as sf

    if buckets is not None and buckets < 1:
        raise ValueError(f"--buckets {buckets}: must be at least 1")
    if projects_per_bucket < 1:
        raise ValueError(f"projects per bucket {projects_per_bucket}: must be at least 1")
    payload = spark.sparkContext.broadcast(champions_payload(champions))
    rows = tagged_rows(spark, data)
    buckets = buckets or bucket_count(spark, data, projects_per_bucket)
    wanted = [c for c in rows.columns if c != KEY]

    def each_bucket(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # A partition arrives as Arrow batches (spark.sql.execution.arrow.maxRecordsPerBatch
        # rows each); a project's rows may straddle two, so the whole partition is one call.
        parts = list(batches)
        if parts:
            tagged = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
            yield score_bucket(tagged, payload.value, parameters)

    # repartition with a number of partitions is kept as asked (adaptive execution does not
    # coalesce it): one task per bucket, each project in exactly one.
    result = (
        rows.repartition(buckets, sf.col(KEY))
        .select(wanted)
        .mapInPandas(each_bucket, schema=output_schema(parameters.explain))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        scores = result.where(sf.col(KIND) == "score").select(
            [c for c in output_columns(parameters.explain) if c in _SCORE_TYPES]
        )
        scores.write.mode("overwrite").partitionBy("as_of").parquet(f"{out.rstrip('/')}/scores")
        quarantine = result.where(sf.col(KIND) == "quarantine").select(
            [sf.col(f"q_{c}").alias(c) for c in _QUARANTINE_COLUMNS]
        )
        quarantined = quarantine.count()
        if quarantined:
            quarantine.write.mode("overwrite").parquet(f"{out.rstrip('/')}/quarantine")
        counted = scores.groupBy("rag", "rag_late", "rag_over_budget").count().toPandas()
    finally:
        result.unpersist()
    counts: dict[str, dict[str, int]] = {}
    for col in ("rag", "rag_late", "rag_over_budget"):
        by = counted.groupby(col)["count"].sum() if len(counted) else pd.Series(dtype=int)
        counts[col] = {r: int(by.get(r, 0)) for r in ("red", "amber", "green", "n/a")}
    models = {t: f"{c.name} v{c.version}" for t, c in champions.by_target.items()}
    return SparkScores(
        out=out,
        as_of=parameters.as_of,
        projects=int(np.sum(list(counts["rag"].values()))),
        quarantined=int(quarantined),
        counts=counts,
        models=models,
    )
