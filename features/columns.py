"""Feature rows as NumPy columns: what `build_features` computes, before it is a DataFrame.

The service scores one project per request. Framing its single feature row costs about as
much as computing it, and every column read from a fresh frame costs ~20 µs, so the scoring
path can take the columns as built: one float block (``block_names`` × rows) and a few
object or date columns (``singles``). `FeatureColumns.to_frame` gives the same DataFrame
`build_features` returns; `columns_of` gives frames and columns one way to be read.
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

    @property
    def columns(self) -> tuple[str, ...]:
        return self.names

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
        return frame_from_blocks(list(self.names), self.singles, self.block_names, self.block)


class FrameColumns:
    """A DataFrame read like `FeatureColumns`: each column fetched once, as an array."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.frame.columns)

    def __contains__(self, name: object) -> bool:
        return name in self.frame.columns

    def column(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self.frame[name].to_numpy()
        return self._cache[name]

    def to_frame(self) -> pd.DataFrame:
        return self.frame


# What scoring reads: a frame, or its columns as arrays.
Features = pd.DataFrame | FeatureColumns | FrameColumns


def columns_of(features: Features) -> FeatureColumns | FrameColumns:
    """Feature rows, framed or not, as something with ``column(name)`` and ``len``."""
    if isinstance(features, pd.DataFrame):
        return FrameColumns(features)
    return features


def frame_from_blocks(
    columns: list[str],
    singles: dict[str, np.ndarray],
    block_names: Sequence[str],
    block: np.ndarray,
) -> pd.DataFrame:
    """A frame with ``columns`` in order, from single columns and one float block.

    For one project pandas' constructors would cost more than the features, so the frame is
    assembled from its blocks with pandas' pseudo-public ``internals.api.make_block`` (the
    float block keeps its own row order and is placed by name); `_frame_public` does the
    same with public calls and is the fallback (a test checks that they agree).
    """
    try:
        from pandas.core.internals import BlockManager
        from pandas.core.internals.api import make_block

        position = {name: i for i, name in enumerate(columns)}
        n_rows = block.shape[1]
        blocks = [
            make_block(values.reshape(1, n_rows), placement=[position[name]])
            for name, values in singles.items()
        ]
        # pandas' single-block shortcuts (`select_dtypes(...).to_numpy()`, say) read a
        # block's rows in stored order whatever their placement, so each float block is a
        # run of rows whose columns come in increasing order: views of `block`, no copy.
        placement = [position[name] for name in block_names]
        start = 0
        for end in range(1, len(placement) + 1):
            if end == len(placement) or placement[end] < placement[end - 1]:
                blocks.append(make_block(block[start:end], placement=placement[start:end]))
                start = end
        manager = BlockManager(
            tuple(blocks), [pd.Index(columns, dtype=object), pd.RangeIndex(n_rows)]
        )
        return pd.DataFrame._from_mgr(manager, axes=manager.axes)  # type: ignore[attr-defined]
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - another pandas
        return frame_public(columns, singles, block_names, block)


def frame_public(
    columns: list[str],
    singles: dict[str, np.ndarray],
    block_names: Sequence[str],
    block: np.ndarray,
) -> pd.DataFrame:
    """`frame_from_blocks` with public pandas calls only."""
    parts = [pd.DataFrame(singles), pd.DataFrame(block.T, columns=list(block_names))]
    return pd.concat(parts, axis=1)[columns]
