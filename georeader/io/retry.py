"""The one retry layer: transient failures are tried again, a bounded number of times.

Every remote read (a header open, a window's batched tile fetch) is one attempt;
a transient failure (5xx, 429, a refused, reset or timed-out connection, a body
cut short: `StoreReadError`, see `error_mapping`) is tried again with exponential
backoff and jitter, at most `attempts` times in all and never starting after
`total_seconds`. Permanent failures (not found, access denied, not a TIFF, a
corrupt header or tile, a bad window) fail at once.

obstore retries inside each request too (its `retry_config`); two layers
multiply (measured: a permanent 503 cost 16 requests per range with 4 x 4), so
the stores built here get `max_retries=0` and this module is the only layer: a
permanent 503 costs `attempts` requests per range, and a read gives up within
`total_seconds` plus one request's timeout.

Throttling: obstore 0.12 does not expose a response's headers on errors
(measured: its RetryError carries the status and body only), so `Retry-After`
cannot be read; a 429 or 503 instead waits at least `throttle_backoff`
(default 1 s) before the next attempt, and backs off from there.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from georeader.errors import StoreReadError

T = TypeVar("T")

TRANSIENT = (StoreReadError,)
"""Errors worth another attempt. Everything else is permanent."""
_THROTTLED = re.compile(
    r"(?:status code|HTTP response code): (?:429|503)\b|SlowDown|Too Many Requests"
)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try a read again. A frozen value: it travels in task graphs."""

    attempts: int = 8
    """Total attempts per request, the first one included (1 = no retries); a burst of up to
    7 failures in a row (refused connections, 503s) is survived, within `total_seconds`."""
    backoff: float = 0.1
    """Seconds before the first retry; doubles each time, with +-50 % jitter."""
    max_backoff: float = 4.0
    total_seconds: float = 30.0
    """No retry starts after this many seconds since the first attempt."""
    throttle_backoff: float = 1.0
    """The least wait after a 429 / 503 (the server asked us to slow down)."""

    def store_retry_config(self, *, native: bool = False) -> dict:
        """obstore's per-request retry settings: none, as this policy is the only layer;
        for async-tiff's Rust-native stores (whose requests never reach Python) obstore's
        retries are the layer instead, with this policy's bounds.

        obstore wants `datetime.timedelta` durations (a float raises TypeError
        "'float' object is not an instance of 'timedelta'" when the store is built).
        """
        return {
            "max_retries": max(self.attempts - 1, 0) if native else 0,
            "retry_timeout": timedelta(seconds=self.total_seconds),
            "backoff": {
                "init_backoff": timedelta(seconds=self.backoff),
                "max_backoff": timedelta(seconds=self.max_backoff),
                "base": 2.0,
            },
        }


NO_RETRY = RetryPolicy(attempts=1)


async def retrying(make: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Await `make()`, again after transient errors, as the policy allows."""
    start = time.monotonic()
    attempt = 1
    while True:
        try:
            return await make()
        except TRANSIENT as exc:
            wait = next_wait(policy, exc, attempt, start)
        await asyncio.sleep(wait)
        attempt += 1


def next_wait(policy: RetryPolicy, exc: BaseException, attempt: int, start: float) -> float:
    """Seconds to wait before attempt `attempt + 1` after the transient `exc`; raises `exc`
    (with a note of the attempts) when the policy allows no more.

    Only failures call this, so a request that succeeds costs no retry bookkeeping
    (`io.guarded_get` loops on it around each GET, `retrying` around any coroutine).
    """
    delay = min(policy.backoff * 2 ** (attempt - 1), policy.max_backoff)
    wait = delay * random.uniform(0.5, 1.5)
    if _THROTTLED.search(str(exc)):
        wait = max(wait, policy.throttle_backoff * random.uniform(1.0, 1.5))
    elapsed = time.monotonic() - start
    if attempt >= policy.attempts or elapsed + wait > policy.total_seconds:
        exc.add_note(f"gave up after {attempt} attempt(s) in {elapsed:.1f} s")
        raise exc
    return wait
