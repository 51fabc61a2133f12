"""A batch's scenes fed as soon as they and the scenes before them are read (issue 21,
MEMORY): same order, same values as feeding the whole batch; a scene's arrays do not wait
for the batch's slowest read; errors as `asyncio.gather` gave them."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from daskcog.mosaics import chunk_task
from daskcog.mosaics.methods import FirstMethod, MeanMethod
from daskcog.runtime import failures


def _spec(method: type, errors: str = "raise", batch: int = 4, scenes: int = 4) -> Any:
    class Spec:
        method_class = method
        value_dtype = "uint16"
        out_dtype = "uint16" if method is FirstMethod else "float32"
        fill = 0
        batch_size = batch
        footprints = np.full((scenes, 4), np.nan)  # covers nothing: batches by size

        class grid:  # noqa: N801 - a stand-in for the spec's grid
            @staticmethod
            def window_bounds(*window: Any) -> tuple[float, ...]:
                return (0.0, 0.0, 1.0, 1.0)

    spec = Spec()
    spec.errors = errors  # type: ignore[attr-defined]
    spec.scenes = [  # type: ignore[attr-defined]
        type("S", (), {"keep_file_nodata": False, "url": f"s{i}"})() for i in range(scenes)
    ]
    return spec


WINDOW = (0, 0, 6, 4)


def _values(index: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.full((1, 4, 6), index + 1, np.uint16)
    valid = np.zeros(values.shape, bool)
    valid[:, index % 4] = True  # scene i covers row i % 4
    valid[:, :, index % 6] = True  # and column i % 6: scenes overlap
    return values, valid


def _run(spec: Any, ids: list[int]) -> np.ndarray:
    """The chunk in a thread of its own (as a Dask thread runs it); its error re-raised."""
    result: list[Any] = []

    def chunk() -> None:
        try:
            result.append(
                chunk_task.run_here(chunk_task.mosaic_block(spec, np.array(ids), [1], WINDOW))
            )
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            result.append(error)

    worker = threading.Thread(target=chunk)
    worker.start()
    worker.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _reference(method: type, ids: list[int]) -> np.ndarray:
    m = method((1, 4, 6), np.dtype(np.uint16), 0)
    for i in ids:
        m.feed(*_values(i))
        if m.is_done:
            break
    return np.asarray(m.result())


@pytest.mark.parametrize("method", [FirstMethod, MeanMethod])
def test_scenes_read_out_of_order_are_fed_in_priority_order(
    monkeypatch: pytest.MonkeyPatch, method: type
) -> None:
    delays = {0: 0.06, 1: 0.0, 2: 0.03, 3: 0.01}  # the first scene lands last
    fed: list[int] = []

    async def fake_read(spec, index, bands, window, clear):  # type: ignore[no-untyped-def]
        await asyncio.sleep(delays[index])
        return (*_values(index), window, None)

    original = chunk_task._Feeder.feed

    def spy(self, scenes):  # type: ignore[no-untyped-def]
        fed.extend(i for i, _ in scenes)
        return original(self, scenes)

    monkeypatch.setattr(chunk_task, "_read_clear", fake_read)
    monkeypatch.setattr(chunk_task._Feeder, "feed", spy)
    got = _run(_spec(method), [0, 1, 2, 3])
    assert fed == [0, 1, 2, 3]
    np.testing.assert_array_equal(got, _reference(method, [0, 1, 2, 3]))


def test_a_scene_is_fed_before_the_batchs_slowest_read_lands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []

    async def fake_read(spec, index, bands, window, clear):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.1 if index == 3 else 0.0)
        events.append(f"read {index}")
        return (*_values(index), window, None)

    original = chunk_task._Feeder.feed

    def spy(self, scenes):  # type: ignore[no-untyped-def]
        events.extend(f"feed {i}" for i, _ in scenes)
        return original(self, scenes)

    monkeypatch.setattr(chunk_task, "_read_clear", fake_read)
    monkeypatch.setattr(chunk_task._Feeder, "feed", spy)
    _run(_spec(MeanMethod), [0, 1, 2, 3])
    assert events.index("feed 0") < events.index("read 3")
    assert events[-2:] == ["read 3", "feed 3"]


def test_errors_raise_gives_the_first_failure_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The failed read raises without waiting for the batch's slow reads to finish: they
    are cancelled, and have ended when the chunk raises (nothing of the chunk runs on;
    the shared opens and fetches they may await are no one reader's, see
    tests/daskcog/test_robust_cancel.py). Before, they were left running."""
    finished: list[int] = []
    cancelled: list[int] = []

    async def fake_read(spec, index, bands, window, clear):  # type: ignore[no-untyped-def]
        if index == 2:
            raise OSError("scene 2 is gone")
        try:
            await asyncio.sleep(0.0 if index == 0 else 0.3)
        except asyncio.CancelledError:
            cancelled.append(index)
            raise
        finished.append(index)
        return (*_values(index), window, None)

    monkeypatch.setattr(chunk_task, "_read_clear", fake_read)
    start = time.perf_counter()
    with pytest.raises(OSError, match="scene 2 is gone"):
        _run(_spec(FirstMethod), [0, 1, 2, 3])
    assert time.perf_counter() - start < 0.25
    assert {1, 3} <= set(cancelled)
    assert sorted(finished + cancelled) == [0, 1, 3]
    time.sleep(0.35)
    assert 1 not in finished and 3 not in finished


def test_errors_nodata_records_every_failure_of_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also those after the method is done (scene 0 fills the chunk): as before, every read
    of the batch is awaited and its failure recorded; nothing more is fed."""
    failures.clear_failures()

    async def fake_read(spec, index, bands, window, clear):  # type: ignore[no-untyped-def]
        if index in (1, 3):
            await asyncio.sleep(0.02)
            raise OSError(f"scene {index} is gone")
        values = np.full((1, 4, 6), index + 1, np.uint16)
        return values, np.ones(values.shape, bool), window, None

    monkeypatch.setattr(chunk_task, "_read_clear", fake_read)
    spec = _spec(FirstMethod, errors="nodata")
    got = _run(spec, [0, 1, 2, 3])
    assert (got == 1).all()
    urls = sorted(f.url for f in failures.local_failures(chunk_task.tokenize(spec)))
    assert urls == ["s1", "s3"]
    failures.clear_failures()
