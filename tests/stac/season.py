"""A season of generated Sentinel-2-like and Landsat-like items over one area, for the
composite tests and benchmarks/bench_composite.py (no network: COGs written locally).

Sentinel-2-like (`s2_season`): per date one scene on a 10 m UTM grid, shifted by a few
pixels from date to date (so scenes reach parts of chunks), with
* "B02", "B03", "B04": uint16 reflectance, nodata 0 (a nodata hole per scene),
  eo:bands common names blue / green / red, raster:bands data_type / nodata;
* "SCL": uint8 scene classification at 20 m (origin on the 10 m grid's even pixels, so a
  nearest read onto the 10 m grid repeats each SCL pixel 2 x 2), classes as ESA's: 0 no
  data (a border), 3 cloud shadow, 4 vegetation, 5 bare soil, 6 water, 8 / 9 cloud medium /
  high, 10 cirrus; clouds as random blobs, their shadows beside them.
Landsat-like (`landsat_season`): "red", "nir" uint16 at 30 m and "qa_pixel" uint16 bit flags
(bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud shadow, 6 clear).

`read_reference` gives what a composite must equal: each item's asset read with rasterio and
placed on the load's grid (nearest for the quality band), as float64 with NaN where invalid.
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

CRS = "EPSG:32633"
X0, Y0 = 500_000.0, 5_000_000.0
SCL_DROP = (0, 1, 3, 8, 9, 10)
QA_BITS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Asset:
    key: str
    dtype: str
    res: float
    nodata: int | None
    common: str | None = None


S2_ASSETS = (
    Asset("B02", "uint16", 10.0, 0, "blue"),
    Asset("B03", "uint16", 10.0, 0, "green"),
    Asset("B04", "uint16", 10.0, 0, "red"),
    Asset("SCL", "uint8", 20.0, 0),
)
LANDSAT_ASSETS = (
    Asset("red", "uint16", 30.0, 0, "red"),
    Asset("nir", "uint16", 30.0, 0, "nir08"),
    Asset("qa_pixel", "uint16", 30.0, 1),
)


def _write(path: Path, data: np.ndarray, transform: Affine, nodata: int | None,
           tile: int) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype, "crs": CRS, "transform": transform, "nodata": nodata}
    tmp = path.with_suffix(".tmp.tif")
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data[None])
        with memfile.open() as src:
            rasterio.shutil.copy(src, tmp, driver="GTiff", tiled=True, blockxsize=tile,
                                 blockysize=tile, compress="deflate")
    tmp.rename(path)


def _blobs(rng: np.random.Generator, shape: tuple[int, int], count: int, radius: float
           ) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    out = np.zeros(shape, dtype=bool)
    for _ in range(count):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        r = rng.uniform(0.3, 1.0) * radius
        out |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    return out


def _reflectance(rng: np.random.Generator, shape: tuple[int, int], band: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    field = (np.sin(xx / (23 + 5 * band)) + np.cos(yy / (17 + 3 * band))) * 1500 + 3000
    noise = rng.integers(0, 400, size=shape)
    return np.clip(field + noise, 1, 10_000).astype(np.uint16)


def _footprint_ll(transform: Affine, width: int, height: int) -> list[float]:
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    left, top = transform.c, transform.f
    right, bottom = left + transform.a * width, top + transform.e * height
    return list(to_ll.transform_bounds(left, bottom, right, top))


def _item(name: str, when: dt.datetime, assets: dict[str, dict], bbox: list[float]) -> dict:
    west, south, east, north = bbox
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
        "id": name, "bbox": bbox,
        "geometry": {"type": "Polygon", "coordinates": [[[west, south], [east, south],
                                                         [east, north], [west, north],
                                                         [west, south]]]},
        "properties": {"datetime": when.isoformat() + "Z"},
        "assets": assets, "links": [],
    }


def _asset_dict(spec: Asset, href: str, transform: Affine, shape: tuple[int, int]) -> dict:
    raster = {"data_type": spec.dtype}
    if spec.nodata is not None:
        raster["nodata"] = spec.nodata
    out = {
        "href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data"], "raster:bands": [raster], "proj:code": CRS,
        "proj:transform": [transform.a, transform.b, transform.c, transform.d, transform.e,
                           transform.f],
        "proj:shape": list(shape),
    }
    if spec.common:
        out["eo:bands"] = [{"name": spec.key, "common_name": spec.common}]
    return out


def s2_season(folder: Path, dates: int = 6, size: int = 200, *, tile: int = 64,
              seed: int = 0, start: dt.datetime = dt.datetime(2024, 5, 1, 10, 0),
              days: int = 5) -> list[dict]:
    """`dates` Sentinel-2-like items (one scene each, `size` x `size` px at 10 m, `days`
    apart), COGs under `folder`; returns the item dicts (hrefs are local paths)."""
    items = []
    for d in range(dates):
        rng = np.random.default_rng(seed * 1000 + d)
        # an even shift of up to 6 % of the scene: the 20 m grid stays on even pixels
        dx, dy = (int(v) * 2 for v in rng.integers(0, max(1, size // 32), 2))
        t10 = Affine(10.0, 0, X0 + dx * 10.0, 0, -10.0, Y0 - dy * 10.0)
        t20 = Affine(20.0, 0, t10.c, 0, -20.0, t10.f)
        half = size // 2
        clouds = _blobs(rng, (half, half), count=3, radius=half / 5)
        shadow = np.roll(_blobs(rng, (half, half), 2, half / 8) | clouds, (3, 4), (0, 1))
        scl = rng.choice(np.array([4, 5, 6], np.uint8), size=(half, half), p=[0.6, 0.3, 0.1])
        scl[shadow] = 3
        scl[clouds] = rng.choice(np.array([8, 9, 10], np.uint8), size=int(clouds.sum()))
        scl[:, : rng.integers(0, 4)] = 0  # a no-data border, like a swath edge
        name = f"S2_{d:02d}"
        assets = {}
        for b, spec in enumerate(S2_ASSETS):
            path = folder / name / f"{spec.key}.tif"
            if spec.key == "SCL":
                _write(path, scl, t20, spec.nodata, tile)
                assets[spec.key] = _asset_dict(spec, str(path), t20, (half, half))
                continue
            data = _reflectance(rng, (size, size), b)
            hole = _blobs(rng, (size, size), 1, size / 12)
            data[hole] = 0
            _write(path, data, t10, spec.nodata, tile)
            assets[spec.key] = _asset_dict(spec, str(path), t10, (size, size))
        items.append(_item(name, start + dt.timedelta(days=days * d), assets,
                           _footprint_ll(t10, size, size)))
    return items


def landsat_season(folder: Path, dates: int = 5, size: int = 120, *, seed: int = 1,
                   start: dt.datetime = dt.datetime(2024, 6, 2, 9, 50)) -> list[dict]:
    """`dates` Landsat-like items (30 m, "red", "nir", "qa_pixel" bit flags)."""
    items = []
    for d in range(dates):
        rng = np.random.default_rng(seed * 1000 + d)
        dx, dy = (int(v) for v in rng.integers(0, max(1, size // 16), 2))
        t30 = Affine(30.0, 0, X0 + dx * 30.0, 0, -30.0, Y0 - dy * 30.0)
        qa = np.full((size, size), 1 << 6, dtype=np.uint16)  # clear
        clouds = _blobs(rng, (size, size), 3, size / 6)
        qa[clouds] = (1 << 3) | (1 << 1)
        qa[np.roll(clouds, (4, 2), (0, 1)) & ~clouds] = 1 << 4
        qa[_blobs(rng, (size, size), 2, size / 10)] |= 1 << 2
        qa[rng.random((size, size)) < 0.02] |= 1 << 8  # a bit no mask names
        qa[: rng.integers(0, 3), :] = 1  # fill rows
        name = f"LC_{d:02d}"
        assets = {}
        for b, spec in enumerate(LANDSAT_ASSETS):
            path = folder / name / f"{spec.key}.tif"
            data = qa if spec.key == "qa_pixel" else _reflectance(rng, (size, size), b)
            if spec.key != "qa_pixel":
                data[qa == 1] = 0
            _write(path, data, t30, spec.nodata, 64)
            assets[spec.key] = _asset_dict(spec, str(path), t30, (size, size))
        items.append(_item(name, start + dt.timedelta(days=8 * d), assets,
                           _footprint_ll(t30, size, size)))
    return items


def read_on_grid(href: str, transform: tuple[float, ...], shape: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A file's band 1 on a north-up grid of the same CRS whose resolution divides the
    file's (nearest: each file pixel repeated), as (values, inside-the-file mask), read with
    rasterio. Grid and file pixel edges must coincide."""
    with rasterio.open(href) as src:
        data = src.read(1)
        ft = src.transform
    res = transform[0]
    k = int(round(ft.a / res))
    data = np.repeat(np.repeat(data, k, axis=0), k, axis=1)
    col = int(round((ft.c - transform[2]) / res))
    row = int(round((transform[5] - ft.f) / res))
    out = np.zeros(shape, dtype=data.dtype)
    inside = np.zeros(shape, dtype=bool)
    r0, c0 = max(row, 0), max(col, 0)
    r1 = min(shape[0], row + data.shape[0])
    c1 = min(shape[1], col + data.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = data[r0 - row : r1 - row, c0 - col : c1 - col]
        inside[r0:r1, c0:c1] = True
    return out, inside
