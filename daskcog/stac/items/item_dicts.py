"""STAC inputs as plain item dicts, and the facts daskcog reads from each item.

Every input form (pystac `Item` / `ItemCollection`, pystac-client `ItemSearch`,
item dicts, a FeatureCollection dict) becomes an iterator of item dicts with
the same shape as STAC JSON, so the rest of daskcog.stac has one code path.
pystac objects are read through their attributes (no `to_dict()` round trip,
which costs more than everything else per item), and pystac / pystac-client are
imported only when such an object is given.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from pathlib import PureWindowsPath
from typing import Any

from georeader.errors import GeoreaderError

ItemDict = Mapping[str, Any]


class StacError(GeoreaderError, ValueError):
    """STAC input daskcog cannot load as asked (the message names the item or asset)."""


class StacItemError(StacError):
    """An item that lacks what a load needs (a datetime, an asset href, a footprint)."""


def is_geoparquet(source: Any) -> bool:
    """A path or URL of a stac-geoparquet file (by its suffix)."""
    if not isinstance(source, str | os.PathLike):
        return False
    name = os.fspath(source).lower().rstrip("/")
    return name.endswith((".parquet", ".geoparquet", ".pq"))


def iter_item_dicts(source: Any) -> Iterator[ItemDict]:
    """The items of any supported in-memory or search input, as STAC item dicts."""
    if isinstance(source, Mapping):
        kind = source.get("type")
        if kind == "FeatureCollection":
            yield from source.get("features", ())
            return
        if kind == "Feature" or "assets" in source:
            yield source
            return
        raise StacError(f"a dict input must be a STAC Item or FeatureCollection; got type={kind!r}")
    if hasattr(source, "items_as_dicts"):  # pystac-client ItemSearch: dicts, no pystac objects
        yield from source.items_as_dicts()
        return
    if hasattr(source, "items") and callable(source.items) and not isinstance(source, Iterable):
        source = source.items()
    if _is_pystac_item(source):
        yield pystac_item_dict(source)
        return
    if isinstance(source, str | bytes) or not isinstance(source, Iterable):
        raise StacError(
            "items must be a pystac Item, ItemCollection, ItemSearch, an iterable of Items or item "
            f"dicts, or a stac-geoparquet path; got {type(source).__name__}"
        )
    for item in source:
        if isinstance(item, Mapping):
            yield item
        elif _is_pystac_item(item):
            yield pystac_item_dict(item)
        else:
            raise StacError(f"not a STAC item: {type(item).__name__}")


def _is_pystac_item(obj: Any) -> bool:
    cls = type(obj)
    return cls.__name__ == "Item" and cls.__module__.startswith("pystac")


def pystac_item_dict(item: Any) -> dict[str, Any]:
    """A pystac Item's fields as a STAC-shaped dict (absolute hrefs), without `to_dict()`."""
    assets: dict[str, Any] = {}
    for key, asset in item.assets.items():
        href = asset.get_absolute_href() or asset.href
        fields = dict(asset.extra_fields)
        fields["href"] = href
        if asset.media_type:
            fields["type"] = asset.media_type
        if asset.roles:
            fields["roles"] = list(asset.roles)
        assets[key] = fields
    properties = item.properties
    when = getattr(item, "datetime", None)
    if when is not None and properties.get("datetime") is None:
        # an Item built in code (`pystac.Item(datetime=...)`, rio-stac) keeps its datetime
        # on the object until `to_dict()`; items read from JSON have it in both places
        properties = {**properties, "datetime": when}
    return {
        "type": "Feature",
        "id": item.id,
        "bbox": item.bbox,
        "geometry": item.geometry,
        "properties": properties,
        "assets": assets,
        "collection": item.collection_id,
    }


def absolute_hrefs(item: ItemDict) -> ItemDict:
    """The item with each relative asset href resolved against the item's self link.

    Why: STAC hrefs that are relative are relative to the item's own location (pystac's
    `get_absolute_href`, odc-stac); read as they are, "./B02.tif" named a file in the
    process's working directory even when the item said where it lives. An item with no
    self link keeps its relative hrefs, read from the working directory (odc-stac refuses
    them; kept as tests/stac/test_grid_odc.py says). The item itself when nothing is
    resolved (no copy)."""
    assets = item.get("assets") or {}
    relative = [
        key for key, asset in assets.items()
        if isinstance(asset, Mapping) and isinstance(asset.get("href"), str)
        and _is_relative(asset["href"])
    ]
    if not relative:
        return item
    base = next(
        (link.get("href") for link in item.get("links") or ()
         if isinstance(link, Mapping) and link.get("rel") == "self"),
        None,
    )
    if not isinstance(base, str) or _is_relative(base):
        return item  # nothing to resolve against: the working directory, as before
    resolved = dict(assets)
    for key in relative:
        resolved[key] = {**assets[key], "href": _join(base, assets[key]["href"])}
    return {**item, "assets": resolved}


def _is_relative(href: str) -> bool:
    return "://" not in href and not href.startswith("/") and not PureWindowsPath(href).drive


def _join(base: str, href: str) -> str:
    """`href` relative to the folder of `base` (a URL of any scheme, or a local path)."""
    scheme, sep, rest = base.partition("://")
    if not sep:
        scheme, rest = "", base
    path = rest.split("?", 1)[0].split("#", 1)[0]
    if sep and scheme not in ("file",):  # host/bucket, then the key's folder
        host, _, key = path.partition("/")
        folder = posixpath.dirname("/" + key)
        return f"{scheme}://{host}{posixpath.normpath(posixpath.join(folder, href))}"
    folder = posixpath.dirname(path)
    joined = posixpath.normpath(posixpath.join(folder, href))
    return f"{scheme}://{joined}" if sep else joined


def item_id(item: ItemDict) -> str:
    return str(item.get("id", "<no id>"))


def item_datetime(item: ItemDict) -> dt.datetime:
    """The item's nominal time (datetime, else start_datetime), naive UTC like odc-stac."""
    props = item.get("properties") or {}
    value = props.get("datetime") or props.get("start_datetime")
    if value is None:
        raise StacItemError(f"item {item_id(item)}: no datetime or start_datetime")
    if isinstance(value, dt.datetime):
        when = value
    else:
        try:
            when = dt.datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise StacItemError(
                f"item {item_id(item)}: datetime {value!r} is not ISO 8601"
            ) from exc
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when


def item_lonlat_bbox(item: ItemDict) -> tuple[float, float, float, float] | None:
    """The item's bbox (WGS84 lon/lat) from `bbox` or its geometry; None when it has neither."""
    bbox = item.get("bbox")
    if bbox is not None and len(bbox) >= 4:
        if len(bbox) == 6:
            return (float(bbox[0]), float(bbox[1]), float(bbox[3]), float(bbox[4]))
        return (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))
    geometry = item.get("geometry")
    if not geometry:
        return None
    xs: list[float] = []
    ys: list[float] = []
    _coords(geometry.get("coordinates"), xs, ys)
    return (min(xs), min(ys), max(xs), max(ys)) if xs else None


def _coords(node: Any, xs: list[float], ys: list[float]) -> None:
    if isinstance(node, list | tuple) and node and isinstance(node[0], int | float):
        xs.append(float(node[0]))
        ys.append(float(node[1]))
    elif isinstance(node, list | tuple):
        for child in node:
            _coords(child, xs, ys)
