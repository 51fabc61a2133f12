"""daskcog.mosaic: many scenes onto one grid, as one lazy GeoArray.

Graph strategy (read top to bottom: entry point, then the task functions in the
order they run):

* The client learns each scene's header once: `footprints.fetch_scenes` opens
  all headers concurrently through this process's reader cache (one
  `asyncio.gather` in one `run_sync`), or takes precomputed `Scene` values and
  does no I/O. `grid.place` picks the target grid and reprojects footprints.
* The graph is `da.from_array` over `MosaicBlocks`, a light array-like whose
  `MosaicSpec` holds plain values only: the scene table, footprints as an (N, 4)
  array, the grid, the method name. One blockwise layer, one task per output
  chunk, built in constant time; keys come from the spec's token.
* A chunk task (`MosaicBlocks.__getitem__`) finds its scenes with a vectorised
  footprint test (`SceneIndex`), then runs `mosaic_block` on the process's I/O
  loop: scenes are read in priority batches, each batch concurrently
  (`asyncio.gather`), and fed to the method; `first`/`last` stop as soon as every
  pixel is filled.
* `read_scene` reads one scene for one chunk. A scene on the grid's CRS and
  resolution whose origin is a whole number of pixels away is a plain window
  read (exact). Any other scene reads the overview that fits the grid's
  resolution (`choose_level`), a source window covering the chunk plus a margin,
  and warps it with GDAL (`rasterio.warp.reproject`) in a thread, off the loop,
  with the fill value as source and destination nodata so invalid pixels stay
  invalid.

Validity: a pixel is invalid when the reader returns it as the fill value (its
nodata, internal mask, alpha, outside the scene), per `georeader.nodata` rules
(NaN matches NaN, floats compare like GDAL). A valid source pixel that equals the
mosaic's fill value is therefore treated as invalid, as GDAL's warper does.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from affine import Affine
from dask.base import tokenize
from rasterio.enums import Resampling
from rasterio.windows import Window

from daskcog.mosaics.footprints import (
    Bounds,
    Scene,
    SceneIndex,
    SceneMismatchError,
    check_header,
    fetch_scenes,
    same_crs,
    transform_bounds,
)
from daskcog.mosaics.grid import Grid, Placement, aligned_offset, place
from daskcog.mosaics.methods import MosaicMethod, get_method
from daskcog.reading import chunking, failures
from daskcog.reading.geoarray import GeoArray
from daskcog.reading.io_loop import LoopChoice, run_sync
from daskcog.reading.read_graph import array_over
from daskcog.reading.reader_cache import CACHE
from georeader import window_utils
from georeader.async_geotiff_reader import AsyncGeoTIFFReader, choose_level
from georeader.errors import GeoreaderError, WindowError
from georeader.nodata import fits_dtype, nodata_mask

MOSAIC_CHUNK_BYTES = 8 * 2**20
"""'auto' chunks aim at this many bytes per chunk (all bands): a chunk task holds a few
scenes' worth of it at once."""
CHUNK_GRANULE = 256
GDAL_TOLERANCE = 0.125
"""GDAL's default approximation error of the warp transformer, in source pixels."""
_KERNEL_RADIUS = {"nearest": 1, "bilinear": 2, "cubic": 3, "cubic_spline": 3, "lanczos": 4}


class MosaicError(GeoreaderError, ValueError):
    """Scenes that cannot be mosaicked together as asked (bands, fill value, dtype)."""


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
        hits = SceneIndex(self.footprints).hits(bounds)
        return members[hits[members]]

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
        )


def scenes_digest(scenes: tuple[Scene, ...]) -> str:
    """A deterministic digest of a scene table: hashing its pickle is ~50x faster than
    letting Dask normalise 10,000 dataclasses field by field."""
    return hashlib.sha1(pickle.dumps(scenes, protocol=5), usedforsecurity=False).hexdigest()


