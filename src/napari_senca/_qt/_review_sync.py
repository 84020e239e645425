"""The Review widget following its section layer (a mixin): layer events, and redrawing from the state.

Watches the chosen layer (features, data, mode; a raster's paint), keeps
spots from being added (or bins erased) by accident, rings the selected spots,
and redraws the status line, legend, colour bar and region choices.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QTimer

from ..review import ReviewState
from ..review import raster as _raster
from ..review.colours import VALUE_COLOURS
from ..review.layers import apply_borders, describe_changes, one_redraw
from . import _common
from ._common import notify_error, notify_warning
from ._review_actions import NEW_REGION
from ._review_raster import _blocked_modes

__all__ = ["ReviewSyncMixin"]


class ReviewSyncMixin:
    """Layer events and refresh of :class:`~napari_senca._qt.ReviewWidget`.

    Uses the widget's controls, ``layer`` (section picker), ``_current_state``,
    ``_on_paint`` / ``_prepare_raster`` (raster mixin) and ``show_markers`` /
    ``_fill_markers`` (markers mixin).
    """

    layer: Any
    _layer: Any
    _refreshing: bool
    _mode_warned: bool
    _merge_version: tuple[int, int] | None
    recluster_worker: Any
    reference_worker: Any
    reference_btn: Any

    def _on_layer(self, *_: Any) -> None:
        layer = self.layer.value
        if layer is self._layer:
            self.refresh()
            return
        if self._layer is not None:
            for ev, cb in self._layer_events():
                try:
                    getattr(self._layer.events, ev).disconnect(cb)
                except (TypeError, RuntimeError, ValueError):
                    pass
            try:
                self._layer.selected_data.events.items_changed.disconnect(self._on_selection)
            except (TypeError, RuntimeError, ValueError, AttributeError):
                pass
        self._layer = layer
        if layer is not None:
            for ev, cb in self._layer_events():
                getattr(layer.events, ev).connect(cb)
            if not _raster.is_raster_layer(layer):
                layer.selected_data.events.items_changed.connect(self._on_selection)
            else:  # after the layer insertion that chose it has finished
                QTimer.singleShot(0, lambda: self._prepare_raster(layer))
        self.refresh()

    def _on_selection(self, *_: Any) -> None:
        """A clear selection ring: selected spots get a thick magenta border."""
        layer = self._layer
        if layer is None or not _common.is_alive(layer):
            return
        st = self._current_state()
        with one_redraw(layer):  # border colours and widths: one redraw
            apply_borders(layer, st.shown_mask() if st is not None else None)

    def _layer_events(self) -> list[tuple[str, Any]]:
        if _raster.is_raster_layer(self._layer):  # the raster is only written by the review (and the brush)
            return [("mode", self._on_mode), ("paint", self._on_paint)]
        return [("features", self._on_features), ("data", self._on_features), ("mode", self._on_mode)]

    def _on_mode(self, *_: Any) -> None:
        """Keep the spots from being edited by accident: 'add' mode falls back to 'select'
        (on a raster, 'erase' falls back to pan/zoom: bins cannot be removed)."""
        layer = self._layer
        if layer is None or str(layer.mode) not in _blocked_modes(layer):
            return
        QTimer.singleShot(0, lambda: self._block_add(layer))

    def _block_add(self, layer: Any) -> None:
        if _common.is_alive(layer) and str(layer.mode) in _blocked_modes(layer):
            raster = _raster.is_raster_layer(layer)
            layer.mode = "pan_zoom" if raster else "select"
            if not self._mode_warned:
                self._mode_warned = True
                notify_warning(
                    "bins cannot be erased: paint them with another region's label to relabel them"
                    if raster
                    else "spots come from the section and cannot be added: use select or the lasso instead"
                )

    def _on_features(self, *_: Any) -> None:
        if not self._refreshing:
            self.refresh()

    def refresh(self) -> None:
        """Redraw legend, counts and choices from the layer's state."""
        if self._refreshing:
            return
        self._refreshing = True
        try:
            self._refresh()
        except Exception as exc:
            notify_error(exc)
        finally:
            self._refreshing = False

    def _refresh(self) -> None:
        st = self._current_state()
        ok = st is not None and st.has_result
        for w in (self.n_clusters, self.assign_btn, self.classify_btn, self.lasso_btn, self.merge_btn, self.target,
                  self.new_name, self.merge_a, self.merge_b, self.marker_cluster, self.markers_btn):
            w.enabled = ok
        self.reference_btn.enabled = ok and self.reference_worker is None and st.can_recluster
        for w in (self.gene, self.gene_btn, self.clusters_btn):
            w.enabled = st is not None
        self.undo_btn.enabled = bool(st is not None and st.can_undo)
        self.redo_btn.enabled = bool(st is not None and st.can_redo)
        self._refresh_hint(st)
        names = (st.numeric_columns() + st.genes()) if st is not None else []
        if self._gene_model.rowCount() != len(names):
            self._gene_model.setStringList(names)
        self._refresh_legend(st)
        if not ok:
            for cb in (self.target, self.merge_a, self.merge_b, self.marker_cluster):
                cb.choices = [NEW_REGION] if cb is self.target else []
            self._fill_markers(None)
            return
        assert st is not None
        with self.n_clusters.changed.blocked():
            self.n_clusters.max = max(2, min(50, st.n_spots))
            self.n_clusters.value = max(2, min(self.n_clusters.max, st.clustering_k))
        self.n_clusters.enabled = st.can_recluster and self.recluster_worker is None
        self._refresh_choices(st)
        self.show_markers(compute=False)

    def _refresh_hint(self, st: ReviewState | None) -> None:
        layer = self.layer.value
        changed = None
        if st is None and layer is not None and "adata" in (layer.metadata or {}):
            changed = describe_changes(layer, layer.metadata["adata"])
        self.restore_btn.visible = changed is not None
        if changed is not None:
            self.hint.value = f"{changed}: press Restore spots to put the section's spots back"
        elif st is None:
            self.hint.value = "load a section first"
        elif not st.has_result:
            self.hint.value = "run SENCA-st to see regions; colours show the pathologist labels"
        else:
            text = f"{st.n_spots} spots in {st.n_clusters} regions"
            if st.n_manual:
                text += f" ({st.n_manual} assigned by hand)"
            self.hint.value = text

    def _refresh_legend(self, st: ReviewState | None) -> None:
        self.legend.blockSignals(True)
        try:
            if st is not None and st.has_result:
                leg = st.legend()
                rows = [(r.cluster, r.name, r.colour, int(r.n_spots), r.cluster not in st.hidden)
                        for r in leg.itertuples(index=False)]
                self.legend.show_regions(rows, swatches=st.colour_by is None)
                self.legend_title.setText("<b>Regions</b>")
            elif st is not None and st.colour_by is None and len(labels := st.label_legend()):
                self.legend.show_labels([(r.label, r.colour, int(r.n_spots)) for r in labels.itertuples(index=False)])
                self.legend_title.setText("<b>Pathologist labels</b> (from the section)")
            else:
                self.legend.show_regions([])
                self.legend_title.setText("<b>Regions</b>")
        finally:
            self.legend.blockSignals(False)
        self.colour_bar.setVisible(bool(st is not None and st.colour_by))
        if st is not None and st.colour_by:
            lo, hi = st.gene_limits()
            self.colour_bar.set_scale(st.colour_label(), lo, hi, VALUE_COLOURS)

    def _refresh_choices(self, st: ReviewState) -> None:
        """Region choices in legend order; merge defaults: smallest region into its closest one."""
        pairs = [(st.name_of(c), c) for c in st.clusters]
        values = [v for _, v in pairs]
        suggest = st.merge_suggestion()
        with self.target.changed.blocked():
            old = self.target.value
            self.target.choices = [*pairs, (NEW_REGION, NEW_REGION)]
            self.target.value = old if old in values or old == NEW_REGION else values[0]
        with self.marker_cluster.changed.blocked():
            old = self.marker_cluster.value
            self.marker_cluster.choices = pairs
            self.marker_cluster.value = old if old in values else values[0]
        a_old, b_old = self.merge_a.value, self.merge_b.value
        with self.merge_a.changed.blocked(), self.merge_b.changed.blocked():
            self.merge_a.choices = pairs
            self.merge_b.choices = pairs
            same = self._merge_version == (id(st), st.version)
            if same and a_old in values and b_old in values and a_old != b_old:
                self.merge_a.value, self.merge_b.value = a_old, b_old  # the user's choice
            elif suggest is not None:
                self.merge_a.value, self.merge_b.value = suggest
        self._merge_version = (id(st), st.version)
