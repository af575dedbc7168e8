"""The plots logged with each training run: calibration and SHAP summary, as PNG files.

Matplotlib's object API only (no pyplot state, no display needed), so training can run
headless and in parallel without figures leaking between runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from training.evaluate import reliability_table
from training.models import RiskModel


def calibration_plot(
    y: np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    weight: np.ndarray,
    path: Path,
    title: str,
) -> Path:
    """Reliability diagram: observed share against mean predicted p, per 10 p-bins."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    for name, p in probabilities.items():
        table = reliability_table(y, p, weight)
        ax.plot(table["mean_predicted"], table["observed"], marker="o", label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability (bin mean)")
    ax.set_ylabel("observed share (weighted by project)")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def shap_summary_plot(
    model: RiskModel, matrix: np.ndarray, path: Path, title: str, max_display: int = 15
) -> Path:
    """SHAP summary (beeswarm) of the booster's TreeSHAP contributions on `matrix`.

    Drawn here rather than with ``shap.summary_plot``: the values are LightGBM's own
    ``pred_contrib`` (identical to shap's TreeExplainer), and importing shap costs seconds
    (numba) on every training run. One row per feature, the most important on top (mean
    |SHAP|); each dot a row of `matrix`, placed by its SHAP value (log-odds) and coloured by
    the feature's value rank within the sample (blue low, red high, grey missing or
    categorical).
    """
    contributions = model.contributions(matrix)[:, :-1]
    importance = np.abs(contributions).mean(axis=0)
    order = np.argsort(importance)[::-1][:max_display]
    rng = np.random.default_rng(0)
    fig = Figure(figsize=(8, 0.38 * len(order) + 1.6))
    ax = fig.add_subplot()
    for row, i in enumerate(order[::-1]):
        shap_values = contributions[:, i]
        values = matrix[:, i]
        colours = np.full(len(values), np.nan)
        present = ~np.isnan(values)
        if model.feature_names[i] not in model.categorical_levels and present.sum() > 1:
            ranks = values[present].argsort().argsort()
            colours[present] = ranks / max(present.sum() - 1, 1)
        jitter = _swarm_offsets(shap_values, rng)
        missing = np.isnan(colours)
        ax.scatter(
            shap_values[missing], row + jitter[missing], s=6, color="#b0b0b0", alpha=0.6,
            linewidths=0,
        )  # fmt: skip
        points = ax.scatter(
            shap_values[~missing], row + jitter[~missing], s=6, c=colours[~missing],
            cmap="coolwarm", vmin=0, vmax=1, alpha=0.8, linewidths=0,
        )  # fmt: skip
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([model.feature_names[i] for i in order[::-1]])
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_xlabel("SHAP value (contribution to the log-odds, before calibration)")
    ax.set_title(title)
    bar = fig.colorbar(points, ax=ax, pad=0.01, aspect=40)
    bar.set_ticks([0, 1])
    bar.set_ticklabels(["low", "high"])
    bar.set_label("feature value (rank in sample)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _swarm_offsets(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vertical spread proportional to the local density of values, so crowds look wide."""
    if len(values) < 2 or np.ptp(values) == 0:
        return rng.uniform(-0.3, 0.3, len(values))
    bins = np.linspace(values.min(), values.max(), 51)
    which = np.clip(np.digitize(values, bins) - 1, 0, 49)
    density = np.bincount(which, minlength=50).astype(float)
    width = 0.4 * density[which] / density.max()
    return rng.uniform(-1, 1, len(values)) * width
