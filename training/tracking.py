"""MLflow tracking and registry: the only module of Forewarn that imports mlflow.

Runs live in one experiment; each target's model is a LightGBM booster in LightGBM's text
format (never pickle), registered as ``forewarn-delay`` / ``forewarn-overrun``, with the
calibrator and category levels (``risk_model.json``) stored inside the logged model, so a
registered version alone rebuilds a `RiskModel`. Aliases: ``champion``, ``challenger``,
``previous-champion``.

mlflow is imported inside the functions: it takes seconds, and the CLI's ``--help`` and the
training units must not pay for it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training.models import RiskModel

if TYPE_CHECKING:
    from mlflow import MlflowClient

REGISTERED_NAMES = {"delay": "forewarn-delay", "overrun": "forewarn-overrun"}
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
REFERENCE_FILE = "reference/reference.parquet"
RISK_MODEL_FILE = "risk_model.json"
_MAX_TAG = 5000  # MLflow caps tag values (8000 in sqlite); keep room


@dataclass
class VersionInfo:
    """A registered version: its number, run and tags."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)


@dataclass
class LoadedModel:
    """A registered model rebuilt as a `RiskModel`, with what the registry says of it."""

    model: RiskModel
    name: str
    version: str
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def beats_rules(self) -> bool | None:
        """Whether the model beat every applicable PMO rule on AUC when evaluated."""
        value = self.tags.get("beats_rules")
        return None if value in (None, "n/a") else value == "true"

    @property
    def beats_rules_detail(self) -> str:
        return self.tags.get("beats_rules_detail", "")


@dataclass
class TrainingRecord:
    """Everything one training run logs (one run per target)."""

    target: str
    model: RiskModel
    report: dict[str, Any]
    report_markdown: str
    params: dict[str, Any]
    fingerprint: dict[str, Any]
    tags: dict[str, str]
    reference: pd.DataFrame
    plots: list[Path] = field(default_factory=list)
    run_name: str | None = None


def configure(
    tracking_uri: str, artifact_root: str | None = None, experiment: str = "forewarn"
) -> str:
    """Point MLflow at the store, create the experiment if needed; returns its id.

    A local sqlite store's folder is created here (not at import). MLflow's own chatter
    (progress bars, INFO lines) is silenced: ``--json`` output must stay one object.
    """
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "Failed to resolve installed pip version": harmless, we pass pip_requirements.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = str(found.experiment_id)
    else:
        experiment_id = client.create_experiment(experiment, artifact_location=artifact_root)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()


def flatten_metrics(report: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of an evaluation report as MLflow metric names (``stage/0-20/auc``)."""
    out: dict[str, float] = {}
    for key, value in report.items():
        name = f"{prefix}{key}".replace("+", "plus")
        if key in ("by_stage", "baselines", "beats_rules"):
            if key == "by_stage":
                for stage, block in value.items():
                    out.update(flatten_metrics(block, f"{prefix}stage/{stage}/"))
            elif key == "baselines":
                for baseline, block in value.items():
                    if block is not None:
                        out.update(flatten_metrics(block, f"{prefix}{baseline}/"))
            continue
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, f"{name}/"))
        elif isinstance(value, list) and len(value) == 2 and key.endswith("_ci"):
            out[f"{name}_low".replace("+", "plus")] = float(value[0])
            out[f"{name}_high".replace("+", "plus")] = float(value[1])
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and value is not None and np.isfinite(value):
            out[name.replace("+", "plus")] = float(value)
    return out


def _tag(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_TAG]


def log_training(record: TrainingRecord) -> VersionInfo:
    """Log one target's run and register its model; returns the new version.

    Logs params (settings), tags (fingerprint, decision data), metrics (overall, by stage,
    baselines), the feature list, the evaluation report (JSON and Markdown), plots, the
    reference sample with predictions (parquet), and the booster with signature, input
    example, explicit pip requirements and ``risk_model.json`` beside it.
    """
    import lightgbm
    import mlflow
    import mlflow.lightgbm
    from mlflow.models import infer_signature

    name = REGISTERED_NAMES[record.target]
    model = record.model
    with mlflow.start_run(run_name=record.run_name or f"train-{record.target}") as run:
        mlflow.log_params({k: _tag(v)[:6000] for k, v in record.params.items()})
        mlflow.set_tags(
            {
                "target": record.target,
                **{k: _tag(v) for k, v in record.tags.items()},
            }
        )
        mlflow.log_metrics(flatten_metrics(record.report))
        mlflow.log_dict(record.fingerprint, "data_fingerprint.json")
        mlflow.log_dict(
            {
                "features": model.feature_names,
                "categorical_levels": model.categorical_levels,
                "monotone": model.metadata.get("monotone", {}),
            },
            "features.json",
        )
        mlflow.log_dict(record.report, f"evaluation/{record.target}.json")
        mlflow.log_text(record.report_markdown, f"evaluation/{record.target}.md")
        for plot in record.plots:
            mlflow.log_artifact(str(plot), "plots")
        with tempfile.TemporaryDirectory() as tmp:
            reference_path = Path(tmp) / "reference.parquet"
            record.reference.to_parquet(reference_path, index=False)
            mlflow.log_artifact(str(reference_path), "reference")
            meta_path = Path(tmp) / RISK_MODEL_FILE
            meta_path.write_text(model.to_strings()[1])
            example = _input_example(model, record.reference)
            signature = infer_signature(example, model.booster.predict(example.to_numpy()))
            info = mlflow.lightgbm.log_model(
                model.booster,
                name="model",
                signature=signature,
                input_example=example,
                # Explicit: inferring requirements costs seconds and guesses.
                pip_requirements=[
                    f"lightgbm=={lightgbm.__version__}",
                    f"numpy=={np.__version__}",
                    f"pandas=={pd.__version__}",
                ],
                extra_files=[str(meta_path)],
            )
        version_tags = {
            "target": record.target,
            "run_id": run.info.run_id,
            **{k: _tag(v) for k, v in record.tags.items()},
        }
        version = _register(name, info.model_uri, run.info.run_id, info.model_id, version_tags)
    return VersionInfo(name=name, version=version, run_id=run.info.run_id, tags=version_tags)


def _register(
    name: str, model_uri: str, run_id: str, model_id: str | None, tags: dict[str, str]
) -> str:
    """Create the version with its tags in one call (and the registered model if new).

    Done by hand rather than through ``registered_model_name`` so that the tags exist from
    the version's first moment and MLflow prints nothing.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description=f"Forewarn {name.removeprefix('forewarn-')} risk model"
        )
    created = client.create_model_version(
        name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
    )
    return str(created.version)


