"""STAC loads over a latency-injecting range server: daskcog.load vs odc-stac vs stackstac vs
lazycogs.

    python benchmarks/bench_stac.py [--scenario one-crs|two-zones|all] [--latency-ms 50]
                                    [--threads 8] [--chunks 2048] [--runs 3] [--build-items 10000]
                                    [--skip lazycogs,stackstac]

Data (written once to benchmarks/data/stac-bench/): COGs of 2048 x 2048 uint16, DEFLATE,
512 x 512 tiles, nodata 0 (a nodata disc in every scene), 10 m pixels, one STAC item
each (proj:* and raster:bands on the asset "data"), all on one date:
* one-crs: 16 scenes, 4 x 4, 1500 px apart (neighbours overlap ~27 %), EPSG:32633;
* two-zones: 64 scenes, 8 x 8, 1500 px apart about 18 E: the western four columns in
  EPSG:32633, the eastern four in EPSG:32634 (warped onto the EPSG:32633 grid).
They are served by benchmarks/servers' range server (its own process, `--latency-ms`
per request). Every library loads the same items onto the same grid (daskcog's default
grid for the items: its CRS, bounds and 10 m pixels are handed to the others), with the
same chunks, a first-valid mosaic of the date, nearest resampling, Dask's threaded
scheduler with `--threads` threads, each run in a fresh process:
* daskcog.load(items, groupby="solar_day", chunks=...)
* odc.stac.load(items, geobox=..., groupby="solar_day", chunks=..., resampling="nearest")
* stackstac.mosaic(stackstac.stack(items, bounds=..., epsg=32633, resolution=10,
  chunksize=...), reverse=True)  (first item on top)
* lazycogs.open(<the items as stac-geoparquet>, bbox=..., crs=..., resolution=10,
  chunks=...) (its own Python >= 3.12 venv: `--lazycogs-python`)
Printed per library: median wall time of `--runs` fresh processes (compute of the whole
array), requests, header requests (GETs that start inside a file's header), bytes sent,
peak RSS of the process, the ratio to daskcog, and pixels that differ from daskcog.
The decode floor: the CPU time to decode (imagecodecs, one thread) the tiles that the
output grid needs at least once (each output pixel decoded from one tile), divided by
the cores; "all tiles" decodes every tile of every scene once.
Graph build: `--build-items` items (hrefs on the server, files that do not exist, so any
request would fail) built into a lazy load by each library in a fresh process; daskcog's
requests are counted at the server.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DATA = ROOT / "benchmarks" / "data" / "stac-bench"
SIZE, TILE, RES = 2048, 512, 10.0
STEP = 1500
DATE = "2024-06-01T10:00:00Z"
GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MULTIPLEX": "YES",
            "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif"}


# -- data -------------------------------------------------------------------------------
def scene_grid(scenario: str) -> list[tuple[str, str, float, float]]:
    """(name, crs, x0, y0) per scene."""
    from pyproj import Transformer

    to_b = Transformer.from_crs("EPSG:32633", "EPSG:32634", always_xy=True)
    side = 4 if scenario == "one-crs" else 8
    out = []
    for r in range(side):
        for c in range(side):
            x = 735_000 - (side // 2) * STEP * RES + c * STEP * RES
            y = 5_000_000 - r * STEP * RES
            crs = "EPSG:32633"
            if scenario == "two-zones" and c >= side // 2:
                crs = "EPSG:32634"
                x, y = (round(v / RES) * RES for v in to_b.transform(x, y))
            out.append((f"{scenario}/s{r}{c}.tif", crs, float(x), float(y)))
    return out


def write_scene(path: Path, crs: str, x0: float, y0: float, seed: int, size: int = SIZE) -> None:
    import numpy as np
    import rasterio
    from affine import Affine

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    data = (3000 + 1500 * np.sin(xx / (90 + seed % 7)) * np.cos(yy / 70)
            + rng.integers(0, 400, size=(size, size))).astype(np.uint16)
    margin, radius = 300 * size // SIZE, 220 * size / SIZE  # 300 and 220 px at 2048
    cy, cx = rng.integers(margin, size - margin, size=2)
    data[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = 0
    tmp = path.with_suffix(".tmp")
    with rasterio.open(tmp, "w", driver="GTiff", width=size, height=size, count=1,
                       dtype="uint16", crs=crs, transform=Affine(RES, 0, x0, 0, -RES, y0),
                       nodata=0, tiled=True, blockxsize=TILE, blockysize=TILE,
                       compress="deflate") as dst:
        dst.write(data, 1)
    tmp.rename(path)


def ensure_scenes(scenario: str) -> list[tuple[str, str, float, float]]:
    scenes = scene_grid(scenario)
    for i, (rel, crs, x0, y0) in enumerate(scenes):
        write_scene(DATA / rel, crs, x0, y0, seed=i)
    return scenes


def items_for(
    scenario: str, base_url: str, scenes: list[tuple[str, str, float, float]],
    size: int = SIZE, dates: list[str] | None = None,
) -> list[dict]:
    """One item per scene; `dates` (one per scene) default to the one benchmark date."""
    from pyproj import Transformer

    items = []
    for k, (rel, crs, x0, y0) in enumerate(scenes):
        west, south, east, north = Transformer.from_crs(crs, "EPSG:4326", always_xy=True) \
            .transform_bounds(x0, y0 - size * RES, x0 + size * RES, y0)
        items.append({
            "type": "Feature", "stac_version": "1.0.0",
            "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "id": rel.replace("/", "-").removesuffix(".tif"),
            "bbox": [west, south, east, north],
            "geometry": {"type": "Polygon", "coordinates": [[[west, south], [east, south],
                         [east, north], [west, north], [west, south]]]},
            "properties": {"datetime": dates[k] if dates else DATE},
            "assets": {"data": {
                "href": f"{base_url}/{rel}", "type": "image/tiff; application=geotiff",
                "roles": ["data"], "proj:code": crs,
                "proj:transform": [RES, 0.0, x0, 0.0, -RES, y0], "proj:shape": [size, size],
                "raster:bands": [{"data_type": "uint16", "nodata": 0}],
            }},
            "links": [],
        })
    return items


def header_sizes(scenes: list[tuple[str, str, float, float]]) -> dict[str, int]:
    """Per URL path, the bytes before the first tile: GETs starting there read the header."""
    import rasterio

    out = {}
    for rel, *_ in scenes:
        with rasterio.open(DATA / rel) as src:
            offsets = [int(src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1))
                       for r in range(SIZE // TILE) for c in range(SIZE // TILE)]
        out[f"/{rel}"] = min(offsets)
    return out


def decode_seconds(
    scenes: list[tuple[str, str, float, float]], size: int = SIZE
) -> tuple[float, int]:
    """CPU seconds to decode every tile of every scene once (imagecodecs, one thread)."""
    import imagecodecs
    import rasterio

    total, tiles = 0.0, 0
    for rel, *_ in scenes:
        path = DATA / rel
        with rasterio.open(path) as src:
            ranges = [(int(src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1)),
                       int(src.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1)))
                      for r in range(size // TILE) for c in range(size // TILE)]
        blob = path.read_bytes()
        t0 = time.process_time()
        for off, length in ranges:
            imagecodecs.deflate_decode(blob[off:off + length], out=TILE * TILE * 2)
        total += time.process_time() - t0
        tiles += len(ranges)
    return total, tiles


# -- children (one library, one fresh process) ----------------------------------------------
def child(lib: str, scenario: str, base_url: str, grid: dict, threads: int, chunks: int,
          out: str) -> None:
    import dask
    import numpy as np

    items = json.loads(Path(grid["items"]).read_text())
    dask.config.set(scheduler="threads", num_workers=threads)
    _imports(lib)
    t0 = time.perf_counter()
    if lib == "daskcog":
        import daskcog

        arr = daskcog.load(items, groupby="solar_day", chunks=chunks,
                           client_options={"allow_http": True}).data
    elif lib == "odc-stac":
        import odc.stac
        import pystac
        from affine import Affine
        from odc.geo.geobox import GeoBox

        os.environ.update(GDAL_ENV)
        geobox = GeoBox((grid["height"], grid["width"]), Affine(*grid["transform"]), grid["crs"])
        ds = odc.stac.load([pystac.Item.from_dict(it) for it in items], bands=["data"],
                           geobox=geobox, groupby="solar_day", resampling="nearest",
                           chunks={"x": chunks, "y": chunks})
        arr = ds["data"].data[:, None]
    elif lib == "stackstac":
        import pystac
        import stackstac
        from rasterio.enums import Resampling

        os.environ.update(GDAL_ENV)
        left, bottom, right, top = grid["bounds"]
        stacked = stackstac.stack([pystac.Item.from_dict(it) for it in items], assets=["data"],
                                  epsg=32633, resolution=RES, bounds=(left, bottom, right, top),
                                  chunksize=chunks, resampling=Resampling.nearest,
                                  dtype="uint16", fill_value=np.uint16(0), rescale=False,
                                  snap_bounds=False)
        arr = stackstac.mosaic(stacked, dim="time", reverse=True, nodata=0).data[None]
    elif lib == "lazycogs":
        import lazycogs
        from obstore.store import HTTPStore

        store = HTTPStore.from_url(base_url, client_options={"allow_http": True})
        prefix = base_url.rstrip("/") + "/"
        da_ = lazycogs.open(grid["parquet"], bbox=tuple(grid["bounds"]), crs="EPSG:32633",
                            resolution=RES, bands=["data"], chunks={"x": chunks, "y": chunks},
                            store=store, path_from_href=lambda h: h.removeprefix(prefix),
                            nodata=0, duckdb_client=_duckdb_client())
        arr = da_.transpose("time", "band", "y", "x").data
    else:
        raise SystemExit(f"unknown library {lib}")
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    values = np.asarray(arr.compute())
    seconds = time.perf_counter() - t0
    np.save(out, values)
    print(json.dumps({"seconds": seconds, "build": build, "shape": list(values.shape),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _duckdb_client() -> Any:
    """rustac's DuckDB with its extensions (spatial, icu) from PyPI's duckdb-extension-* wheels,
    laid out as DuckDB's extension directory expects; nothing is downloaded."""
    import importlib.util
    import pkgutil

    import rustac

    root = DATA / "duckdb-extensions"
    names = []
    for module in pkgutil.iter_modules():
        if not module.name.startswith("duckdb_extension_"):
            continue
        name = module.name.removeprefix("duckdb_extension_")
        wheel = Path(importlib.util.find_spec(module.name).origin).parent / "extensions"
        for version in wheel.iterdir():
            target = root / version.name / "linux_amd64"
            target.mkdir(parents=True, exist_ok=True)
            link = target / f"{name}.duckdb_extension"
            if not link.exists():
                link.symlink_to(version / f"{name}.duckdb_extension")
        names.append(name)
    return rustac.DuckdbClient(extension_directory=str(root), install_extensions=False,
                               extensions=names)


