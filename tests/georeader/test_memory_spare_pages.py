"""Pages of freed arrays reused for the next ones (issue 21, MEMORY): a mapping goes back to
its pool only once no array can read it, so a reused page never shows up in an array a
caller still holds; the pool stays within its bound; decoded tiles kept in reused pages
are GDAL's pixels."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from georeader import AsyncGeoTIFFReader, process_state
from georeader.read import decoded_tiles, spare_pages
from tests.cogfactory import TiffSpec, cached_tiff
from tests.georeader.helpers import run

SHAPE = (1, 256, 512)  # 256 KiB of uint16: above MIN_BYTES


def _pool(bound: int = 1 << 30, name: str = "test.spare_pages") -> spare_pages.SparePages:
    return spare_pages.SparePages(name, lambda: bound)


def test_a_view_keeps_its_pages_out_of_the_pool() -> None:
    pool = _pool()
    a = pool.empty(SHAPE, np.uint16)
    a[...] = 7
    view = a[0, 10:20, 5:9]
    del a
    gc.collect()
    b = pool.empty(SHAPE, np.uint16)  # the view still reads the first mapping
    b[...] = 9
    assert not np.shares_memory(b, view)
    assert (view == 7).all()
    assert pool.info()["reused"] == 0
    del view
    gc.collect()
    c = pool.empty(SHAPE, np.uint16)
    assert pool.info() == {"spare_bytes": 0, "made": 2, "reused": 1}
    c[...] = 3
    assert (b == 9).all()  # reusing the first mapping leaves a live array alone


def test_a_reshaped_or_transposed_view_also_holds_the_pages() -> None:
    pool = _pool()
    a = pool.empty(SHAPE, np.uint16)
    a[...] = np.arange(a.size, dtype=np.uint16).reshape(SHAPE)
    kept = a.reshape(-1)[::3].view(np.int16).T
    want = kept.copy()
    del a
    gc.collect()
    for _ in range(3):
        pool.empty(SHAPE, np.uint16)[...] = 1
    np.testing.assert_array_equal(kept, want)


def test_spare_pages_stay_within_the_bound_and_clear_drops_them() -> None:
    nbytes = spare_pages.size_class(np.prod(SHAPE) * 2)
    pool = _pool(bound=2 * nbytes)
    arrays = [pool.empty(SHAPE, np.uint16) for _ in range(5)]
    del arrays
    gc.collect()
    assert pool.spare_bytes == 2 * nbytes
    pool.clear()
    assert pool.spare_bytes == 0
    pool.empty(SHAPE, np.uint16)
    assert pool.info()["made"] == 6


def test_small_arrays_are_plain_numpy() -> None:
    pool = _pool()
    small = pool.empty((10, 10), np.float64)
    assert small.flags.owndata and pool.info()["made"] == 0


def test_size_classes_round_up_by_at_most_an_eighth() -> None:
    page = spare_pages.mmap.PAGESIZE
    for n in (1, page, 9 * page + 1, 100_000, 512 << 10, (8 << 20) + 12345, 3 * 10**8):
        c = spare_pages.size_class(n)
        assert c >= n and c % page == 0
        assert c <= max(8 * page, n * 1.125 + page)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_writes_the_parents_pages() -> None:
    pool = _pool()
    a = pool.empty(SHAPE, np.uint16)
    a[...] = 1
    pid = os.fork()
    if pid == 0:  # child: write, free, reuse
        try:
            a[...] = 2
            del_a = a
            del del_a
            b = pool.empty(SHAPE, np.uint16)
            b[...] = 3
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert (a == 1).all()


# -- decoded tiles kept in reused pages ---------------------------------------------------
SPEC = TiffSpec(
    dtype="uint16", nodata=0, width=1100, height=900, blockxsize=256, blockysize=256,
    predictor=2,
)


def test_kept_tiles_in_reused_pages_are_gdals(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A table small enough to drop tiles all along: the next tiles are decoded into the
    dropped ones' pages, and every window read equals GDAL's."""
    path = str(cached_tiff(SPEC, tmp_path_factory.mktemp("spare")))
    windows = [  # each cuts tiles its neighbours cut too
        Window(c, r, 300, 280) for r in range(0, 900 - 280, 250) for c in range(0, 1100 - 300, 270)
    ]
    tile_bytes = 256 * 256 * 2
    with process_state.configured(decoded_tile_bytes=4 * tile_bytes):
        process_state.clear("georeader.decoded_tiles", "georeader.decoded_tile_slots")
        before = decoded_tiles.SLOTS.info()["reused"]

        async def go() -> list[np.ndarray]:
            reader = await AsyncGeoTIFFReader.open(path)
            return [(await reader.fetch_window(w)).assemble().values for w in windows]

        got = run(go())
        assert decoded_tiles.TABLE.info().misses > 0
        assert tile_bytes >= decoded_tiles.MMAP_MIN_BYTES
        assert decoded_tiles.SLOTS.info()["reused"] > before
        # kept and spare tiles within the bound and a quarter (`_spare_bound`)
        held = decoded_tiles.SLOTS.spare_bytes + decoded_tiles.TABLE.size_bytes
        assert held <= 5 * tile_bytes
    with rasterio.open(path) as src:
        for window, values in zip(windows, got, strict=True):
            np.testing.assert_array_equal(values, src.read(window=window))
