"""daskcog.load over a stac-geoparquet file (written by stac-geoparquet from the test
catalogue): the same stack as loading the items, with no item list on the client."""

from __future__ import annotations

from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import daskcog
from daskcog.stac import StacError
from daskcog.stac.geoparquet import ParquetSpec
from tests.stac import catalogue
from tests.stac.conftest import HTTP_OPTIONS, s3_options

sga = pytest.importorskip("stac_geoparquet.arrow")


def proj_items(base: str) -> list[dict]:
    return [it for it in catalogue.item_dicts(base) if it["id"] != "d2-a2"]


def write_parquet(items: list[dict], path: Path) -> Path:
    sga.to_parquet(sga.parse_stac_items_to_arrow(items).read_all(), str(path))
    return path


@pytest.fixture(scope="module")
def local_parquet(stac_files, tmp_path_factory) -> tuple[list[dict], Path]:
    folder, _ = stac_files
    items = proj_items(f"file://{folder}")
    return items, write_parquet(items, tmp_path_factory.mktemp("gpq") / "items.parquet")


@pytest.mark.parametrize("groupby", ["solar_day", "time", "month", "platform", "id"])
def test_parquet_equals_items(local_parquet, groupby):
    items, path = local_parquet
    bands = ["red", "visual"]
    expected = daskcog.load(items, bands=bands, groupby=groupby, chunks=128)
    got = daskcog.load(path, bands=bands, groupby=groupby, chunks=128)
    assert isinstance(got.spec, ParquetSpec)
    assert (got.shape, got.transform, got.keys) == (expected.shape, expected.transform,
                                                  expected.keys)
    assert got.properties == expected.properties
    np.testing.assert_array_equal(got.data.compute(), expected.data.compute())


def test_parquet_graph_holds_no_items(local_parquet):
    _, path = local_parquet
    got = daskcog.load(path, bands=["red"], chunks=128)
    spec = got.spec
    assert not any(isinstance(v, dict) for v in vars(spec).values())
    assert len(got.data.__dask_graph__()) == got.data.npartitions + 1
    plan = got.explain()
    assert plan.files == 11 and plan.requests > 0


def test_parquet_bbox_and_errors(local_parquet):
    items, path = local_parquet
    box = (18.05, 45.12, 18.08, 45.14)
    expected = daskcog.load(items, bands=["red"], bbox=box, chunks=64)
    got = daskcog.load(path, bands=["red"], bbox=box, chunks=64)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.data.compute(), expected.data.compute())
    with pytest.raises(StacError, match="callables"):
        daskcog.load(path, bands=["red"], groupby=lambda item: 1)
    with pytest.raises(StacError, match="no usable proj"):
        folder = path.parent
        daskcog.load(write_parquet(catalogue.item_dicts("file:///x"), folder / "noproj.parquet"),
                     bands=["red"])


def test_parquet_on_http_and_s3_without_asset_requests(
    http_server, http_base, s3_server, s3_base, fault_proxy_s3, tmp_path
):
    """The file itself is read from the server; the COGs' headers are not touched."""
    http_items = proj_items(http_base)
    http_server.put_file(write_parquet(http_items, tmp_path / "h.parquet"), "stac/items.parquet")
    http_server.reset()
    got = daskcog.load(f"{http_base}/items.parquet", bands=["red"], chunks=128, **HTTP_OPTIONS)
    paths = {p for _, p, _ in http_server.requests("GET")}
    assert paths == {"/stac/items.parquet"}
    expected = daskcog.load(http_items, bands=["red"], chunks=128, **HTTP_OPTIONS)
    np.testing.assert_array_equal(got.data.compute(), expected.data.compute())

    s3_items = proj_items(s3_base)
    s3_server.upload("daskcog-test", "stac/items.parquet",
                     write_parquet(s3_items, tmp_path / "s.parquet"))
    fault_proxy_s3.reset()
    opts = s3_options(s3_server, endpoint=fault_proxy_s3.url)
    got = daskcog.load(f"{s3_base}/items.parquet", bands=["red"], chunks=128, **opts)
    assert set(fault_proxy_s3.requests_by_path) <= {"/daskcog-test/stac/items.parquet"}
    # the secret key stays out of the spec and the pickled graph (a credential name travels)
    secret = s3_server.secret_key
    assert secret not in repr(vars(got.spec))
    assert secret.encode() not in cloudpickle.dumps(dict(got.data.__dask_graph__()))
    np.testing.assert_array_equal(
        got.data.compute(),
        daskcog.load(s3_items, bands=["red"], chunks=128, **opts).data.compute(),
    )
