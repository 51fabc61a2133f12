"""`Fetched`: what a fetch hands to assembly, a plain value between the two steps.

Its own module so that fetching (`read.fetch`) and assembling (`assemble`) both depend on
it and not on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Fetched:
    """What a fetch brought back for a window inside the image, ready to assemble."""

    raw: list[tuple[int, int, Any]] = field(default_factory=list)
    """(tx, ty, compressed bytes) of tiles imagecodecs decodes."""
    decoded: list[tuple[int, int, np.ndarray]] = field(default_factory=list)
    """(tx, ty, (bands, h, w)) of tiles async-tiff decoded."""
    sparse: list[tuple[int, int]] = field(default_factory=list)
    masks: list[tuple[int, int, Any]] | None = None
    """(tx, ty, compressed bytes) of mask tiles, decoded (bounded) at assembly."""
    values: np.ndarray | None = None
    """The final values (the rasterio route reads and assembles in one go)."""
