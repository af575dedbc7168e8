"""MLflow tracking and registry: the only module of Forewarn that imports mlflow.

Runs live in one experiment; each target's model is a LightGBM booster in LightGBM's text
format (never pickle), registered as ``forewarn-delay`` / ``forewarn-overrun`` (the quantile
models as ``forewarn-finish`` / ``forewarn-cost``: LightGBM text boosters and JSON), with the
calibrator and category levels (``risk_model.json``) stored inside the logged model, so a
registered version alone rebuilds a `RiskModel`. Aliases: ``champion``, ``challenger``,
``previous-champion``.

mlflow is imported inside the functions: it takes seconds, and the CLI's ``--help`` and the
training units must not pay for it.

Stores: a local sqlite file (one user), PostgreSQL (``postgresql://…``, read through psycopg
3) or a tracking server (``http(s)://…``). Several writers may share a PostgreSQL store or
a server at once (docs/operations.md); what they race on is retried or locked here:

- the first connection to an empty database creates MLflow's tables (alembic): writers
  starting together collide on them, so `configure` retries;
- the experiment and the registered models are created by whoever comes first: the others
  get "already exists" and use it;
- a new model version takes the next number of its model; two at once collide on the
  (name, version) key, which MLflow retries three times and then gives up: `_register`
  retries further (numbers stay unique and gap-free: a failed insert takes none);
- moving ``champion`` is read-compare-write: `promote` holds a registry lock around it and
  moves the alias only while the champion is still the one the version was judged against.

sqlite answers a second writer "database is locked"; the same retries apply, but sqlite is
for one user: writers starting together on a new sqlite file can break MLflow's table
creation (no transactional DDL there), so a sqlite store must exist before a second writer
comes (docs/operations.md).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from training.models import RiskModel
from training.quantiles import QuantileModel

if TYPE_CHECKING:
    from mlflow import MlflowClient

REGISTERED_NAMES = {
    "delay": "forewarn-delay",
    "overrun": "forewarn-overrun",
    # Quantiles of slip and overrun (training/quantiles.py), beside the classifiers.
    "finish": "forewarn-finish",
    "cost": "forewarn-cost",
}
QUANTILE_MODEL_DIR = "quantile_model"
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
REFERENCE_FILE = "reference/reference.parquet"
RISK_MODEL_FILE = "risk_model.json"
_MAX_TAG = 5000  # MLflow caps tag values (8000 in sqlite); keep room
# A registered model used as a mutex: creating one is atomic on every store (unique name).
LOCK_SUFFIX = ".promotion-lock"
PROMOTION = "promotion"  # version tag: why a promoted version did not become champion
_RETRIES = 12  # backoff 0.05 s doubling to 2 s: ~15 s in all before giving up
_LOCK_WAIT_S = 300.0
_LOCK_STALE_S = 600.0  # a lock older than this was left by a process that died holding it

logger = logging.getLogger(__name__)
T = TypeVar("T")
# What a concurrent writer may transiently hit (sqlite, PostgreSQL, MLflow's own giving-up).
_TRANSIENT = (
    "database is locked",
    "deadlock detected",
    "could not serialize access",
    "duplicate key value violates unique constraint",
    "uniqueviolation",
    "integrityerror",
    "giving up after",
    "already exists",
    "server closed the connection unexpectedly",
    "out-of-date database schema",  # another writer is still creating the tables
)


class TrackingStoreUnavailableError(RuntimeError):
    """The tracking store could not be reached or did not answer: not "no such model".

    Raised where the registry is read, so that an unreachable server or database is never
    mistaken for a registry without champions (which would tell the user to train one).
    """


# What the registry answers for a registered model, version or alias that does not exist:
# MLflow's SQL and file stores (and a server relaying them) say INVALID_PARAMETER_VALUE for
# an alias that is not set, RESOURCE_DOES_NOT_EXIST for a model or version.
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


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
    def verdict(self) -> str | None:
        """Against the best applicable rule when evaluated: better, cant_tell or worse."""
        value = self.tags.get("verdict")
        return value if value in ("better", "cant_tell", "worse") else None

    @property
    def verdict_detail(self) -> str:
        return self.tags.get("verdict_detail", "")


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


def store_uri(tracking_uri: str) -> str:
    """The URI MLflow is given: ``postgresql://`` is read through psycopg 3.

    SQLAlchemy's default PostgreSQL driver is psycopg2, which Forewarn does not install;
    a URI naming its driver (``postgresql+psycopg2://``) is left as it is.
    """
    if tracking_uri.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + tracking_uri.split("://", 1)[1]
    return tracking_uri


def is_server(tracking_uri: str) -> bool:
    """A tracking server (http/https): it decides where artifacts go."""
    return tracking_uri.startswith(("http://", "https://"))


def _transient(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a collision with another writer."""
    seen: BaseException | None = exc
    while seen is not None:
        text = f"{type(seen).__name__} {seen}".lower()
        if any(marker in text for marker in _TRANSIENT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def redacted(uri: str) -> str:
    """A tracking URI without its password, fit for a log line, a message or an answer."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _store_failures() -> tuple[type[BaseException], ...]:
    """What a store that cannot answer raises besides MlflowException: the network's
    errors (requests' are OSErrors) and the database driver's, through SQLAlchemy."""
    import sqlalchemy.exc

    return (OSError, sqlalchemy.exc.SQLAlchemyError)


def _unavailable(exc: BaseException) -> TrackingStoreUnavailableError:
    import mlflow

    return TrackingStoreUnavailableError(
        f"the tracking store {redacted(mlflow.get_tracking_uri())} is unreachable or failing: "
        "check MLFLOW_TRACKING_URI and that the server or database is up "
        f"({type(exc).__name__}: {str(exc)[:300]})"
    )


def _registry_read(call: Callable[[], T]) -> T | None:
    """`call()`'s answer; None when the registry says the thing does not exist.

    Any other failure (connection refused, timeout, a server or database error) raises
    TrackingStoreUnavailableError: only a store that answered can say there is no champion.
    """
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            return None
        raise _unavailable(exc) from exc
    except _store_failures() as exc:
        raise _unavailable(exc) from exc


def _retrying(what: str, call: Callable[[], T], attempts: int = _RETRIES) -> T:
    """`call()`, again after a jittered backoff while it collides with another writer."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts - 1 or not _transient(exc):
                raise
            delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
            logger.debug("%s collided with another writer (%s); retry in %.2f s", what, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def configure(
    tracking_uri: str, artifact_root: str | None = None, experiment: str = "forewarn"
) -> str:
    """Point MLflow at the store, create the experiment if needed; returns its id.

    A local sqlite store's folder is created here (not at import). MLflow's own chatter
    (progress bars, INFO lines) is silenced: ``--json`` output must stay one object.
    With a tracking server `artifact_root` is not used: the server's artifact root is.
    """
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A tracking server's client prints "View run … at: URL" on stdout at each run's end.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "Failed to resolve installed pip version": harmless, we pass pip_requirements.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    uri = store_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    location = None if is_server(tracking_uri) else artifact_root
    from mlflow.exceptions import MlflowException

    failures: tuple[type[BaseException], ...] = (MlflowException, *_store_failures())
    try:
        # Long budget: on an empty database the first writer runs every MLflow migration.
        experiment_id = _retrying(
            "creating the experiment", lambda: _experiment(experiment, location), attempts=40
        )
    except failures as exc:
        raise _unavailable(exc) from exc
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _experiment(name: str, artifact_location: str | None = None) -> str:
    """The experiment's id, created when missing (by us or a writer racing us)."""
    client = _client()  # the first client of an empty database creates MLflow's tables
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_location))


# One client per (tracking, registry) URI: a process (the service, a report) asks the
# registry many times, and a client is cheap to keep and stateless between calls.
_CLIENTS: dict[tuple[str, str], MlflowClient] = {}


def _client() -> MlflowClient:
    """The client of the store MLflow points at now (`configure`, `_set_uri`)."""
    import mlflow
    from mlflow import MlflowClient

    uris = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    client = _CLIENTS.get(uris)
    if client is None:
        client = _CLIENTS[uris] = MlflowClient(tracking_uri=uris[0], registry_uri=uris[1])
    return client


def flatten_metrics(report: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of an evaluation report as MLflow metric names (``stage/0-20/auc``)."""
    out: dict[str, float] = {}
    for key, value in report.items():
        name = f"{prefix}{key}".replace("+", "plus")
        if key in ("by_stage", "baselines", "comparison", "recipe_candidates"):
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
            signature = infer_signature(
                example, np.asarray(model.booster.predict(example.to_numpy()))
            )
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
        try:
            client.create_registered_model(
                name, description=f"Forewarn {name.removeprefix('forewarn-')} risk model"
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another writer made it first
                raise
    # Two writers take the same next number; MLflow retries 3 times, then gives up.
    created = _retrying(
        f"registering a {name} version",
        lambda: client.create_model_version(
            name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
        ),
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
    """The version an alias points at, or None when the model or alias does not exist.

    Raises TrackingStoreUnavailableError when the store cannot be reached or fails.
    """
    name = REGISTERED_NAMES[target]
    found = _registry_read(lambda: _client().get_model_version_by_alias(name, alias))
    return None if found is None else _version_info(found)


def _version_info(mv: Any) -> VersionInfo:
    return VersionInfo(
        name=str(mv.name),
        version=str(mv.version),
        run_id=str(mv.run_id),
        tags=dict(mv.tags or {}),
        aliases=list(mv.aliases or []),
    )


def set_alias(target: str, alias: str, version: str) -> None:
    """Point `alias` at `version` (MLflow moves an alias in one write).

    Retried: two writers setting one alias at once collide on its key (MLflow's SQL store
    reads, then inserts or updates).
    """
    client = _client()
    _retrying(
        f"setting {alias}",
        lambda: client.set_registered_model_alias(REGISTERED_NAMES[target], alias, version),
    )


def set_version_tags(target: str, version: str, tags: Mapping[str, Any]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(REGISTERED_NAMES[target], version, key, _tag(value))


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

    With several writers the champion may have moved since `version` was judged: a
    retrained version was gated against the champion in its ``gate_champion_version`` tag,
    a trained one (no such tag) becomes champion only where there is none. Under the
    registry's promotion lock the alias moves only if the champion is still that one;
    otherwise it stays, the version gets a ``promotion`` tag saying why, a warning is
    logged, and None is returned. Returns the previous champion's version when it moved.
    """
    version = str(version)
    with promotion_lock(target):
        current = alias_version(target, CHAMPION)
        if current is not None and current.version == version:
            return None
        mine = version_info(target, version)
        judged = (mine.tags if mine else {}).get("gate_champion_version", "none")
        expected = None if judged == "none" else judged
        now = None if current is None else current.version
        if now != expected:
            why = (
                f"not promoted: the champion moved to v{now} while v{version} was judged "
                f"against {'no champion' if expected is None else 'v' + expected}; run "
                f"forewarn retrain again to gate it against v{now}"
            )
            set_version_tags(target, version, {PROMOTION: why})
            logger.warning("%s v%s %s", REGISTERED_NAMES[target], version, why)
            return None
        if current is not None:
            set_alias(target, PREVIOUS_CHAMPION, current.version)
        set_alias(target, CHAMPION, version)
        return now


@contextmanager
def promotion_lock(target: str, wait_s: float = _LOCK_WAIT_S) -> Iterator[None]:
    """Hold the target's promotion lock: a registered model ``forewarn-<t>.promotion-lock``.

    Creating a registered model is atomic on every store (its name is a unique key), so
    this works alike on sqlite, PostgreSQL and a tracking server. The lock is deleted on
    leaving; one older than ten minutes was left by a dead process and is broken.
    """
    from mlflow.exceptions import MlflowException

    client = _client()
    name = REGISTERED_NAMES[target] + LOCK_SUFFIX
    holder = f"held by {socket.gethostname()} pid {os.getpid()} while moving aliases"
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            client.create_registered_model(name, description=holder)
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS" and not _transient(exc):
                raise
        _break_if_stale(name)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: still held after {wait_s:.0f} s (another writer)")
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.5)
    try:
        yield
    finally:
        _retrying("releasing the promotion lock", lambda: _delete_registered_model(name))


def _break_if_stale(name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        held = _client().get_registered_model(name)
    except MlflowException:
        return  # released meanwhile
    age_s = time.time() - (held.creation_timestamp or 0) / 1000
    if age_s > _LOCK_STALE_S:
        logger.warning("breaking %s, left %.0f s ago (%s)", name, age_s, held.description)
        _delete_registered_model(name)


def _delete_registered_model(name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        _client().delete_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise


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


def _required_version(target: str, alias: str) -> VersionInfo:
    """The version behind `alias` (or a version number); LookupError when there is none."""
    info = version_info(target, alias)
    if info is None:
        raise LookupError(
            f"no {REGISTERED_NAMES[target]} model with alias or version {alias!r}: "
            "train one first (forewarn train DATA)"
        )
    return info


def load_model(target: str, alias: str = CHAMPION, tracking_uri: str | None = None) -> LoadedModel:
    """Rebuild the `RiskModel` registered under `alias` (or a version number).

    Raises LookupError when the registry has no such model or alias, and
    TrackingStoreUnavailableError when the store cannot be reached or fails.
    """
    if tracking_uri is not None:
        _set_uri(tracking_uri)
    info = _required_version(target, alias)
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
    name = REGISTERED_NAMES[target]
    found = _registry_read(lambda: _client().get_model_version(name, alias))
    return None if found is None else _version_info(found)


def load_reference(
    target: str,
    alias: str = CHAMPION,
    tracking_uri: str | None = None,
    run_id: str | None = None,
) -> pd.DataFrame:
    """The reference sample logged with the model under `alias`, or with the run `run_id`
    when given (a `LoadedModel`'s: the same version even if the alias moved meanwhile, and
    no second registry look-up).

    Columns: ``project_id, as_of``, the model's features (raw, not encoded), the label,
    ``prediction`` (the model's calibrated p on the row) and ``seen_by_trees`` (False for
    rows of the calibration slice, whose predictions are out of sample).
    """
    import mlflow

    if tracking_uri is not None:
        _set_uri(tracking_uri)
    if run_id is None:
        info = version_info(target, alias)
        if info is None:
            raise LookupError(f"no {REGISTERED_NAMES[target]} model with alias {alias!r}")
        run_id = info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=REFERENCE_FILE, dst_path=tmp
        )
        return pd.read_parquet(path)


def _set_uri(tracking_uri: str) -> None:
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = store_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


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

    experiment_id = _retrying("creating the experiment", lambda: _experiment(experiment))
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
    name = REGISTERED_NAMES[target]
    client = _client()
    # Searches leave aliases out; the registered model has them all.
    registered = _registry_read(lambda: client.get_registered_model(name))
    if registered is None:
        return []
    alias_map = dict(registered.aliases or {})
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


# ------------------------------------------------------------------ quantile models


@dataclass
class LoadedQuantiles:
    """A registered quantile model rebuilt as a `QuantileModel`, with its registry tags."""

    model: QuantileModel
    name: str
    version: str
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)


def log_quantiles(
    target: str,
    model: QuantileModel,
    metrics: Mapping[str, Any],
    report: dict[str, Any],
    report_markdown: str,
    params: Mapping[str, Any],
    tags: Mapping[str, Any],
    run_name: str | None = None,
) -> VersionInfo:
    """Log one quantile target's run (metrics, evaluation, the model as LightGBM text +
    JSON under ``quantile_model/``) and register it as a new version."""
    import mlflow

    name = REGISTERED_NAMES[target]
    with mlflow.start_run(run_name=run_name or f"train-{target}") as run:
        mlflow.log_params({k: _tag(v)[:6000] for k, v in params.items()})
        mlflow.set_tags({"target": target, **{k: _tag(v) for k, v in tags.items()}})
        mlflow.log_metrics(flatten_metrics(metrics))
        mlflow.log_dict(report, f"evaluation/{target}.json")
        mlflow.log_text(report_markdown, f"evaluation/{target}.md")
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifacts(str(model.save(Path(tmp) / "m")), QUANTILE_MODEL_DIR)
        source = mlflow.get_artifact_uri(QUANTILE_MODEL_DIR)
        version_tags = {
            "target": target,
            "run_id": run.info.run_id,
            **{k: _tag(v) for k, v in tags.items()},
        }
        version = _register(name, source, run.info.run_id, None, version_tags)
    return VersionInfo(name=name, version=version, run_id=run.info.run_id, tags=version_tags)


def load_quantiles(
    target: str, alias: str = CHAMPION, tracking_uri: str | None = None
) -> LoadedQuantiles:
    """Rebuild the quantile model registered under `alias` (or a version number).

    Raises LookupError when the registry has no such model or alias.
    """
    import mlflow

    if tracking_uri is not None:
        _set_uri(tracking_uri)
    info = _required_version(target, alias)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=info.run_id, artifact_path=QUANTILE_MODEL_DIR, dst_path=tmp
        )
        model = QuantileModel.load(Path(local))
    return LoadedQuantiles(
        model=model, name=info.name, version=info.version, run_id=info.run_id, tags=info.tags
    )
