"""daskcog.load: STAC items onto one grid as a lazy (time, band, y, x) GeoStack.

Graph strategy (entry point first, then the task code in the order it runs):

* The client turns the items into plain values once: output bands
  (`bands.resolve`), steps (`grouping`), and one `Scene` per (item, asset)
  from the items' proj:* fields (`scenes.asset_tables`: no I/O; headers only
  for items that lack them, all at once, with a warning). `grid.place` picks
  the grid over every scene.
* Each asset key becomes one `MosaicSpec` (the mosaic engine's plain-value
  spec: its scenes, footprints on the grid, one group of scene indices per
  step). A `StacSpec` holds them with the output band -> (asset, band number)
  map. The graph is one `da.from_array` layer over `StacBlocks`: one task per
  (step, y, x) chunk, all bands in it, built in constant time, no edge per
  (chunk, item).
* A chunk task (`graph.StacBlocks`) finds each asset's scenes of its step that
  overlap the chunk (a vectorised footprint test, `StacSpec.jobs`) and runs
  the mosaic engine for every asset at once (see `graph.py`).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from daskcog.mosaics.footprints import Bounds
from daskcog.mosaics.grid import Placement
from daskcog.mosaics.methods import MosaicMethod
from daskcog.mosaics.mosaic import GDAL_TOLERANCE, MosaicSpec, build_spec
from daskcog.reading.io_loop import LoopChoice
from daskcog.stac import bands as band_rules
from daskcog.stac import grouping
from daskcog.stac.graph import make_spec, make_stack, plan_grid
from daskcog.stac.items import (
    ItemDict,
    StacError,
    is_geoparquet,
    item_datetime,
    item_id,
    item_lonlat_bbox,
    iter_item_dicts,
)
from daskcog.stac.options import LoadOptions
from daskcog.stac.result import StacStack
from daskcog.stac.scenes import asset_tables, complete_facts


# -- entry point ------------------------------------------------------------------
def load(
    items: Any,
    *,
    bands: str | Sequence[str] | None = None,
    crs: Any = None,
    resolution: float | tuple[float, float] | None = None,
    bbox: Bounds | None = None,
    bounds: Bounds | None = None,
    like: Any = None,
    groupby: grouping.Groupby | None = "time",
    method: str | type[MosaicMethod] = "first",
    chunks: Any = "auto",
    dtype: Any = None,
    nodata: float | None = None,
    resampling: str = "nearest",
    errors: str = "raise",
    rescale: bool = False,
    patch_url: Callable[[str], str] | None = None,
    preserve_original_order: bool = False,
    use_proj: bool = True,
    batch_size: int | None = None,
    warp_tolerance: float = GDAL_TOLERANCE,
    loop: LoopChoice = "io-thread",
    **store_options: Any,
) -> StacStack:
    """Load STAC items as a lazy (time, band, y, x) GeoStack; `.to_xarray()` for xarray.

    The names are odc-stac's where they mean the same, so switching is one import.

    Args:
        items: a pystac Item or ItemCollection, a pystac-client ItemSearch, an
            iterable of Items or item dicts, or a stac-geoparquet path / URL.
        bands: asset keys, "asset.N" for band N of a multi-band asset, or
            eo:bands / bands aliases ("red"); default: every band of every
            GeoTIFF asset. Output bands keep the names asked for.
        crs: output CRS (default: the first scene's).
        resolution: output pixel size in the output CRS (default: the finest scene's).
        bbox: (west, south, east, north) in lon/lat, like odc-stac: the grid covers
            it, snapped outwards to multiples of the resolution.
        bounds: (left, bottom, right, top) in the output CRS, used as given.
        like: a GeoArray / GeoStack / anything with crs, transform, shape: its grid.
        groupby: "time", "solar_day", "day", "month", "id", an item property name,
            a callable on the item dict, or None (one step per item).
        method: how a step's scenes are fused: "first", "last", "min", "max",
            "mean", "median", "count" or a MosaicMethod subclass.
        chunks: "auto", an int, (y, x), or a dict with y / x (/ band / time) sizes.
        dtype: output dtype (default: from raster:bands, promoted across bands).
        nodata: output fill value (default: each band's raster:bands nodata, else 0).
        resampling: a rasterio Resampling name for scenes that are warped.
        errors: "raise" or "nodata" (failed scene reads count as no data and go to
            `daskcog.failure_report`; a header that disagrees with proj:* still raises).
        rescale: apply raster:bands scale / offset (like stackstac's `rescale=`):
            floats, NaN where no data.
        patch_url: a callable applied to every asset href (e.g. signing), like odc-stac.
        preserve_original_order: keep the items' order inside a step instead of
            sorting by (datetime, id).
        use_proj: read grids from proj:* (False: open every header on the client).
        batch_size, warp_tolerance, loop: as `daskcog.mosaic`.
        **store_options: obstore options for every asset URL.
    """
    options = LoadOptions(
        bands=bands, crs=crs, resolution=resolution, bbox=bbox, bounds=bounds, like=like,
        groupby=groupby, method=method, chunks=chunks, dtype=dtype, nodata=nodata,
        resampling=resampling, errors=errors, rescale=rescale, patch_url=patch_url,
        preserve_original_order=preserve_original_order, use_proj=use_proj,
        batch_size=batch_size, warp_tolerance=warp_tolerance, loop=loop,
    )
    if is_geoparquet(items):
        from daskcog.stac.geoparquet import load_geoparquet

        return load_geoparquet(items, options, **store_options)
    with _no_gc():
        return _load_items(items, options, **store_options)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The garbage collector paused while the plan is built: it allocates a few objects per
    item and nothing cyclic, and the collector's passes over them took a third of the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_items(items: Any, options: LoadOptions, **store_options: Any) -> StacStack:
    o = options
    bands, dtype, patch_url, groupby, loop = o.bands, o.dtype, o.patch_url, o.groupby, o.loop
    item_list = list(iter_item_dicts(items))
    if not item_list:
        raise StacError("no STAC items to load")
    catalogue = band_rules.catalogue(item_list)
    out_bands = band_rules.resolve(bands, catalogue)
    first_bands = {b.info.asset: b.info for b in out_bands}
    facts, _ = complete_facts(item_list, first_bands, patch_url=patch_url, **store_options)
    tables = asset_tables(
        item_list, facts, patch_url=patch_url, use_proj=o.use_proj, dtype=dtype, **store_options
    )
    empty = [t.key for t in tables if not t.scenes]
    if empty:
        raise StacError(f"no item has the asset(s) {empty}")

    times = [item_datetime(it) for it in item_list]
    ids = [item_id(it) for it in item_list]
    lons = [_lon(it) for it in item_list]
    keys = grouping.group_keys(groupby, item_list, times, lons)
    steps = grouping.group(keys, times, ids, preserve_original_order=o.preserve_original_order)

    everything = [s for t in tables for s in t.scenes]
    placement = plan_grid(everything, o.crs, o.resolution, o.bbox, o.bounds, o.like)
    specs: list[MosaicSpec] = []
    offset = 0
    for table in tables:
        n = len(table.scenes)
        part = Placement(
            placement.grid,
            placement.footprints[offset : offset + n],
            placement.native_res[offset : offset + n],
            placement.axis_res[offset : offset + n],
        )
        offset += n
        position = {int(item): k for k, item in enumerate(table.items)}
        groups = tuple(
            np.asarray([position[i] for i in members if i in position], dtype=np.int64)
            for members in steps.members
        )
        numbers = [b.info.index for b in out_bands if b.info.asset == table.key]
        specs.append(
            build_spec(
                table.scenes, part, groups=groups, method=o.method, nodata=o.nodata,
                resampling=o.resampling, bands=numbers, dtype=dtype or facts[table.key].dtype,
                batch_size=o.batch_size, warp_tolerance=o.warp_tolerance, loop=loop,
                errors=o.errors,
            )
        )
    asset_index = {t.key: k for k, t in enumerate(tables)}
    band_map = tuple((asset_index[b.info.asset], b.info.index) for b in out_bands)
    spec = make_spec(specs, band_map, out_bands, dtype, o.rescale, loop)
    return make_stack(spec, o.chunks, out_bands, steps, item_list, groupby)


def _lon(item: ItemDict) -> float:
    box = item_lonlat_bbox(item)
    return 0.0 if box is None else (box[0] + box[2]) / 2
