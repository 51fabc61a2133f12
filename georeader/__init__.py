"""georeader: geo primitives and exact, async readers of (Cloud-Optimized) GeoTIFFs.

No Dask here: daskcog builds on these pieces.

The public surface, and the only one other packages import (so that georeader's
modules can move without breaking them):

* `georeader` (this module): the readers (`AsyncGeoTIFFReader`, `RasterioReader`),
  their contract (`GeoMetadata`, `GeoData`, `AsyncGeoData`: plain Protocols, and
  `conforms` to check an object against one at run time; `ReaderSurface`), the
  header opened once and shared (`open_file`, `OpenedFile`, `choose_level`,
  `PendingWindow`), the route names (`NATIVE`, `RASTERIO`) and the errors;
* the steps of one window's read over an opened header, for callers that read many
  windows of one header and hold no reader (daskcog's chunk tasks): `fetch_native`
  (remote, async) or `fetch_local` (`reads_locally` files, in the calling thread),
  `prefetch_window` (read-ahead into the range cache), then `assemble_window` (-> an
  `Assembled`: values and validity);
* `ignore_spurious` (`georeader.warnings_filter`): the one way to silence a known
  spurious warning of a dependency, thread-safely (a narrow filter, not catch_warnings);
* `georeader.errors`: every error class (one base, `GeoreaderError`);
* `georeader.geo`: windows, bounds, `GeoTensor`, nodata;
* `georeader.io`: stores, store options, signed URLs, retry, the range cache, upload;
* `georeader.write`: writing GeoTIFFs;
* `georeader.process_state`: the per-process settings (`Settings`, `configure`,
  `configured`, `settings`, also exported here) and the registry of caches, pools and
  tables (`register`, `Table`, `info`, `clear`) with its one fork rule.
"""

from georeader.contract import (
    AsyncGeoData,
    GeoData,
    GeoMetadata,
    ReaderSurface,
    check_no_warp,
    conforms,
)
from georeader.errors import (
    AccessDeniedError,
    BoundsOutsideError,
    GeoreaderError,
    InvalidHeaderError,
    InvalidURLError,
    NoGeoreferenceError,
    NotATiffError,
    ObjectNotFoundError,
    OptionValueError,
    ReaderNotOpenedError,
    StoreConfigError,
    StoreReadError,
    TileDecodeError,
    UnknownOptionError,
    UnsupportedLayoutError,
    WindowError,
)
from georeader.geo.geotensor import GeoTensor
from georeader.geo.translate import (
    from_async_geotiff_window,
    raster_array_to_geotensor,
    to_async_geotiff_window,
)
from georeader.header.route import NATIVE, RASTERIO
from georeader.io.stores import open_store, parse_location
from georeader.process_state import Settings, configure, configured, settings
from georeader.rasterio_reader import RasterioReader
from georeader.read.assemble import Assembled, assemble_window
from georeader.read.decode import COMPRESSION_NAMES
from georeader.read.fetch import (
    fetch_local,
    fetch_native,
    forget_file,
    prefetch_window,
    reads_locally,
)
from georeader.reader import (
    AsyncGeoTIFFReader,
    OpenedFile,
    PendingWindow,
    choose_level,
    forget_header_sizes,
    open_file,
)
from georeader.warnings_filter import ignore_spurious

__all__ = [
    "COMPRESSION_NAMES", "NATIVE", "Assembled", "assemble_window", "fetch_local",
    "fetch_native", "prefetch_window", "reads_locally", "RASTERIO", "Settings", "configure",
    "configured", "settings",
    "AccessDeniedError", "AsyncGeoData", "AsyncGeoTIFFReader", "BoundsOutsideError", "GeoData",
    "GeoMetadata", "GeoTensor", "GeoreaderError", "InvalidHeaderError", "InvalidURLError",
    "NoGeoreferenceError", "NotATiffError", "ObjectNotFoundError", "OpenedFile",
    "OptionValueError", "PendingWindow", "RasterioReader", "ReaderNotOpenedError",
    "ReaderSurface", "StoreConfigError", "StoreReadError", "TileDecodeError",
    "UnknownOptionError", "UnsupportedLayoutError", "WindowError", "check_no_warp", "conforms",
    "choose_level", "forget_file", "forget_header_sizes", "from_async_geotiff_window", "open_file",
    "open_store", "parse_location", "raster_array_to_geotensor", "to_async_geotiff_window",
    "ignore_spurious",
]
