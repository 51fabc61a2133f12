"""A time series of revisits across two UTM zones: daskcog.load vs odc-stac (vs stackstac).

    python benchmarks/bench_timeseries.py [--dates 6] [--latency-ms 50] [--threads 8]
                                          [--chunks 1024] [--runs 3] [--jobs load,median,mean]
                                          [--skip stackstac]

The field's everyday job (issue 21): the same tiles revisited every few days, an area that
crosses a UTM zone border, loaded with `groupby="solar_day"` and reduced over time.

Data (written once to benchmarks/data/stac-bench/ts/, `bench_stac.write_scene` with
1024 x 1024 uint16 DEFLATE scenes, 512-pixel tiles, nodata 0 with a nodata disc, 10 m):
16 footprints, 4 rows x 4 columns, 900 px apart (neighbours overlap ~12 %), the western two
columns in EPSG:32633 and the eastern two in EPSG:32634 about 18 E, revisited on `--dates`
dates five days apart (each date its own files and pixels). One STAC item per scene and
date (proj:* and raster:bands on the asset "data"), served by the range server with
`--latency-ms` per request. Every library loads the same items onto the same grid
(EPSG:32633, 10 m, daskcog's grid for the items, handed to the others as a GeoBox / bounds)
with the same chunks, a first-valid mosaic per solar day, nearest resampling, Dask's
threaded scheduler with `--threads` threads, each run in a fresh process. Jobs:
* load: compute the (time, band, y, x) cube;
* median / mean: nodata masked to NaN, then the per-pixel median / mean over time (the
  median with time in one chunk, as users of every library have to write it).
Printed per library and job: median wall time of `--runs` fresh processes, requests, bytes
sent, peak RSS of the process, the ratio to daskcog, and values that differ from daskcog's.
Floors (benchmarks/floors.py): decode CPU of every tile of every scene once (imagecodecs,
one thread) / cores; two round trips (header, then tiles) x latency; bytes of every file /
the server's bandwidth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_stac  # noqa: E402
from benchmarks.floors import SERVER_BANDWIDTH, Floor  # noqa: E402

SIZE = 1024
STEP = 900
RES = bench_stac.RES
LIBS = ("daskcog", "odc-stac", "stackstac")


# -- data -------------------------------------------------------------------------------
def dates(n: int) -> list[str]:
    """`n` revisit dates five days apart, 10:00 UTC (one solar day each about 18 E)."""
    import datetime as dt

    first = dt.datetime(2024, 6, 1, 10, tzinfo=dt.UTC)
    return [(first + dt.timedelta(days=5 * k)).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(n)]


def footprints() -> list[tuple[str, str, float, float]]:
    """(name, crs, x0, y0) per footprint: two columns each side of the 18 E zone border."""
    from pyproj import Transformer

    to_b = Transformer.from_crs("EPSG:32633", "EPSG:32634", always_xy=True)
    out = []
    for r in range(4):
        for c in range(4):
            x = 735_000 - 2 * STEP * RES + c * STEP * RES
            y = 5_000_000 - r * STEP * RES
            crs = "EPSG:32633"
            if c >= 2:
                crs = "EPSG:32634"
                x, y = (round(v / RES) * RES for v in to_b.transform(x, y))
            out.append((f"s{r}{c}", crs, float(x), float(y)))
    return out


def ensure_scenes(n_dates: int) -> tuple[list[tuple[str, str, float, float]], list[str]]:
    """Every (date, footprint) scene on disk; the scenes and each one's datetime."""
    scenes, when = [], []
    for d, date in enumerate(dates(n_dates)):
        for f, (name, crs, x0, y0) in enumerate(footprints()):
            rel = f"ts/{date[:10]}/{name}.tif"
            bench_stac.write_scene(bench_stac.DATA / rel, crs, x0, y0, seed=1000 * d + f,
                                   size=SIZE)
            scenes.append((rel, crs, x0, y0))
            when.append(date)
    return scenes, when


