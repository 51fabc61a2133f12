"""The options of one `daskcog.load` call, as one plain value.

`load` takes them as keywords (odc-stac's names, documented there), checks nothing
itself, and hands this value to the loader of its input: items (`load._load_items`)
or a stac-geoparquet file (`geoparquet.load_geoparquet`). The store options travel
beside it, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from daskcog.mosaics.methods import MosaicMethod
from daskcog.reading.io_loop import LoopChoice
from daskcog.stac import grouping
from georeader.window_utils import Bounds


@dataclass(frozen=True)
class LoadOptions:
    """`daskcog.load`'s keywords but the items and the store options (see `load`)."""

    bands: str | Sequence[str] | None
    crs: Any
    resolution: float | tuple[float, float] | None
    bbox: Bounds | None
    bounds: Bounds | None
    like: Any
    groupby: grouping.Groupby | None
    method: str | type[MosaicMethod]
    chunks: Any
    dtype: Any
    nodata: float | None
    resampling: str
    errors: str
    rescale: bool
    patch_url: Callable[[str], str] | None
    preserve_original_order: bool
    use_proj: bool
    batch_size: int | None
    warp_tolerance: float
    loop: LoopChoice
