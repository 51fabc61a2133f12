"""Every failure is a typed error from georeader.errors with a message that says what and where.

Uses generated files (tests.cogfactory) so it runs on a fresh clone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from async_geotiff import Window as AsyncGeotiffWindow
from rasterio.windows import Window

from georeader import (
    AsyncGeoTIFFReader,
    GeoreaderError,
    InvalidURLError,
    NotATiffError,
    ObjectNotFoundError,
    ReaderNotOpenedError,
    StoreReadError,
    TileDecodeError,
    WindowError,
    open_store,
    parse_location,
)
from tests.cogfactory import TiffSpec, cached_tiff
from tests.georeader.helpers import run

pytestmark = pytest.mark.filterwarnings(
    r"ignore:Use `@` matmul instead of `\*` mul operator:PendingDeprecationWarning"  # affine 3
)

SPEC = TiffSpec(
    dtype="uint16",
    width=300,
    height=217,
    count=2,
    blockxsize=64,
    blockysize=64,
    overviews=(2, 4),
    nodata=0,
)


@pytest.fixture(scope="module")
def cog(tiff_cache: Path) -> Path:
    return cached_tiff(SPEC, tiff_cache)


@pytest.fixture(scope="module")
def reader(cog: Path) -> AsyncGeoTIFFReader:
    return run(AsyncGeoTIFFReader.open(cog))


# -- opening ---------------------------------------------------------------------------------
def test_missing_local_file(tmp_path: Path) -> None:
    path = tmp_path / "no_such_file.tif"
    with pytest.raises(ObjectNotFoundError) as info:
        run(AsyncGeoTIFFReader.open(path))
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, GeoreaderError)
    assert str(path) in str(info.value)


def test_missing_file_in_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "no_such_dir" / "x.tif"
    with pytest.raises(GeoreaderError) as info:
        run(AsyncGeoTIFFReader.open(path))
    assert str(path) in str(info.value)
    assert isinstance(info.value, FileNotFoundError), repr(info.value)


@pytest.mark.parametrize(
    "content",
    [b"hello, this is a text file and not a TIFF at all\n" * 20, b"", b"II*\x00"],
    ids=["text", "empty", "magic-only"],
)
def test_not_a_tiff(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not_a_tiff.tif"
    path.write_bytes(content)
    with pytest.raises(NotATiffError) as info:
        run(AsyncGeoTIFFReader.open(path))
    assert isinstance(info.value, ValueError)
    assert path.name in str(info.value)


def test_truncated_header(tmp_path: Path, cog: Path, reader: AsyncGeoTIFFReader) -> None:
    header = reader.header_byte_size
    assert header is not None and header > 200
    path = tmp_path / "truncated_header.tif"
    path.write_bytes(cog.read_bytes()[: header // 2])
    with pytest.raises(GeoreaderError) as info:
        run(AsyncGeoTIFFReader.open(path))
    assert path.name in str(info.value)


def test_truncated_data(tmp_path: Path, cog: Path, reader: AsyncGeoTIFFReader) -> None:
    """The header is intact, the tiles at the end are gone: a typed error, not zeros."""
    data = cog.read_bytes()
    path = tmp_path / "truncated_data.tif"
    path.write_bytes(data[: len(data) - len(data) // 4])
    truncated = run(AsyncGeoTIFFReader.open(path))
    with pytest.raises(GeoreaderError) as info:
        run(truncated.load())
    assert isinstance(info.value, (StoreReadError, TileDecodeError)), repr(info.value)
    assert path.name in str(info.value)


def test_corrupt_tile(tmp_path: Path, cog: Path, reader: AsyncGeoTIFFReader) -> None:
    ifd = reader.levels[0].data_ifd
    offset, size = int(ifd.tile_offsets[0]), int(ifd.tile_byte_counts[0])
    data = bytearray(cog.read_bytes())
    data[offset + 2 : offset + size] = bytes((i * 7 + 13) % 256 for i in range(size - 2))
    path = tmp_path / "corrupt_tile.tif"
    path.write_bytes(bytes(data))
    corrupt = run(AsyncGeoTIFFReader.open(path))
    with pytest.raises(TileDecodeError) as info:
        run(corrupt.read_window(Window(0, 0, 10, 10)))
    assert path.name in str(info.value) and "tile (0, 0)" in str(info.value)
    # the other tiles still read
    run(corrupt.read_window(Window(64, 64, 64, 64)))


# -- use before open, bad arguments ----------------------------------------------------------
def test_metadata_before_open(cog: Path) -> None:
    reader = AsyncGeoTIFFReader(cog)  # no I/O
    for attribute in (
        "shape",
        "transform",
        "crs",
        "dtype",
        "nodata",
        "width",
        "count",
        "bounds",
        "block_shape",
        "overview_count",
        "layout",
    ):
        with pytest.raises(ReaderNotOpenedError, match="Reader not opened") as info:
            getattr(reader, attribute)
        assert cog.name in str(info.value)
    with pytest.raises(ReaderNotOpenedError, match="Reader not opened"):
        run(reader.read_window(Window(0, 0, 1, 1)))
    with pytest.raises(ReaderNotOpenedError):
        reader.overview(1)
    assert "not opened" in repr(reader)
    run(reader.__aenter__())  # what `async with reader:` does first
    assert reader.shape == (2, 217, 300)


@pytest.mark.parametrize(
    "window",
    [
        (0, 0, 10, 10),
        [0, 0, 10, 10],
        {"col_off": 0, "row_off": 0, "width": 10, "height": 10},
        AsyncGeotiffWindow(0, 0, 10, 10),
        None,
        slice(0, 10),
    ],
    ids=["tuple", "list", "dict", "async_geotiff.Window", "None", "slice"],
)
def test_non_window_is_refused(reader: AsyncGeoTIFFReader, window: object) -> None:
    """async-geotiff reads the WHOLE image for anything but its own Window; we refuse."""
    with pytest.raises(WindowError, match="expected a rasterio.windows.Window"):
        run(reader.read_window(window))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "window",
    [
        Window(0.5, 0, 10, 10),
        Window(0, 0, 10.25, 10),
        Window(0, 0, 10, float("nan")),
        Window(0, 0, float("inf"), 3),
    ],
    ids=["col_off", "width", "nan", "inf"],
)
def test_fractional_window_is_refused(reader: AsyncGeoTIFFReader, window: Window) -> None:
    with pytest.raises(WindowError, match="fractional|round"):
        run(reader.read_window(window))


@pytest.mark.parametrize(
    "window", [Window(0, 0, 0, 10), Window(5, 5, 10, 0)], ids=["zero-width", "zero-height"]
)
def test_empty_window_is_refused(reader: AsyncGeoTIFFReader, window: Window) -> None:
    with pytest.raises(WindowError, match="empty"):
        run(reader.read_window(window))


def test_bounded_read_outside_is_refused(reader: AsyncGeoTIFFReader) -> None:
    with pytest.raises(WindowError, match="boundless=True"):
        run(reader.read_window(Window(290, 0, 20, 10), boundless=False))
    # the same window, boundless (the default), pads
    assert run(reader.read_window(Window(290, 0, 20, 10))).shape == (2, 10, 20)


@pytest.mark.parametrize("level", [-1, 3, 99])
def test_bad_overview_level(cog: Path, reader: AsyncGeoTIFFReader, level: int) -> None:
    with pytest.raises(WindowError, match="overview_level") as info:
        reader.overview(level)
    assert "0 (full resolution) to 2" in str(info.value)
    with pytest.raises(WindowError, match="overview_level"):
        run(AsyncGeoTIFFReader.open(cog, overview_level=level))


@pytest.mark.parametrize(
    "bands", [[0], [3], [1, 3], [], [-1]], ids=["zero", "too-big", "one-bad", "empty", "negative"]
)
def test_bad_bands(cog: Path, reader: AsyncGeoTIFFReader, bands: list[int]) -> None:
    with pytest.raises(WindowError, match="1-based"):
        reader.select_bands(bands)
    with pytest.raises(WindowError, match="1-based"):
        run(AsyncGeoTIFFReader.open(cog, bands=bands))


def test_read_geoslice_with_step(reader: AsyncGeoTIFFReader) -> None:
    with pytest.raises(WindowError, match="step"):
        run(reader.read_geoslice(slice(0, 10, 2), slice(0, 10)))


def test_read_bounds_in_another_crs(reader: AsyncGeoTIFFReader) -> None:
    with pytest.raises(NotImplementedError, match="mosaic"):
        run(reader.read_bounds(reader.bounds, target_crs="EPSG:4326"))


def test_empty_bounds(reader: AsyncGeoTIFFReader) -> None:
    left, bottom, right, top = reader.bounds
    with pytest.raises(WindowError):
        run(reader.read_bounds((right, bottom, left, top)))


# -- URLs and stores -------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["ftp://host/data/a.tif", "foo://bucket/a.tif", "hdfs://nn/x.tif"])
def test_unknown_url_scheme(url: str) -> None:
    with pytest.raises(InvalidURLError, match="scheme") as info:
        parse_location(url)
    assert url in str(info.value)
    with pytest.raises(InvalidURLError):
        AsyncGeoTIFFReader(url)
    with pytest.raises(InvalidURLError):
        open_store(url)


@pytest.mark.parametrize("url", ["s3://bucket", "s3://bucket/", "https://example.com/"])
def test_url_without_object_name(url: str) -> None:
    with pytest.raises(InvalidURLError, match="does not name an object"):
        parse_location(url)


def test_open_store_for_local_files(tmp_path: Path, cog: Path) -> None:
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    shutil.copy(cog, a)
    shutil.copy(cog, b)
    store_a, key_a = open_store(a)
    store_b, key_b = open_store(str(b))
    assert (key_a, key_b) == ("a.tif", "b.tif")
    assert store_a is store_b  # one store per folder
    store_url, key_url = open_store(f"file://{b}")
    assert store_url is store_a and key_url == "b.tif"
    other, _ = open_store(cog)
    assert other is not store_a  # another folder, another store
    # relative paths become absolute (a relative LocalStore prefix breaks after unpickling)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        store_rel, key_rel = open_store("a.tif")
        assert store_rel is store_a and key_rel == "a.tif"
    finally:
        os.chdir(cwd)
    assert parse_location("a.tif").url.startswith("file:///")
    # the returned store and key really read the file
    reader = run(AsyncGeoTIFFReader.open(a, store=store_a))
    assert reader.shape == (2, 217, 300)
    with pytest.raises(InvalidURLError, match="no store options"):
        open_store(tmp_path / "c.tif", region="us-east-1")


def test_open_store_for_urls() -> None:
    """Remote stores are built from the URL's folder, lazily (no network here)."""
    s1, k1 = open_store("https://example.com/data/a.tif")
    s2, k2 = open_store("https://example.com/data/b.tif")
    s3, _ = open_store("https://example.com/other/a.tif")
    assert (k1, k2) == ("a.tif", "b.tif")
    assert s1 is s2 and s3 is not s1
    b1, key = open_store("s3://bucket/prefix/x.tif", region="eu-west-1", skip_signature=True)
    b2, _ = open_store("s3://bucket/prefix/y.tif", region="eu-west-1", skip_signature=True)
    assert key == "x.tif" and b1 is b2
    b3, _ = open_store("s3://bucket/prefix/y.tif", region="us-east-1", skip_signature=True)
    assert b3 is not b1  # different options, different store
    m1, mk = open_store("memory:///folder/x.tif")
    assert mk == "folder/x.tif" and open_store("memory:///y.tif")[0] is m1
