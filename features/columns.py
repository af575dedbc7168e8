"""Feature rows as NumPy columns: what `build_features` computes, before it is a DataFrame.

The service scores one project per request and need not frame its single feature row: the
scoring path can take the columns as built, one float block (``block_names`` × rows) and a
few object or date columns (``singles``). `FeatureColumns.to_frame` frames them once, with
the public DataFrame constructor, as `build_features` returns them; `columns_of` gives
frames and columns one way to be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureColumns:
    """Feature rows: ``names`` in frame order, floats in ``block``, the rest in ``singles``."""

    names: tuple[str, ...]  # every column, in the order of the frame
    block_names: tuple[str, ...]  # the float features, in the order of the block's rows
    block: np.ndarray  # (len(block_names), n_rows) float64
    singles: dict[str, np.ndarray]  # project_id, as_of, categoricals, extra attributes
    _row_of: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_row_of", {n: i for i, n in enumerate(self.block_names)})

    def __len__(self) -> int:
        return int(self.block.shape[1])

    def __contains__(self, name: object) -> bool:
        return name in self._row_of or name in self.singles

    def column(self, name: str) -> np.ndarray:
        """One column's values (a view for the float features); KeyError when absent."""
        if name in self._row_of:
            return self.block[self._row_of[name]]
        return self.singles[name]

    def float_rows(self, names: Sequence[str]) -> np.ndarray | None:
        """The float features ``names`` as an (n_rows, len(names)) matrix, or None when one
        of them is not in the block."""
        try:
            rows = [self._row_of[n] for n in names]
        except KeyError:
            return None
        return self.block[rows].T

    def to_frame(self) -> pd.DataFrame:
        """The DataFrame `build_features` returns (columns in ``names`` order)."""
        return feature_frame(list(self.names), self.singles, self.block_names, self.block)


class FrameColumns:
    """A DataFrame read like `FeatureColumns`: each column fetched once, as an array."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, name: object) -> bool:
        return name in self.frame.columns

    def column(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self.frame[name].to_numpy()
        return self._cache[name]


# What scoring reads: a frame, or its columns as arrays.
Features = pd.DataFrame | FeatureColumns | FrameColumns


def columns_of(features: Features) -> FeatureColumns | FrameColumns:
    """Feature rows, framed or not, as something with ``column(name)`` and ``len``."""
    if isinstance(features, pd.DataFrame):
        return FrameColumns(features)
    return features


def feature_frame(
    columns: list[str],
    singles: dict[str, np.ndarray],
    block_names: Sequence[str],
    block: np.ndarray,
) -> pd.DataFrame:
    """The frame with ``columns`` in order, from single columns and one float block whose
    rows are the float features ``block_names`` (in any order: placed by name)."""
    row_of = {name: i for i, name in enumerate(block_names)}
    data = {name: singles[name] if name in singles else block[row_of[name]] for name in columns}
    return pd.DataFrame(data, columns=pd.Index(columns, dtype=object))
