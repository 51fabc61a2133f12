"""Pixel-window arithmetic: windows <-> bounds, rounding rules, clipping, the tile grid."""

from __future__ import annotations

import itertools
import random

import pytest
from affine import Affine
from rasterio.windows import Window

from georeader.errors import WindowError
from georeader.geo.windows import (
    clip_window,
    intersect,
    iter_tiles,
    round_window,
    tiles_touched,
    to_int_window,
    window_bounds,
    window_from_bounds,
    window_transform,
)

pytestmark = pytest.mark.filterwarnings(
    r"ignore:Use `@` matmul instead of `\*` mul operator:PendingDeprecationWarning"  # affine 3
)

NORTH_UP = [
    Affine(10.0, 0.0, 399960.0, 0.0, -10.0, 5500020.0),  # UTM, 10 m
    Affine(0.1, 0.0, -180.0, 0.0, -0.1, 90.0),  # geographic, 0.1 deg (not exact in binary)
    Affine(1 / 3, 0.0, 12.5, 0.0, -1 / 3, 47.25),  # a repeating fraction
    Affine(30.000001, 0.0, -2_493_045.0, 0.0, -29.999999, 3_310_005.0),  # odd, non-square pixels
    Affine(
        0.00027777777777778, 0.0, 5.999861111111111, 0.0, -0.00027777777777778, 46.00013888888889
    ),
]
SOUTH_UP = [
    Affine(0.5, 0.0, -180.0, 0.0, 0.5, -90.0),  # rows grow northwards (riotiler inverted_lat)
    Affine(10.0, 0.0, 399960.0, 0.0, 10.0, 4_000_000.0),
]


def _random_windows(n: int, seed: int) -> list[Window]:
    rng = random.Random(seed)
    return [
        Window(
            rng.randint(-300, 5000),
            rng.randint(-300, 5000),
            rng.randint(1, 2000),
            rng.randint(1, 2000),
        )
        for _ in range(n)
    ]


# -- windows <-> bounds ----------------------------------------------------------------------
@pytest.mark.parametrize("transform", NORTH_UP + SOUTH_UP, ids=lambda t: f"a={t.a:g},e={t.e:g}")
def test_window_bounds_round_trip(transform: Affine) -> None:
    for window in _random_windows(300, seed=int(abs(transform.c))):
        bounds = window_bounds(window, transform)
        left, bottom, right, top = bounds
        assert left < right and bottom < top
        assert window_from_bounds(bounds, transform) == window
        assert window_from_bounds(bounds, transform, rounding="nearest") == window


def test_bounds_of_north_up_and_south_up_windows() -> None:
    north = Affine(10, 0, 1000, 0, -10, 5000)
    assert window_bounds(Window(2, 3, 4, 5), north) == (1020, 4920, 1060, 4970)
    south = Affine(10, 0, 1000, 0, 10, 5000)
    assert window_bounds(Window(2, 3, 4, 5), south) == (1020, 5030, 1060, 5080)
    assert window_from_bounds((1020, 5030, 1060, 5080), south) == Window(2, 3, 4, 5)


def test_outer_rounding_covers_the_bounds() -> None:
    t = Affine(10, 0, 0, 0, -10, 1000)
    # a box strictly inside pixels (0..1, 0..1) plus a sliver into column 2 and row 2
    assert window_from_bounds((1, 979, 21, 999), t) == Window(0, 0, 3, 3)
    assert window_from_bounds((1, 981, 19, 999), t) == Window(0, 0, 2, 2)
    # the smallest covering window: every point of the bounds is inside the window's bounds
    rng = random.Random(5)
    for _ in range(500):
        x0, y0 = rng.uniform(-100, 900), rng.uniform(100, 990)
        bounds = (x0, y0 - rng.uniform(0.01, 90), x0 + rng.uniform(0.01, 90), y0)
        w = window_from_bounds(bounds, t)
        left, bottom, right, top = window_bounds(w, t)
        assert left <= bounds[0] and bottom <= bounds[1] and right >= bounds[2] and top >= bounds[3]
        # and it is the smallest: shrinking any side uncovers part of the bounds
        assert left + 10 > bounds[0] and right - 10 < bounds[2]
        assert bottom + 10 > bounds[1] and top - 10 < bounds[3]


def test_float_noise_snaps_instead_of_growing_the_window() -> None:
    t = Affine(0.1, 0, -180, 0, -0.1, 90)
    w = Window(1234, 567, 89, 10)
    left, bottom, right, top = window_bounds(w, t)
    noisy = (left + 1e-10, bottom - 1e-10, right + 1e-10, top - 1e-10)
    assert window_from_bounds(noisy, t) == w
    # but a real overlap of a thousandth of a pixel is a pixel
    grown = (left - 0.0001, bottom, right, top)
    assert window_from_bounds(grown, t) == Window(1233, 567, 90, 10)


def test_nearest_rounding() -> None:
    assert round_window(Window(0.2, 0.7, 2.5, 1.6), "nearest") == Window(0, 1, 3, 1)
    assert round_window(Window(0.2, 0.7, 2.5, 1.6), "outer") == Window(0, 0, 3, 3)
    # halves go up whatever the parity, so a 3-pixel window stays 3 pixels wide
    for offset in (-1.5, -0.5, 0.5, 1.5, 2.5, 3.5):
        w = round_window(Window(offset, offset, 3, 3), "nearest")
        assert (w.width, w.height) == (3, 3), (offset, w)
        assert w.col_off == offset + 0.5
    with pytest.raises(WindowError, match="empty"):
        round_window(Window(0.6, 0, 0.3, 1), "nearest")
    with pytest.raises(WindowError, match="rounding"):
        round_window(Window(0, 0, 1, 1), "inner")  # type: ignore[arg-type]


