"""`assemble_window` returns the validity it learnt (issue 20 item 5): an `Assembled`'s
`valid` is GDAL's mask (rasterio's `dataset_mask` / `read_masks`) inside the image and False
in the boundless padding, whichever source of validity the file has (nodata of an integer
or float band, the fill equal to nodata or not, an internal mask, alpha)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from georeader import Assembled, AsyncGeoTIFFReader
from tests.cogfactory import TiffSpec, cached_tiff
from tests.georeader.helpers import run

SPECS = {
    "u16-nodata": TiffSpec(dtype="uint16", nodata=0, count=2),
    "f32-nodata": TiffSpec(dtype="float32", nodata=-9999.0),
    "mask": TiffSpec(dtype="uint8", mask=True, count=3),
    "alpha": TiffSpec(dtype="uint8", alpha=True, count=4, photometric="RGB"),
}
WINDOWS = [Window(0, 0, 300, 217), Window(-20, 100, 90, 150), Window(250, -7, 64, 40)]


def _assembled(path: str, window: Window, fill: float | None) -> tuple[Assembled, np.ndarray]:
    async def go() -> tuple[Assembled, np.ndarray]:
        reader = await AsyncGeoTIFFReader.open(path)
        pending = await reader.fetch_window(window, fill_value=fill)
        values = (await reader.read_window(window, fill_value=fill)).values
        return pending.assembled(), values

    return run(go())


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"{w.col_off}_{w.row_off}")
@pytest.mark.parametrize("fill", [None, 7])
def test_valid_is_gdals_mask(name: str, window: Window, fill: float | None,
                             tmp_path_factory: pytest.TempPathFactory) -> None:
    path = str(cached_tiff(SPECS[name], tmp_path_factory.mktemp(name)))
    assembled, values = _assembled(path, window, fill)
    np.testing.assert_array_equal(assembled.values, values)  # the same values as a read
    with rasterio.open(path) as src:
        inside = window.intersection(Window(0, 0, src.width, src.height))
        masks = src.read_masks(window=inside)
    # outside the image nothing is valid (rasterio's boundless read_masks says 255 there for
    # an all-valid mask such as the alpha band's own: we differ, padding is never data)
    expected = np.zeros(assembled.values.shape, dtype=bool)
    r, c = int(inside.row_off - window.row_off), int(inside.col_off - window.col_off)
    expected[:, r : r + int(inside.height), c : c + int(inside.width)] = masks != 0
    np.testing.assert_array_equal(assembled.valid, expected)
