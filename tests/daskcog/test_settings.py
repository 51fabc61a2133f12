"""daskcog's settings come from dask.config (`daskcog.*`, defaults in daskcog/daskcog.yaml),
read where they are used; the retry policy is a value passed down to every read, the
header fetch included (issue 20 item 3)."""

from __future__ import annotations

from typing import Any

import dask.config
import pytest

import daskcog
from daskcog.runtime import failures, read_ahead, reader_cache, settings
from georeader.io import RetryPolicy

SHORT = RetryPolicy(attempts=2, backoff=0.01, total_seconds=1)


def test_defaults_come_from_the_yaml_file() -> None:
    assert dask.config.get("daskcog.reader-cache-size") == 256
    assert dask.config.get("daskcog.readahead-bytes") == 16 << 20
    assert settings.DEFAULTS_FILE.name == "daskcog.yaml"


def test_dask_config_set_takes_effect_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_ahead, "BUDGET", None)
    with dask.config.set({"daskcog.reader-cache-size": 3, "daskcog.readahead-bytes": 0}):
        assert daskcog.cache_info().maxsize == 3
        assert read_ahead.budget_bytes() == 0
    assert daskcog.cache_info().maxsize == 256
    assert read_ahead.budget_bytes() == 16 << 20


def test_failure_records_are_bounded() -> None:
    failures.clear_failures()
    with dask.config.set({"daskcog.failure-records": 3}):
        for i in range(5):
            failures.record("a", "u", (i, 0, 1, 1), OSError("x"))
        assert [f.window[0] for f in failures.local_failures("a")] == [2, 3, 4]
        assert failures.info()["dropped"] == 2
    failures.clear_failures()


@pytest.fixture
def seen_retries(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The retry policy of every header fetch the reader cache makes."""
    seen: list[Any] = []
    real = reader_cache.open_file

    async def recording(url: str, **kwargs: Any) -> Any:
        seen.append(kwargs.get("retry"))
        return await real(url, **kwargs)

    monkeypatch.setattr(reader_cache, "open_file", recording)
    daskcog.cache_clear()
    yield seen
    daskcog.cache_clear()


def test_open_retry_reaches_the_header_fetch_and_the_spec(gen_paths, seen_retries) -> None:
    arr = daskcog.open(gen_paths["multi-tile"], retry=SHORT)
    assert seen_retries == [SHORT]
    assert arr.source.retry == SHORT


def test_mosaic_retry_reaches_the_header_fetch_and_the_spec(gen_paths, seen_retries) -> None:
    out = daskcog.mosaic([gen_paths["multi-tile"]], retry=SHORT)
    assert seen_retries == [SHORT]
    daskcog.cache_clear()
    seen_retries.clear()
    out.data[:, :8, :8].compute(scheduler="sync")
    assert seen_retries == [SHORT]  # the chunk task's header fetch: the graph's policy


def test_georeader_settings_follow_dask_config() -> None:
    import georeader
    from daskcog.runtime import settings as daskcog_settings

    before = georeader.settings().max_concurrency
    with dask.config.set({"daskcog.georeader.max-concurrency": 7}):
        daskcog_settings.apply_georeader()
        assert georeader.settings().max_concurrency == 7
    daskcog_settings.apply_georeader()
    assert georeader.settings().max_concurrency == before


def test_process_state_is_one_registry_over_both_packages() -> None:
    tables = daskcog.cache_info().tables
    for name in ("daskcog.reader-cache", "daskcog.io-loop", "daskcog.read-ahead",
                 "daskcog.failure-records", "daskcog.credentials", "daskcog.crs",
                 "georeader.stores"):
        assert name in tables, sorted(tables)
    assert any("range_cache" in name for name in tables), sorted(tables)
    failures.record("a", "u", (0, 0, 1, 1), OSError("x"))
    daskcog.cache_clear()
    assert failures.local_failures() == []
