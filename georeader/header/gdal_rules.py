"""Where GDAL reads a header differently from async-geotiff: the rules we follow so that
the native route and the rasterio route (GDAL, the reference) agree on the same file.

`header.opening` asks these while it describes a freshly parsed header (tag values in,
a verdict out; no I/O): the georeference (CRS, transform, nodata) GDAL itself reads from
the first IFD's tags (`georeference`), and which band, if any, is an alpha band that masks
the others.
"""

from __future__ import annotations

import functools
import math
import re
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS

from georeader.header import ifd_walk
from georeader.process_state import register_function_cache


def alpha_band_index(ifd: Any, count: int, dtype: np.dtype, nodata: float | None) -> int | None:
    """The band (0-based) that masks the others, by GDAL's rule, or None.

    GDAL (`GDALRasterBand::GetMaskBand`) uses an alpha band as the mask only in
    2-band (gray + alpha) and 4-band (RGBA) Byte/UInt16 datasets whose last band
    is alpha (ExtraSamples associated or unassociated alpha), and only when no
    nodata value is set. async-geotiff's colorinterp finds alpha only after RGB,
    so gray + alpha files would come back unmasked.
    """
    if nodata is not None or count not in (2, 4) or dtype not in (np.uint8, np.uint16):
        return None
    extra = list(ifd.extra_samples or [])
    return count - 1 if extra and int(extra[-1]) in (1, 2) else None


# -- the georeference, as GDAL reads it ---------------------------------------------------------
@dataclass(frozen=True)
class Georeference:
    """A file's CRS, transform and nodata as GDAL reports them (rasterio's `crs`, `transform`,
    `nodata`); `georeferenced` is False when GDAL finds neither a geotransform nor GCPs."""

    crs: CRS | None
    transform: Affine
    nodata: float | None
    gcps: int = 0
    georeferenced: bool = True
    source: str = "gdal"
    """"gdal" (GDAL read the tags) or "epsg" (the plain-EPSG fast path)."""


_PLAIN_KEYS = frozenset({1024, 1025, 1026, 2048, 2049, 2054, 2057, 2058, 2059, 3072, 3073, 3076})
"""GTModelType, GTRasterType, GTCitation, GeographicType, GeogCitation, GeogAngularUnits,
GeogSemiMajorAxis / SemiMinorAxis / InvFlattening, ProjectedCSType, PCSCitation,
ProjLinearUnits: a directory of only these (units and ellipsoid equal to the EPSG code's
own, as GDAL writes them) names an EPSG code and nothing that modifies it."""
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def georeference(walk: ifd_walk.HeaderWalk) -> Georeference:
    """The georeference GDAL gets from the first IFD's tags.

    GDAL (libgeotiff) is the reference for what GeoKeys mean: linear units next to an EPSG
    code, user-defined projections and their parameters' units, prime meridians, projection
    variants. Rather than re-implement that translation, the tags are handed to GDAL itself:
    they are copied into a one-pixel TIFF in memory which rasterio opens (GDAL reads no
    pixels). A directory that only names an EPSG code (no key that modifies it), with one
    tiepoint and a pixel scale, takes the fast path, which gives the same values (tested).
    """
    fast = _plain_epsg(walk)
    if fast is not None:
        return fast
    return georeference_by_gdal(walk)


def georeference_by_gdal(walk: ifd_walk.HeaderWalk) -> Georeference:
    """`georeference` without the fast path: always GDAL's reading of the tags."""
    return _from_gdal(_mini_tiff(walk))


