"""Scenes as plain values: header facts fetched once, footprints, and a spatial index.

* `Scene`: what a mosaic needs to know about one file (URL, store options, CRS,
  transform, size, band count, dtype, nodata), as a frozen, picklable value. It
  comes from a header (`fetch_scenes`, one `asyncio.gather` of the reader
  cache's opens inside one `run_sync`) or from precomputed facts
  (`Scene.from_footprint`, e.g. from a STAC catalogue), in which case building
  a mosaic needs no I/O at all.
* `reproject_footprints`: each scene's bounds in a target CRS
  (`crs.transform_bounds`: densified edges, one transformer per source CRS;
  scenes on the same grid share one). CRSs travel as interned WKT (`crs`).
* `SceneIndex`: the footprints as one (N, 4) array; `hits(bounds)` is a
  vectorised intersection test, so a chunk task finds its scenes in O(N) numpy
  work without a graph edge per (chunk, scene) pair.
"""

from __future__ import annotations

import asyncio
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from affine import Affine

from daskcog.mosaics.crs import crs_from_text, crs_text, same_crs, transform_bounds
from daskcog.runtime import credentials as creds
from daskcog.runtime import process_state
from daskcog.runtime.io_loop import run_sync
from daskcog.runtime.reader_cache import CACHE
from georeader import AsyncGeoTIFFReader, OpenedFile, parse_location
from georeader.errors import GeoreaderError, NoGeoreferenceError
from georeader.geo import Bounds
from georeader.io import RetryPolicy, canonical_json, split_signed_url

StoreOptions = tuple[tuple[str, Any], ...]
FETCH_CONCURRENCY = 64
"""Headers fetched at once by `fetch_scenes`."""


class SceneMismatchError(GeoreaderError, ValueError):
    """A scene's precomputed facts (e.g. a STAC item's proj:* fields) disagree with its header."""


# -- Scene -----------------------------------------------------------------------
@dataclass(frozen=True)
class Scene:
    """One source file of a mosaic: plain values only (no reader, no store)."""

    url: str
    crs: str
    """WKT (or any text pyproj understands)."""
    transform: tuple[float, float, float, float, float, float]
    """Affine coefficients (a, b, c, d, e, f) of full resolution."""
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None = None
    store_options: StoreOptions = ()
    label: str = ""
    """Where the facts came from (e.g. a STAC item id and asset key), for error messages."""
    credentials: str | None = None
    """Name of the secrets (keys, a signed URL's query, a signer) registered in each
    process: `store_options` holds public options only, never those (graphs hold Scenes)."""
    keep_file_nodata: bool = False
    """The catalogue states no nodata for this integer asset: pixels equal to the file's
    own nodata keep that value in the output (invalid for the mosaic), as odc-stac
    returns them, instead of becoming the fill value (`tasks._KeptNodata`)."""

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)

    @property
    def options(self) -> dict[str, Any]:
        """Store options with the named credentials resolved in this process."""
        return creds.with_secrets(self.store_options, self.credentials, self.url)

    @property
    def res(self) -> tuple[float, float]:
        a, b, _, d, e, _ = self.transform
        return (math.hypot(a, d), math.hypot(b, e))

    @property
    def bounds(self) -> Bounds:
        a, b, c, d, e, f = self.transform
        if b == 0 and d == 0:  # north-up (or flipped): plain arithmetic, ~20x cheaper than Affine
            x1, y1 = c + a * self.width, f + e * self.height
            return (min(c, x1), min(f, y1), max(c, x1), max(f, y1))
        t = self.affine
        xs, ys = zip(*(t @ (c, r) for c in (0, self.width) for r in (0, self.height)), strict=True)
        return (min(xs), min(ys), max(xs), max(ys))

    @classmethod
    def from_opened(cls, opened: OpenedFile, store_options: dict[str, Any] | None = None) -> Scene:
        """The scene of an opened header (no I/O), read with `store_options` (default: the
        header's own; a cached header may have been opened with an older token)."""
        if opened.crs is None:
            raise NoGeoreferenceError(
                f"{opened.location.url}: the file has no CRS; it cannot be mosaicked"
            )
        level = opened.levels[0]
        t = level.transform
        options = opened.store_options if store_options is None else store_options
        public, credentials = creds.keep_out_of_graph(options, None, opened.location.url)
        return cls(
            url=opened.location.url,
            crs=crs_text(opened.crs),
            transform=(t.a, t.b, t.c, t.d, t.e, t.f),
            width=int(level.width),
            height=int(level.height),
            count=int(opened.count),
            dtype=str(np.dtype(opened.dtype)),
            nodata=None if opened.nodata is None else float(opened.nodata),
            store_options=tuple(sorted(public.items())),
            credentials=credentials,
        )

    @classmethod
    def from_footprint(
        cls,
        url: str | os.PathLike[str],
        bounds: Bounds,
        crs: Any,
        res: float | tuple[float, float],
        shape: tuple[int, int] | None = None,
        dtype: Any = "uint16",
        nodata: float | None = None,
        *,
        count: int = 1,
        label: str = "",
        transform: tuple[float, float, float, float, float, float] | None = None,
        keep_file_nodata: bool = False,
        **store_options: Any,
    ) -> Scene:
        """A scene from precomputed facts (e.g. a STAC item's proj:* fields): no header fetch.

        `bounds` (left, bottom, right, top) in the scene's own `crs`; `res` its pixel size;
        `shape` (height, width) defaults to the bounds divided by the resolution.
        `transform` (affine coefficients), when known, is used as it is instead of
        the north-up one derived from `bounds` and `res`. A CRS given as WKT text
        is kept as it is (no re-parsing: a catalogue has one CRS for many scenes).
        The facts are checked against the header when a chunk task opens it
        (`check_header`): a mismatch is a `SceneMismatchError`, never wrong pixels.
        """
        rx, ry = (res, res) if isinstance(res, int | float) else res
        left, bottom, right, top = bounds
        if shape is None:
            shape = (round((top - bottom) / ry), round((right - left) / rx))
        if transform is None:
            transform = (float(rx), 0.0, float(left), 0.0, -float(ry), float(top))
        elif not (type(transform) is tuple and all(type(v) is float for v in transform)):
            transform = tuple(float(v) for v in transform)  # type: ignore[assignment]
        url, store_options = split_signed_url(url, store_options)
        plain = _normal_url(url)
        public, credentials = (
            creds.keep_out_of_graph(store_options, None, plain) if store_options else ({}, None)
        )
        return cls(
            url=plain,
            crs=crs if isinstance(crs, str) and crs.endswith("]") else crs_text(crs),
            transform=transform,
            width=int(shape[1]),
            height=int(shape[0]),
            count=int(count),
            dtype=_dtype_name(dtype),
            nodata=None if nodata is None else float(nodata),
            store_options=tuple(sorted(public.items())),
            label=label,
            credentials=credentials,
            keep_file_nodata=keep_file_nodata,
        )


