"""features.columns: frames assembled from blocks behave as pandas-built frames do."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.columns import frame_from_blocks, frame_public
from features.pointintime import snapshot
from features.simulator import simulate_portfolio


def test_float_columns_read_in_column_order_through_every_path() -> None:
    # The float block's rows are in compute order, not column order: pandas' single-block
    # shortcuts must still see the columns in the frame's order.
    columns = ["id", "c", "a", "d", "b"]
    block = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])  # rows: a, b, c, d
    singles = {"id": np.array(["x", "y"], dtype=object)}
    frame = frame_from_blocks(columns, singles, ["a", "b", "c", "d"], block)
    expected = frame_public(columns, singles, ["a", "b", "c", "d"], block)
    pd.testing.assert_frame_equal(frame, expected)
    floats = ["c", "a", "d", "b"]
    np.testing.assert_array_equal(frame.select_dtypes("float64").to_numpy(), expected[floats])
    np.testing.assert_array_equal(frame[floats].to_numpy(), expected[floats].to_numpy())
    np.testing.assert_array_equal(frame.drop(columns="id").to_numpy(), expected[floats])


def test_built_features_read_the_same_by_column_and_by_block() -> None:
    features = snapshot(simulate_portfolio(40, seed=3).portfolio, "2026-06-30")
    floats = features.select_dtypes("float64")
    by_column = np.column_stack([features[c].to_numpy() for c in floats.columns])
    np.testing.assert_array_equal(floats.to_numpy(), by_column)
