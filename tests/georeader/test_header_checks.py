"""Header problems are refused at open, typed, named, and never retried."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from georeader import AsyncGeoTIFFReader, InvalidHeaderError
from georeader.header.ifd_walk import MAX_IFDS
from tests.georeader.helpers import run
from tests.georeader.hostile.build import garbage_tags, loops, patched, write_base


class CountingStore:
    """An obspec store over a local folder that counts requests (obstore's LocalStore inside)."""

    def __init__(self, root: Path) -> None:
        from obstore.store import LocalStore

        self.inner = LocalStore(str(root))
        self.requests = 0

    async def get_range_async(self, path, *, start, end=None, length=None):
        self.requests += 1
        return await self.inner.get_range_async(path, start=start, end=end, length=length)

    async def get_ranges_async(self, path, *, starts, ends=None, lengths=None):
        self.requests += 1
        return await self.inner.get_ranges_async(path, starts=starts, ends=ends, lengths=lengths)


@pytest.mark.parametrize("case", ["geokeys-count-huge", "geokey-refers-past-doubles"])
def test_corrupt_tags_are_not_retried(tmp_path: Path, case: str) -> None:
    path = garbage_tags(tmp_path)[case]
    store = CountingStore(tmp_path)
    started = time.monotonic()
    with pytest.raises(InvalidHeaderError) as info:
        run(AsyncGeoTIFFReader.open(path.name, store=store))
    assert path.name in str(info.value)
    assert not getattr(info.value, "__notes__", None)  # no "gave up after N attempts"
    assert store.requests <= 2 and time.monotonic() - started < 2


def test_nodata_text_is_read_as_gdal_reads_it(tmp_path: Path) -> None:
    """A GDAL_NODATA tag "x" is 0 to GDAL (CPLAtof) and "" no nodata: read the same
    (issue 18; these files were refused before)."""
    import rasterio

    for case in ("nodata-not-a-number", "nodata-empty"):
        path = garbage_tags(tmp_path)[case]
        reader = run(AsyncGeoTIFFReader.open(path))
        with rasterio.open(path) as src:
            assert reader.nodata == src.nodata, case


def test_loop_check_costs_no_extra_request(tmp_path: Path) -> None:
    """The IFD walk fetches the head once; async-tiff's first request is answered from it."""
    good = write_base(tmp_path / "good.tif", compress="deflate")
    store = CountingStore(tmp_path)
    run(AsyncGeoTIFFReader.open(good.name, store=store))
    assert store.requests == 1
    with pytest.raises(InvalidHeaderError, match="loops"):
        run(AsyncGeoTIFFReader.open(loops(tmp_path)["ifd-loops-to-itself"].name, store=store))


def test_more_ifds_than_the_bound_are_refused(tmp_path: Path) -> None:
    """A chain of MAX_IFDS + 1 distinct IFDs (each pointing to the next copy) is refused."""
    import struct

    base = write_base(tmp_path / "one.tif", overviews=False).read_bytes()

    def chain(t) -> None:
        ifd = t.ifds[0]
        table = bytes(t.data[ifd.offset : ifd.end])
        at = ifd.offset
        for _ in range(MAX_IFDS + 1):
            new = t.append(table)
            struct.pack_into("<I", t.data, at + (ifd.next_pos - ifd.offset), new)
            at = new
        struct.pack_into("<I", t.data, at + (ifd.next_pos - ifd.offset), 0)

    path = tmp_path / "many.tif"
    path.write_bytes(patched(base, chain))
    with pytest.raises(InvalidHeaderError, match=f"more than {MAX_IFDS} IFDs"):
        run(AsyncGeoTIFFReader.open(path))