def _imports(lib: str) -> None:
    """Import the library before the clock starts (imports are not what is measured)."""
    import importlib

    for name in {"daskcog": ["daskcog"], "odc-stac": ["odc.stac", "pystac"],
                 "stackstac": ["stackstac", "pystac"], "lazycogs": ["lazycogs"]}[lib]:
        importlib.import_module(name)


def child_build(lib: str, items_path: str) -> None:
    items = json.loads(Path(items_path).read_text())
    _imports(lib)
    t0 = time.perf_counter()
    if lib == "daskcog":
        import daskcog

        stack = daskcog.load(items, groupby="solar_day", chunks=2048,
                             client_options={"allow_http": True})
        tasks = stack.data.npartitions
    elif lib == "odc-stac":
        import odc.stac
        import pystac

        ds = odc.stac.load([pystac.Item.from_dict(it) for it in items], bands=["data"],
                           groupby="solar_day", chunks={"x": 2048, "y": 2048}, crs="EPSG:32633",
                           resolution=RES)
        tasks = ds["data"].data.npartitions
    else:
        raise SystemExit(f"no build benchmark for {lib}")
    print(json.dumps({"seconds": time.perf_counter() - t0, "tasks": tasks}))


# -- the parent ---------------------------------------------------------------------------
def run(cmd: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})},
                          check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{cmd[:4]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def grid_of(items: list[dict]) -> dict:
    import daskcog

    stack = daskcog.load(items, groupby="solar_day", chunks=2048,
                         client_options={"allow_http": True})
    t = stack.transform
    return {"crs": "EPSG:32633", "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            "width": stack.shape[3], "height": stack.shape[2], "bounds": list(stack[0].bounds)}


def write_parquet(items: list[dict], path: Path) -> None:
    import stac_geoparquet.arrow as sga

    sga.to_parquet(sga.parse_stac_items_to_arrow(items).read_all(), str(path))


def scenario_run(args: argparse.Namespace, scenario: str, server: Any) -> list[dict]:
    import numpy as np

    scenes = ensure_scenes(scenario)
    items = items_for(scenario, server.url, scenes)
    work = DATA / "run"
    work.mkdir(parents=True, exist_ok=True)
    grid = grid_of(items)
    (work / f"{scenario}-items.json").write_text(json.dumps(items))
    write_parquet(items, work / f"{scenario}-items.parquet")
    grid.update(items=str(work / f"{scenario}-items.json"),
                parquet=str(work / f"{scenario}-items.parquet"))
    headers = header_sizes(scenes)
    rows = []
    reference = None
    for lib in ("daskcog", "odc-stac", "stackstac", "lazycogs"):
        if lib in args.skip:
            continue
        python = args.lazycogs_python if lib == "lazycogs" else sys.executable
        runs = []
        for _ in range(args.runs):
            server.reset()
            got = run([python, __file__, "--child", lib, scenario, server.url, json.dumps(grid),
                       str(args.threads), str(args.chunks), str(work / f"{lib}.npy")],
                      env={"PYTHONPATH": str(ROOT)})
            stats = server.stats(header_bytes=headers)
            got.update(requests=stats.requests, header_requests=stats.header_requests,
                       bytes=stats.bytes_sent)
            runs.append(got)
        values = np.load(work / f"{lib}.npy")
        if reference is None:
            reference = values
        differ = int((values != reference).sum()) if values.shape == reference.shape else -1
        best = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        rows.append({"lib": lib, "seconds": statistics.median(r["seconds"] for r in runs),
                     "all": [round(r["seconds"], 2) for r in runs], "requests": best["requests"],
                     "header_requests": best["header_requests"], "bytes": best["bytes"],
                     "peak_rss_mib": best["peak_rss_mib"], "differ": differ,
                     "pixels": int(reference.size)})
        print(f"  {scenario} {lib}: {rows[-1]['all']} s, load {os.getloadavg()[0]:.1f}", flush=True)
    cpu, tiles = decode_seconds(scenes)
    cores = os.cpu_count() or 1
    out_pixels = grid["width"] * grid["height"]
    floor_min = cpu / tiles * (out_pixels / (TILE * TILE)) / cores
    print(f"\n## {scenario}: {len(scenes)} scenes, grid {grid['width']} x {grid['height']} px, "
          f"chunks {args.chunks}, {args.threads} threads, {args.latency_ms:g} ms per request")
    print(f"decode floor: {floor_min:.2f} s (output area once, {cores} cores); all tiles "
          f"{cpu / cores:.2f} s ({tiles} tiles, {cpu:.2f} s CPU)")
    print("| library | wall s (median) | runs | vs daskcog | requests | header requests | MiB sent "
          "| peak RSS MiB | pixels differing |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = rows[0]["seconds"]
    for r in rows:
        print(f"| {r['lib']} | {r['seconds']:.2f} | {r['all']} | {r['seconds'] / base:.2f}x | "
              f"{r['requests']} | {r['header_requests']} | {r['bytes'] / 2**20:.0f} | "
              f"{r['peak_rss_mib']:.0f} | {r['differ']:,} of {r['pixels']:,} |")
    print(f"daskcog / decode floor: {base / floor_min:.2f}x")
    return rows


def build_run(args: argparse.Namespace, server: Any) -> None:
    from pyproj import Transformer

    n = args.build_items
    to_b = Transformer.from_crs("EPSG:32633", "EPSG:32634", always_xy=True)
    scenes = []
    for i in range(n):
        tile, date = i % 100, i // 100
        r, c = divmod(tile, 10)
        x, y, crs = 300_000 + c * 100_000.0, 5_000_000 - r * 100_000.0, "EPSG:32633"
        if c == 9:
            crs = "EPSG:32634"
            x, y = (round(v / RES) * RES for v in to_b.transform(x, y))
        scenes.append((f"build/{date}/T{tile}.tif", crs, float(x), float(y)))
    items = items_for("build", server.url, scenes)
    for k, it in enumerate(items):
        it["properties"]["datetime"] = (
            f"2024-{1 + (k // 100) // 28 % 12:02d}-{1 + (k // 100) % 28:02d}T10:00:00Z"
        )
    path = DATA / "run" / f"build-{n}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items))
    print(f"\n## graph build, {n:,} items (each in a fresh process; files do not exist)")
    print("| library | build s | tasks | requests at the server |")
    print("|---|---|---|---|")
    for lib in ("daskcog", "odc-stac"):
        if lib in args.skip:
            continue
        server.reset()
        got = run([sys.executable, __file__, "--build", lib, str(path)],
                  env={"PYTHONPATH": str(ROOT)})
        print(f"| {lib} | {got['seconds']:.2f} | {got['tasks']:,} | {server.stats().requests} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scenario", default="all", choices=["one-crs", "two-zones", "all", "none"]
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--build-items", type=int, default=10_000)
    parser.add_argument("--skip", default="")
    parser.add_argument("--lazycogs-python", default=str(ROOT / ".venv312" / "bin" / "python"))
    parser.add_argument("--child", nargs=7)
    parser.add_argument("--build", nargs=2)
    args = parser.parse_args()
    if args.child:
        lib, scenario, base, grid, threads, chunks, out = args.child
        child(lib, scenario, base, json.loads(grid), int(threads), int(chunks), out)
        return
    if args.build:
        child_build(*args.build)
        return
    args.skip = {s for s in args.skip.split(",") if s}
    try:
        from benchmarks.servers import RangeServer
    except ImportError as exc:  # issue 12's server is not in this checkout
        raise SystemExit(f"benchmarks.servers.RangeServer is needed: {exc}") from exc
    print(f"load: {os.getloadavg()[0]:.2f} (1 min average) at start; "
          f"python {sys.version.split()[0]}; lazycogs python: {args.lazycogs_python}")
    DATA.mkdir(parents=True, exist_ok=True)
    with RangeServer(DATA, latency_ms=args.latency_ms) as server:
        for scenario in (["one-crs", "two-zones"] if args.scenario == "all" else
                         [] if args.scenario == "none" else [args.scenario]):
            scenario_run(args, scenario, server)
        if args.build_items:
            build_run(args, server)


if __name__ == "__main__":
    main()
