"""The COG's last step (overviews, GDAL's copy) shows progress and obeys Ctrl-C (issue 19).

Before, rasterio's `build_overviews` and `shutil.copy` ran with no callback: ~40 s of
nothing on a large mosaic, and Ctrl-C waited until GDAL finished. Now GDAL's own
progress callback (`georeader.gdal_progress`) reports each stage and stops GDAL.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rio_cogeo.cogeo import cog_validate

import daskcog
from georeader.write import WriteCancelled, create_copy, overview_factors, progress_available
from tests.cogfactory import TiffSpec, cached_tiff

SPEC = TiffSpec(
    dtype="uint16", width=700, height=530, count=2, nodata=0, blockxsize=128, blockysize=128
)


@pytest.fixture(scope="module")
def source(tiff_cache: Path) -> Path:
    return cached_tiff(SPEC, tiff_cache)


def levels(path: Path) -> list[np.ndarray]:
    with rasterio.open(path) as src:
        out = [src.read()]
        for factor in src.overviews(1):
            shape = (src.count, -(-src.height // factor), -(-src.width // factor))
            out.append(src.read(out_shape=shape))
        return out


def test_gdal_library_is_found() -> None:
    assert progress_available()


def test_finish_progress_reports_each_stage_to_the_end(source: Path, tmp_path: Path) -> None:
    seen: dict[str, list[float]] = {}
    out = daskcog.open(source, chunks=256).to_cog(
        tmp_path / "out.tif", blocksize=128, resampling="average",
        finish_progress=lambda stage, f: seen.setdefault(stage, []).append(f),
    )
    assert set(seen) == {"overviews", "COG copy"}
    for fractions in seen.values():
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert cog_validate(str(out), quiet=True)[0]
    assert sorted(os.listdir(tmp_path)) == ["out.tif"]


def test_same_file_as_rasterios_calls(source: Path, tmp_path: Path) -> None:
    """The ctypes path writes what rasterio's build_overviews + shutil.copy wrote."""
    ours = daskcog.open(source, chunks=256).to_cog(
        tmp_path / "ours.tif", blocksize=128, resampling="average"
    )
    reference = tmp_path / "reference.tif"
    staged = tmp_path / "staged.tif"
    rasterio.shutil.copy(source, staged, driver="GTiff", TILED="YES", BLOCKXSIZE=128,
                         BLOCKYSIZE=128)
    with rasterio.open(staged, "r+") as dataset:
        dataset.build_overviews(
            overview_factors(SPEC.width, SPEC.height, 128), rasterio.enums.Resampling.average
        )
    rasterio.shutil.copy(
        staged, reference, driver="COG", BLOCKSIZE=128, COMPRESS="DEFLATE", PREDICTOR="STANDARD",
        OVERVIEWS="AUTO", OVERVIEW_RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER",
    )
    got, expected = levels(ours), levels(reference)
    assert len(got) == len(expected) > 1
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("stage", ["overviews", "COG copy"])
def test_ctrl_c_in_finish_stops_and_leaves_nothing(
    source: Path, tmp_path: Path, stage: str
) -> None:
    def interrupt(name: str, fraction: float) -> None:
        if name == stage and fraction > 0:
            raise KeyboardInterrupt  # what a Ctrl-C during GDAL's work looks like here

    with pytest.raises(KeyboardInterrupt):
        daskcog.open(source, chunks=256).to_cog(
            tmp_path / "out.tif", blocksize=128, finish_progress=interrupt
        )
    assert os.listdir(tmp_path) == []


def test_cancel_event_stops_the_copy(source: Path, tmp_path: Path) -> None:
    staged = tmp_path / "staged.tif"
    rasterio.shutil.copy(source, staged, driver="GTiff", TILED="YES")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(WriteCancelled):
        create_copy(
            str(staged), str(tmp_path / "out.tif"), "COG", {}, cancel=cancel
        )
