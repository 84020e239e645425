"""The selection and colours of a section layer, points or raster, as arrays (for linked views).

A standard section is a napari points layer: its selection is
``layer.selected_data`` and its colours ``face_color``. A large square-grid
section (Visium HD) is a labels raster (:mod:`.raster`): its selection is a
sorted index array in the layer's metadata, outlined by a companion labels
layer, and other colours are drawn by a companion RGB image. The functions
here hide the difference, so the Embedding view (and the Review widget)
select and colour spots the same way on both. Layers are duck-typed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import raster as _raster

if TYPE_CHECKING:
    from .state import ReviewState

__all__ = ["selected_spots", "select_spots", "watch_selection", "unwatch_selection", "show_spot_colours"]


def selected_spots(layer: Any) -> np.ndarray:
    """Sorted int64 indices of the spots selected on a section layer."""
    if _raster.is_raster_layer(layer):
        return _raster.selected_bins(layer)
    return np.sort(np.fromiter((int(i) for i in layer.selected_data), dtype=np.int64))


def select_spots(layer: Any, idx: Any, add: bool = False) -> np.ndarray:
    """Make ``idx`` (or, with ``add``, its union with the current one) the layer's selection.

    On a raster this is the selection the Review widget's *Assign* uses,
    outlined by its selection layer when that layer exists. Returns the new
    selection, sorted.
    """
    new = np.asarray(idx, dtype=np.int64).ravel()
    if add:
        new = np.union1d(selected_spots(layer), new)
    if _raster.is_raster_layer(layer):
        return _raster.select_bins(layer, new, layer.metadata["adata"].n_obs)
    layer.selected_data = set(new.tolist())
    return selected_spots(layer)


def watch_selection(layer: Any, callback: Any) -> None:
    """Call ``callback(*args)`` after every change of the layer's selection."""
    if _raster.is_raster_layer(layer):
        _raster.watch_selection(layer, callback)
    else:
        layer.selected_data.events.items_changed.connect(callback)


def unwatch_selection(layer: Any, callback: Any) -> None:
    """Stop calling ``callback`` (silently when it was not connected)."""
    if _raster.is_raster_layer(layer):
        _raster.unwatch_selection(layer, callback)
        return
    try:
        layer.selected_data.events.items_changed.disconnect(callback)
    except (TypeError, RuntimeError, ValueError, AttributeError):
        pass


def show_spot_colours(state: ReviewState, layer: Any, rgba: np.ndarray) -> None:
    """Draw the spots in ``rgba`` (one row per spot) until the next review edit redraws them.

    A raster needs its value image (see :func:`.raster.value_layer_data`).
    """
    if _raster.is_raster_layer(layer):
        _raster.show_rgba(state, layer, rgba)
        return
    layer.face_color = np.asarray(rgba, dtype=np.float64)
    layer.refresh()
