"""Values of the wrong kind are refused at call time, by name, not kept to fail later or
taken as another value: `retry=3` failed only when a read first needed a retry (in a
worker), `batch_size=2.5` and `batch_size=True` were taken as they were, and
`stack(group_by="solar_day")` read the string as a list of nine keys."""

from __future__ import annotations

from pathlib import Path

import pytest

import daskcog
from daskcog.mosaics.mosaic import MosaicError
from georeader.errors import OptionValueError
from tests.stac import season


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return season.s2_season(tmp_path_factory.mktemp("argtypes"), dates=2, size=64, seed=9)


@pytest.fixture(scope="module")
def urls(items: list[dict]) -> list[str]:
    return [i["assets"]["B02"]["href"] for i in items]


@pytest.mark.parametrize("value", [3, "fast", {"attempts": 3}, True])
def test_retry_that_is_no_policy_is_refused_everywhere(
    items: list[dict], urls: list[str], value: object
) -> None:
    for call in (
        lambda: daskcog.open(urls[0], retry=value),
        lambda: daskcog.mosaic(urls, retry=value),
        lambda: daskcog.stack(urls, retry=value),
        lambda: daskcog.load(items, bands=["B02"], chunks=32, retry=value),
    ):
        with pytest.raises(OptionValueError, match=r"retry must be a daskcog.RetryPolicy"):
            call()


def test_a_retry_policy_is_taken(items: list[dict], urls: list[str]) -> None:
    policy = daskcog.RetryPolicy(attempts=2)
    assert daskcog.open(urls[0], retry=policy).data.compute().shape == (1, 64, 64)
    assert daskcog.load(items, bands=["B02"], chunks=32, retry=policy).shape[0] == 2


@pytest.mark.parametrize("value", [0, 2.5, True, "4", -1])
def test_batch_size_that_is_no_count_is_refused(
    items: list[dict], urls: list[str], value: object
) -> None:
    with pytest.raises(OptionValueError, match="batch_size"):
        daskcog.mosaic(urls, batch_size=value)
    with pytest.raises(OptionValueError, match="batch_size"):
        daskcog.load(items, bands=["B02"], chunks=32, batch_size=value)


@pytest.mark.parametrize("value", ["solar_day", b"ab", 3])
def test_stack_group_by_that_is_no_list_is_refused(urls: list[str], value: object) -> None:
    with pytest.raises(MosaicError, match="group_by takes None, a callable"):
        daskcog.stack(urls, group_by=value)


def test_stack_group_by_keys_and_callables_still_work(urls: list[str], tmp_path: Path) -> None:
    assert len(daskcog.stack(urls, group_by=["a", "a"]).keys) == 1
    assert len(daskcog.stack(urls, group_by=lambda u: u).keys) == 2
