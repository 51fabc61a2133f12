"""daskcog.open: levels, bands, fill, lazy slicing with the right transform, dask and xarray ops,
errors.

The scheduler matrix (threaded, sync, processes) is in test_schedulers.py, the cluster in
test_cluster.py.
"""

from __future__ import annotations

import os
import shutil

import dask.array as da
import numpy as np
import pytest
from rasterio.windows import Window

import daskcog
from georeader import RasterioReader, geo
from georeader.errors import GeoreaderError, ObjectNotFoundError, WindowError
from tests.cogfactory import cached_tiff
from tests.daskcog.conftest import (
    GEN_SPECS,
    assert_equal_values,
    assert_same_grid,
    corrupt_tiles,
    real_path,
)


# -- overviews, bands, fill ------------------------------------------------------------------
@pytest.mark.parametrize("level", [0, 1, 2])
def test_every_overview_level(gen_paths, level) -> None:
    path = gen_paths["overviews-nan"]
    g = daskcog.open(path, overview_level=level, chunks=32)
    ref = RasterioReader(path, overview_level=level)
    assert_same_grid(g, ref)
    assert_equal_values(g.compute().values, ref.load().values)


@pytest.mark.parametrize(
    "resolution, level",
    [
        (5.0, 0),
        (10.0, 0),
        (15.0, 0),
        (20.0, 1),
        (25.0, 1),
        (40.0, 2),
        (1000.0, 2),
        ((20.0, 40.0), 1),
    ],
)
def test_overview_choice_by_resolution(gen_paths, resolution, level) -> None:
    path = gen_paths["overviews-nan"]  # 10 m, overviews 2 and 4 -> 20 m, 40 m
    g = daskcog.open(path, resolution=resolution, chunks=64)
    assert g.source.overview_level == level
    ref = RasterioReader(path, overview_level=level)
    assert_same_grid(g, ref)
    if level == 1:
        assert_equal_values(g.compute().values, ref.load().values)
    assert g.data.name == daskcog.open(path, overview_level=level, chunks=64).data.name


def test_overview_level_out_of_range(gen_paths) -> None:
    with pytest.raises(WindowError, match="overview_level 3"):
        daskcog.open(gen_paths["overviews-nan"], overview_level=3)


@pytest.mark.parametrize("bands", [[1], [3], [3, 1], [2, 2], [1, 2, 3]])
def test_band_selection(gen_paths, bands) -> None:
    path = gen_paths["mask"]
    g = daskcog.open(path, bands=bands, chunks=(1, 32, 32))
    assert g.bands == tuple(bands)
    ref = RasterioReader(path, bands=bands)
    assert_same_grid(g, ref)
    assert_equal_values(g.compute().values, ref.load().values)
    assert list(g.to_xarray().band.values) == bands


@pytest.mark.parametrize("bands", [[0], [4], []])
def test_band_selection_out_of_range(gen_paths, bands) -> None:
    with pytest.raises(WindowError, match="bands"):
        daskcog.open(gen_paths["mask"], bands=bands)


def test_fill_value_option(gen_paths) -> None:
    path = gen_paths["odd-size-nodata"]
    g = daskcog.open(path, fill_value=7, chunks=64)
    assert g.fill_value_default == 7
    ref = RasterioReader(path)
    expected = ref.load(fill_value=7).values
    assert (expected == 7).any() and not (expected == -32768).any()
    assert_equal_values(g.compute().values, expected)
    window = Window(-5, 300, 40, 50)
    assert_equal_values(
        g.isel_window(window).compute().values, ref.read_window(window, fill_value=7).values
    )


def test_compute_returns_geotensor_and_persist(gen_paths) -> None:
    path = gen_paths["multi-tile"]
    g = daskcog.open(path, chunks=64)
    ref = RasterioReader(path).load()
    tensor = g.load()
    assert tensor.transform == ref.transform and tensor.crs == ref.crs
    assert tensor.fill_value_default == ref.fill_value_default
    persisted = g.persist()
    assert persisted.transform == g.transform and persisted.crs == g.crs
    assert_equal_values(persisted.compute().values, ref.values)