def test_window_from_bounds_refuses() -> None:
    with pytest.raises(WindowError, match="rotated"):
        window_from_bounds((0, 0, 1, 1), Affine(1, 0.1, 0, 0.1, -1, 0))
    with pytest.raises(WindowError, match="empty"):
        window_from_bounds((10, 0, 0, 10), Affine(1, 0, 0, 0, -1, 0))
    with pytest.raises(WindowError, match="empty"):
        window_from_bounds((0, 10, 10, 10), Affine(1, 0, 0, 0, -1, 0))


def test_window_transform() -> None:
    t = Affine(10, 0, 1000, 0, -10, 5000)
    wt = window_transform(Window(3, 4, 5, 6), t)
    assert wt == Affine(10, 0, 1030, 0, -10, 4960)
    assert window_transform(Window(-2, -1, 5, 6), t) == Affine(10, 0, 980, 0, -10, 5010)
    rotated = Affine(1, 0.5, 0, 0.5, -1, 0)
    assert window_transform(Window(2, 2, 1, 1), rotated) * (0, 0) == rotated * (2, 2)


# -- whole-pixel windows ---------------------------------------------------------------------
def test_to_int_window() -> None:
    w = to_int_window(Window(1.0, 2.0, 3.0, 4.0))
    assert w == Window(1, 2, 3, 4)
    assert all(isinstance(v, int) for v in (w.col_off, w.row_off, w.width, w.height))
    assert to_int_window(Window(-5, -7, 10, 10)) == Window(-5, -7, 10, 10)
    for bad in (Window(0.5, 0, 1, 1), Window(0, 0, 1.0000001, 1)):
        with pytest.raises(WindowError, match="fractional"):
            to_int_window(bad)
    for bad_type in ((0, 0, 1, 1), "0 0 1 1", None):
        with pytest.raises(WindowError, match="expected a rasterio.windows.Window"):
            to_int_window(bad_type)
    with pytest.raises(WindowError, match="empty"):
        to_int_window(Window(0, 0, 0, 1))


# -- clipping --------------------------------------------------------------------------------
def test_intersect_and_clip() -> None:
    assert intersect(Window(0, 0, 10, 10), Window(5, 5, 10, 10)) == Window(5, 5, 5, 5)
    assert intersect(Window(0, 0, 10, 10), Window(10, 0, 5, 5)) is None  # touching edges
    assert intersect(Window(0, 0, 10, 10), Window(2, 3, 4, 5)) == Window(2, 3, 4, 5)
    assert clip_window(Window(-5, -7, 20, 20), 100, 50) == Window(0, 0, 15, 13)
    assert clip_window(Window(90, 45, 20, 20), 100, 50) == Window(90, 45, 10, 5)
    assert clip_window(Window(0, 0, 100, 50), 100, 50) == Window(0, 0, 100, 50)
    assert clip_window(Window(100, 0, 5, 5), 100, 50) is None
    assert clip_window(Window(-5, 0, 5, 5), 100, 50) is None
    assert clip_window(Window(-10, -10, 200, 200), 100, 50) == Window(0, 0, 100, 50)


def test_clip_agrees_with_brute_force() -> None:
    rng = random.Random(3)
    for _ in range(300):
        w = Window(
            rng.randint(-30, 40), rng.randint(-30, 40), rng.randint(1, 50), rng.randint(1, 50)
        )
        width, height = rng.randint(1, 40), rng.randint(1, 40)
        inside = {
            (r, c)
            for r in range(w.row_off, w.row_off + w.height)
            for c in range(w.col_off, w.col_off + w.width)
            if 0 <= r < height and 0 <= c < width
        }
        clipped = clip_window(w, width, height)
        if clipped is None:
            assert not inside
        else:
            got = {
                (r, c)
                for r in range(clipped.row_off, clipped.row_off + clipped.height)
                for c in range(clipped.col_off, clipped.col_off + clipped.width)
            }
            assert got == inside


# -- the tile grid ---------------------------------------------------------------------------
def test_tiles_touched() -> None:
    assert tiles_touched(Window(0, 0, 64, 32), 64, 32) == (range(1), range(1))
    assert tiles_touched(Window(64, 32, 64, 32), 64, 32) == (range(1, 2), range(1, 2))
    assert tiles_touched(Window(63, 31, 2, 2), 64, 32) == (range(2), range(2))
    assert tiles_touched(Window(10, 10, 200, 5), 64, 32) == (range(4), range(1))
    assert list(iter_tiles(Window(63, 31, 2, 2), 64, 32)) == [(0, 0), (1, 0), (0, 1), (1, 1)]


def test_tiles_touched_agrees_with_brute_force() -> None:
    rng = random.Random(11)
    for tw, th in ((16, 16), (64, 32), (48, 80), (256, 64)):
        for _ in range(100):
            w = Window(
                rng.randint(0, 600), rng.randint(0, 600), rng.randint(1, 300), rng.randint(1, 300)
            )
            want = {
                (c // tw, r // th)
                for r, c in itertools.product(
                    range(w.row_off, w.row_off + w.height), range(w.col_off, w.col_off + w.width)
                )
            }
            got = list(iter_tiles(w, tw, th))
            assert set(got) == want and len(got) == len(want)
            assert got == sorted(got, key=lambda t: (t[1], t[0]))  # row by row
            for tx, ty in got:
                assert intersect(Window(tx * tw, ty * th, tw, th), w) is not None  # the tile
