"""Bytes a mosaic reads against the bytes it needs, with and without georeader's tile cache.

    python benchmarks/bench_mosaic_bytes.py [--latency-ms 50] [--chunks 2048] [--threads 8]
                                            [--repeat 2]

The 16 overlapping scenes of bench_mosaic.py (512 x 512 tiles; their tiles straddle
the mosaic's 2048-pixel chunks) served by the benchmark range server, 50 ms a request;
`daskcog.mosaic(urls, method="first").sum()` on the threaded scheduler, each run in a
fresh process, once as shipped and once with GEOREADER_TILE_CACHE_BYTES=0 (every
chunk fetches its own tiles, as before the cache). "Distinct MB" is the union of the
byte ranges the run asked for: what reading every fetched byte once would cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

VARIANTS = {"daskcog": {}, "daskcog, tile cache off": {"GEOREADER_TILE_CACHE_BYTES": "0"}}


def child(urls: list[str], chunks: int, threads: int) -> None:
    import daskcog

    t0 = time.perf_counter()
    arr = daskcog.mosaic(
        urls, method="first", chunks=chunks, client_options={"allow_http": True}
    ).data
    t1 = time.perf_counter()
    total = int(arr.sum(dtype="uint64").compute(scheduler="threads", num_workers=threads))
    print(
        json.dumps({"open_s": t1 - t0, "compute_s": time.perf_counter() - t1, "sum": total}),
        flush=True,
    )
    os._exit(0)  # async-tiff may abort the interpreter at exit (upstream issue)


def distinct(ranges: list[tuple[str, int, int]]) -> int:
    """Bytes in the union of the (path, start, end) ranges."""
    total = 0
    by_path: dict[str, list[tuple[int, int]]] = {}
    for path, start, end in ranges:
        by_path.setdefault(path, []).append((start, end))
    for spans in by_path.values():
        spans.sort()
        cur_s, cur_e = spans[0]
        for s, e in spans[1:]:
            if s > cur_e:
                total += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        total += cur_e - cur_s
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--chunks", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.chunks, args.threads)
    from bench_mosaic import scene_files

    from benchmarks.servers import RangeServer

    paths = scene_files()
    size = sum(p.stat().st_size for p in paths)
    print(
        f"{len(paths)} scenes, {size / 1e6:.1f} MB of files; chunks {args.chunks}; threaded "
        f"{args.threads} "
        f"threads; {args.latency_ms:.0f} ms a request; fresh process per run; load "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'variant':26s} {'min s':>6s} {'requests':>8s} {'MB read':>7s} {'distinct MB':>11s} "
        f"{'read / distinct':>15s}"
    )
    with RangeServer(paths[0].parent, latency_ms=args.latency_ms) as server:
        urls = [server.url_for(p.name) for p in paths]
        sums = set()
        for name, env in VARIANTS.items():
            best, last = None, None
            for _ in range(args.repeat):
                server.reset()
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--chunks",
                        str(args.chunks),
                        "--threads",
                        str(args.threads),
                        "--child",
                        *urls,
                    ],
                    capture_output=True,
                    text=True,
                    env={**os.environ, **env},
                    timeout=600,
                )
                got = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
                sums.add(got["sum"])
                best = got["compute_s"] if best is None else min(best, got["compute_s"])
                last = (server.stats(), server.ranges())
            st, ranges = last
            once = distinct(ranges)
            print(
                f"{name:26s} {best:6.3f} {st.requests:8d} {st.bytes_sent / 1e6:7.1f} "
                f"{once / 1e6:11.1f} "
                f"{st.bytes_sent / once:14.3f}x"
            )
        if len(sums) > 1:
            print(f"!! variants disagree: {sums}")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