_TRANSFORM_RTOL = 1e-9


def _normal_url(url: str | os.PathLike[str]) -> str:
    """`parse_location(url).url`, with the URL's scheme checked once: remote URLs come back
    unchanged from it, and urlsplit costs more than the rest of a Scene."""
    text = os.fspath(url)
    scheme, sep, rest = text.partition("://")
    if sep and "?" not in text and "#" not in text and _remote_scheme(scheme.lower()):
        base, _, name = rest.rpartition("/")
        if name and base and not base.endswith(":"):
            return text
    return parse_location(text).url


@lru_cache(maxsize=64)
def _remote_scheme(scheme: str) -> bool:
    """True when parse_location keeps URLs of this scheme as they are (remote stores)."""
    try:
        return parse_location(f"{scheme}://host/x").url == f"{scheme}://host/x"
    except GeoreaderError:
        return False


@lru_cache(maxsize=64)
def _dtype_name(dtype: Any) -> str:
    return str(np.dtype(dtype))


@lru_cache(maxsize=256)
def same_horizontal_crs(stated: str, read: str) -> bool:
    """The same CRS, comparing horizontal parts: a compound CRS in the metadata (3DEP's
    NAD83 / UTM 11N + NAVD88 height) describes a file whose reader reports only its
    horizontal CRS (GDAL's default too), and a pixel's place depends on that part only."""
    if same_crs(stated, read):
        return True
    a, b = crs_from_text(stated), crs_from_text(read)
    if not (a.is_compound or b.is_compound):
        return False
    ha = a.sub_crs_list[0] if a.is_compound else a
    hb = b.sub_crs_list[0] if b.is_compound else b
    return bool(ha == hb)


