"""Feature rows as NumPy columns: what `build_features` computes, before it is a DataFrame.

The service scores one project per request. Framing its single feature row costs about as
much as computing it, and every column read from a fresh frame costs ~20 µs, so the scoring
path can take the columns as built: one float block (``block_names`` × rows) and a few
object or date columns (``singles``). `FeatureColumns.to_frame` gives the same DataFrame
`build_features` returns; `columns_of` gives frames and columns one way to be read.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

try:  # pandas' block API, which `frame_from_blocks` assembles frames with
    from pandas.core.arrays import DatetimeArray
    from pandas.core.internals import BlockManager
    from pandas.core.internals.api import make_block

    _BLOCK_API = True
except ImportError:  # pragma: no cover - another pandas: `frame_public` builds the frames
    _BLOCK_API = False

_OBJECT = np.dtype(object)
_NS = np.dtype("datetime64[ns]")


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
        return frame_from_blocks(list(self.names), self.singles, self.block_names, self.block)


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


@functools.lru_cache(maxsize=16)
def _layout(
    columns: tuple[str, ...], block_names: tuple[str, ...]
) -> tuple[pd.Index, dict[str, int], np.ndarray, tuple[tuple[int, int], ...]]:
    """The output's column index, each column's position, the float block's placement and
    its increasing runs,
    built once per column list (an index of ~70 names takes ~20 µs to build, and its hash
    table as much again on first use)."""
    position = {name: i for i, name in enumerate(columns)}
    placement = np.array([position[name] for name in block_names], dtype=np.intp)
    placement.flags.writeable = False  # shared by every frame built with this layout
    # pandas' single-block shortcuts (`select_dtypes(...).to_numpy()`, say) read a block's
    # rows in stored order whatever its placement: the float block goes in as runs of rows
    # whose columns increase (views, no copy).
    cuts = [0, *(np.flatnonzero(np.diff(placement) < 0) + 1).tolist(), len(placement)]
    runs = tuple(itertools.pairwise(cuts))
    return pd.Index(columns, dtype=object), position, placement, runs


def frame_from_blocks(
    columns: list[str],
    singles: dict[str, np.ndarray],
    block_names: Sequence[str],
    block: np.ndarray,
) -> pd.DataFrame:
    """The output frame with ``columns`` in order, from single columns and one float block.

    For one project pandas' constructors would cost more than the features, so the frame is
    assembled from its blocks with pandas' pseudo-public ``internals.api.make_block`` (the
    float block keeps its own row order and is placed by name; the object columns share one
    block, as pandas would consolidate them); `_frame_public` does the same with public
    calls and is the fallback (a test checks that they agree).
    """
    if not _BLOCK_API:  # pragma: no cover - another pandas
        return frame_public(columns, singles, block_names, block)
    try:
        index, position, placement, runs = _layout(tuple(columns), tuple(block_names))
        n_rows = block.shape[1]
        blocks = [make_block(block[lo:hi], placement=placement[lo:hi]) for lo, hi in runs]
        objects = sorted(
            (name for name, values in singles.items() if values.dtype == _OBJECT),
            key=position.__getitem__,  # increasing placement, as for the float runs
        )
        if objects:
            stacked = np.stack([singles[name] for name in objects])
            blocks.append(make_block(stacked, placement=[position[name] for name in objects]))
        for name, values in singles.items():
            if values.dtype == _OBJECT:
                continue
            values = values.reshape(1, n_rows)
            if values.dtype == _NS:  # wrapped here: make_block's own wrapping costs ~20 µs
                values = DatetimeArray._simple_new(values, dtype=_NS)  # type: ignore[attr-defined]
            blocks.append(make_block(values, placement=[position[name]]))
        # A view of the cached index (its data and hash table shared), so that a name set
        # on one frame's columns is not set on the next frame's.
        rows = pd.RangeIndex.from_range(range(n_rows))  # (~2 µs less than its constructor)
        manager = BlockManager(tuple(blocks), [index.view(), rows], verify_integrity=False)
        return pd.DataFrame._from_mgr(manager, axes=manager.axes)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # pragma: no cover - another pandas
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
