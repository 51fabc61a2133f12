"""What one header tells us: levels, georeference and the layout verdict.

`open_file` is the only function in georeader that fetches a header; every
reader of a file (each level, each band subset) shares the `OpenedFile` it
returns, and daskcog's per-process cache keeps them.

An open flows: the IFD chain is walked first on raw bytes (`header.ifd_walk`, through a
`GuardedStore` that keeps those bytes for async-tiff's first request; the walk also keeps
each IFD's kind and the first IFD's georeferencing tags), then async-tiff parses the
header, and `_describe` turns it into plain values: the georeference as GDAL reads it
(`gdal_rules.georeference`), the levels (the image and its true overviews, as GDAL
lists them, sorted by size), each checked (`header.checks`) and classified
(`header.route`), and GDAL's alpha band rule.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from typing import Any

import numpy as np
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from georeader.errors import (
    GeoreaderError,
    InvalidHeaderError,
    NoGeoreferenceError,
)
from georeader.geo.nodata import NodataOutOfRangeWarning, fits_dtype
from georeader.header import checks, gdal_rules, ifd_walk
from georeader.header import route as routes
from georeader.header.model import HEADER_SIZES, Level, OpenedFile
from georeader.io.error_mapping import first_line, map_store_error
from georeader.io.guarded_get import GuardedStore, policy_scope
from georeader.io.retry import RetryPolicy
from georeader.io.shutdown_safety import operation, settled
from georeader.io.stores import (
    READER_OPTIONS,
    Location,
    check_not_folder,
    locate_in_store,
    native_remote_default,
    open_store,
    parse_location,
    split_signed_url,
)
from georeader.warnings_filter import ignore_spurious

STRIPED_WARNING = "Striped GeoTIFFs are not supported."
"""async-geotiff's warning at the open of a striped file: spurious here (georeader reads
striped files through GDAL, `route`)."""
DEFAULT_PREFETCH = 32768


async def open_file(
    path_or_url: str | os.PathLike[str] | Location,
    *,
    store: Any = None,
    prefetch: int | None = None,
    retry: RetryPolicy | None = None,
    **store_options: Any,
) -> OpenedFile:
    """Fetch and classify one header. The only function here that does header I/O."""
    from async_tiff import TIFF

    user_store = store
    if not isinstance(path_or_url, Location):
        path_or_url, store_options = split_signed_url(path_or_url, store_options)
    max_concurrency = store_options.get("max_concurrency")
    store_options = {k: v for k, v in store_options.items() if k not in READER_OPTIONS}
    if store is None:
        location = path_or_url if isinstance(path_or_url, Location) else parse_location(path_or_url)
        check_not_folder(location)
        store, key = open_store(location, native=native_remote_default(), **store_options)
    else:
        # the caller's store: the whole key inside it, never just the file's base name
        location = (
            path_or_url
            if isinstance(path_or_url, Location)
            else locate_in_store(path_or_url, store)
        )
        key = location.key
    url = location.url
    hint: int = prefetch or HEADER_SIZES.get(url) or DEFAULT_PREFETCH

    guarded: list[Any] = []
    walks: list[ifd_walk.HeaderWalk | None] = []
    panics: list[str] = []

    async def attempt() -> Any:
        try:
            checked, walk = await _checked_store(
                location, store, key, hint, user_store, store_options, max_concurrency
            )
            guarded.append(checked)
            walks.append(walk)
            try:
                return await settled(TIFF.open(key, store=checked, prefetch=hint))
            except Exception as exc:
                if walk is not None and "panicked" in str(exc):
                    # async-tiff's parser gave up on a tag (LogLuv, minimal tags, huge G4...);
                    # the walk found a sound TIFF: GDAL reads it, through the rasterio route
                    panics.append(first_line(exc))
                    return None
                raise
            finally:
                if isinstance(checked, GuardedStore):
                    checked.release()
        except Exception as exc:
            raise map_store_error(exc, url, "opening the header") from exc

    # callers that read pass their policy (AsyncGeoTIFFReader.retry, settable); None: the default
    with operation(), policy_scope(RetryPolicy() if retry is None else retry):  # one retry layer
        tiff = await attempt()
    header_size = _header_size(tiff) if tiff is not None else None
    if header_size:
        HEADER_SIZES[url] = header_size
    try:
        # readers fetch through the store the header was read with: its retries and limits
        reading_store = guarded[-1] if guarded and isinstance(guarded[-1], GuardedStore) else store
        walk = walks[-1] if walks else None
        if tiff is None and walk is not None:
            return await asyncio.to_thread(
                _describe_with_gdal, location, reading_store, key, walk, store_options,
                user_store, panics[-1],
            )
        return _describe(location, reading_store, key, tiff, walk, store_options, user_store)
    except GeoreaderError:
        raise
    except Exception as exc:  # e.g. a nodata tag that is not a number, an unknown GeoKey value
        raise InvalidHeaderError(f"{url}: the header cannot be read: {first_line(exc)}") from exc


async def _checked_store(
    location: Location, store: Any, key: str, hint: int, user_store: Any,
    store_options: dict[str, Any], max_concurrency: int | None,
) -> tuple[Any, ifd_walk.HeaderWalk | None]:
    """Walk the IFD chain (bounded, cycle-checked) before async-tiff parses it.

    Returns the store async-tiff should open the file with: for stores Python
    can call, a `GuardedStore` (the one retry layer, bounded concurrency) that
    also answers async-tiff's first request from the bytes fetched here (no
    extra request); local files are checked with `pread`. The walk (IFD kinds, SubIFDs, the
    georeferencing tags, raw) comes back with it; None for a caller's Rust-native store.
    """
    if location.is_local:
        path = location.local_path

        def pread(start: int, length: int) -> bytes:
            fd = os.open(path, os.O_RDONLY)
            try:
                return os.pread(fd, length, start)
            finally:
                os.close(fd)

        async def read_local(start: int, length: int) -> bytes:
            return await asyncio.to_thread(pread, start, length)

        walk = await ifd_walk.walk_header(read_local, await read_local(0, hint), location.url)
        return store, walk
    if hasattr(store, "get_range_async"):
        guarded = GuardedStore(store, key, location.url, max_concurrency)
        reader: Any = guarded
    elif user_store is not None:
        return store, None  # a caller's Rust-native remote store: nothing Python can read with
    else:
        guarded = None  # async-tiff's native store: the walk reads through an obstore twin
        reader = GuardedStore(
            open_store(location, native=False, **store_options)[0], key, location.url
        )

    async def read(start: int, length: int) -> bytes:
        return bytes(await reader.get_range_async(key, start=start, length=length))

    head = await read(0, hint)
    walk = await ifd_walk.walk_header(read, head, location.url)
    if guarded is None:
        return store, walk
    guarded.set_head(head, whole=len(head) < hint)
    return guarded, walk


def _header_size(tiff: Any) -> int | None:
    """Bytes before the first tile or strip: a prefetch that gets the header in one request.

    Same rule as async-tiff's `header_byte_size`, which panics (aborting the
    thread with a Rust backtrace) when an IFD has no offsets or only sparse ones.
    """
    starts = [
        offset
        for ifd in tiff.ifds
        for offset in (ifd.tile_offsets or ifd.strip_offsets or [])
        if offset > 0
    ]
    return min(starts) if starts else None


def _describe(
    location: Location, store: Any, key: str, tiff: Any, walk: ifd_walk.HeaderWalk | None,
    store_options: dict[str, Any], user_store: Any = None,
) -> OpenedFile:
    url = location.url
    geotiff = _geotiff_of(tiff)
    geo = _checked_georeference(url, _georeference(url, tiff, geotiff, walk))
    transform = geo.transform
    byteorder = "<" if int(tiff.endianness) == 0 else ">"
    base = tiff.ifds[0]
    plan = _level_plan(tiff, walk)
    verdicts: list[tuple[str, list[str]]] = []
    levels: list[Level] = []
    width0, height0 = int(base.image_width), int(base.image_height)
    for index, (ifd, mask_ifd, size, gdal_index, block) in enumerate(plan):
        width, height = size
        level_transform = (
            transform
            if index == 0
            else transform * Affine.scale(width0 / width, height0 / height)
        )
        fmt = None
        if ifd is None:
            verdicts.append(
                (routes.RASTERIO, ["overviews in SubIFDs (async-tiff does not read them)"])
            )
        else:
            checks.check_level(url, index, ifd, level_transform)
            if mask_ifd is not None:
                checks.check_level(url, index, mask_ifd, None)
            route, reasons, fmt = routes.classify_ifd(ifd, byteorder)
            if mask_ifd is not None and mask_ifd.tile_width is None:
                route, reasons = routes.RASTERIO, [*reasons, "striped mask"]
            verdicts.append((route, reasons))
        levels.append(
            Level(
                index, width, height, level_transform, ifd, mask_ifd, fmt, gdal_index, block
            )
        )
    layout = routes.combine(verdicts)
    base_fmt = levels[0].fmt
    known = base_fmt.dtype if base_fmt is not None else routes.gdal_dtype(base)
    count = int(base.samples_per_pixel)
    if known is None or not routes.plain_band_model(base):
        # GDAL's band model (CIELab as RGB, CMYK with extra samples...): its count and type
        from georeader.rasterio_reader import RasterioReader  # the GDAL fallback, only when asked

        with RasterioReader(location, store=user_store, **store_options) as ref:
            known, count = ref.dtype, ref.count
    dtype: np.dtype = known
    nodata = _checked_nodata(url, geo.nodata, dtype)
    alpha = gdal_rules.alpha_band_index(base, count, dtype, nodata)
    return OpenedFile(
        location=location, store=store, key=key, geotiff=geotiff, levels=levels, layout=layout,
        crs=geo.crs, nodata=nodata, dtype=dtype, count=count, alpha_index=alpha,
        store_options=store_options, user_store=user_store, tiff=tiff,
    )


def _describe_with_gdal(
    location: Location, store: Any, key: str, walk: ifd_walk.HeaderWalk,
    store_options: dict[str, Any], user_store: Any, panic: str,
) -> OpenedFile:
    """An OpenedFile read entirely through GDAL, for headers async-tiff cannot parse.

    The levels come from the walk (same overview rules as `_level_plan`), the
    georeference from `gdal_rules`, the band model (count, type) from GDAL itself.
    """
    url = location.url
    geo = _checked_georeference(url, gdal_rules.georeference(walk))
    from georeader.rasterio_reader import RasterioReader  # the GDAL fallback, only when asked

    try:
        ref = RasterioReader(location, store=user_store, **store_options).open()
    except GeoreaderError as exc:
        raise InvalidHeaderError(
            f"{url}: async-tiff cannot parse the header ({panic}) and GDAL cannot read it "
            f"either: {exc}"
        ) from exc
    with ref:
        count, dtype = ref.count, ref.dtype
    chain = [raw for raw in walk.ifds if not raw.in_sub_ifds]
    base = chain[0]
    overviews = [
        raw for raw in walk.ifds[1:]
        if raw.reduced and not raw.mask and raw.samples == base.samples
        and raw.width <= base.width and raw.height <= base.height
    ]
    order = sorted(range(len(overviews)), key=lambda i: -overviews[i].width * overviews[i].height)
    # the walk's record stands in for async-tiff's IFD (its tag values, no tile access)
    levels = [Level(0, base.width, base.height, geo.transform, base, None, None, None, base.block)]
    for index, i in enumerate(order, 1):
        raw = overviews[i]
        transform = geo.transform * Affine.scale(base.width / raw.width, base.height / raw.height)
        levels.append(
            Level(index, raw.width, raw.height, transform, raw, None, None, i, raw.block)
        )
    layout = routes.Layout(
        routes.RASTERIO, (f"async-tiff cannot parse the header ({panic}): read by GDAL",)
    )
    return OpenedFile(
        location=location, store=store, key=key, geotiff=None, levels=levels, layout=layout,
        crs=geo.crs, nodata=_checked_nodata(url, geo.nodata, dtype), dtype=dtype, count=count,
        alpha_index=None, store_options=store_options, user_store=user_store, tiff=None,
    )


def _checked_georeference(url: str, geo: gdal_rules.Georeference) -> gdal_rules.Georeference:
    """Warn about a file without georeference (read like rasterio); refuse GCP-only files."""
    if not geo.georeferenced:
        warnings.warn(
            NotGeoreferencedWarning(
                f"{url}: the TIFF has no georeference (no GeoKeys, geotransform or GCPs); "
                "it is read like rasterio reads it: identity transform, no CRS"
            ),
            stacklevel=4,
        )
    elif geo.gcps and geo.transform == Affine.identity():
        raise NoGeoreferenceError(
            f"{url}: no affine georeference (GDAL finds {geo.gcps} GCPs and no geotransform); "
            "warp it to a grid first (gdalwarp, rio warp)"
        )
    return geo


def _checked_nodata(url: str, nodata: float | None, dtype: np.dtype) -> float | None:
    """The nodata value, or None (with a warning) when the band type cannot hold it: GDAL
    then masks nothing and rasterio reports no nodata."""
    if nodata is not None and not fits_dtype(nodata, dtype):
        warnings.warn(
            NodataOutOfRangeWarning(
                f"{url}: the nodata value {nodata!r} cannot occur in {np.dtype(dtype)} samples; "
                "like GDAL, nothing is masked (and, like rasterio, no nodata is reported)"
            ),
            stacklevel=4,
        )
        return None
    return nodata


def _geotiff_of(tiff: Any) -> Any:
    """async-geotiff's view of the header, or None when it has no GeoKeys (a plain TIFF)."""
    from async_geotiff import GeoTIFF

    try:
        if not any(
            ifd.strip_offsets is not None or ifd.strip_byte_counts is not None for ifd in tiff.ifds
        ):
            return GeoTIFF(tiff)
        # only a striped file: async-geotiff warns "Striped GeoTIFFs are not supported" (we read
        # those through GDAL), attributed to this module (its stacklevel=2): one narrow filter,
        # not catch_warnings (which swaps the whole process's filters; `ignore_spurious`)
        ignore_spurious(UserWarning, STRIPED_WARNING, __name__)
        return GeoTIFF(tiff)
    except ValueError:
        return None