def _input_example(model: RiskModel, reference: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """A few encoded rows (what the booster takes), the most complete ones first."""
    encoded = pd.DataFrame(
        model.encode(reference.head(200)) if len(reference) else np.zeros((1, 0)),
        columns=model.feature_names,
    )
    order = encoded.isna().sum(axis=1).sort_values(kind="stable").index
    return encoded.loc[order[:n]].reset_index(drop=True)


def alias_version(target: str, alias: str) -> VersionInfo | None:
    """The version an alias points at, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    name = REGISTERED_NAMES[target]
    try:
        return _version_info(_client().get_model_version_by_alias(name, alias))
    except MlflowException:
        return None


def _version_info(mv: Any) -> VersionInfo:
    return VersionInfo(
        name=str(mv.name),
        version=str(mv.version),
        run_id=str(mv.run_id),
        tags=dict(mv.tags or {}),
        aliases=list(mv.aliases or []),
    )


def set_alias(target: str, alias: str, version: str) -> None:
    """Point `alias` at `version` (MLflow moves an alias in one write)."""
    _client().set_registered_model_alias(REGISTERED_NAMES[target], alias, version)


def set_version_tags(target: str, version: str, tags: Mapping[str, Any]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(REGISTERED_NAMES[target], version, key, _tag(value))


def set_run_tags(run_id: str, tags: Mapping[str, Any]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_tag(run_id, key, _tag(value))


@contextmanager
def retrain_lock(target: str) -> Iterator[None]:
    """Held while `target` is retrained against the configured store, so that two
    retrains do not both gate against the same champion and both promote.

    A file lock (flock): beside the database for a sqlite store, in the temporary folder
    (keyed by the URI) otherwise, so it holds between processes on one machine; retrains
    on several machines against one PostgreSQL store are not serialised by it.
    """
    import fcntl
    import hashlib

    import mlflow

    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///") + f".{target}.retrain.lock")
    else:
        digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"forewarn-{digest}-{target}.retrain.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def promote(target: str, version: str) -> str | None:
    """Make `version` champion; the old champion keeps a ``previous-champion`` alias.

    Called once, after every check. The champion alias is moved by a single write, so a
    reader sees either the old or the new champion, never none.
    """
    current = alias_version(target, CHAMPION)
    if current is not None and current.version != str(version):
        set_alias(target, PREVIOUS_CHAMPION, current.version)
    set_alias(target, CHAMPION, str(version))
    return None if current is None else current.version


def download_model(target: str, alias_or_version: str, dst: Path) -> Path:
    """The registered model's files (MLmodel, ``model.lgb``, ``extra_files/``) under dst."""
    import mlflow

    name = REGISTERED_NAMES[target]
    sep = "/" if alias_or_version.isdigit() else "@"
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}{sep}{alias_or_version}", dst_path=str(dst)
        )
    )


