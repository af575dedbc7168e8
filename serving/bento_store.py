"""The champions inside a Bento: exported to BentoML's model store at `bentoml build`.

`bentoml build` asks each model the service declares for its `to_info()`; `ChampionExport`
answers by copying the MLflow champions (booster text, calibrator JSON, portfolio context)
into the local BentoML model store as one model, ``forewarn-champions``, so the build packs
exactly the champions of that moment — the quantile champions (``forewarn-finish``,
``forewarn-cost``) too, where trained, so a Bento answers with finish and cost ranges. A
built Bento then serves from its own copy (`load_from_bento_store`) and needs no MLflow.
Serving from source never reads this store: there the registry is the truth, and an export
left by an earlier build must not shadow a newer champion.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import attrs
import bentoml
from bentoml.exceptions import NotFound

from serving.champions import (
    Champions,
    identities,
    load_from_registry,
    read_champions,
    write_champions,
)

logger = logging.getLogger(__name__)

BENTO_MODEL = "forewarn-champions"


def export_version(champions: Champions) -> str:
    """A tag version naming the registry versions, e.g. ``delay3-overrun2-finish2-1a2b3c4d``.

    Derived from the registry versions and runs (the quantile champions' too), so
    exporting the same champions twice gives the same tag and the second export is skipped.
    """
    parts = [f"{t}{c.version}" for t, c in sorted(champions.by_target.items())]
    quantiles = sorted(champions.quantile_versions.items())
    parts += [f"{t}{label.rsplit(' v', 1)[-1]}" for t, label in quantiles]
    runs = ",".join(f"{t}:{c.run_id}" for t, c in sorted(champions.by_target.items()))
    runs += "".join(f",{t}:{label}" for t, label in quantiles)
    return "-".join([*parts, hashlib.sha1(runs.encode()).hexdigest()[:8]])


def export_champions(champions: Champions) -> Any:
    """Copy the champions into the local BentoML model store; returns the stored model."""
    tag = f"{BENTO_MODEL}:{export_version(champions)}"
    try:
        return bentoml.models.get(tag)
    except NotFound:
        pass
    metadata = {"targets": identities(champions), "quantiles": champions.quantile_versions}
    with bentoml.models.create(tag, labels={"project": "forewarn"}, metadata=metadata) as stored:
        write_champions(champions, Path(stored.path))
    logger.info(
        "exported %s to the BentoML model store as %s",
        ", ".join(
            [f"{c.name} v{c.version}" for c in champions.by_target.values()]
            + list(champions.quantile_versions.values())
        ),
        tag,
    )
    return bentoml.models.get(tag)


def packed_tag(bento: Any) -> str | None:
    """The ``forewarn-champions`` tag a built Bento was packed with (None: not a Bento)."""
    if bento is None:
        return None
    for model in bento.info.all_models:
        if model.tag.name == BENTO_MODEL:
            return str(model.tag)
    return None


def load_from_bento_store(tag: str) -> Champions:
    """The champions stored under `tag` (a Bento's own, see `packed_tag`).

    A Bento run from the local store reads its models from BentoML's model store, a
    containerised one from the copy inside it; BentoML points the store at the right one.
    Raises LookupError when the model is missing.
    """
    try:
        stored = bentoml.models.get(tag)
    except NotFound as exc:
        raise LookupError(
            f"{tag} is not in the BentoML model store: rebuild the Bento with `bentoml build` "
            "while the MLflow registry has champions"
        ) from exc
    metadata = dict(stored.info.metadata)
    targets: Any = metadata.get("targets", {})
    # A Bento built before the quantile models has none: it answers without ranges.
    quantiles: Any = metadata.get("quantiles", {})
    return read_champions(Path(stored.path), targets, source="bento", quantile_versions=quantiles)


@attrs.frozen
class ChampionExport(bentoml.models.BentoModel):
    """The model the service declares so that `bentoml build` packs the MLflow champions.

    A `bentoml.models.BentoModel` (tag `BENTO_MODEL`) whose `to_info`, which BentoML
    calls only when building, first exports the champions of the registry at
    `tracking_uri` and then describes the stored copy as a plain BentoModel would. Before
    serving from source BentoML may call `resolve`: nothing to do (the service reads the
    registry itself), so None.
    """

    tag: Any = attrs.field(default=BENTO_MODEL, converter=lambda t: bentoml.Tag.from_taglike(t))
    tracking_uri: str = ""

    def to_info(self, alias: str | None = None) -> Any:
        stored = export_champions(load_from_registry(self.tracking_uri))
        return bentoml.models.BentoModel(stored.tag).to_info(alias)

    def resolve(self, base_path: Any = None) -> Any:
        return None
