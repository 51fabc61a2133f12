"""daskcog.open against rioxarray over S3 with latency: the project's SeaweedFS server behind
a proxy.

    python benchmarks/bench_s3.py [--repeat 3] [--chunks 1024] [--latency-ms 50]
                                  [--skip-threads] [--skip-cluster]
                                  [--results benchmarks/RESULTS_S3.md]

Data: the 8192 x 8192 uint16 DEFLATE COG of bench_read.py (512 x 512 tiles,
overviews; tests.cogfactory.write_benchmark_cog, cached in benchmarks/data/),
uploaded to a SeaweedFS S3 server on 127.0.0.1 (tests.servers.S3Server). Every
request goes through a fault proxy (tests.stores.helpers.RangeLogProxy, run in
its own process so it does not share the GIL with the threaded scheduler) that
adds `--latency-ms` before forwarding each request and records each request's
Range header and time in flight.

Contenders, same chunks (1024 -> 2 x 2 tiles) and `.sum()`:
* daskcog.open("s3://bench/...", chunks=1024, endpoint=<proxy>, region=...,
  client_options={"allow_http": True}).data
* rioxarray.open_rasterio("/vsis3/bench/...", chunks=1024, lock=False).data
* rioxarray.open_rasterio("/vsis3/bench/...", chunks=1024).data (default lock)
on the threaded scheduler and on a LocalCluster of 2 worker processes x 1
thread. GDAL is pointed at the proxy through the environment (AWS_S3_ENDPOINT,
AWS_HTTPS=NO, AWS_VIRTUAL_HOSTING=FALSE, keys, AWS_REGION,
GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR, GDAL_CACHEMAX=0), given to the workers
with LocalCluster(env=...). Credentials reach obstore through the same
environment variables (the recommended way: no secrets in graphs).

Per contender: one cold compute (fresh headers in the workers), then
`--repeat` timed computes; min and median, the ratio to daskcog, requests per
compute, header requests (requests whose range starts before the first tile's
bytes) at open / cold / warm, requests in flight (max and mean, from the
proxy's request spans) and the latency bound
requests / max in flight x latency (the time the requests alone need).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BUCKET = "bench"
KEY = "cog/bench_8192_u16_deflate.tif"
THREADS = "threaded scheduler"
CLUSTER = "LocalCluster 2 processes x 1 thread"


from benchmarks.bench_read import bench_file  # noqa: E402 - the same cached file


# ------------------------------------------------------------------------------ proxy process
def _proxy_main(conn: Any, host: str, port: int, latency_ms: float, header_bytes: int) -> None:
    from tests.stores.helpers import RangeLogProxy, parse_range

    proxy = RangeLogProxy(host, port)
    proxy.configure(latency_ms=latency_ms)
    conn.send(proxy.port)
    while True:
        cmd = conn.recv()
        if cmd == "reset":
            proxy.reset_counters()
            conn.send(None)
        elif cmd == "stats":
            forwarded = proxy.forwarded
            gets = [f for f in forwarded if f.method == "GET"]
            ranges = [parse_range(f.range) for f in gets]
            conn.send({
                "requests": proxy.requests_total,
                "gets": len(gets),
                "heads": sum(1 for f in forwarded if f.method == "HEAD"),
                "other": sum(1 for f in forwarded if f.method not in ("GET", "HEAD")),
                "header": sum(1 for r in ranges if r is None or r[0] < header_bytes),
                "bytes": sum((r[1] - r[0] + 1) for r in ranges if r and r[1] is not None),
                **{f"inflight_{k}": v for k, v in proxy.concurrency().items()},
            })
        elif cmd == "stop":
            proxy.stop()
            conn.send(None)
            return


class ProxyProcess:
    def __init__(self, host: str, port: int, latency_ms: float, header_bytes: int) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_proxy_main, args=(child, host, port, latency_ms, header_bytes), daemon=True
        )
        self._proc.start()
        self.port = self._conn.recv()
        self.url = f"http://127.0.0.1:{self.port}"

    def call(self, cmd: str) -> Any:
        self._conn.send(cmd)
        return self._conn.recv()

    def stop(self) -> None:
        try:
            self.call("stop")
        finally:
            self._proc.join(timeout=10)


# ------------------------------------------------------------------------------ runs
READERS = ("daskcog", "rioxarray lock=False", "rioxarray default lock")


def object_key(scheduler: str, reader: str) -> str:
    """One copy of the object per (scheduler, reader): no reader finds another's header in a
    process-wide cache (GDAL's /vsis3 region cache, daskcog's reader cache)."""
    slug = "".join(c if c.isalnum() else "-" for c in f"{scheduler}-{reader}")
    return f"cog/{slug}.tif"


def contenders(scheduler: str, chunks: int, store_options: dict) -> dict[str, Any]:
    import rioxarray

    import daskcog

    def key(reader: str) -> str:
        return object_key(scheduler, reader)

    return {
        "daskcog": lambda: daskcog.open(f"s3://{BUCKET}/{key('daskcog')}", chunks=chunks,
                                        **store_options).data,
        "rioxarray lock=False": lambda: rioxarray.open_rasterio(
            f"/vsis3/{BUCKET}/{key('rioxarray lock=False')}", chunks=chunks, lock=False).data,
        "rioxarray default lock": lambda: rioxarray.open_rasterio(
            f"/vsis3/{BUCKET}/{key('rioxarray default lock')}", chunks=chunks).data,
    }


def run_scheduler(label: str, makers: dict, proxy: ProxyProcess, repeat: int, latency_s: float,
                  compute_kwargs: dict) -> list[dict]:
    rows = []
    print(f"\n== {label} ==", flush=True)
    for name, make in makers.items():
        proxy.call("reset")
        arr = make()
        at_open = proxy.call("stats")
        proxy.call("reset")
        t0 = time.perf_counter()
        total = int(arr.sum().compute(**compute_kwargs))
        cold_time = time.perf_counter() - t0
        cold = proxy.call("stats")
        times, stats = [], []
        for _ in range(repeat):
            proxy.call("reset")
            t0 = time.perf_counter()
            value = int(arr.sum().compute(**compute_kwargs))
            times.append(time.perf_counter() - t0)
            stats.append(proxy.call("stats"))
            assert value == total, (name, value, total)
        best = stats[times.index(min(times))]
        row = {
            "scheduler": label,
            "reader": name,
            "chunks": arr.chunksize,
            "npartitions": arr.npartitions,
            "sum": total,
            "min": min(times),
            "median": statistics.median(times),
            "cold": cold_time,
            "times": times,
            "requests": best["requests"],
            "gets": best["gets"],
            "heads": best["heads"],
            "bytes": best["bytes"],
            "header_open": at_open["header"],
            "requests_open": at_open["requests"],
            "header_cold": cold["header"],
            "requests_cold": cold["requests"],
            "header_warm": [s["header"] for s in stats],
            "inflight_max": best["inflight_max"],
            "inflight_mean": best["inflight_mean"],
        }
        row["bound"] = row["requests"] / max(row["inflight_max"], 1) * latency_s
        row["bound_mean"] = row["requests"] / max(row["inflight_mean"], 1e-9) * latency_s
        rows.append(row)
        print(
            f"  {name:24s} min {row['min']:6.2f} s  median {row['median']:6.2f} s  cold "
            f"{cold_time:6.2f} s  "
            f"requests/compute {row['requests']:4d} (GET {row['gets']}, HEAD {row['heads']})  "
            f"in flight max {row['inflight_max']} mean {row['inflight_mean']:.1f}  "
            f"bound {row['bound']:.2f} s  header requests open/cold/warm "
            f"{row['header_open']}/{row['header_cold']}/{max(row['header_warm'])}  sum {total}",
            flush=True,
        )
    return rows


def table(rows: list[dict], latency_ms: float) -> str:
    lines = [
        (
            "| scheduler | reader | min s | median s | ratio to daskcog (min) | cold s | requests "
            "/ compute "
            "| in flight max / mean | latency bound s (req / max in flight x "
            f"{latency_ms:g} ms) | header requests: open / cold compute / warm compute |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in dict.fromkeys(r["scheduler"] for r in rows):
        group = [r for r in rows if r["scheduler"] == label]
        base = next(r["min"] for r in group if r["reader"] == "daskcog")
        for r in group:
            lines.append(
                f"| {label} | {r['reader']} | {r['min']:.2f} | {r['median']:.2f} | "
                f"{r['min'] / base:.2f}x "
                f"| {r['cold']:.2f} | {r['requests']} (GET {r['gets']}, HEAD {r['heads']}) "
                f"| {r['inflight_max']} / {r['inflight_mean']:.1f} | {r['bound']:.2f} "
                f"| {r['header_open']} / {r['header_cold']} / {max(r['header_warm'])} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--skip-threads", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--results", type=Path, default=None, help="write a markdown report here")
    args = parser.parse_args()

    from tests.servers.s3_server import S3Server
    from tests.stores.helpers import header_bytes

    path = bench_file()
    hdr = header_bytes(path)
    print(f"file: {path} ({path.stat().st_size / 2**20:.0f} MiB, header {hdr} bytes), "
          f"cores: {os.cpu_count()}, load: {os.getloadavg()}", flush=True)
    s3 = S3Server()
    proxy = None
    try:
        s3.create_bucket(BUCKET)
        t0 = time.perf_counter()
        s3.upload(BUCKET, KEY, path)
        print(f"uploaded to {s3.endpoint} in {time.perf_counter() - t0:.1f} s", flush=True)
        import obstore

        schedulers = [
            label
            for label, skip in ((THREADS, args.skip_threads), (CLUSTER, args.skip_cluster))
            if not skip
        ]
        for label in schedulers:
            for reader in READERS:
                obstore.copy(s3.store(BUCKET), KEY, object_key(label, reader))  # server-side copy
        proxy = ProxyProcess(s3.host, s3.port, args.latency_ms, hdr)
        env = {
            "AWS_S3_ENDPOINT": f"127.0.0.1:{proxy.port}",
            "AWS_HTTPS": "NO",
            "AWS_VIRTUAL_HOSTING": "FALSE",
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_REGION": s3.region,
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            "GDAL_CACHEMAX": "0",
        }
        os.environ.update(env)  # GDAL reads its configuration from the environment at each call
        store_options = {
            "endpoint": proxy.url,
            "region": s3.region,
            "client_options": {"allow_http": True},
        }
        latency_s = args.latency_ms / 1000
        rows: list[dict] = []
        if not args.skip_threads:
            rows += run_scheduler(THREADS, contenders(THREADS, args.chunks, store_options), proxy,
                                  args.repeat, latency_s, {"scheduler": "threads"})
        if not args.skip_cluster:
            from distributed import Client, LocalCluster

            with (
                LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    env=env,
                ) as cluster,
                Client(cluster),
            ):
                rows += run_scheduler(
                    CLUSTER,
                    contenders(CLUSTER, args.chunks, store_options),
                    proxy,
                    args.repeat,
                    latency_s,
                    {},
                )
        sums = {r["sum"] for r in rows}
        assert len(sums) == 1, f"contenders disagree: {sums}"
        md = table(rows, args.latency_ms)
        print("\n" + md, flush=True)
        if args.results:
            command = "python benchmarks/bench_s3.py " + " ".join(sys.argv[1:])
            args.results.write_text(
                "# daskcog vs rioxarray over S3 with latency (benchmarks/bench_s3.py)\n\n"
                f"Command: `{command}`\n\n"
                f"Machine: {os.cpu_count()} cores ({platform.machine()}), shared and loaded "
                f"(load average at start {os.getloadavg()[0]:.1f}); times are the min and median "
                "of "
                f"{args.repeat} warm computes after one cold compute.\n\n"
                "File: 8192 x 8192 uint16 DEFLATE COG, 512 x 512 tiles, "
                f"{path.stat().st_size / 2**20:.0f} MiB, "
                f"header {hdr} bytes; SeaweedFS S3 on 127.0.0.1 behind a proxy adding "
                f"{args.latency_ms:g} ms "
                f"per request; chunks {args.chunks} (2 x 2 tiles, {rows[0]['npartitions']} "
                "chunks); "
                f"`.sum()` (all contenders agree: {rows[0]['sum']}).\n\n" + md + "\n"
            )
            print(f"wrote {args.results}")
    finally:
        if proxy is not None:
            proxy.stop()
        s3.stop()
    sys.stdout.flush()
    os._exit(0)  # async-tiff may abort the interpreter at exit (upstream pyo3-async-runtimes issue)


if __name__ == "__main__":
    main()
