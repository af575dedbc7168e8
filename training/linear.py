"""A logistic score kept as plain numbers: fitted with scikit-learn, stored as JSON, explained
exactly.

Two recipes use it: the best rule's index calibrated (a logistic on the rule's index and the
elapsed share) and the regularised logistic regression on every feature. Each input is
imputed (median), standardised and given a missing flag; categories are one-hot. Because the
score is linear in those terms, its contributions are exact and additive: each feature's
share is its terms' value minus their training mean, and the base value is the score of the
mean row, so contributions plus base equal the score to rounding (what TreeSHAP gives a tree).
Coefficients whose sign contradicts a known direction (a lower SPI never lowers the delay
risk) are dropped and the rest refitted, so every recipe keeps the monotone directions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

# Index values beyond these say nothing more (an SPI of 40 on a project's first day is an
# artefact of a tiny PV): clipped before fitting and scoring, which keeps every rank.
CLIP = 1e3


@dataclass
class Term:
    """One input of the score: a number (imputed, scaled, flagged when missing) or a category."""

    feature: str
    kind: str  # "numeric", "categorical" or "bins" (a number cut at `edges`, one-hot)
    fill: float = 0.0
    center: float = 0.0
    scale: float = 1.0
    coef: float = 0.0
    missing_coef: float = 0.0
    levels: dict[str, float] = field(default_factory=dict)  # category (or bin) → coefficient
    edges: list[float] = field(default_factory=list)
    mean: float = 0.0  # weighted training mean of this term's share (centres contributions)

    def share(self, values: np.ndarray) -> np.ndarray:
        """This term's part of the score, before centring."""
        if self.kind == "categorical":
            text = np.array([None if pd.isna(v) else str(v) for v in values], dtype=object)
            return np.array([self.levels.get(v, 0.0) if v else 0.0 for v in text], dtype=float)
        if self.kind == "bins":
            x = np.asarray(values, dtype=float)
            codes = np.searchsorted(self.edges, x, side="right")
            lookup = np.array([self.levels.get(str(b), 0.0) for b in range(len(self.edges) + 1)])
            return np.where(np.isnan(x), self.missing_coef, lookup[codes])
        x = np.clip(np.asarray(values, dtype=float), -CLIP, CLIP)
        missing = np.isnan(x)
        z = (np.where(missing, self.fill, x) - self.center) / self.scale
        return self.coef * z + self.missing_coef * missing


