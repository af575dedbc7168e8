"""Forewarn's settings: one place, environment prefix ``FOREWARN_``.

Only entry points (the CLI, the BentoML service module) build a `Settings`; every stage
receives the values it needs as arguments. This module imports nothing of ours.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_workers() -> int:
    """One service worker per CPU this process may run on, at most 4 (each holds the
    models: ~300 MB)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


class Settings(BaseSettings):
    """Every tunable of Forewarn, overridable as ``FOREWARN_<NAME>`` (lists as JSON)."""

    model_config = SettingsConfigDict(env_prefix="FOREWARN_", extra="ignore")

    # --- where things go -------------------------------------------------------------
    out_dir: Path = Field(Path("forewarn-out"), description="default folder for outputs")
    models_dir: Path = Field(Path("models"), description="local MLflow store and artifacts")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; MLFLOW_TRACKING_URI wins, then this, then "
        "sqlite:///<models_dir>/mlflow.db",
    )
    experiment: str = Field("forewarn", description="MLflow experiment for training runs")
    # --- team store (docs/operations.md) ---
    artifact_root_uri: str | None = Field(
        None,
        description="where a new experiment's artifacts go (a shared folder or object store "
        "for a team on PostgreSQL); default <models_dir>/artifacts; a tracking server "
        "uses its own",
    )
    monitoring_experiment: str = Field("forewarn-monitoring", description="for drift runs")

    # --- labels ------------------------------------------------------------------------
    delay_tolerance: float = Field(0.05, ge=0, description="late when slip exceeds this")
    overrun_tolerance: float = Field(0.05, ge=0, description="over budget above this")

    # --- features ----------------------------------------------------------------------
    extra_attributes: list[str] = Field(
        default_factory=list, description="extra projects columns to use as features"
    )

    # --- import (forewarn import: P6 / MS Project schedules; docs/import.md) ---------------
    import_change_threshold: float = Field(
        0.05, ge=0, description="a snapshot's duration or forecast cost moving by more: a change"
    )
    import_high_float_days: float = Field(44, ge=0, description="DCMA high float, working days")
    import_high_duration_days: float = Field(
        44, ge=0, description="DCMA high duration, working days"
    )
    import_portfolio_field: str | None = Field(
        None, description="P6 project code or MS Project custom property naming the portfolio"
    )
    import_type_field: str | None = Field(None, description="the same, for project_type")
    import_risks_field: str | None = Field(None, description="the same, for open_risks")
    import_issues_field: str | None = Field(None, description="the same, for open_issues")

    # --- models and RAG ---------------------------------------------------------------
    red_threshold: float = Field(0.60, gt=0, lt=1, description="p at or above: red")
    amber_threshold: float = Field(0.35, gt=0, lt=1, description="p at or above: amber")
    seed: int = 42
    holdout_days: int = Field(91, gt=0, description="retraining holdout: last quarter")
    min_holdout_projects: int = Field(30, gt=0, description="fewer: grouped CV instead")
    gate_auc_margin: float = Field(0.01, ge=0, description="challenger may lose this AUC")
    gate_brier_margin: float = Field(0.005, ge=0, description="and gain this Brier")
    gate_interval_margin: float = Field(
        0.02,
        ge=0,
        description="a quantile challenger's interval score may be this share higher "
        "than the champion's (0.02: 2 %)",
    )
    forward_min_projects: int = Field(
        100,
        gt=0,
        description="test forward in time only when the later side holds this many projects "
        "(10 of each outcome); below that, repeated project-grouped cross-validation",
    )
    cv_repeats: int = Field(3, gt=0, description="repeats of the grouped cross-validation")
    quantiles: bool = Field(
        True, description="train also forewarn-finish / forewarn-cost (P10–P90 of slip, overrun)"
    )

    # --- portfolio KPIs (forewarn kpi) -------------------------------------------------
    kpi_on_time_target: float = Field(
        0.90, gt=0, le=1, description="KPI target: share of the year's projects on time"
    )
    kpi_within_budget_target: float = Field(
        0.90,
        gt=0,
        le=1,
        description="KPI target: share within budget (at most overrun_tolerance, 5%, over)",
    )
    kpi_correlation: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="correlation between projects' outcomes that widens the KPI interval",
    )

    # --- report ------------------------------------------------------------------------
    watch_list_size: int = Field(
        40, gt=0, description="red/amber projects in the report's watch list, riskiest first"
    )

    # --- language (serving/i18n.py; docs/glossary.md) -----------------------------------
    lang: str = Field(
        "en",
        description="language of the report, the explanation view, the driver sentences and "
        "the CLI's tables: en or zh-CN (--lang overrides; the API takes lang or "
        "Accept-Language per request)",
    )
    wan_yi: bool = Field(
        True, description="zh-CN pages write amounts of 10,000 and more in 万 / 亿 (1.2亿)"
    )

    # --- serving -----------------------------------------------------------------------
    api_key: str | None = Field(None, description="bearer token; required off loopback")
    data: Path | None = Field(
        None, description="portfolio the service's explanation pages are drawn from"
    )
    host: str = "127.0.0.1"
    port: int = 3000
    max_body_bytes: int = Field(5_000_000, gt=0, description="larger bodies get 413")
    max_projects_per_request: int = Field(500, gt=0)
    request_timeout_s: int = Field(30, gt=0)
    max_concurrency: int = Field(64, gt=0)
    # The API under attack (issue 17/19): a body that does not arrive in this many seconds
    # gets 408, so slow senders cannot hold the concurrency slots for the 30 s timeout.
    body_timeout_s: float = Field(5.0, gt=0, description="seconds to receive a request body")
    workers: int = Field(default_factory=default_workers, gt=0, description="service processes")
    threads: int = Field(8, gt=0)
    access_log: bool = Field(False, description="BentoML's access log (~1 ms a request)")
    tracing: bool = Field(
        False, description="OpenTelemetry spans for /score and /explain (BentoML's exporter)"
    )
    top_drivers: int = Field(3, gt=0)

    # --- monitoring (docs/monitoring.md explains each default) -------------------------
    drift_share_threshold: float = Field(
        0.10, gt=0, le=1, description="data drift fails when this share of features drifted"
    )
    drift_numeric_threshold: float = Field(
        0.15, gt=0, le=1, description="a numeric feature drifts at this KS distance"
    )
    drift_categorical_threshold: float = Field(
        0.10, gt=0, le=1, description="a categorical feature or flag: Jensen-Shannon distance"
    )
    drift_stattest_threshold: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="significance level of the noise floor: a distance counts only beyond "
        "what chance reaches at this level for the sample sizes at hand",
    )
    drift_unseen_threshold: float = Field(
        0.05, gt=0, le=1, description="fails at this share of projects in unseen categories"
    )
    prediction_drift_threshold: float = Field(
        0.25, gt=0, le=1, description="p_late / p_over_budget fail at this KS distance"
    )
    performance_auc_drop: float = Field(0.05, ge=0, description="AUC may fall this much")
    performance_brier_rise: float = Field(0.05, ge=0, description="Brier may rise this much")
    performance_ece_rise: float = Field(
        0.10, ge=0, description="calibration error may rise this much"
    )
    performance_min_projects: int = Field(
        20, gt=0, description="stages with fewer newly closed projects are not judged"
    )

    @field_validator("extra_attributes", mode="before")
    @classmethod
    def _split_attributes(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("lang")
    @classmethod
    def _known_lang(cls, value: str) -> str:
        # The same tags as serving.i18n.LANGUAGES (this module imports nothing of ours).
        tag = value.strip().replace("_", "-").lower()
        if tag == "en" or tag.startswith("en-"):
            return "en"
        if tag in ("zh", "zh-cn", "zh-hans", "zh-hans-cn"):
            return "zh-CN"
        raise ValueError(f"lang {value!r} is not one of: en, zh-CN")

    @model_validator(mode="after")
    def _amber_below_red(self) -> Settings:
        if self.amber_threshold >= self.red_threshold:
            raise ValueError("amber_threshold must be below red_threshold")
        return self

    def resolved_tracking_uri(self) -> str:
        """The tracking URI in force: MLFLOW_TRACKING_URI, then ours, then the local store."""
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.models_dir.resolve()}/mlflow.db"

    def artifact_root(self) -> str:
        if self.artifact_root_uri:
            return self.artifact_root_uri
        return (self.models_dir.resolve() / "artifacts").as_uri()
