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
* A chunk task (`load_graph.StacBlocks`) finds each asset's scenes of its step that
  overlap the chunk (a vectorised footprint test, `StacSpec.jobs`) and runs
  the mosaic engine for every asset at once (see `load_graph.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from daskcog.mosaics import grouping
from daskcog.mosaics.grid import Placement
from daskcog.mosaics.masks import Mask, MaskPlan, as_masks
from daskcog.mosaics.methods import MethodLike
from daskcog.mosaics.mosaic import GDAL_TOLERANCE, MosaicSpec, build_spec
from daskcog.mosaics.scenes import Bounds
from daskcog.reading import arguments
from daskcog.runtime.io_loop import LoopChoice
from daskcog.stac.items import bands as band_rules
from daskcog.stac.items.asset_scenes import (
    asset_tables,
    complete_facts,
    mask_facts,
    mask_plans,
)
from daskcog.stac.items.item_dicts import (
    StacError,
    absolute_hrefs,
    is_geoparquet,
    item_datetime,
    item_id,
    iter_item_dicts,
)
from daskcog.stac.load_graph import grid_lon, make_spec, make_stack, plan_grid
from daskcog.stac.options import ODC_NOT_SUPPORTED, LoadOptions, check_asset_options
from daskcog.stac.output_grid import GridRequest, finest_per_item
from daskcog.stac.stac_stack import StacStack, property_requests
from georeader.io import RetryPolicy


# -- entry point ------------------------------------------------------------------
def load(
    items: Any,
    bands: str | Sequence[str] | None = None,
    *,
    groupby: grouping.Groupby | None = "time",
    resampling: str | Mapping[str, str] = "nearest",
    dtype: Any = None,
    chunks: Any = "auto",
    crs: Any = None,
    resolution: Any = None,
    anchor: Any = None,
    geobox: Any = None,
    bbox: Bounds | None = None,
    lon: tuple[float, float] | None = None,
    lat: tuple[float, float] | None = None,
    x: tuple[float, float] | None = None,
    y: tuple[float, float] | None = None,
    like: Any = None,
    geopolygon: Any = None,
    intersects: Any = None,
    bounds: Bounds | None = None,
    progress: Any = None,
    fail_on_error: bool | None = None,
    with_properties: Sequence[str] | None = None,
    stac_cfg: Mapping[str, Any] | None = None,
    patch_url: Callable[[str], str] | None = None,
    preserve_original_order: bool = False,
    measurements: str | Sequence[str] | None = None,
    output_crs: Any = None,
    method: MethodLike = "first",
    nodata: float | None = None,
    errors: str = "raise",
    rescale: bool = False,
    use_proj: bool = True,
    batch_size: int | None = None,
    warp_tolerance: float = GDAL_TOLERANCE,
    loop: LoopChoice = "io-thread",
    retry: RetryPolicy | None = None,
    mask: Mask | Sequence[Mask] | None = None,
    **store_options: Any,
) -> StacStack:
    """Load STAC items as a lazy (time, band, y, x) GeoStack; `.to_dataset()` for odc-stac's
    xarray.Dataset, `.to_xarray()` for one DataArray.

    The names are odc-stac's where they mean the same, so switching is one import;
    the README's odc-stac table lists each name. The output grid follows odc-stac's
    rules, built with odc-geo (`stac.output_grid`): the same arguments give the same
    grid and the same coordinates.

    Args:
        items: a pystac Item or ItemCollection, a pystac-client ItemSearch, an
            iterable of Items or item dicts, or a stac-geoparquet path / URL.
        bands: asset keys, "asset.N" for band N of a multi-band asset, or
            eo:bands / bands aliases ("red"); default: every band of every
            GeoTIFF asset. Output bands keep the names asked for.
            `measurements=` (datacube's name) is the same.
        groupby: "time", "solar_day", "day", "month", "id" (one step per item, in input
            order), "all" (one step of every item: a composite), an item property name,
            a callable - odc-stac's `f(item, parsed, idx)` or `f(item_dict)` -, or None
            (one step per item).
        resampling: a rasterio Resampling name for scenes that are warped, or
            odc-stac's {band: name, "*": default} (bands of one asset share one).
        dtype: output dtype (default: from raster:bands, promoted across bands;
            `to_dataset()` gives each band its own).
        chunks: "auto", an int, (y, x), or a dict with y / x (/ band / time) sizes;
            time: one step per chunk unless given (-1 or None: all steps in one).
        crs: output CRS, or "utm" (the UTM zone of the region, else of the first
            item); default: the items' most common. `output_crs=` is the same.
        resolution: pixel size in the output CRS: a number, daskcog's (x, y) sizes
            or an odc-geo Resolution; default: the items' most common.
        anchor: pixel snapping: "edge", "center", "floating", an odc-geo xy_ pixel
            fraction; default: the items' own grid unless crs and resolution are
            both given, then pixel edges on multiples of the resolution.
        geobox: an odc-geo GeoBox: the whole output grid.
        bbox: (west, south, east, north) in lon/lat: the region to cover, snapped
            to the anchor. `lon=` / `lat=` ranges in degrees, `x=` / `y=` ranges
            in the output CRS, `geopolygon=` / `intersects=` (a geometry) likewise.
        like: an odc-geo GeoBox, an xarray result of odc-stac or daskcog, or a
            daskcog GeoArray / GeoStack: its grid.
        bounds: (left, bottom, right, top) in the output CRS, used as given
            (daskcog's; no snapping, like `gdalwarp -te`).
        progress: accepted for odc-stac's calls and not used: odc-stac uses it only
            for loads without Dask, and a daskcog load is always lazy. Watch a
            compute with `dask.diagnostics.ProgressBar` or distributed's dashboard.
        fail_on_error: odc-stac's switch: False is `errors="nodata"`.
        with_properties: item property names that `to_dataset()` adds as (time,)
            variables (odc-stac's aux bands: the step's first item's value);
            `to_xarray()` carries every step-constant property as a coordinate.
        patch_url: a callable applied to every asset href (e.g. signing), like odc-stac.
        preserve_original_order: keep the items' order inside a step instead of
            sorting by (datetime, id).
        method: how a step's scenes are fused: "first", "last", "min", "max",
            "mean", "median", "count" (clear views), a percentile ("p25" or
            `daskcog.Quantile(0.25)`, numpy's nanquantile) or a MosaicMethod subclass.
            mean, count, min, max reduce as scenes arrive; median and quantiles hold
            the chunk's valid values in their own dtype (`explain()` says how much).
        nodata: output fill value (default: the metadata's nodata - raster:bands, bands,
            stac_cfg -, else NaN for float outputs, else none is declared and each
            file's own nodata pixels keep their value, as odc-stac: never 0 for -3000).
        errors: "raise" or "nodata" (failed scene reads count as no data and go to
            `daskcog.failure_report`; a header that disagrees with proj:* still raises).
        rescale: apply raster:bands scale / offset (like stackstac's `rescale=`):
            floats, NaN where no data.
        use_proj: read grids from proj:* (False: open every header on the client).
        stac_cfg: odc-stac's per-collection band configuration: {collection or "*":
            {"assets": {key, "key.*" or "*": {"data_type", "nodata"}}, "aliases":
            {name: "asset" or "asset.N"}, "ignore_proj": bool}}; a key's entry
            replaces what the metadata says, "*" fills what it leaves out.
        batch_size, warp_tolerance, loop, retry: as `daskcog.mosaic`.
        mask: a `daskcog.Mask` or a list of them (a pixel is clear where every mask says
            so): each item's mask asset is read with nearest resampling (whatever
            `resampling=` says) and the item's data pixels that are not clear are
            invalid before `method` sees them. The mask asset is not an output band
            unless `bands=` names it. Every item needs the mask asset (else a
            StacItemError naming the item). `method="median"`, `groupby="all"` and a
            mask make the cloud-free composite.
        **store_options: obstore options for every asset URL, checked against the
            store's own option names at call time: any other name is a TypeError.
    """
    not_supported = [k for k in store_options if k in ODC_NOT_SUPPORTED]
    if not_supported:
        k = not_supported[0]
        raise TypeError(f"daskcog.load() does not take {k}=: {ODC_NOT_SUPPORTED[k]}")
    bands = _alias("bands", bands, "measurements", measurements)
    crs = _alias("crs", crs, "output_crs", output_crs)
    geopolygon = _alias("geopolygon", geopolygon, "intersects", intersects)
    if fail_on_error is not None:
        if errors != "raise":
            raise TypeError("give errors= or fail_on_error=, not both")
        errors = "raise" if fail_on_error else "nodata"
    del progress  # see the docstring: a lazy load has nothing to report
    arguments.retry(retry)
    batch_size = arguments.batch_size(batch_size)
    grid = GridRequest(
        crs=crs, resolution=resolution, anchor=anchor, geobox=geobox, like=like, bbox=bbox,
        bounds=bounds, lon=lon, lat=lat, x=x, y=y, geopolygon=geopolygon,
    )
    options = LoadOptions(
        bands=bands, crs=crs, resolution=resolution, bbox=bbox, bounds=bounds, like=like,
        groupby=groupby, method=method, chunks=chunks, dtype=dtype, nodata=nodata,
        resampling=resampling, errors=errors, rescale=rescale, patch_url=patch_url,
        stac_cfg=stac_cfg,
        preserve_original_order=preserve_original_order, use_proj=use_proj,
        batch_size=batch_size, warp_tolerance=warp_tolerance, loop=loop, grid=grid,
        with_properties=property_requests(with_properties), retry=retry,
        masks=as_masks(mask),
    )
    if stac_cfg is not None:
        band_rules.check_stac_cfg(stac_cfg)
    if is_geoparquet(items):
        from daskcog.stac.geoparquet.parquet_load import load_geoparquet

        return load_geoparquet(items, options, keywords=LOAD_KEYWORDS, **store_options)
    with _no_gc():
        return _load_items(items, options, **store_options)


LOAD_KEYWORDS = frozenset(inspect.signature(load).parameters) - {"items", "store_options"}
"""`load`'s own keywords, suggested for close misspellings (`anchr` -> `anchor`)."""


def _alias(name: str, value: Any, other: str, other_value: Any) -> Any:
    if other_value is None:
        return value
    if value is not None:
        raise TypeError(f"give {name}= or {other}= (the same keyword), not both")
    return other_value


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
    item_list = [absolute_hrefs(item) for item in iter_item_dicts(items)]
    if not item_list:
        raise StacError("no STAC items to load")
    item_list, cfg_aliases = band_rules.apply_stac_cfg(item_list, o.stac_cfg)
    catalogue = band_rules.catalogue(item_list)
    out_bands = band_rules.resolve(bands, catalogue, cfg_aliases)
    resampling = band_rules.resampling_per_asset(o.resampling, out_bands)
    first_bands = {b.info.asset: b.info for b in out_bands}
    hrefs = (
        str(asset["href"]) for it in item_list
        for key in first_bands if isinstance(asset := (it.get("assets") or {}).get(key), dict)
        and asset.get("href")
    )
    check_asset_options(hrefs, store_options, patch_url, LOAD_KEYWORDS)
    facts, _ = complete_facts(
        item_list, first_bands, patch_url=patch_url, retry=o.retry, **store_options
    )
    tables = asset_tables(
        item_list, facts, patch_url=patch_url, use_proj=o.use_proj, dtype=dtype,
        nodata=o.nodata, rescale=o.rescale, declare=True, retry=o.retry, **store_options
    )
    empty = [t.key for t in tables if not t.scenes]
    if empty:
        raise StacError(f"no item has the asset(s) {empty}")

    everything = [s for t in tables for s in t.scenes]
    grids = finest_per_item([(t.scenes, t.items) for t in tables], len(item_list))
    placement, geobox = plan_grid(
        o.grid, everything, [g for g in grids if g is not None]
    )

    times = [item_datetime(it) for it in item_list]
    ids = [item_id(it) for it in item_list]
    lon = grid_lon(geobox)  # odc-stac's solar day: the output grid's longitude for every item
    keys = grouping.group_keys(groupby, item_list, times, [lon] * len(item_list))
    steps = grouping.group(keys, times, ids, preserve_original_order=o.preserve_original_order)

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
                resampling=resampling[table.key], bands=numbers,
                dtype=dtype or facts[table.key].dtype,
                batch_size=o.batch_size, warp_tolerance=o.warp_tolerance, loop=loop,
                errors=o.errors, retry=o.retry,
            )
        )
    asset_index = {t.key: k for k, t in enumerate(tables)}
    band_map = tuple((asset_index[b.info.asset], b.info.index) for b in out_bands)
    spec = make_spec(specs, band_map, out_bands, dtype, o.rescale, loop)
    if o.masks:
        plans = _mask_plans(o, item_list, catalogue, tables, placement.grid, **store_options)
        spec = dataclasses.replace(
            spec, masks=plans, scene_items=tuple(np.asarray(t.items) for t in tables)
        )
    return make_stack(spec, o.chunks, out_bands, steps, item_list, groupby,
                      with_properties=o.with_properties)


def _mask_plans(
    o: LoadOptions,
    item_list: list[Any],
    catalogue: dict[str, list[band_rules.BandInfo]],
    tables: Sequence[Any],
    grid: Any,
    **store_options: Any,
) -> tuple[MaskPlan, ...]:
    """The load's mask plans (`asset_scenes.mask_plans`), checked at call time: the mask
    assets are GeoTIFF assets of the items with the band asked for, their data type known
    (one header per asset key when the metadata states none), every item with data carries
    them."""
    infos = mask_facts(o.masks, catalogue, "the items")
    facts, _ = complete_facts(item_list, infos, patch_url=o.patch_url, retry=o.retry,
                              **store_options)
    with_data = sorted({int(i) for t in tables for i in t.items})
    return mask_plans(o.masks, item_list, facts, with_data, grid, o, **store_options)
