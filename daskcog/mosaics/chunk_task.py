"""The chunk tasks of a mosaic or stack: one output chunk from the scenes that cover it.

`mosaic.mosaic` (and `stack.stack`, the STAC loaders) build a `MosaicSpec` of plain
values; the graph slices `MosaicBlocks` over it, one task per output chunk. Data
flows down this module in the order it runs:

* `MosaicBlocks.__getitem__` finds the chunk's scenes with a vectorised footprint
  test (`SceneIndex`, through `MosaicSpec.candidates`), then runs `mosaic_block`
  on the process's I/O loop.
* `mosaic_block` reads scenes in priority batches (`_batches`), each batch
  concurrently (`asyncio.gather`), and feeds them to the method; `first`/`last`
  stop as soon as every pixel is filled. With errors="nodata" a failed scene is
  recorded in the failure report and counts as having no valid pixel.
* `read_scene` reads one scene for one chunk through the process's reader cache.
  A scene on the grid's CRS and resolution whose origin is a whole number of
  pixels away is a plain window read (exact). Any other scene reads the overview
  that fits the grid's resolution (`choose_level`) and warps it with GDAL (`warp`)
  in a thread, off the loop, onto the part of the chunk the scene's footprint
  reaches (`_footprint_part`), from a source window covering that part plus the
  resampling kernel's margin (`_source_window`), with the fill value as source and
  destination nodata so invalid pixels stay invalid.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from affine import Affine
from dask.base import tokenize
from rasterio.enums import Resampling
from rasterio.windows import Window

from daskcog.mosaics.crs import rasterio_crs, same_crs, transform_bounds
from daskcog.mosaics.grid import aligned_offset
from daskcog.mosaics.methods import MosaicMethod
from daskcog.mosaics.scenes import SceneMismatchError, check_header, wrap_period
from daskcog.mosaics.spec import MosaicSpec
from daskcog.runtime import failures
from daskcog.runtime.io_loop import run_sync
from daskcog.runtime.reader_cache import CACHE
from georeader import AsyncGeoTIFFReader, choose_level, geo
from georeader.geo import Bounds, fits_dtype, nodata_mask

GDAL_TOLERANCE = 0.125
"""GDAL's default approximation error of the warp transformer, in source pixels."""
Part = tuple[int, int, int, int]
"""(col_off, row_off, width, height) of a window of the grid (a chunk, or the part of one
that a scene reaches)."""

_KERNEL_RADIUS = {"nearest": 1, "bilinear": 2, "cubic": 3, "cubic_spline": 3, "lanczos": 4}


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
    spec: MosaicSpec, scene_ids: np.ndarray, bands: Sequence[int], window: Part
) -> np.ndarray:
    """One output chunk: read scenes in priority batches, feed the method, stop when done."""
    method_class = spec.method_class
    value_dtype = np.dtype(spec.value_dtype)
    shape = (len(bands), window[3], window[2])
    method = method_class(shape, value_dtype, spec.fill)
    order = [int(i) for i in (scene_ids[::-1] if method_class.reverse else scene_ids)]
    kept = _KeptNodata.for_scenes(spec, order, shape, value_dtype)
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
            values, valid, part = got
            if kept is not None:
                kept.feed(spec.scenes[i], values, valid, part, window)
            if (
                values.dtype != value_dtype
                and values.dtype.kind == "f"
                and value_dtype.kind in "iub"
            ):
                values = np.where(valid, values, 0)  # no NaN into an integer cast
            values = values.astype(value_dtype, copy=False)
            if part == window:
                method.feed(values, valid)
            else:  # only the part the scene reaches: no whole-chunk padding, masks or copies
                rows = slice(part[1] - window[1], part[1] - window[1] + part[3])
                cols = slice(part[0] - window[0], part[0] - window[0] + part[2])
                method.feed_part(values, valid, rows, cols)
            if method.is_done:
                return np.asarray(method.result(), dtype=spec.out_dtype)
    result = np.asarray(method.result(), dtype=spec.out_dtype)
    return result if kept is None else kept.apply(result)


