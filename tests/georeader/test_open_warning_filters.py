"""Opening a header never swaps the process's warning filters.

`warnings.catch_warnings` swaps the filters of the whole process, not of one thread: a header
opened on the I/O loop while another thread sits in its own `catch_warnings` could restore
that thread's filters under it (or have its own restored). async-geotiff warns only for
striped files; that warning is silenced by one narrow filter (`georeader.ignore_spurious`,
tests/georeader/test_robust_warnings.py), so no open enters `catch_warnings` (before, striped
files did: this test asserted that route; now it asserts the behaviour)."""

from __future__ import annotations

import asyncio
import contextlib
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine

from georeader.header import opening


def _write(path, **layout) -> str:
    profile = dict(driver="GTiff", width=64, height=64, count=1, dtype="uint16",
                   crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 5000000), **layout)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(64 * 64, dtype="uint16").reshape(1, 64, 64))
    return str(path)


@pytest.mark.parametrize("tiled", [True, False])
def test_no_header_enters_catch_warnings_and_striped_warns_nothing(
    tmp_path, monkeypatch, tiled
):
    layout = {"tiled": True, "blockxsize": 32, "blockysize": 32} if tiled else {"tiled": False}
    path = _write(tmp_path / "x.tif", **layout)
    entered = []
    real = warnings.catch_warnings

    @contextlib.contextmanager
    def counting(*args, **kwargs):
        entered.append(1)
        with real(*args, **kwargs):
            yield

    monkeypatch.setattr(opening.warnings, "catch_warnings", counting)
    with real(record=True) as seen:
        warnings.simplefilter("always")
        opened = asyncio.run(opening.open_file(path))
    assert opened.levels[0].width == 64
    assert entered == []
    assert not [w for w in seen if "Striped" in str(w.message)]
