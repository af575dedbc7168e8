"""The champion models the service and batch scoring use, wherever they are stored.

Two homes: the MLflow registry (through `training.tracking`, the only module that talks to
MLflow) and, inside a built Bento, BentoML's model store (see `serving.bento_store`).
Either way the result is a `Champions`: one `RiskModel` per target with its registry
identity, and the portfolio context those models were trained with.

The context (closed-project counts and late/over-budget base rates by project type) is
what `features.pointintime.build_features` needs to score projects without their
portfolio. It is rebuilt from the champion's reference sample (training rows with every
feature): for each project type, the context of its latest row. Batch scoring uses the same
context as the service, so one project gets the same numbers from either.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from features.pointintime import CONTEXT_FEATURES, PreparedContext, prepare_context
from training.models import RiskModel
from training.quantiles import QUANTILE_TARGETS, QuantileModel

logger = logging.getLogger(__name__)

TARGETS = ("delay", "overrun")
Source = Literal["mlflow", "bento"]

# Context rows are looked up "latest dated ≤ as_of": dating them at the epoch makes the
# training-time context apply to any as_of a request names.
_CONTEXT_DATE = pd.Timestamp("1970-01-01")


@dataclass
class Champion:
    """One target's champion and what the registry records of it."""

    target: str
    model: RiskModel
    name: str
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    source: Source = "mlflow"

    @property
    def verdict(self) -> str | None:
        """Training's verdict against the best applicable rule (tag): better, cant_tell or
        worse; None when not recorded."""
        value = self.tags.get("verdict")
        return value if value in ("better", "cant_tell", "worse") else None

    @property
    def trained_at(self) -> str | None:
        """When it was trained, as training recorded it (a tag), else None."""
        for key in ("trained_at", "created_at"):
            if self.tags.get(key):
                return self.tags[key]
        return None


@dataclass
class Champions:
    """The champions by target, the portfolio context they score with, and (loaded from the
    registry) the reference samples logged with them, by target."""

    by_target: dict[str, Champion]
    context: pd.DataFrame | None = None
    references: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: The quantile champions (``finish``, ``cost``: serving/ranges.py), where trained.
    quantiles: dict[str, QuantileModel] = field(default_factory=dict)
    quantile_versions: dict[str, str] = field(default_factory=dict)  # target → "name vN"
    _prepared: PreparedContext | None = field(default=None, init=False, repr=False)

    @property
    def scoring_context(self) -> PreparedContext | None:
        """`context` made ready for `build_features` once, not on every request."""
        if self._prepared is None and self.context is not None:
            self._prepared = prepare_context(self.context)
        return self._prepared

    def models(self) -> dict[str, RiskModel]:
        return {t: c.model for t, c in self.by_target.items()}

    def set_threads(self, num_threads: int) -> None:
        """LightGBM threads per call: 1 in the service (concurrency comes from requests)."""
        for champion in self.by_target.values():
            champion.model.num_threads = num_threads
        for model in self.quantiles.values():
            model.num_threads = num_threads


def context_from_reference(references: Iterable[pd.DataFrame]) -> pd.DataFrame | None:
    """A `portfolio_context` frame from reference samples: each type's latest context.

    Adds the fallback row (``project_type`` None) that `build_features` uses for a type it
    has not seen: the overall rates, no closed projects of that type.
    """
    frames = [
        r[["as_of", "project_type", *CONTEXT_FEATURES]]
        for r in references
        if len(r) and {"as_of", "project_type", *CONTEXT_FEATURES} <= set(r.columns)
    ]
    if not frames:
        return None
    rows = pd.concat(frames, ignore_index=True)
    rows["as_of"] = pd.to_datetime(rows["as_of"])
    rows = rows.sort_values("as_of", kind="stable")
    latest = rows.iloc[-1]
    by_type = rows.dropna(subset=["project_type"]).groupby("project_type", sort=True).tail(1)
    fallback = pd.DataFrame(
        {
            "project_type": [None],
            "closed_projects": [latest["closed_projects"]],
            "type_closed_projects": [0.0],
            "closed_late_rate": [latest["closed_late_rate"]],
            "type_late_rate": [latest["closed_late_rate"]],
            "closed_overrun_rate": [latest["closed_overrun_rate"]],
            "type_overrun_rate": [latest["closed_overrun_rate"]],
        }
    )
    context = pd.concat([by_type.drop(columns="as_of"), fallback], ignore_index=True)
    context.insert(0, "as_of", np.datetime64(_CONTEXT_DATE, "ns"))
    context["project_type"] = context["project_type"].astype(object)
    for name in CONTEXT_FEATURES:
        context[name] = context[name].astype("float64")
    return context.reset_index(drop=True)


