"""The per-process decoded-tile table (issue 21): a tile two windows share is decoded once,
its cached array cannot be changed by a caller, the table is bounded in bytes, registered,
follows its setting, and never serves another header's pixels."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import georeader
from georeader import AsyncGeoTIFFReader, process_state
from georeader.read import decoded_tiles
from tests.cogfactory import TiffSpec, cached_tiff
from tests.georeader.helpers import run

SPEC = TiffSpec(dtype="uint16", nodata=0, count=2, predictor=2)
# two windows whose shared column of tiles (64 px wide) lies under both
LEFT, RIGHT = Window(0, 0, 100, 217), Window(100, 0, 120, 217)


def _reads(path: str, *windows: Window, sync: bool = False) -> list[np.ndarray]:
    """The windows read in turn through one reader (one opened header, as daskcog's reader
    cache keeps per file), with the table's info after each."""

    async def go() -> list[np.ndarray]:
        reader = await AsyncGeoTIFFReader.open(path)
        out = []
        for window in windows:
            if sync:
                out.append((await reader.fetch_window(window)).assemble().values)
            else:
                out.append((await reader.read_window(window)).values)
        return out

    return run(go())


def _read(path: str, window: Window) -> np.ndarray:
    return _reads(path, window)[0]


def _gdal(path: str, window: Window) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(window=window)


@pytest.fixture
def path(tmp_path_factory: pytest.TempPathFactory) -> str:
    process_state.clear("georeader.decoded_tiles")
    return str(cached_tiff(SPEC, tmp_path_factory.mktemp("decoded")))


@pytest.mark.parametrize("sync", [False, True], ids=["decode-pool", "calling-thread"])
def test_a_shared_tile_is_decoded_once_and_values_stay_gdals(path: str, sync: bool) -> None:
    left, right = _reads(path, LEFT, RIGHT, sync=sync)
    second = decoded_tiles.TABLE.info()
    np.testing.assert_array_equal(left, _gdal(path, LEFT))
    np.testing.assert_array_equal(right, _gdal(path, RIGHT))
    # LEFT covers tile columns 0-1 and RIGHT 1-3 of 7 rows: column 1 is decoded once
    assert (second.hits, second.misses) == (7, 14 + 14)
    # kept: the tiles a window cuts (columns 1 and 3), not those it covers whole (0 and 2)
    assert second.entries == 14


def test_a_cached_tile_cannot_be_changed_by_a_caller(path: str) -> None:
    async def go() -> tuple[np.ndarray, np.ndarray]:
        reader = await AsyncGeoTIFFReader.open(path)
        values = (await reader.read_window(LEFT)).values
        assert values.flags.writeable  # the caller's window is its own
        values[...] = 12345
        return values, (await reader.read_window(LEFT)).values

    _, again = run(go())
    assert decoded_tiles.TABLE.info().hits == 7  # column 1, the one LEFT cuts
    np.testing.assert_array_equal(again, _gdal(path, LEFT))
    for key in list(decoded_tiles.TABLE._data):
        tile = decoded_tiles.TABLE.get(key)
        assert tile is not None and not tile.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            tile[...] = 0


def test_the_table_is_bounded_in_bytes_registered_and_follows_its_setting(path: str) -> None:
    tile_bytes = 2 * 32 * 64 * 2  # samples x rows x cols x uint16
    assert "georeader.decoded_tiles" in process_state.registered()
    with georeader.configured(decoded_tile_bytes=5 * tile_bytes):
        _read(path, LEFT)  # 7 tiles it cuts
        info = process_state.info()["georeader.decoded_tiles"]
        assert info.capacity == 5 * tile_bytes
        assert (info.entries, info.size_bytes) == (5, 5 * tile_bytes)
        process_state.clear("georeader.decoded_tiles")
        assert decoded_tiles.TABLE.info().entries == 0
    with georeader.configured(decoded_tile_bytes=0):  # off: every read decodes its tiles
        for values in _reads(path, LEFT, LEFT):
            np.testing.assert_array_equal(values, _gdal(path, LEFT))
        assert decoded_tiles.TABLE.info().entries == 0
    assert decoded_tiles.TABLE.capacity == georeader.settings().decoded_tile_bytes


def test_a_file_changed_and_reopened_is_never_served_the_old_pixels(
    path: str, tmp_path: pytest.TempPathFactory
) -> None:
    other = str(cached_tiff(TiffSpec(dtype="uint16", nodata=0, count=2, predictor=2,
                                     origin_x=400960.0), tmp_path))
    target = str(tmp_path / "changing.tif")  # type: ignore[operator]
    shutil.copy(path, target)
    before = _read(target, LEFT)
    shutil.copy(other, target)  # same layout, other pixels
    after = _read(target, LEFT)
    np.testing.assert_array_equal(before, _gdal(path, LEFT))
    np.testing.assert_array_equal(after, _gdal(other, LEFT))


def test_a_remote_tile_the_table_holds_is_neither_fetched_nor_decoded_again(
    path: str,
) -> None:
    from pathlib import Path

    from benchmarks.servers import RangeServer
    from georeader.io import RANGE_CACHE

    file = Path(path)
    with RangeServer(file.parent) as server:
        url = server.url_for(file.name)

        async def go() -> tuple[list[np.ndarray], int]:
            """LEFT then RIGHT through one reader; the tile bytes RIGHT asked for."""
            reader = await AsyncGeoTIFFReader.open(url, client_options={"allow_http": True})
            left = (await reader.read_window(LEFT)).values
            before = RANGE_CACHE.info()
            right = (await reader.read_window(RIGHT)).values
            after = RANGE_CACHE.info()
            asked = (after.fetched_bytes + after.hit_bytes) - (
                before.fetched_bytes + before.hit_bytes
            )
            return [left, right], asked

        asked = {}
        for table_bytes in (0, 1 << 20):
            process_state.clear("georeader.range_cache", "georeader.decoded_tiles")
            with georeader.configured(decoded_tile_bytes=table_bytes):
                (left, right), asked[table_bytes] = run(go())
                info = decoded_tiles.TABLE.info()
            np.testing.assert_array_equal(left, _gdal(path, LEFT))
            np.testing.assert_array_equal(right, _gdal(path, RIGHT))
    # with the table, RIGHT's 7 tiles of column 1 came from it: not asked for, not decoded
    assert (info.hits, info.misses, info.entries) == (7, 28, 14)
    with rasterio.open(path) as src:
        column_1 = sum(src.block_size(1, row, 1) for row in range(7))
    assert asked[0] - asked[1 << 20] == column_1


def test_kept_tiles_are_copies_small_ones_without_a_mapping_each() -> None:
    for shape in ((1, 512, 512), (2, 32, 64)):  # 512 KiB: its own mapping; 8 KiB: malloc'd
        tile = np.arange(np.prod(shape), dtype="uint16").reshape(shape)
        kept = decoded_tiles.kept_copy(tile)
        np.testing.assert_array_equal(kept, tile)
        assert not np.shares_memory(kept, tile)
        owner = kept
        while isinstance(owner, np.ndarray) and owner.base is not None:
            owner = owner.base
        is_mapped = not isinstance(owner, np.ndarray)  # a buffer over an anonymous mmap
        assert is_mapped == (tile.nbytes >= decoded_tiles.MMAP_MIN_BYTES)
