"""Warp plans (daskcog/mosaics/warp_plans.py): a recurring nearest-neighbour warp as a gather.

The gather through a plan must equal GDAL's warp (`warp.gdal_warp`, the same call the
chunk tasks made before plans) bit for bit: across UTM zones, onto a geographic grid,
with GDAL's approximate transformer and with an exact one, several dtypes and bands,
source nodata inside the window, destinations reaching past the source, and at
half-pixel ties (same CRS, destination centres on source pixel edges or corners).
Then the plan table (one per process, registered, bounded, first sight vs revisit)
and a whole mosaic of revisits equal with plans and without.
"""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio
from affine import Affine

import daskcog
from daskcog.mosaics import warp_plans
from daskcog.mosaics.warp import WarpGeometry, gdal_warp, warp
from daskcog.mosaics.warp_plans import PLANS, fits_one_piece

SRC = Affine(10, 0, 300_000, 0, -10, 5_000_000)
"""A source window's transform in EPSG:32634, near the zone's western edge (18.46 E)."""

CASES = {
    # name: (source CRS, source shape, destination CRS, destination transform, shape)
    "utm34-to-utm33": ("EPSG:32634", (700, 650), "EPSG:32633",
                       Affine(10, 0, 771_000, 0, -10, 5_002_000), (600, 560)),
    "utm34-to-utm33-coarser": ("EPSG:32634", (700, 650), "EPSG:32633",
                               Affine(30, 0, 770_000, 0, -30, 5_003_000), (240, 230)),
    "utm34-to-4326": ("EPSG:32634", (700, 650), "EPSG:4326",
                      Affine(1e-4, 0, 18.45, 0, -1e-4, 45.126), (500, 800)),
    "reaching-past-the-source": ("EPSG:32634", (300, 280), "EPSG:32633",
                                 Affine(10, 0, 770_000, 0, -10, 5_004_000), (500, 520)),
    "ties-half-pixel-shift": ("EPSG:32634", (300, 300), "EPSG:32634",
                              Affine(10, 0, 300_005, 0, -10, 4_999_995), (280, 280)),
    "ties-2x-coarser": ("EPSG:32634", (300, 300), "EPSG:32634",
                        Affine(20, 0, 300_000, 0, -20, 5_000_000), (140, 140)),
    "ties-2x-finer-shifted": ("EPSG:32634", (300, 300), "EPSG:32634",
                              Affine(5, 0, 300_002.5, 0, -5, 4_999_997.5), (500, 500)),
}
KINDS = {
    # name: (dtype, bands, fill)
    "uint16": ("uint16", 1, 0),
    "uint8x3": ("uint8", 3, 0),
    "int16x2": ("int16", 2, -9999),
    "float32-nan": ("float32", 1, float("nan")),
}


def source_array(kind: str, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    dtype, bands, fill = KINDS[kind]
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 250, size=(bands, *shape)).astype(dtype)
    values[:, 10:40, 20:60] = fill  # source nodata inside the window
    values[0, 100:103, :] = fill  # one band only (the others keep their values)
    return values


@pytest.fixture(autouse=True)
def fresh_plans() -> None:
    PLANS.clear()


@pytest.mark.parametrize("tolerance", [0.125, 0.0])
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_gather_equals_gdal_warp(case: str, kind: str, tolerance: float) -> None:
    src_crs, src_shape, dst_crs, dst_transform, shape = CASES[case]
    fill = KINDS[kind][2]
    source = source_array(kind, src_shape)
    geometry = WarpGeometry(SRC, src_crs, dst_transform, dst_crs, shape, fill, "nearest",
                            tolerance)
    expected = gdal_warp(source, geometry)
    made = PLANS.info()["made"]
    first = warp(source, geometry, revisited=True)
    assert PLANS.info()["made"] == made + 1  # a plan, made by GDAL, then a gather
    # the next date: other values, same grid -> the cached plan
    later = source_array(kind, src_shape, seed=1)
    expected_later = gdal_warp(later, geometry)
    hits = PLANS.info()["hits"]
    second = warp(later, geometry, revisited=True)
    assert PLANS.info()["hits"] == hits + 1
    for got, want in ((first, expected), (second, expected_later)):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want, equal_nan=True)
    valid = ~np.isnan(expected) if expected.dtype.kind == "f" else expected != fill
    assert valid.mean() > 0.3  # the case warps real pixels, not only fill


def test_ties_are_real_ties() -> None:
    """The tie cases put destination centres exactly on source pixel edges: a nudge of the
    destination by 1e-6 pixel changes GDAL's picks, so they test GDAL's own tie rule."""
    src_crs, src_shape, dst_crs, dst_transform, shape = CASES["ties-half-pixel-shift"]
    source = source_array("uint16", src_shape)
    at = gdal_warp(source, WarpGeometry(SRC, src_crs, dst_transform, dst_crs, shape, 0,
                                        "nearest", 0.0))
    nudged = dst_transform * Affine.translation(-1e-6, -1e-6)
    off = gdal_warp(source, WarpGeometry(SRC, src_crs, nudged, dst_crs, shape, 0, "nearest", 0.0))
    assert (at != off).mean() > 0.5


def test_first_sight_without_revisit_is_gdal_then_a_plan() -> None:
    src_crs, src_shape, dst_crs, dst_transform, shape = CASES["utm34-to-utm33"]
    source = source_array("uint16", src_shape)
    geometry = WarpGeometry(SRC, src_crs, dst_transform, dst_crs, shape, 0, "nearest")
    expected = gdal_warp(source, geometry)
    assert np.array_equal(warp(source, geometry), expected)
    assert PLANS.info()["made"] == 0 and PLANS.info()["seen-once"] == 1
    assert np.array_equal(warp(source, geometry), expected)  # seen before: plan made now
    assert PLANS.info()["made"] == 1 and PLANS.info()["plans"] == 1


