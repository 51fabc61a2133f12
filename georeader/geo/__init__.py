"""georeader.geo: the geometry of a raster, as pure values.

Windows in pixel space and their georeferenced bounds, the `GeoTensor` value
(pixels with a transform and a CRS), the `OnGrid` mixin for anything that sits on a
pixel grid, and the nodata rules. Nothing here does I/O. daskcog imports these
names from here, never from the modules that define them, so the modules can move.
"""

from georeader.errors import WindowError
from georeader.geo.geotensor import GeoTensor, norm_crs
from georeader.geo.gridded import OnGrid
from georeader.geo.nodata import check_fill, fits_dtype, nodata_mask
from georeader.geo.windows import (
    Bounds,
    GeoSlice,
    clip_window,
    geoslice_window,
    iter_tiles,
    to_int_window,
    window_bounds,
    window_from_bounds,
    window_transform,
)

__all__ = [
    "Bounds", "GeoSlice", "GeoTensor", "OnGrid", "WindowError", "check_fill", "clip_window",
    "fits_dtype", "geoslice_window", "iter_tiles", "nodata_mask", "norm_crs", "to_int_window",
    "window_bounds", "window_from_bounds", "window_transform",
]
