"""features.columns: feature columns framed put each float feature under its own name."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.columns import FeatureColumns
from features.pointintime import snapshot
from features.simulator import simulate_portfolio


def test_float_columns_are_framed_by_name_whatever_the_block_order() -> None:
    # The float block's rows are in compute order (a, b, c, d), not column order.
    block = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    columns = FeatureColumns(
        names=("id", "c", "a", "d", "b"),
        block_names=("a", "b", "c", "d"),
        block=block,
        singles={"id": np.array(["x", "y"], dtype=object)},
    )
    expected = pd.DataFrame(
        {"id": ["x", "y"], "c": [5.0, 6.0], "a": [1.0, 2.0], "d": [7.0, 8.0], "b": [3.0, 4.0]}
    )
    frame = columns.to_frame()
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    floats = ["c", "a", "d", "b"]
    np.testing.assert_array_equal(frame.select_dtypes("float64").to_numpy(), expected[floats])
    np.testing.assert_array_equal(frame.drop(columns="id").to_numpy(), expected[floats])


def test_built_features_read_the_same_by_column_and_by_block() -> None:
    features = snapshot(simulate_portfolio(40, seed=3).portfolio, "2026-06-30")
    floats = features.select_dtypes("float64")
    by_column = np.column_stack([features[c].to_numpy() for c in floats.columns])
    np.testing.assert_array_equal(floats.to_numpy(), by_column)
