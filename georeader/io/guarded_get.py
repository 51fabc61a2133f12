"""The one guarded GET: every byte range georeader fetches from a store Python can call.

`GuardedStore.get` is the only wrapper around a request, one function that holds it all:

* the header bytes: the header walk (`header.ifd_walk`) fetched the object's first bytes;
  async-tiff's own first request asks for the same range and is answered from memory (no
  second request); the bytes are dropped after the open.
* `max_concurrency`: requests in flight per store and event loop are bounded by a
  semaphore, so a burst of reads does not open more connections than an origin accepts
  (a small listen backlog refuses the rest).
* shutdown safety: the Rust future of the request is tracked (`shutdown_safety.PENDING`)
  and shielded, so a cancelled read lets it finish before the interpreter may exit.
* errors: a transient failure (5xx, 429, a refused, reset or timed-out connection, a body
  cut short) becomes a `StoreReadError` and is tried again per the read's `RetryPolicy`
  (`retry.next_wait`, only called on failure); a permanent one is raised as the store
  raised it (the reader maps it, with the window, to its typed error). obstore's own
  retries are off for these stores (`max_retries=0`): one layer, so a permanent 503 costs
  `attempts` requests per range, not attempts x obstore's tries.

The policy is passed by georeader's own tile fetches (`read.fetch`); async-tiff's calls
back into the store (header ranges, tiles it fetches itself) find it in a context
variable (`policy_scope`; async-tiff keeps the caller's context: measured).

Wraps stores Python can call (obstore's, `PathStore`, any obspec object);
async-tiff's Rust-native stores cannot be wrapped (their requests never reach
Python) and keep obstore's retries instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from georeader.errors import StoreReadError
from georeader.io.error_mapping import map_store_error
from georeader.io.obspec_ranges import ObspecRanges
from georeader.io.retry import RetryPolicy, next_wait, retrying
from georeader.io.shutdown_safety import PENDING, SETTLE_SECONDS, settled
from georeader.process_state import Table, settings

T = TypeVar("T")
DEFAULT_POLICY = RetryPolicy()

_policy: contextvars.ContextVar[RetryPolicy | None] = contextvars.ContextVar(
    "georeader_retry", default=None
)
_limits: Table[tuple[int, int, int], tuple[Any, asyncio.Semaphore]] = Table(
    "georeader.store_limits", lambda s: s.semaphore_table_size
)


@contextlib.contextmanager
def policy_scope(policy: RetryPolicy) -> Iterator[None]:
    """Requests made by this task (and tasks it starts) retry per `policy`."""
    token = _policy.set(policy)
    try:
        yield
    finally:
        _policy.reset(token)


def _with_notes(exc: StoreReadError) -> StoreReadError:
    """async-tiff keeps only the message of what a store raises: the attempt count goes in it."""
    notes = "; ".join(getattr(exc, "__notes__", []))
    return StoreReadError(f"{exc} ({notes})" if notes else str(exc))


def _limit(store: Any, size: int) -> asyncio.Semaphore:
    """The semaphore of (store, running loop, size): asyncio primitives belong to one loop."""
    loop = asyncio.get_running_loop()
    key = (id(store), id(loop), size)
    # the value keeps the store alive, so its id is not reused while the entry exists
    entry = _limits.get_or_set(key, lambda: (store, asyncio.Semaphore(size)))
    return entry[1]


class GuardedStore(ObspecRanges):
    """obspec `get_range_async` / `get_ranges_async` over another store."""

    def __init__(self, store: Any, key: str, url: str, max_concurrency: int | None = None) -> None:
        self.store = store
        self._key = key
        self._url = url
        self._size = max(1, max_concurrency or settings().max_concurrency)
        self._head: bytes | None = None
        self._whole = False
        self._semaphore: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        """The semaphore of the loop this store last ran on (shared per wrapped store)."""

    def set_head(self, head: bytes, *, whole: bool) -> None:
        """Serve ranges inside `head` from memory (`whole`: it is the entire object)."""
        self._head, self._whole = head, whole

    def release(self) -> None:
        """Forget the head bytes (after the open)."""
        self._head = None

    def _from_head(self, path: str, start: int, stop: int) -> bytes | None:
        head = self._head
        if head is None or path != self._key:
            return None
        if stop <= len(head) or (self._whole and start < len(head)):
            return head[start:stop]
        return None

    async def get(
        self, path: str, start: int, end: int, policy: RetryPolicy | None = None
    ) -> Any:
        """The bytes of `path` in [start, end): the header bytes, else one guarded request
        (bounded, shielded, retried per `policy`; None: the context's, else the default)."""
        cached = self._from_head(path, start, end)
        if cached is not None:
            return cached
        if policy is None:
            policy = _policy.get() or DEFAULT_POLICY
        loop = asyncio.get_running_loop()
        held = self._semaphore
        if held is None or held[0] is not loop:
            held = self._semaphore = (loop, _limit(self.store, self._size))
        began = time.monotonic()
        attempt = 1
        while True:
            async with held[1]:
                # `shutdown_safety.settled`, written out: the request path stays inside
                # this module (the chunk-path budget, tests/daskcog/test_chunk_path.py)
                fut = asyncio.ensure_future(self.store.get_range_async(path, start=start, end=end))
                PENDING.add(fut)
                fut.add_done_callback(PENDING.discard)
                try:
                    return await asyncio.shield(fut)
                except asyncio.CancelledError:
                    with contextlib.suppress(BaseException):
                        await asyncio.wait_for(asyncio.shield(fut), SETTLE_SECONDS)
                    raise
                except Exception as exc:
                    mapped = map_store_error(exc, self._url, "fetching bytes")
                    if not isinstance(mapped, StoreReadError):
                        raise
                    mapped.__cause__ = exc
                    try:
                        wait = next_wait(policy, mapped, attempt, began)
                    except StoreReadError as final:
                        raise _with_notes(final) from final
            await asyncio.sleep(wait)
            attempt += 1

    async def _once(self, make: Callable[[], Awaitable[T]]) -> T:
        """One request of `read_ranges` in a slot; a transient failure becomes a
        `StoreReadError` (the retry layer decides), a permanent one is raised as it came."""
        async with _limit(self.store, self._size):
            try:
                return await make()
            except Exception as exc:
                mapped = map_store_error(exc, self._url, "fetching bytes")
                if isinstance(mapped, StoreReadError):
                    raise mapped from exc
                raise

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        policy = _policy.get() or DEFAULT_POLICY
        try:
            return await retrying(attempt, policy)
        except StoreReadError as exc:
            raise _with_notes(exc) from exc

    async def read_range(self, path: str, start: int, end: int) -> Any:
        return await self.get(path, start, end)

    async def read_ranges(self, path: str, starts: Sequence[int], ends: Sequence[int]) -> Any:
        """The bytes of each range: one batched request first; after a transient failure,
        each range still missing on its own.

        Why not retry the batch: obstore's `get_ranges` fails as a whole when any of its
        requests fails, so at a 30 % 503 rate a batch of several ranges failed all its
        attempts far more often than one range would (a read failed where single-range
        reads succeed). Ranges that arrived are never fetched again; the attempts
        counted are the policy's, as for one range.
        """
        cached = [self._from_head(path, s, e) for s, e in zip(starts, ends, strict=True)]
        if all(c is not None for c in cached):
            return cached
        starts, ends = list(starts), list(ends)
        got: list[Any] = [None] * len(starts)
        missing: list[int] = []

        async def one(i: int) -> Any:
            return await self._once(
                lambda: settled(self.store.get_range_async(path, start=starts[i], end=ends[i]))
            )  # ranges after a failed batch: as `get`, with the batch's attempt count

        async def attempt() -> list[Any]:
            nonlocal missing
            if not missing:  # the first attempt: the batch, as async-tiff asked for it
                missing = list(range(len(starts)))
                got[:] = await self._once(
                    lambda: settled(self.store.get_ranges_async(path, starts=starts, ends=ends))
                )
                missing = []
                return got
            results = await asyncio.gather(*(one(i) for i in missing), return_exceptions=True)
            failed: list[BaseException] = []
            still: list[int] = []
            for i, result in zip(missing, results, strict=True):
                if isinstance(result, BaseException):
                    failed.append(result)
                    still.append(i)
                else:
                    got[i] = result
            missing = still
            if failed:
                # a permanent failure (or a cancellation) ends the read; else the retry layer waits
                raise next((e for e in failed if not isinstance(e, StoreReadError)), failed[0])
            return got

        return await self._retrying(attempt)
