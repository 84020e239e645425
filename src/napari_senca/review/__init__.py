"""Review of a section's regions: state, colours, genes, napari layer description.

Modules, one concern each:

* :mod:`.state`: :class:`ReviewState` (names, colours, edits, undo);
* :mod:`.markers`: marker-gene tables of the regions (cached);
* :mod:`.matching`: carry names and colours to a new clustering;
* :mod:`.colours`: the palette and colour conversion;
* :mod:`.genes`: gene search and per-spot values for colouring;
* :mod:`.layers`: napari layer data, ``features`` and kwargs (duck-typed);
* :mod:`.geometry`: spots inside drawn shapes;
* :mod:`.keys`: the AnnData keys the review writes.

Nothing here imports Qt or napari.
"""

from __future__ import annotations

from .colours import PALETTE, PLAIN_COLOUR, to_hex
from .geometry import spots_in_shapes
from .keys import EXPRESSION_KEY, MANUAL_KEY, REGION_KEY, REVIEW_KEY, UNLABELLED_NAME
from .layers import check_layer_matches, image_layer_data, points_layer_data, section_layer_data
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
    "points_layer_data",
    "image_layer_data",
    "spots_in_shapes",
]
