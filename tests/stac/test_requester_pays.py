"""STAC's storage extension: assets whose items say the requester pays are read with
`x-amz-request-payer` (the fault proxy in front of SeaweedFS refuses requests without it),
whether their scenes come from proj:* metadata or from fetched headers."""

from __future__ import annotations

import warnings

import numpy as np

import daskcog
from daskcog.stac import HeaderFallbackWarning
from daskcog.stac.items.asset_scenes import requester_pays
from tests.servers import NO_RETRY
from tests.stac import catalogue
from tests.stac.conftest import s3_options


def _paying(items: list[dict]) -> list[dict]:
    """Half the items say it the v1 way, half the v2 way (storage:schemes + storage:refs)."""
    for n, item in enumerate(items):
        if n % 2:
            item["properties"]["storage:requester_pays"] = True
        else:
            item["properties"]["storage:schemes"] = {
                "aws": {"type": "aws-s3", "requester_pays": True}
            }
            for asset in item["assets"].values():
                asset["storage:refs"] = ["aws"]
    return items


def test_requester_pays_flags():
    assert requester_pays({"storage:requester_pays": True}, {})
    assert not requester_pays({"storage:requester_pays": False}, {"storage:requester_pays": True})
    assert requester_pays(
        {"storage:refs": ["p"]}, {"storage:schemes": {"p": {"requester_pays": True}}}
    )
    assert not requester_pays({}, {})


def test_requester_pays_items_are_read_with_the_header(s3_server, s3_base, fault_proxy_s3):
    fault_proxy_s3.configure(require_header=("x-amz-request-payer", "requester"))
    opts = s3_options(s3_server, endpoint=fault_proxy_s3.url, retry_config=NO_RETRY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeaderFallbackWarning)  # items without proj:* fetch headers
        reference = daskcog.load(
            catalogue.item_dicts(s3_base), bands=["B04"], groupby="solar_day", chunks=128,
            **s3_options(s3_server),
        ).data.compute()
        stack = daskcog.load(
            _paying(catalogue.item_dicts(s3_base)), bands=["B04"], groupby="solar_day", chunks=128,
            **opts,
        )
        got = stack.data.compute()
    np.testing.assert_array_equal(got, reference)
    assert fault_proxy_s3.requests_total > 0
    assert fault_proxy_s3.faults["missing-header"] == 0
