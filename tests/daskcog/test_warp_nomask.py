"""Nearest warps with no source nodata (daskcog/mosaics/warp.py, `gdal_warp`).

GDAL's nearest kernel copies the one source pixel it picks. With the fill value as
source nodata, GDAL skips a source pixel equal to it and the destination keeps the fill
value; with no source nodata it copies that pixel, whose value is the fill value. So
both warps are the same, and the one without source nodata runs GDAL's unmasked kernel
(~35 % less CPU on a 2048 x 2048 uint16 chunk). These tests hold `gdal_warp` to the
masked warp (GDAL with the fill as source and destination nodata, the call it made
before) bit for bit: across UTM zones, onto EPSG:4326, at half-pixel ties, with GDAL's
approximate transformer and an exact one (the WarpedVRT route), several dtypes and
bands, a fill value present in the data, a source reaching far past the chunk, and a
warp that GDAL cuts into pieces (kept masked: its pieces depend on the masks).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from affine import Affine

from daskcog.mosaics import warp as warp_mod
from daskcog.mosaics.warp import WarpGeometry
from daskcog.mosaics.warp_plans import fits_one_piece
from tests.daskcog.test_warp_plans import CASES, SRC

CASES = {
    **CASES,
    # the source window reaches far past the chunk on every side (a small part of a scene)
    "source-past-the-chunk": ("EPSG:32634", (900, 900), "EPSG:32633",
                              Affine(10, 0, 773_000, 0, -10, 4_998_000), (90, 110)),
}
KINDS = {
    # name: (dtype, bands, fill)
    "uint8x3": ("uint8", 3, 0),
    "uint16": ("uint16", 1, 0),
    "uint16-fill7": ("uint16", 1, 7),  # a fill value that random data holds too
    "int16x2": ("int16", 2, -9999),
    "float32-nan": ("float32", 1, float("nan")),
    "float32-zero-x2": ("float32", 2, 0.0),
    # a catalogue's nodata as the fill, and NaN pixels that are not it (chunk_task marks
    # them invalid after the warp): both warps copy the NaN
    "float32-9999-with-nan-x2": ("float32", 2, -9999.0),
}


def source_array(kind: str, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    dtype, bands, fill = KINDS[kind]
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 250, size=(bands, *shape)).astype(dtype)
    values[:, 10:40, 20:60] = fill  # a hole in every band
    values[0, 100:103, :] = fill  # in one band only
    scattered = rng.random(shape) < 0.02
    values[-1][scattered] = fill  # single pixels equal to the fill, among data
    if "with-nan" in kind:
        values[:, 200:230, 50:90] = np.nan
        values[0][rng.random(shape) < 0.02] = np.nan
    return values


def masked_warp(source: np.ndarray, dst_transform: Affine, src_crs: str, dst_crs: str,
                shape: tuple[int, int], fill: float, tolerance: float) -> np.ndarray:
    """GDAL's nearest warp with `fill` as source and destination nodata (the reference)."""
    out = np.full((source.shape[0], *shape), fill, dtype=source.dtype)
    geometry = WarpGeometry(SRC, src_crs, dst_transform, dst_crs, shape, fill, "nearest",
                            tolerance)
    warp_mod._gdal_warp_into(source, out, geometry, fill)
    return out


