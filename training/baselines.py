"""What the model must beat, scored on the same rows: the PMO's rules and a linear model.

Per target, every rule a PMO reads off a status report, each on its own continuous index
(higher = riskier) with the red flag PMOs use:

- delay: SPI (red < 0.90), SPI(t) from earned schedule (red < 0.90), the project manager's
  forecast slip (red beyond the delay tolerance), the PMO's own status colour (red);
- overrun: CPI (red < 0.90), TCPI (red > 1.10), the PM's forecast overrun (red beyond the
  overrun tolerance), the PMO's own status colour (red);
- and a logistic regression on the model's features (impute, scale, one-hot).

A rule needs its inputs: on a row where they are missing it says nothing (score NaN), and
a rule with no applicable row at all is not applicable (`None`), never a score of zero.
The EVM colour PMOs paint (`evm_rag`: red when SPI or CPI < 0.90) stays for the report.
"""

from __future__ import annotations

from collections.abc import Callable
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

EVM_RED_BELOW = 0.90
EVM_AMBER_BELOW = 0.95
TCPI_RED_ABOVE = 1.10
LOGISTIC = "logistic_regression"


@dataclass(frozen=True)
class Rule:
    """One PMO rule: the feature it reads, which way is riskier, and when it says red."""

    name: str
    column: str
    sign: int  # +1: a higher value is riskier; −1: a lower one is
    title: str
    red: Callable[[np.ndarray, float], np.ndarray]
    red_words: str


def _below(limit: float) -> Callable[[np.ndarray, float], np.ndarray]:
    return lambda x, _tolerance: x < limit


def _above(limit: float) -> Callable[[np.ndarray, float], np.ndarray]:
    return lambda x, _tolerance: x > limit


def _beyond_tolerance(x: np.ndarray, tolerance: float) -> np.ndarray:
    return x > tolerance


def _red_colour(x: np.ndarray, _tolerance: float) -> np.ndarray:
    return x >= 2.0


_RAG_RULE = Rule("rag", "rag", 1, "PMO status colour", _red_colour, "red when the PMO says red")
RULES: dict[str, tuple[Rule, ...]] = {
    "delay": (
        Rule("spi", "spi", -1, "SPI", _below(EVM_RED_BELOW), f"red when SPI < {EVM_RED_BELOW}"),
        Rule(
            "spi_t",
            "spi_t",
            -1,
            "SPI(t)",
            _below(EVM_RED_BELOW),
            f"red when SPI(t) < {EVM_RED_BELOW}",
        ),
        Rule(
            "pm_forecast",
            "forecast_slip",
            1,
            "PM forecast",
            _beyond_tolerance,
            "red when the PM's forecast finish is beyond the tolerance",
        ),
        _RAG_RULE,
    ),
    "overrun": (
        Rule("cpi", "cpi", -1, "CPI", _below(EVM_RED_BELOW), f"red when CPI < {EVM_RED_BELOW}"),
        Rule(
            "tcpi", "tcpi", 1, "TCPI", _above(TCPI_RED_ABOVE), f"red when TCPI > {TCPI_RED_ABOVE}"
        ),
        Rule(
            "pm_forecast",
            "forecast_overrun",
            1,
            "PM forecast",
            _beyond_tolerance,
            "red when the PM's forecast cost is beyond the tolerance",
        ),
        _RAG_RULE,
    ),
}
RULE_TITLES = {r.name: r.title for rules in RULES.values() for r in rules} | {
    LOGISTIC: "logistic regression"
}


def rule(target: str, name: str) -> Rule:
    """The rule called `name` for `target`."""
    for candidate in RULES[target]:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no rule {name!r} for {target}")


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


def rule_scores(
    rows: pd.DataFrame, target: str, r: Rule, tolerance: float
) -> BaselineScores | None:
    """One rule on `rows`: its index as a ranking score, its red flag; None without input."""
    if r.column not in rows:
        return None
    x = rows[r.column].to_numpy(dtype=float, na_value=np.nan)
    x = np.where(np.isfinite(x), x, np.nan)
    if np.isnan(x).all():
        return None
    red = np.zeros(len(x), dtype=bool)
    known = ~np.isnan(x)
    red[known] = r.red(x[known], tolerance)
    return BaselineScores(
        name=r.name,
        score=r.sign * x,
        probability=np.where(known, red.astype(float), np.nan),
        red=red,
        is_rule=True,
        description=f"{r.red_words}; AUC on {'−' if r.sign < 0 else ''}{r.column}",
    )


def all_rule_scores(
    rows: pd.DataFrame, target: str, tolerance: float
) -> dict[str, BaselineScores | None]:
    """Every rule of `target` on `rows`, by name (None where not applicable)."""
    return {r.name: rule_scores(rows, target, r, tolerance) for r in RULES[target]}


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
        name=LOGISTIC,
        score=p,
        probability=p,
        red=p >= red_threshold,
        is_rule=False,
        description="logistic regression on the same features (median impute + missing "
        f"flags, scaled, one-hot categories); red at p ≥ {red_threshold:.2f}",
    )
