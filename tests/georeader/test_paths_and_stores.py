"""Objects are found by their whole name: odd local file names, file:// URLs, the caller's stores.

Two failures this guards against (issue 11): a caller's store was given only the
file's base name as key (so `a/x.tif` read `x.tif`, a silently wrong object), and
local names holding '%', '#', '?' or non-ASCII letters were cut or reported
missing (async-tiff's LocalStore percent-encodes such keys).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

import daskcog
from georeader import AsyncGeoTIFFReader, InvalidURLError, RasterioReader, parse_location
from tests.georeader.helpers import run

ODD_NAMES = [
    "plain.tif", "a%b.tif", "pct%20.tif", "%zz.tif", "h#x.tif", "q?y.tif", "café é.tif",
    "star*.tif", "back\\sl.tif", "tab\tx.tif", "nl\nx.tif", "a%2Fb.tif", "ünï ☃.tif",
    "sp ace;.tif", "file:x.tif",
]


def _write(path: Path, value: int, size: int = 48) -> np.ndarray:
    data = (np.arange(size * size, dtype=np.uint16).reshape(1, size, size) + value)
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint16",
        crs="EPSG:3857", transform=from_origin(1000, 2000, 10, 10), tiled=True,
        blockxsize=16, blockysize=16, compress="deflate",
    ) as dst:
        dst.write(data)
    return data


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_local_names_round_trip(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "dir %#? é"
    folder.mkdir()
    path = folder / name
    expected = _write(path, ODD_NAMES.index(name))
    for given in (str(path), path, path.as_uri()):
        location = parse_location(given)
        assert location.local_path == str(path)
        assert parse_location(location.url) == location  # URLs round-trip
        reader = run(AsyncGeoTIFFReader.open(given))
        np.testing.assert_array_equal(run(reader.load()).values, expected)
        np.testing.assert_array_equal(
            reader.read_window_sync(Window(0, 0, 48, 48)).values, expected
        )
    with RasterioReader(path.as_uri()) as ref:
        np.testing.assert_array_equal(ref.load().values, expected)
    np.testing.assert_array_equal(daskcog.open(path.as_uri(), chunks=32).compute().values, expected)


def test_file_url_with_query_or_host_is_refused() -> None:
    with pytest.raises(InvalidURLError, match="percent-encode"):
        parse_location("file:///tmp/a.tif#frag")
    with pytest.raises(InvalidURLError, match="host"):
        parse_location("file://server/share/a.tif")


def test_a_callers_store_keeps_the_whole_key(tmp_path: Path, monkeypatch) -> None:
    """Two `x.tif` in two folders of one store are two different objects."""
    from async_tiff.store import LocalStore as NativeLocal
    from obstore.store import LocalStore, MemoryStore

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ea, eb = _write(tmp_path / "a" / "x.tif", 1), _write(tmp_path / "b" / "x.tif", 500)
    _write(tmp_path / "x.tif", 9000)  # the object a base-name-only key would read
    monkeypatch.chdir(tmp_path / "b")  # a relative key is relative to the store, not the cwd
    for store in (LocalStore(str(tmp_path)), NativeLocal(str(tmp_path))):
        for key, expected in (
            ("a/x.tif", ea),
            ("b/x.tif", eb),
            (str(tmp_path / "a" / "x.tif"), ea),
        ):
            reader = run(AsyncGeoTIFFReader.open(key, store=store))
            np.testing.assert_array_equal(run(reader.load()).values, expected)
    memory = MemoryStore()
    for folder in ("a", "b"):
        memory.put(f"scenes/{folder}/x.tif", (tmp_path / folder / "x.tif").read_bytes())
    got = [run(run(AsyncGeoTIFFReader.open(f"scenes/{f}/x.tif", store=memory)).load()).values
           for f in ("a", "b")]
    np.testing.assert_array_equal(got[0], ea)
    np.testing.assert_array_equal(got[1], eb)
    with pytest.raises(InvalidURLError, match="not under"):
        AsyncGeoTIFFReader("/elsewhere/x.tif", store=LocalStore(str(tmp_path)))
    with pytest.raises(InvalidURLError, match=r"\.\."):
        AsyncGeoTIFFReader("../x.tif", store=LocalStore(str(tmp_path)))


def test_a_callers_store_rasterio_route_reads_the_same_object(tmp_path: Path) -> None:
    """A striped file (rasterio route) in a caller's store is read from that store, whole key."""
    from obstore.store import MemoryStore

    memory = MemoryStore()
    arrays = []
    for i, folder in enumerate(("a", "b")):
        path = tmp_path / f"{folder}.tif"
        data = np.full((1, 20, 30), i + 3, np.uint8)
        with rasterio.open(path, "w", driver="GTiff", width=30, height=20, count=1, dtype="uint8",
                           crs="EPSG:4326", transform=from_origin(0, 0, 1, 1)) as dst:
            dst.write(data)
        memory.put(f"{folder}/x.tif", path.read_bytes())
        arrays.append(data)
    for folder, expected in zip(("a", "b"), arrays, strict=True):
        reader = run(AsyncGeoTIFFReader.open(f"{folder}/x.tif", store=memory))
        assert reader.layout.route == "rasterio"
        np.testing.assert_array_equal(run(reader.load()).values, expected)


def test_url_keys_in_a_callers_store_keep_their_prefix() -> None:
    from obstore.store import HTTPStore, S3Store

    from georeader.io.stores import locate_in_store

    bucket = S3Store("bucket", region="eu-west-1", skip_signature=True)
    assert locate_in_store("s3://bucket/a/x.tif", bucket).key == "a/x.tif"
    prefixed = S3Store("bucket", prefix="a", region="eu-west-1", skip_signature=True)
    assert locate_in_store("s3://bucket/a/b/x.tif", prefixed).key == "b/x.tif"
    with pytest.raises(InvalidURLError, match="not under"):
        locate_in_store("s3://bucket/z/x.tif", prefixed)
    http = HTTPStore.from_url("https://example.com/data")
    assert locate_in_store("https://example.com/data/a/x.tif", http).key == "a/x.tif"
    assert locate_in_store("a/x.tif", http).key == "a/x.tif"


def test_process_global_tables_are_bounded(tmp_path: Path) -> None:
    """Header-size hints and the store cache keep at most their bound (LRU), whatever is opened."""
    from georeader import configured
    from georeader.header import model
    from georeader.io import stores

    with configured(store_cache_size=4, header_hints=3):
        for i in range(10):
            folder = tmp_path / f"f{i}"
            folder.mkdir()
            _write(folder / "x.tif", i, size=16)
            run(AsyncGeoTIFFReader.open(folder / "x.tif"))
            assert len(stores.STORES) <= 4 and len(model.HEADER_SIZES) <= 3
        newest = str((tmp_path / "f9" / "x.tif").as_uri())
        assert newest in model.HEADER_SIZES  # the newest stays