def _georeference(
    url: str, tiff: Any, geotiff: Any, walk: ifd_walk.HeaderWalk | None
) -> gdal_rules.Georeference:
    """GDAL's reading of the georeferencing tags; async-geotiff's only when the raw tags could
    not be walked (a caller's Rust-native remote store)."""
    if walk is not None:
        return gdal_rules.georeference(walk)
    nodata = geotiff.nodata if geotiff is not None else None
    if geotiff is None:
        return gdal_rules.Georeference(None, Affine.identity(), nodata, georeferenced=False)
    try:
        transform = geotiff.transform
    except ValueError as exc:
        raise NoGeoreferenceError(
            f"{url}: no affine georeference ({first_line(exc)}); the file has GCPs or no "
            "geotransform: warp it to a grid first (gdalwarp, rio warp)"
        ) from exc
    try:
        crs = geotiff.crs
    except Exception as exc:
        raise NoGeoreferenceError(f"{url}: the CRS cannot be read: {first_line(exc)}") from exc
    return gdal_rules.Georeference(crs, transform, nodata, source="async-geotiff")


LevelPlan = tuple[Any, Any, tuple[int, int], int | None, tuple[int, int] | None]
"""(data IFD or None for a SubIFD overview, mask IFD, (width, height), GDAL's overview index,
the SubIFD overview's block shape)."""