def load_from_registry(
    tracking_uri: str, alias: str = "champion", targets: Iterable[str] = TARGETS
) -> Champions:
    """Each target's `alias` from the MLflow registry; targets never trained are skipped.

    Raises LookupError when no target has a model under `alias`.
    """
    from training import tracking

    found: dict[str, Champion] = {}
    references: dict[str, pd.DataFrame] = {}
    missing: list[str] = []
    for target in targets:
        try:
            loaded = tracking.load_model(target, alias, tracking_uri=tracking_uri)
        except LookupError as exc:
            missing.append(str(exc))
            continue
        found[target] = Champion(
            target=target,
            model=loaded.model,
            name=loaded.name,
            version=loaded.version,
            run_id=loaded.run_id,
            tags=dict(loaded.tags),
            source="mlflow",
        )
        try:
            references[target] = tracking.load_reference(
                target, tracking_uri=tracking_uri, run_id=loaded.run_id
            )
        except Exception as exc:  # a run logged without a reference still scores
            logger.warning("no reference sample for %s: %s", loaded.name, exc)
    if not found:
        raise LookupError(f"no champion model in {tracking_uri}: " + "; ".join(missing))
    for reason in missing:
        logger.warning("%s", reason)
    champions = Champions(found, context_from_reference(references.values()), references)
    for target in QUANTILE_TARGETS:  # optional: scores are given without ranges
        try:
            q = tracking.load_quantiles(target, alias, tracking_uri=tracking_uri)
        except LookupError:
            continue
        champions.quantiles[target] = q.model
        champions.quantile_versions[target] = f"{q.name} v{q.version}"
    return champions


# ------------------------------------------------------------------- files (Bento store)

CONTEXT_FILE = "context.parquet"
QUANTILES_DIR = "quantiles"  # <QUANTILES_DIR>/<target>/: a QuantileModel's text + JSON


def identities(champions: Champions) -> dict[str, dict[str, object]]:
    """Each target's registry identity (name, version, run, tags), as plain JSON."""
    return {
        target: {
            "name": c.name,
            "version": c.version,
            "run_id": c.run_id or "",
            "tags": dict(c.tags),
        }
        for target, c in champions.by_target.items()
    }


def write_champions(champions: Champions, directory: Path) -> None:
    """Champions as files: ``<target>/`` with the RiskModel's own files (booster text and
    JSON, never pickle), ``quantiles/<target>/`` with each quantile champion's (the same),
    plus the portfolio context as Parquet."""
    for target, champion in champions.by_target.items():
        champion.model.to_files(directory / target)
    for target, model in champions.quantiles.items():
        model.save(directory / QUANTILES_DIR / target)
    if champions.context is not None:
        champions.context.to_parquet(directory / CONTEXT_FILE, index=False)


def read_champions(
    directory: Path,
    identities: Mapping[str, Mapping[str, object]],
    source: Source = "bento",
    quantile_versions: Mapping[str, str] | None = None,
) -> Champions:
    """The inverse of `write_champions`; `quantile_versions` (target → "name vN", as
    `Champions.quantile_versions`) names the quantile champions written beside them."""
    found: dict[str, Champion] = {}
    for target, identity in identities.items():
        tags = identity.get("tags")
        found[target] = Champion(
            target=target,
            model=RiskModel.from_files(directory / target),
            name=str(identity.get("name", f"forewarn-{target}")),
            version=str(identity.get("version", "")),
            run_id=str(identity["run_id"]) if identity.get("run_id") else None,
            tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {},
            source=source,
        )
    context_path = directory / CONTEXT_FILE
    context = pd.read_parquet(context_path) if context_path.exists() else None
    champions = Champions(found, context)
    for target, label in (quantile_versions or {}).items():
        champions.quantiles[target] = QuantileModel.load(directory / QUANTILES_DIR / target)
        champions.quantile_versions[target] = str(label)
    return champions
