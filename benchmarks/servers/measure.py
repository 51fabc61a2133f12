"""How fast is the benchmark range server on this machine? The figure every floor divides by.

    python benchmarks/servers/measure.py [--repeat 3]

Reads the benchmark COG (119 MiB, benchmarks/data/) from the server with obstore
(Rust, in this process, so the client is not the limit either):

* bandwidth: the whole file in 1 MiB and 4 MiB ranges, 8 and 32 in flight, no latency;
* request rate: 4 KiB ranges, 64 in flight, no latency (the per-request cost);
* latency: 2,000 4 KiB ranges all at once with 50 ms injected (one round trip
  should take ~50 ms plus the request cost x 2,000);
* curl, one whole-file GET (a client that is not Rust, for a second opinion).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.servers.launcher import RangeServer  # noqa: E402


async def _ranges(
    store, name: str, size: int, step: int, in_flight: int, total: int | None = None
) -> float:
    from obstore import get_range_async

    starts = list(range(0, size, step))[: total or None]
    sem = asyncio.Semaphore(in_flight)

    async def one(start: int) -> int:
        async with sem:
            buf = await get_range_async(store, name, start=start, end=min(start + step, size))
            return len(memoryview(buf))

    t0 = time.perf_counter()
    got = sum(await asyncio.gather(*(one(s) for s in starts)))
    return got, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from obstore.store import HTTPStore

    from benchmarks.bench_read import bench_file

    path = bench_file()
    size = path.stat().st_size
    print(
        f"file {path.name}: {size / 2**20:.0f} MiB; cores {os.cpu_count()}; load {os.getloadavg()}"
    )
    with RangeServer(path.parent) as server:
        store = HTTPStore.from_url(server.url, client_options={"allow_http": True})
        for step, in_flight in ((1 << 20, 8), (1 << 20, 32), (4 << 20, 8)):
            best = min(
                asyncio.run(_ranges(store, path.name, size, step, in_flight))[1]
                for _ in range(args.repeat)
            )
            print(f"bandwidth  {step >> 20} MiB ranges, {in_flight:2d} in flight: "
                  f"{size / best / 1e9:5.2f} GB/s ({best:.3f} s)")
        n = 20_000
        best = min(
            asyncio.run(_ranges(store, path.name, size, 4096, 64, n))[1] for _ in range(args.repeat)
        )
        print(f"rate       4 KiB ranges, 64 in flight: {n / best:,.0f} requests/s "
              f"({best / n * 1e6:.0f} us a request)")
        server.configure(latency_ms=50)
        server.reset()
        got = [
            asyncio.run(_ranges(store, path.name, size, 4096, 2000, 2000))[1]
            for _ in range(args.repeat)
        ]
        st = server.stats()
        print(f"latency    2,000 x 4 KiB at once, 50 ms injected: {min(got) * 1000:.0f} ms "
              f"(max in flight {st.max_in_flight}, errors {st.errors})")
        server.configure(latency_ms=0)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run(["curl", "-s", "-o", "/dev/null", server.url_for(path.name)], check=True)
            times.append(time.perf_counter() - t0)
        print(f"curl       whole file, one GET: {size / min(times) / 1e9:5.2f} GB/s")
    sys.stdout.flush()
    os._exit(0)  # obstore may abort the interpreter at exit (upstream issue)


if __name__ == "__main__":
    main()
