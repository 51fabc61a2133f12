"""One background asyncio event loop per process, for sync Dask tasks to run coroutines on.

Why not async tasks: Dask's local schedulers (threads, sync, processes) never
await a coroutine task, and array graph fusion wraps tasks into sync code, so a
chunk task must be a plain function on every scheduler. It submits its coroutine
here with `run_coroutine_threadsafe(...).result()`: measured as fast as native
async tasks on distributed (../shared/notes/dependencies.md). On a distributed
worker the worker's own loop can be used instead (`loop="worker"`).

The loop thread is restarted after a fork (the process-state registry's fork rule
forgets it in the child; the pid check also covers a loop whose thread died) and
is a daemon, so it never keeps a process alive.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

from daskcog.runtime import process_state, settings

T = TypeVar("T")
LoopChoice = Literal["io-thread", "worker"]

_lock = threading.Lock()
_state: tuple[int, asyncio.AbstractEventLoop, threading.Thread] | None = None


def io_loop() -> asyncio.AbstractEventLoop:
    """This process's I/O loop, started on first use."""
    global _state
    with _lock:
        if _state is None or _state[0] != os.getpid() or not _state[2].is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="daskcog-io-loop", daemon=True)
            thread.start()
            ready.wait()
            _state = (os.getpid(), loop, thread)
        return _state[1]


def info() -> dict[str, Any]:
    """Whether this process's I/O loop runs, and how many tasks it holds."""
    state = _state
    alive = state is not None and state[0] == os.getpid() and state[2].is_alive()
    tasks = len(asyncio.all_tasks(state[1])) if alive and state is not None else 0
    return {"running": int(alive), "tasks": tasks}


def _forget() -> None:
    """In a forked child: the parent's loop thread does not exist here."""
    global _state, _lock
    _state = None
    _lock = threading.Lock()


process_state.register("daskcog.io-loop", info=info, clear=lambda: None, after_fork=_forget)


def worker_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of the distributed worker running this task, or None outside one."""
    try:
        from distributed import get_worker
        from tornado.platform.asyncio import BaseAsyncIOLoop

        loop = get_worker().loop
    except (ImportError, ValueError):
        return None  # not inside a distributed worker task
    return loop.asyncio_loop if isinstance(loop, BaseAsyncIOLoop) else None


def run_sync(coro: Coroutine[Any, Any, T], loop: LoopChoice = "io-thread") -> T:
    """Run a coroutine on the chosen loop from a sync (worker) thread and return its result.

    Every entry point and remote chunk task passes here, so this is where georeader's
    settings catch up with this process's dask.config (`settings.apply_georeader`)."""
    settings.apply_georeader()
    target = worker_loop() if loop == "worker" else None
    if target is None:
        state = _state  # the running loop of this process, else (re)start it
        alive = state is not None and state[0] == os.getpid() and state[2].is_alive()
        target = state[1] if alive and state is not None else io_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is target:
        coro.close()
        raise RuntimeError(
            "run_sync called from the loop it would block; await the coroutine instead"
        )
    return asyncio.run_coroutine_threadsafe(coro, target).result()
