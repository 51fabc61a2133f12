"""Issue 21's CPU levers on the chunk path: the method is fed in the chunk's Dask thread (not
on the I/O loop), the first-valid method fills exactly as before with its reused scratch
mask, and GDAL's warp writes every destination pixel itself (no fill of ours first)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from affine import Affine

from daskcog.mosaics import chunk_task, methods
from daskcog.mosaics import warp as warp_mod
from daskcog.mosaics.methods import FirstMethod, LastMethod


def _old_first(shape, dtype, fill, feeds):  # the rule before issue 21's change, written out
    out = np.full(shape, fill, dtype=dtype)
    filled = np.zeros(shape, dtype=bool)
    for key, values, valid in feeds:
        take = valid & ~filled[key]
        np.copyto(out[key], values, where=take, casting="unsafe")
        filled[key] |= take
        if filled.all():
            break
    return out, bool(filled.all())


@pytest.mark.parametrize("method_class", [FirstMethod, LastMethod])
def test_first_valid_fills_as_before(method_class) -> None:
    rng = np.random.default_rng(7)
    shape = (2, 40, 50)
    for _ in range(20):
        feeds = []
        for _ in range(int(rng.integers(1, 7))):
            r0, c0 = int(rng.integers(0, 30)), int(rng.integers(0, 40))
            r1, c1 = int(rng.integers(r0 + 1, 41)), int(rng.integers(c0 + 1, 51))
            key = (slice(None), slice(r0, r1), slice(c0, c1))
            values = rng.integers(1, 1000, size=(2, r1 - r0, c1 - c0)).astype(np.uint16)
            valid = rng.random(values.shape) < 0.7
            feeds.append((key, values, valid))
        feeds.append(((slice(None), slice(0, 40), slice(0, 50)),
                      np.full(shape, 5, np.uint16), rng.random(shape) < 0.98))
        method = method_class(shape, np.dtype(np.uint16), 0)
        done = False
        for key, values, valid in feeds:
            method.feed_part(values, valid, key[1], key[2])
            if method.is_done:
                done = True
                break
        want, want_done = _old_first(shape, np.uint16, 0, feeds)
        assert np.array_equal(method.result(), want)
        assert done == want_done


def test_first_done_when_one_scene_covers_all() -> None:
    method = FirstMethod((1, 4, 4), np.dtype(np.float32), np.nan)
    assert not method.is_done
    method.feed(np.ones((1, 4, 4), np.float32), np.ones((1, 4, 4), bool))
    assert method.is_done


def test_method_fed_in_the_chunk_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mosaic_block` under `run_here`: the method's numpy work runs in the calling thread."""
    threads: list[str] = []
    original = methods.FirstMethod._feed_at

    def spy(self, key, values, valid):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return original(self, key, values, valid)

    monkeypatch.setattr(methods.FirstMethod, "_feed_at", spy)

    async def fake_read(spec, index, bands, window, clear):  # type: ignore[no-untyped-def]
        values = np.full((1, window[3], window[2]), index + 1, np.uint16)
        valid = np.zeros(values.shape, bool)
        valid[:, index::3] = True
        return values, valid, window, None

    monkeypatch.setattr(chunk_task, "_read_clear", fake_read)

    class Spec:
        method_class = FirstMethod
        value_dtype = "uint16"
        out_dtype = "uint16"
        fill = 0
        errors = "raise"
        batch_size = 2
        scenes = [type("S", (), {"keep_file_nodata": False})()] * 3
        footprints = np.zeros((3, 4))

        class grid:  # noqa: N801 - a stand-in for the spec's grid
            @staticmethod
            def window_bounds(*window):  # type: ignore[no-untyped-def]
                return (1.0, 1.0, 0.0, 0.0)  # no footprint covers it: batches by size

    result: list[np.ndarray] = []
    worker = threading.Thread(
        target=lambda: result.append(chunk_task.run_here(
            chunk_task.mosaic_block(Spec(), np.arange(3), [1], (0, 0, 6, 3))  # type: ignore[arg-type]
        )),
        name="chunk-thread",
    )
    worker.start()
    worker.join()
    assert threads and set(threads) == {"chunk-thread"}
    assert result[0].tolist() == [[[1] * 6, [2] * 6, [3] * 6]]


@pytest.mark.parametrize("fill", [0, 7, float("nan")])
def test_gdal_warp_writes_every_pixel(fill: float) -> None:
    """GDAL's warp (default tolerance) fills the destination itself: the result is the same
    whether the array it writes into held the fill value or anything else first."""
    dtype = np.float32 if fill != fill else np.uint16
    source = np.arange(1, 64 * 64 + 1, dtype=dtype).reshape(1, 64, 64)
    src = Affine(10, 0, 166_000, 0, -10, 5_500_000)
    for dx, shape in ((0, (80, 90)), (-5_000, (40, 40)), (1_000_000, (30, 30))):
        dst = Affine(10, 0, 639_130 + dx, 0, -10, 5_500_230)
        geometry = warp_mod.WarpGeometry(src, "EPSG:32634", dst, "EPSG:32633", shape, fill,
                                         "nearest")
        got = warp_mod.gdal_warp(source, geometry)
        want = np.full((1, *shape), fill, dtype=dtype)
        warp_mod._gdal_warp_into(source, want, geometry, fill)
        assert np.array_equal(got, want, equal_nan=True)
