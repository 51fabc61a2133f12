"""A nodata value stated only by the catalogue (raster:bands), with the caller's own `nodata=`.

The files state no nodata; the items' raster:bands say 0. Item "a" has 0-valued pixels
inside and along two edges, item "b" overlaps it. With no `nodata=` the output's fill is the
catalogue's 0, and daskcog equals odc-stac (asserted below for nearest).

With `nodata=` (65535 into uint16, -9999 into float32) the caller asks for another fill
value, not for the catalogue's nodata to become data: a pixel the catalogue calls nodata is
missing, so it takes the fill, or the next item's value in a first-valid mosaic. That is
the load without `nodata=` with its fill replaced, which is what is asserted, in both output
dtypes, aligned, warped (nearest through GDAL and through a cached plan) and bilinear.

Deliberate difference from odc-stac: odc-stac lets `nodata=` replace the catalogue's nodata
as the source's nodata, so the 0 pixels become data (into uint16 and float32 alike) and a
scene's 0-valued border would cover the next scene's pixels. daskcog used to do that into
uint16 only, and into float32 took them as missing: the two dtypes disagreed.

The same for float32 files stating no nodata whose catalogue says -9999, with NaN pixels
too: a NaN pixel is never a value (odc-stac's rule, which daskcog applied only to files with
no nodata at all; with -9999 as the fill a NaN pixel used to stay NaN where odc-stac fills).
"""

from __future__ import annotations

import copy
import warnings

import dask.config
import numpy as np
import pytest
from affine import Affine

import daskcog
from daskcog.mosaics.warp_plans import PLANS
from tests.stac.corpus.harness import write_cog
from tests.stac.test_no_nodata import (
    B_SHIFT,
    EPSG,
    GRID_SHIFT,
    LEFT,
    RES,
    TOP,
    scene_item,
    scene_pixels,
    shifted_geobox,
)

pytest.importorskip("odc.stac")


def _items(folder, dtype: str, nodata: float) -> list[dict]:  # type: ignore[no-untyped-def]
    out = []
    for name, (dx, dy), seed, zeros in (("a", (0.0, 0.0), 3, True), ("b", B_SHIFT, 4, False)):
        transform = Affine(RES, 0, LEFT + dx, 0, -RES, TOP + dy)
        path = folder / f"{name}.tif"
        pixels = scene_pixels(seed, zeros).astype(dtype)
        pixels[pixels == 0] = nodata
        if dtype == "float32":
            pixels[0, 5:8, 5:30] = np.nan
        write_cog(path, pixels, f"EPSG:{EPSG}", transform, None)
        item = scene_item(name, path, transform)
        item["assets"]["b1"]["raster:bands"] = [{"data_type": dtype, "nodata": nodata}]
        out.append(item)
    return out


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return _items(tmp_path_factory.mktemp("metadata-nodata"), "uint16", 0)


@pytest.fixture(scope="module")
def float_items(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return _items(tmp_path_factory.mktemp("metadata-nodata-float"), "float32", -9999.0)


def _load(items: list[dict], case: str, dtype: str, nodata: float | None) -> np.ndarray:
    geobox = shifted_geobox((0.0, 0.0) if case == "aligned" else GRID_SHIFT)
    resampling = "bilinear" if case == "bilinear" else "nearest"
    plan_bytes = 0 if case == "nearest-gdal" else 2**27
    extra = {} if nodata is None else {"nodata": nodata}
    with dask.config.set({"daskcog.warp-plan-bytes": plan_bytes}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stack = daskcog.load(
            items, bands=["b1"], geobox=geobox, groupby="solar_day", dtype=dtype,
            resampling=resampling, chunks=48, **extra,
        )
        PLANS.clear()
        got = stack.to_dataset()["b1"].values[0]
        if case == "nearest-plan":
            got = stack.to_dataset()["b1"].values[0]
            assert PLANS.info()["made"] + PLANS.info()["hits"] > 0
    return got


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("case", ["aligned", "nearest-gdal", "nearest-plan"])
def test_without_nodata_equals_odc_stac(
    items: list[dict], float_items: list[dict], case: str, dtype: str
) -> None:
    import pystac
    from odc.stac import load

    if dtype == "float32":
        items = float_items

    geobox = shifted_geobox((0.0, 0.0) if case == "aligned" else GRID_SHIFT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = load(
            [pystac.Item.from_dict(copy.deepcopy(i)) for i in items], bands=["b1"],
            geobox=geobox, groupby="solar_day", dtype=dtype, resampling="nearest",
        )["b1"].values[0]
    got = _load(items, case, dtype, None)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize(("dtype", "fill"), [("uint16", 65535), ("float32", -9999.0)])
@pytest.mark.parametrize("case", ["aligned", "nearest-gdal", "nearest-plan", "bilinear"])
def test_catalogue_nodata_stays_missing_with_another_fill(
    items: list[dict], case: str, dtype: str, fill: float, count: int
) -> None:
    chosen = items[:count]
    plain = _load(chosen, case, dtype, None)  # fill 0: the catalogue's nodata
    got = _load(chosen, case, dtype, fill)
    missing = plain == 0
    assert missing.sum() > 200  # item a's 0 pixels and the grid's margin
    np.testing.assert_array_equal(got[~missing], plain[~missing])
    assert (got[missing] == np.array(fill, dtype=dtype)).all()
    assert not (got == 0).any()


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("fill", [float("nan"), -1.0])
@pytest.mark.parametrize("case", ["aligned", "nearest-gdal", "nearest-plan", "bilinear"])
def test_float_catalogue_nodata_and_nan_stay_missing(
    float_items: list[dict], case: str, fill: float, count: int
) -> None:
    chosen = float_items[:count]
    plain = _load(chosen, case, "float32", None)  # fill -9999: the catalogue's nodata
    got = _load(chosen, case, "float32", fill)
    missing = plain == -9999
    assert missing.sum() > 200 and not np.isnan(plain).any()
    np.testing.assert_array_equal(got[~missing], plain[~missing])
    np.testing.assert_array_equal(got[missing], np.float32(fill))
    assert not (got == -9999).any()
