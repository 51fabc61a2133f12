"""Validity of scenes with no nodata value: every pixel of such a file is data, 0 included.

A uint16 COG with no nodata (file or metadata) holding real zeros (a block inside, the top
row and the right column at the image's edge, scattered pixels), mosaicked with
`daskcog.mosaic` (the read `daskcog.stack` and the STAC loads share: `read_scene`):
aligned, warped nearest (GDAL's warp, and the gather through a cached plan that a recurring
warp takes), warped bilinear; into float32 (NaN fill) and into uint16 (fill 0); one scene,
and two overlapping scenes with method "first" (a real 0 is a valid value: the other
scene must not replace it).

Reference: GDAL through rasterio. Values: `rasterio.warp.reproject` of the whole scene
with no nodata; validity: the destination alpha band GDAL writes in the same warp (an
independent way of asking which pixels GDAL writes). The grids are the scene's CRS shifted
by a fraction of a pixel: an affine mapping, so GDAL's approximate transformer is exact
and a chunked warp equals the whole-scene warp bit for bit.

Before the fix, every real 0 was read as the fill value and counted invalid: NaN in a float
output, and the other scene's value in a first-valid mosaic.
"""

from __future__ import annotations

from pathlib import Path

import dask.config
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.warp import reproject

import daskcog
from daskcog.mosaics.warp_plans import PLANS
from tests.stac.corpus.harness import write_cog

CRS = "EPSG:32633"
RES = 10.0
HEIGHT, WIDTH = 150, 170
LEFT, TOP = 500_000.0, 4_200_000.0
B_SHIFT = (600.0, -400.0)  # scene B: 60 columns east, 40 rows south of scene A
GRID_SHIFT = (3.7, -2.3)  # warped grids: a fraction of a pixel off the scenes' lattice


def _pixels(seed: int, zeros: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 5000, size=(1, HEIGHT, WIDTH), dtype=np.uint16)
    if zeros:
        data[0, 60:75, 80:100] = 0  # inside
        data[0, 0, :] = 0  # the image's top edge
        data[0, :, -1] = 0  # its right edge
        data[0, rng.integers(0, HEIGHT, 60), rng.integers(0, WIDTH, 60)] = 0
    return data


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("validity")
    out = {}
    for name, (dx, dy), seed, zeros in (
        ("a", (0.0, 0.0), 1, True), ("b", B_SHIFT, 2, False)
    ):
        transform = Affine(RES, 0, LEFT + dx, 0, -RES, TOP + dy)
        out[name] = folder / f"{name}.tif"
        write_cog(out[name], _pixels(seed, zeros), CRS, transform, None)
        with rasterio.open(out[name]) as src:
            if name == "a":
                assert src.nodata is None and (src.read() == 0).sum() > 500
    return out


def _gdal(path: Path, transform: Affine, shape: tuple[int, int], resampling: str):
    """GDAL's warp of the whole scene onto the grid: (values, written) with no nodata."""
    with rasterio.open(path) as src:
        data = src.read()
        src_transform = src.transform
    out = np.zeros((2, *shape), dtype=data.dtype)  # band 2: GDAL's destination alpha
    reproject(
        data, out[:1], src_transform=src_transform, src_crs=CRS, dst_transform=transform,
        dst_crs=CRS, resampling=Resampling[resampling],
    )
    alpha = np.zeros((2, *shape), dtype=data.dtype)
    reproject(
        data, alpha, src_transform=src_transform, src_crs=CRS, dst_transform=transform,
        dst_crs=CRS, resampling=Resampling[resampling], dst_alpha=2,
    )
    return out[0], alpha[1] > 0


def _expected(layers, fill, dtype):
    out = np.full(layers[0][0].shape, fill, dtype=dtype)
    done = np.zeros(out.shape, dtype=bool)
    for values, valid in layers:  # first valid wins
        take = valid & ~done
        out[take] = values[take]
        done |= valid
    return out


