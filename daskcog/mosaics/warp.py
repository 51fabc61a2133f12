"""The warp half of a chunk task: which pixels a scene reaches and how GDAL puts them on the grid.

`chunk_task.read_scene` reads a scene that is not on the grid's CRS and pixel
lattice through these: `footprint_part` (the chunk's pixels the scene's footprint
can reach), `level_scales` (GDAL's XSCALE / YSCALE for the chosen overview),
`source_window` (the source pixels a warp of that part needs, with the resampling
kernel's margin) and `warp` (GDAL's warp, the reference for every reprojected pixel;
nearest-neighbour warps that recur across revisits become a gather through a plan
GDAL made once, `warp_plans`, equal to it bit for bit). A scene with no nodata value
goes through `warp_valid`: no source nodata, and its validity from the warp itself.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from daskcog.mosaics.crs import rasterio_crs, transform_bounds
from daskcog.mosaics.scenes import wrap_period
from daskcog.mosaics.spec import MosaicSpec
from daskcog.mosaics.warp_plans import PLANS, Plan, fits_one_piece, gather
from georeader import AsyncGeoTIFFReader, geo, ignore_spurious
from georeader.geo import Bounds

GDAL_TOLERANCE = 0.125
"""GDAL's default approximation error of the warp transformer, in source pixels."""
SPURIOUS_WARNING = "Dataset has no geotransform, gcps, or rpcs"
"""What rasterio's `reproject` of an array says of its own intermediate in-memory dataset.

rasterio hides it with `warnings.catch_warnings`, which before Python 3.14 swaps the
filters of the whole process, not of one thread: warps running at once in Dask's threads
restore each other's filters, and the warning leaks (2 of 3 time-series loads printed it;
odc-geo issue 131 reports the same from odc-stac). Every warp here has a real transform,
so the warning never means anything: `_filter_spurious_warning` keeps one filter for that
message from `rasterio.warp` only in the process's filters (a filter is thread-safe where
`catch_warnings` is not). A user's own datasets still warn."""
Part = tuple[int, int, int, int]
"""(col_off, row_off, width, height) of a window of the grid (a chunk, or the part of one
that a scene reaches)."""

KERNEL_RADIUS = {"nearest": 1, "bilinear": 2, "cubic": 3, "cubic_spline": 3, "lanczos": 4}
"""Source pixels each resampling kernel reaches on either side of a target pixel."""