# -- dask and xarray operations equal numpy on the reference -------------------------------------
@pytest.fixture(scope="module")
def int_case(tiff_cache):
    path = cached_tiff(GEN_SPECS["odd-size-nodata"], tiff_cache)
    return daskcog.open(path, chunks=(1, 80, 48)), RasterioReader(path).load().values


def test_reductions(int_case) -> None:
    g, ref = int_case
    assert g.data.sum().compute() == ref.sum()
    assert g.data.sum().dtype == ref.sum().dtype
    np.testing.assert_allclose(g.data.mean().compute(), ref.mean(), rtol=1e-12)
    np.testing.assert_array_equal(g.data.max(axis=(1, 2)).compute(), ref.max(axis=(1, 2)))
    np.testing.assert_allclose(g.data.std(axis=1).compute(), ref.std(axis=1), rtol=1e-9)
    valid = g.valid_mask()
    assert int(valid.sum().compute()) == int((ref != -32768).sum())


def test_map_blocks_concatenate_stack_rechunk(int_case) -> None:
    g, ref = int_case
    doubled = g.data.map_blocks(lambda b: b.astype("int64") * 2, dtype="int64")
    np.testing.assert_array_equal(doubled.compute(), ref.astype("int64") * 2)

    def tag(block: np.ndarray, block_id=None) -> np.ndarray:
        return np.full(block.shape, block_id[1] * 100 + block_id[2], dtype="int32")

    tags = g.data.map_blocks(tag, dtype="int32").compute()
    row_edges = np.cumsum((0,) + g.chunks[1])
    col_edges = np.cumsum((0,) + g.chunks[2])
    for i in range(len(g.chunks[1])):
        for j in range(len(g.chunks[2])):
            block = tags[:, row_edges[i] : row_edges[i + 1], col_edges[j] : col_edges[j + 1]]
            assert (block == i * 100 + j).all()

    np.testing.assert_array_equal(
        da.concatenate([g.data, g.data], axis=0).compute(), np.concatenate([ref, ref])
    )
    np.testing.assert_array_equal(
        da.concatenate([g.data[:, :100], g.data[:, 100:]], axis=1).compute(), ref
    )
    np.testing.assert_array_equal(
        da.stack([g.data, g.data + 1]).compute(), np.stack([ref, ref + 1])
    )
    for chunks in [(1, 100, 100), (1, 333, 191), (1, 7, 13)]:
        rechunked = g.data.rechunk(chunks)
        assert rechunked.chunks[1][0] == chunks[1]
        np.testing.assert_array_equal(rechunked.compute(), ref)


