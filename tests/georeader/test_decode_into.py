"""A tile's part goes from the codec into the window in one pass (`decode.decode_tile_into`):
straight into the window when the window holds the whole one-sample tile contiguously (a
chunk one tile wide), else from the codec's buffer with the byte order and the horizontal
predictor undone while writing. Every chunking below crosses those cases (whole tiles one
tile wide, tiles cut at the left / right / top / bottom, windows wider than a tile) and must
equal rasterio's read, pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

import daskcog
from georeader.read import decode
from tests.cogfactory import TiffSpec, cached_tiff

SPECS = {
    "u16-deflate-pred1": TiffSpec(dtype="uint16", compress="deflate", predictor=1),
    "u16-deflate-pred2": TiffSpec(dtype="uint16", compress="deflate", predictor=2),
    "i16-lzw-pred2-big-endian": TiffSpec(dtype="int16", compress="lzw", predictor=2, endian="big"),
    "u8-zstd-pred2-rgb": TiffSpec(dtype="uint8", compress="zstd", predictor=2, count=3),
    "f32-deflate-pred1-big-endian": TiffSpec(dtype="float32", compress="deflate", endian="big"),
    "u16-none": TiffSpec(dtype="uint16", compress="none"),
}
CHUNKS = [(32, 64), (32, 128), (45, 64), (32, 50), (100, 100), (217, 300)]
"""(rows, cols): the spec's tiles are 32 x 64 (one tile wide, two, cut in each direction)."""


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_chunking_equals_rasterio(
    name: str, tiff_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cached_tiff(SPECS[name], tiff_cache)
    straight: list[int] = []
    real = decode._decode_straight

    def counted(fmt: decode.TileFormat, raw: bytes, dst: np.ndarray) -> None:
        straight.append(1)
        real(fmt, raw, dst)

    monkeypatch.setattr(decode, "_decode_straight", counted)
    with rasterio.open(path) as src:
        expected = src.read()
    for rows, cols in CHUNKS:
        got = daskcog.open(path, chunks=(1, rows, cols)).data.compute(scheduler="sync")
        assert got.dtype == expected.dtype, (rows, cols)
        np.testing.assert_array_equal(got, expected, err_msg=f"chunks {rows} x {cols}")
    # one tile wide: whole native-order one-sample tiles went straight into the window
    one_sample_native = SPECS[name].count == 1 and SPECS[name].endian == "little"
    assert bool(straight) == (one_sample_native and SPECS[name].compress != "none")
