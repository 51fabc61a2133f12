"""Failures on the GDAL route are classified: the file's data is permanent, the store's may pass.

Before issue 18 a corrupt strip read through GDAL was retried like a network error (8
attempts, 8 s here) and ended with rasterio's "Read failed. See previous exception";
now it fails at once with GDAL's own explanation.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from georeader import AsyncGeoTIFFReader, RasterioReader, StoreReadError, TileDecodeError
from georeader.rasterio_reader import RecordingFile


def _corrupt_striped(path: Path) -> Path:
    values = np.random.default_rng(0).integers(0, 255, (1, 256, 256)).astype("uint8")
    profile = dict(
        driver="GTiff", width=256, height=256, count=1, dtype="uint8", crs="EPSG:32631",
        transform=Affine(10, 0, 5e5, 0, -10, 4e6), compress="deflate",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = b"\xff" * 2000
    path.write_bytes(bytes(data))
    return path


def test_corrupt_strip_fails_at_once_with_gdals_cause(tmp_path: Path) -> None:
    path = _corrupt_striped(tmp_path / "corrupt_strips.tif")
    reader = asyncio.run(AsyncGeoTIFFReader.open(path))
    assert reader.layout.route == "rasterio"
    started = time.monotonic()
    with pytest.raises(TileDecodeError) as info:
        asyncio.run(reader.load())
    assert time.monotonic() - started < 2
    message = str(info.value)
    assert "corrupt_strips.tif" in message and "ZIPDecode" in message
    assert "See previous exception" not in message
    assert not getattr(info.value, "__notes__", None)  # no "gave up after N attempts"
    with RasterioReader(path) as ref, pytest.raises(TileDecodeError, match="ZIPDecode"):
        ref.load()


def test_a_store_error_under_gdal_is_reported_as_the_store_error() -> None:
    """GDAL only says "Read error ... got -1 bytes": the opener's file keeps the store's
    error, and a transient one maps to StoreReadError (retried by the async reader)."""
    errors: list[BaseException] = []

    class Failing:
        def read(self, size: int = -1) -> bytes:
            raise ConnectionError("connection reset by peer")

    recorded = RecordingFile(Failing(), errors)
    with pytest.raises(ConnectionError):
        recorded.read(10)
    assert len(errors) == 1
    reader = RasterioReader.__new__(RasterioReader)
    reader._io_errors = errors
    from georeader.io.stores import parse_location

    reader.location = parse_location("https://example.com/a.tif")
    mapped = reader._gdal_error(rasterio.errors.RasterioIOError("Read failed."), 0, "reading")
    assert isinstance(mapped, StoreReadError)
    assert "example.com/a.tif" in str(mapped)
    decoded = reader._gdal_error(rasterio.errors.RasterioIOError("Read failed."), 1, "reading")
    assert isinstance(decoded, TileDecodeError)


# -- headers async-tiff cannot parse, band models GDAL regroups ---------------------------------
CORPUS = Path(__file__).parent / "corpus"


@pytest.mark.parametrize("name", ["images__logluv-3c-16b.tiff", "images__big_g4.tif"])
def test_headers_async_tiff_panics_on_are_read_by_gdal(name: str) -> None:
    """async-tiff panicked ("rust future panicked: unknown error") on these at open; the IFD
    walk finds a sound TIFF, so GDAL reads it (refused before issue 18)."""
    path = CORPUS / "image-tiff" / name
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = asyncio.run(AsyncGeoTIFFReader.open(path))
        with rasterio.open(path) as src:
            want = src.read()
            assert (reader.count, reader.dtype) == (src.count, np.dtype(src.dtypes[0]))
    assert reader.layout.route == "rasterio" and "cannot parse" in reader.layout.describe()
    assert np.array_equal(asyncio.run(reader.load()).values, want, equal_nan=True)
    # the walk's record of the IFD stands in for async-tiff's (what `daskcog info` reads)
    base = reader.levels[0].data_ifd
    assert (base.image_width, base.image_height) == (reader.width, reader.height)
    assert int(base.compression) > 1 and base.planar_configuration in (1, 2)


@pytest.mark.parametrize(
    ("photometric", "samples", "extra"), [("cielab", 3, None), ("separated", 5, [2])]
)
def test_band_model_is_gdals(tmp_path: Path, photometric: str, samples: int, extra) -> None:
    """CIELab and CMYK with an extra sample: GDAL gives 4 RGBA bands; so do we (reads failed
    with "band index out of range" before issue 18)."""
    tifffile = pytest.importorskip("tifffile")
    values = np.random.default_rng(1).integers(0, 255, (64, 64, samples), dtype=np.uint8)
    path = tmp_path / f"{photometric}.tif"
    tifffile.imwrite(path, values, photometric=photometric, extrasamples=extra, tile=(32, 32))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = asyncio.run(AsyncGeoTIFFReader.open(path))
        with rasterio.open(path) as src:
            want = src.read()
            assert reader.count == src.count
    assert np.array_equal(asyncio.run(reader.load()).values, want)
    assert np.array_equal(asyncio.run(reader.select_bands([4, 1]).load()).values, want[[3, 0]])


def test_a_rust_decoded_tile_that_fails_is_named(tmp_path: Path) -> None:
    """YCbCr JPEG tiles are decoded by async-tiff: a failure names the level and the tile."""
    values = np.random.default_rng(0).integers(0, 255, (3, 64, 64)).astype("uint8")
    path = tmp_path / "ycbcr.tif"
    profile = dict(
        driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs="EPSG:32631",
        transform=Affine(10, 0, 5e5, 0, -10, 4e6), tiled=True, blockxsize=32, blockysize=32,
        compress="jpeg", photometric="ycbcr",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values)
    level = asyncio.run(AsyncGeoTIFFReader.open(path)).levels[0]
    offset, count = int(level.tile_offsets[1]), int(level.tile_byte_counts[1])
    data = bytearray(path.read_bytes())
    tile = bytes(data[offset : offset + count])
    data[offset : offset + count] = tile.replace(b"\xff\xc0", b"\xff\xc3", 1)  # SOF0 -> lossless
    path.write_bytes(bytes(data))
    reader = asyncio.run(AsyncGeoTIFFReader.open(path))
    named = r"ycbcr.tif: level 0: cannot decode the jpeg tile \(1, 0\)"
    with pytest.raises(TileDecodeError, match=named):
        asyncio.run(reader.load())