def _plain_epsg(walk: ifd_walk.HeaderWalk) -> Georeference | None:
    keys = walk.ints(34735)
    tags = walk.tags
    if len(keys) < 4 or 34264 in tags or 33550 not in tags or 33922 not in tags:
        return None
    entries = {keys[i]: keys[i + 1 : i + 4] for i in range(4, 4 + 4 * keys[3], 4)}
    if len(entries) != keys[3] or not set(entries) <= _PLAIN_KEYS:
        return None

    def short(key: int) -> int | None:
        entry = entries.get(key)
        return int(entry[2]) if entry is not None and entry[0] == 0 and entry[1] == 1 else None

    model, raster = short(1024), short(1025)
    code = short(3072) if model == 1 else short(2048) if model == 2 else None
    if code is None or not 1024 <= code < 32767 or raster not in (None, 1, 2):
        return None
    if model == 1 and 2048 in entries:
        return None  # a GeographicType beside a ProjectedCSType: GDAL may honour it
    scale, tie = _doubles(walk, 33550), _doubles(walk, 33922)
    if len(scale) < 2 or len(tie) != 6 or scale[0] == 0 or scale[1] == 0:
        return None
    nodata = _plain_nodata(walk)
    if nodata is False:
        return None
    units = (short(2054), short(3076) if model == 1 else None)
    if (2054 in entries and units[0] is None) or (3076 in entries and units[1] is None):
        return None
    crs = _epsg_with_units(code, *units)
    if crs is None or not _same_ellipsoid(crs, walk, entries):
        return None
    sx, sy = scale[0], scale[1]
    transform = Affine(sx, 0.0, tie[3] - tie[0] * sx, 0.0, -sy, tie[4] + tie[1] * sy)
    if raster == 2 and not _point_geo_ignore():
        transform = transform * Affine.translation(-0.5, -0.5)
    return Georeference(crs, transform, nodata, source="epsg")


def _same_ellipsoid(crs: CRS, walk: ifd_walk.HeaderWalk, entries: dict[int, list[int]]) -> bool:
    """True when the GeoKeys' explicit ellipsoid values (if any) are the EPSG CRS's own."""
    given = {key: entries.get(key) for key in (2057, 2058, 2059)}
    if all(entry is None for entry in given.values()):
        return True
    ellipsoid = crs.ellipsoid
    if ellipsoid is None:
        return False
    doubles = _doubles(walk, 34736)
    expected = {
        2057: ellipsoid.semi_major_metre,
        2058: ellipsoid.semi_minor_metre,
        2059: ellipsoid.inverse_flattening,
    }
    for key, entry in given.items():
        if entry is None:
            continue
        where, count, index = entry
        if where != 34736 or count != 1 or index >= len(doubles):
            return False
        if not math.isclose(doubles[index], expected[key], rel_tol=1e-12):
            return False
    return True


def _doubles(walk: ifd_walk.HeaderWalk, tag: int) -> list[float]:
    raw = walk.tags.get(tag)
    if raw is None or raw.kind != 12:
        return []
    return list(struct.unpack(walk.order + "d" * raw.count, raw.data))


def _plain_nodata(walk: ifd_walk.HeaderWalk) -> float | None | bool:
    """The GDAL_NODATA value when it is a plain number (or NaN), None without one; False
    when GDAL's own parsing should decide (empty, "1.#INF", trailing text...)."""
    raw = walk.tags.get(42113)
    if raw is None:
        return None
    text = raw.data.split(b"\0", 1)[0].decode("latin-1").strip()
    if text.lower() == "nan":
        return math.nan
    if not _NUMBER.match(text):
        return False
    value = float(text)
    return value if math.isfinite(value) else False


@functools.lru_cache(maxsize=256)
def _epsg(code: int) -> CRS | None:
    try:
        return CRS.from_epsg(code)
    except Exception:  # noqa: BLE001 - an unknown code: GDAL decides
        return None


_LINEAR = {9001: 1.0, 9002: 0.3048, 9003: 1200 / 3937}
"""EPSG unit codes -> metres: metre, foot, US survey foot (others take GDAL's path)."""
_ANGULAR = {9101: 1.0, 9102: math.pi / 180, 9105: math.pi / 200}
"""EPSG unit codes -> radians: radian, degree, grad."""


def _same_unit(factor: float, expected: float | None) -> bool:
    return expected is not None and math.isclose(factor, expected, rel_tol=1e-12)


@functools.lru_cache(maxsize=256)
def _epsg_with_units(code: int, angular: int | None, linear: int | None) -> CRS | None:
    """The EPSG CRS when the explicit unit keys repeat its own units, else None (GDAL decides)."""
    crs = _epsg(code)
    if crs is None:
        return None
    try:
        if linear is not None and (
            not crs.is_projected
            or not _same_unit(crs.axis_info[0].unit_conversion_factor, _LINEAR.get(linear))
        ):
            return None
        geodetic = crs.geodetic_crs
        if angular is not None and (
            geodetic is None
            or not _same_unit(geodetic.axis_info[0].unit_conversion_factor, _ANGULAR.get(angular))
        ):
            return None
    except Exception:  # noqa: BLE001 - anything unexpected: GDAL decides
        return None
    return crs


