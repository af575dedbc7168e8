"""The plots logged with each training run: calibration and SHAP summary, as PNG files.

Matplotlib's object API (no pyplot state) for the calibration plot; SHAP's summary plot
draws through pyplot, so that figure is closed as soon as it is saved.
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
    """SHAP beeswarm of the booster's TreeSHAP contributions (log-odds) on `matrix`.

    `matrix` is the encoded feature matrix (`model.encode`); categoricals show their codes.
    """
    import matplotlib.pyplot as plt
    import shap  # slow to import (~4 s): only when a plot is wanted

    contributions = model.contributions(matrix)[:, :-1]
    shap.summary_plot(
        contributions,
        features=matrix,
        feature_names=model.feature_names,
        max_display=max_display,
        show=False,
        plot_size=(8, 6),
    )
    fig = plt.gcf()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
