"""Retries that know a 503 from a 403.

obstore already retries 5xx responses and connection errors inside one request
(its `retry_config`); what it does not retry (a body cut short, a reset in the
middle of a body, a 429 on some stores, a tile that then fails to decode because
its bytes were short) reaches us as `StoreReadError`, and is retried here with exponential backoff and jitter, within a bounded total
time. Permanent failures (not found, access denied, not a TIFF, no
georeference, a bad window, a tile that does not decode: obstore checks
Content-Length, so a short body is a read error, and corrupt bytes stay corrupt)
fail at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from georeader.errors import StoreReadError

T = TypeVar("T")

TRANSIENT = (StoreReadError,)
"""Errors worth another attempt. Everything else is permanent."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try a read again. A frozen value: it travels in task graphs."""

    attempts: int = 4
    """Total attempts, the first one included (1 = no retries)."""
    backoff: float = 0.1
    """Seconds before the first retry; doubles each time, with +-50 % jitter."""
    max_backoff: float = 2.0
    total_seconds: float = 30.0
    """No retry starts after this many seconds since the first attempt."""

    def store_retry_config(self) -> dict:
        """obstore's per-request retry settings, bounded by the same total time.

        obstore wants `datetime.timedelta` durations (a float raises TypeError
        "'float' object is not an instance of 'timedelta'" when the store is built).
        """
        return {
            "max_retries": max(self.attempts - 1, 0),
            "retry_timeout": timedelta(seconds=self.total_seconds),
            "backoff": {
                "init_backoff": timedelta(seconds=self.backoff),
                "max_backoff": timedelta(seconds=self.max_backoff),
                "base": 2.0,
            },
        }


NO_RETRY = RetryPolicy(attempts=1)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)


async def retrying(make: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Await `make()`, again after transient errors, as the policy allows."""
    start = time.monotonic()
    delay = policy.backoff
    attempt = 1
    while True:
        try:
            return await make()
        except TRANSIENT as exc:
            elapsed = time.monotonic() - start
            if attempt >= policy.attempts or elapsed + delay > policy.total_seconds:
                if attempt > 1:
                    exc.add_note(f"gave up after {attempt} attempts in {elapsed:.1f} s")
                raise
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, policy.max_backoff)
        attempt += 1
