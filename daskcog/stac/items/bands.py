"""Bands: which asset (and which band inside it) each requested name reads.

Names a user can ask for, in the order they are tried:

* an asset key ("B04"): its one band, or every band of a multi-band asset
  (named "visual.1", "visual.2", ... like odc-stac);
* "key.N": band N (1-based) of asset `key`;
* an alias: a band's `eo:bands` / `bands` `name` or common name ("red" ->
  "B04"). When an alias names bands of several assets, the asset with the fewest
  bands wins, as in odc-stac (Sentinel-2's single-band `B04` over the 3-band
  `visual`); a tie between assets of the same band count (`rededge` on B05, B06
  and B07) is refused (odc-stac takes the first key by name): the user says which.

An asset asked for by key loads whatever its roles, even a thumbnail or overview
GeoTIFF; the default band set (`bands=None`) and the aliases leave those out, as
odc-stac does (a "metadata" GeoTIFF such as WorldCover's `input_quality` is in).

STAC 1.0.0-beta items list `eo:bands` once in the item's properties and give
each asset the indices of its bands in that list; they are resolved here.

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

import numpy as np

from daskcog.stac.items.item_dicts import ItemDict, StacError, item_id

_NOT_DATA_ROLES = frozenset({"thumbnail", "overview", "visual-preview"})
"""Roles of assets left out of the default band set: odc-stac's (thumbnail, overview) and
visual-preview; a GeoTIFF with role "metadata" (WorldCover's input_quality) is data to
odc-stac, and so to daskcog."""


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
    data: bool = True
    """A data asset by its roles: in the default band set and the aliases."""


@dataclass(frozen=True)
class Band:
    """An output band: the label it gets and where it is read from."""

    name: str
    info: BandInfo


def is_raster_asset(asset: Mapping[str, Any]) -> bool:
    """A data asset daskcog can read: a (Geo)TIFF by media type, band metadata or suffix."""
    return is_data_asset(asset) and is_tiff_asset(asset)


def is_data_asset(asset: Mapping[str, Any]) -> bool:
    """Not a thumbnail or overview asset by its roles."""
    roles = set(asset.get("roles") or ())
    return not (roles and roles <= _NOT_DATA_ROLES)


def is_tiff_asset(asset: Mapping[str, Any]) -> bool:
    """A (Geo)TIFF by media type, band metadata or suffix, whatever its roles."""
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


def asset_eo_bands(
    asset: Mapping[str, Any], properties: Mapping[str, Any] | None = None
) -> list[Mapping[str, Any]]:
    """The asset's `eo:bands` entries; STAC 1.0.0-beta's indices into the item's
    `eo:bands` list are resolved against `properties`."""
    eo = asset.get("eo:bands") or ()
    if not isinstance(eo, list | tuple):
        raise BandError(f"asset eo:bands must be a list; got {type(eo).__name__}")
    listed = (properties or {}).get("eo:bands") or ()
    out: list[Mapping[str, Any]] = []
    for entry in eo:
        if isinstance(entry, Mapping):
            out.append(entry)
        elif isinstance(entry, int) and not isinstance(entry, bool):
            if not 0 <= entry < len(listed) or not isinstance(listed[entry], Mapping):
                raise BandError(
                    f"asset eo:bands index {entry} is not in the item's eo:bands list "
                    f"({len(listed)} entries)"
                )
            out.append(listed[entry])
        else:
            raise BandError(f"asset eo:bands entry {entry!r} is neither an object nor an index")
    return out


def asset_bands(
    key: str, asset: Mapping[str, Any], properties: Mapping[str, Any] | None = None
) -> list[BandInfo]:
    """The bands of one asset from its raster:bands / eo:bands / bands lists."""
    raster = list(asset.get("raster:bands") or ())
    try:
        eo = asset_eo_bands(asset, properties)
    except BandError as exc:
        raise BandError(f"asset {key!r}: {exc}") from None
    common = list(asset.get("bands") or ())
    count = max(len(raster), len(eo), len(common), 1)
    out: list[BandInfo] = []
    for i in range(count):
        r = raster[i] if i < len(raster) else {}
        b = common[i] if i < len(common) else {}
        e = eo[i] if i < len(eo) else {}
        fallback = asset if count == 1 else {}
        item_level = properties or {}  # odc-stac: the item's data_type / nodata, below the asset's
        dtype = (
            r.get("data_type") or b.get("data_type") or fallback.get("data_type")
            or item_level.get("data_type")
        )
        nodata = next(
            (
                d["nodata"] for d in (r, b, fallback, item_level)
                if isinstance(d.get("nodata"), int | float | str)
            ),
            None,
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
                data=is_data_asset(asset),
            )
        )
    return out


def catalogue(items: Iterable[ItemDict]) -> dict[str, list[BandInfo]]:
    """GeoTIFF assets by key, in first-seen order, each with its bands (first item wins).

    Assets that are not data by their roles are listed too (with `data=False`): they
    load when asked for by key, and stay out of the default band set and the aliases."""
    found: dict[str, list[BandInfo]] = {}
    for item in items:
        props = item.get("properties") or {}
        for key, asset in (item.get("assets") or {}).items():
            if key not in found and is_tiff_asset(asset):
                found[key] = asset_bands(key, asset, props)
    return found


def resolve(
    requested: str | Sequence[str] | None,
    assets: dict[str, list[BandInfo]],
    aliases: Mapping[str, str] | None = None,
) -> list[Band]:
    """The output bands for `bands=` (default: every band of every raster asset);
    `aliases` ({name: "asset" or "asset.N"}, stac_cfg's) come before the eo:bands ones."""
    if requested is None:
        if not any(infos[0].data for infos in assets.values()):
            raise BandError("no item has a raster (GeoTIFF) data asset")
        return [
            Band(key if len(infos) == 1 else f"{key}.{b.index}", b)
            for key, infos in assets.items()
            for b in infos
            if b.data
        ]
    if not assets:
        raise BandError("no item has a raster (GeoTIFF) asset")
    names = [requested] if isinstance(requested, str) else list(requested)
    out: list[Band] = []
    for name in names:
        target = (aliases or {}).get(name)
        if target is not None and name not in assets:
            found = _one(target, assets)
            out.extend(Band(name if len(found) == 1 else f"{name}.{b.info.index}", b.info)
                       for b in found)
            continue
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
    matches = [b for infos in assets.values() for b in infos if b.data and name in b.aliases]
    if not matches:
        known = sorted(
            {*assets, *(a for infos in assets.values() for b in infos if b.data
                        for a in b.aliases)}
        )
        raise BandError(f"band {name!r} matches no asset key or band alias; known: {known}")
    fewest = min(m.count for m in matches)
    best = [m for m in matches if m.count == fewest]  # odc-stac: fewest bands first
    if len({m.asset for m in best}) > 1:
        raise BandError(
            f"band alias {name!r} is ambiguous: assets {sorted({m.asset for m in best})} "
            f"each have {fewest} band(s); ask for the asset key instead"
        )
    return [Band(name, best[0])]


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def check_asset(first: BandInfo, item: ItemDict, asset: Mapping[str, Any], first_item: str) -> None:
    """BandError when this item's asset states another data type or nodata than the first's."""
    if "raster:bands" not in asset and "bands" not in asset and "data_type" not in asset:
        return
    bands = asset_bands(first.asset, asset, item.get("properties"))
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


# -- odc-stac's stac_cfg and per-band resampling ------------------------------------------
class StacConfigError(StacError, TypeError):
    """A `stac_cfg=` or per-band `resampling=` value daskcog cannot read (the message says
    which key and what is accepted)."""


_CFG_KEYS = frozenset({"assets", "aliases", "ignore_proj"})


def _collection_cfg(cfg: Mapping[str, Any], collection: str | None) -> Mapping[str, Any]:
    """odc-stac's choice of configuration for one collection: a configuration with an
    "assets" key is for every collection; else "*" updated by the collection's entry."""
    if "assets" in cfg or "aliases" in cfg or "ignore_proj" in cfg:
        return cfg
    merged = dict(cfg.get("*") or {})
    merged.update(cfg.get(collection or "", {}) or {})
    return merged


def check_stac_cfg(cfg: Any) -> None:
    """StacConfigError unless `cfg` has odc-stac's shape: {collection or "*": {"assets":
    {asset key, "key.*" or "*": {"data_type", "nodata", "unit"}}, "aliases": {name:
    "asset" or "asset.N"}, "ignore_proj": bool}}, or one such entry for every collection."""
    if not isinstance(cfg, Mapping):
        raise StacConfigError(
            f"stac_cfg must be a dict (odc-stac's format); got {type(cfg).__name__}"
        )
    entries = [cfg] if "assets" in cfg or "aliases" in cfg or "ignore_proj" in cfg else list(
        cfg.values()
    )
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise StacConfigError(
                f"stac_cfg: each collection's entry must be a dict; got {type(entry).__name__}"
            )
        unknown = sorted(set(entry) - _CFG_KEYS)
        if unknown:
            raise StacConfigError(
                f"stac_cfg keys {unknown} are not supported (daskcog reads {sorted(_CFG_KEYS)}; "
                "use with_properties= for item properties)"
            )
        for key, band in (entry.get("assets") or {}).items():
            if not isinstance(band, Mapping):
                raise StacConfigError(f"stac_cfg asset {key!r}: a dict is needed, got {band!r}")
            extra = sorted(set(band) - {"data_type", "nodata", "unit", "units"})
            if extra:
                raise StacConfigError(
                    f"stac_cfg asset {key!r}: keys {extra} are not supported "
                    "(data_type, nodata, unit)"
                )
            if band.get("data_type") is not None:
                try:
                    np.dtype(band["data_type"])
                except TypeError as exc:
                    raise StacConfigError(
                        f"stac_cfg asset {key!r}: data_type {band['data_type']!r} is not a "
                        "numpy data type"
                    ) from exc


def apply_stac_cfg(
    items: Sequence[ItemDict], cfg: Mapping[str, Any] | None
) -> tuple[list[ItemDict], dict[str, str]]:
    """The items with odc-stac's `stac_cfg` applied to their band metadata, and the aliases
    it declares ({name: "asset" or "asset.N"}).

    As in odc-stac, a configuration for the asset key replaces the metadata's data type
    and nodata; "key.*" or "*" fill what the metadata leaves out. `ignore_proj` drops the
    proj:* fields, so the headers are read. The items are copied where changed, never
    modified in place."""
    if cfg is None:
        return list(items), {}
    check_stac_cfg(cfg)
    aliases: dict[str, str] = {}
    out: list[ItemDict] = []
    for item in items:
        entry = _collection_cfg(cfg, item.get("collection"))
        for name, target in (entry.get("aliases") or {}).items():
            text = target if isinstance(target, str) else ".".join(str(v) for v in target)
            if aliases.setdefault(str(name), text) != text:
                raise StacConfigError(
                    f"stac_cfg alias {name!r} names {aliases[name]!r} and {text!r}"
                )
        assets_cfg = entry.get("assets") or {}
        ignore_proj = bool(entry.get("ignore_proj", False))
        if not assets_cfg and not ignore_proj:
            out.append(item)
            continue
        props = item.get("properties") or {}
        new_assets: dict[str, Any] = {}
        for key, asset in (item.get("assets") or {}).items():
            asset = dict(asset)
            exact = assets_cfg.get(key)
            default = assets_cfg.get(f"{key}.*", assets_cfg.get("*"))
            if (exact or default) and is_tiff_asset(asset):
                asset["raster:bands"] = _configured_bands(key, asset, props, exact, default)
                asset.pop("bands", None)
            if ignore_proj:
                asset = {k: v for k, v in asset.items() if not k.startswith("proj:")}
            new_assets[key] = asset
        if ignore_proj:
            props = {k: v for k, v in props.items() if not k.startswith("proj:")}
        out.append({**item, "properties": props, "assets": new_assets})
    return out, aliases


def _configured_bands(
    key: str,
    asset: Mapping[str, Any],
    props: Mapping[str, Any],
    exact: Mapping[str, Any] | None,
    default: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    raster = list(asset.get("raster:bands") or ())
    out: list[dict[str, Any]] = []
    for i, info in enumerate(asset_bands(key, asset, props)):
        band = dict(raster[i]) if i < len(raster) else {}
        for field, have in (("data_type", info.dtype), ("nodata", info.nodata)):
            if exact is not None and exact.get(field) is not None:
                band[field] = exact[field]
            elif have is not None:
                band[field] = have
            elif default is not None and default.get(field) is not None:
                band[field] = default[field]
        out.append(band)
    return out


def resampling_per_asset(
    resampling: str | Mapping[str, str], out_bands: Sequence[Band]
) -> dict[str, str]:
    """Each asset's resampling: one name for all, or odc-stac's {band name: name, "*":
    default} (band names as in the output, or asset keys). Two output bands of one
    multi-band asset read with one method: asking two for them is a BandError."""
    if isinstance(resampling, str):
        return {b.info.asset: resampling for b in out_bands}
    if not isinstance(resampling, Mapping):
        raise StacConfigError(
            f"resampling must be a name or a {{band: name}} dict; got {type(resampling).__name__}"
        )
    known = {b.name for b in out_bands} | {b.info.asset for b in out_bands} | {"*"}
    unknown = sorted(set(resampling) - known)
    if unknown:
        raise StacConfigError(
            f"resampling names bands {unknown} that the load does not have; "
            f"its bands: {sorted(known - {'*'})}"
        )
    default = resampling.get("*", "nearest")
    out: dict[str, str] = {}
    for b in out_bands:
        method = resampling.get(b.name, resampling.get(b.info.asset, default))
        if out.setdefault(b.info.asset, method) != method:
            raise BandError(
                f"resampling: bands of asset {b.info.asset!r} are read together; give them "
                f"one method, not {out[b.info.asset]!r} and {method!r}"
            )
    return out