CASES = ["aligned", "nearest-gdal", "nearest-plan", "bilinear"]


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "uint16"])
@pytest.mark.parametrize("case", CASES)
def test_real_zeros_stay_valid(scenes: dict[str, Path], case: str, dtype: str, count: int):
    paths = [scenes["a"], scenes["b"]][:count]
    nodata = np.nan if dtype == "float32" else None
    resampling = "bilinear" if case == "bilinear" else "nearest"
    shift = (0.0, 0.0) if case == "aligned" else GRID_SHIFT
    bounds = (
        LEFT + shift[0] - 50, TOP + B_SHIFT[1] - HEIGHT * RES + shift[1] - 50,
        LEFT + B_SHIFT[0] + WIDTH * RES + shift[0] + 50, TOP + shift[1] + 50,
    )
    width = round((bounds[2] - bounds[0]) / RES)
    height = round((bounds[3] - bounds[1]) / RES)
    bounds = (bounds[0], bounds[3] - height * RES, bounds[0] + width * RES, bounds[3])
    plan_bytes = 0 if case == "nearest-gdal" else 2**27
    with dask.config.set({"daskcog.warp-plan-bytes": plan_bytes, "scheduler": "sync"}):
        mos = daskcog.mosaic(
            paths, crs=CRS, resolution=RES, bounds=bounds, method="first", nodata=nodata,
            dtype=dtype, resampling=resampling, chunks=64,
        )
        assert mos.transform == Affine(RES, 0, bounds[0], 0, -RES, bounds[3])
        PLANS.clear()
        got = mos.compute().values[0]
        if case == "nearest-plan":  # a recurring warp: the second load gathers through plans
            made = PLANS.info()["made"]
            got = mos.compute().values[0]
            assert PLANS.info()["hits"] + PLANS.info()["made"] - made > 0
        elif case == "nearest-gdal":
            assert PLANS.info()["made"] == 0
    layers = [_gdal(p, mos.transform, (height, width), resampling) for p in paths]
    fill = np.nan if dtype == "float32" else 0
    expected = _expected(layers, fill, dtype)
    a_values, a_valid = layers[0]
    zeros = a_valid & (a_values == 0)
    assert zeros.sum() > 300  # real zeros inside the grid, at the image's edges too
    assert np.isnan(expected).any() if dtype == "float32" else True
    np.testing.assert_array_equal(got, expected)
    assert (got[zeros] == 0).all()  # never NaN, never the other scene's value


def test_float_output_equals_rasterio_read(scenes: dict[str, Path]) -> None:
    """The plainest case: one aligned scene into float is the file's pixels, zeros kept."""
    with rasterio.open(scenes["a"]) as src:
        want = src.read(1).astype("float32")
    mos = daskcog.mosaic([scenes["a"]], dtype="float32", nodata=np.nan, chunks=64)
    got = mos.compute().values[0]
    np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def masked_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scene a's pixels (real zeros) with an internal mask and no nodata."""
    path = tmp_path_factory.mktemp("validity-mask") / "masked.tif"
    mask = np.full((HEIGHT, WIDTH), 255, dtype=np.uint8)
    mask[20:50, 30:110] = 0  # a masked block crossing tiles
    mask[np.add.outer(np.arange(HEIGHT), np.arange(WIDTH)) < 40] = 0  # a masked corner
    profile = {
        "driver": "GTiff", "width": WIDTH, "height": HEIGHT, "count": 1, "dtype": "uint16",
        "crs": CRS, "transform": Affine(RES, 0, LEFT, 0, -RES, TOP), "tiled": True,
        "blockxsize": 64, "blockysize": 64, "compress": "deflate",
    }
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(_pixels(1, True))
        dst.write_mask(mask)
    return path


