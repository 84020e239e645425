"""How a review state is drawn: delegates to :mod:`.layers` (points) and :mod:`.raster` (a mixin).

A section is drawn either as a points layer (standard Visium, ST) or, for
large sections on a square grid (Visium HD), as a labels raster; the
methods here pick the right one from the layer they are given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import layers as _layers
from . import raster as _raster

if TYPE_CHECKING:
    from .state import ReviewState

__all__ = ["LayerMixin"]


class LayerMixin:
    """Layer description methods of :class:`~napari_senca.review.ReviewState`."""

    def colour_cycle(self: ReviewState) -> dict[str, str]:
        """Cluster id -> colour, for a points layer's ``face_color_cycle``."""
        return _layers.colour_cycle(self)

    def colour_column(self: ReviewState) -> str | None:
        """The ``features`` column spots are coloured by (None: one colour)."""
        return _layers.colour_column(self)

    def label_cycle(self: ReviewState) -> dict[str, str]:
        """Pathologist label -> colour (used before a run)."""
        return _layers.label_cycle(self)

    def spot_colours(self: ReviewState) -> np.ndarray:
        """``(n_spots, 4)`` RGBA colours as the layer shows them."""
        return _layers.spot_colours(self)

    def features(self: ReviewState) -> pd.DataFrame:
        """The spot table for a points layer's ``features`` (see :func:`layers.features`)."""
        return _layers.features(self)

    def metadata(self: ReviewState) -> dict[str, Any]:
        """Layer ``metadata``: the AnnData, this state, names and colours."""
        return _layers.metadata(self)

    def layer_kwargs(self: ReviewState, name: str | None = None) -> dict[str, Any]:
        """Keyword arguments of ``napari.layers.Points`` for this section."""
        return _layers.layer_kwargs(self, name)

    def coordinates(self: ReviewState) -> np.ndarray:
        """Spot centres as napari ``(row, col)`` = ``(y, x)`` full-res pixels."""
        return _layers.spot_coordinates(self.adata)

    def apply_to_layer(self: ReviewState, layer: Any) -> None:
        """Write colours, features and metadata to the section's points or labels layer."""
        if _raster.is_raster_layer(layer):
            _raster.apply_to_labels(self, layer)
        else:
            _layers.apply_to_layer(self, layer)

    @classmethod
    def from_layer(cls, layer: Any) -> ReviewState:
        """The state of a points or labels layer made by this plugin (created if needed)."""
        return _layers.state_from_layer(cls, layer)  # type: ignore[arg-type]
