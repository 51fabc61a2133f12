"""STAC items, searches and stac-geoparquet archives as lazy stacks (`daskcog.load`).

STAC libraries are optional (`pip install daskcog[stac]`) and imported only
when an input needs them.
"""

from daskcog.stac.items.asset_scenes import HeaderFallbackWarning
from daskcog.stac.items.bands import BandError
from daskcog.stac.items.item_dicts import StacError, StacItemError
from daskcog.stac.load import load
from daskcog.stac.output_grid import MixedCrsWarning, OutsideItemsWarning
from daskcog.stac.stac_stack import StacStack

__all__ = [
    "BandError", "HeaderFallbackWarning", "MixedCrsWarning", "OutsideItemsWarning", "StacError",
    "StacItemError", "StacStack", "load",
]