# -- entry point ------------------------------------------------------------------
def mosaic(
    sources: Sequence[Any],
    *,
    crs: Any = None,
    resolution: float | tuple[float, float] | None = None,
    bounds: Bounds | None = None,
    like: Any = None,
    method: str | type[MosaicMethod] = "first",
    nodata: float | None = None,
    resampling: str = "nearest",
    chunks: Any = "auto",
    bands: Sequence[int] | None = None,
    dtype: Any = None,
    batch_size: int | None = None,
    warp_tolerance: float = GDAL_TOLERANCE,
    loop: LoopChoice = "io-thread",
    **store_options: Any,
) -> GeoArray:
    """Mosaic many scenes onto one grid, lazily: a GeoArray (band, y, x).

    Args:
        sources: paths / URLs, opened `AsyncGeoTIFFReader`s (their URL and store
            options are used) or `daskcog.footprints.Scene` values (no header
            fetch), in priority order (the first wins for method="first").
        crs: target CRS (default: the first scene's).
        resolution: target pixel size in the target CRS (default: the finest scene's).
        bounds: (left, bottom, right, top) in the target CRS (default: the union of
            the footprints, snapped to the first aligned scene's pixel grid).
        like: a GeoArray (or anything with crs, transform, shape) whose grid to use.
        method: "first", "last", "min", "max", "mean", "median", "count" or a
            `MosaicMethod` subclass.
        nodata: value of pixels no scene covers (default: the first scene's nodata,
            else 0); "count" always uses 0.
        resampling: a rasterio Resampling name for scenes that are warped.
        chunks: "auto", an int, (band, y, x) or a dict, like `daskcog.open`.
        bands: 1-based band numbers to read from every scene (default: all bands
            of the first scene; every scene needs them).
        dtype: value dtype (default: the first scene's); mean and median return floats.
        batch_size: scenes read concurrently per chunk between early-exit checks
            (default: 4 for first/last, 8 otherwise).
        warp_tolerance: GDAL's warp transformer error in source pixels; 0.125 (GDAL's
            default) uses `rasterio.warp.reproject`, smaller values an (almost)
            exact transformer: slower, and independent of how the grid is chunked.
        loop: "io-thread" or "worker", like `daskcog.open`.
        **store_options: obstore options for every URL source.
    """
    scenes = fetch_scenes(sources, **store_options)
    placement = place(scenes, crs=crs, resolution=resolution, bounds=bounds, like=like)
    spec = build_spec(
        scenes,
        placement,
        groups=(np.arange(len(scenes)),),
        method=method,
        nodata=nodata,
        resampling=resampling,
        bands=bands,
        dtype=dtype,
        batch_size=batch_size,
        warp_tolerance=warp_tolerance,
        loop=loop,
    )
    normalised = mosaic_chunks(spec, chunks)
    name = f"daskcog-mosaic-{tokenize(spec, normalised)}"
    data = array_over(MosaicBlocks(spec), normalised, name, spec.out_dtype)
    out_nodata = None if spec.method_class.name == "count" else spec.out_fill
    return GeoArray(
        data,
        transform=spec.grid.affine,
        crs=spec.grid.crs_obj,
        fill_value_default=spec.out_fill,
        nodata=out_nodata,
        chunk_request=chunks,
        band_names=spec.bands,
    )


def build_spec(
    scenes: Sequence[Scene],
    placement: Placement,
    *,
    groups: tuple[np.ndarray, ...],
    method: str | type[MosaicMethod],
    nodata: float | None,
    resampling: str,
    bands: Sequence[int] | None,
    dtype: Any,
    batch_size: int | None,
    warp_tolerance: float,
    loop: LoopChoice,
    errors: str = "raise",
) -> MosaicSpec:
    """Validate the options and put them, with the scenes and grid, into a MosaicSpec."""
    method_class = get_method(method)
    if resampling not in Resampling.__members__:
        raise MosaicError(
            f"unknown resampling {resampling!r}; use one of {sorted(Resampling.__members__)}"
        )
    first = scenes[0]
    band_tuple = tuple(int(b) for b in (bands if bands is not None else range(1, first.count + 1)))
    if not band_tuple or min(band_tuple) < 1:
        raise WindowError(f"bands are 1-based band numbers; got {bands!r}")
    short = [s.url for s in scenes if s.count < max(band_tuple)]
    if short:
        raise MosaicError(
            f"{len(short)} scene(s) have fewer than {max(band_tuple)} bands, e.g. {short[0]}; "
            "choose common bands with bands=[...]"
        )
    value_dtype = np.dtype(dtype if dtype is not None else first.dtype)
    fill = nodata if nodata is not None else (first.nodata if first.nodata is not None else 0)
    fill = _fill_in_dtype(fill, value_dtype)
    if batch_size is not None and batch_size < 1:
        raise MosaicError(f"batch_size must be >= 1; got {batch_size}")
    if errors not in ("raise", "nodata"):
        raise MosaicError(f"errors must be 'raise' or 'nodata', not {errors!r}")
    return MosaicSpec(
        scenes=tuple(scenes),
        footprints=placement.footprints,
        level_res=placement.level_resolution(scenes),
        scales=placement.warp_scales(),
        grid=placement.grid,
        groups=tuple(np.asarray(g, dtype=np.int64) for g in groups),
        method=method if isinstance(method, type) else method_class.name,
        bands=band_tuple,
        value_dtype=str(value_dtype),
        fill=fill,
        resampling=resampling,
        warp_tolerance=float(warp_tolerance),
        batch_size=batch_size,
        loop=loop,
        errors=errors,
    )


