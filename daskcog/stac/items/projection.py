"""The projection extension: a scene's grid from `proj:*` fields, with no header fetch.

An asset's grid is known when its CRS (`proj:code`, `proj:epsg`, `proj:wkt2`
or `proj:projjson`) and two of `proj:transform`, `proj:shape` and `proj:bbox`
are given, at asset level or, failing that, at item level (assets override the
item field by field, as the extension specifies). Anything less returns None
and the caller fetches that header instead.

CRS texts are parsed once per distinct value and kept as interned WKT, so a
catalogue of 10,000 items in two UTM zones parses two CRSs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from daskcog.mosaics.crs import crs_text_cached
from daskcog.runtime import process_state
from daskcog.stac.items.item_dicts import StacItemError

Transform = tuple[float, float, float, float, float, float]
_MISSING = object()


@dataclass(frozen=True)
class ProjGrid:
    """An asset's full-resolution grid as its metadata states it."""

    crs: str
    """Interned WKT."""
    transform: Transform
    width: int
    height: int


def _field(asset: Mapping[str, Any], props: Mapping[str, Any], name: str) -> Any:
    value = asset.get(name, _MISSING)
    if value is _MISSING:
        value = props.get(name, _MISSING)
    return None if value is _MISSING else value


def _crs_from(kind: str, text: str) -> str:
    if kind == "epsg":
        return crs_text_cached(f"EPSG:{int(float(text))}")
    return crs_text_cached(text)  # WKT, a code or PROJJSON text: pyproj reads them all


def crs_of(asset: Mapping[str, Any], props: Mapping[str, Any]) -> str | None:
    """The asset's CRS as interned WKT, or None when the metadata does not say."""
    for name, kind in (("proj:code", "code"), ("proj:epsg", "epsg"), ("proj:wkt2", "wkt")):
        value = asset.get(name, _MISSING)
        if value is _MISSING:
            value = props.get(name)
        if value is not None and value != "":
            return _crs_from(kind, value if isinstance(value, str) else str(value))
    projjson = _field(asset, props, "proj:projjson")
    if projjson:
        return _crs_from("projjson", json.dumps(projjson, sort_keys=True))
    return None


def proj_grid(
    asset: Mapping[str, Any], props: Mapping[str, Any], where: str
) -> ProjGrid | None:
    """The asset's grid from proj:* fields, or None when they do not define it.

    Cached on the raw values: a catalogue repeats each tile's grid on every date
    and across the assets of an item, so most calls are one dict lookup.
    """
    crs = crs_of(asset, props)
    if crs is None:
        return None
    transform = asset.get("proj:transform") or props.get("proj:transform")
    shape = asset.get("proj:shape") or props.get("proj:shape")
    bbox = asset.get("proj:bbox") or props.get("proj:bbox")
    try:
        key = (
            crs,
            tuple(transform) if transform is not None else None,
            tuple(shape) if shape is not None else None,
            tuple(bbox) if bbox is not None else None,
        )
        return _grid(*key)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise StacItemError(
            f"{where}: proj:transform / proj:shape / proj:bbox unreadable: {exc}"
        ) from exc
    except _InvalidGrid as exc:
        raise StacItemError(f"{where}: proj:* describe an empty or invalid grid") from exc


class _InvalidGrid(Exception):
    pass


@lru_cache(maxsize=65536)
def _grid(
    crs: str,
    transform: tuple[Any, ...] | None,
    shape: tuple[Any, ...] | None,
    bbox: tuple[Any, ...] | None,
) -> ProjGrid | None:
    coeffs = _transform(transform) if transform is not None else None
    if shape is not None:
        height, width = (int(v) for v in shape)
    elif coeffs is not None and bbox is not None:
        left, bottom, right, top = (float(v) for v in bbox[:4])
        width = round((right - left) / abs(coeffs[0]))
        height = round((top - bottom) / abs(coeffs[4]))
    else:
        return None
    if coeffs is None:
        if bbox is None:
            return None
        left, bottom, right, top = (float(v) for v in bbox[:4])
        coeffs = ((right - left) / width, 0.0, left, 0.0, -(top - bottom) / height, top)
    if width <= 0 or height <= 0 or not all(math.isfinite(v) for v in coeffs):
        raise _InvalidGrid
    return ProjGrid(crs, coeffs, width, height)


def _transform(value: Any) -> Transform:
    values = [float(v) for v in value]
    if len(values) not in (6, 9):
        raise ValueError(f"proj:transform has {len(values)} numbers, not 6 or 9")
    a, b, c, d, e, f = values[:6]
    return (a, b, c, d, e, f)


process_state.register_function_cache("daskcog.projection.grid", _grid)