# -- children (one library and job, one fresh process) ------------------------------------
def child(lib: str, job: str, grid: dict, threads: int, chunks: int, out: str) -> None:
    import dask
    import dask.array as da
    import numpy as np

    items = json.loads(Path(grid["items"]).read_text())
    dask.config.set(scheduler="threads", num_workers=threads)
    bench_stac._imports(lib)
    if lib == "daskcog":
        import daskcog

        cube = daskcog.load(items, groupby="solar_day", chunks=chunks, crs="EPSG:32633",
                            resolution=RES, client_options={"allow_http": True}).data
    elif lib == "odc-stac":
        import odc.stac
        import pystac
        from affine import Affine
        from odc.geo.geobox import GeoBox

        os.environ.update(bench_stac.GDAL_ENV)
        geobox = GeoBox((grid["height"], grid["width"]), Affine(*grid["transform"]), grid["crs"])
        ds = odc.stac.load([pystac.Item.from_dict(it) for it in items], bands=["data"],
                           geobox=geobox, groupby="solar_day", resampling="nearest",
                           chunks={"x": chunks, "y": chunks})
        cube = ds["data"].data[:, None]
    elif lib == "stackstac":
        import pystac
        import stackstac
        from rasterio.enums import Resampling

        os.environ.update(bench_stac.GDAL_ENV)
        stacked = stackstac.stack([pystac.Item.from_dict(it) for it in items], assets=["data"],
                                  epsg=32633, resolution=RES, bounds=tuple(grid["bounds"]),
                                  chunksize=chunks, resampling=Resampling.nearest,
                                  dtype="uint16", fill_value=np.uint16(0), rescale=False,
                                  snap_bounds=False)
        # stackstac has no solar-day grouping: one mosaic per date (first item on top)
        days = stacked["time"].dt.strftime("%Y-%m-%d")
        cube = stacked.groupby(days.rename("day")).map(
            lambda g: stackstac.mosaic(g, dim="time", reverse=True, nodata=0)).data
    else:
        raise SystemExit(f"unknown library {lib}")
    if job == "load":
        result = cube
    else:
        masked = da.where(cube == 0, np.nan, cube.astype("float32"))
        if job == "median":
            result = da.nanmedian(masked.rechunk({0: -1}), axis=0)
        else:
            result = da.nanmean(masked, axis=0)
    t0, c0 = time.perf_counter(), time.process_time()
    values = np.asarray(result.compute())
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.save(out, values)
    import resource

    decoded = {}
    if lib == "daskcog":  # the per-process decoded-tile table's counters (issue 21)
        import georeader

        table = georeader.process_state.info().get("georeader.decoded_tiles")
        decoded = {} if table is None else {"decoded_hits": table.hits,
                                            "decoded_misses": table.misses}
    print(json.dumps({"seconds": seconds, "cpu": cpu, "shape": list(values.shape),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      **decoded}))


# -- the parent ---------------------------------------------------------------------------
def grid_of(items: list[dict]) -> dict:
    import daskcog

    stack = daskcog.load(items, groupby="solar_day", crs="EPSG:32633", resolution=RES,
                         client_options={"allow_http": True})
    t = stack.transform
    return {"crs": "EPSG:32633", "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "width": stack.shape[3], "height": stack.shape[2], "bounds": list(stack[0].bounds),
            "steps": stack.shape[0]}


