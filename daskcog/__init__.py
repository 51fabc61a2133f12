"""daskcog: Cloud-Optimized GeoTIFFs as Dask arrays, read asynchronously from any object store."""

from daskcog.geoarray import GeoArray
from daskcog.mosaic import mosaic
from daskcog.read_graph import ReadSpec, open
from daskcog.reader_cache import cache_clear, cache_info
from daskcog.stack import stack

__all__ = ["GeoArray", "ReadSpec", "cache_clear", "cache_info", "mosaic", "open", "stack"]
