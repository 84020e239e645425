"""Review of a section's regions: state, colours, genes, napari layer description.

Modules, one concern each:

* :mod:`.state`: :class:`ReviewState` (names, colours, display);
* :mod:`.edits`: re-cluster, rename, recolour, assign, merge, undo, redo (a mixin);
* :mod:`.classify`: the other spots from a few assigned by hand, nearest region mean (a mixin);
* :mod:`.history`: undo and redo, stored as differences (O(changed spots));
* :mod:`.persist`: where the review lives in the AnnData (``uns``, ``obs``);
* :mod:`.colour_by`: colour by a gene or numeric column (a mixin);
* :mod:`.describe`: the layer methods of the state (a mixin);
* :mod:`.markers`: marker-gene tables of the regions (cached);
* :mod:`.matching`: carry names and colours to a new clustering;
* :mod:`.colours`: the palette and colour conversion;
* :mod:`.genes`: gene search and per-spot values for colouring;
* :mod:`.layers`: napari points layer data, ``features`` and kwargs (duck-typed);
* :mod:`.grid`: square bin grids (Visium HD) and their raster transform;
* :mod:`.raster`: large square-grid sections as labels rasters (one pixel per bin);
* :mod:`.link`: the selection and colours of a points or raster layer as arrays (linked views);
* :mod:`.geometry`: spots inside drawn shapes;
* :mod:`.keys`: the AnnData keys the review writes.

Nothing here imports Qt or napari.
"""

from __future__ import annotations

from .colours import PALETTE, PLAIN_COLOUR, to_hex
from .geometry import spots_in_shapes
from .grid import Grid, square_grid
from .keys import EXPRESSION_KEY, MANUAL_KEY, REGION_KEY, REVIEW_KEY, UNLABELLED_NAME
from .layer_data import image_layer_data, points_layer_data, section_layer_data, spots_layer_data
from .layers import check_layer_matches
from .raster import RASTER_MIN_SPOTS, is_raster_layer
from .state import ReviewState

__all__ = [
    "REVIEW_KEY",
    "REGION_KEY",
    "EXPRESSION_KEY",
    "MANUAL_KEY",
    "UNLABELLED_NAME",
    "PALETTE",
    "PLAIN_COLOUR",
    "ReviewState",
    "to_hex",
    "check_layer_matches",
    "section_layer_data",
    "spots_layer_data",
    "Grid",
    "square_grid",
    "RASTER_MIN_SPOTS",
    "is_raster_layer",
    "points_layer_data",
    "image_layer_data",
    "spots_in_shapes",
]
