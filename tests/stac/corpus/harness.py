"""Real STAC items, each asset replaced by a small local COG that matches the item's metadata.

The item JSON under `items/` is kept exactly as published (see ORIGINS.md). A test
materialises one: for each asset it loads, the grid is shrunk by one integer factor per
item (the `proj:transform` origin is kept, the resolution multiplied by the factor and
`proj:shape` divided by it, rounded up), the item's metadata is rewritten to say so, and a
tiled, DEFLATE COG is written with the CRS, data type, band count and nodata the metadata
states. Where the metadata states no nodata but the real files have one (MODIS -3000,
DEA ARD -999, lidar -9999), the case gives the file's value and the file carries it,
while the metadata still says nothing: that is the situation users meet.

`compare` loads the same items with `daskcog.load` and `odc.stac.load` given the same
keywords and checks what a user would: variable names, dims, coordinates, dtypes, the
nodata attribute, the CRS and every pixel.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import CRS
from rasterio.io import MemoryFile

ITEMS = Path(__file__).parent / "items"
TILE = 16


def raw_item(name: str) -> dict[str, Any]:
    """The stored item JSON (`items/<name>.json`), unchanged."""
    return json.loads((ITEMS / f"{name}.json").read_text())


@dataclass(frozen=True)
class Case:
    """One comparison: an item (or several), which assets to write, the load keywords."""

    id: str
    items: tuple[str, ...]
    assets: tuple[str, ...]
    load: Mapping[str, Any] = field(default_factory=dict)
    file_nodata: Mapping[str, float] = field(default_factory=dict)
    """Nodata written into the file of an asset whose metadata states none."""
    dtype: Mapping[str, str] = field(default_factory=dict)
    """Data type of an asset whose metadata states none (the real files' type)."""
    target: int = 40
    """Longest side, in pixels, of the finest asset after shrinking."""
    shift: Mapping[int, tuple[float, float]] = field(default_factory=dict)
    """By position in `items`: (dx, dy) added to the grid origin (in CRS units) - a copy of a
    real item moved (its id gets the position as a suffix, its files their own folder)."""
    exercises: str = ""


# -- metadata -----------------------------------------------------------------------------
def _get(asset: Mapping[str, Any], props: Mapping[str, Any], name: str) -> Any:
    return asset[name] if name in asset else props.get(name)


def crs_of(asset: Mapping[str, Any], props: Mapping[str, Any]) -> CRS:
    for name in ("proj:code", "proj:epsg", "proj:wkt2", "proj:projjson"):
        value = _get(asset, props, name)
        if value in (None, ""):
            continue
        if name == "proj:epsg":
            return CRS.from_epsg(int(value))
        return CRS.from_user_input(value)
    raise ValueError("no CRS in the metadata")


def grid_of(asset: Mapping[str, Any], props: Mapping[str, Any]) -> tuple[Affine, int, int]:
    t = _get(asset, props, "proj:transform")
    h, w = _get(asset, props, "proj:shape")
    return Affine(*t[:6]), int(h), int(w)


def band_facts(
    item: Mapping[str, Any], key: str, case: Case
) -> tuple[int, str, float | None, float | None]:
    """(band count, dtype, nodata the metadata states, nodata to write in the file)."""
    asset = item["assets"][key]
    props = item["properties"]
    raster = asset.get("raster:bands") or asset.get("bands") or []
    eo = asset.get("eo:bands")
    count = max(len(raster), len(eo) if isinstance(eo, list) else 0, 1)
    dtype = next((b["data_type"] for b in raster if b.get("data_type")), None)
    dtype = dtype or asset.get("data_type") or case.dtype.get(key) or props.get("data_type")
    if dtype is None:
        raise ValueError(f"case {case.id}: asset {key!r} states no data type; give one")
    stated = next((b["nodata"] for b in raster if b.get("nodata") is not None), None)
    stated = float(stated) if stated is not None else None
    written = stated if stated is not None else case.file_nodata.get(key)
    return count, str(dtype), stated, written


# -- pixels and files ---------------------------------------------------------------------
def pixels(count: int, height: int, width: int, dtype: str, nodata: float | None, seed: int):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    kind = np.dtype(dtype)
    if kind.kind == "f":
        data = np.stack([np.sin(xx / (3 + b) + seed) * 50 + yy for b in range(count)])
        data = data + rng.random(data.shape)
    else:
        info = np.iinfo(kind)
        hi = min(int(info.max), 200 if kind.itemsize == 1 else 9000)
        lo = max(int(info.min), 1)
        data = np.stack(
            [lo + (xx * (7 + b) + yy * 13 + seed) % (hi - lo) for b in range(count)]
        )
        data = data + rng.integers(0, 3, size=data.shape)
        data = np.clip(data, lo, hi)
    data = data.astype(dtype)
    if kind.kind in "iu" and nodata != 0:
        data[:, -1, :3] = 0  # real zeros, told apart from nodata where the nodata is not 0
    if nodata is not None:
        cy, cx, r = height // 3, width // 2, max(2, min(height, width) // 5)
        hole = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        data[:, hole] = nodata if not math.isnan(nodata) else np.nan
        data[:, :, :2] = nodata if not math.isnan(nodata) else np.nan  # a nodata edge too
    return data


def write_cog(path: Path, data: np.ndarray, crs: CRS, transform: Affine, nodata: float | None):
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
        "count": data.shape[0], "dtype": data.dtype, "crs": crs, "transform": transform,
        "nodata": nodata,
    }
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data)
        with memfile.open() as src:
            rasterio.shutil.copy(
                src, path, driver="GTiff", tiled=True, blockxsize=TILE, blockysize=TILE,
                compress="deflate",
            )