class _KeptNodata:
    """The files' own nodata values, for scenes whose metadata states none
    (`Scene.keep_file_nodata`): their nodata pixels are invalid for the method (a later
    scene may fill them) and, where no scene has a valid value, the output holds the
    first such file's nodata value, as odc-stac returns it (MODIS -3000 stays -3000),
    rather than the fill value of pixels no scene reaches."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.values = np.zeros(shape, dtype=dtype)
        self.marked = np.zeros(shape, dtype=bool)
        self.valid = np.zeros(shape, dtype=bool)

    @classmethod
    def for_scenes(
        cls, spec: MosaicSpec, order: Sequence[int], shape: tuple[int, ...], dtype: np.dtype
    ) -> _KeptNodata | None:
        if spec.method_class.output_dtype(dtype) != dtype:  # count, mean, ...: no markers
            return None
        if not any(spec.scenes[i].keep_file_nodata for i in order):
            return None
        return cls(shape, dtype)

    def feed(
        self, scene: Any, values: np.ndarray, valid: np.ndarray, part: Part, window: Part
    ) -> None:
        rows = slice(part[1] - window[1], part[1] - window[1] + part[3])
        cols = slice(part[0] - window[0], part[0] - window[0] + part[2])
        if scene.keep_file_nodata:
            take = ~valid & ~self.marked[:, rows, cols]
            np.copyto(self.values[:, rows, cols], values, where=take, casting="unsafe")
            self.marked[:, rows, cols] |= take
        self.valid[:, rows, cols] |= valid

    def apply(self, result: np.ndarray) -> np.ndarray:
        put = self.marked & ~self.valid
        if put.any():
            result = np.array(result, copy=True)
            result[put] = self.values[put]
        return result


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


def _read_fill(fill: float, dtype: np.dtype, own: float | None = None) -> float | int:
    """The value a scene is read with: the mosaic's fill if the scene's dtype can hold it,
    else the file's own nodata (a NaN fill over an integer file: only the file's nodata
    pixels are invalid, real zeros stay), else 0."""
    if np.issubdtype(dtype, np.floating):
        return float(fill)
    if fits_dtype(fill, dtype):
        return int(fill)
    return int(own) if own is not None and fits_dtype(own, dtype) else 0


async def read_scene(
    spec: MosaicSpec, index: int, bands: Sequence[int], window: Part
) -> tuple[np.ndarray, np.ndarray, Part] | None:
    """One scene on the part of one chunk it reaches: (values in the scene's dtype, valid
    mask, the part as a window of the grid), or None when it has no pixel there."""
    scene = spec.scenes[index]
    opened = await CACHE.opened(scene.url, scene.options, retry=spec.retry)
    check_header(scene, opened, bands)
    level = choose_level(opened.levels, float(spec.level_res[index]))
    reader = AsyncGeoTIFFReader.from_opened(opened, overview_level=level, bands=bands)
    reader.retry = spec.retry
    grid = spec.grid
    own_nodata = None if opened.nodata is None else float(opened.nodata)
    fill = _read_fill(spec.fill, reader.dtype, own_nodata)
    if scene.keep_file_nodata and opened.nodata is not None:
        # the metadata states no nodata: the file's nodata pixels keep their value (and
        # are invalid), where the reader would otherwise turn them into the fill value
        own = float(opened.nodata)
        if np.issubdtype(reader.dtype, np.integer) and fits_dtype(own, reader.dtype):
            fill = int(own)
    col_off, row_off, width, height = window
    offset = (
        aligned_offset(reader.transform, grid.affine) if same_crs(scene.crs, grid.crs) else None
    )
    if offset is not None:
        source = Window(col_off + offset[0], row_off + offset[1], width, height)
        inside = geo.clip_window(source, reader.width, reader.height)
        if inside is None:
            return None
        values = (await reader.read_window(inside, fill_value=fill)).values
        part = (
            col_off + int(inside.col_off - source.col_off),
            row_off + int(inside.row_off - source.row_off),
            int(inside.width),
            int(inside.height),
        )
    else:
        # warp only the part of the chunk the scene's footprint reaches: GDAL visits every
        # destination pixel it is given, inside the scene or not
        reached = _footprint_part(spec, index, window)
        if reached is None:
            return None
        part = reached
        scales = _level_scales(spec, index, reader)
        source = _source_window(spec, index, reader, grid.window_bounds(*part), scales)
        if source is None:
            return None
        src = (await reader.read_window(source, fill_value=fill)).values
        values = await asyncio.to_thread(
            warp,
            src,
            reader.transform @ Affine.translation(source.col_off, source.row_off),
            scene.crs,
            grid.window_transform(part[0], part[1]),
            grid.crs,
            (part[3], part[2]),
            fill,
            spec.resampling,
            spec.warp_tolerance,
            scales,
        )
    invalid = nodata_mask(values, fill)
    valid = np.ones(values.shape, dtype=bool) if invalid is None else ~invalid
    return values, valid, part


def _footprint_part(spec: MosaicSpec, index: int, window: Part) -> Part | None:
    """The chunk's pixels within reach of the scene's footprint on the grid (outer-rounded,
    plus the resampling kernel's reach and a margin for the footprint's densified edges),
    as (col_off, row_off, width, height) of the grid; None when it misses the chunk."""
    col_off, row_off, width, height = window
    left, bottom, right, top = (float(v) for v in spec.footprints[index])
    if not all(math.isfinite(v) for v in (left, bottom, right, top)):
        return window
    margin = _KERNEL_RADIUS.get(spec.resampling, 1) + 2
    period = wrap_period(spec.grid.crs)
    # a footprint across 180 degrees may meet a chunk a turn east or west of where it is
    # stored, or both (a chunk spanning the globe): the part covers every meeting
    spans = []
    for turn in (0.0,) if period is None else (0.0, -period, period):
        c0, r0, c1, r1 = _pixel_span(
            spec.grid.affine, (left + turn, bottom, right + turn, top), margin
        )
        c0, r0 = max(col_off, c0), max(row_off, r0)
        c1, r1 = min(col_off + width, c1), min(row_off + height, r1)
        if c1 > c0 and r1 > r0:
            spans.append((c0, r0, c1, r1))
    if not spans:
        return None
    c0, r0 = min(s[0] for s in spans), min(s[1] for s in spans)
    c1, r1 = max(s[2] for s in spans), max(s[3] for s in spans)
    return (c0, r0, c1 - c0, r1 - r0)


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
    c0, r0, c1, r1 = _pixel_span(reader.transform, (left, bottom, right, top), margin)
    return geo.clip_window(Window(c0, r0, c1 - c0, r1 - r0), reader.width, reader.height)


def _pixel_span(
    transform: Affine, bounds: Bounds, margin: int
) -> tuple[int, int, int, int]:
    """(col0, row0, col1, row1): the pixels of `transform` holding `bounds`' corners,
    outer-rounded and widened by `margin` on every side (not clipped)."""
    left, bottom, right, top = bounds
    inverse = ~transform
    cols, rows = zip(
        *(inverse @ xy for xy in ((left, top), (right, top), (left, bottom), (right, bottom))),
        strict=True,
    )
    return (
        math.floor(min(cols)) - margin,
        math.floor(min(rows)) - margin,
        math.ceil(max(cols)) + margin,
        math.ceil(max(rows)) + margin,
    )


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
            src_crs=rasterio_crs(src_crs),
            src_nodata=fill,
            dst_transform=dst_transform,
            dst_crs=rasterio_crs(dst_crs),
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
            crs=rasterio_crs(src_crs),
            transform=src_transform,
            nodata=fill,
        ) as dataset:
            dataset.write(source)
        with (
            memfile.open() as dataset,
            WarpedVRT(
                dataset,
                crs=rasterio_crs(dst_crs),
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
