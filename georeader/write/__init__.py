"""georeader.write: a GeoTensor or a Dask-computed raster to a (Cloud-Optimized) GeoTIFF.

The options (`WriteOptions`, `resolve_options`, `COMPRESSIONS`), the rasterio
profile (`tiff_profile`), overview factors, a temporary-file-then-rename write
(`write_via_temp`) and GDAL's CreateCopy with a progress callback that can cancel
(`create_copy`, `StageProgress`, `WriteCancelled`). daskcog imports these names
from here, never from the modules that define them, so the modules can move.
"""

from georeader.write.gdal_progress import StageProgress, WriteCancelled, create_copy
from georeader.write.gdal_progress import available as progress_available
from georeader.write.geotiff import (
    COMPRESSIONS,
    ProgressCallback,
    WriteError,
    WriteOptions,
    overview_factors,
    resampling_enum,
    resolve_options,
    tiff_profile,
    write_geotensor,
    write_via_temp,
)

__all__ = [
    "COMPRESSIONS", "ProgressCallback", "StageProgress", "WriteCancelled", "WriteError",
    "WriteOptions", "create_copy", "overview_factors", "progress_available", "resampling_enum",
    "resolve_options", "tiff_profile", "write_geotensor", "write_via_temp",
]
