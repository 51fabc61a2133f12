"""Bands: which asset (and which band inside it) each requested name reads.

Names a user can ask for, in the order they are tried:

* an asset key ("B04"): its one band, or every band of a multi-band asset
  (named "visual.1", "visual.2", ... like odc-stac);
* "key.N": band N (1-based) of asset `key`;
* an alias: a band's `eo:bands` / `bands` `name` or common name ("red" ->
  "B04"). An alias that names bands of two different assets is refused.

Per band, `raster:bands` (or STAC 1.1 `bands`) give the data type, nodata and
scale / offset. They are read from the first item carrying the asset;
`check_asset` compares every other item's asset with it, so assets that disagree
are an error that names both items, never a silently wrong cast.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daskcog.stac.items import ItemDict, StacError, item_id

_NOT_DATA_ROLES = frozenset({"thumbnail", "overview", "metadata", "visual-preview"})


class BandError(StacError):
    """A band name that matches no asset, matches two, or assets that disagree."""


@dataclass(frozen=True)
class BandInfo:
    """One band of one asset, as the first item carrying the asset describes it."""

    asset: str
    index: int
    """1-based band number inside the asset's file."""
    count: int
    """Bands in the asset's file (per its metadata)."""
    dtype: str | None
    nodata: float | None
    scale: float | None
    offset: float | None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Band:
    """An output band: the label it gets and where it is read from."""

    name: str
    info: BandInfo


def is_raster_asset(asset: Mapping[str, Any]) -> bool:
    """A data asset daskcog can read: a (Geo)TIFF by media type, band metadata or suffix."""
    roles = set(asset.get("roles") or ())
    if roles and roles <= _NOT_DATA_ROLES:
        return False
    kind = str(asset.get("type") or "").lower()
    if kind:
        return "tiff" in kind
    if "raster:bands" in asset:
        return True
    href = str(asset.get("href", "")).lower().partition("?")[0]
    return href.endswith((".tif", ".tiff"))


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):  # "nan", "inf": STAC allows them as strings
        return float(value)
    return float(value)


def asset_bands(key: str, asset: Mapping[str, Any]) -> list[BandInfo]:
    """The bands of one asset from its raster:bands / eo:bands / bands lists."""
    raster = list(asset.get("raster:bands") or ())
    eo = list(asset.get("eo:bands") or ())
    common = list(asset.get("bands") or ())
    count = max(len(raster), len(eo), len(common), 1)
    out: list[BandInfo] = []
    for i in range(count):
        r = raster[i] if i < len(raster) else {}
        b = common[i] if i < len(common) else {}
        e = eo[i] if i < len(eo) else {}
        fallback = asset if count == 1 else {}
        dtype = r.get("data_type") or b.get("data_type") or fallback.get("data_type")
        nodata = next(
            (d["nodata"] for d in (r, b, fallback) if d.get("nodata") is not None), None
        )
        scale = r.get("scale", b.get("raster:scale", fallback.get("raster:scale")))
        offset = r.get("offset", b.get("raster:offset", fallback.get("raster:offset")))
        aliases = tuple(
            dict.fromkeys(
                str(v)
                for v in (
                    e.get("common_name"), e.get("name"), b.get("eo:common_name"), b.get("name"),
                )
                if v
            )
        )
        out.append(
            BandInfo(
                asset=key,
                index=i + 1,
                count=count,
                dtype=str(dtype) if dtype else None,
                nodata=_number(nodata),
                scale=_number(scale),
                offset=_number(offset),
                aliases=aliases,
            )
        )
    return out


def catalogue(items: Iterable[ItemDict]) -> dict[str, list[BandInfo]]:
    """Raster assets by key, in first-seen order, each with its bands (first item wins)."""
    found: dict[str, list[BandInfo]] = {}
    for item in items:
        for key, asset in (item.get("assets") or {}).items():
            if key not in found and is_raster_asset(asset):
                found[key] = asset_bands(key, asset)
    return found


def resolve(requested: str | Sequence[str] | None, assets: dict[str, list[BandInfo]]) -> list[Band]:
    """The output bands for `bands=` (default: every band of every raster asset)."""
    if not assets:
        raise BandError("no item has a raster (GeoTIFF) asset")
    if requested is None:
        return [
            Band(key if len(infos) == 1 else f"{key}.{b.index}", b)
            for key, infos in assets.items()
            for b in infos
        ]
    names = [requested] if isinstance(requested, str) else list(requested)
    out: list[Band] = []
    for name in names:
        out.extend(_one(name, assets))
    labels = [b.name for b in out]
    if len(set(labels)) != len(labels):
        raise BandError(f"bands {names!r} name the same band twice")
    return out


def _one(name: str, assets: dict[str, list[BandInfo]]) -> list[Band]:
    if name in assets:
        infos = assets[name]
        return [Band(name if len(infos) == 1 else f"{name}.{b.index}", b) for b in infos]
    key, dot, number = name.rpartition(".")
    if dot and key in assets and number.isdigit():
        infos = assets[key]
        if not 1 <= int(number) <= len(infos):
            raise BandError(f"band {name!r}: asset {key!r} has {len(infos)} band(s)")
        return [Band(name, infos[int(number) - 1])]
    matches = [b for infos in assets.values() for b in infos if name in b.aliases]
    if not matches:
        known = sorted(
            {*assets, *(a for infos in assets.values() for b in infos for a in b.aliases)}
        )
        raise BandError(f"band {name!r} matches no asset key or band alias; known: {known}")
    if len({m.asset for m in matches}) > 1:
        raise BandError(
            f"band alias {name!r} is ambiguous: assets {sorted({m.asset for m in matches})}; "
            "ask for the asset key instead"
        )
    return [Band(name, m) for m in matches[:1]]


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def check_asset(first: BandInfo, item: ItemDict, asset: Mapping[str, Any], first_item: str) -> None:
    """BandError when this item's asset states another data type or nodata than the first's."""
    if "raster:bands" not in asset and "bands" not in asset and "data_type" not in asset:
        return
    bands = asset_bands(first.asset, asset)
    if first.index > len(bands):
        raise BandError(
            f"asset {first.asset!r}: item {item_id(item)} has {len(bands)} band(s), item "
            f"{first_item} has {first.count}"
        )
    info = bands[first.index - 1]
    for what in ("dtype", "nodata"):
        mine, theirs = getattr(info, what), getattr(first, what)
        same = mine == theirs or (_nan(mine) and _nan(theirs))  # NaN nodata equals NaN
        if mine is not None and theirs is not None and not same:
            raise BandError(
                f"asset {first.asset!r} band {first.index}: {what} {theirs!r} in item "
                f"{first_item}, "
                f"{mine!r} in item {item_id(item)}; give dtype= / nodata= to load them together"
            )