@dataclass
class LinearScore:
    """``logit p = intercept + Σ term shares``; contributions are the centred shares."""

    intercept: float
    terms: list[Term]
    C: float = 1.0

    @property
    def features(self) -> list[str]:
        return [t.feature for t in self.terms]

    def base_value(self) -> float:
        return self.intercept + sum(t.mean for t in self.terms)

    def shares(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """(n, terms) centred shares: each row sums, with `base_value`, to the score."""
        out = np.zeros((n, len(self.terms)))
        for j, term in enumerate(self.terms):
            out[:, j] = term.share(np.asarray(columns[term.feature])) - term.mean
        return out

    def margin(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        return self.shares(columns, n).sum(axis=1) + self.base_value()

    def to_dict(self) -> dict[str, Any]:
        return {
            "intercept": float(self.intercept),
            "C": float(self.C),
            "terms": [
                {
                    "feature": t.feature,
                    "kind": t.kind,
                    "fill": float(t.fill),
                    "center": float(t.center),
                    "scale": float(t.scale),
                    "coef": float(t.coef),
                    "missing_coef": float(t.missing_coef),
                    "levels": {k: float(v) for k, v in t.levels.items()},
                    "edges": [float(e) for e in t.edges],
                    "mean": float(t.mean),
                }
                for t in self.terms
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinearScore:
        terms = [
            Term(
                feature=str(t["feature"]),
                kind=str(t["kind"]),
                fill=float(t["fill"]),
                center=float(t["center"]),
                scale=float(t["scale"]),
                coef=float(t["coef"]),
                missing_coef=float(t["missing_coef"]),
                levels={str(k): float(v) for k, v in t["levels"].items()},
                edges=[float(e) for e in t.get("edges", [])],
                mean=float(t["mean"]),
            )
            for t in data["terms"]
        ]
        return cls(intercept=float(data["intercept"]), terms=terms, C=float(data.get("C", 1.0)))


def column_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A frame's column as the score reads it: objects for text, floats (NaN) otherwise."""
    series = frame[name]
    if series.dtype == object or isinstance(series.dtype, pd.CategoricalDtype):
        return series.to_numpy(dtype=object)
    return series.to_numpy(dtype=float, na_value=np.nan)


def fit_linear(
    frame: pd.DataFrame,
    y: np.ndarray,
    weight: np.ndarray,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    directions: Mapping[str, int] | None = None,
    C: float = 1.0,
    bins: Mapping[str, Sequence[float]] | None = None,
) -> LinearScore:
    """A weighted, L2-regularised logistic score on `features` (each project's weights sum
    to 1, so `C` is relative to the number of projects, not of rows). Features named in
    `bins` enter as one-hot bins cut at the given edges (a step per bin, not a slope)."""
    directions = dict(directions or {})
    weight = np.asarray(weight, dtype=float)
    y = np.asarray(y, dtype=int)
    w_mean = weight / weight.sum()
    terms, design = _design(frame, features, categorical, w_mean, bins or {})
    spans, at = [], 0
    for _, names in terms:
        spans.append(range(at, at + len(names)))
        at += len(names)
    active = list(range(len(terms)))
    coef = np.zeros(design.shape[1])
    intercept = _logit(float(np.average(y, weights=weight)))
    for _ in range(len(terms) + 1):
        cols = [c for t in active for c in spans[t]]
        coef = np.zeros(design.shape[1])
        if len(np.unique(y)) < 2 or not cols:
            break
        model = LogisticRegression(C=C, solver="newton-cholesky", max_iter=200)
        with threadpool_limits(limits=1, user_api="blas"):
            model.fit(design[:, cols], y, sample_weight=weight)
        coef[cols] = model.coef_[0]
        intercept = float(model.intercept_[0])
        wrong = [
            t
            for t in active
            if terms[t][0].kind == "numeric"
            and directions.get(terms[t][0].feature, 0) * coef[spans[t][0]] < 0
        ]
        if not wrong:
            break
        active = [t for t in active if t not in wrong]
    kept = [terms[t] for t in active]
    kept_coef = np.concatenate([coef[list(spans[t])] for t in active]) if active else coef[:0]
    score = LinearScore(intercept=intercept, terms=_with_coefficients(kept, kept_coef), C=C)
    for term, t in zip(score.terms, active, strict=True):
        span = list(spans[t])
        term.mean = float(w_mean @ (design[:, span] @ coef[span]))  # the mean of its share
    return score


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=float, na_value=np.nan)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def _design(
    frame: pd.DataFrame,
    features: Sequence[str],
    categorical: Sequence[str],
    w: np.ndarray,
    bins: Mapping[str, Sequence[float]],
) -> tuple[list[tuple[Term, list[str]]], np.ndarray]:
    """The terms with their fitted transforms, and the design matrix (columns per term)."""
    numeric = [f for f in features if f not in categorical and f not in bins]
    x = np.clip(frame[numeric].to_numpy(dtype=float, na_value=np.nan), -CLIP, CLIP)
    x[~np.isfinite(x)] = np.nan
    missing = np.isnan(x)
    present = ~missing.all(axis=0)
    with np.errstate(all="ignore"):
        fills = np.where(present, np.nanmedian(np.where(present, x, 0.0), axis=0), 0.0)
    filled = np.where(missing, fills, x)
    centers = w @ filled
    scales = np.sqrt(w @ (filled - centers) ** 2)
    scales[scales == 0] = 1.0
    z = (filled - centers) / scales
    terms: list[tuple[Term, list[str]]] = []
    blocks: list[np.ndarray] = []
    for j, name in enumerate(numeric):
        if not present[j]:
            continue
        term = Term(name, "numeric", fill=float(fills[j]), center=float(centers[j]))
        term.scale = float(scales[j])
        if missing[:, j].any():
            terms.append((term, ["value", "missing"]))
            blocks.append(np.column_stack([z[:, j], missing[:, j].astype(float)]))
        else:
            terms.append((term, ["value"]))
            blocks.append(z[:, j : j + 1])
    for name, edges in bins.items():
        if name not in features:
            continue
        x = _numeric(frame, name)
        codes = np.where(np.isnan(x), -1, np.searchsorted(list(edges), x, side="right"))
        present_bins = [b for b in range(len(edges) + 1) if (codes == b).any()]
        names = [str(b) for b in present_bins] + (["missing"] if (codes < 0).any() else [])
        columns = [(codes == b).astype(float) for b in present_bins]
        columns += [(codes < 0).astype(float)] if (codes < 0).any() else []
        terms.append((Term(name, "bins", edges=[float(e) for e in edges]), names))
        blocks.append(np.column_stack(columns))
    for name in categorical:
        if name not in features:
            continue
        values = frame[name].to_numpy(dtype=object)
        text = np.array([None if pd.isna(v) else str(v) for v in values], dtype=object)
        levels = sorted({v for v in text if v is not None})
        if not levels:
            continue
        terms.append((Term(name, "categorical"), levels))
        blocks.append(np.column_stack([(text == lv).astype(float) for lv in levels]))
    design = np.column_stack(blocks) if blocks else np.zeros((len(frame), 0))
    return terms, design


def _with_coefficients(terms: list[tuple[Term, list[str]]], coef: np.ndarray) -> list[Term]:
    out: list[Term] = []
    at = 0
    for term, names in terms:
        if term.kind == "bins":
            for name, c in zip(names, coef[at : at + len(names)], strict=True):
                if name == "missing":
                    term.missing_coef = float(c)
                else:
                    term.levels[name] = float(c)
        elif term.kind == "categorical":
            term.levels = {
                lv: float(c) for lv, c in zip(names, coef[at : at + len(names)], strict=True)
            }
        else:
            term.coef = float(coef[at])
            if "missing" in names:
                term.missing_coef = float(coef[at + 1])
        at += len(names)
        out.append(term)
    return out
