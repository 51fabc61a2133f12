"""One threading model (issue 20 item 5, issue 21): a mosaic or STAC chunk fetches on the
I/O loop and decodes / warps in the Dask thread that asked for it (`chunk_task.run_here`,
`chunk_task.offload`), as `daskcog.open`'s chunks do."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio
from affine import Affine

import daskcog
from daskcog.mosaics import chunk_task
from daskcog.mosaics.chunk_task import offload, run_here


def test_offloaded_work_runs_in_the_calling_thread() -> None:
    async def chunk() -> tuple[int, int]:
        loop_thread = threading.get_ident()
        worker_thread = await offload(threading.get_ident)
        return loop_thread, worker_thread

    loop_thread, worker_thread = run_here(chunk())
    assert worker_thread == threading.get_ident()
    assert loop_thread != threading.get_ident()


def test_offloaded_errors_reach_the_coroutine_and_the_caller() -> None:
    seen: list[str] = []

    def fails() -> None:
        raise ValueError("decode failed")

    async def chunk() -> None:
        try:
            await offload(fails)
        except ValueError as error:
            seen.append(str(error))
            raise

    with pytest.raises(ValueError, match="decode failed"):
        run_here(chunk())
    assert seen == ["decode failed"]


def test_offload_outside_a_chunk_uses_a_thread() -> None:
    async def main() -> int:
        return await offload(threading.get_ident)

    assert asyncio.run(main()) != threading.get_ident()


def test_run_here_refuses_its_own_loop() -> None:
    from daskcog.runtime.io_loop import io_loop

    async def inner() -> int:
        return 1

    async def nested() -> None:
        run_here(inner())

    future = asyncio.run_coroutine_threadsafe(nested(), io_loop())
    with pytest.raises(RuntimeError, match="block"):
        future.result()


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_mosaic_decodes_and_warps_in_the_dask_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheduler: str
) -> None:
    transform = Affine(10, 0, 300_000, 0, -10, 5_000_000)
    paths = []
    for k in range(2):
        values = np.random.default_rng(k).integers(1, 200, size=(256, 256)).astype("uint16")
        path = tmp_path / f"s{k}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=1,
                           dtype="uint16", crs="EPSG:32634", transform=transform, nodata=0,
                           tiled=True, blockxsize=128, blockysize=128) as dst:
            dst.write(values, 1)
        paths.append(path)
    threads: set[str] = set()
    original = chunk_task.warp

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        threads.add(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(chunk_task, "warp", recording)
    with dask.config.set(scheduler=scheduler):
        got = daskcog.mosaic(paths, crs="EPSG:32633", resolution=10, chunks=128).compute()
    assert (got.values != 0).mean() > 0.5
    assert threads
    assert not any(name.startswith(("daskcog-io-loop", "georeader-decode", "asyncio"))
                   for name in threads), threads
