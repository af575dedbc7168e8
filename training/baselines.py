"""What the model must beat, scored on the same rows: two PMO rules and a linear model.

- the EVM rule PMOs use today: red when SPI or CPI < 0.90, amber below 0.95;
- the project manager's own forecast: late when the forecast finish slips past the delay
  tolerance, over budget when the forecast cost exceeds the budget by the overrun tolerance;
- a logistic regression on the model's features (impute, scale, one-hot).

A rule needs its inputs: on a row where they are missing it says nothing (score NaN), and
a rule with no applicable row at all is not applicable (`None`), never a score of zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from training.models import TARGET_LABELS

BASELINE_NAMES = ("evm_rule", "pm_forecast", "logistic_regression")
RULE_NAMES = ("evm_rule", "pm_forecast")
EVM_RED_BELOW = 0.90
EVM_AMBER_BELOW = 0.95


@dataclass
class BaselineScores:
    """One baseline's output on the evaluation rows (aligned with them).

    `score` ranks rows (higher = riskier) and is NaN where the baseline's inputs are missing;
    `probability` is what Brier and calibration error are computed on: the logistic
    regression's p, or a rule's red flag read as 1/0; `red` is the red flag itself.
    """

    name: str
    score: np.ndarray
    probability: np.ndarray
    red: np.ndarray
    is_rule: bool
    description: str

    @property
    def applicable(self) -> np.ndarray:
        return ~np.isnan(self.score)


def evm_rule(
    rows: pd.DataFrame,
    red_below: float = EVM_RED_BELOW,
    amber_below: float = EVM_AMBER_BELOW,
) -> BaselineScores | None:
    """The EVM rule; its ranking score is 1 − min(SPI, CPI). Needs both SPI and CPI."""
    if "spi" not in rows or "cpi" not in rows:
        return None
    spi = rows["spi"].to_numpy(dtype=float, na_value=np.nan)
    cpi = rows["cpi"].to_numpy(dtype=float, na_value=np.nan)
    worst = np.fmin(spi, cpi)
    worst[np.isnan(spi) | np.isnan(cpi)] = np.nan
    if np.isnan(worst).all():
        return None
    red = worst < red_below  # NaN compares False: no input, no flag
    return BaselineScores(
        name="evm_rule",
        score=1.0 - worst,
        probability=np.where(np.isnan(worst), np.nan, red.astype(float)),
        red=red,
        is_rule=True,
        description=f"red when SPI or CPI < {red_below:.2f} (amber < {amber_below:.2f}); "
        "AUC on 1 − min(SPI, CPI)",
    )


def evm_rag(
    spi: np.ndarray,
    cpi: np.ndarray,
    red_below: float = EVM_RED_BELOW,
    amber_below: float = EVM_AMBER_BELOW,
) -> np.ndarray:
    """The EVM rule's colour per row: red, amber, green, or n/a without SPI and CPI."""
    worst = np.fmin(spi, cpi)
    worst[np.isnan(spi) | np.isnan(cpi)] = np.nan
    return np.select(
        [np.isnan(worst), worst < red_below, worst < amber_below],
        ["n/a", "red", "amber"],
        default="green",
    )


def pm_forecast_rule(rows: pd.DataFrame, target: str, tolerance: float) -> BaselineScores | None:
    """The project manager's forecast: red when the forecast slip (overrun) > tolerance.

    Its ranking score is the forecast slip (delay) or forecast overrun (overrun) itself.
    """
    column = {"delay": "forecast_slip", "overrun": "forecast_overrun"}[target]
    if column not in rows:
        return None
    score = rows[column].to_numpy(dtype=float, na_value=np.nan)
    if np.isnan(score).all():
        return None
    red = score > tolerance
    what = "finish" if target == "delay" else "cost"
    return BaselineScores(
        name="pm_forecast",
        score=score,
        probability=np.where(np.isnan(score), np.nan, red.astype(float)),
        red=red,
        is_rule=True,
        description=f"red when the PM's forecast {what} is beyond the {tolerance:.0%} "
        f"tolerance; AUC on {column}",
    )


def _as_float(frame: pd.DataFrame) -> np.ndarray:
    values = frame.to_numpy(dtype=float, na_value=np.nan)
    values[~np.isfinite(values)] = np.nan
    return values


def _as_levels(frame: pd.DataFrame) -> np.ndarray:
    values = frame.astype(object)
    return values.where(values.notna(), "missing").astype(str).to_numpy()


def fit_logistic(
    train: pd.DataFrame,
    target: str,
    features: list[str],
    categorical: list[str],
) -> Pipeline:
    """A weighted logistic regression on the same features as the booster."""
    label = TARGET_LABELS[target]
    labelled = train.loc[train[label].notna()]
    # A feature with no value in the training rows (no cost data, say) carries nothing.
    numeric = [f for f in features if f not in categorical and labelled[f].notna().any()]
    transformers: list[tuple[str, object, list[str]]] = []
    if numeric:
        transformers.append(
            (
                "numeric",
                make_pipeline(
                    FunctionTransformer(_as_float),
                    SimpleImputer(strategy="median", add_indicator=True),
                    StandardScaler(),
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                make_pipeline(
                    FunctionTransformer(_as_levels),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            )
        )
    pipeline = Pipeline(
        [
            ("prepare", ColumnTransformer(transformers)),
            # Newton-Cholesky: a few iterations on ~100 columns, against hundreds for lbfgs.
            ("logistic", LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=200)),
        ]
    )
    weight = labelled["weight"].to_numpy(dtype=float)
    # One BLAS thread: on small matrices, more threads mostly wait for each other, and on
    # a shared machine they spin against other work (3-5x slower measured).
    with threadpool_limits(limits=1, user_api="blas"):
        pipeline.fit(
            labelled[features],
            labelled[label].to_numpy(dtype=int),
            logistic__sample_weight=weight * (len(weight) / weight.sum()),
        )
    return pipeline


def logistic_p(pipeline: Pipeline, rows: pd.DataFrame) -> np.ndarray:
    """The logistic regression's probability on `rows`."""
    features = list(pipeline.feature_names_in_)
    with threadpool_limits(limits=1, user_api="blas"):
        return np.asarray(pipeline.predict_proba(rows[features])[:, 1], dtype=float)


def logistic_scores(pipeline: Pipeline, rows: pd.DataFrame, red_threshold: float) -> BaselineScores:
    """The logistic regression's p on `rows`; red at the model's red threshold."""
    return logistic_from_p(logistic_p(pipeline, rows), red_threshold)


def logistic_from_p(p: np.ndarray, red_threshold: float) -> BaselineScores:
    """Wrap logistic-regression probabilities (e.g. out-of-fold ones) as baseline scores."""
    return BaselineScores(
        name="logistic_regression",
        score=p,
        probability=p,
        red=p >= red_threshold,
        is_rule=False,
        description="logistic regression on the same features (median impute + missing "
        f"flags, scaled, one-hot categories); red at p ≥ {red_threshold:.2f}",
    )
