"""rasterio's spurious "no geotransform" warning from concurrent warps is filtered, narrowly.

rasterio's `reproject` of an array hides that warning about its own intermediate dataset
with `warnings.catch_warnings`, which is not thread-safe before Python 3.14, so concurrent
warps leaked it (daskcog.mosaics.warp.SPURIOUS_WARNING says why). Each warp makes sure
one filter for that message from `rasterio.warp` is in the process's filters; the same
warning from anywhere else (a user's own dataset opened with rasterio) is untouched.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from daskcog.mosaics import warp
from daskcog.mosaics.warp_plans import PLANS

MESSAGE = f"{warp.SPURIOUS_WARNING}. The identity matrix will be returned."
GEOMETRY = warp.WarpGeometry(
    Affine(10, 0, 300_000, 0, -10, 5_002_560), "EPSG:32634",
    Affine(10, 0, 830_000, 0, -10, 5_003_000), "EPSG:32633", (256, 256), 0.0, "nearest",
)


def _installed() -> tuple:  # type: ignore[type-arg]
    """daskcog's entry in the process's warning filters, after a warp."""
    warp.gdal_warp(np.ones((1, 8, 8), np.uint16), GEOMETRY)
    found = [
        f for f in warnings.filters
        if f[0] == "ignore" and f[2] is NotGeoreferencedWarning
        and f[1] is not None and f[1].match(MESSAGE) and f[3] is not None
    ]
    assert found, "a warp puts a filter for rasterio.warp's warning in the filters"
    return found[0]


def _shown(module: str) -> list[warnings.WarningMessage]:
    """What passes daskcog's entry alone (pytest's own configuration ignores every
    NotGeoreferencedWarning, so the test sets the filters itself)."""
    entry = _installed()
    with warnings.catch_warnings(record=True) as seen:
        warnings.resetwarnings()
        warnings.simplefilter("always")
        warnings.filters.insert(0, entry)
        warnings.warn_explicit(
            MESSAGE, NotGeoreferencedWarning, f"{module.replace('.', '/')}.py", 387,
            module=module,
        )
    return seen


def test_the_warp_warning_is_filtered_and_only_it() -> None:
    with warnings.catch_warnings():
        warnings.resetwarnings()  # a caller's catch_warnings dropped it: the next warp puts it back
        assert _installed()
    assert _shown("rasterio.warp") == []
    assert len(_shown("rasterio")) == 1  # rasterio.open of a user's dataset still warns
    assert len(_shown("user_code")) == 1


def test_concurrent_warps_print_no_warning() -> None:
    source = np.arange(256 * 256, dtype=np.uint16).reshape(1, 256, 256) % 5000 + 1
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(15):
                warp.gdal_warp(source, GEOMETRY)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with warnings.catch_warnings(record=True) as seen:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    PLANS.clear()
    assert errors == []
    assert [w for w in seen if issubclass(w.category, NotGeoreferencedWarning)] == []
