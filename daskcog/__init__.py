"""daskcog: Cloud-Optimized GeoTIFFs as Dask arrays, read asynchronously from any object store."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from daskcog.mosaics.masks import Mask
from daskcog.mosaics.methods import Quantile
from daskcog.mosaics.mosaic import mosaic
from daskcog.mosaics.stack import stack
from daskcog.reading.cog_array import ReadSpec, open
from daskcog.reading.geoarray import GeoArray
from daskcog.runtime.failures import failure_report
from daskcog.runtime.reader_cache import cache_clear, cache_info
from daskcog.stac.load import load
from georeader.io import RetryPolicy

try:
    __version__ = _version("daskcog")  # the installed distribution's, one source: pyproject
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "GeoArray", "Mask", "Quantile", "ReadSpec", "RetryPolicy", "__version__", "cache_clear",
    "cache_info", "failure_report", "load", "mosaic", "open", "stack",
]
