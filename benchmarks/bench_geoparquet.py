"""stac-geoparquet at archive scale: what the client holds, and pyarrow vs DuckDB per chunk.

    python benchmarks/bench_geoparquet.py [--items 100000] [--queries 200]

Data: a synthetic Sentinel-2-like archive (10 x 10 tiles of 109.8 km, 100 km apart,
the eastern column in the next UTM zone; --items / 100 dates; assets B04, B03, B02
with proj:* and raster:bands) written once with stac-geoparquet to
benchmarks/data/stac-archive-N.parquet. No pixel is read: hrefs point nowhere.

Measured, each in a fresh process (peak RSS from the kernel, `ru_maxrss`; a process
that only imports daskcog peaks at ~187 MiB, the floor under every figure):
* open: `daskcog.load(path, bands=["red"], groupby="solar_day", chunks=2048)` on the
  file, against `daskcog.load(items)` on the same items as dicts (which first has to
  hold them: their parse from JSON is counted);
* per-chunk filter: the query a chunk task runs (one step's time range, the chunk's
  lon/lat box, the asset columns it needs), over `--queries` random (step, chunk)
  pairs, three ways: "pyarrow" (daskcog's engine: the needed columns decoded once
  per process into an Arrow table, then a vectorised filter per chunk), "pyarrow-scan"
  (a scan of the file per chunk, row groups pruned by their statistics) and "duckdb"
  (DuckDB's `read_parquet` per chunk with the same predicate in SQL, lazycogs's way).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DATA = ROOT / "benchmarks" / "data"


def archive_items(n: int) -> list[dict]:
    """n items over 100 tiles (n / 100 dates), like a Sentinel-2 archive of one region."""
    import datetime as dt

    from pyproj import Transformer

    to_b = Transformer.from_crs("EPSG:32633", "EPSG:32634", always_xy=True)
    to_ll = {c: Transformer.from_crs(c, "EPSG:4326", always_xy=True)
             for c in ("EPSG:32633", "EPSG:32634")}
    tiles = []
    for r in range(10):
        for c in range(10):
            x0, y0, code = 300_000 + c * 100_000, 5_000_000 - r * 100_000, "EPSG:32633"
            if c == 9:
                code = "EPSG:32634"
                x0, y0 = (round(v / 10) * 10 for v in to_b.transform(x0, y0))
            w, s, e, nn = to_ll[code].transform_bounds(x0, y0 - 109_800, x0 + 109_800, y0)
            tiles.append((f"T{r}{c}", code, x0, y0, [w, s, e, nn]))
    start = dt.datetime(2020, 1, 1, 10, 0, tzinfo=dt.UTC)
    items = []
    for i in range(n):
        name, code, x0, y0, bbox = tiles[i % 100]
        when = start + dt.timedelta(days=5 * (i // 100), seconds=3 * (i % 100))
        proj = {"proj:code": code, "proj:transform": [10.0, 0.0, x0, 0.0, -10.0, y0],
                "proj:shape": [10980, 10980]}
        assets = {
            key: {"href": f"s3://archive/{name}/{when:%Y%m%d}/{key}.tif",
                  "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                  "roles": ["data"], "eo:bands": [{"name": key, "common_name": common}],
                  "raster:bands": [{"data_type": "uint16", "nodata": 0}], **proj}
            for key, common in (("B04", "red"), ("B03", "green"), ("B02", "blue"))
        }
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": f"S2_{name}_{when:%Y%m%d}",
            "bbox": bbox,
            "geometry": {"type": "Polygon", "coordinates": [[[bbox[0], bbox[1]], [bbox[2], bbox[1]],
                         [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]]]},
            "properties": {"datetime": when.isoformat().replace("+00:00", "Z"),
                           "platform": "sentinel-2a", "eo:cloud_cover": float(i % 97)},
            "assets": assets, "links": [],
        })
    return items


def ensure(n: int) -> tuple[Path, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    parquet, jsonl = DATA / f"stac-archive-{n}.parquet", DATA / f"stac-archive-{n}.jsonl"
    if not parquet.exists() or not jsonl.exists():
        import stac_geoparquet.arrow as sga

        items = archive_items(n)
        jsonl.write_text("\n".join(json.dumps(it) for it in items))
        sga.to_parquet(sga.parse_stac_items_to_arrow(items, chunk_size=8192).read_all(),
                       str(parquet))
    return parquet, jsonl


def child_open(kind: str, path: str) -> None:
    import daskcog

    t0 = time.perf_counter()
    if kind == "parquet":
        stack = daskcog.load(path, bands=["red"], groupby="solar_day", chunks=2048)
    else:
        items = [json.loads(line) for line in Path(path).read_text().splitlines()]
        stack = daskcog.load(items, bands=["red"], groupby="solar_day", chunks=2048)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mib": rss, "steps": len(stack),
                      "tasks": stack.data.npartitions}))


def child_queries(engine: str, path: str, queries: int) -> None:
    import numpy as np

    import daskcog
    from daskcog.mosaics.crs import crs_text, transform_bounds

    stack = daskcog.load(path, bands=["red"], groupby="solar_day", chunks=2048)
    spec = stack.spec
    rng = np.random.default_rng(0)
    _, _, ych, xch = stack.data.chunks
    rows, cols = np.cumsum((0, *ych)), np.cumsum((0, *xch))
    picks = []
    for _ in range(queries):
        t = int(rng.integers(spec.steps))
        r, c = int(rng.integers(len(ych))), int(rng.integers(len(xch)))
        box = spec.grid.window_bounds(int(cols[c]), int(rows[r]), int(xch[c]), int(ych[r]))
        picks.append((t, box))
    found = 0
    first = 0.0
    if engine == "pyarrow":
        t0 = time.perf_counter()
        spec.rows(0, picks[0][1])  # decodes the columns once per process (cached)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for t, box in picks:
            found += spec.rows(t, box).num_rows
    elif engine == "pyarrow-scan":
        import pyarrow as pa
        import pyarrow.compute as pc

        from daskcog.stac.geoparquet.parquet_file import fragment

        frag = fragment(path, ())
        wgs = crs_text("EPSG:4326")
        stamp = pa.timestamp("us", tz="UTC")
        cols = {"id": pc.field("id"), "datetime": pc.field("datetime"), "bbox": pc.field("bbox"),
                "b04": pc.field("assets", "B04")}
        t0 = time.perf_counter()
        for t, box in picks:
            west, south, east, north = transform_bounds(box, spec.grid.crs, wgs)
            s = spec.step_list[t]
            expr = ((pc.field("datetime") >= pa.scalar(s.first, stamp))
                    & (pc.field("datetime") <= pa.scalar(s.last, stamp))
                    & (pc.field("bbox", "xmin") <= east) & (pc.field("bbox", "xmax") >= west)
                    & (pc.field("bbox", "ymin") <= north) & (pc.field("bbox", "ymax") >= south))
            found += frag.to_table(filter=expr, columns=cols).num_rows
    else:
        import duckdb

        con = duckdb.connect()
        wgs = crs_text("EPSG:4326")
        sql = (
            "SELECT id, datetime, bbox, assets.B04 AS b04 FROM read_parquet(?) "
            "WHERE datetime BETWEEN make_timestamptz(?) AND make_timestamptz(?) "
            "AND bbox.xmin <= ? AND bbox.xmax >= ? AND bbox.ymin <= ? AND bbox.ymax >= ?"
        )
        con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchall()
        t0 = time.perf_counter()
        for t, box in picks:
            west, south, east, north = transform_bounds(box, spec.grid.crs, wgs)
            s = spec.step_list[t]
            found += con.sql(sql, params=[path, s.first, s.last, east, west, north, south]
                             ).to_arrow_table().num_rows
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"per_query_ms": 1000 * seconds / queries, "rows": found,
                      "first_ms": 1000 * first, "peak_rss_mib": rss}))


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "open":
            child_open(rest[0], rest[1])
        else:
            child_queries(rest[0], rest[1], int(rest[2]))
        return
    parquet, jsonl = ensure(args.items)
    print(f"archive: {args.items:,} items, {parquet.stat().st_size / 2**20:.1f} MiB parquet, "
          f"{jsonl.stat().st_size / 2**20:.1f} MiB JSON lines")
    for kind, path in (("parquet", parquet), ("items", jsonl)):
        got = run_child("open", kind, str(path))
        print(
            f"open from {kind:8s}: {got['seconds']:.2f} s, peak RSS {got['peak_rss_mib']:.0f} MiB, "
            f"{got['steps']} steps, {got['tasks']:,} tasks"
        )
    for engine in ("pyarrow", "pyarrow-scan", "duckdb"):
        got = run_child("query", engine, str(parquet), str(args.queries))
        once = f", first query {got['first_ms']:.0f} ms (decodes once)" if got["first_ms"] else ""
        print(f"per-chunk filter, {engine:12s}: {got['per_query_ms']:.1f} ms a query "
              f"({got['rows']:,} rows over {args.queries} queries){once}, process peak RSS "
              f"{got['peak_rss_mib']:.0f} MiB (open included)")


if __name__ == "__main__":
    main()
