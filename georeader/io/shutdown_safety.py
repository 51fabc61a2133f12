"""Rust futures run to completion, so none calls back into a finalising interpreter.

async-tiff's calls (open, tile fetches, decodes) return futures driven by a
Rust runtime (pyo3-async-runtimes). When the Python side stops waiting (a
sibling in `asyncio.gather` failed, the task was cancelled, `asyncio.run`
returned), the Rust task goes on; when it finishes it hands its result to the
event loop from a Rust thread. If that happens while the interpreter is
finalising, CPython aborts ("PyGILState_Release: thread state ... must be
current when releasing; Python runtime state: finalizing") or segfaults, after
the script has already chosen its exit status (upstream pyo3-async-runtimes
issue 40; measured: 1 of 209 hostile-file scripts died so, with status -11).

So every Rust call goes through `settled`: it is shielded from cancellation,
and a cancelled caller waits (bounded) for the Rust side to finish before it
lets the cancellation through, so `asyncio.run` and task cancellation wait for
it too. The reader's entry points (open, fetch, read) run inside `operation()`.
At interpreter exit (`atexit`, before finalisation) the hook waits, bounded,
until no operation and no Rust call has been in flight for a moment on loops
that still run in other threads (daskcog's I/O loop, a user's background loop,
where reads may still be queued), then collects unreferenced objects while the
interpreter can still run their destructors.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import threading
import time
import weakref
from collections.abc import Awaitable, Iterator
from typing import TypeVar

T = TypeVar("T")

SETTLE_SECONDS = 30.0
"""How long a cancelled caller (or the exit hook) waits for the Rust side: a request's timeout."""
EXIT_SECONDS = 5.0

_lock = threading.Lock()
PENDING: set[asyncio.Future] = set()
"""Rust futures not finished. Adding and discarding are single set operations (atomic under
the GIL), so the one guarded GET (`io.guarded_get`) tracks its request here without a
call of ours: `PENDING.add(fut)`, `fut.add_done_callback(PENDING.discard)`."""


async def settled(call: Awaitable[T]) -> T:
    """Await a Rust future; if cancelled, let it finish first (bounded), then re-raise."""
    fut = asyncio.ensure_future(call)
    PENDING.add(fut)
    fut.add_done_callback(PENDING.discard)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(fut), SETTLE_SECONDS)
        raise


_operations: dict[int, asyncio.AbstractEventLoop] = {}
_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_next_id = 0
QUIET_SECONDS = 0.05
"""No operation in flight for this long: queued reads would have started by then."""


@contextlib.contextmanager
def operation() -> Iterator[None]:
    """Mark a reader operation (open, fetch, read) as in flight on the running loop."""
    global _next_id
    loop = asyncio.get_running_loop()
    with _lock:
        _loops.add(loop)
        _next_id += 1
        key = _next_id
        _operations[key] = loop
    try:
        yield
    finally:
        with _lock:
            _operations.pop(key, None)


def in_flight() -> int:
    """Operations and Rust calls not finished on loops that still run (tests, the exit hook)."""
    with _lock:
        ops = sum(1 for loop in _operations.values() if loop.is_running())
    pending = list(PENDING)  # a copy: other threads add and discard without the lock
    calls = sum(1 for f in pending if not f.done() and f.get_loop().is_running())
    return ops + calls


@atexit.register
def _drain_at_exit() -> None:
    """Wait (bounded) until nothing runs on live loops for a moment, then collect garbage."""
    with _lock:
        live_loops = any(loop.is_running() for loop in _loops)
    live_loops = live_loops or any(f.get_loop().is_running() for f in list(PENDING))
    deadline = time.monotonic() + EXIT_SECONDS
    quiet_since = None
    while live_loops and time.monotonic() < deadline:  # no loop runs on: nothing can go on
        if in_flight():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_SECONDS:
            break
        time.sleep(0.002)
    gc.collect()
