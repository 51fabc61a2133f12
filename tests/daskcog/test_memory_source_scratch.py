"""A warp's source window decoded into a lent buffer (issue 21, MEMORY,
`chunk_task.SOURCE_SCRATCH`): the buffer comes back for the next window, no returned
array ever shares its memory, the pool keeps at most `KEEP` buffers, and a mosaic of
warped scenes is the same with it as with fresh arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import daskcog
from daskcog.mosaics import chunk_task
from daskcog.mosaics.chunk_task import SOURCE_SCRATCH, SourceScratch


def test_a_lent_buffer_is_reused_and_the_pool_is_bounded() -> None:
    pool = SourceScratch()
    with pool.lend() as take:
        first = take(1000)
        assert take(900) is first  # one buffer for the whole block
    with pool.lend() as take:
        assert take(1000) is first  # back in the pool
    held = []
    for _ in range(pool.KEEP + 3):  # more blocks at once than the pool keeps
        block = pool.lend()
        take = block.__enter__()
        held.append((block, take(5000)))
    for block, _ in held:
        block.__exit__(None, None, None)
    assert pool.info()["buffers"] == pool.KEEP
    pool.clear()
    assert pool.info() == {"buffers": 0, "bytes": 0}


def test_a_larger_window_gets_a_larger_buffer() -> None:
    pool = SourceScratch()
    with pool.lend() as take:
        small = take(100)
    with pool.lend() as take:
        big = take(10_000)
        assert big is not small and big.nbytes >= 10_000


@pytest.fixture
def warped_scenes(tmp_path: Path) -> list[str]:
    """Two overlapping uint16 scenes in EPSG:32634, warped onto an EPSG:32633 grid."""
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(4)
    paths = []
    for k, x0 in enumerate((166_000.0, 168_000.0)):
        data = rng.integers(1, 4000, size=(1, 300, 320)).astype(np.uint16)
        data[0, 100:140, 50:90] = 0
        path = tmp_path / f"s{k}.tif"
        with rasterio.open(
            path, "w", driver="GTiff", width=320, height=300, count=1, dtype="uint16",
            crs="EPSG:32634", transform=Affine(10, 0, x0, 0, -10, 5_500_000), nodata=0,
            tiled=True, blockxsize=128, blockysize=128, compress="deflate",
        ) as dst:
            dst.write(data)
        paths.append(str(path))
    return paths


def test_a_warped_mosaic_is_the_same_with_the_lent_buffers(
    warped_scenes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lent: list[np.ndarray] = []
    returned: list[np.ndarray] = []
    original_lend = SourceScratch.lend
    original_read = chunk_task.read_scene

    def spy_lend(self):  # type: ignore[no-untyped-def]
        block = original_lend(self)
        take = block.__enter__()

        class Block:
            def __enter__(self):  # type: ignore[no-untyped-def]
                def spy(nbytes: int) -> np.ndarray:
                    got = take(nbytes)
                    lent.append(got)
                    return got
                return spy

            def __exit__(self, *exc):  # type: ignore[no-untyped-def]
                return block.__exit__(*exc)

        return Block()

    async def spy_read(*args, **kwargs):  # type: ignore[no-untyped-def]
        got = await original_read(*args, **kwargs)
        if got is not None:
            returned.append(got[0])
        return got

    def mosaic() -> np.ndarray:
        return daskcog.mosaic(
            warped_scenes, crs="EPSG:32633", resolution=10, chunks=128
        ).compute(scheduler="threads").values

    monkeypatch.setattr(SourceScratch, "lend", spy_lend)
    monkeypatch.setattr(chunk_task, "read_scene", spy_read)
    with_lent = mosaic()
    assert lent and returned
    assert not any(np.shares_memory(v, b) for v in returned for b in lent)
    SOURCE_SCRATCH.clear()

    def fresh(self):  # type: ignore[no-untyped-def]
        class Block:
            def __enter__(self):  # type: ignore[no-untyped-def]
                return lambda nbytes: np.empty(nbytes, np.uint8)

            def __exit__(self, *exc):  # type: ignore[no-untyped-def]
                return None

        return Block()

    monkeypatch.setattr(SourceScratch, "lend", fresh)
    np.testing.assert_array_equal(with_lent, mosaic())
