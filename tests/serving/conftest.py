"""Fixtures for the serving units: small real LightGBM risk models on synthetic features.

The feature frame has every catalogue column (categoricals as strings, NaN where a real
project would lack an input), and the labels depend on SPI, CPI and the forecast slip, so
the models use several features and their SHAP values are not trivial.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.catalogue import categorical_names, feature_names
from training.calibration import Calibrator
from training.models import RiskModel, category_levels, encode_features

TYPES = np.array(["it", "construction", "rail"], dtype=object)
PORTFOLIOS = np.array(["north", "south"], dtype=object)


def make_features(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A `build_features`-shaped frame with plausible values and some missing inputs."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "project_id": [f"P{i:04d}" for i in range(n)],
            "as_of": pd.Timestamp("2024-06-30"),
        }
    )
    for name in feature_names():
        frame[name] = rng.normal(0, 1, n)
    frame["project_type"] = TYPES[rng.integers(0, len(TYPES), n)]
    frame["portfolio"] = PORTFOLIOS[rng.integers(0, len(PORTFOLIOS), n)]
    frame["spi"] = np.clip(rng.normal(0.95, 0.12, n), 0.4, 1.4)
    frame["cpi"] = np.clip(rng.normal(0.95, 0.12, n), 0.4, 1.4)
    frame["cpi_change_6"] = rng.normal(-0.03, 0.08, n)
    frame["forecast_slip"] = rng.normal(0.05, 0.1, n)
    frame["planned_duration_days"] = rng.integers(120, 700, n).astype(float)
    frame["report_cadence_days"] = rng.choice([7.0, 14.0, 30.0], n)
    frame["changes_last_90d"] = rng.poisson(1.5, n).astype(float)
    frame["log_budget"] = np.log1p(rng.lognormal(13, 1, n))
    frame["has_budget"] = 1.0
    no_budget = rng.random(n) < 0.1
    frame.loc[no_budget, "log_budget"] = np.nan
    frame.loc[no_budget, "has_budget"] = 0.0
    frame.loc[rng.random(n) < 0.15, "cpi"] = np.nan
    return frame


def _fit(frame: pd.DataFrame, target: str, label: np.ndarray, seed: int) -> RiskModel:
    names = feature_names()
    categorical = categorical_names()
    levels = category_levels(frame, categorical)
    data = lgb.Dataset(
        encode_features(frame, names, levels),
        label=label,
        feature_name=names,
        categorical_feature=[names.index(c) for c in categorical],
    )
    params = {
        "objective": "binary",
        "num_leaves": 7,
        "learning_rate": 0.1,
        "min_data_in_leaf": 20,
        "min_data_per_group": 20,
        "seed": seed,
        "deterministic": True,
        "verbose": -1,
        "num_threads": 1,
    }
    booster = lgb.train(params, data, num_boost_round=40)
    return RiskModel(
        booster=booster,
        calibrator=Calibrator(method="sigmoid", a=0.9, b=-0.1),
        feature_names=names,
        categorical_levels=levels,
        target=target,
        num_threads=1,
    )


@pytest.fixture(scope="session")
def features() -> pd.DataFrame:
    return make_features()


@pytest.fixture(scope="session")
def models(features: pd.DataFrame) -> dict[str, RiskModel]:
    rng = np.random.default_rng(1)
    it = (features["project_type"] == "it").to_numpy()
    late_logit = -4 * (features["spi"] - 0.95) + 3 * features["forecast_slip"] + 0.5 * it
    cpi = features["cpi"].fillna(0.95)
    over_logit = -5 * (cpi - 0.95) - 3 * features["cpi_change_6"] + 1.0 * it
    late = (rng.random(len(features)) < 1 / (1 + np.exp(-late_logit))).astype(float)
    over = (rng.random(len(features)) < 1 / (1 + np.exp(-over_logit))).astype(float)
    return {
        "delay": _fit(features, "delay", late.to_numpy(), seed=1),
        "overrun": _fit(features, "overrun", over.to_numpy(), seed=2),
    }


@pytest.fixture(scope="session", autouse=True)
def own_bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test process's servers get a BentoML home of their own: `bentoml serve` clears
    its Prometheus multiprocess folder (under BENTOML_HOME) at start, so servers of two
    test processes sharing ~/bentoml wiped each other's metrics."""
    import os

    before = os.environ.get("BENTOML_HOME")
    os.environ["BENTOML_HOME"] = str(tmp_path_factory.mktemp("bentoml-home"))
    yield
    if before is None:
        os.environ.pop("BENTOML_HOME", None)
    else:
        os.environ["BENTOML_HOME"] = before
