"""Shared inputs for the daskcog.open tests: real files (skipped when absent) and generated COGs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

import daskcog
from georeader import RasterioReader
from tests.cogfactory import TiffSpec, cached_tiff
from tests.conftest import REAL_DIR, REAL_MISSING, real_files

# Generated layouts the open() tests run on (kept small: each is written once per session).
GEN_SPECS: dict[str, TiffSpec] = {
    # 300 x 217, 64 x 32 tiles: 5 x 7 tiles with partial edge tiles
    "multi-tile": TiffSpec(dtype="uint16", width=300, height=217, blockxsize=64, blockysize=32),
    "odd-size-nodata": TiffSpec(
        dtype="int16", width=191, height=333, blockxsize=48, blockysize=80, nodata=-32768
    ),
    # async-tiff decodes this layout wrongly without an error: the reader must not
    "band-interleave-pred2": TiffSpec(
        dtype="int16", count=3, interleave="band", predictor=2, compress="zstd"
    ),
    "mask": TiffSpec(
        dtype="uint8", count=3, mask=True, width=130, height=67, blockxsize=32, blockysize=32
    ),
    "overviews-nan": TiffSpec(
        dtype="float32", nodata=float("nan"), overviews=(2, 4), blockxsize=32, blockysize=32
    ),
}


def real_path(name: str) -> Path:
    """A file of ../shared/testdata/real, or skip the test with the reason."""
    if not real_files():
        pytest.skip(REAL_MISSING)
    path = REAL_DIR / name
    if not path.is_file():
        pytest.skip(f"real-world test file {name} not found in {REAL_DIR}")
    return path


@pytest.fixture(scope="session")
def gen_paths(tiff_cache: Path) -> dict[str, Path]:
    """Lazily written generated files, by GEN_SPECS name."""

    class _Lazy(dict):
        def __missing__(self, key: str) -> Path:
            path = cached_tiff(GEN_SPECS[key], tiff_cache)
            self[key] = path
            return path

    return _Lazy()


def write_many_tiles(path: Path, size: int = 4096, tile: int = 16) -> Path:
    """A size x size uint8 GeoTIFF of tile x tile tiles (cheap content: writes in ~1 s)."""
    data = (np.add.outer(np.arange(size), np.arange(size)) % 251).astype("uint8")
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=Affine(10.0, 0.0, 399960.0, 0.0, -10.0, 5500020.0),
        tiled=True,
        blockxsize=tile,
        blockysize=tile,
        compress="zstd",
    ) as dst:
        dst.write(data, 1)
    return path


@pytest.fixture(scope="session")
def many_tiles_path(tiff_cache: Path) -> Path:
    """4096 x 4096 with 16 x 16 tiles: 65,536 chunks at chunks=16."""
    path = tiff_cache / "many-tiles-4096-t16.tif"
    if not path.exists():
        tmp = path.with_suffix(".tmp.tif")
        write_many_tiles(tmp)
        tmp.replace(path)
    return path


# -- comparisons with the reference reader -------------------------------------------------------
def reference(path: Path, options: dict[str, Any]) -> RasterioReader:
    return RasterioReader(
        path, overview_level=options.get("overview_level", 0), bands=options.get("bands")
    )


def assert_same_grid(g: daskcog.GeoArray, ref: RasterioReader) -> None:
    assert g.shape == ref.shape
    assert g.dtype == ref.dtype
    assert g.crs == ref.crs
    assert g.transform.almost_equals(ref.transform, precision=1e-9)
    np.testing.assert_allclose(g.bounds, ref.bounds, rtol=0, atol=1e-6 * max(g.res))
    np.testing.assert_allclose(g.res, ref.res, rtol=1e-12)
    assert g.fill_value_default == ref.fill_value_default or (
        math.isnan(g.fill_value_default) and math.isnan(ref.fill_value_default)
    )


def assert_equal_values(actual: Any, expected: np.ndarray) -> None:
    actual = np.asarray(actual)
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)  # NaN == NaN here


def _first_block_offset(path: Path) -> int:
    with rasterio.open(path) as src:
        rows = math.ceil(src.height / src.block_shapes[0][0])
        cols = math.ceil(src.width / src.block_shapes[0][1])
        return min(
            int(src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1))
            for r in range(rows)
            for c in range(cols)
        )


def corrupt_tiles(path: Path) -> None:
    """Overwrite every byte from the first full-resolution tile on with zeros (header intact)."""
    start = _first_block_offset(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(b"\0" * (size - start))
