"""daskcog.open against rioxarray and plain rasterio on one local COG, one run, printed ratios.

    python benchmarks/bench_read.py [--repeat 5] [--chunks 1024] [--skip-cluster] [--skip-scale]

Data: an 8192x8192 uint16 DEFLATE COG (512x512 tiles, overviews), written once to
benchmarks/data/ by tests.cogfactory.write_benchmark_cog. Every contender reads
the same chunks on the same scheduler: the threaded scheduler (dask's default)
and a 2-process LocalCluster (1 thread each), the contenders interleaved run by run
(the order rotating each round). GDAL's block cache is off
(GDAL_CACHEMAX=0) so repeats do not read from it; the OS page cache is warm for
everyone. On the threaded scheduler each row also gives this process's CPU per run
(both threads): on a machine others share it moves less than wall time.

Graph scale: open time and memory of the graph at 1e4, 1e5, 1e6 chunks (built
from a spec, no I/O), and `.sum()` overhead at ~1e5 chunks next to
`da.from_array` of the same shape.

Latency-bound (issue 12): the same file over HTTP from the benchmark range server
(benchmarks/servers, ~1.1 GB/s here) with a latency added to every request:

    python benchmarks/bench_read.py --store http [--latency-ms 50] [--threads 8] [--repeat 5]

Each run is a fresh process (no header, GDAL or connection state carried over):
it opens the file, then times `.sum()` on the threaded scheduler with `--threads`
threads. Contenders: daskcog, daskcog without read-ahead (DASKCOG_READAHEAD_BYTES=0),
rioxarray lock=False, rioxarray's default lock (GDAL through /vsicurl/, GDAL_CACHEMAX=0).
Every row prints the server's request and byte counts and the floor
(benchmarks/floors.py): chunks / threads round trips x latency, tile bytes / server
bandwidth, decode CPU / cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("GDAL_CACHEMAX", "0")
os.environ.setdefault("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from rasterio.windows import Window  # noqa: E402

DATA = ROOT / "benchmarks" / "data"


def bench_file() -> Path:
    from tests.cogfactory import write_benchmark_cog

    path = DATA / "bench_8192_u16_deflate.tif"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.tif")
        write_benchmark_cog(
            tmp, size=8192, tile=512, dtype="uint16", compress="deflate", predictor=1
        )
        tmp.rename(path)
    return path


def _rasterio_block(block_info=None, path: str = "") -> np.ndarray:
    (r0, r1), (c0, c1) = block_info[None]["array-location"][1:]
    with rasterio.open(path) as src:
        return src.read(window=Window(c0, r0, c1 - c0, r1 - r0))


def contenders(path: Path, chunks: int) -> dict[str, object]:
    import rioxarray

    import daskcog

    with rasterio.open(path) as src:
        shape = (src.count, src.height, src.width)
        dtype = src.dtypes[0]
    plain = da.map_blocks(
        _rasterio_block, path=str(path), dtype=dtype,
        chunks=da.core.normalize_chunks((shape[0], chunks, chunks), shape),
    )
    return {
        "daskcog": lambda: daskcog.open(path, chunks=chunks).data,
        "rioxarray lock=False": lambda: (
            rioxarray.open_rasterio(path, chunks=chunks, lock=False).data
        ),
        "rioxarray default lock": lambda: rioxarray.open_rasterio(path, chunks=chunks).data,
        "rasterio map_blocks": lambda: plain,
    }


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def run_io(
    path: Path, chunks: int, repeat: int, scheduler_label: str, compute_kwargs: dict
) -> None:
    print(f"\n== {scheduler_label}: chunks={chunks}, repeat={repeat} ==")
    for op in ("sum", "load"):
        fns = {}
        for name, make in contenders(path, chunks).items():
            arr = make()
            if op == "sum":
                fn = lambda arr=arr: arr.sum(dtype="uint64").compute(**compute_kwargs)  # noqa: E731
            else:
                fn = lambda arr=arr: arr.compute(**compute_kwargs)  # noqa: E731
            fn()  # warm: headers, page cache, worker imports
            fns[name] = fn
        # interleaved, the order rotating each round: a loaded machine's drift and a
        # contender's place in the order (its fresh memory, the page cache) fall on all alike
        rows: dict[str, list[float]] = {name: [] for name in fns}
        names = list(fns)
        # this process's CPU per run (both threads of the threaded scheduler): what a
        # contender costs, less moved than wall time by others' work on a shared machine
        cpus: dict[str, list[float]] = {name: [] for name in fns}
        for i in range(repeat):
            for name in names[i % len(names):] + names[: i % len(names)]:
                c0 = time.process_time()
                rows[name] += timed(fns[name], 1)
                cpus[name].append(time.process_time() - c0)
        base = min(rows["daskcog"])
        local = compute_kwargs.get("scheduler") == "threads"
        print(
            f"{op:5s} {'reader':26s} {'min s':>7s} {'median s':>9s} {'daskcog speed-up (min)':>24s}"
            + (f" {'CPU s min':>9s} {'median':>7s}" if local else "")
        )
        for name, times in rows.items():
            print(
                f"{'':5s} {name:26s} {min(times):7.3f} {statistics.median(times):9.3f} "
                f"{min(times) / base:24.2f}x"
                + (f" {min(cpus[name]):9.3f} {statistics.median(cpus[name]):7.3f}" if local else "")
            )


def graph_scale() -> None:
    from daskcog.reading.cog_array import ReadSpec, from_spec
    from georeader import parse_location

    print("\n== graph scale (built from a spec: no I/O) ==")
    for n in (10_000, 100_000, 1_000_000):
        side = int(round(n ** 0.5)) * 16
        spec = ReadSpec(location=parse_location("/nowhere.tif"), store_options=(),
                        overview_level=0, bands=(1,),
                        window=(0, 0, side, side), dtype="uint8", fill_value=0, tile=(16, 16))
        tracemalloc.start()
        t0 = time.perf_counter()
        g = from_spec(spec, 16, transform=rasterio.Affine.identity(), crs=None, nodata=None)
        build = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"{g.data.npartitions:>9,} chunks: open {build * 1000:7.1f} ms, peak "
            f"{peak / 2**20:6.2f} MiB"
        )


def compute_overhead(tmpdir: Path) -> None:
    import daskcog

    path = tmpdir / "tiny_tiles_5056.tif"
    if not path.exists():
        side = 5056
        profile = dict(driver="GTiff", width=side, height=side, count=1, dtype="uint8", tiled=True,
                       blockxsize=16, blockysize=16, compress="deflate", crs="EPSG:3857",
                       transform=rasterio.Affine(1, 0, 0, 0, -1, 0))
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.full((1, side, side), 1, np.uint8))
    g = daskcog.open(path, chunks=16)
    ref = da.from_array(np.ones(g.shape, np.uint8), chunks=(1, 16, 16))
    print(f"\n== compute overhead at {g.data.npartitions:,} chunks (threaded) ==")
    for name, arr in (("daskcog .sum()", g.data), ("da.from_array .sum()", ref)):
        t0 = time.perf_counter()
        total = int(arr.sum(dtype="uint64").compute())
        print(f"{name:22s} {time.perf_counter() - t0:6.2f} s (total {total:,})")


# ------------------------------------------------------------------------------ over HTTP
HTTP_READERS = (
    "daskcog",
    "daskcog no read-ahead",
    "rioxarray lock=False",
    "rioxarray default lock",
)


def http_child(reader: str, url: str, chunks: int, threads: int) -> None:
    """One run in this fresh process: open, then a timed `.sum()`; a JSON line on stdout."""
    if reader == "daskcog no read-ahead":
        os.environ["DASKCOG_READAHEAD_BYTES"] = "0"  # read when daskcog is imported, below
    import rioxarray

    import daskcog

    t0 = time.perf_counter()  # imports excluded: open is the header's round trips
    if reader.startswith("daskcog"):
        arr = daskcog.open(url, chunks=chunks, client_options={"allow_http": True}).data
    else:
        lock = False if reader == "rioxarray lock=False" else None
        arr = rioxarray.open_rasterio(f"/vsicurl/{url}", chunks=chunks, lock=lock).data
    t1 = time.perf_counter()
    c1 = os.times()
    total = int(arr.sum(dtype="uint64").compute(scheduler="threads", num_workers=threads))
    t2 = time.perf_counter()
    c2 = os.times()
    cpu = (c2.user - c1.user) + (c2.system - c1.system)
    print(
        json.dumps({"open_s": t1 - t0, "compute_s": t2 - t1, "cpu_s": cpu, "sum": total}),
        flush=True,
    )
    os._exit(0)  # async-tiff may abort the interpreter at exit (upstream issue)


def fresh_run(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, timeout=600
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"benchmark child failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def run_http(path: Path, chunks: int, threads: int, latency_ms: float, repeat: int) -> None:
    from benchmarks import floors
    from benchmarks.servers import RangeServer

    grid = [(c, r, min(chunks, 8192 - c), min(chunks, 8192 - r))
            for r in range(0, 8192, chunks) for c in range(0, 8192, chunks)]
    ntiles, tile_bytes = floors.tiles_needed(path, grid)
    cpu = floors.decode_cpu(path, grid)
    print(
        f"\n== HTTP, {latency_ms:.0f} ms a request: {len(grid)} chunks of {chunks}, threaded "
        f"{threads} threads, .sum(), fresh process per run, "
        f"GDAL_CACHEMAX={os.environ['GDAL_CACHEMAX']}, "
        f"repeat {repeat}; load {os.getloadavg()[0]:.1f} =="
    )
    rows: dict[str, tuple[list[float], list[float], list[float], object]] = {}
    with RangeServer(path.parent, latency_ms=latency_ms) as server:
        url = server.url_for(path.name)
        for _ in range(repeat):
            for reader in HTTP_READERS:  # interleaved: a load spike hits every reader
                server.reset()
                got = fresh_run(["--child", reader, "--url", url, "--chunks", str(chunks),
                                 "--threads", str(threads)])
                st = server.stats(header_bytes=16384)
                times, opens, cpus, _ = rows.setdefault(reader, ([], [], [], None))
                times.append(got["compute_s"])
                opens.append(got["open_s"])
                cpus.append(got["cpu_s"])
                rows[reader] = (times, opens, cpus, (st, got["sum"]))
    floor = floors.Floor(
        requests=0, round_trips=floors.waves(len(grid), threads), latency_s=latency_ms / 1000,
        bytes=tile_bytes, bandwidth=floors.SERVER_BANDWIDTH, decode_cpu_s=cpu, cores=floors.cores(),
    )
    print(floor.describe().replace("; 0 requests", f"; {ntiles} tiles"))
    base = min(rows["daskcog"][0])
    sums = {v[3][1] for v in rows.values()}
    print(
        f"{'reader':24s} {'min s':>7s} {'median s':>8s} {'x daskcog':>9s} {'/ floor':>7s} "
        f"{'CPU s':>5s} {'open s':>6s} {'requests':>8s} {'header':>6s} {'MB read':>7s} "
        f"{'/ needed':>8s} {'in flight':>9s}"
    )
    for reader, (times, opens, cpus, (st, _)) in rows.items():
        print(
            f"{reader:24s} {min(times):7.3f} {statistics.median(times):8.3f} "
            f"{min(times) / base:8.2f}x "
            f"{min(times) / floor.seconds:6.2f}x {statistics.median(cpus):5.2f} {min(opens):6.3f} "
            f"{st.requests:8d} {st.header_requests:6d} "
            f"{st.bytes_sent / 1e6:7.1f} {st.bytes_sent / tile_bytes:7.3f}x {st.max_in_flight:9d}"
        )
    print("(requests, header, MB read: the compute's and open's, from the server, last run;"
          " 'header' = GETs starting in the first 16 KiB; CPU s: the reading process's, median)")
    if len(sums) != 1:
        print(f"!! readers disagree: sums {sums}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--store", choices=("local", "http"), default="local")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        http_child(args.child, args.url, args.chunks, args.threads)
    path = bench_file()
    if args.store == "http":
        print(f"file: {path} ({path.stat().st_size / 2**20:.0f} MiB), cores: {os.cpu_count()}")
        run_http(path, args.chunks, args.threads, args.latency_ms, args.repeat)
        sys.stdout.flush()
        os._exit(0)
    print(f"file: {path} ({path.stat().st_size / 2**20:.0f} MiB), cores: {os.cpu_count()}")
    run_io(path, args.chunks, args.repeat, "threaded scheduler", {"scheduler": "threads"})
    if not args.skip_cluster:
        from distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            run_io(path, args.chunks, args.repeat, "LocalCluster 2 processes x 1 thread", {})
            client.run(lambda: None)
    if not args.skip_scale:
        graph_scale()
        compute_overhead(DATA)
    sys.stdout.flush()
    os._exit(0)  # async-tiff may abort the interpreter at exit (upstream issue)


if __name__ == "__main__":
    main()