def differing(values, reference) -> int:  # type: ignore[no-untyped-def]
    import numpy as np

    if values.shape != reference.shape:
        return -1
    return int((~((values == reference) | (np.isnan(values) & np.isnan(reference)))).sum()
               if values.dtype.kind == "f" else (values != reference).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dates", type=int, default=6)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", default="load,median,mean")
    parser.add_argument("--skip", default="")
    parser.add_argument("--child", nargs=6)
    args = parser.parse_args()
    if args.child:
        lib, job, grid, threads, chunks, out = args.child
        child(lib, job, json.loads(grid), int(threads), int(chunks), out)
        return
    import numpy as np

    from benchmarks.servers import RangeServer

    skip = {s for s in args.skip.split(",") if s}
    print(f"load: {os.getloadavg()[0]:.2f} (1 min average) at start; python "
          f"{sys.version.split()[0]}")
    scenes, when = ensure_scenes(args.dates)
    work = bench_stac.DATA / "run"
    work.mkdir(parents=True, exist_ok=True)
    with RangeServer(bench_stac.DATA, latency_ms=args.latency_ms) as server:
        items = bench_stac.items_for("ts", server.url, scenes, size=SIZE, dates=when)
        grid = grid_of(items)
        (work / "ts-items.json").write_text(json.dumps(items))
        grid["items"] = str(work / "ts-items.json")
        cpu, tiles = bench_stac.decode_seconds(scenes, size=SIZE)
        file_bytes = sum((bench_stac.DATA / rel).stat().st_size for rel, *_ in scenes)
        cores = os.cpu_count() or 1
        print(f"\n## {args.dates} dates x {len(footprints())} footprints (two UTM zones), grid "
              f"{grid['width']} x {grid['height']} px, {grid['steps']} steps, chunks "
              f"{args.chunks}, {args.threads} threads, {args.latency_ms:g} ms per request")
        for job in args.jobs.split(","):
            rows, reference = [], None
            for lib in LIBS:
                if lib in skip:
                    continue
                runs = []
                for _ in range(args.runs):
                    server.reset()
                    got = bench_stac.run(
                        [sys.executable, __file__, "--child", lib, job, json.dumps(grid),
                         str(args.threads), str(args.chunks), str(work / f"ts-{lib}.npy")],
                        env={"PYTHONPATH": str(ROOT)})
                    stats = server.stats()
                    got.update(requests=stats.requests, bytes=stats.bytes_sent)
                    runs.append(got)
                values = np.load(work / f"ts-{lib}.npy")
                reference = values if reference is None else reference
                mid = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
                rows.append({"lib": lib, "seconds": statistics.median(r["seconds"] for r in runs),
                             "all": [round(r["seconds"], 2) for r in runs],
                             "requests": mid["requests"], "bytes": mid["bytes"],
                             "rss": max(r["peak_rss_mib"] for r in runs),
                             "differ": differing(values, reference), "size": reference.size})
                extra = "".join(
                    f", {k} {[r[k] for r in runs]}" for k in ("decoded_hits", "decoded_misses")
                    if k in runs[0])
                print(f"  {job} {lib}: {rows[-1]['all']} s, process CPU "
                      f"{[round(r.get('cpu', 0), 2) for r in runs]} s, peak RSS "
                      f"{[round(r['peak_rss_mib']) for r in runs]} MiB{extra}, load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
            floor = Floor(requests=rows[0]["requests"], round_trips=2,
                          latency_s=args.latency_ms / 1000, bytes=file_bytes,
                          bandwidth=SERVER_BANDWIDTH, decode_cpu_s=cpu, cores=cores)
            print(f"\n### {job}: {floor.describe()} ({tiles} tiles)")
            print("| library | wall s (median) | runs | vs daskcog | requests | MiB sent "
                  "| peak RSS MiB | values differing |")
            print("|---|---|---|---|---|---|---|---|")
            base = rows[0]["seconds"]
            for r in rows:
                print(f"| {r['lib']} | {r['seconds']:.2f} | {r['all']} | "
                      f"{r['seconds'] / base:.2f}x | {r['requests']} | "
                      f"{r['bytes'] / 2**20:.0f} | {r['rss']:.0f} | "
                      f"{r['differ']:,} of {r['size']:,} |")
            print(f"daskcog / floor: {base / floor.seconds:.2f}x")


if __name__ == "__main__":
    main()
