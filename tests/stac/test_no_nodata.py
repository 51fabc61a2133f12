"""STAC loads of integer assets with no nodata (neither the file nor the metadata states one)
against odc-stac: real zeros are data.

Two uint16 COGs (the first with real zeros inside and along its top and right edges, the
second overlapping it) as two items of one day, loaded with `daskcog.load` and
`odc.stac.load` on one geobox: the scenes' own lattice (aligned reads) or shifted by a
fraction of a pixel (warped: nearest through GDAL's warp and through a cached plan,
bilinear), into float32 (NaN where no item reaches) and into uint16.

odc-stac reads such a file with no source nodata, so a real 0 is a value: into float it
stays 0, never NaN, and a later item never replaces it. daskcog matches that. One
deliberate difference, asserted below: into uint16 with no nodata, odc-stac fuses the items
by "the first item's pixel is 0, take the next item's" (its fuser has no other marker of
a missing pixel), so where the first item has a real 0 and the second covers it, odc-stac
returns the second item's value; daskcog keeps the first item's 0, as the files say
(GDAL's reading: no nodata, every pixel valid), and as its float output does.
Bilinear: odc-stac warps straight into float32, daskcog in the file's dtype and then
converts (GDAL rounds to uint16): equal within 0.5.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import dask.config
import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

import daskcog
from daskcog.mosaics.warp_plans import PLANS
from tests.stac.corpus.harness import write_cog

pytest.importorskip("odc.stac")

EPSG = 32633
RES = 10.0
HEIGHT, WIDTH = 120, 140
LEFT, TOP = 500_000.0, 4_200_000.0
B_SHIFT = (500.0, -300.0)
GRID_SHIFT = (3.7, -2.3)


def scene_pixels(seed: int, zeros: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 5000, size=(1, HEIGHT, WIDTH), dtype=np.uint16)
    if zeros:
        data[0, 50:60, 70:90] = 0
        data[0, 0, :] = 0
        data[0, :, -1] = 0
        data[0, rng.integers(0, HEIGHT, 40), rng.integers(0, WIDTH, 40)] = 0
    return data


def scene_item(name: str, path: Path, transform: Affine) -> dict:
    left, top = transform.c, transform.f
    right, bottom = left + WIDTH * RES, top - HEIGHT * RES
    to_ll = Transformer.from_crs(EPSG, 4326, always_xy=True)
    corners = [to_ll.transform(x, y) for x, y in
               ((left, bottom), (right, bottom), (right, top), (left, top))]
    lons, lats = zip(*corners, strict=True)
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "id": name,
        "geometry": {"type": "Polygon", "coordinates": [[*map(list, corners), list(corners[0])]]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {"datetime": "2024-05-01T10:00:00Z", "proj:epsg": EPSG},
        "links": [],
        "assets": {
            "b1": {
                "href": str(path),
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "proj:shape": [HEIGHT, WIDTH],
                "proj:transform": list(transform)[:6],
                "raster:bands": [{"data_type": "uint16"}],  # no nodata stated
            }
        },
    }


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    folder = tmp_path_factory.mktemp("no-nodata")
    out = []
    for name, (dx, dy), seed, zeros in (("a", (0.0, 0.0), 3, True), ("b", B_SHIFT, 4, False)):
        transform = Affine(RES, 0, LEFT + dx, 0, -RES, TOP + dy)
        path = folder / f"{name}.tif"
        write_cog(path, scene_pixels(seed, zeros), f"EPSG:{EPSG}", transform, None)
        with rasterio.open(path) as src:
            assert src.nodata is None
        out.append(scene_item(name, path, transform))
    return out


def shifted_geobox(shift: tuple[float, float]):
    from odc.geo.geobox import GeoBox

    left = LEFT - 60 + shift[0]
    top = TOP + 60 + shift[1]
    width = round((B_SHIFT[0] + WIDTH * RES + 120) / RES)
    height = round((-B_SHIFT[1] + HEIGHT * RES + 120) / RES)
    return GeoBox((height, width), Affine(RES, 0, left, 0, -RES, top), f"EPSG:{EPSG}")


def _odc(items: list[dict], geobox, dtype: str, resampling: str) -> np.ndarray:
    import pystac
    from odc.stac import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load(
            [pystac.Item.from_dict(copy.deepcopy(i)) for i in items], bands=["b1"],
            geobox=geobox, groupby="solar_day", dtype=dtype, resampling=resampling,
        )
        return ds["b1"].values[0]


def _ours(items: list[dict], geobox, dtype: str, resampling: str, case: str) -> np.ndarray:
    plan_bytes = 0 if case == "nearest-gdal" else 2**27
    with dask.config.set({"daskcog.warp-plan-bytes": plan_bytes}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stack = daskcog.load(
            items, bands=["b1"], geobox=geobox, groupby="solar_day", dtype=dtype,
            resampling=resampling, chunks=48,
        )
        PLANS.clear()
        got = stack.to_dataset()["b1"].values[0]
        if case == "nearest-plan":  # the second load of the same warps gathers through plans
            got = stack.to_dataset()["b1"].values[0]
            assert PLANS.info()["made"] + PLANS.info()["hits"] > 0
        elif case == "nearest-gdal":
            assert PLANS.info()["made"] == 0
    return got


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "uint16"])
@pytest.mark.parametrize("case", ["aligned", "nearest-gdal", "nearest-plan", "bilinear"])
def test_no_nodata_equals_odc_stac(items: list[dict], case: str, dtype: str, count: int):
    chosen = items[:count]
    geobox = shifted_geobox((0.0, 0.0) if case == "aligned" else GRID_SHIFT)
    resampling = "bilinear" if case == "bilinear" else "nearest"
    got = _ours(chosen, geobox, dtype, resampling, case)
    want = _odc(chosen, geobox, dtype, resampling)
    a_zero = _ours(chosen[:1], geobox, "float32", resampling, "aligned") == 0  # a's real 0s
    if dtype == "float32":
        assert a_zero.sum() > 200  # item a's real zeros are in the output
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        if resampling == "nearest":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, atol=0.5, equal_nan=True)
        assert (got[a_zero] == 0).all()
        return
    # uint16: equal to odc-stac except where item a has a real 0 that odc-stac's fuser
    # replaces with item b's value (see the module's docstring)
    differ = got != want
    replaced = a_zero & (want != 0)
    if count == 1 or resampling == "nearest":
        np.testing.assert_array_equal(differ, replaced)
    else:
        assert np.abs(got.astype(float) - want)[~replaced].max() <= 1
    assert replaced.any() == (count == 2)
    assert (got[a_zero] == 0).all()
