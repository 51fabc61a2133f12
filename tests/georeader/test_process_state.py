"""georeader's per-process state: one settings value, one registry, one fork rule."""

from __future__ import annotations

import os
import sys

import pytest

import georeader
from georeader import process_state
from georeader.errors import OptionValueError, UnknownOptionError
from georeader.process_state import Table


def test_georeaders_own_pieces_are_registered() -> None:
    names = set(process_state.registered())
    assert {
        "georeader.stores", "georeader.header_sizes", "georeader.store_limits",
        "georeader.range_cache", "georeader.decode_pool", "georeader.local_files",
        "georeader.wkt_crs", "georeader.obstore_option_names",
    } <= names
    info = process_state.info()
    assert info["georeader.header_sizes"].maxsize == georeader.settings().header_hints
    assert info["georeader.range_cache"].capacity == georeader.settings().tile_cache_bytes


def test_a_misspelt_or_wrong_setting_is_refused() -> None:
    before = georeader.settings()
    with pytest.raises(UnknownOptionError, match="header_hint.*the settings are"):
        georeader.configure(header_hint=3)
    with pytest.raises(TypeError):
        georeader.configure(header_hint=3)
    with pytest.raises(OptionValueError, match="store_cache_size=-1"):
        georeader.configure(store_cache_size=-1)
    with pytest.raises(OptionValueError, match="native_stores='yes'"):
        georeader.configure(native_stores="yes")
    assert georeader.settings() == before  # nothing half applied


def test_configured_resizes_and_restores() -> None:
    from georeader.io import RANGE_CACHE

    before = georeader.settings()
    with georeader.configured(tile_cache_bytes=1234, header_hints=7) as now:
        assert now.tile_cache_bytes == RANGE_CACHE.capacity == 1234
        assert process_state.info()["georeader.header_sizes"].maxsize == 7
    assert georeader.settings() == before
    assert RANGE_CACHE.capacity == before.tile_cache_bytes


def test_table_is_a_bounded_lru() -> None:
    table: Table[str, int] = Table("test.lru", lambda s: 2)
    try:
        table["a"], table["b"] = 1, 2
        assert table.get("a") == 1  # refreshed: "b" is now the oldest
        table["c"] = 3
        assert "b" not in table and "a" in table and "c" in table and len(table) == 2
        assert table.get_or_set("d", lambda: 4) == 4 and table.get_or_set("d", lambda: 5) == 4
        table.drop_where(lambda key: key == "d")
        assert "d" not in table
        process_state.clear("test.lru")
        assert len(table) == 0
    finally:
        process_state._registry.pop("test.lru")


def test_table_bounded_by_bytes_counts_hits_and_misses() -> None:
    """The one LRU with a size function: bounded by the sum of sizes, an entry larger than
    the whole bound is not kept, a bound from elsewhere is re-read by `check_bound`."""
    bound = {"bytes": 10}
    registered = process_state.registered()
    table: Table[str, bytes] = Table(None, lambda s: bound["bytes"], size=len)
    table["a"], table["b"] = b"1234", b"5678"
    assert table.get("a") == b"1234"  # refreshed: "b" is now the oldest
    table["c"] = b"90ab"  # 12 bytes > 10: the oldest goes
    assert "b" not in table and "a" in table and "c" in table
    table["huge"] = b"x" * 11
    assert "huge" not in table and len(table) == 2
    assert table.get("b") is None and table.get("b", count=False) is None
    info = table.info()
    assert (info.size, info.hits, info.misses, info.size_bytes) == (2, 1, 1, 8)
    assert table.get_or_set("d", lambda: b"1") == b"1" and table.info().size_bytes == 9
    assert table.pop("d") == b"1" and table.pop("d") is None
    assert table.check_bound() == 10 and len(table) == 2
    bound["bytes"] = 0  # a changed bound empties the table; 0 keeps nothing
    assert table.check_bound() == 0 and len(table) == 0
    table["e"] = b"1"
    assert len(table) == 0 and table.capacity == 0
    table.clear()
    assert (table.info().hits, table.info().misses) == (0, 0)
    assert process_state.registered() == registered  # unnamed: its owner registers it


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_a_forked_child_starts_with_empty_tables() -> None:
    table: Table[str, int] = Table("test.fork", lambda s: 8)
    try:
        table["parent"] = 1
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what it inherited, then leave at once
            os.close(read)
            os.write(write, str(len(table)).encode())
            os._exit(0)
        os.close(write)
        seen = os.read(read, 16).decode()
        os.close(read)
        os.waitpid(pid, 0)
        assert seen == "0"
        assert len(table) == 1  # the parent keeps its own
    finally:
        process_state._registry.pop("test.fork")
