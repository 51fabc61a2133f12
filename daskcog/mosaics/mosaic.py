"""daskcog.mosaic: many scenes onto one grid, as one lazy GeoArray.

The entry point and the graph's one value; the chunk tasks that run it are in
`daskcog.mosaics.chunk_task`. Data flows:

* The client learns each scene's header once: `scenes.fetch_scenes` opens
  all headers concurrently through this process's reader cache (one
  `asyncio.gather` in one `run_sync`), or takes precomputed `Scene` values and
  does no I/O. `grid.place` picks the target grid and reprojects footprints.
* `build_spec` checks the options and puts everything a chunk task needs into a
  `MosaicSpec` (`spec.py`) of plain values only: the scene table, footprints as an (N, 4)
  array, the grid, the method name (`daskcog.stack` and the STAC loaders build
  theirs with it too).
* The graph is `da.from_array` over `chunk_task.MosaicBlocks`, a light array-like over
  the spec: one blockwise layer, one task per output chunk, built in constant
  time; keys come from the spec's token. Each task reads its scenes
  (`chunk_task.mosaic_block`, `chunk_task.read_scene`) and feeds the method.

Validity (`chunk_task.read_scene`): for a scene with a nodata value, a pixel is invalid
when the reader returns it as the fill value (its nodata, internal mask, alpha, outside
the scene), per `georeader.nodata` rules (NaN matches NaN, floats compare like GDAL); a
valid source pixel that equals the mosaic's fill value is therefore treated as invalid, as
GDAL's warper does. A scene with no nodata value has no such value: every pixel of the
file is valid, 0 included, and only what lies outside it (or under its mask) is not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from dask.base import tokenize
from pyproj.exceptions import CRSError
from rasterio.enums import Resampling

from daskcog.mosaics.chunk_task import MosaicBlocks
from daskcog.mosaics.crs import crs_text
from daskcog.mosaics.grid import Placement, place
from daskcog.mosaics.masks import MaskedBlocks, Masking, MaskPlan, as_masks
from daskcog.mosaics.methods import MethodLike, get_method, normalise_method
from daskcog.mosaics.scenes import Bounds, Scene, fetch_scenes
from daskcog.mosaics.spec import MosaicSpec
from daskcog.mosaics.warp import GDAL_TOLERANCE
from daskcog.reading import arguments, chunking
from daskcog.reading.cog_array import array_over
from daskcog.reading.geoarray import GeoArray, outside_error
from daskcog.runtime.io_loop import LoopChoice
from daskcog.runtime.reader_cache import default_retry
from georeader.errors import GeoreaderError, WindowError
from georeader.geo import fits_dtype
from georeader.io import RetryPolicy, check_sources_options

MOSAIC_CHUNK_BYTES = 8 * 2**20
"""'auto' chunks aim at this many bytes per chunk (all bands): a chunk task holds a few
scenes' worth of it at once."""
CHUNK_GRANULE = 256


class MosaicError(GeoreaderError, ValueError):
    """Scenes that cannot be mosaicked together as asked (bands, fill value, dtype)."""


