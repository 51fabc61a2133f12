"""The graph daskcog.open builds: deterministic names, constant size, no live objects inside."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from dask.highlevelgraph import HighLevelGraph
from rasterio.windows import Window

import daskcog
from daskcog.reading.cog_array import BlockReader
from georeader import RasterioReader


def _layer_summary(g: daskcog.GeoArray) -> list[tuple[str, bool]]:
    graph = g.data.__dask_graph__()
    assert isinstance(graph, HighLevelGraph)
    return sorted(
        (type(layer).__name__, layer.is_materialized()) for layer in graph.layers.values()
    )


def test_names_are_deterministic(gen_paths) -> None:
    path = gen_paths["overviews-nan"]
    a = daskcog.open(path, chunks=64)
    b = daskcog.open(str(path), chunks=64)
    c = daskcog.open(path.as_uri(), chunks=64)
    assert a.data.name == b.data.name == c.data.name
    assert a.data.name.startswith("daskcog-read-")
    w = Window(5, 7, 100, 90)
    assert a.isel_window(w).data.name == b.isel_window(w).data.name


@pytest.mark.parametrize(
    "other",
    [
        {"chunks": 32},
        {"chunks": 64, "overview_level": 1},
        {"chunks": 64, "fill_value": -1.0},
        {"chunks": (1, 64, 128)},
        {"chunks": 64, "loop": "worker"},
    ],
)
def test_names_differ_with_options(gen_paths, other) -> None:
    path = gen_paths["overviews-nan"]
    base = daskcog.open(path, chunks=64)
    assert daskcog.open(path, **other).data.name != base.data.name


def test_names_differ_with_bands_windows_and_files(gen_paths) -> None:
    mask = gen_paths["mask"]
    names = {
        daskcog.open(mask).data.name,
        daskcog.open(mask, bands=[1]).data.name,
        daskcog.open(mask, bands=[2]).data.name,
        daskcog.open(mask, bands=[2, 1]).data.name,
        daskcog.open(mask).isel_window(Window(0, 0, 10, 10)).data.name,
        daskcog.open(mask).isel_window(Window(1, 0, 10, 10)).data.name,
        daskcog.open(gen_paths["multi-tile"]).data.name,
    }
    assert len(names) == 7


def test_graph_is_constant_size_at_65k_chunks(many_tiles_path) -> None:
    small = daskcog.open(many_tiles_path, chunks=2048)
    huge = daskcog.open(many_tiles_path, chunks=16)
    assert small.data.npartitions == 4
    assert huge.data.npartitions == 256 * 256
    # same layers, none materialised per chunk: the read layer is one Blockwise
    assert _layer_summary(huge) == _layer_summary(small)
    for layer in huge.data.__dask_graph__().layers.values():
        if layer.is_materialized():
            assert len(layer) <= 1  # only the BlockReader object itself
    blob_small = pickle.dumps(small.data.__dask_graph__())
    blob = pickle.dumps(huge.data.__dask_graph__())
    assert len(blob) < 10_000
    # what grows is the chunks tuples (2 x 256 ints), not a per-chunk task
    assert len(blob) - len(blob_small) < 4_000


def test_graph_holds_no_reader_or_store(many_tiles_path) -> None:
    g = daskcog.open(many_tiles_path, chunks=16)
    blob = pickle.dumps(g.data.__dask_graph__())
    for forbidden in (
        b"AsyncGeoTIFFReader",
        b"OpenedFile",
        b"async_geotiff",
        b"obstore",
        b"async_tiff",
        b"Store",
    ):
        assert forbidden not in blob, forbidden
    assert b"BlockReader" in blob and b"ReadSpec" in blob
    reader_blob = pickle.dumps(BlockReader(g.source))
    assert len(reader_blob) < 2_000
    assert pickle.loads(reader_blob).spec == g.source
    # and a cached header in this process does not leak into the graph
    assert daskcog.cache_info().size >= 1


def test_small_window_of_huge_graph_computes(many_tiles_path) -> None:
    g = daskcog.open(many_tiles_path, chunks=16)
    window = Window(4000, 3, 40, 30)
    sub = g.isel_window(window)
    assert sub.data.npartitions == 3 * 3
    ref = RasterioReader(many_tiles_path).read_window(window)
    np.testing.assert_array_equal(sub.compute().values, ref.values)
    ref2 = RasterioReader(many_tiles_path).read_window(Window(8, 8, 16, 16))
    np.testing.assert_array_equal(g.data[:, 8:24, 8:24].compute(), ref2.values)


def test_open_does_not_materialise_chunks(many_tiles_path) -> None:
    """The read layer stays a Blockwise: building it does not loop over 65k chunks."""
    g = daskcog.open(many_tiles_path, chunks=16)
    graph = g.data.__dask_graph__()
    read_layer = graph.layers[g.data.name]
    assert not read_layer.is_materialized()
    deps = graph.dependencies[g.data.name]
    assert all(len(graph.layers[d]) <= 1 for d in deps)