@pytest.fixture
def routes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each GDAL warp `gdal_warp` made had source nodata."""
    seen: list[bool] = []
    inner = warp_mod._gdal_warp_into

    def spy(*args: Any, source_nodata: bool = True, **kwargs: Any) -> None:
        seen.append(source_nodata)
        inner(*args, source_nodata=source_nodata, **kwargs)

    monkeypatch.setattr(warp_mod, "_gdal_warp_into", spy)
    return seen


@pytest.mark.parametrize("tolerance", [0.125, 0.0])
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_unmasked_nearest_equals_masked_warp(
    case: str, kind: str, tolerance: float, routes: list[bool]
) -> None:
    src_crs, src_shape, dst_crs, dst_transform, shape = CASES[case]
    fill = KINDS[kind][2]
    source = source_array(kind, src_shape)
    want = masked_warp(source, dst_transform, src_crs, dst_crs, shape, fill, tolerance)
    routes.clear()
    geometry = WarpGeometry(SRC, src_crs, dst_transform, dst_crs, shape, fill, "nearest",
                            tolerance)
    got = warp_mod.gdal_warp(source, geometry)
    assert routes == [False]  # GDAL warped with no source nodata
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)
    # the case is a real test: data warped, and fill values of the source land in it
    written = ~np.isnan(want) if want.dtype.kind == "f" and fill != fill else want != fill
    assert written.mean() > 0.02
    assert (~written).any()


def test_fill_values_in_the_data_are_copied_as_the_fill() -> None:
    """Where GDAL picks a data pixel that equals the fill, the unmasked warp copies the
    fill value and the masked warp leaves its fill: the same value, counted here."""
    src_crs, src_shape, dst_crs, dst_transform, shape = CASES["ties-half-pixel-shift"]
    source = np.full((1, *src_shape), 5, dtype=np.uint16)
    source[0, ::3, ::2] = 7  # the fill value, a third of the rows
    geometry = WarpGeometry(SRC, src_crs, dst_transform, dst_crs, shape, 7, "nearest")
    got = warp_mod.gdal_warp(source, geometry)
    want = masked_warp(source, dst_transform, src_crs, dst_crs, shape, 7, 0.125)
    assert np.array_equal(got, want)
    assert 0.1 < (got == 7).mean() < 0.9


def test_other_resampling_keeps_source_nodata(routes: list[bool]) -> None:
    """Bilinear and cubic weigh neighbours: the fill must stay source nodata there."""
    src_crs, src_shape, dst_crs, dst_transform, shape = CASES["utm34-to-utm33"]
    source = source_array("uint16", src_shape)
    for resampling in ("bilinear", "cubic"):
        geometry = WarpGeometry(SRC, src_crs, dst_transform, dst_crs, shape, 0, resampling)
        warp_mod.gdal_warp(source, geometry)
    assert routes == [True, True]


@pytest.mark.parametrize(
    ("src_shape", "shape", "dtype", "bits", "masked"),
    [
        # too large for one GDAL piece: stays masked (GDAL's pieces depend on its masks,
        # and each piece's approximate transformer on the piece), equal to itself
        ((2600, 2600), (2500, 2500), "float64", 64, True),
        # a two-zone chunk's size (a 2048 x 2048 part, its 2200 x 2200 uint16 source) is
        # one GDAL piece: unmasked, equal to the masked warp
        ((2200, 2200), (2048, 2048), "uint16", 16, False),
    ],
    ids=["in-pieces-stays-masked", "one-large-piece-unmasked"],
)
def test_large_warps(
    routes: list[bool], src_shape: tuple[int, int], shape: tuple[int, int], dtype: str,
    bits: int, masked: bool,
) -> None:
    assert fits_one_piece(src_shape, shape, bits, 1) is not masked
    dst_transform = Affine(10, 0, 771_000, 0, -10, 5_002_000)
    rng = np.random.default_rng(3)
    source = rng.integers(0, 1000, size=(1, *src_shape)).astype(dtype)
    source[0, 500:900, 300:1200] = 0
    geometry = WarpGeometry(SRC, "EPSG:32634", dst_transform, "EPSG:32633", shape, 0,
                            "nearest")
    got = warp_mod.gdal_warp(source, geometry)
    assert routes == [masked]  # source nodata given to GDAL
    want = masked_warp(source, dst_transform, "EPSG:32634", "EPSG:32633", shape, 0, 0.125)
    assert np.array_equal(got, want)
    assert (got != 0).mean() > 0.3
