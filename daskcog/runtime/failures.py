"""The failure report: every read that failed under `errors="nodata"`, never silently dropped.

A chunk task that fails with `errors="nodata"` returns the fill value and
records a `ReadFailure` in its process. `failure_report(array)` gathers the
records of this process and, when a distributed client is active, of every
worker (`client.run`), so the report is complete on threads, sync and
distributed schedulers. (Dask's `processes` scheduler throws its worker
processes away after a compute: use `errors="raise"` or distributed there.)

Bounded: a process keeps the newest `daskcog.failure-records` records (dask.config,
10,000); older ones are dropped and counted (`info()["dropped"]`), so a long-lived
worker reading a failing store does not grow without end.
"""

from __future__ import annotations

import os
import socket
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from daskcog.runtime import process_state, settings


@dataclass(frozen=True)
class ReadFailure:
    array: str
    """Token of the read spec (the array) whose chunk failed."""
    url: str
    window: tuple[int, int, int, int]
    """(col_off, row_off, width, height) of the chunk, in the level's pixels."""
    error_type: str
    message: str
    pid: int
    host: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_lock = threading.Lock()
_records: deque[ReadFailure] = deque()
_dropped = 0


def record(
    array: str, url: str, window: tuple[int, int, int, int], exc: BaseException
) -> ReadFailure:
    failure = ReadFailure(
        array=array, url=url, window=window, error_type=type(exc).__name__, message=str(exc),
        pid=os.getpid(), host=socket.gethostname(),
    )
    bound = settings.get_int("failure-records")
    global _dropped
    with _lock:
        _records.append(failure)
        while len(_records) > bound:
            _records.popleft()
            _dropped += 1
    return failure


def local_failures(array: str | None = None) -> list[ReadFailure]:
    with _lock:
        return [f for f in _records if array is None or f.array == array]


def clear_failures() -> None:
    global _dropped
    with _lock:
        _records.clear()
        _dropped = 0


def info() -> dict[str, int]:
    """Records held in this process, and how many were dropped past the bound."""
    with _lock:
        return {"size": len(_records), "dropped": _dropped,
                "maxsize": settings.get_int("failure-records")}


process_state.register("daskcog.failure-records", info=info, clear=clear_failures)


def failure_report(array: Any = None, client: Any = None) -> list[ReadFailure]:
    """Failures of one GeoArray (or all, with None) from this process and the cluster's workers."""
    token = getattr(array, "failure_token", array)
    found = {(f.pid, f.host, f.url, f.window, f.array): f for f in local_failures(token)}
    if client is None:
        from daskcog.runtime.credentials import active_client

        client = active_client()
    if client is not None:
        for worker_records in client.run(local_failures, token).values():
            for f in worker_records:
                found.setdefault((f.pid, f.host, f.url, f.window, f.array), f)
    return sorted(found.values(), key=lambda f: (f.url, f.window[1], f.window[0]))
