"""CRS texts and the cached pyproj / rasterio objects made from them.

Scenes, grids and specs carry their CRS as interned WKT text (`crs_text`): a plain,
picklable value that equal CRSs share, so a graph of 10,000 scenes in two UTM zones
pickles two strings. Wherever a CRS is needed as an object, it is made from that
text here, once per process (parsing WKT costs ~0.4 ms, a transformer ~0.2 ms):
`crs_from_text` (pyproj), `rasterio_crs` (for GDAL's warper), `transformer`
(per thread), `transform_bounds` (densified edges, cached per footprint).
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache
from typing import Any

from pyproj import CRS, Transformer

from daskcog.runtime import process_state, settings
from georeader.errors import NoGeoreferenceError
from georeader.geo import Bounds, norm_crs

DENSIFY_POINTS = 21
"""Points per edge when a footprint is transformed (GDAL's default, 21)."""


@lru_cache(maxsize=256)
def crs_from_text(text: str) -> CRS:
    """A pyproj CRS from WKT / authority text (cached)."""
    return CRS.from_user_input(text)


_wkt_intern: dict[str, str] = {}
_wkt_lock = threading.Lock()


def crs_text(crs: Any) -> str:
    """The WKT of a CRS, interned so equal CRSs share one string (pickled once in a graph)."""
    normalised = norm_crs(crs)
    if normalised is None:
        raise NoGeoreferenceError("a scene or target grid has no CRS")
    wkt = normalised.to_wkt()
    with _wkt_lock:
        found = _wkt_intern.get(wkt)
        if found is not None:
            return found
        if len(_wkt_intern) >= settings.get_int("crs-intern-size"):
            _wkt_intern.clear()  # bounded: a later equal WKT is simply a new shared string
        return _wkt_intern.setdefault(wkt, wkt)


def clear_crs_caches() -> None:
    """Forget the interned WKT strings and the cached CRS parses and transformers."""
    with _wkt_lock:
        _wkt_intern.clear()
    for cached in (crs_text_cached, same_crs, crs_from_text, _transform_bounds, rasterio_crs):
        cached.cache_clear()
    _local.__dict__.clear()


def crs_cache_info() -> dict[str, int]:
    """Sizes of this process's CRS tables."""
    return {"interned": len(_wkt_intern), "parsed": crs_from_text.cache_info().currsize,
            "compared": same_crs.cache_info().currsize}


@lru_cache(maxsize=1024)
def crs_text_cached(text: str) -> str:
    """`crs_text` of a CRS given as text (WKT, an authority code, PROJJSON), cached: a STAC
    catalogue names a few CRSs on every item."""
    return crs_text(text)


@lru_cache(maxsize=1024)
def same_crs(a: str, b: str) -> bool:
    return a == b or crs_from_text(a) == crs_from_text(b)


_local = threading.local()


def transformer(src: str, dst: str) -> Transformer:
    """An always_xy Transformer between two CRS texts, cached per thread (pyproj objects are
    not shared across threads)."""
    cache: dict[tuple[str, str], Transformer] | None = getattr(_local, "transformers", None)
    if cache is None:
        cache = _local.transformers = {}
    key = (src, dst)
    found = cache.get(key)
    if found is None:
        found = cache[key] = Transformer.from_crs(
            crs_from_text(src), crs_from_text(dst), always_xy=True
        )
    return found


def transform_bounds(bounds: Bounds, src: str, dst: str) -> Bounds:
    """Bounds in another CRS (densified edges); non-finite values when outside its domain."""
    if same_crs(src, dst):
        return bounds
    left, bottom, right, top = (float(v) for v in bounds)
    return _transform_bounds((left, bottom, right, top), src, dst)


@lru_cache(maxsize=65536)
def _transform_bounds(bounds: Bounds, src: str, dst: str) -> Bounds:
    """Cached: a catalogue repeats the same tile footprint on every date (~60 us each)."""
    try:
        out = transformer(src, dst).transform_bounds(*bounds, densify_pts=DENSIFY_POINTS)
    except Exception:  # noqa: BLE001 - pyproj raises ProjError outside the projection's domain
        return (math.nan, math.nan, math.nan, math.nan)
    return tuple(float(v) for v in out)  # type: ignore[return-value]


@lru_cache(maxsize=256)
def rasterio_crs(text: str) -> Any:
    """A rasterio CRS from WKT / authority text (cached), for GDAL's warper."""
    from rasterio.crs import CRS as RasterioCRS

    return RasterioCRS.from_user_input(text)


process_state.register("daskcog.crs", info=crs_cache_info, clear=clear_crs_caches)
