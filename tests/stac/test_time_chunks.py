"""The time axis' chunks of `daskcog.load` follow Dask's rules.

Before, `chunks={"time": -1}` (Dask's and odc-stac's "the whole axis", the way to load a
time series ready for `.median("time")`) failed with Dask's "Empty tuples are not allowed",
2.5 became 2, 0 became 1 and "auto" failed in `int()`. Now: -1 and None are all steps in one
chunk, an int that size, a tuple of sizes those chunks, "auto" (and no "time" key) one step
per chunk; anything else is a clear WindowError (a ValueError) naming the value."""

from __future__ import annotations

import numpy as np
import pytest

import daskcog
from georeader.errors import WindowError
from tests.stac import season


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return season.s2_season(tmp_path_factory.mktemp("tchunks"), dates=5, size=64, seed=11)


def _load(items: list[dict], time: object) -> daskcog.StacStack:
    return daskcog.load(items, bands=["B02"], groupby="id",
                        chunks={"time": time, "x": 32, "y": 32})


@pytest.mark.parametrize(("time", "expected"), [
    (-1, (5,)), (None, (5,)), (1, (1, 1, 1, 1, 1)), (2, (2, 2, 1)), (5, (5,)), (9, (5,)),
    ("auto", (1, 1, 1, 1, 1)), ((2, 3), (2, 3)), (np.int64(3), (3, 2)),
])
def test_time_chunks_follow_dasks_rules(items: list[dict], time: object,
                                        expected: tuple[int, ...]) -> None:
    assert _load(items, time).data.chunks[0] == expected


def test_no_time_key_is_one_step_per_chunk(items: list[dict]) -> None:
    stack = daskcog.load(items, bands=["B02"], groupby="id", chunks={"x": 32, "y": 32})
    assert stack.data.chunks[0] == (1, 1, 1, 1, 1)


def test_the_values_do_not_depend_on_the_time_chunks(items: list[dict]) -> None:
    one = _load(items, 1).data.compute()
    np.testing.assert_array_equal(_load(items, -1).data.compute(), one)
    np.testing.assert_array_equal(_load(items, (2, 3)).data.compute(), one)


@pytest.mark.parametrize("time", [0, -2, 2.5, "x", True, (2, 2), (0, 5), (2, -1), "1", "64MiB"])
def test_other_time_chunks_are_refused_by_name(items: list[dict], time: object) -> None:
    with pytest.raises(WindowError, match=r"chunks\['time'\]") as caught:
        _load(items, time)
    assert repr(time) in str(caught.value)


@pytest.mark.parametrize(("axis", "value"), [
    ("x", 2.5), ("y", True), ("x", (32, 34)), ("band", 1.5), ("x", -3), ("y", "32 px"),
])
def test_plane_chunks_that_are_no_size_are_refused_by_name(
    items: list[dict], axis: str, value: object
) -> None:
    """Before: x=2.5 became 2 and y=True became 1 (rounded to the tile grid), silently."""
    chunks: dict[str, object] = {"x": 32, "y": 32}
    chunks[axis] = value
    with pytest.raises(WindowError, match=rf"chunks\['{axis}'\]|byte size") as caught:
        daskcog.load(items, bands=["B02"], groupby="id", chunks=chunks)
    assert repr(value) in str(caught.value)


def test_a_whole_float_is_that_size(items: list[dict]) -> None:
    stack = daskcog.load(items, bands=["B02"], groupby="id",
                         chunks={"x": 32.0, "y": 16, "time": 2.0})
    assert stack.data.chunks[0] == (2, 2, 1)
    assert stack.data.chunksize[2:] == (16, 32)
