"""daskcog's per-process state, in georeader's one registry.

Every per-process cache, pool or table of daskcog (the reader cache, the I/O loop,
read-ahead's requested chunks, failure records, built credential providers, the CRS
tables, stac-geoparquet tables, function caches) registers itself where it is defined,
through the names below, with its `info()` and `clear()` (bounded tables are
`Table`s, georeader's one LRU). georeader's registry
then gives one fork rule (each piece reset once in a forked child, through one
`os.register_at_fork` hook) and `info()` / `clear()` over all, which
`daskcog.cache_info()` / `daskcog.cache_clear()` expose.

This module is the one place daskcog names the registry's home in georeader.
"""

from __future__ import annotations

from georeader.process_state import Table, clear, info, register, register_function_cache

__all__ = ["Table", "clear", "info", "register", "register_function_cache"]
