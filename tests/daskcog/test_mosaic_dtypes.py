"""A mosaic's dtype is the first scene's (rasterio.merge's rule) unless `dtype=` says; a later
scene whose values that dtype cannot hold is refused at call time.

Before, a uint16 scene after a uint8 one was cast into uint8: 300 became 44 (numpy's
wrap; rasterio.merge gives the same), silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.merge import merge
from rasterio.transform import from_origin

import daskcog
from daskcog.mosaics.mosaic import MosaicError


def _write(path: Path, value: int, dtype: str, holes: bool) -> str:
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=64, count=1, dtype=dtype,
        crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), nodata=0,
        tiled=True, blockxsize=32, blockysize=32,
    ) as dst:
        data = np.full((1, 64, 64), value, dtype=dtype)
        if holes:
            data[:, :, :32] = 0  # the left half is nodata: the next scene shows there
        dst.write(data)
    return str(path)


@pytest.fixture
def small_then_wide(tmp_path: Path) -> list[str]:
    return [_write(tmp_path / "a.tif", 10, "uint8", True),
            _write(tmp_path / "b.tif", 300, "uint16", False)]


def test_a_scene_the_first_dtype_cannot_hold_is_refused(small_then_wide: list[str]) -> None:
    wrapped, _ = merge(small_then_wide)  # rasterio.merge: 300 -> 44 in uint8
    assert 44 in np.unique(wrapped)
    with pytest.raises(MosaicError, match=r"b\.tif \(uint16\).*give dtype=.*uint16"):
        daskcog.mosaic(small_then_wide)
    with pytest.raises(MosaicError, match="give dtype="):
        daskcog.stack(small_then_wide, group_by=["a", "a"])


def test_dtype_given_takes_every_value(small_then_wide: list[str]) -> None:
    got = daskcog.mosaic(small_then_wide, dtype="uint16").data.compute()
    assert got.dtype == np.uint16
    assert set(np.unique(got)) == {10, 300}


def test_a_narrower_later_scene_is_fine(tmp_path: Path) -> None:
    files = [_write(tmp_path / "a.tif", 300, "uint16", True),
             _write(tmp_path / "b.tif", 10, "uint8", False)]
    got = daskcog.mosaic(files).data.compute()
    reference, _ = merge(files)
    np.testing.assert_array_equal(got, reference)
    assert got.dtype == np.uint16
