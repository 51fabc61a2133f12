"""Reading one COG as a lazy dask array: `daskcog.open` and its graph (`cog_array`), the
array type it returns (`geoarray`), the checks of its arguments, tile-aligned chunking, and
the xarray backend. The per-process machinery the chunk tasks run on (I/O loop, reader
cache, read-ahead, failure records) is in `daskcog.runtime`."""
