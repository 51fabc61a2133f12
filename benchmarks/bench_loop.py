"""Which event loop should chunk tasks use on a distributed worker? (issue 3's `loop=` choice)

    python benchmarks/bench_loop.py [--repeat 3] [--latency-ms 50]

Reads the benchmark COG over HTTP (the project's range server behind its
latency proxy, 127.0.0.1) on a LocalCluster of 2 processes x 2 threads, once
with `loop="io-thread"` (a per-process I/O loop thread, the default) and once
with `loop="worker"` (the distributed worker's own event loop); `.sum()`,
chunks 1024. Local files never use a loop (tile bytes are pread in the task).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    import daskcog
    from benchmarks.bench_read import bench_file
    from tests.servers.fault_proxy import FaultProxy
    from tests.servers.http_server import RangeHTTPServer

    path = bench_file()
    server = RangeHTTPServer(path.parent)
    proxy = FaultProxy("127.0.0.1", server.port)
    proxy.configure(latency_ms=args.latency_ms)
    url = f"{proxy.url}/{path.name}"
    options = {"client_options": {"allow_http": True}}
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        for loop in ("io-thread", "worker", "io-thread", "worker"):
            arr = daskcog.open(url, chunks=1024, loop=loop, **options).data.sum()
            arr.compute()
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                arr.compute()
                times.append(time.perf_counter() - t0)
            print(f"loop={loop:9s} min {min(times):.2f} s  median {statistics.median(times):.2f} s")
    proxy.stop()
    server.stop()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
