"""Scene values for the assets a load reads, from proj:* metadata or, failing that, headers.

One `Scene` per (item, asset): from the projection extension when the item
carries it (no I/O; `Scene.from_footprint` with the stated transform), else
from a header fetched on the client, all such headers at once through the
reader cache (`fetch_scenes`), with a warning that says how many. Data type,
nodata and band count come from `raster:bands` / `bands`; when an asset states
no data type, one header per asset key is opened to learn it, and every other
item's file is checked against it when a chunk task opens its header.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from daskcog.mosaics.grid import place
from daskcog.mosaics.masks import Mask, MaskPlan
from daskcog.mosaics.mosaic import build_spec
from daskcog.mosaics.scenes import Scene, fetch_scenes
from daskcog.stac.items.bands import BandInfo, check_asset
from daskcog.stac.items.item_dicts import ItemDict, StacError, StacItemError, item_id
from daskcog.stac.items.projection import proj_grid
from georeader.io import RetryPolicy


class HeaderFallbackWarning(UserWarning):
    """Some assets had no usable proj:* metadata: their headers were fetched on the client."""


@dataclass(frozen=True, eq=False)
class AssetTable:
    """The scenes of one asset key, and which item each belongs to."""

    key: str
    scenes: tuple[Scene, ...]
    items: np.ndarray
    """(N,) item index of each scene (items without the asset have no scene)."""
    headers_fetched: int


def asset_tables(
    items: Sequence[ItemDict],
    assets: Mapping[str, BandInfo],
    *,
    patch_url: Callable[[str], str] | None = None,
    use_proj: bool = True,
    dtype: Any = None,
    nodata: float | None = None,
    rescale: bool = False,
    declare: bool = False,
    retry: RetryPolicy | None = None,
    **store_options: Any,
) -> list[AssetTable]:
    """One AssetTable per asset key in `assets` (the first band of each, for its facts).

    `declare`: the scenes carry `declare_nodata`'s rule for the load's `nodata=`, `dtype=`
    and `rescale=` (set as each Scene is made: a replace per scene would cost ~4 us)."""
    rules = {
        key: nodata_rule(info, nodata=nodata, dtype=dtype, rescale=rescale) if declare else None
        for key, info in assets.items()
    }
    tables: list[AssetTable] = []
    pending: list[tuple[str, int, str, bool]] = []
    built: dict[str, dict[int, Scene]] = {key: {} for key in assets}
    first_raw: dict[str, tuple[str, Any]] = {}
    for i, item in enumerate(items):
        props = item.get("properties") or {}
        own = item.get("assets") or {}
        name = item_id(item)
        for key, info in assets.items():
            asset = own.get(key)
            if asset is None:
                continue
            href = asset.get("href")
            if not href:
                raise StacItemError(f"item {name}: asset {key!r} has no href")
            href = patch_url(str(href)) if patch_url is not None else str(href)
            raw = asset.get("raster:bands", asset.get("bands"))
            if key not in first_raw:
                first_raw[key] = (name, raw)
            elif raw != first_raw[key][1] and dtype is None:
                check_asset(info, item, asset, first_raw[key][0])
            label = f"item {name} asset {key!r}"
            grid = proj_grid(asset, props, label) if use_proj else None
            pays = requester_pays(asset, props)
            if grid is None:
                pending.append((key, i, href, pays))
                continue
            a, _, c, _, e, f = grid.transform
            built[key][i] = Scene.from_footprint(
                href,
                (c, f + e * grid.height, c + a * grid.width, f),
                grid.crs,
                (abs(a), abs(e)),
                shape=(grid.height, grid.width),
                dtype=info.dtype,
                nodata=info.nodata if (rule := rules[key]) is None else rule[0],
                count=info.count,
                label=label,
                transform=grid.transform,
                keep_file_nodata=rule is not None and rule[1],
                **({**store_options, "requester_pays": True} if pays else store_options),
            )
    fetched = _fetch(items, pending, assets, store_options, retry)
    for key in assets:
        scenes = built[key]
        rule = rules[key]
        scenes.update(
            (i, sc if rule is None else dataclasses.replace(
                sc, nodata=rule[0], keep_file_nodata=rule[1]))
            for i, sc in fetched.get(key, {}).items()
        )
        order = sorted(scenes)
        tables.append(
            AssetTable(
                key=key,
                scenes=tuple(scenes[i] for i in order),
                items=np.asarray(order, dtype=np.int64),
                headers_fetched=sum(1 for k, *_ in pending if k == key),
            )
        )
    return tables


def declare_nodata(
    tables: Sequence[AssetTable],
    facts: Mapping[str, BandInfo],
    *,
    nodata: float | None,
    dtype: Any,
    rescale: bool,
) -> list[AssetTable]:
    """Each asset's nodata when the catalogue states none, by odc-stac's rule (odc-loader's
    `resolve_dst_nodata`), with no header opened on the client:

    * `nodata=` given, or the metadata (raster:bands, bands, stac_cfg) states one: as before;
    * a float output: NaN (the files' nodata pixels become NaN);
    * an integer output: none is declared (`to_dataset` writes no `nodata` attribute, as
      odc-stac), and each file's own nodata pixels keep their value (MODIS -3000 stays
      -3000: `Scene.keep_file_nodata`) instead of turning into 0 under a stated
      `nodata=0`; pixels no scene reaches are 0, as in odc-stac.

    With `rescale=True` the output is float with NaN where no data: nothing to keep."""
    out: list[AssetTable] = []
    for table in tables:
        scenes = declared_scenes(
            table.scenes, facts[table.key], nodata=nodata, dtype=dtype, rescale=rescale
        )
        out.append(
            table if scenes is table.scenes else dataclasses.replace(table, scenes=tuple(scenes))
        )
    return out


def declared_scenes(
    scenes: Sequence[Scene], info: BandInfo, *, nodata: float | None, dtype: Any, rescale: bool
) -> Sequence[Scene]:
    """The scenes of one asset key with `declare_nodata`'s rule applied (the same
    sequence when the metadata or `nodata=` states the nodata)."""
    rule = nodata_rule(info, nodata=nodata, dtype=dtype, rescale=rescale)
    if rule is None or not scenes:
        return scenes
    return tuple(
        dataclasses.replace(sc, nodata=rule[0], keep_file_nodata=rule[1]) for sc in scenes
    )


def nodata_rule(
    info: BandInfo, *, nodata: float | None, dtype: Any, rescale: bool
) -> tuple[float | None, bool] | None:
    """(the scenes' nodata, keep_file_nodata) by `declare_nodata`'s rule, or None when the
    metadata or `nodata=` states the nodata."""
    if nodata is not None or info.nodata is not None:
        return None
    if np.dtype(dtype if dtype is not None else info.dtype).kind == "f":
        return (math.nan, False)
    return (None, not rescale)


def undeclared_nodata(scenes: Sequence[Scene]) -> bool:
    """True when an asset's output declares no nodata (see `declare_nodata`)."""
    return bool(scenes) and scenes[0].keep_file_nodata


def complete_facts(
    items: Sequence[ItemDict],
    assets: Mapping[str, BandInfo],
    *,
    patch_url: Callable[[str], str] | None = None,
    retry: RetryPolicy | None = None,
    **store_options: Any,
) -> tuple[dict[str, BandInfo], int]:
    """Assets whose metadata states no data type learn it (and their band count) from the
    header of the first item carrying them: one header per asset key, not per item."""
    missing = [key for key, info in assets.items() if info.dtype is None]
    out = dict(assets)
    if not missing:
        return out, 0
    hrefs: list[str] = []
    for key in missing:
        href = next(
            str(it["assets"][key]["href"]) for it in items if key in (it.get("assets") or {})
        )
        hrefs.append(patch_url(href) if patch_url is not None else href)
    warnings.warn(
        f"{len(missing)} asset key(s) state no data type ({', '.join(missing)}): one header each "
        "was fetched on the client",
        HeaderFallbackWarning,
        stacklevel=4,
    )
    for key, scene in zip(missing, fetch_scenes(hrefs, retry=retry, **store_options), strict=True):
        out[key] = dataclasses.replace(
            assets[key], dtype=scene.dtype, count=max(assets[key].count, scene.count)
        )
    return out, len(missing)


def requester_pays(asset: dict[str, Any], properties: dict[str, Any]) -> bool:
    """Whether the STAC storage extension says the requester pays for this asset:
    `storage:requester_pays` (v1, on the asset or the item) or the requester_pays of the
    `storage:schemes` entries the asset's `storage:refs` name (v2)."""
    for where in (asset, properties):
        if "storage:requester_pays" in where:
            return bool(where["storage:requester_pays"])
    schemes = properties.get("storage:schemes") or {}
    refs = asset.get("storage:refs") or []
    return any(bool((schemes.get(ref) or {}).get("requester_pays")) for ref in refs)


def _fetch(
    items: Sequence[ItemDict],
    pending: list[tuple[str, int, str, bool]],
    assets: Mapping[str, BandInfo],
    store_options: dict[str, Any],
    retry: RetryPolicy | None = None,
) -> dict[str, dict[int, Scene]]:
    """Scenes from headers for the assets metadata could not describe (one concurrent fetch)."""
    if not pending:
        return {}
    warnings.warn(
        f"{len(pending)} of the assets to load have no usable proj:* metadata (or no data type); "
        "their headers were fetched on the client",
        HeaderFallbackWarning,
        stacklevel=4,
    )
    free = [p for p in pending if not p[3]]
    paying = [p for p in pending if p[3]]
    pending = free + paying
    scenes = fetch_scenes([p[2] for p in free], retry=retry, **store_options) + fetch_scenes(
        [p[2] for p in paying], retry=retry, **{**store_options, "requester_pays": True}
    )
    out: dict[str, dict[int, Scene]] = {}
    for (key, i, *_), scene in zip(pending, scenes, strict=True):
        info = assets[key]
        scene = dataclasses.replace(
            scene,
            label=f"item {item_id(items[i])} asset {key!r}",
            nodata=info.nodata if info.nodata is not None else scene.nodata,
        )
        out.setdefault(key, {})[i] = scene
    return out


def mask_facts(
    masks: Sequence[Mask], catalogue: Mapping[str, Sequence[BandInfo]], where: str
) -> dict[str, BandInfo]:
    """The band facts of each mask's asset (the band it reads), or a StacError naming the
    asset when `where` (the items, a stac-geoparquet file) has no such GeoTIFF asset or
    not that band."""
    infos: dict[str, BandInfo] = {}
    for m in masks:
        found = catalogue.get(m.asset)
        if found is None:
            raise StacError(f"mask asset {m.asset!r} is not a GeoTIFF asset of {where}; "
                            f"their assets: {sorted(catalogue)}")
        if m.band > len(found):
            raise StacError(f"Mask({m.asset!r}, band={m.band}): the asset has {len(found)} "
                            "band(s)")
        infos.setdefault(m.asset, found[m.band - 1])
    return infos


def mask_plans(
    masks: Sequence[Mask],
    items: Sequence[ItemDict],
    facts: Mapping[str, BandInfo],
    with_data: Sequence[int],
    grid: Any,
    options: Any,
    **store_options: Any,
) -> tuple[MaskPlan, ...]:
    """One plan per mask: the mask asset's scenes of `items` on the load's grid, read with
    nearest and a fill the rule rejects, and each item's mask scene. `with_data`: the
    items with a data scene, each of which needs the mask asset (StacItemError naming the
    first that lacks it). `options`: the load's (patch_url, use_proj, retry,
    warp_tolerance, loop, errors)."""
    retry = getattr(options, "retry", None)
    tables = {
        t.key: t for t in asset_tables(
            items, facts, patch_url=options.patch_url,
            use_proj=getattr(options, "use_proj", True), retry=retry, **store_options,
        )
    }
    plans = []
    for m in masks:
        table = tables[m.asset]
        dtype = facts[m.asset].dtype
        m.check_dtype(dtype, f"mask asset {m.asset!r}")
        scene_of_item = np.full(len(items), -1, dtype=np.int64)
        scene_of_item[np.asarray(table.items, dtype=np.int64)] = np.arange(len(table.scenes))
        lacking = [i for i in with_data if scene_of_item[i] < 0]
        if lacking:
            raise StacItemError(
                f"item {item_id(items[lacking[0]])} (and {len(lacking) - 1} more) has no "
                f"asset {m.asset!r} for its mask: drop such items or the mask"
            )
        plans.append(MaskPlan(m, build_spec(
            table.scenes, place(table.scenes, grid=grid), groups=(), method="first",
            nodata=m.read_fill(dtype), resampling="nearest", bands=[m.band], dtype=dtype,
            batch_size=None, warp_tolerance=options.warp_tolerance, loop=options.loop,
            errors=options.errors, retry=retry,
        ), scene_of_item))
    return tuple(plans)