def check_header(scene: Scene, opened: OpenedFile, bands: Sequence[int] = ()) -> None:
    """Raise SceneMismatchError when the header disagrees with the scene's facts.

    Scenes from headers pass trivially; scenes from catalogue metadata are
    checked here, in the chunk task that opened the header, because a wrong
    transform or size would otherwise put valid-looking pixels in the wrong
    place.
    """
    level = opened.levels[0]
    t = level.transform
    problems: list[str] = []
    if (int(level.width), int(level.height)) != (scene.width, scene.height):
        problems.append(
            f"size {scene.width} x {scene.height} in the metadata, "
            f"{level.width} x {level.height} in the file"
        )
    got = (t.a, t.b, t.c, t.d, t.e, t.f)
    scale = max(abs(scene.transform[0]), abs(scene.transform[4]), 1e-12)
    for name, want, have in zip("abcdef", scene.transform, got, strict=True):
        tol = _TRANSFORM_RTOL * max(abs(want), abs(have)) + (1e-6 * scale if name in "cf" else 0)
        if abs(want - have) > tol:
            problems.append(f"transform {scene.transform} in the metadata, {got} in the file")
            break
    if opened.crs is None or not same_horizontal_crs(scene.crs, crs_text(opened.crs)):
        problems.append("a different CRS in the metadata than in the file")
    if bands and max(bands) > int(opened.count):
        problems.append(f"band {max(bands)} asked for, the file has {opened.count}")
    if np.dtype(scene.dtype) != np.dtype(opened.dtype):
        problems.append(
            f"data type {scene.dtype} in the metadata, {np.dtype(opened.dtype)} in the file"
        )
    if problems:
        where = f"{scene.label} ({scene.url})" if scene.label else scene.url
        raise SceneMismatchError(f"{where}: " + "; ".join(problems))


def _pending(source: Any, options: StoreOptions) -> Scene | tuple[str, StoreOptions] | OpenedFile:
    if isinstance(source, Scene):
        return source
    if isinstance(source, AsyncGeoTIFFReader):
        try:
            return source.opened_file  # opened already: use its header, no I/O
        except GeoreaderError:
            return (source.url, tuple(sorted(source.store_options.items())))
    if isinstance(source, str | os.PathLike):
        url, with_query = split_signed_url(source, dict(options))
        return (parse_location(url).url, tuple(sorted(with_query.items())))
    raise TypeError(
        f"mosaic sources are paths, URLs, daskcog Scene values or AsyncGeoTIFFReaders; got "
        f"{type(source).__name__}: {source!r}"
    )


def _key(url: str, options: StoreOptions) -> str:
    return canonical_json([url, options])


def fetch_scenes(
    sources: Iterable[Any], *, concurrency: int = FETCH_CONCURRENCY,
    retry: RetryPolicy | None = None, **store_options: Any,
) -> list[Scene]:
    """Scenes for paths / URLs / readers / Scenes, fetching the missing headers concurrently.

    Headers go through this process's reader cache (one open per URL), all in
    one `run_sync`, at most `concurrency` at a time, retrying per `retry` (None: the
    default). Scene values pass through.
    """
    options = tuple(sorted(store_options.items()))
    pending = [_pending(s, options) for s in sources]
    todo = [p for p in pending if isinstance(p, tuple)]
    opened: dict[str, OpenedFile] = {}
    if todo:
        unique = list({_key(*t): t for t in todo}.values())  # options may hold dicts: key by JSON

        async def fetch_all() -> list[OpenedFile]:
            gate = asyncio.Semaphore(max(1, concurrency))

            async def one(url: str, opts: StoreOptions) -> OpenedFile:
                async with gate:
                    return await CACHE.opened(url, dict(opts), retry=retry)

            return await asyncio.gather(*(one(u, o) for u, o in unique))

        opened = {_key(*t): o for t, o in zip(unique, run_sync(fetch_all()), strict=True)}
    scenes: list[Scene] = []
    for p in pending:
        if isinstance(p, Scene):
            scenes.append(p)
        elif isinstance(p, tuple):
            scenes.append(Scene.from_opened(opened[_key(*p)], dict(p[1])))
        else:
            scenes.append(Scene.from_opened(p))
    return scenes


