"""One way to silence a known spurious warning (`georeader.ignore_spurious`), thread-safely.

async-geotiff warns "Striped GeoTIFFs are not supported" at the open of a striped file,
which georeader reads through GDAL: spurious. It was silenced with `catch_warnings`, which
swaps the whole process's filters: with headers opened in several threads while a user's
thread has its own `catch_warnings`, the threads restored each other's filters, so a
user's warnings could vanish and a broad "ignore UserWarning" could stay for good. Now a
narrow filter (that message, from georeader's opening module only) is kept in the
process's filters; daskcog's warp uses the same helper for rasterio's spurious warning.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import georeader
from georeader import ignore_spurious
from georeader.header import opening

STRIPED = "Striped GeoTIFFs are not supported."


def _write(path: Path, tiled: bool) -> str:
    layout = {"tiled": True, "blockxsize": 32, "blockysize": 32} if tiled else {"tiled": False}
    profile = dict(driver="GTiff", width=64, height=64, count=1, dtype="uint16",
                   crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 5000000), **layout)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(64 * 64, dtype="uint16").reshape(1, 64, 64))
    return str(path)


@pytest.fixture(scope="module")
def striped(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _write(tmp_path_factory.mktemp("striped") / "striped.tif", tiled=False)


def _broad_ignores() -> list[tuple]:  # type: ignore[type-arg]
    """Entries that ignore every UserWarning (what catch_warnings interleavings left)."""
    return [f for f in warnings.filters
            if f[0] == "ignore" and f[2] is UserWarning and f[1] is None and f[3] is None]


def test_the_helper_is_georeaders_public_surface() -> None:
    assert "ignore_spurious" in georeader.__all__


def test_a_striped_open_shows_nothing_and_a_users_warnings_still_show(striped: str) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.resetwarnings()  # a caller's filters without ours: the open puts it back
        warnings.simplefilter("always")
        opened = asyncio.run(opening.open_file(striped))
        warnings.warn("the user's own warning", UserWarning, stacklevel=1)
        warnings.warn_explicit(STRIPED, UserWarning, "user_code.py", 1, module="user_code")
    assert opened.levels[0].width == 64
    shown = [(str(w.message), w.filename) for w in seen]
    assert ("the user's own warning", __file__) in shown
    assert (STRIPED, "user_code.py") in shown  # the same words from elsewhere still show
    assert len(shown) == 2


def test_a_tiled_open_leaves_the_filters_alone(tmp_path: Path) -> None:
    path = _write(tmp_path / "tiled.tif", tiled=True)
    before = list(warnings.filters)
    asyncio.run(opening.open_file(path))
    assert warnings.filters == before


def test_the_filter_is_narrow_kept_once_and_first() -> None:
    with warnings.catch_warnings():
        for _ in range(3):
            ignore_spurious(UserWarning, "Spurious thing.", "some.module")
        ours = [f for f in warnings.filters if f[1] is not None and f[1].match("spurious thing.")]
        assert len(ours) == 1
        action, message, category, module, lineno = ours[0]
        assert (action, category, lineno) == ("ignore", UserWarning, 0)
        assert not message.match("Spurious thingX")  # the text, not a pattern
        assert module.match("some.module")
        assert not module.match("some.module.sub") and not module.match("someXmodule")
        warnings.simplefilter("always")  # a caller's catch-all before it: ours goes first
        ignore_spurious(UserWarning, "Spurious thing.", "some.module")
        assert warnings.filters[0] == ours[0]
        assert len([f for f in warnings.filters if f == ours[0]]) == 1


def test_striped_opens_in_threads_beside_a_users_catch_warnings(striped: str) -> None:
    """Several threads open striped headers while a user's thread enters and leaves its own
    `catch_warnings` and warns: the user sees every one of their warnings, and no broad
    "ignore" is left in the filters; a striped open after that still shows nothing."""
    stop = threading.Event()
    errors: list[BaseException] = []
    missed: list[int] = []

    def opener() -> None:
        try:
            for _ in range(80):
                asyncio.run(opening.open_file(striped))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def user() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("default")
                warnings.warn(f"user warning {k}", UserWarning, stacklevel=1)
            if not any(str(w.message) == f"user warning {k}" for w in seen):
                missed.append(k)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often: the interleavings happen
    try:
        _run_beside(user, opener, stop)
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    assert missed == []
    assert _broad_ignores() == []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        asyncio.run(opening.open_file(striped))
        warnings.warn("after", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["after"]


def _run_beside(user, opener, stop: threading.Event) -> None:  # noqa: ANN001
    with warnings.catch_warnings():
        users = threading.Thread(target=user)
        users.start()
        openers = [threading.Thread(target=opener) for _ in range(4)]
        for t in openers:
            t.start()
        for t in openers:
            t.join()
        stop.set()
        users.join()
