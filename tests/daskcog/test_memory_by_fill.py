"""A scene's valid mask worked out as the first / last-valid method feeds it (issue 21,
MEMORY, `chunk_task.ByFill`): the same chunk, filled mask and count as feeding the mask
`nodata_mask` gives; other callers of `read_scene` (masks), other methods, kept file
nodata and clear masks still get or make the mask itself."""

from __future__ import annotations

import inspect
import threading
from typing import Any

import numpy as np
import pytest

from daskcog.mosaics import chunk_task
from daskcog.mosaics.chunk_task import ByFill
from daskcog.mosaics.methods import FirstMethod, LastMethod, MaxMethod
from georeader.geo import nodata_mask

RNG = np.random.default_rng(21)


def _scene(shape: tuple[int, ...], fill: int) -> np.ndarray:
    values = RNG.integers(0, 5, size=shape).astype(np.uint16)
    values[values == 4] = fill  # about a fifth of the pixels are the fill
    return values


@pytest.mark.parametrize("fill", [0, 3, 65535])
@pytest.mark.parametrize("method", [FirstMethod, LastMethod])
def test_feed_by_fill_is_feed_part_with_the_nodata_mask(method: type, fill: int) -> None:
    shape = (2, 40, 30)
    a, b = method(shape, np.dtype(np.uint16), fill), method(shape, np.dtype(np.uint16), fill)
    parts = [
        (slice(0, 40), slice(0, 30)), (slice(5, 25), slice(3, 30)), (slice(0, 7), slice(9, 10))
    ]
    for rows, cols in parts * 3:
        values = _scene((2, rows.stop - rows.start, cols.stop - cols.start), fill)
        if fill == 65535:
            values[values == 0] = 65535
        a.feed_by_fill(values, fill, rows, cols)
        valid = ~nodata_mask(values, fill)
        b.feed_part(values, valid, rows, cols)
        np.testing.assert_array_equal(a._filled, b._filled)
        assert a._left == b._left and a.is_done == b.is_done
    np.testing.assert_array_equal(a.result(), b.result())


def test_by_fill_mask_is_nodata_masks_rule() -> None:
    values = _scene((1, 9, 9), 7)
    np.testing.assert_array_equal(ByFill(7).mask(values), ~nodata_mask(values, 7))


WINDOW = (0, 0, 6, 4)


def _spec(method: type) -> Any:
    class Spec:
        method_class = method
        value_dtype = "uint16"
        out_dtype = "uint16"
        fill = 0
        errors = "raise"
        batch_size = 4
        footprints = np.full((3, 4), np.nan)
        scenes = [type("S", (), {"keep_file_nodata": False, "url": f"s{i}"})() for i in range(3)]

        class grid:  # noqa: N801 - a stand-in for the spec's grid
            @staticmethod
            def window_bounds(*window: Any) -> tuple[float, ...]:
                return (0.0, 0.0, 1.0, 1.0)

    return Spec()


def _run(spec: Any, clear: Any = None) -> np.ndarray:
    result: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: result.append(chunk_task.run_here(
        chunk_task.mosaic_block(spec, np.arange(3), [1], WINDOW, clear)
    )))
    worker.start()
    worker.join()
    return result[0]


@pytest.mark.parametrize("method", [FirstMethod, LastMethod, MaxMethod])
@pytest.mark.parametrize("lazy", [True, False])
def test_a_chunk_is_the_same_with_by_fill_or_masks(
    monkeypatch: pytest.MonkeyPatch, method: type, lazy: bool
) -> None:
    """The feeder takes a ByFill (first / last in place, other methods the mask) or a mask:
    the chunk is the same value for value; with a clear mask too."""
    scenes = [_scene((1, 4, 6), 0) for _ in range(3)]
    asked: list[bool] = []

    async def fake_read(spec, index, bands, window, *, lazy_valid=False):  # type: ignore[no-untyped-def]
        asked.append(lazy_valid)
        values = scenes[index]
        valid = ByFill(0) if lazy else ~nodata_mask(values, 0)
        return values, valid, window

    monkeypatch.setattr(chunk_task, "read_scene", fake_read)
    fed = scenes[::-1] if method.reverse else scenes  # last: the lowest priority first
    m = method((1, 4, 6), np.dtype(np.uint16), 0)
    for values in fed:
        m.feed(values, values != 0)
    np.testing.assert_array_equal(_run(_spec(method)), m.result())
    assert asked and all(asked)  # the chunk's own reads ask for a ByFill

    keep = np.zeros((4, 6), bool)
    keep[1:3] = True

    async def clear(index: int) -> np.ndarray:
        return keep

    m = method((1, 4, 6), np.dtype(np.uint16), 0)
    for values in fed:
        m.feed(values, (values != 0) & keep)
    np.testing.assert_array_equal(_run(_spec(method), clear), m.result())


def test_read_scene_callers_other_than_the_feed_get_masks() -> None:
    """Only `_read_clear` asks for a ByFill: a read started elsewhere (masks' reads, a
    user's call) gets the mask."""
    assert inspect.signature(chunk_task.read_scene).parameters["lazy_valid"].default is False