def footprint_part(spec: MosaicSpec, index: int, window: Part) -> Part | None:
    """The chunk's pixels within reach of the scene's footprint on the grid (outer-rounded,
    plus the resampling kernel's reach and a margin for the footprint's densified edges),
    as (col_off, row_off, width, height) of the grid; None when it misses the chunk."""
    col_off, row_off, width, height = window
    left, bottom, right, top = (float(v) for v in spec.footprints[index])
    if not all(math.isfinite(v) for v in (left, bottom, right, top)):
        return window
    margin = KERNEL_RADIUS.get(spec.resampling, 1) + 2
    period = wrap_period(spec.grid.crs)
    # a footprint across 180 degrees may meet a chunk a turn east or west of where it is
    # stored, or both (a chunk spanning the globe): the part covers every meeting
    spans = []
    for turn in (0.0,) if period is None else (0.0, -period, period):
        c0, r0, c1, r1 = pixel_span(
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


def level_scales(
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


def source_window(
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
    radius = KERNEL_RADIUS.get(spec.resampling, 1)
    if spec.resampling not in KERNEL_RADIUS:  # average, mode, min, max, ...: one target pixel
        shrink = min(shrink, 1.0 / max(1.0, float(spec.level_res[index]) / min(reader.res)))
    margin = math.ceil(radius / shrink) + 1
    left, bottom, right, top = transform_bounds(chunk_bounds, spec.grid.crs, scene.crs)
    if not all(math.isfinite(v) for v in (left, bottom, right, top)):
        return Window(0, 0, reader.width, reader.height)  # the whole scene (never empty)
    c0, r0, c1, r1 = pixel_span(reader.transform, (left, bottom, right, top), margin)
    return geo.clip_window(Window(c0, r0, c1 - c0, r1 - r0), reader.width, reader.height)


_revisits: weakref.WeakKeyDictionary[MosaicSpec, np.ndarray] = weakref.WeakKeyDictionary()
_revisits_lock = threading.Lock()


def grid_tag(scene: Any) -> tuple[Any, ...]:
    """A scene's grid (CRS, transform and size): its revisits share it, and with it the
    warps (and plans) of its chunks."""
    return (scene.crs, scene.transform, scene.width, scene.height)


def revisited(spec: MosaicSpec, index: int) -> bool:
    """Whether another scene of the spec has the same grid as scene `index` (CRS, transform
    and size): a revisit of the same tile, whose warps repeat this scene's. Worked out once
    per spec and process (the spec is unpickled once per process and graph)."""
    with _revisits_lock:
        flags = _revisits.get(spec)
        if flags is None:
            keys = [grid_tag(s) for s in spec.scenes]
            counts = Counter(keys)
            flags = np.array([counts[k] > 1 for k in keys], dtype=bool)
            _revisits[spec] = flags
    return bool(flags[index])


def pixel_span(
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


@dataclass(frozen=True)
class WarpGeometry:
    """Where one warp takes its pixels from and where it puts them: everything GDAL's warp
    of a scene onto a chunk part reads besides the pixels.

    Built once per scene and chunk (`chunk_task.read_scene`) and handed down whole, so
    `warp`, `warp_valid`, their GDAL routes and the plan table see one value instead of
    a dozen arguments in step; frozen and hashable (a plan's key comes from it,
    `plan_key`)."""

    src_transform: Affine
    """The source window's transform (its level's, shifted to the window)."""
    src_crs: str
    dst_transform: Affine
    """The chunk part's transform on the grid."""
    dst_crs: str
    shape: tuple[int, int]
    """(height, width) of the chunk part."""
    fill: float
    """Source and destination nodata of the warp (the read's fill value)."""
    resampling: str
    """A rasterio Resampling name."""
    tolerance: float = GDAL_TOLERANCE
    """GDAL's transformer error in source pixels (0.125: `reproject`, else a WarpedVRT)."""
    scales: tuple[float, float] | None = None
    """GDAL's XSCALE / YSCALE for the chosen level (None: GDAL estimates them per call)."""

    def plan_key(self, source_shape: tuple[int, int]) -> Hashable:
        """The key of a nearest warp's plan (`warp_plans`): what decides GDAL's picks
        (the source CRS, transform and shape, the destination's, the tolerance), not the
        fill or the scales, which nearest does not read."""
        return (
            self.src_crs, tuple(self.src_transform)[:6], tuple(source_shape),
            self.dst_crs, tuple(self.dst_transform)[:6], tuple(self.shape),
            float(self.tolerance),
        )


def warp(
    source: np.ndarray,
    geometry: WarpGeometry,
    revisited: bool = False,
    tag: Hashable | None = None,
) -> np.ndarray:
    """GDAL's warp of a (band, y, x) array onto a grid, `geometry.fill` as source and
    destination nodata; for nearest, through a cached plan when the same mapping recurs.

    A nearest-neighbour warp whose key (`WarpGeometry.plan_key`) recurs in this process,
    or will (`revisited`: the spec holds this footprint more than once), is a gather
    through the plan GDAL made for the key (`warp_plans`: equal to GDAL's warp bit for
    bit); any other warp is `gdal_warp`. For a scene with no nodata value, `warp_valid`.
    `tag` names the scene's grid (`grid_tag`): its plans are dropped together once no
    chunk reads that grid (`warp_plans.PlanTable.forget`).
    """
    plan = nearest_plan(source, geometry, revisited, tag)
    if plan is not None:
        return gather(source, plan, geometry.fill)
    return gdal_warp(source, geometry)


def warp_valid(
    source: np.ndarray,
    source_valid: np.ndarray | None,
    geometry: WarpGeometry,
    revisited: bool = False,
    tag: Hashable | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """GDAL's warp of a scene that has no nodata value: (values, valid), both (band, y, x).

    Why not `warp`: with no nodata, every source pixel is data, 0 included, so no value
    may serve as GDAL's nodata (a real 0 would be dropped, and weighed out of bilinear
    sums). Validity comes from the warp itself: a destination pixel is valid when GDAL
    writes it, i.e. it maps inside the source (and onto a valid source pixel, where
    `source_valid` (band, y, x) marks the ones the reader found invalid: an internal mask
    or alpha; None: all valid). Invalid pixels hold `geometry.fill`.

    Nearest warps that recur gather through the plan (`warp_plans`: the plan's picks
    say which pixels GDAL writes); other warps are `gdal_warp_valid`."""
    plan = nearest_plan(source, geometry, revisited, tag)
    if plan is None:
        return gdal_warp_valid(source, source_valid, geometry)
    fill = geometry.fill
    values = gather(source, plan, fill)
    if source_valid is None:
        valid = np.ones(values.shape, dtype=bool)
        valid.reshape(values.shape[0], -1)[:, plan.missing] = False
        return values, valid
    valid = gather(source_valid, plan, False)
    if not valid.all():
        np.copyto(values, values.dtype.type(fill), where=~valid)
    return values, valid


def nearest_plan(
    source: np.ndarray,
    geometry: WarpGeometry,
    revisited: bool,
    tag: Hashable | None = None,
) -> Plan | None:
    """The cached plan a nearest warp of `source` gathers through (`warp_plans`), or None
    when this warp goes to GDAL (not nearest, too large for one GDAL piece, or a first
    sight of a key no revisit shares)."""
    bands, height, width = source.shape
    shape = geometry.shape
    if not (
        geometry.resampling == "nearest"
        and height * width < 2**24  # float32 holds every index exactly
        and fits_one_piece((height, width), shape, 32, 1)
        and fits_one_piece((height, width), shape, source.dtype.itemsize * 8, bands)
    ):
        return None

    def make() -> Plan:
        # float32 indices: GDAL's specialised float kernel, ~15 % faster than int32's
        # generic one, the same picks (the kernels differ in copying, not in mapping)
        index = np.arange(height * width, dtype=np.float32).reshape(1, height, width)
        picked = gdal_warp(index, replace(geometry, fill=-1.0, scales=None))[0]
        return Plan.from_picks(picked)

    return PLANS.plan(geometry.plan_key((height, width)), revisited, make, tag)


def gdal_warp(source: np.ndarray, geometry: WarpGeometry) -> np.ndarray:
    """GDAL warp of a (band, y, x) array onto a grid; `geometry.fill` is source and
    destination nodata.

    tolerance == 0.125 (GDAL's default) goes through `rasterio.warp.reproject`;
    other values through a WarpedVRT over an in-memory copy, which takes the
    transformer's error threshold (0 -> 1e-9: GDAL refuses an exact 0 there).
    `geometry.scales` pins GDAL's XSCALE / YSCALE (otherwise estimated per call, i.e.
    per chunk).
    """
    # reproject's route (GDAL's default tolerance) sets INIT_DEST=NO_DATA: GDAL fills and
    # writes every destination pixel itself (checked: a destination outside the source, a
    # NaN fill, a warp in several pieces), so the array needs no fill of its own first
    shape, fill = geometry.shape, geometry.fill
    out = (
        np.empty((source.shape[0], *shape), dtype=source.dtype)
        if geometry.tolerance == GDAL_TOLERANCE
        else np.full((source.shape[0], *shape), fill, dtype=source.dtype)
    )
    # nearest copies the one source pixel it picks: a source nodata pixel copied is the
    # fill value, the very value GDAL leaves where it skips one, so the warp with no
    # source nodata is the same warp bit for bit (tests/daskcog/test_warp_nomask.py) and
    # takes GDAL's unmasked kernel (~35 % less CPU for a 2048 x 2048 uint16 chunk). Only
    # where GDAL warps in one piece: its working-buffer estimate counts a validity mask
    # per band with source nodata, so a larger warp could be cut into other pieces, whose
    # approximate transformers interpolate over other rows
    unmasked = geometry.resampling == "nearest" and fits_one_piece(
        source.shape[1:], shape, source.dtype.itemsize * 8, source.shape[0]
    )
    _gdal_warp_into(source, out, geometry, fill, source_nodata=not unmasked)
    return out


def gdal_warp_valid(
    source: np.ndarray, source_valid: np.ndarray | None, geometry: WarpGeometry
) -> tuple[np.ndarray, np.ndarray]:
    """`warp_valid` through GDAL: the source with no nodata, plus one band that says which
    destination pixels GDAL writes, warped in the same call (so over the same pixels).

    All source pixels valid: the extra band is 1 everywhere and the destination starts at
    0; any kernel turns ones into one where it writes (its weights are normalised, no
    density below 1 without masks), so the band is 1 exactly where GDAL writes, and the
    value bands are GDAL's warp of the source alone, bit for bit. Some source pixels
    invalid (`source_valid`, one mask for all bands): the band is GDAL's source alpha and
    destination alpha, so GDAL weighs the invalid pixels out, as with a mask band
    (gdalwarp -dstalpha: no blending at the mask's rim). Masks that differ between bands
    warp band by band.

    Cost, measured against `gdal_warp` with the fill as nodata (one 512 x 512 uint16 chunk,
    UTM 33 -> 34, best of 15, load 4.5 on 2 cores): nearest +1.9 ms on 5.0 (1 band) and
    +2.0 ms on 9.4 (3 bands); bilinear and cubic 17-44 % faster (no nodata: GDAL's kernels
    without masks)."""
    bands = source.shape[0]
    if source_valid is not None and bands > 1 and not (source_valid == source_valid[:1]).all():
        parts = [
            gdal_warp_valid(source[b : b + 1], source_valid[b : b + 1], geometry)
            for b in range(bands)
        ]
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
        )
    dtype = source.dtype
    shape = geometry.shape
    mark = 1 if source_valid is None else _alpha_max(dtype)
    stacked = np.empty((bands + 1, *source.shape[1:]), dtype=dtype)
    stacked[:bands] = source
    if source_valid is None:
        stacked[bands] = 1
    else:
        np.multiply(source_valid[0], mark, out=stacked[bands], casting="unsafe")
    out = np.zeros((bands + 1, *shape), dtype=dtype)
    options: dict[str, Any] = {}
    if source_valid is not None:
        alpha = bands + 1
        options = {"src_alpha": alpha, "dst_alpha": alpha}
        if mark != 255:
            options |= {"SRC_ALPHA_MAX": str(mark), "DST_ALPHA_MAX": str(mark)}
    _gdal_warp_into(stacked, out, geometry, None, **options)
    valid = np.broadcast_to(out[bands] != 0, (bands, *shape)).copy()
    values = out[:bands]
    if not valid.all():
        np.copyto(values, dtype.type(geometry.fill), where=~valid)
    return values, valid


def _filter_spurious_warning() -> None:
    """Keep the filter for `SPURIOUS_WARNING` from `rasterio.warp` in the process's warning
    filters (georeader's one way, `ignore_spurious`): checked at each warp, since code
    that enters and leaves `warnings.catch_warnings` around it (pytest, a caller, rasterio
    itself in another thread) restores the filters it saw and may drop this one."""
    ignore_spurious(NotGeoreferencedWarning, SPURIOUS_WARNING, "rasterio.warp")


def _alpha_max(dtype: np.dtype) -> int:
    """GDAL's alpha value for opaque (255) in a band of `dtype`, or the dtype's largest."""
    return 255 if dtype.kind == "f" else int(min(255, np.iinfo(dtype).max))


def _gdal_warp_into(
    source: np.ndarray,
    out: np.ndarray,
    geometry: WarpGeometry,
    nodata: float | None,
    source_nodata: bool = True,
    **options: Any,
) -> None:
    """GDAL's warp of `source` into `out` (`gdal_warp`'s two routes) by `geometry`, whose
    shape is `out`'s; `nodata` is source and destination nodata (None: none, and `out`
    keeps its values where GDAL writes nothing), only destination nodata when not
    `source_nodata` (every source pixel is then data); `options`: rasterio's alpha
    indices or GDAL warp options."""
    shape = out.shape[1:]
    src_transform, src_crs = geometry.src_transform, geometry.src_crs
    dst_transform, dst_crs = geometry.dst_transform, geometry.dst_crs
    tolerance, scales = geometry.tolerance, geometry.scales
    method = Resampling[geometry.resampling]
    extras: dict[str, Any] = dict(options)
    if scales is not None and method != Resampling.nearest:
        extras |= {"XSCALE": repr(float(scales[0])), "YSCALE": repr(float(scales[1]))}
    src_nodata = nodata if source_nodata else None
    if tolerance == GDAL_TOLERANCE:
        from rasterio.warp import reproject

        _filter_spurious_warning()
        reproject(
            source,
            out,
            src_transform=src_transform,
            src_crs=rasterio_crs(src_crs),
            src_nodata=src_nodata,
            dst_transform=dst_transform,
            dst_crs=rasterio_crs(dst_crs),
            dst_nodata=nodata,
            resampling=method,
            num_threads=1,
            init_dest_nodata=nodata is not None,
            **extras,
        )
        return
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
            nodata=src_nodata,
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
                src_nodata=src_nodata,
                nodata=nodata,
                tolerance=max(float(tolerance), 1e-9),
                **extras,
            ) as vrt,
        ):
            vrt.read(out=out)
