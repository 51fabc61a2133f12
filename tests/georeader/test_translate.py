"""The async-geotiff translators, checked against async-geotiff's own `read()`.

Only on layouts async-geotiff reads correctly (see ../shared/notes: pixel
interleave, DEFLATE/ZSTD, internal masks, nodata): there its RasterArray,
translated to a GeoTensor, must equal what AsyncGeoTIFFReader (itself equal to
rasterio) returns for the same window.
"""

from __future__ import annotations

import async_geotiff
import pytest
from obstore.store import LocalStore
from rasterio.windows import Window

from georeader import AsyncGeoTIFFReader, WindowError
from georeader.geo.translate import (
    from_async_geotiff_window,
    raster_array_to_geotensor,
    to_async_geotiff_window,
)
from tests.cogfactory import TiffSpec, cached_tiff
from tests.georeader.helpers import run, same_pixels

SPECS = {
    "mask": TiffSpec(dtype="uint8", width=300, height=217, count=3, mask=True),
    "nodata": TiffSpec(dtype="int16", width=300, height=217, nodata=-9999),
    "float-nodata": TiffSpec(dtype="float32", width=200, height=150, compress="zstd", nodata=-1.5),
    "plain": TiffSpec(dtype="uint16", width=200, height=150, compress="zstd"),
}
WINDOWS = [
    Window(0, 0, 64, 32),
    Window(17, 9, 100, 71),
    Window(150, 120, 50, 30),
    Window(0, 0, 200, 150),
]


def test_window_round_trip() -> None:
    window = Window(5, 7, 30, 40)
    ag = to_async_geotiff_window(window)
    assert isinstance(ag, async_geotiff.Window)
    assert (ag.col_off, ag.row_off, ag.width, ag.height) == (5, 7, 30, 40)
    assert from_async_geotiff_window(ag) == window


@pytest.mark.parametrize(
    "window", [Window(0.5, 0, 10, 10), Window(-1, 0, 10, 10), Window(0, 0, 0, 10), (0, 0, 10, 10)]
)
def test_window_refused(window: object) -> None:
    with pytest.raises(WindowError):
        to_async_geotiff_window(window)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_raster_array_matches_reader(name: str, tiff_cache) -> None:
    spec = SPECS[name]
    path = cached_tiff(spec, tiff_cache)

    async def main() -> None:
        reader = await AsyncGeoTIFFReader.open(path)
        geotiff = await async_geotiff.GeoTIFF.open(
            path.name, store=LocalStore(str(path.parent.resolve()))
        )
        filled = 0
        for window in WINDOWS:
            ours = await reader.read_window(window)
            theirs = raster_array_to_geotensor(
                await geotiff.read(window=to_async_geotiff_window(window))
            )
            assert same_pixels(theirs.values, ours.values), (name, window)
            assert theirs.transform == ours.transform
            assert theirs.crs == ours.crs
            assert theirs.fill_value_default == ours.fill_value_default
            filled += int((theirs.values == theirs.fill_value_default).sum())
        if spec.mask or spec.nodata is not None:
            assert filled > 0, "the test windows must hold invalid pixels"

    run(main())