def _point_geo_ignore() -> bool:
    from rasterio.env import get_gdal_config

    return str(get_gdal_config("GTIFF_POINT_GEO_IGNORE") or "").upper() in ("YES", "TRUE", "ON")


def _mini_tiff(walk: ifd_walk.HeaderWalk) -> bytes:
    """A one-pixel classic TIFF (in the file's byte order) holding the first IFD's
    georeferencing tags and sample type: what GDAL needs to report CRS, transform and nodata."""
    order = walk.order
    bits = (walk.ints(258) or [8])[0]
    fmt = (walk.ints(339) or [1])[0]
    nbytes = max(1, math.ceil(bits / 8))
    entries: list[tuple[int, int, int, bytes]] = [
        (256, 4, 1, struct.pack(order + "I", 1)),
        (257, 4, 1, struct.pack(order + "I", 1)),
        (258, 3, 1, struct.pack(order + "H", bits)),
        (259, 3, 1, struct.pack(order + "H", 1)),
        (262, 3, 1, struct.pack(order + "H", 1)),
        (273, 4, 1, b""),  # the pixel's offset, set below
        (277, 3, 1, struct.pack(order + "H", 1)),
        (278, 4, 1, struct.pack(order + "I", 1)),
        (279, 4, 1, struct.pack(order + "I", nbytes)),
        (284, 3, 1, struct.pack(order + "H", 1)),
        (339, 3, 1, struct.pack(order + "H", fmt)),
    ]
    for tag in ifd_walk.GEO_TAGS:
        raw = walk.tags.get(tag)
        if raw is not None and raw.kind in (1, 2, 3, 4, 6, 7, 8, 9, 11, 12):
            entries.append((tag, raw.kind, raw.count, raw.data))
    table_end = 8 + 2 + 12 * len(entries) + 4
    blobs = b""
    packed = []
    for tag, kind, count, data in entries:
        if len(data) > 4:
            where = table_end + len(blobs)
            blobs += data + (b"\0" if len(data) % 2 else b"")
            packed.append(struct.pack(order + "HHII", tag, kind, count, where))
        else:
            packed.append(struct.pack(order + "HHI", tag, kind, count) + data.ljust(4, b"\0"))
    pixel = table_end + len(blobs)
    strip = [i for i, e in enumerate(entries) if e[0] == 273][0]
    packed[strip] = struct.pack(order + "HHII", 273, 4, 1, pixel)
    head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
    table = struct.pack(order + "H", len(entries)) + b"".join(packed) + struct.pack(order + "I", 0)
    return head + table + blobs + b"\0" * nbytes


def _from_gdal(data: bytes) -> Georeference:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    # not `ignore_spurious`'s narrow filter: rasterio attributes this warning to its own
    # modules (`rasterio`, `rasterio.io`), where a user's own open of a dataset with no
    # georeference warns the same words; a process-wide filter there would hide theirs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.MemoryFile(data) as memfile, memfile.open() as src:
            wkt = src.crs.to_wkt() if src.crs is not None else None
            gcps = len(src.gcps[0])
            transform = src.transform
            nodata = src.nodata
            georeferenced = src.crs is not None or transform != Affine.identity() or gcps > 0
    return Georeference(_wkt_crs(wkt), transform, nodata, gcps, georeferenced)


@functools.lru_cache(maxsize=256)
def _wkt_crs(wkt: str | None) -> CRS | None:
    if wkt is None:
        return None
    crs = CRS.from_wkt(wkt)
    code = crs.to_epsg(min_confidence=100)
    if code is not None:
        exact = _epsg(code)
        if exact is not None and exact == crs:
            return exact
    return crs


register_function_cache("georeader.epsg_crs", _epsg)
register_function_cache("georeader.epsg_crs_with_units", _epsg_with_units)
register_function_cache("georeader.wkt_crs", _wkt_crs)