def _fill_in_dtype(fill: float, dtype: np.dtype) -> float | int:
    """The fill value as a Python number of the dtype's kind, or MosaicError."""
    if np.issubdtype(dtype, np.floating):
        return float(fill)
    if isinstance(fill, float) and (math.isnan(fill) or not fill.is_integer()):
        raise MosaicError(f"nodata {fill!r} cannot be stored in {dtype}; give nodata= or dtype=")
    if not fits_dtype(fill, dtype):
        raise MosaicError(
            f"nodata {fill!r} is outside the range of {dtype}; give nodata= or dtype="
        )
    return int(fill)


def mosaic_chunks(spec: MosaicSpec, chunks: Any) -> tuple[tuple[int, ...], ...]:
    """(band, y, x) chunks over the grid: 'auto' aims at MOSAIC_CHUNK_BYTES per chunk."""
    grid = spec.grid
    itemsize = max(np.dtype(spec.value_dtype).itemsize, spec.out_dtype.itemsize)
    return chunking.tile_chunks(
        chunks,
        window=(0, 0, grid.width, grid.height),
        count=len(spec.bands),
        tile=(CHUNK_GRANULE, CHUNK_GRANULE) if _has_auto(chunks) else (1, 1),
        itemsize=itemsize,
        target_bytes=MOSAIC_CHUNK_BYTES,
    )


def _has_auto(chunks: Any) -> bool:
    if chunks is None or isinstance(chunks, str):
        return True
    if isinstance(chunks, dict):
        return len(chunks) < 3 or "auto" in chunks.values()
    return isinstance(chunks, tuple | list) and "auto" in chunks


# -- chunk tasks ----------------------------------------------------------------------
class MosaicBlocks:
    """Array-like that `da.from_array` slices: (band, y, x), or (step, band, y, x) for stacks."""

    def __init__(self, spec: MosaicSpec, ndim: int = 3) -> None:
        self.spec = spec
        self.ndim = ndim
        grid = spec.grid
        plane = (len(spec.bands), grid.height, grid.width)
        self.shape = plane if ndim == 3 else (len(spec.groups), *plane)
        self.dtype = spec.out_dtype

    def __reduce__(self) -> tuple[Any, ...]:
        return (MosaicBlocks, (self.spec, self.ndim))

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        if self.ndim == 3:
            return self._plane(0, *key)
        step_slice, *rest = key
        t0, t1, _ = step_slice.indices(self.shape[0])
        planes = [self._plane(t, *rest) for t in range(t0, t1)]
        if not planes:
            b, r, c = (len(range(*s.indices(n))) for s, n in zip(rest, self.shape[1:], strict=True))
            return np.empty((0, b, r, c), dtype=self.dtype)
        return np.stack(planes)

    def _plane(
        self, group: int, band_slice: slice, row_slice: slice, col_slice: slice
    ) -> np.ndarray:
        spec = self.spec
        b0, b1, _ = band_slice.indices(len(spec.bands))
        r0, r1, _ = row_slice.indices(spec.grid.height)
        c0, c1, _ = col_slice.indices(spec.grid.width)
        shape = (max(b1 - b0, 0), max(r1 - r0, 0), max(c1 - c0, 0))
        if 0 in shape:
            return np.empty(shape, dtype=self.dtype)
        window = (c0, r0, c1 - c0, r1 - r0)
        ids = spec.candidates(group, spec.grid.window_bounds(*window))
        if len(ids) == 0:
            return np.full(shape, spec.out_fill, dtype=self.dtype)
        return run_sync(mosaic_block(spec, ids, spec.bands[b0:b1], window), spec.loop)


