"""Probability calibration of a booster's log-odds margin, stored as plain JSON.

Fitted on rows the trees did not see (the time-later validation slice). Both methods are
non-decreasing in the margin, so they keep the booster's monotone constraints intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Method = Literal["isotonic", "sigmoid"]

# Calibrated probabilities are kept off exactly 0 and 1: a closed-form certainty from a few
# hundred projects would be overconfident, and log-loss on it would be infinite.
P_FLOOR = 1e-3


@dataclass
class Calibrator:
    """A non-decreasing map from raw margin (log-odds) to probability.

    ``isotonic``: piecewise-linear through (x_thresholds, y_thresholds), flat beyond them.
    ``sigmoid``: Platt scaling, ``p = 1 / (1 + exp(-(a * margin + b)))``.
    """

    method: Method
    a: float = 1.0
    b: float = 0.0
    x_thresholds: list[float] = field(default_factory=list)
    y_thresholds: list[float] = field(default_factory=list)

    def transform(self, margin: np.ndarray) -> np.ndarray:
        margin = np.asarray(margin, dtype=float)
        if self.method == "isotonic":
            p = np.interp(margin, self.x_thresholds, self.y_thresholds)
        else:
            p = 1.0 / (1.0 + np.exp(-(self.a * margin + self.b)))
        return np.clip(p, P_FLOOR, 1 - P_FLOOR)

    def to_dict(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {
                "method": "isotonic",
                "x_thresholds": [float(v) for v in self.x_thresholds],
                "y_thresholds": [float(v) for v in self.y_thresholds],
            }
        return {"method": "sigmoid", "a": float(self.a), "b": float(self.b)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        method = data["method"]
        if method == "isotonic":
            return cls(
                method="isotonic",
                x_thresholds=list(map(float, data["x_thresholds"])),
                y_thresholds=list(map(float, data["y_thresholds"])),
            )
        if method == "sigmoid":
            return cls(method="sigmoid", a=float(data["a"]), b=float(data["b"]))
        raise ValueError(f"unknown calibration method {method!r}")


def fit_calibrator(
    margin: np.ndarray, y: np.ndarray, weight: np.ndarray, method: Method
) -> Calibrator:
    """Fit a calibrator on held-out margins, labels and row weights."""
    margin = np.asarray(margin, dtype=float)
    y = np.asarray(y, dtype=float)
    weight = np.asarray(weight, dtype=float)
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(margin, y, sample_weight=weight)
        return Calibrator(
            method="isotonic",
            x_thresholds=iso.X_thresholds_.tolist(),
            y_thresholds=iso.y_thresholds_.tolist(),
        )
    if method == "sigmoid":
        if len(np.unique(y)) < 2:
            raise ValueError("sigmoid calibration needs both outcomes in the held-out rows")
        # A weak penalty: Platt scaling has two parameters and plenty of rows.
        lr = LogisticRegression(C=1e4)
        lr.fit(margin.reshape(-1, 1), y.astype(int), sample_weight=weight)
        a = float(lr.coef_[0, 0])
        if a <= 0:
            # A non-positive slope would invert or flatten the ranking; it only happens
            # when the held-out slice carries no signal, and then identity is more honest.
            a, b = 1.0, 0.0
        else:
            b = float(lr.intercept_[0])
        return Calibrator(method="sigmoid", a=a, b=b)
    raise ValueError(f"unknown calibration method {method!r}")
