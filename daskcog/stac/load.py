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
* A chunk task (`StacBlocks.__getitem__`) finds each asset's scenes of its step
  that overlap the chunk (a vectorised footprint test) and runs the mosaic
  engine's `mosaic_block` for every asset at once on the process's I/O loop:
  headers come from the per-process reader cache and are checked against the
  metadata (`check_header`), scenes are read concurrently and fused with
  `method`, first/last stopping early.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
from dask.base import tokenize

from daskcog.mosaics.footprints import Bounds, crs_text, transform_bounds
from daskcog.mosaics.grid import Placement, place
from daskcog.mosaics.methods import MosaicMethod
from daskcog.mosaics.mosaic import GDAL_TOLERANCE, MosaicSpec, build_spec, mosaic_block
from daskcog.reading import chunking
from daskcog.reading.io_loop import LoopChoice, run_sync
from daskcog.stac import bands as band_rules
from daskcog.stac import grouping
from daskcog.stac.items import (
    ItemDict,
    StacError,
    is_geoparquet,
    item_datetime,
    item_id,
    item_lonlat_bbox,
    iter_item_dicts,
)
from daskcog.stac.result import StacStack
from daskcog.stac.scenes import asset_tables, complete_facts

if TYPE_CHECKING:
    from daskcog.stac.geoparquet import ParquetSpec

LOAD_CHUNK_BYTES = 8 * 2**20
"""'auto' chunks aim at this many bytes per (step, y, x) chunk, all bands."""
CHUNK_GRANULE = 256


@dataclass(frozen=True, eq=False)
class StacSpec:
    """What a chunk task needs: one mosaic spec per asset and the band map (plain values)."""

    assets: tuple[MosaicSpec, ...]
    band_map: tuple[tuple[int, int], ...]
    """Per output band: (index into `assets`, 1-based band number in that asset's files)."""
    out_dtype: str
    fills: tuple[float, ...]
    """Per output band: the value where no scene is valid."""
    rescale: tuple[tuple[float, float] | None, ...]
    """Per output band: (scale, offset) applied to valid pixels, or None."""
    loop: LoopChoice = "io-thread"

    @property
    def grid(self) -> Any:
        return self.assets[0].grid

    @property
    def steps(self) -> int:
        return len(self.assets[0].groups)

    def runs(self, b0: int, b1: int) -> list[tuple[int, list[int], list[int]]]:
        return band_runs(self.band_map, b0, b1)

    def jobs(
        self, step: int, b0: int, b1: int, bounds: Bounds
    ) -> list[tuple[list[int], MosaicSpec, np.ndarray, list[int]]]:
        """The mosaics one chunk of one step needs: (output positions, spec, scene ids,
        band numbers) per asset with a scene overlapping `bounds`."""
        out = []
        for asset, positions, numbers in self.runs(b0, b1):
            mspec = self.assets[asset]
            ids = mspec.candidates(step, bounds)
            if len(ids):
                out.append((positions, mspec, ids, numbers))
        return out

    def __dask_tokenize__(self) -> Any:
        return (
            "daskcog.StacSpec",
            tuple(tokenize(a) for a in self.assets),
            self.band_map,
            self.out_dtype,
            repr(self.fills),
            self.rescale,
            self.loop,
        )


def band_runs(
    band_map: Sequence[tuple[int, int]], b0: int, b1: int
) -> list[tuple[int, list[int], list[int]]]:
    """Output bands b0..b1 as runs sharing an asset: (asset, output positions, band numbers)."""
    out: list[tuple[int, list[int], list[int]]] = []
    for pos in range(b0, b1):
        asset, number = band_map[pos]
        if out and out[-1][0] == asset:
            out[-1][1].append(pos - b0)
            out[-1][2].append(number)
        else:
            out.append((asset, [pos - b0], [number]))
    return out


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
    if is_geoparquet(items):
        from daskcog.stac.geoparquet import load_geoparquet

        return load_geoparquet(
            items, bands=bands, crs=crs, resolution=resolution, bbox=bbox, bounds=bounds,
            like=like, groupby=groupby, method=method, chunks=chunks, dtype=dtype,
            nodata=nodata, resampling=resampling, errors=errors, rescale=rescale,
            patch_url=patch_url, preserve_original_order=preserve_original_order,
            batch_size=batch_size, warp_tolerance=warp_tolerance, loop=loop, **store_options,
        )
    with _no_gc():
        return _load_items(
            items, bands=bands, crs=crs, resolution=resolution, bbox=bbox, bounds=bounds,
            like=like, groupby=groupby, method=method, chunks=chunks, dtype=dtype, nodata=nodata,
            resampling=resampling, errors=errors, rescale=rescale, patch_url=patch_url,
            preserve_original_order=preserve_original_order, use_proj=use_proj,
            batch_size=batch_size, warp_tolerance=warp_tolerance, loop=loop, **store_options,
        )


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