def load_model(target: str, alias: str = CHAMPION, tracking_uri: str | None = None) -> LoadedModel:
    """Rebuild the `RiskModel` registered under `alias` (or a version number).

    Raises LookupError when the registry has no such model or alias.
    """
    if tracking_uri is not None:
        _set_uri(tracking_uri)
    info = version_info(target, alias)
    if info is None:
        raise LookupError(
            f"no {REGISTERED_NAMES[target]} model with alias or version {alias!r}: "
            "train one first (forewarn train DATA)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        local = download_model(target, info.version, Path(tmp))
        booster_text = (local / "model.lgb").read_text()
        meta_json = (local / "extra_files" / RISK_MODEL_FILE).read_text()
    model = RiskModel.from_strings(booster_text, meta_json)
    return LoadedModel(
        model=model, name=info.name, version=info.version, run_id=info.run_id, tags=info.tags
    )


def version_info(target: str, alias: str) -> VersionInfo | None:
    """By alias, or by version number when `alias` is all digits."""
    if not alias.isdigit():
        return alias_version(target, alias)
    from mlflow.exceptions import MlflowException

    name = REGISTERED_NAMES[target]
    try:
        return _version_info(_client().get_model_version(name, alias))
    except MlflowException:
        return None


def load_reference(
    target: str, alias: str = CHAMPION, tracking_uri: str | None = None
) -> pd.DataFrame:
    """The reference sample logged with the model under `alias`.

    Columns: ``project_id, as_of``, the model's features (raw, not encoded), the label,
    ``prediction`` (the model's calibrated p on the row) and ``seen_by_trees`` (False for
    rows of the calibration slice, whose predictions are out of sample).
    """
    import mlflow

    if tracking_uri is not None:
        _set_uri(tracking_uri)
    info = version_info(target, alias)
    if info is None:
        raise LookupError(f"no {REGISTERED_NAMES[target]} model with alias {alias!r}")
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=info.run_id, artifact_path=REFERENCE_FILE, dst_path=tmp
        )
        return pd.read_parquet(path)


def _set_uri(tracking_uri: str) -> None:
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def log_monitoring(
    experiment: str,
    run_name: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, Any] | None = None,
    artifacts: list[Path] | None = None,
    params: Mapping[str, Any] | None = None,
) -> str:
    """Log one monitoring run (drift, performance) in `experiment`; returns the run id.

    Call `configure` first; this switches to `experiment` for the run only.
    """
    import mlflow

    client = _client()
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        str(found.experiment_id) if found is not None else client.create_experiment(experiment)
    )
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        if params:
            mlflow.log_params({k: _tag(v)[:6000] for k, v in params.items()})
        if tags:
            mlflow.set_tags({k: _tag(v) for k, v in tags.items()})
        finite = {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
        if finite:
            mlflow.log_metrics(finite)
        for path in artifacts or []:
            mlflow.log_artifact(str(path))
    return str(run.info.run_id)


def run_artifacts(run_id: str) -> list[str]:
    """Every artifact path of a run, recursively (for checks and the demo's listing)."""
    client = _client()
    paths: list[str] = []
    pending = [""]
    while pending:
        folder = pending.pop()
        for item in client.list_artifacts(run_id, folder or None):
            (pending if item.is_dir else paths).append(item.path)
    return sorted(paths)


def list_versions(target: str) -> list[VersionInfo]:
    """Every registered version of a target's model, oldest first."""
    from mlflow.exceptions import MlflowException

    name = REGISTERED_NAMES[target]
    client = _client()
    try:
        # Searches leave aliases out; the registered model has them all.
        alias_map = dict(client.get_registered_model(name).aliases or {})
    except MlflowException:
        return []
    versions = [
        VersionInfo(
            name=name,
            version=str(mv.version),
            run_id=str(mv.run_id),
            tags=dict(mv.tags or {}),
            aliases=sorted(a for a, v in alias_map.items() if str(v) == str(mv.version)),
        )
        for mv in client.search_model_versions(f"name = '{name}'")
    ]
    return sorted(versions, key=lambda v: int(v.version))


def load_evaluation(
    target: str, alias: str = CHAMPION, tracking_uri: str | None = None
) -> dict[str, Any]:
    """The evaluation report logged with the model under `alias` (for monitoring).

    The ``evaluation/<target>.json`` artifact of its run: the held-out figures overall and
    by stage that performance monitoring compares newly closed projects with.
    """
    import mlflow

    if tracking_uri is not None:
        _set_uri(tracking_uri)
    info = version_info(target, alias)
    if info is None:
        raise LookupError(f"no {REGISTERED_NAMES[target]} model with alias {alias!r}")
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=info.run_id, artifact_path=f"evaluation/{target}.json", dst_path=tmp
        )
        return dict(json.loads(Path(path).read_text()))
