"""daskcog.stack: scenes on one common grid as a (time, band, y, x) dask array.

One scene per step, or, with `group_by`, the scenes of one key mosaicked into
one step (e.g. all tiles of a date). The graph is the mosaic's: one
blockwise layer (`array_over`) over `MosaicBlocks` with one group of scene indices per
step, one task per (step, y, x) chunk, plain values only.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import dask.array as da
import numpy as np
from affine import Affine
from dask.base import tokenize
from pyproj import CRS

from daskcog.mosaics import grouping
from daskcog.mosaics.mosaic import (
    MOSAIC_KEYWORDS,
    MosaicError,
    MosaicOptions,
    MosaicSpec,
    mosaic_chunks,
)
from daskcog.mosaics.scenes import fetch_scenes
from daskcog.reading.cog_array import array_over
from daskcog.reading.geoarray import DATAARRAY_NAME, GeoArray, to_dataarray
from georeader.geo import OnGrid
from georeader.io import check_sources_options


class GeoStack(OnGrid):
    """A lazy (time, band, y, x) dask array on one grid, with a key per step."""

    def __init__(
        self,
        data: da.Array,
        *,
        transform: Affine,
        crs: CRS,
        keys: Sequence[Any],
        bands: Sequence[Any],
        fill_value_default: float,
        nodata: float | None,
        urls: Sequence[Sequence[str]],
    ) -> None:
        if data.ndim != 4:
            raise ValueError(
                f"GeoStack data must be (time, band, y, x), got {data.ndim} dimensions"
            )
        self.data = data
        self.transform = transform
        self.crs = crs
        self.keys = tuple(keys)
        self.bands = tuple(bands)
        self.fill_value_default = fill_value_default
        self.nodata = nodata
        self.urls = tuple(tuple(u) for u in urls)
        """The scene URLs of each step, in priority order."""

    @property
    def times(self) -> tuple[Any, ...]:
        return self.keys

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def height(self) -> int:
        return self.shape[2]

    @property
    def width(self) -> int:
        return self.shape[3]

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"GeoStack(steps={len(self)}, shape={self.shape}, dtype={self.dtype}, "
            f"crs={self.crs.to_string() if self.crs else None!r}, res={self.res})"
        )

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """`np.asarray(stack)` computes all steps in one go, like `GeoArray`'s."""
        return np.asarray(self.data.compute(), dtype=dtype)

    def __getitem__(self, step: int) -> GeoArray:
        """Step `step` as a GeoArray (band, y, x)."""
        return GeoArray(
            self.data[step],
            transform=self.transform,
            crs=self.crs,
            fill_value_default=self.fill_value_default,
            nodata=self.nodata,
            band_names=self.bands,
        )

    def to_xarray(self, name: str | None = DATAARRAY_NAME) -> Any:
        """A dask-backed xarray.DataArray (time, band, y, x), CRS on `spatial_ref` (rioxarray's
        way), named like `GeoArray.to_xarray`'s."""
        leading = {"time": list(self.keys), "band": list(self.bands)}
        return to_dataarray(
            self.data, leading, transform=self.transform, crs=self.crs, fill_value=self.nodata,
            name=name,
        )


def _group(
    urls: Sequence[str], group_by: Callable[[str], Hashable] | Sequence[Hashable] | None
) -> tuple[list[Any], list[list[int]]]:
    """(keys, scene indices per key) by `daskcog.mosaics.grouping`'s rules, the ones
    `daskcog.load` follows: None is "id", one step per source in their order (keyed by its
    URL); other keys are sorted, missing ones (None, NaN) last, keys of types that do not
    compare are a GroupbyError; inside a step the sources' order (priority)."""
    if group_by is None:
        return list(urls), [[i] for i in range(len(urls))]
    if callable(group_by):
        labels = [group_by(u) for u in urls]
    elif isinstance(group_by, str | bytes) or not isinstance(group_by, Iterable):
        raise MosaicError(
            f"group_by takes None, a callable on each source's URL or a list of keys (one "
            f"per source), not {group_by!r}"
        )
    else:
        labels = list(group_by)
        if len(labels) != len(urls):
            raise MosaicError(f"group_by has {len(labels)} keys for {len(urls)} sources")
    steps = grouping.group(labels, None, None)
    return list(steps.keys), [list(m) for m in steps.members]


def stack(
    sources: Sequence[Any],
    *,
    group_by: Callable[[str], Hashable] | Sequence[Hashable] | None = None,
    **options: Any,
) -> GeoStack:
    """Scenes on a common grid as a lazy GeoStack (time, band, y, x).

    Args:
        sources: like `daskcog.mosaic` (paths, URLs, readers or Scenes).
        group_by: None (one step per scene, keyed by URL), a callable on each
            scene's URL, or a list of keys (one per source). Scenes with the same
            key are mosaicked into one step with `method`, in the sources' order.
            Steps are sorted by key, missing keys last (`daskcog.mosaics.grouping`: the
            rules of `daskcog.load`'s groupby; keys that do not compare are an error).
        **options: `daskcog.mosaic`'s keywords (`MosaicOptions`: crs, resolution,
            bounds, like, method, nodata, resampling, chunks, bands, dtype,
            batch_size, warp_tolerance, loop, retry, mask, mask_sources), then store
            options; the grid covers all scenes. `chunks` applies to (band, y, x);
            each step is its own chunk along time.
    """
    mosaic_options, store_options = MosaicOptions.split(options)
    check_sources_options(sources, store_options, entry_keywords=MOSAIC_KEYWORDS | {"group_by"})
    scenes = fetch_scenes(sources, retry=mosaic_options.retry, **store_options)
    keys, groups = _group([s.url for s in scenes], group_by)
    spec: MosaicSpec = mosaic_options.spec(scenes, tuple(np.asarray(g) for g in groups))
    plane = mosaic_chunks(spec, mosaic_options.chunks)
    normalised = ((1,) * len(groups), *plane)
    blocks = mosaic_options.blocks(spec, scenes, 4, **store_options)
    name = f"daskcog-stack-{tokenize(spec, normalised, getattr(blocks, 'masking', None))}"
    data = array_over(blocks, normalised, name, spec.out_dtype)
    return GeoStack(
        data,
        transform=spec.grid.affine,
        crs=spec.grid.crs_obj,
        keys=keys,
        bands=spec.bands,
        fill_value_default=spec.out_fill,
        nodata=None if spec.method_class.name == "count" else spec.out_fill,
        urls=[[scenes[i].url for i in g] for g in groups],
    )
