"""GeoTensor: slicing keeps the transform (steps included), boundless windows, bounds, res."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import rasterio.crs
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

from georeader import GeoTensor
from georeader.errors import WindowError
from georeader.geo.windows import window_bounds

pytestmark = pytest.mark.filterwarnings(
    r"ignore:Use `@` matmul instead of `\*` mul operator:PendingDeprecationWarning"  # affine 3
)

T = Affine(10.0, 0.0, 399960.0, 0.0, -10.0, 5500020.0)


@pytest.fixture
def gt() -> GeoTensor:
    values = np.arange(3 * 40 * 50, dtype=np.int32).reshape(3, 40, 50)
    return GeoTensor(values, T, "EPSG:32633", fill_value_default=-1)


def _pixel_centre(transform: Affine, row: float, col: float) -> tuple[float, float]:
    return transform * (col + 0.5, row + 0.5)


def test_construction_and_metadata(gt: GeoTensor) -> None:
    assert gt.shape == (3, 40, 50) and (gt.count, gt.height, gt.width) == (3, 40, 50)
    assert gt.dtype == np.int32
    assert gt.crs == CRS.from_epsg(32633)
    assert gt.res == (10.0, 10.0)
    assert gt.bounds == (399960.0, 5500020.0 - 400, 399960.0 + 500, 5500020.0)
    assert np.asarray(gt) is gt.values
    assert np.asarray(gt, dtype=np.float64).dtype == np.float64
    two_d = GeoTensor(np.zeros((4, 5)), T, None)
    assert two_d.shape == (1, 4, 5) and two_d.crs is None
    with pytest.raises(ValueError, match="band, y, x"):
        GeoTensor(np.zeros((2, 3, 4, 5)), T, None)
    assert "GeoTensor(shape=(3, 40, 50)" in repr(gt)


def test_crs_is_normalised_to_pyproj() -> None:
    for crs in (
        32633,
        "EPSG:32633",
        rasterio.crs.CRS.from_epsg(32633),
        CRS.from_epsg(32633),
        CRS.from_epsg(32633).to_wkt(),
    ):
        assert GeoTensor(np.zeros((1, 2, 2)), T, crs).crs == CRS.from_epsg(32633)


def test_res_and_bounds_south_up() -> None:
    south = Affine(0.5, 0, -180, 0, 0.5, -90)
    g = GeoTensor(np.zeros((1, 360, 720)), south, "EPSG:4326")
    assert g.res == (0.5, 0.5)
    assert g.bounds == (-180.0, -90.0, 180.0, 90.0)


def test_slicing_keeps_the_transform(gt: GeoTensor) -> None:
    sub = gt[:, 10:20, 5:15]
    assert sub.shape == (3, 10, 10)
    assert sub.transform == T * Affine.translation(5, 10)
    assert np.array_equal(sub.values, gt.values[:, 10:20, 5:15])
    assert sub.crs == gt.crs and sub.fill_value_default == -1
    # every pixel of the slice sits where it sat in the original
    for r, c in ((0, 0), (9, 9), (3, 7)):
        assert _pixel_centre(sub.transform, r, c) == _pixel_centre(gt.transform, 10 + r, 5 + c)
    # negative starts count from the end, like numpy
    tail = gt[:, -10:, -5:]
    assert tail.transform == T * Affine.translation(45, 30)
    assert np.array_equal(tail.values, gt.values[:, -10:, -5:])
    # stops past the end are clipped, like numpy
    assert gt[:, 30:1000, :].shape == (3, 10, 50)


def test_slicing_with_steps(gt: GeoTensor) -> None:
    sub = gt[:, 1::2, 2:40:3]
    assert np.array_equal(sub.values, gt.values[:, 1::2, 2:40:3])
    assert sub.res == (30.0, 20.0)
    for r in range(sub.height):
        for c in range(sub.width):
            # the sampled pixel's top-left corner is where the transform puts it
            assert sub.transform * (c, r) == gt.transform * (2 + 3 * c, 1 + 2 * r)
    left, bottom, right, top = sub.bounds
    assert (left, top) == gt.transform * (2, 1)
    assert (right - left, top - bottom) == (sub.width * 30.0, sub.height * 20.0)


def test_band_selection_keeps_three_dimensions(gt: GeoTensor) -> None:
    one = gt[1]
    assert one.shape == (1, 40, 50) and one.transform == T
    assert np.array_equal(one.values[0], gt.values[1])
    two = gt[[2, 0], 5:10]
    assert two.shape == (2, 5, 50)
    assert np.array_equal(two.values, gt.values[[2, 0], 5:10])
    assert gt[-1].values[0, 0, 0] == gt.values[2, 0, 0]


@pytest.mark.parametrize(
    "key",
    [
        (slice(None), slice(None, None, -1)),
        (slice(None), 3),
        (slice(None), slice(None), 4),
        (0, slice(None), slice(None), slice(None)),
        ("a",),
    ],
    ids=["negative-step", "row-index", "col-index", "four-keys", "string"],
)
def test_bad_slices_are_refused(gt: GeoTensor, key: tuple) -> None:
    with pytest.raises(WindowError):
        gt[key]


def test_window_inside(gt: GeoTensor) -> None:
    w = gt.window(Window(5, 10, 20, 15))
    assert w.shape == (3, 15, 20)
    assert w.transform == T * Affine.translation(5, 10)
    assert np.array_equal(w.values, gt.values[:, 10:25, 5:25])
    with pytest.raises(WindowError, match="boundless=True"):
        gt.window(Window(40, 0, 20, 10))
    with pytest.raises(WindowError, match="fractional"):
        gt.window(Window(0.5, 0, 2, 2))


def test_boundless_window_padding(gt: GeoTensor) -> None:
    w = gt.window(Window(-3, -2, 10, 8), boundless=True)
    assert w.shape == (3, 8, 10)
    assert w.transform == T * Affine.translation(-3, -2)
    assert np.all(w.values[:, :2, :] == -1) and np.all(w.values[:, :, :3] == -1)
    assert np.array_equal(w.values[:, 2:, 3:], gt.values[:, 0:6, 0:7])
    edge = gt.window(Window(45, 35, 10, 10), boundless=True)
    assert np.array_equal(edge.values[:, :5, :5], gt.values[:, 35:, 45:])
    assert np.all(edge.values[:, 5:, :] == -1) and np.all(edge.values[:, :, 5:] == -1)
    outside = gt.window(Window(100, 100, 4, 4), boundless=True)
    assert np.all(outside.values == -1)
    assert outside.transform * (0, 0) == T * (100, 100)
    # without a fill value, padding is 0
    plain = GeoTensor(np.ones((1, 4, 4), np.uint8), T, None, fill_value_default=None)
    assert plain.window(Window(-1, -1, 6, 6), boundless=True).values.sum() == 16


def test_read_bounds(gt: GeoTensor) -> None:
    win = Window(7, 4, 12, 9)
    bounds = window_bounds(win, gt.transform)
    cut = gt.read_bounds(bounds)
    assert cut.transform == gt.window(win).transform
    assert np.array_equal(cut.values, gt.window(win).values)
    assert cut.bounds == pytest.approx(bounds)


def test_same_grid_and_pickle(gt: GeoTensor) -> None:
    assert gt.same_grid(GeoTensor(np.zeros((1, 40, 50)), T, 32633))
    assert not gt.same_grid(gt[:, 1:, :])
    assert not gt.same_grid(GeoTensor(np.zeros((1, 40, 50)), T, 4326))
    back = pickle.loads(pickle.dumps(gt))
    assert np.array_equal(back.values, gt.values)
    assert back.transform == gt.transform and back.crs == gt.crs
    assert back.fill_value_default == gt.fill_value_default