def test_other_resampling_keeps_gdal() -> None:
    src_crs, src_shape, dst_crs, dst_transform, shape = CASES["utm34-to-utm33"]
    source = source_array("uint16", src_shape)
    for resampling in ("bilinear", "cubic"):
        geometry = WarpGeometry(SRC, src_crs, dst_transform, dst_crs, shape, 0, resampling)
        got = warp(source, geometry, revisited=True)
        want = gdal_warp(source, geometry)
        assert np.array_equal(got, want)
    assert PLANS.info()["made"] == 0


def test_a_warp_gdal_cuts_in_pieces_keeps_gdal() -> None:
    assert fits_one_piece((1100, 1100), (1024, 1024), 32, 1)
    assert fits_one_piece((2200, 2200), (2048, 2048), 32, 1)
    assert not fits_one_piece((4200, 4200), (4096, 4096), 32, 1)
    assert not fits_one_piece((2200, 2200), (2048, 2048), 16, 8)


def test_plan_table_is_registered_bounded_and_cleared() -> None:
    src_crs, src_shape, dst_crs, dst_transform, shape = CASES["utm34-to-utm33"]
    source = source_array("uint16", src_shape)
    geometry = WarpGeometry(SRC, src_crs, dst_transform, dst_crs, shape, 0, "nearest")
    warp(source, geometry, revisited=True)
    info = daskcog.cache_info().tables["daskcog.warp-plans"]
    one = info["bytes"]  # int32 indices, and the positions GDAL leaves unwritten
    assert info["plans"] == 1 and shape[0] * shape[1] * 4 <= one < shape[0] * shape[1] * 5
    daskcog.cache_clear()
    assert PLANS.info()["plans"] == 0
    with dask.config.set({"daskcog.warp-plan-bytes": 0}):  # off
        warp(source, geometry, revisited=True)
        assert PLANS.info()["made"] == 0
    with dask.config.set({"daskcog.warp-plan-bytes": int(one * 1.5)}):  # room for one plan
        for x in (0, 10, 20):
            t = dst_transform * Affine.translation(x, 0)
            warp(source, WarpGeometry(SRC, src_crs, t, dst_crs, shape, 0, "nearest"),
                 revisited=True)
        assert PLANS.info()["plans"] == 1 and PLANS.info()["made"] == 3
    assert warp_plans.SEEN_KEYS > 0


def write_scene(path: Path, values: np.ndarray) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0],
                       count=1, dtype="uint16", crs="EPSG:32634", transform=SRC, nodata=0,
                       tiled=True, blockxsize=128, blockysize=128) as dst:
        dst.write(values, 1)
    return path


@pytest.mark.parametrize("method", ["first", "last", "max"])
def test_mosaic_of_revisits_equal_with_and_without_plans(tmp_path: Path, method: str) -> None:
    """Three dates of one tile (same grid, other pixels and holes) warped onto the
    neighbouring zone: the mosaic with plans equals the mosaic with GDAL warps."""
    paths = []
    for date in range(3):
        values = source_array("uint16", (400, 380), seed=date)[0]
        values[50 + 40 * date : 120 + 40 * date, 100:200] = 0
        paths.append(write_scene(tmp_path / f"d{date}.tif", values))
    kwargs = dict(crs="EPSG:32633", resolution=10, method=method, chunks=128)
    with dask.config.set({"daskcog.warp-plan-bytes": 0}):
        expected = daskcog.mosaic(paths, **kwargs).compute().values
    PLANS.clear()
    got = daskcog.mosaic(paths, **kwargs).compute().values
    info = PLANS.info()
    assert info["made"] > 0 and info["hits"] > 0
    assert np.array_equal(got, expected)
    assert (expected != 0).mean() > 0.5


def test_a_plan_asked_for_by_several_threads_at_once_is_made_once() -> None:
    """Revisits of one chunk computed at the same time (a reduction over time runs a
    chunk's dates together) wait for the one plan being made instead of each warping."""
    import threading
    import time

    from daskcog.mosaics.warp_plans import Plan

    table = warp_plans.PlanTable()
    calls = []

    def make() -> Plan:
        calls.append(1)
        time.sleep(0.05)  # a GDAL warp's time, so that the others ask meanwhile
        return Plan.from_picks(np.arange(16, dtype=np.float32).reshape(4, 4))

    got: list[object] = []
    threads = [
        threading.Thread(target=lambda: got.append(table.plan("k", True, make, tag="g")))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(got) == 6 and all(p is got[0] for p in got)
    assert table.info()["made"] == 1 and table.info()["hits"] == 5
    assert table.forget("g") == 1


def test_a_failed_plan_is_not_kept_and_waiters_fall_back() -> None:
    import threading
    import time

    table = warp_plans.PlanTable()

    def make():  # noqa: ANN202
        time.sleep(0.05)
        raise RuntimeError("GDAL failed")

    results: list[object] = []

    def ask() -> None:
        try:
            results.append(table.plan("k", True, make))
        except RuntimeError as exc:
            results.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, RuntimeError) for r in results) >= 1  # the maker raises
    assert all(r is None or isinstance(r, RuntimeError) for r in results)  # waiters: GDAL
    assert table.info()["plans"] == 0