def _load_items(
    items: Any,
    *,
    bands: str | Sequence[str] | None,
    crs: Any,
    resolution: float | tuple[float, float] | None,
    bbox: Bounds | None,
    bounds: Bounds | None,
    like: Any,
    groupby: grouping.Groupby | None,
    method: str | type[MosaicMethod],
    chunks: Any,
    dtype: Any,
    nodata: float | None,
    resampling: str,
    errors: str,
    rescale: bool,
    patch_url: Callable[[str], str] | None,
    preserve_original_order: bool,
    use_proj: bool,
    batch_size: int | None,
    warp_tolerance: float,
    loop: LoopChoice,
    **store_options: Any,
) -> StacStack:
    item_list = list(iter_item_dicts(items))
    if not item_list:
        raise StacError("no STAC items to load")
    catalogue = band_rules.catalogue(item_list)
    out_bands = band_rules.resolve(bands, catalogue)
    first_bands = {b.info.asset: b.info for b in out_bands}
    facts, _ = complete_facts(item_list, first_bands, patch_url=patch_url, **store_options)
    tables = asset_tables(
        item_list, facts, patch_url=patch_url, use_proj=use_proj, dtype=dtype, **store_options
    )
    empty = [t.key for t in tables if not t.scenes]
    if empty:
        raise StacError(f"no item has the asset(s) {empty}")

    times = [item_datetime(it) for it in item_list]
    ids = [item_id(it) for it in item_list]
    lons = [_lon(it) for it in item_list]
    keys = grouping.group_keys(groupby, item_list, times, lons)
    steps = grouping.group(keys, times, ids, preserve_original_order=preserve_original_order)

    everything = [s for t in tables for s in t.scenes]
    placement = _placement(everything, crs, resolution, bbox, bounds, like)
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
                table.scenes, part, groups=groups, method=method, nodata=nodata,
                resampling=resampling, bands=numbers, dtype=dtype or facts[table.key].dtype,
                batch_size=batch_size, warp_tolerance=warp_tolerance, loop=loop, errors=errors,
            )
        )
    asset_index = {t.key: k for k, t in enumerate(tables)}
    band_map = tuple((asset_index[b.info.asset], b.info.index) for b in out_bands)
    spec = _stac_spec(specs, band_map, out_bands, dtype, rescale, loop)
    return _stack(spec, chunks, out_bands, steps, item_list, groupby)


def _lon(item: ItemDict) -> float:
    box = item_lonlat_bbox(item)
    return 0.0 if box is None else (box[0] + box[2]) / 2


def _placement(
    scenes: Sequence[Any],
    crs: Any,
    resolution: Any,
    bbox: Bounds | None,
    bounds: Bounds | None,
    like: Any,
) -> Placement:
    if bbox is None:
        return place(scenes, crs=crs, resolution=resolution, bounds=bounds, like=like)
    if bounds is not None or like is not None:
        raise StacError("give one of bbox=, bounds= or like=")
    first = place(scenes, crs=crs, resolution=resolution)
    return place(
        scenes, crs=first.grid.crs, resolution=first.grid.res,
        bounds=snap_bbox(bbox, first.grid.crs, first.grid.res),
    )


def snap_bbox(bbox: Bounds, crs: str, res: tuple[float, float]) -> Bounds:
    """A lon/lat bbox in the output CRS, snapped outwards to multiples of the resolution."""
    west, south, east, north = (float(v) for v in bbox)
    left, bottom, right, top = transform_bounds((west, south, east, north),
                                                crs_text("EPSG:4326"), crs)
    if not all(math.isfinite(v) for v in (left, bottom, right, top)):
        raise StacError(f"bbox {bbox!r} cannot be placed in the output CRS")
    rx, ry = res
    return (
        math.floor(left / rx + 1e-9) * rx,
        math.floor(bottom / ry + 1e-9) * ry,
        math.ceil(right / rx - 1e-9) * rx,
        math.ceil(top / ry - 1e-9) * ry,
    )


def _stac_spec(
    specs: list[MosaicSpec],
    band_map: tuple[tuple[int, int], ...],
    out_bands: list[band_rules.Band],
    dtype: Any,
    rescale: bool,
    loop: LoopChoice,
) -> StacSpec:
    scaling: list[tuple[float, float] | None] = []
    for b in out_bands:
        scale = 1.0 if b.info.scale is None else b.info.scale
        offset = 0.0 if b.info.offset is None else b.info.offset
        scaling.append((scale, offset) if rescale else None)
    if dtype is not None:
        out = np.dtype(dtype)
    elif rescale:
        out = np.result_type(np.float32, *(s.out_dtype for s in specs))
    else:
        out = np.result_type(*(s.out_dtype for s in specs))
    fills = tuple(
        math.nan if rescale and out.kind == "f" else float(specs[a].out_fill) for a, _ in band_map
    )
    return StacSpec(tuple(specs), band_map, str(out), fills, tuple(scaling), loop)