# -- materialise --------------------------------------------------------------------------
def _factor(item: Mapping[str, Any], keys: Sequence[str], target: int) -> int:
    """The shrink factor: about longest / target, dividing every asset's shape when it can
    (so 10 m, 20 m and 60 m assets keep one footprint, as in the real item)."""
    sizes = [n for key in keys for n in grid_of(item["assets"][key], item["properties"])[1:]]
    ideal = max(1, math.ceil(max(sizes) / target))
    common = math.gcd(*sizes)
    fitting = [d for d in range(ideal, min(common, 4 * ideal) + 1) if common % d == 0]
    return fitting[0] if fitting else ideal


def materialise(name: str, case: Case, folder: Path, seed: int = 0) -> dict[str, Any]:
    """The item with its `case.assets` written as small local COGs and its metadata rewritten."""
    raw = raw_item(name)
    item = copy.deepcopy(raw)
    props = item["properties"]
    k = _factor(item, case.assets, case.target)
    dx, dy = case.shift.get(seed, (0.0, 0.0))
    where_files = folder / (name if seed == 0 else f"{name}.{seed}")
    if seed:
        item["id"] = f"{item['id']}.{seed}"
    rewritten_item_level = False
    for j, key in enumerate(case.assets):
        asset = item["assets"][key]
        crs = crs_of(asset, props)
        t, h, w = grid_of(raw["assets"][key], raw["properties"])  # before any rewrite
        t = Affine(t.a * k, t.b, t.c + dx, t.d, t.e * k, t.f + dy)
        h, w = math.ceil(h / k), math.ceil(w / k)
        own = "proj:transform" in asset or "proj:shape" in asset
        where = asset if own else props
        if own or not rewritten_item_level:
            where["proj:transform"] = [t.a, t.b, t.c, t.d, t.e, t.f]
            where["proj:shape"] = [h, w]
            if "proj:bbox" in where:
                where["proj:bbox"] = [t.c, t.f + t.e * h, t.c + t.a * w, t.f]
            where.pop("proj:geometry", None)
            rewritten_item_level = rewritten_item_level or not own
        count, dtype, _, written = band_facts(item, key, case)
        data = pixels(count, h, w, dtype, written, seed * 100 + j)
        path = where_files / f"{key}.tif"
        if not path.exists():
            write_cog(path, data, crs, t, written)
        asset["href"] = path.as_uri()  # absolute: a self link must not re-root it
        if "tiff" not in str(asset.get("type", "")):  # a JP2 asset: the file written is a COG
            asset["type"] = "image/tiff; application=geotiff; profile=cloud-optimized"
    if dx or dy:
        _shift_footprint(item, case, k)
    if not any(link.get("rel") == "self" for link in item.get("links", ())):
        # relative hrefs of the assets not written resolve against it (pystac needs that)
        self_href = (folder / name / "item.json").as_uri()
        item.setdefault("links", []).append({"rel": "self", "href": self_href})
    return item


def _shift_footprint(item: dict[str, Any], case: Case, k: int) -> None:
    """A moved item's bbox / geometry from its (rewritten) grid, like a catalogue would."""
    from pyproj import Transformer

    key = case.assets[0]
    asset, props = item["assets"][key], item["properties"]
    t, h, w = grid_of(asset, props)
    to_ll = Transformer.from_crs(crs_of(asset, props), "EPSG:4326", always_xy=True)
    xs = [t.c + t.a * w * f for f in np.linspace(0, 1, 11)]
    ys = [t.f + t.e * h * f for f in np.linspace(0, 1, 11)]
    ring = [(x, ys[0]) for x in xs] + [(xs[-1], y) for y in ys] + [
        (x, ys[-1]) for x in xs[::-1]
    ] + [(xs[0], y) for y in ys[::-1]]
    lon, lat = to_ll.transform([p[0] for p in ring], [p[1] for p in ring])
    lon = [((v + 180) % 360) - 180 for v in lon]
    if max(lon) - min(lon) < 180:
        item["bbox"] = [min(lon), min(lat), max(lon), max(lat)]
        ring = [[v, la] for v, la in zip(lon, lat, strict=True)]
        item["geometry"] = {"type": "Polygon", "coordinates": [ring + ring[:1]]}
        return
    west = min(v for v in lon if v > 0)  # across the antimeridian: west > east, two parts
    east = max(v for v in lon if v < 0)
    item["bbox"] = [west, min(lat), east, max(lat)]
    east_part = [[v if v > 0 else 180.0, la] for v, la in zip(lon, lat, strict=True)]
    west_part = [[v if v < 0 else -180.0, la] for v, la in zip(lon, lat, strict=True)]
    item["geometry"] = {
        "type": "MultiPolygon",
        "coordinates": [[east_part + east_part[:1]], [west_part + west_part[:1]]],
    }