def _level_plan(tiff: Any, walk: ifd_walk.HeaderWalk | None) -> list[LevelPlan]:
    """The full-resolution image and its overviews, finest first, as GDAL sees them.

    Overviews are the reduced-resolution IFDs (NewSubfileType bit 0) with the image's
    sample count, in the main chain or in the first IFD's SubIFDs (GDAL reads both); masks
    (bit 2 and a transparency-mask photometric) go with the level of their size; another
    full-resolution page of a multi-page TIFF is not an overview. GDAL lists overviews in
    file order (chain first): that position is kept for the GDAL route, while the levels
    here are sorted by size.
    """
    ifds = list(tiff.ifds)
    base = ifds[0]
    samples = int(base.samples_per_pixel)
    width0, height0 = int(base.image_width), int(base.image_height)
    overviews: list[tuple[Any, tuple[int, int], tuple[int, int] | None]] = []
    masks: dict[tuple[int, int], Any] = {}
    for ifd in ifds[1:]:
        kind = int(ifd.new_subfile_type or 0)
        size = (int(ifd.image_width), int(ifd.image_height))
        if kind & 4 and int(ifd.photometric_interpretation) == 4:
            masks.setdefault(size, ifd)
        elif (
            kind & 1
            and int(ifd.samples_per_pixel) == samples
            and size[0] <= width0
            and size[1] <= height0
        ):
            overviews.append((ifd, size, None))
    if walk is not None:
        for raw in walk.ifds:
            if raw.in_sub_ifds and raw.reduced and not raw.mask and raw.samples == samples:
                overviews.append((None, (raw.width, raw.height), raw.block))
    order = sorted(range(len(overviews)), key=lambda i: -overviews[i][1][0] * overviews[i][1][1])
    plan: list[LevelPlan] = [
        (base, masks.get((width0, height0)), (width0, height0), None, None)
    ]
    for i in order:
        ifd, size, block = overviews[i]
        plan.append((ifd, masks.get(size) if ifd is not None else None, size, i, block))
    return plan
