"""Chunking follows the tile grid: whole tile multiples except at the edges."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from rasterio.windows import Window

import daskcog
from daskcog.reading import chunking
from daskcog.reading.chunking import MAX_AUTO_CHUNKS, WARN_CHUNKS, tile_chunks
from georeader.errors import WindowError


def assert_tile_aligned(chunks: tuple[int, ...], start: int, tile: int) -> None:
    """Every inner chunk edge sits on a multiple of `tile` in the image grid."""
    assert all(c > 0 for c in chunks), chunks
    edges = np.cumsum((start,) + tuple(chunks))[1:-1]
    assert all(e % tile == 0 for e in edges), (start, chunks)
    inner = chunks[1:-1]
    assert all(c % tile == 0 for c in inner), chunks


@pytest.mark.parametrize(
    "request_, expected_y, expected_x",
    [
        (64, 64, 64),  # tile 32 x 64: 64 rows = 2 tiles, 64 cols = 1 tile
        (100, 96, 128),  # rounded to the nearest tile multiple
        (10, 32, 64),  # never smaller than a tile
        ((1, 96, 128), 96, 128),
        ((96, 192), 96, 192),
        ({"y": 32, "x": 128}, 32, 128),
        ({1: 64, 2: 256}, 64, 256),
        (np.int64(64), 64, 64),
    ],
)
def test_explicit_chunks_are_tile_multiples(request_, expected_y, expected_x) -> None:
    window = (0, 0, 1000, 700)
    bands, ys, xs = tile_chunks(request_, window=window, count=3, tile=(32, 64), itemsize=2)
    assert sum(ys) == 700 and sum(xs) == 1000
    assert ys[0] == expected_y and xs[0] == expected_x
    assert set(ys[:-1]) == {expected_y} and set(xs[:-1]) == {expected_x}
    assert_tile_aligned(ys, 0, 32)
    assert_tile_aligned(xs, 0, 64)
    assert sum(bands) == 3


@pytest.mark.parametrize(
    "request_", ["auto", None, -1, (-1, -1, -1), {"y": -1, "x": -1}, {"x": None, "y": None}]
)
def test_whole_axis_and_auto(request_) -> None:
    bands, ys, xs = tile_chunks(
        request_, window=(0, 0, 1000, 700), count=3, tile=(32, 64), itemsize=2
    )
    assert (ys, xs) == ((700,), (1000,))
    assert bands == (3,)


def test_auto_targets_bytes_and_tile_multiples() -> None:
    bands, ys, xs = tile_chunks(
        "auto",
        window=(0, 0, 20000, 15000),
        count=2,
        tile=(512, 512),
        itemsize=2,
        target_bytes=8 * 2**20,
    )
    assert bands == (2,)
    assert_tile_aligned(ys, 0, 512)
    assert_tile_aligned(xs, 0, 512)
    chunk_bytes = 2 * 2 * ys[0] * xs[0]
    assert 2 * 2**20 <= chunk_bytes <= 8 * 2**20


def test_band_chunks() -> None:
    bands, _, _ = tile_chunks(
        (1, 64, 64), window=(0, 0, 100, 100), count=3, tile=(64, 64), itemsize=1
    )
    assert bands == (1, 1, 1)
    bands, _, _ = tile_chunks(
        {"band": 2}, window=(0, 0, 100, 100), count=5, tile=(64, 64), itemsize=1
    )
    assert bands == (2, 2, 1)


@pytest.mark.parametrize("request_", [-1, "auto", 64, 128, 1000])
@pytest.mark.parametrize(
    "window", [(10, 20, 300, 200), (200, 270, 100, 100), (64, 64, 100, 100), (70, 5, 50, 20)]
)
def test_window_mid_tile_gets_partial_first_chunk(request_, window) -> None:
    col_off, row_off, width, height = window
    _, ys, xs = tile_chunks(request_, window=window, count=1, tile=(64, 64), itemsize=1)
    assert sum(ys) == height and sum(xs) == width
    assert_tile_aligned(ys, row_off, 64)
    assert_tile_aligned(xs, col_off, 64)
    if request_ in (-1, "auto"):
        # the whole window in one chunk: no split at an arbitrary row
        assert (ys, xs) == ((height,), (width,))
    elif request_ == 64:
        assert ys[0] == min(height, 64 - row_off % 64)
        assert xs[0] == min(width, 64 - col_off % 64)


def test_chunk_never_larger_than_requested() -> None:
    """A tile-multiple request is an upper bound (dask's meaning), also mid-tile."""
    _, ys, xs = tile_chunks(128, window=(100, 100, 1000, 1000), count=1, tile=(64, 64), itemsize=1)
    assert max(ys) <= 128 and max(xs) <= 128
    assert ys[0] == 28 and xs[0] == 28  # up to the next multiple of 128 in the image grid


def test_open_chunks_follow_tiles(gen_paths) -> None:
    # multi-tile: 300 x 217, tiles 64 wide x 32 high
    path = gen_paths["multi-tile"]
    g = daskcog.open(path, chunks=64)
    assert g.chunks[1] == (64, 64, 64, 25)
    assert g.chunks[2] == (64, 64, 64, 64, 44)
    g = daskcog.open(path, chunks=-1)
    assert g.chunks == ((1,), (217,), (300,))
    sub = daskcog.open(path, chunks=64).isel_window(Window(10, 40, 200, 150))
    assert sub.chunks[1][0] == 24  # rows 40..64
    assert sub.chunks[2][0] == 54  # cols 10..64
    assert_tile_aligned(sub.chunks[1], 40, 32)
    assert_tile_aligned(sub.chunks[2], 10, 64)
    # the sub-window's chunks are pieces of the parent's chunks (same absolute grid)
    whole = daskcog.open(path, chunks=128).isel_window(Window(0, 0, 300, 217))
    sub = daskcog.open(path, chunks=128).isel_window(Window(100, 100, 200, 110))
    assert whole.chunks[1] == (128, 89)
    assert sub.chunks[1] == (110,) and sub.chunks[2] == (28, 128, 44)
    # a window no larger than the chunk size is one chunk, wherever it starts
    assert (
        daskcog.open(path, chunks=128).isel_window(Window(100, 100, 100, 100)).data.npartitions == 1
    )


@pytest.mark.parametrize("bad", [0, -5, "big", (1, 2, 3, 4), {"z": 5}, (0, 64, 64), 1.5])
def test_invalid_chunks(bad) -> None:
    with pytest.raises(WindowError):
        tile_chunks(bad, window=(0, 0, 100, 100), count=1, tile=(64, 64), itemsize=1)


def test_explicit_chunking_warns_above_limit() -> None:
    n = math.isqrt(WARN_CHUNKS) + 16
    huge = (0, 0, 16 * n, 16 * n)
    with pytest.warns(UserWarning, match="chunks"):
        _, ys, xs = tile_chunks(16, window=huge, count=1, tile=(16, 16), itemsize=1)
    assert len(ys) * len(xs) > WARN_CHUNKS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tile_chunks(16 * 16, window=huge, count=1, tile=(16, 16), itemsize=1)


def test_auto_bounds_chunk_count_on_huge_windows() -> None:
    """ "auto" grows chunks until the count is bounded, so it never reaches the warning."""
    huge = (0, 0, 10**7, 10**7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bands, ys, xs = tile_chunks("auto", window=huge, count=3, tile=(16, 16), itemsize=1)
    assert len(bands) * len(ys) * len(xs) <= MAX_AUTO_CHUNKS
    assert_tile_aligned(ys, 0, 16)
    # a fixed size on one axis is kept, only the auto axis grows; it may then warn
    with pytest.warns(UserWarning, match="chunks"):
        _, ys, xs = tile_chunks(
            {"y": 16, "x": "auto"}, window=(0, 0, 10**6, 10**7), count=1, tile=(16, 16), itemsize=1
        )
    assert ys[0] == 16 and xs == (10**6,)


def test_chunking_module_constants() -> None:
    assert chunking.WARN_CHUNKS == 500_000
    assert chunking.MAX_AUTO_CHUNKS < chunking.WARN_CHUNKS
