"""daskcog.open on a distributed LocalCluster: results, header opens per worker, loop="worker",
errors, and a worker killed mid-compute.

One cluster (2 worker processes x 2 threads) for the whole module; the kill test runs last.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import dask
import numpy as np
import pytest

import daskcog
from georeader import RasterioReader
from georeader.errors import GeoreaderError, ObjectNotFoundError
from tests.daskcog.conftest import (
    assert_equal_values,
    corrupt_tiles,
    real_path,
    write_many_tiles,
)

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
    )
    # not the default scheduler: the other test modules keep dask's local schedulers
    client = distributed.Client(cluster, set_as_default=False)
    client.wait_for_workers(2, timeout=120)
    yield client
    client.close()
    cluster.close()


def _worker_infos(client) -> dict[str, daskcog.runtime.reader_cache.CacheInfo]:
    return client.run(daskcog.cache_info)


@pytest.fixture(scope="module")
def two_files(tmp_path_factory) -> tuple[Path, Path]:
    """Two URLs of a 2048 x 2048 file with 64-pixel tiles: 256 chunks each at chunks=128."""
    folder = tmp_path_factory.mktemp("cluster")
    first = write_many_tiles(folder / "grid-a.tif", size=2048, tile=64)
    second = folder / "grid-b.tif"
    shutil.copy(first, second)
    return first, second


def test_results_equal_reference(client, gen_paths) -> None:
    for name, options in [
        ("multi-tile", {"chunks": 64}),
        ("band-interleave-pred2", {"chunks": (1, 64, 128)}),
        ("overviews-nan", {"chunks": 32, "overview_level": 1}),
        ("mask", {"chunks": 32, "bands": [3, 1]}),
    ]:
        path = gen_paths[name]
        g = daskcog.open(path, **options)
        ref = RasterioReader(
            path, overview_level=options.get("overview_level", 0), bands=options.get("bands")
        )
        result = g.compute(scheduler=client)
        assert_equal_values(result.values, ref.load().values)
        assert result.transform == ref.transform


def test_real_file_on_cluster(client) -> None:
    path = real_path("landsat7_rgb_lzw_tiled.tif")
    g = daskcog.open(path, chunks=(1, 256, 256))
    ref = RasterioReader(path).load().values
    assert_equal_values(g.compute(scheduler=client).values, ref)
    total, mean = dask.compute(g.data.sum(), g.data.mean(axis=(1, 2)), scheduler=client)
    assert total == ref.sum()
    np.testing.assert_allclose(mean, ref.mean(axis=(1, 2)))


def test_names_are_the_same_in_every_process(client, gen_paths) -> None:
    path = str(gen_paths["multi-tile"])
    local = daskcog.open(path, chunks=64).data.name
    remote = client.run(lambda: daskcog.open(path, chunks=64).data.name)
    assert set(remote.values()) == {local}


def test_one_header_open_per_worker_per_file(client, two_files) -> None:
    a_path, b_path = two_files
    a = daskcog.open(a_path, chunks=128)
    b = daskcog.open(b_path, chunks=128)
    assert a.data.npartitions == b.data.npartitions == 256
    client.run(daskcog.cache_clear)
    assert all(i.opens == 0 and i.size == 0 for i in _worker_infos(client).values())

    sum_a, sum_b = dask.compute(a.data.sum(), b.data.sum(), scheduler=client)
    ref = RasterioReader(a_path).load().values
    assert sum_a == sum_b == ref.sum()

    infos = _worker_infos(client)
    assert len(infos) == 2
    report = {addr: (i.opens, i.joins, i.hits) for addr, i in infos.items()}
    print("header opens per worker (opens, joins, hits):", report)
    for info in infos.values():
        assert info.opens == 2, report  # one per file, not one per chunk or per thread
        assert info.failures == 0 and info.size == 2
    # every chunk task asked the cache once
    assert sum(i.opens + i.joins + i.hits for i in infos.values()) >= 512

    # a second compute fetches no header at all
    dask.compute(a.data.max(), b.data.min(), scheduler=client)
    assert all(i.opens == 2 for i in _worker_infos(client).values())


def test_worker_loop_option(client, gen_paths) -> None:
    path = gen_paths["odd-size-nodata"]
    on_worker_loop = daskcog.open(path, chunks=(1, 80, 48), loop="worker")
    on_io_thread = daskcog.open(path, chunks=(1, 80, 48))
    assert on_worker_loop.data.name != on_io_thread.data.name
    ref = RasterioReader(path).load().values
    a, b = dask.compute(on_worker_loop.data, on_io_thread.data, scheduler=client)
    assert_equal_values(a, ref)
    assert_equal_values(b, ref)
    assert on_worker_loop.data.sum().compute(scheduler=client) == ref.sum()
    # inside a task there is a worker loop to use (outside, "worker" falls back to the I/O loop)
    from daskcog.runtime.io_loop import worker_loop

    assert client.submit(lambda: worker_loop() is not None, pure=False).result()
    assert worker_loop() is None


def test_chunk_error_on_corrupt_tiles(client, gen_paths, tmp_path) -> None:
    path = tmp_path / "cluster-corrupt.tif"
    shutil.copy(gen_paths["multi-tile"], path)
    g = daskcog.open(path, chunks=64)
    corrupt_tiles(path)
    with pytest.raises(GeoreaderError, match="cluster-corrupt.tif"):
        g.compute(scheduler=client)


def test_chunk_error_on_deleted_file(client, gen_paths, tmp_path) -> None:
    path = tmp_path / "cluster-deleted.tif"
    shutil.copy(gen_paths["multi-tile"], path)
    g = daskcog.open(path, chunks=64)
    os.remove(path)
    client.run(daskcog.cache_clear)
    with pytest.raises(ObjectNotFoundError, match="cluster-deleted.tif"):
        g.compute(scheduler=client)
    # the workers' failed opens are not cached: once the file is back, the same graph computes
    infos = _worker_infos(client).values()
    assert sum(i.failures for i in infos) >= 1
    assert all(i.size == 0 for i in infos)
    shutil.copy(gen_paths["multi-tile"], path)
    assert_equal_values(g.compute(scheduler=client).values, RasterioReader(path).load().values)


def _memory_tasks(dask_scheduler) -> int:
    return sum(1 for ts in dask_scheduler.tasks.values() if ts.state == "memory")


def test_killed_worker_mid_compute(client, two_files) -> None:
    """SIGKILL one worker while chunks run: the nanny restarts it and the result is unchanged."""
    path = two_files[0]
    g = daskcog.open(path, chunks=128)  # 256 chunks

    def slow(block: np.ndarray) -> np.ndarray:
        time.sleep(0.05)
        return block

    slowed = g.data.map_blocks(slow, dtype=g.dtype)
    ref = RasterioReader(path).load().values
    client.run(daskcog.cache_clear)
    pids = client.run(os.getpid)
    assert len(pids) == 2

    future = client.compute(slowed)
    deadline = time.monotonic() + 60
    while client.run_on_scheduler(_memory_tasks) < 20:
        assert time.monotonic() < deadline, "the compute did not start"
        time.sleep(0.05)
    assert not future.done(), "the compute finished before the kill: make it slower"
    victim_pid = pids[min(pids)]
    os.kill(victim_pid, signal.SIGKILL)

    result = future.result(timeout=180)
    assert_equal_values(result, ref)

    client.wait_for_workers(2, timeout=120)
    new_pids = client.run(os.getpid)
    assert victim_pid not in new_pids.values()
    infos = _worker_infos(client)
    print(
        "after the kill, header opens per worker:",
        {addr: (new_pids.get(addr), i.opens, i.hits) for addr, i in infos.items()},
    )
    assert all(i.opens <= 1 for i in infos.values())  # the replacement opens it once, if at all
    # the restarted cluster still computes
    assert g.data[:, :512, :512].sum().compute(scheduler=client) == ref[:, :512, :512].sum()
