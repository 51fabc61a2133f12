"""What a STAC load's spec offers the graph and the result: the `LoadSpec` protocol.

Two specs implement it, one for in-memory items (`load_graph.StacSpec`) and one for
stac-geoparquet files (`geoparquet.parquet_load.ParquetSpec`); `load_graph.make_stack`
builds the graph over either, and `stac_stack.StacStack` keeps it. Here, apart from both,
so that neither the graph nor the result imports the other to name it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from daskcog.mosaics.grid import Grid
from daskcog.mosaics.masks import Masking
from daskcog.mosaics.mosaic import MosaicSpec
from daskcog.mosaics.scenes import Bounds
from daskcog.runtime.io_loop import LoopChoice

Job = tuple[list[int], MosaicSpec, np.ndarray, list[int], Masking | None]
"""(output band positions, the asset's mosaic spec, scene ids, band numbers in the files,
what masks its scenes: `mask=`)."""


class LoadSpec(Protocol):
    """What `make_stack` and the chunk task need from a load's spec."""

    @property
    def band_map(self) -> tuple[tuple[int, int], ...]: ...

    @property
    def out_dtype(self) -> str: ...

    @property
    def fills(self) -> tuple[float, ...]: ...

    @property
    def rescale(self) -> tuple[tuple[float, float] | None, ...]: ...

    @property
    def loop(self) -> LoopChoice: ...

    @property
    def grid(self) -> Grid: ...

    @property
    def steps(self) -> int: ...

    @property
    def assets(self) -> tuple[MosaicSpec, ...]: ...

    def jobs(self, step: int, b0: int, b1: int, bounds: Bounds) -> list[Job]: ...

