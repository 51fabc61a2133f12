"""The value a mosaic's (or stack's, or STAC load's) graph carries: `MosaicSpec`.

Its own module, apart from the entry point that builds it (`mosaic.build_spec`) and the
chunk tasks that read it (`chunk_task`), so that both import it and neither imports the other.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from daskcog.mosaics.grid import Grid
from daskcog.mosaics.methods import MosaicMethod, get_method
from daskcog.mosaics.scenes import Bounds, Scene, SceneIndex, wrap_period
from daskcog.runtime.io_loop import LoopChoice
from georeader.io import RetryPolicy

__all__ = ["MosaicSpec", "scenes_digest"]


@dataclass(frozen=True, eq=False)
class MosaicSpec:
    """Everything a chunk task needs, as plain picklable values."""

    scenes: tuple[Scene, ...]
    footprints: np.ndarray
    """(N, 4) scene bounds in the grid's CRS."""
    level_res: np.ndarray
    """(N,) source pixel size matching the grid's resolution (overview choice)."""
    scales: np.ndarray
    """(N, 2) destination pixels per full-resolution source pixel along x, y (GDAL's
    XSCALE / YSCALE, pinned so that warps do not depend on the chunking)."""
    grid: Grid
    groups: tuple[np.ndarray, ...]
    """Scene indices of each output step, in priority order (a mosaic has one group)."""
    method: Any
    bands: tuple[int, ...]
    value_dtype: str
    fill: float | int
    resampling: str
    warp_tolerance: float
    batch_size: int | None
    loop: LoopChoice = "io-thread"
    errors: str = "raise"
    """"nodata": a scene whose read fails counts as having no valid pixel and is recorded in
    the failure report (a header disagreeing with its metadata still raises)."""
    retry: RetryPolicy = RetryPolicy()
    """How every scene read of this graph retries (header opens included), in every process."""

    @property
    def method_class(self) -> type[MosaicMethod]:
        return get_method(self.method)

    @property
    def out_dtype(self) -> np.dtype:
        return self.method_class.output_dtype(np.dtype(self.value_dtype))

    @property
    def out_fill(self) -> float | int:
        return self.method_class.output_fill(self.fill)

    def candidates(self, group: int, bounds: Bounds) -> np.ndarray:
        """Scenes of a group overlapping `bounds`, in priority order."""
        members = self.groups[group]
        hits = SceneIndex(self.footprints, wrap_period(self.grid.crs)).hits(bounds)
        return members[hits[members]]

    def reads_per_scene(self, chunk_bounds: Sequence[Bounds]) -> np.ndarray:
        """(N,) how many (group, chunk) pairs list each scene among their `candidates`, for
        chunks of these bounds on every group: the chunk tasks that read it (or stop before
        it). One footprint test per chunk for all groups (`scene_uses`)."""
        index = SceneIndex(self.footprints, wrap_period(self.grid.crs))
        hit = np.zeros(len(self.scenes), dtype=np.int64)
        for bounds in chunk_bounds:
            hit += index.hits(bounds)
        out = np.zeros(len(self.scenes), dtype=np.int64)
        for members in self.groups:
            np.add.at(out, members, hit[members])
        return out

    def __dask_tokenize__(self) -> Any:
        return (
            "daskcog.MosaicSpec",
            scenes_digest(self.scenes),
            self.footprints,
            self.level_res,
            self.scales,
            self.grid,
            tuple(g.tobytes() for g in self.groups),
            repr(self.method),
            self.bands,
            self.value_dtype,
            repr(self.fill),
            self.resampling,
            self.warp_tolerance,
            self.batch_size,
            self.loop,
            self.errors,
            self.retry,
        )


def scenes_digest(scenes: tuple[Scene, ...]) -> str:
    """A deterministic digest of a scene table: hashing its pickle is ~50x faster than
    letting Dask normalise 10,000 dataclasses field by field."""
    return hashlib.sha1(pickle.dumps(scenes, protocol=5), usedforsecurity=False).hexdigest()