# -- footprints in a target CRS ----------------------------------------------------
def reproject_footprints(
    scenes: Sequence[Scene], target_crs: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(footprints (N, 4), native resolution (N, 2), axis pixel size (N, 2)) in the target CRS.

    The native resolution of a scene in another CRS follows GDAL's
    `GDALSuggestedWarpOutput`: square pixels that keep the number of pixels along
    the footprint's diagonal. The axis pixel size is the footprint's width
    (height) over the scene's width (height): how many target units one source
    pixel spans along each target axis, as GDAL's warper estimates its
    resampling scale. Scenes outside the target CRS's domain get NaN footprints
    (they match no chunk) and a warning. In a geographic target CRS, a footprint
    across the antimeridian (a Sentinel-2 tile at 180 degrees, MODIS h35) runs
    from its west edge to its east edge + 360: east may exceed 180.
    """
    n = len(scenes)
    period = wrap_period(target_crs)
    footprints = np.empty((n, 4), dtype=np.float64)
    native = np.empty((n, 2), dtype=np.float64)
    axis = np.empty((n, 2), dtype=np.float64)
    outside: list[str] = []
    seen: dict[tuple[Any, ...], int] = {}
    copies: list[int] = []
    twins: list[int] = []
    for i, scene in enumerate(scenes):
        key = (scene.crs, scene.transform, scene.width, scene.height)
        twin = seen.setdefault(key, i)
        if twin != i:  # the same grid on another date or asset: the same footprint
            copies.append(i)
            twins.append(twin)
            continue
        own = scene.bounds
        if same_crs(scene.crs, target_crs):
            footprints[i] = own
            native[i] = axis[i] = scene.res
            continue
        fp = transform_bounds(own, scene.crs, target_crs)
        if period is not None and fp[0] > fp[2]:
            # across the antimeridian, PROJ gives west > east: one box from west to east
            # + 360 (SceneIndex and the chunk tasks compare it modulo the period)
            fp = (fp[0], fp[1], fp[2] + period, fp[3])
        footprints[i] = fp
        if not all(math.isfinite(v) for v in fp):
            outside.append(scene.url)
            native[i] = axis[i] = (math.nan, math.nan)
            continue
        diagonal = math.hypot(fp[2] - fp[0], fp[3] - fp[1])
        size = diagonal / math.hypot(scene.width, scene.height)
        native[i] = (size, size)
        axis[i] = ((fp[2] - fp[0]) / scene.width, (fp[3] - fp[1]) / scene.height)
    if copies:
        footprints[copies], native[copies], axis[copies] = (
            footprints[twins], native[twins], axis[twins]
        )
        lost = ~np.isfinite(footprints[copies]).all(axis=1)
        outside.extend(scenes[copies[k]].url for k in np.flatnonzero(lost))
    if outside:
        warnings.warn(
            f"{len(outside)} scene(s) cannot be placed in the target CRS and are left out, "
            f"e.g. {outside[0]}",
            stacklevel=3,
        )
    return footprints, native, axis


@lru_cache(maxsize=256)
def wrap_period(crs: str) -> float | None:
    """360 for a geographic CRS in degrees (longitudes repeat every turn), else None."""
    parsed = crs_from_text(crs)
    if not parsed.is_geographic:
        return None
    axis = parsed.axis_info[0] if parsed.axis_info else None
    unit = (axis.unit_name or "").lower() if axis is not None else "degree"
    return 360.0 if "degree" in unit else None


class SceneIndex:
    """Footprints (N, 4) in the target CRS; `hits` tells the scenes overlapping a box.

    With `period` (360 in a geographic CRS: `wrap_period`), a box also meets the
    footprints one turn east or west of it: a grid east of 180 degrees finds the
    tiles just west of -180, and a footprint unwrapped past 180 is found from the
    western side.
    """

    def __init__(self, footprints: np.ndarray, period: float | None = None) -> None:
        self.footprints = np.asarray(footprints, dtype=np.float64).reshape(-1, 4)
        self.period = period

    def __len__(self) -> int:
        return len(self.footprints)

    def hits(self, bounds: Bounds) -> np.ndarray:
        """Boolean (N,): True where a footprint overlaps `bounds` with a positive area."""
        left, bottom, right, top = bounds
        fp = self.footprints
        with np.errstate(invalid="ignore"):
            rows = (fp[:, 1] < top) & (fp[:, 3] > bottom)
            cols = (fp[:, 0] < right) & (fp[:, 2] > left)
            if self.period is not None:
                for turn in (-self.period, self.period):
                    cols |= (fp[:, 0] < right + turn) & (fp[:, 2] > left + turn)
            return rows & cols


def nearest_turn(footprint: Bounds, bounds: Bounds, period: float | None) -> Bounds:
    """The footprint shifted by whole turns of `period` to where it overlaps `bounds` most
    (unchanged without a period): the chunk tasks place a scene near its chunk."""
    if period is None:
        return footprint
    left, bottom, right, top = footprint

    def overlap(shift: float) -> float:
        return min(right + shift, bounds[2]) - max(left + shift, bounds[0])

    best = max((0.0, -period, period), key=overlap)
    return (left + best, bottom, right + best, top)


process_state.register_function_cache("daskcog.scenes.same_horizontal_crs", same_horizontal_crs)
process_state.register_function_cache("daskcog.scenes.wrap_period", wrap_period)
process_state.register_function_cache("daskcog.scenes.dtype_name", _dtype_name)
process_state.register_function_cache("daskcog.scenes.remote_scheme", _remote_scheme)