@dataclass(frozen=True)
class MosaicOptions:
    """The options `daskcog.mosaic` and `daskcog.stack` share, as one value (each is described
    at `mosaic`): the target grid, the method and how scenes are read onto it."""

    crs: Any = None
    resolution: float | tuple[float, float] | None = None
    bounds: Bounds | None = None
    like: Any = None
    method: MethodLike = "first"
    nodata: float | None = None
    resampling: str = "nearest"
    chunks: Any = "auto"
    bands: Sequence[int] | None = None
    dtype: Any = None
    batch_size: int | None = None
    warp_tolerance: float = GDAL_TOLERANCE
    loop: LoopChoice = "io-thread"
    retry: RetryPolicy | None = None
    mask: Any = None
    mask_sources: Mapping[str, Callable[[str], str] | Sequence[str]] | None = None

    def __post_init__(self) -> None:
        masks = as_masks(self.mask)
        if masks or self.mask_sources is not None:
            if not isinstance(self.mask_sources, Mapping):
                raise TypeError(
                    "mask= needs mask_sources={asset: a callable (source URL -> its mask's "
                    "URL) or a list of URLs, one per source} for each Mask's asset name"
                )
            lacking = sorted({m.asset for m in masks} - set(self.mask_sources))
            if lacking or not masks:
                raise TypeError(
                    f"mask_sources= names the files of each mask= asset: no source for "
                    f"{lacking}" if lacking else "mask_sources= is given without mask="
                )
        # refused at call time (issue 19): resolution=0 or -10 once meant another grid
        object.__setattr__(self, "resolution", arguments.resolution(self.resolution))
        object.__setattr__(self, "bands", arguments.bands(self.bands))
        get_method(self.method)  # an unknown name: MosaicMethodError now, not in a chunk task
        arguments.one_of("loop", self.loop, ("io-thread", "worker"))
        arguments.retry(self.retry)
        object.__setattr__(self, "batch_size", arguments.batch_size(self.batch_size))
        if not (isinstance(self.warp_tolerance, int | float) and 0 <= self.warp_tolerance < 1e6):
            raise MosaicError(
                f"warp_tolerance must be >= 0 (source pixels), not {self.warp_tolerance!r}"
            )
        if self.dtype is not None:
            try:
                np.dtype(self.dtype)
            except TypeError:
                raise MosaicError(f"dtype {self.dtype!r} is not a numpy data type") from None
        if self.crs is not None:
            try:
                crs_text(self.crs)
            except CRSError as exc:
                raise MosaicError(f"crs {self.crs!r} is not a CRS pyproj knows: {exc}") from None

    @classmethod
    def split(cls, keywords: dict[str, Any]) -> tuple[MosaicOptions, dict[str, Any]]:
        """(these options, the other keywords: store options) from a call's keywords."""
        names = {f.name for f in fields(cls)}
        ours = {k: v for k, v in keywords.items() if k in names}
        return cls(**ours), {k: v for k, v in keywords.items() if k not in names}

    def blocks(self, spec: MosaicSpec, scenes: Sequence[Scene], ndim: int,
               **store_options: Any) -> MosaicBlocks:
        """The graph's array-like: `MosaicBlocks`, or `MaskedBlocks` with `mask=` (each
        source's mask files' headers fetched here, at once)."""
        masks = as_masks(self.mask)
        if not masks:
            return MosaicBlocks(spec, ndim=ndim)
        urls = [s.url for s in scenes]
        files: dict[str, list[str]] = {}
        for m in masks:
            given = (self.mask_sources or {})[m.asset]
            found = [str(given(u)) for u in urls] if callable(given) else [str(u) for u in given]
            if len(found) != len(urls):
                raise MosaicError(f"mask_sources[{m.asset!r}] has {len(found)} files for "
                                  f"{len(urls)} sources")
            files.setdefault(m.asset, found)
        fetched = {k: fetch_scenes(v, retry=self.retry, **store_options)
                   for k, v in files.items()}
        plans = []
        for m in masks:
            mask_scenes = fetched[m.asset]
            dtype = mask_scenes[0].dtype
            m.check_dtype(dtype, f"mask files {m.asset!r} ({mask_scenes[0].url})")
            plans.append(MaskPlan(m, build_spec(
                mask_scenes, place(mask_scenes, grid=spec.grid), groups=(), method="first",
                nodata=m.read_fill(dtype), resampling="nearest", bands=[m.band], dtype=dtype,
                batch_size=None, warp_tolerance=self.warp_tolerance, loop=self.loop,
                retry=self.retry,
            ), np.arange(len(scenes))))
        return MaskedBlocks(spec, ndim, Masking(tuple(plans), np.arange(len(scenes))))

    def spec(self, scenes: Sequence[Scene], groups: tuple[np.ndarray, ...]) -> MosaicSpec:
        """Place the grid over `scenes` and build the spec of `groups` (one per output step)."""
        placement = place(
            scenes, crs=self.crs, resolution=self.resolution, bounds=self.bounds, like=self.like
        )
        if self.bounds is not None:
            check_bounds_overlap(self.bounds, placement.footprints, placement.grid.crs_obj)
        if self.dtype is None:
            check_first_dtype_holds(scenes)
        return build_spec(
            scenes, placement, groups=groups, method=self.method, nodata=self.nodata,
            resampling=self.resampling, bands=self.bands, dtype=self.dtype,
            batch_size=self.batch_size, warp_tolerance=self.warp_tolerance, loop=self.loop,
            retry=self.retry,
        )


def check_bounds_overlap(bounds: Bounds, footprints: np.ndarray, crs: Any) -> None:
    """Refuse `bounds` that overlap no scene: a mosaic of fill alone is almost always
    bounds in another CRS (degrees for a UTM grid); the CLI once wrote that file and
    exited 0. `footprints` are the scenes' (N, 4) bounds in the grid's CRS."""
    left, bottom, right, top = (float(v) for v in bounds)
    placed = footprints[np.isfinite(footprints).all(axis=1)]
    hits = (
        (placed[:, 0] < right) & (placed[:, 2] > left)
        & (placed[:, 1] < top) & (placed[:, 3] > bottom)
    )
    if placed.size and not hits.any():
        covered = (
            placed[:, 0].min(), placed[:, 1].min(), placed[:, 2].max(), placed[:, 3].max()
        )
        raise outside_error(bounds, covered, crs, "mosaic")