def _stack(
    spec: StacSpec | ParquetSpec,
    chunks: Any,
    out_bands: list[band_rules.Band],
    steps: grouping.Grouping,
    items: list[ItemDict] | None,
    groupby: Any,
) -> StacStack:
    time_chunk, plane = load_chunks(spec, chunks)
    n = spec.steps
    tchunks = tuple(min(time_chunk, n - i) for i in range(0, n, time_chunk))
    normalised = (tchunks, *plane)
    name = f"daskcog-load-{tokenize(spec, normalised)}"
    data = da.from_array(
        StacBlocks(spec),
        chunks=normalised,
        name=name,
        lock=False,
        asarray=False,
        fancy=False,
        meta=np.empty((0, 0, 0, 0), dtype=spec.out_dtype),
    )
    fills = set(spec.fills)
    common = fills.pop() if len(fills) == 1 else None
    return StacStack(
        data,
        spec=spec,
        band_names=[b.name for b in out_bands],
        steps=steps,
        items=items,
        groupby=groupby,
        nodata=common,
    )


def load_chunks(spec: StacSpec | ParquetSpec, chunks: Any) -> tuple[int, tuple[tuple[int, ...], ...]]:
    """(time chunk, (band, y, x) chunks); 'auto' aims at LOAD_CHUNK_BYTES per chunk."""
    time_chunk = 1
    if isinstance(chunks, dict):
        chunks = dict(chunks)
        time_chunk = int(chunks.pop("time", 1) or 1)
    grid = spec.grid
    auto = chunks is None or isinstance(chunks, str) or (
        isinstance(chunks, dict) and (len(chunks) < 2 or "auto" in chunks.values())
    )
    return time_chunk, chunking.tile_chunks(
        chunks,
        window=(0, 0, grid.width, grid.height),
        count=len(spec.band_map),
        tile=(CHUNK_GRANULE, CHUNK_GRANULE) if auto else (1, 1),
        itemsize=np.dtype(spec.out_dtype).itemsize,
        target_bytes=LOAD_CHUNK_BYTES,
    )


# -- chunk tasks ----------------------------------------------------------------------
class StacBlocks:
    """Array-like (step, band, y, x) that `da.from_array` slices: one call per chunk."""

    def __init__(self, spec: StacSpec | ParquetSpec) -> None:
        self.spec = spec
        grid = spec.grid
        self.shape = (spec.steps, len(spec.band_map), grid.height, grid.width)
        self.dtype = np.dtype(spec.out_dtype)
        self.ndim = 4

    def __reduce__(self) -> tuple[Any, ...]:
        return (StacBlocks, (self.spec,))

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        spec = self.spec
        (t0, t1, _), (b0, b1, _), (r0, r1, _), (c0, c1, _) = (
            s.indices(n) for s, n in zip(key, self.shape, strict=True)
        )
        shape = (max(t1 - t0, 0), max(b1 - b0, 0), max(r1 - r0, 0), max(c1 - c0, 0))
        out = np.empty(shape, dtype=self.dtype)
        if 0 in shape:
            return out
        for pos in range(shape[1]):
            out[:, pos] = spec.fills[b0 + pos]
        window = (c0, r0, c1 - c0, r1 - r0)
        bounds = spec.grid.window_bounds(*window)
        jobs = [
            (t - t0, *job) for t in range(t0, t1) for job in spec.jobs(t, b0, b1, bounds)
        ]
        if jobs:
            results = run_sync(_gather(jobs, window), spec.loop)
            for (t, positions, mspec, _, _), values in zip(jobs, results, strict=True):
                for k, pos in enumerate(positions):
                    out[t, pos] = _finish(
                        values[k], mspec, spec.rescale[b0 + pos], self.dtype, spec.fills[b0 + pos]
                    )
        return out


async def _gather(
    jobs: list[tuple[int, list[int], MosaicSpec, np.ndarray, list[int]]],
    window: tuple[int, int, int, int],
) -> list[np.ndarray]:
    """Every (step, asset) mosaic of one chunk at once: their reads overlap on the loop."""
    return await asyncio.gather(
        *(mosaic_block(mspec, ids, numbers, window) for _, _, mspec, ids, numbers in jobs)
    )


def _finish(
    values: np.ndarray,
    mspec: MosaicSpec,
    scaling: tuple[float, float] | None,
    dtype: np.dtype,
    fill: float,
) -> np.ndarray:
    """One band of one step in the output dtype, scale / offset applied to valid pixels."""
    if scaling is None and mspec.out_fill == fill:
        return values.astype(dtype, copy=False)
    src_fill = mspec.out_fill
    valid = ~(np.isnan(values) if isinstance(src_fill, float) and math.isnan(src_fill)
              else values == src_fill)
    if scaling is not None:
        scale, offset = scaling
        result = values.astype(dtype) * dtype.type(scale) + dtype.type(offset)
    else:
        result = values.astype(dtype)
    return np.where(valid, result, dtype.type(fill))
