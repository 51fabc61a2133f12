"""Translators for users who hold async-geotiff objects.

georeader reads with its own plan / fetch / assemble steps, but a user who
already has an `async_geotiff.GeoTIFF` open (or reads with its `read()`) can
move between the two worlds with these pure helpers: rasterio `Window` <->
`async_geotiff.Window`, and an `async_geotiff.RasterArray` -> `GeoTensor` whose
invalid pixels (outside the internal mask, or equal to nodata when there is no
mask: GDAL's rule) hold the fill value, as every georeader read does.
"""

from __future__ import annotations

from typing import Any

import async_geotiff
import numpy as np
from rasterio.windows import Window

from georeader.errors import WindowError
from georeader.geo import windows
from georeader.geo.geotensor import GeoTensor
from georeader.geo.nodata import check_fill, default_fill, nodata_mask


def to_async_geotiff_window(window: Window) -> async_geotiff.Window:
    """The `async_geotiff.Window` of a whole-pixel rasterio window inside the image's origin.

    async-geotiff reads the WHOLE image when given anything but its own Window,
    and refuses negative offsets: this raises `WindowError` for fractional,
    empty or negative windows instead.
    """
    window = windows.to_int_window(window)
    if window.col_off < 0 or window.row_off < 0:
        raise WindowError(
            f"window {window!r} starts before the image; async-geotiff has no boundless reads "
            "(clip it with georeader.geo.windows.clip_window, or read with AsyncGeoTIFFReader)"
        )
    return async_geotiff.Window(
        col_off=int(window.col_off),
        row_off=int(window.row_off),
        width=int(window.width),
        height=int(window.height),
    )


def from_async_geotiff_window(window: async_geotiff.Window) -> Window:
    """The rasterio `Window` of an `async_geotiff.Window`."""
    return Window(window.col_off, window.row_off, window.width, window.height)


def raster_array_to_geotensor(array: Any, *, fill_value: float | None = None) -> GeoTensor:
    """A GeoTensor of an `async_geotiff.RasterArray`, its invalid pixels set to the fill value.

    Invalid pixels are those outside the internal mask when the file has one,
    else those equal to the nodata value (GDAL's rule, so the result matches
    rasterio's masked reads). `fill_value` defaults to nodata, else 0.
    """
    data = np.asarray(array.data)
    nodata = array.nodata
    fill = check_fill(
        default_fill(nodata, data.dtype) if fill_value is None else fill_value, data.dtype
    )
    invalid = (
        ~np.asarray(array.mask, dtype=bool) if array.mask is not None else nodata_mask(data, nodata)
    )
    if invalid is not None and invalid.any():
        data = np.where(invalid, np.asarray(fill, dtype=data.dtype), data)
    return GeoTensor(data, array.transform, array.crs, fill_value_default=fill)
