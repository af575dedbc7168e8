"""A score built stage by stage (fifths of the planned duration), for the ``stack`` recipe:
in each stage, a non-negative weighted sum of the component scores — the rule's calibrated
index, the logistic regression, and LightGBM's trees — plus the stage's own offset.

Why stage by stage: the evaluation judges the model at every stage against the strongest
rule and against the logistic regression, and neither is best everywhere (the logistic
regression often ranks best early, when the EVM indices still say little; the rule's index
late, when SPI(t) or CPI carry nearly everything). One recipe chosen over all rows loses
somewhere; weights fitted per stage on out-of-fold margins (`training.recipes.fit_stack`)
follow whichever part reads that stage best, and shrink toward the weights pooled over all
stages where a stage has few projects.

A stage's margin is ``scale_s · (Σ weight_j · score_j(x) + tree_weight_s · trees(x)) +
offset_s``: non-negative weights keep the monotone directions, and contributions stay exact —
each feature gets its weighted, scaled share, and the stage's own base value, minus the
model's one base value, goes to the elapsed share ("where the project is in its life").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.linear import LinearScore

ELAPSED = "elapsed_fraction"
STAGE_EDGES = (0.2, 0.4, 0.6, 0.8)  # the evaluation's stages: 0-20, 20-40, 40-60, 60-80, 80+


def stage_index(elapsed: np.ndarray, edges: Sequence[float] = STAGE_EDGES) -> np.ndarray:
    """Each row's stage (0 … len(edges)); before the start and unknown count as the first,
    as in `training.evaluate.stage_labels`."""
    x = np.nan_to_num(np.asarray(elapsed, dtype=float), nan=0.0)
    return np.searchsorted(np.asarray(edges, dtype=float), x, side="right")


@dataclass
class StagePiece:
    """One stage's part of the score: linear scores with their weights, the trees' weight, and
    the stage's calibration (``scale`` > 0, ``offset``):
    ``scale · (Σ weight_j · score_j(x) + tree_weight · trees(x)) + offset``."""

    candidate: str
    recipe: str
    rule: str | None
    scores: list[LinearScore]
    weights: list[float]
    tree_weight: float
    scale: float = 1.0
    offset: float = 0.0

    def base(self, booster_base: float) -> float:
        linear = sum(wt * sc.base_value() for wt, sc in zip(self.weights, self.scores, strict=True))
        return self.scale * (linear + self.tree_weight * booster_base) + self.offset

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "recipe": self.recipe,
            "rule": self.rule,
            "scores": [sc.to_dict() for sc in self.scores],
            "weights": [float(wt) for wt in self.weights],
            "tree_weight": float(self.tree_weight),
            "scale": float(self.scale),
            "offset": float(self.offset),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StagePiece:
        return cls(
            candidate=str(data["candidate"]),
            recipe=str(data["recipe"]),
            rule=None if data.get("rule") is None else str(data["rule"]),
            scores=[LinearScore.from_dict(sc) for sc in data["scores"]],
            weights=[float(wt) for wt in data["weights"]],
            tree_weight=float(data["tree_weight"]),
            scale=float(data["scale"]),
            offset=float(data["offset"]),
        )


@dataclass
class StagedScore:
    """The pieces, one per stage, and the model's single base value (the training rows'
    weighted mean of the stages' base values)."""

    pieces: list[StagePiece]
    base: float = 0.0
    edges: tuple[float, ...] = STAGE_EDGES

    @property
    def features(self) -> list[str]:
        """Every input a piece reads, and the elapsed share that picks the piece."""
        names: list[str] = []
        for piece in self.pieces:
            for score in piece.scores:
                for name in score.features:
                    if name not in names:
                        names.append(name)
        return names if ELAPSED in names else [*names, ELAPSED]

    def _stages(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return stage_index(np.asarray(columns[ELAPSED], dtype=float), self.edges)

    def margin(
        self, columns: Mapping[str, np.ndarray], n: int, booster_margin: np.ndarray
    ) -> np.ndarray:
        stages = self._stages(columns)
        out = np.zeros(n)
        for s, piece in enumerate(self.pieces):
            rows = stages == s
            if not rows.any():
                continue
            part = np.zeros(int(rows.sum()))
            sub = {k: np.asarray(v)[rows] for k, v in columns.items()}
            for weight, score in zip(piece.weights, piece.scores, strict=True):
                part += weight * score.margin(sub, int(rows.sum()))
            if piece.tree_weight:
                part += piece.tree_weight * booster_margin[rows]
            out[rows] = piece.scale * part + piece.offset
        return out

    def contributions(
        self,
        columns: Mapping[str, np.ndarray],
        booster_contrib: np.ndarray,
        feature_names: Sequence[str],
    ) -> np.ndarray:
        """(n, f + 1) contributions summing to `margin`; the last column is `base`."""
        n = booster_contrib.shape[0]
        stages = self._stages(columns)
        out = np.zeros_like(booster_contrib)
        out[:, -1] = self.base
        elapsed = list(feature_names).index(ELAPSED)
        booster_base = booster_contrib[:, -1]
        for s, piece in enumerate(self.pieces):
            rows = np.flatnonzero(stages == s)
            if not len(rows):
                continue
            if piece.tree_weight:
                out[rows, :-1] += piece.scale * piece.tree_weight * booster_contrib[rows, :-1]
            linear_base = 0.0
            sub = {k: np.asarray(v)[rows] for k, v in columns.items()}
            for weight, score in zip(piece.weights, piece.scores, strict=True):
                shares = score.shares(sub, len(rows))
                for j, term in enumerate(score.terms):
                    column = list(feature_names).index(term.feature)
                    out[rows, column] += piece.scale * weight * shares[:, j]
                linear_base += weight * score.base_value()
            tree_base = piece.tree_weight * booster_base[rows]
            stage_base = piece.scale * (linear_base + tree_base) + piece.offset
            out[rows, elapsed] += stage_base - self.base
        assert out.shape[0] == n
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": [float(e) for e in self.edges],
            "base": float(self.base),
            "pieces": [p.to_dict() for p in self.pieces],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StagedScore:
        return cls(
            pieces=[StagePiece.from_dict(p) for p in data["pieces"]],
            base=float(data["base"]),
            edges=tuple(float(e) for e in data["edges"]),
        )