def test_xarray_operations(gen_paths) -> None:
    path = gen_paths["mask"]
    g = daskcog.open(path, chunks=32)
    ref = RasterioReader(path).load()
    values = ref.values
    xa = g.to_xarray(name="img")
    assert xa.dims == ("band", "y", "x")
    assert xa.chunks is not None
    t = ref.transform
    np.testing.assert_allclose(xa.x.values, t.c + (np.arange(g.width) + 0.5) * t.a)
    np.testing.assert_allclose(xa.y.values, t.f + (np.arange(g.height) + 0.5) * t.e)

    np.testing.assert_allclose(xa.mean(dim="band").values, values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(xa.mean(dim=("y", "x")).values, values.mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_array_equal(xa.sel(band=2).values, values[1])
    xs, ys = xa.x.values, xa.y.values
    sub = xa.sel(x=slice(xs[10], xs[40]), y=slice(ys[5], ys[30]))
    np.testing.assert_array_equal(sub.values, values[:, 5:31, 10:41])
    point = xa.sel(x=xs[17] + 0.3 * t.a, y=ys[9] + 0.2 * t.e, method="nearest")
    np.testing.assert_array_equal(point.values, values[:, 9, 17])
    arithmetic = (xa.astype("float64") * 2 - xa + 1) / 2
    np.testing.assert_allclose(arithmetic.values, (values.astype("float64") + 1) / 2)
    np.testing.assert_array_equal((xa > 100).sum(dim="band").values, (values > 100).sum(axis=0))
    np.testing.assert_array_equal(xa.isel(x=slice(3, 9)).values, values[:, :, 3:9])

    # rioxarray reads the grid back from the spatial_ref coordinate
    pytest.importorskip("rioxarray")
    assert xa.rio.crs == g.crs
    assert xa.rio.transform().almost_equals(g.transform)
    assert xa.rio.nodata == g.fill_value_default or xa.rio.nodata is None


# -- slicing keeps the transform right ----------------------------------------------------------
WINDOWS = {
    "inside-aligned": Window(64, 32, 128, 64),
    "inside-unaligned": Window(13, 7, 150, 101),
    "outside-top-left": Window(-20, -10, 100, 60),
    "outside-bottom-right": Window(250, 200, 100, 50),
    "covers-all": Window(-3, -4, 310, 230),
    "fully-outside": Window(400, 300, 10, 12),
}


@pytest.mark.parametrize("window_id", list(WINDOWS))
@pytest.mark.parametrize("case", ["multi-tile", "odd-size-nodata"])
def test_isel_window(gen_paths, case, window_id) -> None:
    window = WINDOWS[window_id]
    path = gen_paths[case]
    g = daskcog.open(path, chunks=64)
    ref = RasterioReader(path)
    sub = g.isel_window(window)
    expected = ref.read_window(window)
    assert sub.shape == (1, int(window.height), int(window.width))
    assert (
        sub.transform == expected.transform == geo.window_transform(window, ref.transform)
    )
    np.testing.assert_allclose(sub.bounds, geo.window_bounds(window, ref.transform))
    assert sub.crs == ref.crs
    result = sub.compute()
    assert_equal_values(result.values, expected.values)
    assert result.transform == expected.transform
    if window_id.startswith(("outside", "fully")):
        assert (result.values == ref.fill_value_default).any()


def test_chained_windows_and_band_subsets(gen_paths) -> None:
    path = gen_paths["mask"]  # 130 x 67, 3 bands, fill 0
    g = daskcog.open(path, chunks=32)
    ref = RasterioReader(path)
    w1, w2 = Window(10, 5, 100, 50), Window(-15, 7, 40, 60)  # w2 reaches outside w1 (and the image)
    chained = g.isel_window(w1).isel_window(w2)
    combined = Window(w1.col_off + w2.col_off, w1.row_off + w2.row_off, w2.width, w2.height)
    expected = ref.read_window(combined)
    assert chained.transform == expected.transform
    assert_equal_values(chained.compute().values, expected.values)
    # band subsets lose the read spec: slicing then goes through dask slicing and padding
    second = g[[1]]
    assert second.bands == (2,)
    outside = Window(-5, 60, 30, 20)
    sub = second.isel_window(outside)
    expected = RasterioReader(path, bands=[2]).read_window(outside)
    assert sub.transform == expected.transform
    assert_equal_values(sub.compute().values, expected.values)
    far = second.isel_window(Window(500, 500, 4, 4))
    assert_equal_values(far.compute().values, np.zeros((1, 4, 4), dtype="uint8"))


@pytest.mark.parametrize(
    "key, window, bands",
    [
        ((slice(None), slice(10, 50), slice(20, 80)), Window(20, 10, 60, 40), None),
        ((slice(1, 3), slice(None), slice(5, None)), Window(5, 0, 125, 67), [2, 3]),
        ((0,), Window(0, 0, 130, 67), [1]),
        ((2, slice(-20, None), slice(-30, None)), Window(100, 47, 30, 20), [3]),
        (([2, 0], slice(3, 9), slice(60, 70)), Window(60, 3, 10, 6), [3, 1]),
        ((slice(None), slice(0, 1000), slice(0, 1000)), Window(0, 0, 130, 67), None),
        ((Ellipsis, slice(10, 20)), Window(10, 0, 10, 67), None),
        ((np.int64(1), Ellipsis), Window(0, 0, 130, 67), [2]),
        ((np.array([2, 0]), slice(1, 3)), Window(0, 1, 130, 2), [3, 1]),
        ((-1, Ellipsis, slice(0, 5)), Window(0, 0, 5, 67), [3]),
    ],
)
def test_getitem(gen_paths, key, window, bands) -> None:
    path = gen_paths["mask"]
    g = daskcog.open(path, chunks=32)
    sub = g[key]
    ref = RasterioReader(path, bands=bands)
    expected = ref.read_window(window)
    assert sub.shape == expected.shape
    assert sub.transform == expected.transform == geo.window_transform(window, g.transform)
    if bands is not None:
        assert sub.bands == tuple(bands)
    assert_equal_values(sub.compute().values, expected.values)


def test_getitem_refuses_steps_and_indices(gen_paths) -> None:
    g = daskcog.open(gen_paths["mask"])
    with pytest.raises(WindowError, match="step"):
        g[:, ::2, :]
    with pytest.raises(WindowError):
        g[:, 3, :]
    with pytest.raises(WindowError):
        g.isel_window(Window(0.5, 0, 10, 10))
    with pytest.raises(WindowError, match="band index"):
        g[3]
    with pytest.raises(WindowError, match="too many"):
        g[0, :, :, :]
    with pytest.raises(WindowError, match="ellipsis"):
        g[..., 0:2, ...]


def test_valid_mask_with_nan_fill(gen_paths) -> None:
    path = gen_paths["overviews-nan"]
    g = daskcog.open(path, chunks=64)
    values = RasterioReader(path).load().values
    assert np.isnan(values).any()
    np.testing.assert_array_equal(g.valid_mask().compute(), ~np.isnan(values))


def test_open_and_compute_inside_a_running_event_loop(gen_paths) -> None:
    """Notebooks run a loop in the main thread: open() and compute() must not need it."""
    import asyncio

    path = gen_paths["multi-tile"]

    async def main():
        return daskcog.open(path, chunks=64).compute().values

    np.testing.assert_array_equal(asyncio.run(main()), RasterioReader(path).load().values)


@pytest.mark.parametrize("case", ["multi-tile", "south-up-real"])
def test_sel_bounds(gen_paths, case) -> None:
    path = (
        real_path("riotiler_inverted_lat_float32.tif")
        if case == "south-up-real"
        else gen_paths[case]
    )
    g = daskcog.open(path, chunks=64)
    ref = RasterioReader(path)
    t = ref.transform
    for c0, r0, c1, r1 in [
        (10.4, 5.2, 60.7, 33.9),
        (-4.5, -2.5, 20.2, 10.1),
        (30.0, 40.0, 90.0, 100.0),
    ]:
        xa, ya = t * (c0, r0)
        xb, yb = t * (c1, r1)
        bounds = (min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))
        sub = g.sel_bounds(bounds)
        window = geo.window_from_bounds(bounds, t)
        expected = ref.read_bounds(bounds)
        assert sub.shape == expected.shape == (1, int(window.height), int(window.width))
        assert sub.transform == expected.transform == geo.window_transform(window, t)
        # outer rounding: the result covers the requested bounds
        left, bottom, right, top = sub.bounds
        assert left <= bounds[0] and bottom <= bounds[1] and right >= bounds[2] and top >= bounds[3]
        assert_equal_values(sub.compute().values, expected.values)


# -- loop choice, errors --------------------------------------------------------------------------
def test_worker_loop_option_without_distributed(gen_paths) -> None:
    path = gen_paths["multi-tile"]
    g = daskcog.open(path, chunks=64, loop="worker")  # no worker here: falls back to the I/O loop
    assert_equal_values(g.compute().values, RasterioReader(path).load().values)


def test_live_store_is_refused(gen_paths) -> None:
    with pytest.raises(TypeError, match="store"):
        daskcog.open(gen_paths["multi-tile"], store=object())


def test_chunk_error_after_delete_names_the_url(tmp_path, gen_paths) -> None:
    path = tmp_path / "deleted-after-open.tif"
    shutil.copy(gen_paths["multi-tile"], path)
    g = daskcog.open(path, chunks=64)
    os.remove(path)
    with pytest.raises(GeoreaderError, match="deleted-after-open.tif") as info:
        g.compute(scheduler="threads")
    assert isinstance(info.value, ObjectNotFoundError)


def test_chunk_error_on_corrupt_tiles_names_the_url(tmp_path, gen_paths) -> None:
    path = tmp_path / "corrupt-tiles.tif"
    shutil.copy(gen_paths["multi-tile"], path)
    g = daskcog.open(path, chunks=64)
    corrupt_tiles(path)
    with pytest.raises(GeoreaderError, match="corrupt-tiles.tif"):
        g.compute(scheduler="threads")
