"""The nodata that daskcog's xarray outputs report is the file's, as GDAL reads it.

Before, `GeoArray.to_xarray()` and `xr.open_dataarray(url, engine="daskcog")` put the read's
fill value (0 for integers) into `_FillValue` when the file has no nodata, so `.rio.nodata`
said 0 where rasterio and rioxarray say None, and a user's `.where(x != x.rio.nodata)`, or
rioxarray's own reproject and write, took every real 0 for missing. Checked on generated
files, on the TIFFs of other projects' test suites (tests/georeader/corpus) and on the
shared real-world files (../shared/testdata/real, skipped when absent)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import MaskFlags
from rasterio.transform import from_origin

import daskcog
from tests.conftest import real_files
from tests.georeader.test_corpus import corpus_files

xr = pytest.importorskip("xarray")
rioxarray = pytest.importorskip("rioxarray")


def _write(path: Path, dtype: str, nodata: float | None) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=64, count=1, dtype=dtype,
        crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), nodata=nodata,
        tiled=True, blockxsize=32, blockysize=32,
    ) as dst:
        dst.write(np.arange(64 * 64).reshape(1, 64, 64).astype(dtype))
    return path


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize(("dtype", "nodata"), [
    ("uint16", None), ("uint8", None), ("float32", None), ("uint16", 7), ("int16", -9999),
    ("float32", float("nan")), ("float32", -1.5),
])
def test_nodata_is_the_files(tmp_path: Path, dtype: str, nodata: float | None) -> None:
    path = _write(tmp_path / f"{dtype}-{nodata}.tif", dtype, nodata)
    with rasterio.open(path) as src:
        expected = src.nodata
    assert _same(daskcog.open(path).to_xarray().rio.nodata, expected)
    engine = xr.open_dataarray(path, engine="daskcog", chunks={})
    assert _same(engine.rio.nodata, expected)
    assert _same(rioxarray.open_rasterio(path).rio.nodata, expected)  # the reference agrees
    if expected is None:  # no value is missing: a real 0 stays a value for xarray's users
        assert "_FillValue" not in engine.attrs
        with rasterio.open(path) as src:
            zeros = int((src.read() == 0).sum())
        assert int((engine.where(engine != engine.rio.nodata) == 0).sum()) == zeros > 0


def _nodata_cases() -> list[Path]:
    return [*corpus_files(), *real_files()]


@pytest.mark.parametrize("path", _nodata_cases(), ids=lambda p: p.name)
def test_nodata_is_rasterios_on_other_projects_files(path: Path) -> None:
    """rasterio's nodata; a file without one but with a mask (internal, or alpha) says the
    fill value, which is what daskcog reads where that mask hides pixels (its reads are
    rasterio's masked reads, filled: tests/georeader/test_real_files.py)."""
    try:
        array = daskcog.open(path)
    except Exception as exc:  # noqa: BLE001 - files daskcog refuses are tested elsewhere
        pytest.skip(f"daskcog does not open it: {type(exc).__name__}")
    if array.transform.b or array.transform.d:
        pytest.skip("a rotated grid has no xarray form (to_xarray refuses it)")
    with rasterio.open(path) as src:
        expected = src.nodata
        flags = set(src.mask_flag_enums[0])
        if expected is None and flags & {MaskFlags.per_dataset, MaskFlags.alpha}:
            if array.source.masked:
                expected = array.fill_value_default
            else:  # GDAL's own alpha for a CMYK file it converts: it hides no pixel
                assert bool((src.dataset_mask() == 255).all()), (path, flags)
    assert _same(array.to_xarray().rio.nodata, expected), (path, expected, flags)


def test_a_masked_file_without_nodata_says_its_fill(tmp_path: Path) -> None:
    """An RGBA file: alpha 0 hides the pixel (GDAL's mask); daskcog reads the fill there, and
    `_FillValue` says so, so xarray users can still tell those pixels."""
    path = tmp_path / "rgba.tif"
    data = np.full((4, 64, 64), 200, dtype="uint8")
    data[3, :8] = 0  # the first 8 rows transparent
    with rasterio.open(
        path, "w", driver="GTiff", width=64, height=64, count=4, dtype="uint8",
        crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), photometric="RGB",
        alpha="YES", tiled=True, blockxsize=32, blockysize=32,
    ) as dst:
        dst.write(data)
    engine = xr.open_dataarray(path, engine="daskcog", chunks={})
    assert engine.rio.nodata == 0
    assert bool((engine[:3, :8] == 0).all()) and bool((engine[:3, 8:] == 200).all())
