"""A small STAC catalogue over generated COGs, for the daskcog.load tests.

Scenes: 160 x 160 px at 10 m, 64-px tiles, DEFLATE, overlapping, on three
dates (two on the same solar day, seconds apart), in two UTM zones (32633 and,
for the same ground east of 18 E, 32634). Each item has
* "B04" (red) and "B03" (green): uint16, nodata 0, raster:bands scale / offset,
* "visual": one 3-band uint8 asset (every band must load, not only the first),
* proj:* at asset level, at item level, or (for `without_proj` items) not at all.

Items are written as pystac Items with the projection, raster and eo
extensions; `write_files` writes the COGs once into a folder, `items_for` makes
items whose hrefs point wherever the files were put (HTTP server, S3, disk).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import Transformer
from rasterio.io import MemoryFile

SIZE = 160
RES = 10.0
TILE = 64
SCALE, OFFSET = 0.0001, -0.1
DATES = (
    dt.datetime(2024, 5, 1, 9, 30, 0),
    dt.datetime(2024, 5, 1, 9, 30, 5),
    dt.datetime(2024, 5, 3, 9, 30, 0),
)


@dataclass(frozen=True)
class SceneDef:
    name: str
    date: int
    crs: str
    transform: Affine
    with_proj: str
    """"asset", "item" or "none": where its proj:* fields are."""


def _zone_b_origin(x: float, y: float) -> tuple[float, float]:
    to_b = Transformer.from_crs("EPSG:32633", "EPSG:32634", always_xy=True)
    bx, by = to_b.transform(x, y)
    return round(bx / RES) * RES, round(by / RES) * RES


def scene_defs() -> list[SceneDef]:
    """Per date: three overlapping zone-33 scenes and one zone-34 scene east of them."""
    x0, y0 = 735_000.0, 5_000_000.0  # ~18 E, 45 N: the zone boundary
    out: list[SceneDef] = []
    for d in range(len(DATES)):
        shift = d * 20 * RES  # dates do not align with each other exactly
        for k, (dx, dy) in enumerate(((0, 0), (100, -40), (40, -100))):
            out.append(
                SceneDef(
                    f"d{d}-a{k}",
                    d,
                    "EPSG:32633",
                    Affine(RES, 0, x0 + shift + dx * RES, 0, -RES, y0 - dy * RES * -1),
                    "item" if k == 1 else "asset",
                    # one zone-33 scene of the last date has no proj:* at all
                )
                if not (d == 2 and k == 2)
                else SceneDef(
                    f"d{d}-a{k}", d, "EPSG:32633",
                    Affine(RES, 0, x0 + shift + dx * RES, 0, -RES, y0 + dy * RES), "none",
                )
            )
        bx, by = _zone_b_origin(x0 + 2_000 + shift, y0 + 500)
        out.append(
            SceneDef(f"d{d}-b0", d, "EPSG:32634", Affine(RES, 0, bx, 0, -RES, by), "asset")
        )
    return out


def pixels(defn: SceneDef, bands: int, dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    hi = 250 if dtype == "uint8" else 9000
    data = np.stack(
        [
            ((np.sin(xx / (7 + b) + seed) + np.cos(yy / (5 + b))) * hi / 5 + hi / 2)
            for b in range(bands)
        ]
    )
    data += rng.integers(0, 20, size=data.shape)
    data = np.clip(data, 1, hi).astype(dtype)
    # a nodata hole per scene, different place each time
    cy, cx = rng.integers(30, SIZE - 30, size=2)
    data[:, (yy - cy) ** 2 + (xx - cx) ** 2 < 18**2] = 0
    return data


def write_cog(
    path: Path, data: np.ndarray, crs: str, transform: Affine, nodata: float | None
) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff", "width": SIZE, "height": SIZE, "count": data.shape[0],
        "dtype": data.dtype, "crs": crs, "transform": transform, "nodata": nodata,
        "tiled": True, "blockxsize": TILE, "blockysize": TILE,
    }
    tmp = path.with_suffix(".tmp.tif")
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data)
        with memfile.open() as src:
            rasterio.shutil.copy(
                src, tmp, driver="GTiff", tiled=True, blockxsize=TILE, blockysize=TILE,
                compress="deflate",
            )
    tmp.rename(path)
    return path


def write_files(folder: Path) -> dict[str, Path]:
    """Every scene's assets as COGs below `folder` ("<scene>/<asset>.tif")."""
    files: dict[str, Path] = {}
    for i, defn in enumerate(scene_defs()):
        for j, (asset, bands, dtype, nodata) in enumerate(
            (("B04", 1, "uint16", 0), ("B03", 1, "uint16", 0), ("visual", 3, "uint8", None))
        ):
            rel = f"{defn.name}/{asset}.tif"
            files[rel] = write_cog(
                folder / rel,
                pixels(defn, bands, dtype, 100 * i + j),
                defn.crs,
                defn.transform,
                nodata,
            )
    return files


def _epsg(crs: str) -> int:
    return int(crs.split(":")[1])


def item_dict(defn: SceneDef, base_url: str, *, proj_override: dict | None = None) -> dict:
    """One STAC item (dict) for a scene; asset hrefs below `base_url`."""
    t = defn.transform
    proj = {
        "proj:code": defn.crs,
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "proj:shape": [SIZE, SIZE],
    }
    if proj_override:
        proj.update(proj_override)
    to_ll = Transformer.from_crs(defn.crs, "EPSG:4326", always_xy=True)
    west, south, east, north = to_ll.transform_bounds(t.c, t.f - SIZE * RES, t.c + SIZE * RES, t.f)
    props = {
        "datetime": DATES[defn.date].isoformat() + "Z",
        "platform": "sentinel-2a" if defn.date != 1 else "sentinel-2b",
        "eo:cloud_cover": float(10 * defn.date + len(defn.name)),
    }
    if defn.with_proj == "item":
        props.update(proj)
    assets = {}
    for key, common, dtype, nodata in (("B04", "red", "uint16", 0), ("B03", "green", "uint16", 0)):
        raster = {"data_type": dtype, "nodata": nodata, "scale": SCALE, "offset": OFFSET}
        assets[key] = {
            "href": f"{base_url}/{defn.name}/{key}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "eo:bands": [{"name": key, "common_name": common}],
            "raster:bands": [raster],
        }
    assets["visual"] = {
        "href": f"{base_url}/{defn.name}/visual.tif",
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["visual"],
        "eo:bands": [{"name": "vis-r"}, {"name": "vis-g"}, {"name": "vis-b"}],
        "raster:bands": [{"data_type": "uint8"}] * 3,
    }
    assets["thumbnail"] = {"href": f"{base_url}/{defn.name}/thumb.png", "type": "image/png",
                           "roles": ["thumbnail"]}
    if defn.with_proj == "asset":
        for key in ("B04", "B03", "visual"):
            assets[key].update(proj)
    extensions = [
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    ]
    if defn.with_proj != "none":
        extensions.insert(0, "https://stac-extensions.github.io/projection/v2.0.0/schema.json")
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": extensions,
        "id": defn.name,
        "bbox": [west, south, east, north],
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        "properties": props,
        "assets": assets,
        "links": [],
    }


def item_dicts(base_url: str, *, only_proj: bool = False) -> list[dict]:
    return [
        item_dict(d, base_url)
        for d in scene_defs()
        if not (only_proj and d.with_proj == "none")
    ]
