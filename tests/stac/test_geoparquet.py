"""daskcog.load over a stac-geoparquet file (written by stac-geoparquet from the test
catalogue): the same stack as loading the items, with no item list on the client."""

from __future__ import annotations

from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import daskcog
from daskcog.stac import StacError
from daskcog.stac.geoparquet.parquet_load import ParquetSpec
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


def test_parquet_plans_across_batches_and_row_groups(local_parquet, tmp_path, monkeypatch):
    """The planner decodes the file a batch at a time (`_BATCH_ROWS`): a batch of 2 rows over
    row groups of 3 (grids first seen in a later batch, item-level and asset-level proj:*
    mixed) plans the same stack as the items."""
    import pyarrow.parquet as pq

    from daskcog.stac.geoparquet import parquet_plan
    items, path = local_parquet
    small = tmp_path / "groups.parquet"
    pq.write_table(pq.read_table(path), small, row_group_size=3)
    assert pq.ParquetFile(small).metadata.num_row_groups > 1
    monkeypatch.setattr(parquet_plan, "_BATCH_ROWS", 2)
    for groupby in ("solar_day", "id"):
        expected = daskcog.load(items, bands=["red", "visual"], groupby=groupby, chunks=128)
        got = daskcog.load(small, bands=["red", "visual"], groupby=groupby, chunks=128)
        assert (got.shape, got.transform, got.keys) == (expected.shape, expected.transform,
                                                      expected.keys)
        assert got.properties == expected.properties
        np.testing.assert_array_equal(got.data.compute(), expected.data.compute())


def test_parquet_open_decodes_only_the_leaves_it_plans_with(local_parquet, monkeypatch):
    """Planning reads the asked asset's href and proj:* leaves and the id / datetime columns,
    never the geometry nor another asset's fields (a dataset scan of a nested field decoded
    the whole `assets` struct: ~100 MiB of Arrow buffers for 100,000 items)."""
    import pyarrow.parquet as pq

    asked: list[tuple[str, ...]] = []
    read, batches = pq.ParquetFile.read, pq.ParquetFile.iter_batches

    def spy_read(self, columns=None, **kw):
        asked.append(tuple(columns or ("<all>",)))
        return read(self, columns=columns, **kw)

    def spy_batches(self, batch_size=65536, row_groups=None, columns=None, **kw):
        if batch_size > 256:  # the head (the band catalogue) reads whole rows of 256 items
            asked.append(tuple(columns or ("<all>",)))
        return batches(self, batch_size=batch_size, row_groups=row_groups, columns=columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read", spy_read)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy_batches)
    _, path = local_parquet
    daskcog.load(path, bands=["red"], groupby="solar_day", chunks=128)
    names = {c for cols in asked for c in cols}
    assert names, "planning reads through pyarrow.parquet.ParquetFile"
    assert {c for c in names if c.startswith("assets.")} <= {
        "assets.B04.href", "assets.B04.proj:code", "assets.B04.proj:epsg",
        "assets.B04.proj:transform", "assets.B04.proj:shape", "assets.B04.proj:bbox",
        "assets.B04.proj:wkt2"}
    assert not names & {"geometry", "assets", "links", "<all>", "bbox"}


def test_parquet_open_arrow_memory_is_a_fraction_of_the_table(local_parquet, tmp_path):
    """Opening an archive of 22,000 rows (one row group) peaks, in Arrow's memory pool, at a
    fraction of the decoded table (it peaked at ~2x the table: a fragment's `head` decoded
    the whole row group, the asset columns the whole `assets` struct). Fresh process: the
    pool's high-water mark is per process."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    _, path = local_parquet
    table = pq.read_table(path)
    big = pa.concat_tables([table] * 2000)
    archive = tmp_path / "archive.parquet"
    pq.write_table(big, archive, row_group_size=len(big))
    code = (
        "import sys, warnings, pyarrow as pa, daskcog\n"
        "warnings.simplefilter('ignore')\n"
        "s = daskcog.load(sys.argv[1], bands=['red'], groupby='solar_day', chunks=128)\n"
        "print(pa.default_memory_pool().max_memory(), len(s))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(archive)], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).parents[2])
    peak, steps = (int(v) for v in out.stdout.split())
    assert steps == 2
    assert peak < big.nbytes / 2, (peak, big.nbytes)


def _identity(href: str) -> str:
    return href


def test_parquet_keys_are_equal_for_equal_patch_url_callables(local_parquet):
    """The spec's token holds the callable's deterministic dask token, not its repr (a
    memory address that differs between runs): two equal lambdas (one line of code run
    twice, as a script run again) give the same keys."""
    _, path = local_parquet

    def make_patch():
        return lambda h: h

    first = daskcog.load(path, bands=["red"], chunks=128, patch_url=make_patch())
    second = daskcog.load(path, bands=["red"], chunks=128, patch_url=make_patch())
    assert first.data.name == second.data.name
    named = daskcog.load(path, bands=["red"], chunks=128, patch_url=_identity)
    assert named.data.name != first.data.name


def test_parquet_takes_per_band_resampling_like_items(local_parquet):
    """odc-stac's {band: name, "*": default} reaches each asset of a stac-geoparquet load
    as it does for items (was a TypeError)."""
    items, path = local_parquet
    kw = {"bands": ["red", "visual"], "chunks": 128, "resolution": 7.0,
          "resampling": {"red": "bilinear", "*": "nearest"}}
    expected = daskcog.load(items, **kw)
    got = daskcog.load(path, **kw)
    np.testing.assert_array_equal(got.data.compute(), expected.data.compute())
    nearest = daskcog.load(path, **{**kw, "resampling": "nearest"}).data.compute()
    assert not np.array_equal(got.data[:, :1].compute(), nearest[:, :1])  # red: bilinear
    np.testing.assert_array_equal(got.data[:, 1:].compute(), nearest[:, 1:])