async def mosaic_block(
    spec: MosaicSpec, scene_ids: np.ndarray, bands: Sequence[int], window: tuple[int, int, int, int]
) -> np.ndarray:
    """One output chunk: read scenes in priority batches, feed the method, stop when done."""
    method_class = spec.method_class
    value_dtype = np.dtype(spec.value_dtype)
    method = method_class((len(bands), window[3], window[2]), value_dtype, spec.fill)
    order = [int(i) for i in (scene_ids[::-1] if method_class.reverse else scene_ids)]
    for batch in _batches(spec, order, window, method_class):
        reads = await asyncio.gather(
            *(read_scene(spec, i, bands, window) for i in batch),
            return_exceptions=spec.errors == "nodata",
        )
        for i, got in zip(batch, reads, strict=True):
            if isinstance(got, BaseException):
                if isinstance(got, SceneMismatchError) or not isinstance(got, Exception):
                    raise got
                failures.record(
                    tokenize(spec), spec.scenes[i].url, window, got
                )
                continue
            if got is None:
                continue
            values, valid = got
            if (
                values.dtype != value_dtype
                and values.dtype.kind == "f"
                and value_dtype.kind in "iub"
            ):
                values = np.where(valid, values, 0)  # no NaN into an integer cast
            method.feed(values.astype(value_dtype, copy=False), valid)
            if method.is_done:
                return np.asarray(method.result(), dtype=spec.out_dtype)
    return np.asarray(method.result(), dtype=spec.out_dtype)


def _batches(
    spec: MosaicSpec,
    order: list[int],
    window: tuple[int, int, int, int],
    method_class: type[MosaicMethod],
) -> list[list[int]]:
    """Scenes in read order, cut into batches read concurrently.

    For methods that can finish early, a batch also ends after a scene whose
    footprint covers the whole chunk: it probably fills the chunk, so the next
    scenes wait for the `is_done` check instead of being read in parallel.
    """
    size = spec.batch_size or method_class.default_batch
    if not method_class.can_finish:
        return [order[i : i + size] for i in range(0, len(order), size)]
    left, bottom, right, top = spec.grid.window_bounds(*window)
    fp = spec.footprints
    batches: list[list[int]] = [[]]
    for i in order:
        batches[-1].append(i)
        covers = fp[i, 0] <= left and fp[i, 1] <= bottom and fp[i, 2] >= right and fp[i, 3] >= top
        if covers or len(batches[-1]) >= size:
            batches.append([])
    return [b for b in batches if b]


def _read_fill(fill: float, dtype: np.dtype) -> float | int:
    """The value a scene is read with: the mosaic's fill if the scene's dtype can hold it."""
    if np.issubdtype(dtype, np.floating):
        return float(fill)
    return int(fill) if fits_dtype(fill, dtype) else 0


