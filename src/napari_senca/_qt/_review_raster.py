"""The Review widget's selection on points or rasters, and painting on rasters (a mixin).

A large square-grid section (Visium HD) is a labels raster
(:mod:`napari_senca.review.raster`): it has no point selection, so the
selected bins live in the layer's metadata and are outlined by a small
companion labels layer; colouring by a gene shows a companion RGB image.
Both companions are added when the section is first picked (by the Review
widget, or by the Embedding view through :func:`selection_overlay` and
:func:`value_overlay`). A brush stroke on the raster becomes a review edit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import QTimer

from ..review import ReviewState
from ..review import link as _link
from ..review import raster as _raster
from . import _common
from ._common import guarded, notify_error, notify_info

__all__ = ["RasterSelectionMixin", "companion", "selection_overlay", "value_overlay"]


def companion(viewer: Any, layer: Any, key: str, make: Any, below: bool) -> Any:
    """The value image or selection outline of a raster layer, added to the viewer when missing.

    Parameters
    ----------
    viewer
        The napari viewer holding ``layer``.
    layer
        A raster section layer.
    key
        ``raster.VALUE_LAYER_KEY`` or ``raster.SELECTION_LAYER_KEY`` (where the layer is kept).
    make
        Returns the companion's layer-data tuple.
    below
        Place it just below ``layer`` (else just above).
    """
    comp = layer.metadata.get(key)
    if comp is not None and comp in viewer.layers:
        return comp
    data, kw, ltype = make()
    comp = getattr(viewer, f"add_{ltype}")(data, **kw)
    layers = viewer.layers
    i, j = layers.index(layer), layers.index(comp)
    layers.move(j, i if below else i + 1)
    comp.translate = np.asarray(layer.translate).copy()
    layer.metadata[key] = comp
    layers.selection.active = layer
    return comp


def selection_overlay(viewer: Any, layer: Any) -> Any:
    """The magenta outline layer of a raster's selection (None for a points layer)."""
    if not _raster.is_raster_layer(layer):
        return None
    return companion(viewer, layer, _raster.SELECTION_LAYER_KEY, lambda: _raster.selection_layer_data(layer),
                     below=False)  # fmt: skip


def value_overlay(viewer: Any, layer: Any, state: ReviewState) -> Any:
    """The RGB value image under a raster (None for a points layer)."""
    if not _raster.is_raster_layer(layer):
        return None
    return companion(viewer, layer, _raster.VALUE_LAYER_KEY, lambda: _raster.value_layer_data(state, layer),
                     below=True)  # fmt: skip


class RasterSelectionMixin:
    """Selection and painting methods of :class:`~napari_senca._qt.ReviewWidget`.

    Uses the widget's ``viewer``, ``layer`` (section picker), ``state``,
    ``_layer``, ``_refreshing`` and ``_apply``.
    """

    viewer: Any
    layer: Any
    _layer: Any
    _refreshing: bool

    def state(self) -> ReviewState:  # pragma: no cover - provided by ReviewWidget
        raise NotImplementedError

    def _apply(self, state: ReviewState) -> None:  # pragma: no cover - provided by ReviewWidget
        raise NotImplementedError

    def _prepare_raster(self, layer: Any, step: int = 0) -> None:
        """Add a raster's value image, then (in the next turn of the event loop) its selection outline.

        Both are hidden until the first recolour or lasso; adding each in its
        own turn lets the viewer redraw in between (each is a napari layer
        the size of the raster: 0.2-0.5 s at 500,000 bins).
        """
        if not (_common.is_alive(self) and layer in self.viewer.layers and _raster.is_raster_layer(layer)):
            return
        try:
            if step == 0:
                value_overlay(self.viewer, layer, ReviewState.from_layer(layer))
                QTimer.singleShot(0, lambda: self._prepare_raster(layer, 1))
            else:
                selection_overlay(self.viewer, layer)
        except Exception as exc:  # the review still works: the layers are added when first needed
            notify_error(exc)

    def selected(self) -> np.ndarray:
        """Indices of the spots selected on the chosen layer (points selection or raster selection)."""
        return _link.selected_spots(self.layer.require())

    def select(self, idx: Any) -> np.ndarray:
        """Select spots on the chosen layer; a raster draws them as a magenta outline."""
        layer = self.layer.require()
        selection_overlay(self.viewer, layer)
        return _link.select_spots(layer, idx)

    def _on_paint(self, *_: Any) -> None:
        """A brush stroke on a raster relabels the painted bins (one edit per target region)."""
        layer = self._layer
        if self._refreshing or layer is None or layer.metadata.get(_raster.WRITING_KEY):
            return
        QTimer.singleShot(0, self.relabel_painted)

    @guarded
    def relabel_painted(self) -> list[str] | None:
        """Assign the bins painted on the raster to the region of the painted label value.

        A label value that is no region's (id + 1) makes a new region. Paint
        outside the tissue, or before a run, is put back. Returns the ids of
        the regions that received bins.
        """
        layer = self.layer.require()
        if not _raster.is_raster_layer(layer):
            return []
        st = self.state()
        groups = _raster.painted_bins(st, layer) if st.has_result else {}
        done = []
        try:
            for cid, bins in groups.items():
                done.append(st.assign(bins, cid or None))
        finally:
            _clear_napari_history(layer)  # our Undo takes the stroke back, not the layer's
            self._apply(st)
        if done:
            n = sum(len(b) for b in groups.values())
            notify_info(f"{n} bins painted into " + ", ".join(repr(st.name_of(c)) for c in done))
        return done


def _blocked_modes(layer: Any) -> tuple[str, ...]:
    """Layer modes that would add or remove spots (points: add; raster: erase)."""
    return ("erase",) if _raster.is_raster_layer(layer) else ("add",)


def _clear_napari_history(layer: Any) -> None:
    """Forget the labels layer's own undo steps (the review's Undo is the one that stays in sync)."""
    for name in ("_undo_history", "_redo_history"):
        hist = getattr(layer, name, None)
        if hasattr(hist, "clear"):
            hist.clear()


def _world(layer: Any, data: Any) -> np.ndarray:
    """World coordinates of a layer's data coordinates ``(n, D)``, vectorised."""
    arr = np.asarray(data, dtype=np.float64)
    try:
        return np.asarray(layer._transforms[1:].simplified(arr))
    except (AttributeError, TypeError, ValueError, IndexError):  # an older napari
        return np.asarray([layer.data_to_world(v) for v in arr])