# -- entry point ------------------------------------------------------------------
def mosaic(
    sources: Sequence[Any],
    *,
    crs: Any = None,
    resolution: float | tuple[float, float] | None = None,
    bounds: Bounds | None = None,
    like: Any = None,
    method: MethodLike = "first",
    nodata: float | None = None,
    resampling: str = "nearest",
    chunks: Any = "auto",
    bands: Sequence[int] | None = None,
    dtype: Any = None,
    batch_size: int | None = None,
    warp_tolerance: float = GDAL_TOLERANCE,
    loop: LoopChoice = "io-thread",
    retry: RetryPolicy | None = None,
    mask: Any = None,
    mask_sources: Mapping[str, Callable[[str], str] | Sequence[str]] | None = None,
    **store_options: Any,
) -> GeoArray:
    """Mosaic many scenes onto one grid, lazily: a GeoArray (band, y, x).

    Args:
        sources: paths / URLs, opened `AsyncGeoTIFFReader`s (their URL and store
            options are used) or `daskcog.mosaics.scenes.Scene` values (no header
            fetch), in priority order (the first wins for method="first").
        crs: target CRS (default: the first scene's).
        resolution: target pixel size in the target CRS (default: the finest scene's).
        bounds: (left, bottom, right, top) in the target CRS (default: the union of
            the footprints, snapped to the first aligned scene's pixel grid).
        like: a GeoArray (or anything with crs, transform, shape) whose grid to use.
        method: "first", "last", "min", "max", "mean", "median", "count", a percentile
            ("p25", or `daskcog.Quantile(0.25)`: numpy's nanquantile) or a
            `MosaicMethod` subclass.
        nodata: value of pixels no scene covers (default: the first scene's nodata,
            else 0); "count" always uses 0.
        resampling: a rasterio Resampling name for scenes that are warped.
        chunks: "auto", an int, (band, y, x) or a dict, like `daskcog.open`.
        bands: 1-based band numbers to read from every scene (default: all bands
            of the first scene; every scene needs them).
        dtype: value dtype (default: the first scene's; a later scene it cannot hold is a
            MosaicError, not wrapped); mean and median return floats.
        batch_size: scenes read concurrently per chunk between early-exit checks
            (default: 4 for first/last, 8 otherwise).
        warp_tolerance: GDAL's warp transformer error in source pixels; 0.125 (GDAL's
            default) uses `rasterio.warp.reproject`, smaller values an (almost)
            exact transformer: slower, and independent of how the grid is chunked.
        loop: "io-thread" or "worker", like `daskcog.open`.
        retry: how transient failures are retried (header fetches on the client and
            every scene read in the graph), like `daskcog.open`.
        mask: a `daskcog.Mask` or a list of them, as `daskcog.load`'s, whose asset name
            is a key of `mask_sources`; a source's pixels that its mask file says are not
            clear are invalid before `method` sees them (read with nearest).
        mask_sources: {asset name: a callable from a source's URL to its mask file's
            URL, or a list of mask files, one per source}.
        **store_options: obstore options for every URL source.
    """
    options = MosaicOptions(
        crs=crs, resolution=resolution, bounds=bounds, like=like, method=method, nodata=nodata,
        resampling=resampling, chunks=chunks, bands=bands, dtype=dtype, batch_size=batch_size,
        warp_tolerance=warp_tolerance, loop=loop, retry=retry, mask=mask,
        mask_sources=mask_sources,
    )
    check_sources_options(sources, store_options, entry_keywords=MOSAIC_KEYWORDS)
    scenes = fetch_scenes(sources, retry=retry, **store_options)
    spec = options.spec(scenes, (np.arange(len(scenes)),))
    normalised = mosaic_chunks(spec, chunks)
    blocks = options.blocks(spec, scenes, 3, **store_options)
    name = f"daskcog-mosaic-{tokenize(spec, normalised, getattr(blocks, 'masking', None))}"
    data = array_over(blocks, normalised, name, spec.out_dtype)
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


MOSAIC_KEYWORDS = frozenset(f.name for f in fields(MosaicOptions))
"""`mosaic`'s own keywords (and `stack`'s), suggested for close misspellings."""


def check_first_dtype_holds(scenes: Sequence[Scene]) -> None:
    """The output takes the first scene's dtype (rasterio.merge's rule); a later scene whose
    values it cannot hold is a MosaicError at call time. Why: cast into the first's dtype, a
    uint16 300 became a uint8 44 (numpy's wrap, which rasterio.merge gives too), silently."""
    first = np.dtype(scenes[0].dtype)
    wider = [s for s in scenes if not np.can_cast(np.dtype(s.dtype), first, "safe")]
    if wider:
        common = np.result_type(*{np.dtype(s.dtype) for s in scenes})
        raise MosaicError(
            f"{len(wider)} scene(s) hold values the first scene's dtype {first} cannot, e.g. "
            f"{wider[0].url} ({np.dtype(wider[0].dtype)}); the output takes the first scene's "
            f"dtype: give dtype= (their common type is {common})"
        )


def build_spec(
    scenes: Sequence[Scene],
    placement: Placement,
    *,
    groups: tuple[np.ndarray, ...],
    method: MethodLike,
    nodata: float | None,
    resampling: str,
    bands: Sequence[int] | None,
    dtype: Any,
    batch_size: int | None,
    warp_tolerance: float,
    loop: LoopChoice,
    errors: str = "raise",
    retry: RetryPolicy | None = None,
) -> MosaicSpec:
    """Validate the options and put them, with the scenes and grid, into a MosaicSpec."""
    get_method(method)  # an unknown method: MosaicMethodError at call time
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
        method=normalise_method(method),
        bands=band_tuple,
        value_dtype=str(value_dtype),
        fill=fill,
        resampling=resampling,
        warp_tolerance=float(warp_tolerance),
        batch_size=batch_size,
        loop=loop,
        errors=errors,
        retry=retry or default_retry(),
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