async def read_scene(
    spec: MosaicSpec, index: int, bands: Sequence[int], window: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """One scene on one chunk of the grid: (values in the scene's dtype, valid mask), or
    None when it has no pixel there."""
    scene = spec.scenes[index]
    opened = await CACHE.opened(scene.url, scene.options)
    check_header(scene, opened, bands)
    level = choose_level(opened.levels, float(spec.level_res[index]))
    reader = AsyncGeoTIFFReader.from_opened(opened, overview_level=level, bands=bands)
    grid = spec.grid
    fill = _read_fill(spec.fill, reader.dtype)
    col_off, row_off, width, height = window
    offset = (
        aligned_offset(reader.transform, grid.affine) if same_crs(scene.crs, grid.crs) else None
    )
    if offset is not None:
        source = Window(col_off + offset[0], row_off + offset[1], width, height)
        if window_utils.clip_window(source, reader.width, reader.height) is None:
            return None
        values = (await reader.read_window(source, fill_value=fill)).values
    else:
        scales = _level_scales(spec, index, reader)
        source = _source_window(spec, index, reader, grid.window_bounds(*window), scales)
        if source is None:
            return None
        src = (await reader.read_window(source, fill_value=fill)).values
        values = await asyncio.to_thread(
            warp,
            src,
            reader.transform @ Affine.translation(source.col_off, source.row_off),
            scene.crs,
            grid.window_transform(col_off, row_off),
            grid.crs,
            (height, width),
            fill,
            spec.resampling,
            spec.warp_tolerance,
            scales,
        )
    invalid = nodata_mask(values, fill)
    valid = np.ones(values.shape, dtype=bool) if invalid is None else ~invalid
    return values, valid


def _level_scales(
    spec: MosaicSpec, index: int, reader: AsyncGeoTIFFReader
) -> tuple[float, float] | None:
    """XSCALE / YSCALE of the chosen level (None when unknown: GDAL then estimates per chunk)."""
    scene = spec.scenes[index]
    fx, fy = (
        lv / full if full > 0 else 1.0 for lv, full in zip(reader.res, scene.res, strict=True)
    )
    sx, sy = (float(v) for v in spec.scales[index])
    if not (math.isfinite(sx) and math.isfinite(sy) and sx > 0 and sy > 0):
        return None
    return (sx * fx, sy * fy)


def _source_window(
    spec: MosaicSpec,
    index: int,
    reader: AsyncGeoTIFFReader,
    chunk_bounds: Bounds,
    scales: tuple[float, float] | None,
) -> Window | None:
    """The level's pixels that a warp onto the chunk needs: the chunk's footprint in the
    scene's CRS, outer-rounded, plus the resampling kernel's reach (wider when
    downsampling), clipped to the image."""
    scene = spec.scenes[index]
    shrink = min(1.0, *scales) if scales is not None else 1.0
    radius = _KERNEL_RADIUS.get(spec.resampling, 1)
    if spec.resampling not in _KERNEL_RADIUS:  # average, mode, min, max, ...: one target pixel
        shrink = min(shrink, 1.0 / max(1.0, float(spec.level_res[index]) / min(reader.res)))
    margin = math.ceil(radius / shrink) + 1
    left, bottom, right, top = transform_bounds(chunk_bounds, spec.grid.crs, scene.crs)
    if not all(math.isfinite(v) for v in (left, bottom, right, top)):
        return Window(0, 0, reader.width, reader.height)  # the whole scene (never empty)
    inverse = ~reader.transform
    cols, rows = zip(
        *(inverse @ xy for xy in ((left, top), (right, top), (left, bottom), (right, bottom))),
        strict=True,
    )
    c0, c1 = math.floor(min(cols)) - margin, math.ceil(max(cols)) + margin
    r0, r1 = math.floor(min(rows)) - margin, math.ceil(max(rows)) + margin
    return window_utils.clip_window(Window(c0, r0, c1 - c0, r1 - r0), reader.width, reader.height)


@lru_cache(maxsize=256)
def _rio_crs(text: str) -> Any:
    from rasterio.crs import CRS

    return CRS.from_user_input(text)


def warp(
    source: np.ndarray,
    src_transform: Affine,
    src_crs: str,
    dst_transform: Affine,
    dst_crs: str,
    shape: tuple[int, int],
    fill: float,
    resampling: str,
    tolerance: float = GDAL_TOLERANCE,
    scales: tuple[float, float] | None = None,
) -> np.ndarray:
    """GDAL warp of a (band, y, x) array onto a grid; `fill` is source and destination nodata.

    tolerance == 0.125 (GDAL's default) goes through `rasterio.warp.reproject`;
    other values through a WarpedVRT over an in-memory copy, which takes the
    transformer's error threshold (0 -> 1e-9: GDAL refuses an exact 0 there).
    `scales` pins GDAL's XSCALE / YSCALE (otherwise estimated per call, i.e. per chunk).
    """
    out = np.full((source.shape[0], *shape), fill, dtype=source.dtype)
    method = Resampling[resampling]
    extras: dict[str, Any] = {}
    if scales is not None and method != Resampling.nearest:
        extras = {"XSCALE": repr(float(scales[0])), "YSCALE": repr(float(scales[1]))}
    if tolerance == GDAL_TOLERANCE:
        from rasterio.warp import reproject

        reproject(
            source,
            out,
            src_transform=src_transform,
            src_crs=_rio_crs(src_crs),
            src_nodata=fill,
            dst_transform=dst_transform,
            dst_crs=_rio_crs(dst_crs),
            dst_nodata=fill,
            resampling=method,
            num_threads=1,
            **extras,
        )
        return out
    from rasterio.io import MemoryFile
    from rasterio.vrt import WarpedVRT

    with MemoryFile() as memfile:
        with memfile.open(
            driver="GTiff",
            width=source.shape[2],
            height=source.shape[1],
            count=source.shape[0],
            dtype=source.dtype,
            crs=_rio_crs(src_crs),
            transform=src_transform,
            nodata=fill,
        ) as dataset:
            dataset.write(source)
        with (
            memfile.open() as dataset,
            WarpedVRT(
                dataset,
                crs=_rio_crs(dst_crs),
                transform=dst_transform,
                width=shape[1],
                height=shape[0],
                resampling=method,
                src_nodata=fill,
                nodata=fill,
                tolerance=max(float(tolerance), 1e-9),
                **extras,
            ) as vrt,
        ):
            vrt.read(out=out)
    return out
