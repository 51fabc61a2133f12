"""`daskcog demo`: sample COGs made by daskcog itself, then stats and a mosaic on a cluster.

The samples are overlapping tiles of one synthetic scene (like overlapping
satellite acquisitions): terrain-like multi-octave value noise over the whole
scene, field-like parcels, a per-acquisition gain and offset, sensor noise, and
a no-data swath edge in one corner of each tile. Each is written as a real COG
(uint16, DEFLATE with predictor 2, 512-pixel tiles, overviews, nodata 0) by
`GeoArray.to_cog`, chunk by chunk, from a lazy array over `SyntheticScene`.
The files are cached in the work folder (with a `demo.json` manifest) and
reused while the manifest matches.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

DEFAULT_WORKDIR = Path("~/.cache/daskcog/demo")
MANIFEST = "demo.json"
VERSION = 1
NODATA = 0
CRS = "EPSG:32633"
RES = 10.0
ORIGIN = (399960.0, 5500020.0)
Say = Callable[[str], None]


@dataclass(frozen=True)
class SceneSpec:
    """The synthetic scene and how it is cut into overlapping tiles."""

    size: int = 4096
    """Width and height of each sample file, in pixels."""
    count: int = 4
    """Number of sample files (laid out on a square-ish grid)."""
    overlap: float = 0.25
    """Fraction of a tile shared with its neighbour."""
    seed: int = 7
    dtype: str = "uint16"
    tile: int = 512
    version: int = VERSION

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of the tile layout."""
        cols = math.ceil(math.sqrt(self.count))
        return math.ceil(self.count / cols), cols

    @property
    def step(self) -> int:
        return max(1, int(round(self.size * (1 - self.overlap))))

    @property
    def scene_shape(self) -> tuple[int, int]:
        rows, cols = self.grid
        return self.size + self.step * (rows - 1), self.size + self.step * (cols - 1)

    def offset(self, index: int) -> tuple[int, int]:
        """(row, col) of tile `index` in the scene."""
        _, cols = self.grid
        return (index // cols) * self.step, (index % cols) * self.step

    def transform(self, index: int) -> Affine:
        row, col = self.offset(index)
        return Affine(RES, 0.0, ORIGIN[0] + col * RES, 0.0, -RES, ORIGIN[1] - row * RES)


class SyntheticScene:
    """Array-like (1, size, size) view of tile `index` of the scene; slices compute pixels.

    Pickles as its spec and index only; the noise lattices are rebuilt (seeded)
    on first use in each process.
    """

    def __init__(self, spec: SceneSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.shape = (1, spec.size, spec.size)
        self.dtype = np.dtype(spec.dtype)
        self.ndim = 3
        self._lattices: list[tuple[float, np.ndarray]] | None = None
        self._parcels: np.ndarray | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (SyntheticScene, (self.spec, self.index))

    def _build(self) -> tuple[list[tuple[float, np.ndarray]], np.ndarray]:
        rng = np.random.default_rng(self.spec.seed)
        height, width = self.spec.scene_shape
        lattices = []
        cells, amplitude = 3, 1.0
        while cells <= max(8, max(height, width) // 16):
            lattices.append((amplitude, rng.random((cells + 1, cells + 1)).astype(np.float32)))
            cells, amplitude = cells * 2, amplitude * 0.55
        n = 40 * self.spec.count
        parcels = np.column_stack(
            [
                rng.integers(0, height, n),
                rng.integers(0, width, n),
                rng.integers(height // 80 + 1, height // 12 + 2, n),
                rng.integers(width // 80 + 1, width // 12 + 2, n),
                rng.uniform(-0.06, 0.06, n) * 1e6,
            ]
        ).astype(np.int64)
        return lattices, parcels

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        _, rows, cols = key
        r0, r1, _ = rows.indices(self.spec.size)
        c0, c1, _ = cols.indices(self.spec.size)
        return self.block(r0, r1, c0, c1)[np.newaxis]

    def block(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Pixels [r0:r1, c0:c1] of this tile."""
        if self._lattices is None or self._parcels is None:
            self._lattices, self._parcels = self._build()
        lattices, parcels = self._lattices, self._parcels
        spec = self.spec
        height, width = spec.scene_shape
        off_r, off_c = spec.offset(self.index)
        gr = np.arange(off_r + r0, off_r + r1)
        gc = np.arange(off_c + c0, off_c + c1)
        value = np.zeros((gr.size, gc.size), dtype=np.float32)
        norm = 0.0
        for amplitude, lattice in lattices:
            value += amplitude * _interpolate(
                lattice, gr / max(height - 1, 1), gc / max(width - 1, 1)
            )
            norm += amplitude
        value /= norm
        for pr, pc, ph, pw, shift in parcels:
            a, b = max(pr, gr[0]), min(pr + ph, gr[-1] + 1)
            c, d = max(pc, gc[0]), min(pc + pw, gc[-1] + 1)
            if a < b and c < d:
                value[a - gr[0] : b - gr[0], c - gc[0] : d - gc[0]] += shift / 1e6
        rng = np.random.default_rng([spec.seed, self.index, r0, c0])
        gain = 1.0 + 0.04 * (self.index % 3 - 1)
        value = (
            value * gain + 0.01 * self.index + rng.normal(0, 0.004, value.shape).astype(np.float32)
        )
        out = np.round(200 + np.clip(value, 0, 1.2) * 8000).astype(spec.dtype)
        # no-data swath edge across the top-right corner
        rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
        out[cc - rr > int(spec.size * 0.85)] = NODATA
        return out


def _interpolate(lattice: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Smoothstep value noise of `lattice` at fractional positions (separable: x, then y)."""
    n = lattice.shape[0] - 1

    def weights(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scaled = pos * n
        i0 = np.minimum(scaled.astype(np.int64), n - 1)
        f = (scaled - i0).astype(np.float32)
        return i0, f * f * (3 - 2 * f)

    ix, fx = weights(x)
    iy, fy = weights(y)
    along_x = (1 - fx) * lattice[:, ix] + fx * lattice[:, ix + 1]
    return (1 - fy)[:, None] * along_x[iy] + fy[:, None] * along_x[iy + 1]


def sample_geoarray(spec: SceneSpec, index: int, chunks: int = 1024) -> Any:
    """Tile `index` of the scene as a lazy GeoArray."""
    import dask.array as da
    from dask.base import tokenize

    from daskcog.reading.geoarray import GeoArray

    scene = SyntheticScene(spec, index)
    data = da.from_array(
        scene,
        chunks=(1, chunks, chunks),
        name=f"daskcog-demo-{tokenize(spec, index)}",
        lock=False,
        asarray=False,
        fancy=False,
        meta=np.empty((0, 0, 0), dtype=spec.dtype),
    )
    return GeoArray(
        data, transform=spec.transform(index), crs=CRS, fill_value_default=NODATA, nodata=NODATA
    )


def sample_paths(workdir: Path, spec: SceneSpec) -> list[Path]:
    return [workdir / f"sample_{i + 1}.tif" for i in range(spec.count)]


def make_sample_cogs(
    workdir: str | Path,
    spec: SceneSpec,
    *,
    say: Say = print,
    scheduler: Any = "threads",
) -> tuple[list[Path], bool]:
    """Write (or reuse) the sample COGs; returns (paths, reused)."""
    workdir = Path(workdir).expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    paths = sample_paths(workdir, spec)
    manifest = workdir / MANIFEST
    wanted = asdict(spec)
    try:
        recorded = json.loads(manifest.read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded == {"spec": wanted, "files": [p.name for p in paths]} and all(
        p.is_file() for p in paths
    ):
        return paths, True
    manifest.unlink(missing_ok=True)
    say(
        f"writing {spec.count} sample COGs ({spec.size}x{spec.size} {spec.dtype}, "
        "DEFLATE + predictor 2, "
        f"{spec.tile}-pixel tiles, overviews, nodata {NODATA}, {int(spec.overlap * 100)}% overlap) "
        f"to {workdir}"
    )
    for index, path in enumerate(paths):
        start = time.perf_counter()
        sample_geoarray(spec, index).to_cog(
            path, blocksize=spec.tile, resampling="average", scheduler=scheduler
        )
        size = path.stat().st_size / 2**20
        say(f"  {path.name}: {size:.1f} MiB in {time.perf_counter() - start:.1f} s")
    manifest.write_text(json.dumps({"spec": wanted, "files": [p.name for p in paths]}, indent=2))
    return paths, False
