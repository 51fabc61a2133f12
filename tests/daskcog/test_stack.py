"""daskcog.stack: (time, band, y, x) on a common grid; each step equals the mosaic of its scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import daskcog
from daskcog.mosaics.stack import GeoStack
from tests.conftest import REAL_MISSING
from tests.daskcog.test_mosaic import REAL_SOURCE, mixed_scene_paths, real_scene_paths, same


@pytest.fixture(scope="module")
def real_scenes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    if not REAL_SOURCE.is_file():
        pytest.skip(REAL_MISSING)
    return real_scene_paths(tmp_path_factory.getbasetemp() / "mosaic-scenes")


@pytest.fixture(scope="module")
def mixed_scenes(tmp_path_factory: pytest.TempPathFactory, real_scenes: list[Path]) -> list[Path]:
    return mixed_scene_paths(tmp_path_factory.getbasetemp() / "mosaic-scenes")


def test_one_step_per_scene_on_the_union_grid(real_scenes: list[Path]) -> None:
    stack = daskcog.stack(real_scenes, chunks=256)
    union = daskcog.mosaic(real_scenes, chunks=256)
    assert isinstance(stack, GeoStack)
    assert stack.shape == (len(real_scenes), *union.shape)
    assert stack.transform == union.transform and stack.crs == union.crs
    assert stack.keys == tuple(sorted(p.as_uri() for p in real_scenes))
    assert stack.data.chunks[0] == (1,) * len(real_scenes)
    values = stack.data.compute()
    for t, key in enumerate(stack.keys):
        expected = daskcog.mosaic([key], like=union, chunks=256).compute().values
        assert same(values[t], expected)
        assert same(stack[t].compute().values, expected)


def test_group_by_callable_mosaics_each_group(real_scenes: list[Path]) -> None:
    def date_of(url: str) -> str:
        return "2024-01" if url.endswith(("cut0.tif", "cut2.tif")) else "2024-02"

    stack = daskcog.stack(real_scenes, group_by=date_of, method="first", chunks=300)
    assert stack.times == ("2024-01", "2024-02")
    assert [len(u) for u in stack.urls] == [2, 2]
    values = stack.data.compute()
    for t, paths in enumerate([[real_scenes[0], real_scenes[2]], [real_scenes[1], real_scenes[3]]]):
        expected = daskcog.mosaic(paths, like=stack, chunks=300).compute().values
        assert same(values[t], expected)


def test_group_by_keys_and_methods(real_scenes: list[Path]) -> None:
    keys = [2, 1, 2, 1]
    stack = daskcog.stack(real_scenes, group_by=keys, method="count", chunks=300)
    assert stack.times == (1, 2)
    assert stack.dtype == np.uint16 and stack.nodata is None
    values = stack.data.compute()
    for t, paths in enumerate([[real_scenes[1], real_scenes[3]], [real_scenes[0], real_scenes[2]]]):
        expected = daskcog.mosaic(paths, like=stack, method="count", chunks=300).compute().values
        assert same(values[t], expected)
    with pytest.raises(ValueError, match="3 keys for 4 sources"):
        daskcog.stack(real_scenes, group_by=[1, 2, 3])


def test_mixed_crs_stack_and_xarray(mixed_scenes: list[Path]) -> None:
    stack = daskcog.stack(mixed_scenes, resolution=100.01126757344893, chunks=256)
    assert stack.crs.to_epsg() == 32621
    values = stack.data.compute()
    for t, key in enumerate(stack.keys):
        expected = daskcog.mosaic([key], like=stack, chunks=256).compute().values
        assert same(values[t], expected)
        assert (values[t] != 0).mean() > 0.1
    array = stack.to_xarray(name="b1")
    assert array.dims == ("time", "band", "y", "x")
    assert list(array.time.values) == list(stack.keys)
    assert float(array.x[0]) == stack.transform.c + stack.transform.a / 2
    pytest.importorskip("rioxarray")
    assert array.rio.crs.to_epsg() == 32621
    assert array.rio.transform() == stack.transform


def test_stack_graph_is_one_task_per_chunk(real_scenes: list[Path]) -> None:
    stack = daskcog.stack(real_scenes, chunks=128)
    assert len(stack.data.__dask_graph__()) == stack.data.npartitions + 1
    # same inputs, same keys (deterministic tokens)
    assert stack.data.name == daskcog.stack(real_scenes, chunks=128).data.name