@pytest.mark.parametrize("case", CASES)
def test_internal_mask_without_nodata(masked_scene: Path, case: str) -> None:
    """A file with an internal mask and no nodata: its masked pixels are invalid, its real
    zeros valid. Reference: GDAL's warp of the file (the mask band as source validity)
    with a destination alpha band (gdalwarp -dstalpha): values not blended at the mask's
    rim, validity where GDAL writes."""
    resampling = "bilinear" if case == "bilinear" else "nearest"
    shift = (0.0, 0.0) if case == "aligned" else GRID_SHIFT
    width, height = WIDTH + 10, HEIGHT + 10
    left, top = LEFT + shift[0] - 50, TOP + shift[1] + 50
    bounds = (left, top - height * RES, left + width * RES, top)
    plan_bytes = 0 if case == "nearest-gdal" else 2**27
    with dask.config.set({"daskcog.warp-plan-bytes": plan_bytes, "scheduler": "sync"}):
        mos = daskcog.mosaic(
            [masked_scene], crs=CRS, resolution=RES, bounds=bounds, dtype="float32",
            nodata=np.nan, resampling=resampling, chunks=64,
        )
        PLANS.clear()
        got = mos.compute().values[0]
        if case == "nearest-plan":
            got = mos.compute().values[0]
            assert PLANS.info()["made"] + PLANS.info()["hits"] > 0
    out = np.zeros((2, height, width), dtype=np.uint16)
    with rasterio.open(masked_scene) as src:
        assert src.nodata is None and src.mask_flag_enums[0] == [MaskFlags.per_dataset]
        reproject(
            rasterio.band(src, 1), out, dst_transform=mos.transform, dst_crs=CRS,
            resampling=Resampling[resampling], dst_alpha=2,
        )
    expected = np.where(out[1] > 0, out[0], np.nan).astype("float32")
    assert ((expected == 0).sum()) > 300 and np.isnan(expected).sum() > 2000
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("path", ["gdal", "plan"])
def test_reprojected_two_scenes_keep_zeros(scenes: dict[str, Path], path: str) -> None:
    """Both scenes onto the neighbouring UTM zone (a real reprojection), nearest, exact
    transformer: equal to GDAL's whole-scene warps (WarpedVRT with an alpha band), first
    valid wins; scene a's real zeros stay zeros where scene b overlaps them."""
    from rasterio.vrt import WarpedVRT

    paths = [scenes["a"], scenes["b"]]
    with dask.config.set({"daskcog.warp-plan-bytes": 0 if path == "gdal" else 2**27}):
        mos = daskcog.mosaic(
            paths, crs="EPSG:32634", resolution=RES, method="first", nodata=np.nan,
            dtype="float32", warp_tolerance=0, chunks=64,
        )
        PLANS.clear()
        got = mos.compute().values[0]
        if path == "plan":
            got = mos.compute().values[0]
            assert PLANS.info()["made"] + PLANS.info()["hits"] > 0
        else:
            assert PLANS.info()["made"] == 0
    layers = []
    for p in paths:
        with (
            rasterio.open(p) as src,
            WarpedVRT(
                src, crs="EPSG:32634", transform=mos.transform, width=mos.width,
                height=mos.height, tolerance=1e-9, add_alpha=True,
            ) as vrt,
        ):
            values, alpha = vrt.read()
        layers.append((values, alpha > 0))
    expected = _expected(layers, np.nan, "float32")
    a_zero = layers[0][1] & (layers[0][0] == 0)
    assert (a_zero & layers[1][1]).sum() > 50  # zeros of a under b
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("case", CASES)
def test_float_file_without_nodata_nan_is_missing(tmp_path: Path, case: str) -> None:
    """A float32 file with no nodata: its real zeros are data, its NaN pixels are not (odc-stac's
    rule for float pixels, `nodata_mask`): the next scene fills them in a first-valid mosaic.
    Before the fix the zeros were lost under the mosaic's default fill 0."""
    a = _pixels(1, True).astype("float32")
    a[0, 100:120, 20:60] = np.nan
    paths = []
    for name, data, (dx, dy) in (("a", a, (0.0, 0.0)), ("b", _pixels(2, False), (0.0, 0.0))):
        paths.append(tmp_path / f"{name}.tif")
        transform = Affine(RES, 0, LEFT + dx, 0, -RES, TOP + dy)
        write_cog(paths[-1], data.astype("float32"), CRS, transform, None)
    shift = (0.0, 0.0) if case == "aligned" else GRID_SHIFT
    resampling = "bilinear" if case == "bilinear" else "nearest"
    left, top = LEFT + shift[0], TOP + shift[1]
    bounds = (left, top - HEIGHT * RES, left + WIDTH * RES, top)
    with dask.config.set({"daskcog.warp-plan-bytes": 0 if case == "nearest-gdal" else 2**27}):
        mos = daskcog.mosaic(
            paths, crs=CRS, resolution=RES, bounds=bounds, method="first",
            resampling=resampling, chunks=64,
        )
        assert mos.nodata == 0 and mos.dtype == np.float32
        PLANS.clear()
        got = mos.compute().values[0]
        if case == "nearest-plan":
            got = mos.compute().values[0]
    layers = []
    for p in paths:
        values, written = _gdal(p, mos.transform, (HEIGHT, WIDTH), resampling)
        layers.append((values, written & ~np.isnan(values)))
    expected = _expected(layers, 0, "float32")
    a_values, a_valid = layers[0]
    assert (a_valid & (a_values == 0)).sum() > 300 and (~a_valid & layers[1][1]).sum() > 500
    np.testing.assert_array_equal(got, expected)