def materialise_case(case: Case, folder: Path) -> list[dict[str, Any]]:
    return [materialise(n, case, folder / case.id, seed=i) for i, n in enumerate(case.items)]


# -- the two loads ------------------------------------------------------------------------
def load_both(
    items: list[dict[str, Any]], load: Mapping[str, Any], *, pystac_items: bool = False
) -> tuple[Any, Any]:
    """(daskcog Dataset, odc-stac Dataset), both computed; daskcog is given the item dicts,
    or pystac Items (`pystac_items`), odc-stac always pystac Items."""
    import pystac
    from odc.stac import load as odc_load

    import daskcog

    given: Any = (
        [pystac.Item.from_dict(copy.deepcopy(it)) for it in items] if pystac_items else items
    )
    ours = daskcog.load(given, **load).to_dataset().compute()
    theirs = odc_load([pystac.Item.from_dict(copy.deepcopy(it)) for it in items], **load)
    return ours, theirs.compute()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def effective_nodata(var: Any) -> float | None:
    """The value that marks missing pixels: the `nodata` attribute, else NaN for floats
    (odc-stac leaves the attribute out on float outputs but fills them with NaN, the
    odc-loader rule), else None."""
    value = var.attrs.get("nodata")
    if value is not None:
        return float(value)
    return math.nan if var.dtype.kind == "f" else None


def differences(ours: Any, theirs: Any) -> list[str]:
    """What differs, in words (empty when the two loads agree)."""
    out: list[str] = []
    if list(ours.data_vars) != list(theirs.data_vars):
        return [f"bands {list(ours.data_vars)} != odc-stac {list(theirs.data_vars)}"]
    ref = theirs[list(theirs.data_vars)[0]]
    mine = ours[list(ours.data_vars)[0]]
    if mine.dims != ref.dims:
        out.append(f"dims {mine.dims} != odc-stac {ref.dims}")
    if mine.shape != ref.shape:
        return [*out, f"shape {mine.shape} != odc-stac {ref.shape}"]
    for ours_dim, ref_dim in zip(mine.dims, ref.dims, strict=True):
        a, b = ours[ours_dim].values, theirs[ref_dim].values
        if ref_dim == "time":
            if not np.array_equal(a, b):
                out.append(f"time {a} != odc-stac {b}")
            continue
        step = abs(float(b[1] - b[0])) if len(b) > 1 else 1.0
        worst = float(np.max(np.abs(a - b))) / step if len(b) else 0.0
        if worst > 1e-6:
            out.append(f"{ref_dim} coordinates differ by {worst:.3g} px")
    ours_crs = CRS.from_user_input(ours.odc.crs) if ours.odc.crs is not None else None
    if ours_crs is None or not ours_crs.equals(CRS.from_user_input(theirs.odc.crs)):
        out.append(f"crs {ours_crs} != odc-stac {theirs.odc.crs}")
    for name in theirs.data_vars:
        a, b = ours[name], theirs[name]
        if a.dtype != b.dtype:
            out.append(f"{name}: dtype {a.dtype} != odc-stac {b.dtype}")
        na, nb = effective_nodata(a), effective_nodata(b)
        if not _same(na, nb):
            out.append(f"{name}: nodata {na!r} != odc-stac {nb!r}")
        if not np.array_equal(a.values, b.values, equal_nan=b.dtype.kind == "f"):
            differ = ~((a.values == b.values) | (np.isnan(b.values) & np.isnan(a.values))
                       if b.dtype.kind == "f" else a.values == b.values)
            out.append(f"{name}: {int(differ.sum())} of {differ.size} pixels differ")
    return out


def gdal_reference(href: str, crs: Any, transform: Affine, shape: tuple[int, int],
                   fill: float) -> np.ndarray:
    """GDAL's warp (nearest) of band 1 of a file onto a grid: the reference where odc-stac is
    known to be wrong."""
    from rasterio.warp import Resampling, reproject

    with rasterio.open(href) as src:
        out = np.full(shape, fill, dtype=src.dtypes[0])
        reproject(
            rasterio.band(src, 1), out, dst_transform=transform, dst_crs=crs,
            dst_nodata=fill, resampling=Resampling.nearest,
        )
    return out
