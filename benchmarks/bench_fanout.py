"""Fan-out: N windows of one COG read at once from one process, the seed's own use case.

    python benchmarks/bench_fanout.py [--windows 200 2000] [--latency-ms 50] [--repeat 3]

An 8192 x 8192 uint16 DEFLATE COG like bench_read.py's but with 256 x 256 tiles
(`--tile 512` reads bench_read.py's own file), served over HTTP by the benchmark range
server (benchmarks/servers) with `--latency-ms` added to every request. N windows of
256 x 256 at seeded random offsets, not aligned to the tiles (each touches 1 to 4
tiles of ~90 KB: small, so bandwidth does not bind). Contenders, each run in a fresh process,
the header already opened before the clock starts:

* georeader: `asyncio.gather` of `AsyncGeoTIFFReader.read_window` over the N windows;
* rasterio: a thread pool of 8 or 32 threads, one dataset per thread (GDAL /vsicurl/,
  GDAL_CACHEMAX=0), `src.read(window=...)` per window;
* rio-tiler: `rio_tiler.io.Reader.read(window=...)` in a 32-thread pool, one Reader
  per thread.

Every row prints its floor (benchmarks/floors.py): one round trip x latency (all
windows can be in flight at once), bytes of the tiles needed / server bandwidth,
decode CPU / cores, and the server's counts (requests, bytes, most in flight).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GDAL_CACHEMAX", "0")
os.environ.setdefault("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZE, WINDOW = 8192, 256
READERS = ("georeader", "rasterio 8 threads", "rasterio 32 threads", "rio-tiler 32 threads")


def fanout_file(tile: int) -> Path:
    from benchmarks.bench_read import DATA, bench_file

    if tile == 512:
        return bench_file()
    from tests.cogfactory import write_benchmark_cog

    path = DATA / f"bench_8192_u16_deflate_t{tile}.tif"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.tif")
        write_benchmark_cog(
            tmp, size=8192, tile=tile, dtype="uint16", compress="deflate", predictor=1
        )
        tmp.rename(path)
    return path


def windows(n: int, seed: int = 12) -> list[tuple[int, int, int, int]]:
    rng = random.Random(seed)
    return [
        (rng.randrange(SIZE - WINDOW), rng.randrange(SIZE - WINDOW), WINDOW, WINDOW)
        for _ in range(n)
    ]


# ------------------------------------------------------------------------------ in the child
def _georeader(url: str, wins: list[tuple[int, int, int, int]]) -> tuple[float, float, int]:
    import asyncio

    from rasterio.windows import Window

    from georeader import AsyncGeoTIFFReader

    async def run() -> tuple[float, float, int]:
        t0 = time.perf_counter()
        reader = await AsyncGeoTIFFReader.open(url, client_options={"allow_http": True})
        t1 = time.perf_counter()
        out = await asyncio.gather(*(reader.read_window(Window(*w)) for w in wins))
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, int(sum(int(g.values.sum(dtype="uint64")) for g in out))

    return asyncio.run(run())


def _threaded(
    url: str, wins: list[tuple[int, int, int, int]], threads: int, tiler: bool
) -> tuple[float, float, int]:
    import rasterio
    from rasterio.windows import Window

    local = threading.local()

    def source():  # noqa: ANN202 - a rasterio dataset or a rio-tiler Reader
        if not hasattr(local, "src"):
            if tiler:
                from rio_tiler.io import Reader

                local.src = Reader(f"/vsicurl/{url}")
            else:
                local.src = rasterio.open(f"/vsicurl/{url}")
        return local.src

    def read(w: tuple[int, int, int, int]):  # noqa: ANN202
        src = source()
        if tiler:
            return src.read(window=Window(*w)).array.data
        return src.read(window=Window(*w))

    with ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        barrier = threading.Barrier(threads)

        def open_one(_: int) -> None:
            source()
            barrier.wait()  # every thread opens its own dataset, before the clock

        list(pool.map(open_one, range(threads)))
        t1 = time.perf_counter()
        out = list(pool.map(read, wins))
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, int(sum(int(a.sum(dtype="uint64")) for a in out))


def child(reader: str, url: str, n: int) -> None:
    wins = windows(n)
    try:
        if reader == "georeader":
            open_s, read_s, total = _georeader(url, wins)
        else:
            threads = int(reader.split()[1])
            open_s, read_s, total = _threaded(url, wins, threads, reader.startswith("rio-tiler"))
        print(json.dumps({"open_s": open_s, "read_s": read_s, "sum": total}), flush=True)
    except Exception as exc:  # noqa: BLE001 - a failed contender is a row, not a crash
        print(json.dumps({"error": f"{type(exc).__name__}: {str(exc)[:300]}"}), flush=True)
    os._exit(0)  # async-tiff may abort the interpreter at exit (upstream issue)


# ------------------------------------------------------------------------------ the parent
def fresh_run(reader: str, url: str, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", reader, "--url", url, "--windows", str(n)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": f"exit {out.returncode}: {out.stderr.strip()[-300:]}"}
    return json.loads(lines[-1])


def available(reader: str) -> bool:
    if not reader.startswith("rio-tiler"):
        return True
    try:
        import rio_tiler  # noqa: F401
    except ImportError:
        print("rio-tiler is not installed: its row is skipped")
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tile", type=int, default=256, choices=(256, 512))
    parser.add_argument("--readers", nargs="+", default=list(READERS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.windows[0])
    from benchmarks import floors
    from benchmarks.servers import RangeServer

    path = fanout_file(args.tile)
    readers = [r for r in args.readers if available(r)]
    print(
        f"file: {path.name} ({path.stat().st_size / 2**20:.0f} MiB); cores {floors.cores()}; "
        f"GDAL_CACHEMAX={os.environ['GDAL_CACHEMAX']}; "
        f"{args.latency_ms:.0f} ms a request; fresh process per run; repeat {args.repeat}"
    )
    with RangeServer(path.parent, latency_ms=args.latency_ms) as server:
        url = server.url_for(path.name)
        for n in args.windows:
            wins = windows(n)
            ntiles, tile_bytes = floors.tiles_needed(path, wins)
            floor = floors.Floor(requests=0, round_trips=1, latency_s=args.latency_ms / 1000,
                                 bytes=tile_bytes, bandwidth=floors.SERVER_BANDWIDTH,
                                 decode_cpu_s=floors.decode_cpu(path, wins), cores=floors.cores())
            print(f"\n== {n} windows of {WINDOW} x {WINDOW}; load {os.getloadavg()[0]:.1f} ==")
            print(floor.describe().replace("; 0 requests", f"; {ntiles} distinct tiles"))
            rows: dict[str, list[dict]] = {r: [] for r in readers}
            for _ in range(args.repeat):
                for reader in readers:  # interleaved, so a load spike hits every reader
                    server.reset()
                    got = fresh_run(reader, url, n)
                    got["stats"] = server.stats()
                    rows[reader].append(got)
            ok = [g["read_s"] for g in rows.get("georeader", []) if "read_s" in g]
            base = min(ok) if ok else None
            print(
                f"{'reader':22s} {'min s':>7s} {'median s':>8s} {'x georeader':>11s} "
                f"{'/ floor':>7s} "
                f"{'open s':>6s} {'requests':>8s} {'MB read':>7s} {'/ needed':>8s} "
                f"{'in flight':>9s}"
            )
            sums = set()
            for reader, runs in rows.items():
                good = [g for g in runs if "read_s" in g]
                if len(good) < len(runs):
                    print(f"{reader:22s} FAILED {len(runs) - len(good)} of {len(runs)} runs: "
                          f"{next(g['error'] for g in runs if 'error' in g)}")
                if not good:
                    continue
                times = [g["read_s"] for g in good]
                st = good[-1]["stats"]
                sums.add(good[-1]["sum"])
                ratio = f"{min(times) / base:10.2f}x" if base else f"{'-':>11s}"
                print(
                    f"{reader:22s} {min(times):7.3f} {statistics.median(times):8.3f} {ratio} "
                    f"{min(times) / floor.seconds:6.2f}x {min(g['open_s'] for g in good):6.3f} "
                    f"{st.requests:8d} {st.bytes_sent / 1e6:7.1f} "
                    f"{st.bytes_sent / tile_bytes:7.2f}x "
                    f"{st.max_in_flight:9d}"
                )
            if len(sums) > 1:
                print(f"!! readers disagree: sums {sums}")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
