"""Where computations run: an existing Dask scheduler, a local cluster, or threads.

`get_client(scheduler, local)` is a context manager that yields a `Session`:

* `scheduler="tcp://host:8786"`: connect to a running scheduler (closing the
  session disconnects; the cluster stays up);
* `local=True`: start a `distributed.LocalCluster` of worker processes sized
  for this machine (closed with the session);
* otherwise: Dask's threaded scheduler in this process (no cluster).

`Session.compute(collections)` computes Dask collections together, with a
progress bar on stderr (Dask's `ProgressBar` on threads, distributed's
`progress` on a cluster), and `Session.description` says where it runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from georeader.errors import GeoreaderError
from georeader.io import first_line

FAST_EXIT = False
"""Set by the console entry point (`daskcog.cli.app.main`, which leaves with `os._exit`): on
Ctrl-C a local cluster is not closed gracefully (0.7-2.4 s measured on a loaded machine, past
the 2 s a Ctrl-C should take); its worker processes exit on their own the moment this process
ends (distributed's workers watch a pipe from their parent and exit when it closes)."""


class ClusterError(GeoreaderError, ConnectionError):
    """A Dask scheduler could not be reached or a local cluster could not start."""


def available_cores() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def local_cluster_size(cores: int | None = None) -> tuple[int, int]:
    """(worker processes, threads per worker) for a local cluster.

    One process per core up to 4 (decoding runs in a per-process thread pool and
    releases the GIL, so more processes add little but memory), and at least two
    threads per worker so a task waiting on I/O does not idle its core.
    """
    cores = cores or available_cores()
    workers = max(1, min(cores, 4))
    return workers, max(2, cores // workers)


@dataclass
class Session:
    """A place to compute: a distributed Client, or the threaded scheduler (client None)."""

    description: str
    client: Any = None
    progress: bool = True
    stream: IO[str] | None = None

    @property
    def kind(self) -> str:
        return "threads" if self.client is None else "distributed"

    @property
    def nthreads(self) -> int:
        if self.client is None:
            return available_cores()
        return sum(self.client.nthreads().values()) or 1

    @property
    def scheduler(self) -> Any:
        """What to pass as `scheduler=` to Dask (the Client, or "threads")."""
        return "threads" if self.client is None else self.client

    def compute(self, collections: Sequence[Any], *, progress: bool | None = None) -> list[Any]:
        """Compute collections together, with a progress bar on the session's stream."""
        import dask

        show = self.progress if progress is None else progress
        stream = self.stream or sys.stderr
        if self.client is None:
            if not show:
                return list(dask.compute(*collections, scheduler="threads"))
            from dask.diagnostics import ProgressBar

            with ProgressBar(out=stream, minimum=0.2):
                return list(dask.compute(*collections, scheduler="threads"))
        futures = self.client.compute(list(collections))
        if show:
            from distributed import progress as distributed_progress

            with contextlib.redirect_stdout(stream):
                distributed_progress(futures, notebook=False, multi=False)
                stream.write("\n")
        return list(self.client.gather(futures))


@contextlib.contextmanager
def get_client(
    scheduler: str | None = None,
    local: bool = False,
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    progress: bool = True,
    stream: IO[str] | None = None,
    timeout: float = 15.0,
) -> Iterator[Session]:
    """Connect to `scheduler`, or start a local cluster (`local`), or use threads.

    Yields a `Session` whose `description` says which (for a CLI to print).
    """
    if scheduler:
        yield from _connect(scheduler, progress, stream, timeout)
    elif local:
        yield from _local(n_workers, threads_per_worker, progress, stream)
    else:
        yield Session(
            description=f"Dask threaded scheduler in this process ({available_cores()} threads)",
            progress=progress,
            stream=stream,
        )


def _connect(
    address: str, progress: bool, stream: IO[str] | None, timeout: float
) -> Iterator[Session]:
    from distributed import Client

    try:
        client = Client(address, timeout=f"{timeout}s", set_as_default=True)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"cannot connect to the Dask scheduler at {address}: {first_line(exc)}"
        ) from exc
    try:
        workers = client.nthreads()
        description = (
            f"Dask scheduler at {address} ({len(workers)} workers, {sum(workers.values())} threads)"
        )
        yield Session(description=description, client=client, progress=progress, stream=stream)
    finally:
        with contextlib.suppress(Exception):
            client.close(timeout=5)


def _local(
    n_workers: int | None, threads_per_worker: int | None, progress: bool, stream: IO[str] | None
) -> Iterator[Session]:
    import dask
    from distributed import Client, LocalCluster

    default_workers, default_threads = local_cluster_size()
    n_workers = n_workers or default_workers
    threads = threads_per_worker or default_threads
    cluster: Any = None
    client = None
    interrupted = False
    try:
        try:
            # distributed sets MALLOC_TRIM_THRESHOLD_=65536 in workers so they hand memory back
            # to the OS; it also turns off glibc's adaptive mmap threshold, so every large numpy
            # temporary is a fresh mmap with page faults: stats ran ~3x slower than on threads
            # (measured, 4 x 4096^2 uint16). Our chunks are bounded, so we keep glibc's default.
            # Ctrl-C is this process's (one line, then the cluster is closed): workers ignore
            # it once started (`worker_signals`; in their first second, while importing, they
            # do not yet: a Ctrl-C then still prints their tracebacks). Their logs below
            # CRITICAL are silenced: a task's error reaches this process as the exception,
            # and shutdown chatter (heartbeats to a closed scheduler) is not the user's.
            with dask.config.set(
                {
                    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                    "distributed.worker.preload": [
                        *dask.config.get("distributed.worker.preload", []),
                        "daskcog.cli.worker_signals",
                    ],
                }
            ):
                cluster = LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=threads,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.CRITICAL,
                )
        except Exception as exc:
            raise ClusterError(f"cannot start a local Dask cluster: {first_line(exc)}") from exc
        client = Client(cluster, set_as_default=True)
        description = (
            f"local Dask cluster: {n_workers} worker processes x {threads} threads "
            f"(scheduler {cluster.scheduler_address})"
        )
        yield Session(description=description, client=client, progress=progress, stream=stream)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if not (interrupted and FAST_EXIT):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close(timeout=5)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close(timeout=10)
