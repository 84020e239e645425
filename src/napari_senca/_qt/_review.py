"""Review widget: legend, cluster count, colour by gene, edits, markers.

Every control calls one method of :class:`napari_senca.review.ReviewState`
and then writes the state back to the points layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton, SpinBox
from napari.qt.threading import create_worker
from qtpy.QtCore import QStringListModel, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QFrame,
    QHeaderView,
    QLabel,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..errors import ConfigError
from ..review import ReviewState
from ..review import raster as _raster
from ..review.colours import VALUE_COLOURS
from ..review.layers import apply_borders, describe_changes, restore_layer
from . import _common
from ._common import (
    DockWidget,
    SectionPicker,
    guarded,
    notify_error,
    notify_info,
    notify_warning,
    preimport,
    qt_callback,
)
from ._legend import COLOUR, COUNT, NAME, SHOW, ColourBar, LegendTable
from ._review_raster import RasterSelectionMixin, _blocked_modes, _world, value_overlay

__all__ = ["ReviewWidget"]

NEW_REGION = "+ new region"


#: Width of the dock's contents: names, counts and the marker table fit without a horizontal scroll bar.
MIN_WIDTH = 380


def ask_keep_manual(parent: QWidget | None, n_manual: int, k: int) -> str | None:
    """Ask what to do with hand-assigned spots before re-clustering: "keep", "drop" or None (cancel)."""
    box = QMessageBox(parent)
    box.setWindowTitle("Re-cluster")
    box.setText(f"{n_manual} spot(s) were assigned by hand. Re-cluster into {k} regions and keep them there?")
    box.setInformativeText("Names and colours move to the best-matching new regions either way; Undo goes back.")
    keep = box.addButton("Keep", QMessageBox.ButtonRole.AcceptRole)
    drop = box.addButton("Drop", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(keep)
    box.exec()
    clicked = box.clickedButton()
    return "keep" if clicked is keep else "drop" if clicked is drop else None


class ReviewWidget(RasterSelectionMixin, DockWidget):
    """Review and correct the regions of a section.

    Legend (show/hide, colour, name, spot count; click a row to select its
    spots, double-click a name to rename it, a swatch to recolour; the
    pathologist labels before a run), the cluster count k (re-clusters the
    stored embedding instantly and keeps names, colours and hand
    assignments), colour by gene or numeric value with a colour bar, assign the
    selected spots to a region or a new one, merge two regions, undo, and the
    marker genes of a region.

    Parameters
    ----------
    napari_viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.marker_worker: Any = None
        self._layer: Any = None
        self._refreshing = False
        self._marker_key: tuple[int, str] | None = None
        self._marker_failed: int | None = None
        self._marker_pending = False
        self._mode_warned = False
        self._merge_version: tuple[int, int] | None = None

        self.layer = SectionPicker(napari_viewer)
        self.hint = Label(value="")
        self.hint.native.setWordWrap(True)
        self.restore_btn = PushButton(text="Restore spots", visible=False,
                                      tooltip="drop points added to the spots layer and put back deleted ones")
        self.n_clusters = SpinBox(label="clusters (k)", min=2, max=50, value=2,
                                  tooltip="re-cluster the stored embedding into k regions (no retraining); "
                                          "names, colours and hand assignments are kept")
        self.undo_btn = PushButton(text="Undo")
        self.redo_btn = PushButton(text="Redo")
        top = Container(widgets=[self.layer, self.n_clusters])
        self.hint.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

        # legend and colour bar
        self.legend_title = QLabel("<b>Regions</b>")
        self.legend = LegendTable()
        self.legend.setToolTip("click a row to select its spots; tick 'show' to hide or show them; "
                               "double-click a name to rename, a colour to recolour")
        self.colour_bar = ColourBar()
        self.colour_bar.setVisible(False)

        # edits
        self.target = ComboBox(label="assign to", choices=[NEW_REGION])
        self.new_name = LineEdit(label="new name", tooltip="name of the new region (optional)")
        self.lasso_btn = PushButton(text="Select spots inside drawn shapes",
                                    tooltip="draw with a Shapes layer's lasso, polygon, rectangle or ellipse tool")
        self.assign_btn = PushButton(text="Assign selected spots")
        self.merge_a = ComboBox(label="merge", choices=[])
        self.merge_b = ComboBox(label="into", choices=[])
        self.merge_btn = PushButton(text="Merge")
        edits = Container(
            widgets=[self.lasso_btn, self.target, self.new_name, self.assign_btn, self.merge_a, self.merge_b, self.merge_btn,
                     Container(widgets=[self.undo_btn, self.redo_btn], layout="horizontal", labels=False)]
        )  # fmt: skip

        # colour by gene
        self.gene = LineEdit(label="gene / value",
                             tooltip="a gene or a numeric spot column (e.g. senca_confidence); Enter colours by it")
        self.gene_btn = PushButton(text="Colour by it")
        self.clusters_btn = PushButton(text="Colour by region")
        colour_by = Container(
            widgets=[self.gene, Container(widgets=[self.gene_btn, self.clusters_btn], layout="horizontal",
                                          labels=False)]
        )  # fmt: skip
        self._gene_model = QStringListModel([])
        self.completer = QCompleter(self._gene_model, self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.gene.native.setCompleter(self.completer)

        # markers
        self.marker_cluster = ComboBox(label="markers of", choices=[])
        self.marker_status = Label(value="")
        self.marker_status.native.setWordWrap(True)
        for lbl in (self.hint, self.marker_status):  # magicgui labels are Fixed: they would not use the width
            lbl.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.markers_btn = PushButton(text="Find marker genes")
        self.markers = QTableWidget(0, 4)
        self.markers.setHorizontalHeaderLabels(["gene", "score", "log2 FC", "adj. p"])
        self.markers.verticalHeader().setVisible(False)
        self.markers.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.markers.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.markers.setMinimumHeight(140)
        markers = Container(widgets=[self.marker_cluster, self.markers_btn, self.marker_status])

        # everything in a scroll area: a long legend never forces the window to grow
        inner = QWidget()
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        lay = QVBoxLayout(inner)
        lay.addWidget(top.native)
        lay.addWidget(self.hint.native)  # full width: status lines wrap instead of being cut
        lay.addWidget(self.restore_btn.native)
        lay.addWidget(self.colour_bar)
        lay.addWidget(self.legend_title)
        lay.addWidget(self.legend)
        lay.addWidget(edits.native)
        lay.addWidget(QLabel("<b>Colour by</b>"))
        lay.addWidget(colour_by.native)
        lay.addWidget(QLabel("<b>Marker genes</b> (Wilcoxon, region vs rest)"))
        lay.addWidget(markers.native)
        lay.addWidget(self.markers, 2)
        inner.setMinimumWidth(MIN_WIDTH)
        scroll.setMinimumWidth(MIN_WIDTH + scroll.verticalScrollBar().sizeHint().width())
        self.scroll = scroll

        self.n_clusters.changed.connect(self._on_n_clusters)
        self.legend.itemChanged.connect(self._on_item_changed)
        self.legend.cellClicked.connect(self._on_click)
        self.legend.cellDoubleClicked.connect(self._on_double_click)
        self.restore_btn.changed.connect(lambda: self.restore_spots())
        self.assign_btn.changed.connect(lambda: self.assign_selected())
        self.lasso_btn.changed.connect(lambda: self.select_in_shapes())
        self.merge_btn.changed.connect(lambda: self.merge())
        self.undo_btn.changed.connect(lambda: self.undo())
        self.redo_btn.changed.connect(lambda: self.redo())
        self.gene_btn.changed.connect(lambda: self.colour_by_gene())
        self.gene.native.returnPressed.connect(lambda: self.colour_by_gene())
        self.clusters_btn.changed.connect(lambda: self.colour_by_clusters())
        self.marker_cluster.changed.connect(lambda *_: self.show_markers())
        self.markers_btn.changed.connect(lambda *_: self.show_markers())
        self.layer.changed.connect(self._on_layer)
        self._on_layer()

    # ------------------------------------------------------------------ state
    def state(self) -> ReviewState:
        """The review state of the chosen layer.

        Raises
        ------
        SencaError
            When no section is loaded or its points no longer match it.
        """
        return ReviewState.from_layer(self.layer.require())

    def _current_state(self) -> ReviewState | None:
        layer = self.layer.value
        if layer is None:
            return None
        try:
            return ReviewState.from_layer(layer)
        except Exception:
            return None

    def _apply(self, state: ReviewState) -> None:
        layer = self.layer.require()
        if state.colour_by is not None:
            value_overlay(self.viewer, layer, state)
        state.apply_to_layer(layer)
        self.refresh()

    # ------------------------------------------------------------------ actions
    @guarded
    def set_n_clusters(self, k: int, keep_manual: bool = True) -> None:
        """Re-cluster the stored embedding into ``k`` regions (names, colours, hand assignments kept)."""
        st = self.state()
        st.set_n_clusters(int(k), keep_manual=keep_manual)
        self._apply(st)

    @guarded
    def select_region(self, cluster: Any) -> list[int] | None:
        """Select the spots of a region (or, before a run, of a pathologist label) in the layer."""
        layer = self.layer.require()
        st = self.state()
        idx = st.spots_of(cluster) if st.has_result else st.spots_with_label(str(cluster))
        self.select(idx)
        self.viewer.layers.selection.active = layer
        return np.asarray(idx, dtype=np.int64).tolist()

    @guarded
    def set_visible(self, cluster: Any, visible: bool) -> None:
        """Show or hide the spots of a region."""
        st = self.state()
        st.set_visible(cluster, bool(visible))
        self._apply(st)

    @guarded
    def restore_spots(self) -> tuple[int, int] | None:
        """Drop points added to the spots layer and put back deleted ones; returns (dropped, restored)."""
        layer = self.layer.require()
        dropped, restored = restore_layer(layer, layer.metadata["adata"])
        self._apply(self.state())
        notify_info(f"spots restored: {dropped} added point(s) dropped, {restored} spot(s) put back")
        return dropped, restored

    @guarded
    def rename(self, cluster: Any, name: str) -> None:
        """Rename a region."""
        st = self.state()
        try:
            st.rename(cluster, name)
        finally:
            self._apply(st)

    @guarded
    def recolour(self, cluster: Any, colour: Any = None) -> None:
        """Recolour a region (asks with a colour dialog when ``colour`` is None)."""
        st = self.state()
        cid = st.resolve(cluster)
        if colour is None:
            colour = _common.pick_colour(self, st.colour_of(cid))
            if colour is None:
                return
        st.recolour(cid, colour)
        self._apply(st)

    @guarded
    def assign_selected(self, target: Any = None, new_name: str | None = None) -> str | None:
        """Assign the selected spots of the layer to ``target`` (default: the combo box).

        Returns the id of the region the spots now belong to.
        """
        st = self.state()
        st.require_result()
        sel = self.selected()
        if not sel.size:
            raise ConfigError(
                "no spots selected: choose the spots layer, press S (select) or the lasso tool, "
                "and select spots first"
            )
        tgt = self.target.value if target is None else target
        name = self.new_name.value if new_name is None else new_name
        if tgt in (None, NEW_REGION):
            cid = st.assign(sel, None, new_name=name or None)
            self.new_name.value = ""
        else:
            cid = st.assign(sel, tgt)
        self._apply(st)
        notify_info(f"{len(sel)} spots assigned to {st.name_of(cid)!r}")
        return cid

    @guarded
    def select_in_shapes(self, shapes_layer: Any = None) -> list[int] | None:
        """Select the spots inside the shapes of a Shapes layer (lasso, polygon, ...).

        ``shapes_layer`` defaults to the selected Shapes layer, else the
        topmost one. Returns the selected spot indices.
        """
        from ..review import spots_in_shapes

        layer = self.layer.require()
        shp = shapes_layer
        if shp is None:
            active = self.viewer.layers.selection.active
            cands = [ly for ly in self.viewer.layers if type(ly).__name__ == "Shapes"]
            shp = active if type(active).__name__ == "Shapes" else (cands[-1] if cands else None)
        if shp is None or len(shp.data) == 0:
            raise ConfigError(
                "draw around the spots first: add a Shapes layer and use its lasso or polygon tool"
            )
        polys = [_world(shp, verts) for verts in shp.data]
        if _raster.is_raster_layer(layer):
            idx = _raster.bins_in_shapes(layer, polys, list(shp.shape_type))
        else:
            idx = spots_in_shapes(_raster.layer_world_coords(layer), polys, list(shp.shape_type))
        idx = idx[self.state().shown_mask()[idx]]  # spots of hidden regions are not edited by accident
        self.select(idx)
        self.viewer.layers.selection.active = layer
        layer.mode = "pan_zoom" if _raster.is_raster_layer(layer) else "select"
        notify_info(f"{len(idx)} spots selected inside {len(shp.data)} shape(s) of {shp.name!r}")
        return np.asarray(idx, dtype=np.int64).tolist()

    @guarded
    def merge(self, keep: Any = None, other: Any = None) -> str | None:
        """Merge region ``other`` into ``keep`` (default: the two combo boxes)."""
        st = self.state()
        a = self.merge_b.value if keep is None else keep
        b = self.merge_a.value if other is None else other
        if a is None or b is None:
            raise ConfigError("choose two regions to merge")
        cid = st.merge(a, b)
        self._apply(st)
        return cid

    @guarded
    def undo(self) -> str | None:
        """Undo the last edit; returns its description."""
        st = self.state()
        what = st.undo()
        self._apply(st)
        notify_info(f"undone: {what}")
        return what

    @guarded
    def redo(self) -> str | None:
        """Redo the last undone edit; returns its description."""
        st = self.state()
        what = st.redo()
        self._apply(st)
        notify_info(f"redone: {what}")
        return what

    @guarded
    def colour_by_gene(self, gene: str | None = None) -> None:
        """Colour the spots by a gene's log-normalised expression or a numeric spot column."""
        st = self.state()
        g = (self.gene.value if gene is None else gene).strip()
        if not g:
            raise ConfigError("type a gene name or a numeric column (e.g. senca_confidence) first")
        st.show_gene(g)
        self.gene.value = st.colour_by or g
        self._apply(st)

    @guarded
    def colour_by_clusters(self) -> None:
        """Colour the spots by region again."""
        st = self.state()
        st.show_clusters()
        self._apply(st)

    @guarded
    def show_markers(self, cluster: Any = None, compute: bool = True) -> Any:
        """Fill the marker table for ``cluster`` (default: the combo box).

        The Wilcoxon tests (all regions at once) run in a worker thread the
        first time after each change of the regions; returns that worker, or
        None when the table was filled from the cache. With ``compute=False``
        only cached results are shown.
        """
        st = self._current_state()
        if st is None or not st.has_result:
            self._fill_markers(None)
            return None
        c = self.marker_cluster.value if cluster is None else cluster
        if c is None:
            self._fill_markers(None)
            return None
        cid = st.resolve(c)
        if cluster is not None:
            self.marker_cluster.value = cid
        if st.markers_cached():
            self._fill_markers(st.markers(cid))
            return None
        if not compute:
            self._fill_markers(None)
            self.marker_status.value = "press Find marker genes"
            return None
        if self.marker_worker is not None:
            self._marker_key = (st.version, cid)
            self._marker_pending = True
            return self.marker_worker
        if self._marker_failed == st.version:
            return None
        self._marker_pending = False
        self.marker_status.value = "computing marker genes…"
        self._marker_key = (st.version, cid)
        snap, version = st.marker_snapshot()
        preimport("scanpy", "napari_senca.markers")
        worker = create_worker(
            _compute_markers,
            snap,
            st.key,
            _start_thread=False,
            _connect={
                "returned": lambda df, st=st, v=version: self._on_markers(st, v, df),
                "errored": self._on_marker_error,
                "finished": self._on_marker_finished,
            },
        )
        self.marker_worker = self._box.add(worker)
        worker.start()
        return worker

    @qt_callback
    def _on_markers(self, st: ReviewState, version: int, df: Any) -> None:
        st.cache_markers(version, df)
        if self._current_state() is st and self._marker_key is not None and st.version == version:
            try:
                self._fill_markers(st.markers(self._marker_key[1]))
            except Exception as exc:
                notify_error(exc)

    @qt_callback
    def _on_marker_error(self, exc: BaseException) -> None:
        st = self._current_state()
        self._marker_failed = st.version if st is not None else None
        self.marker_status.value = _common.error_message(exc)[:100]
        self._fill_markers(None, keep_status=True)

    @qt_callback
    def _on_marker_finished(self) -> None:
        self.marker_worker = None
        st = self._current_state()
        # asked again while the tests ran on older regions: compute for the new ones
        if self._marker_pending and st is not None and st.has_result and not st.markers_cached():
            self._marker_pending = False
            self.show_markers()

    def _fill_markers(self, df: Any, keep_status: bool = False) -> None:
        self.markers.setRowCount(0)
        if df is None:
            if not keep_status:
                self.marker_status.value = ""
            return
        self.markers.setRowCount(len(df))
        for i, row in enumerate(df.itertuples(index=False)):
            vals = [str(row.gene), f"{row.score:.2f}", f"{row.logfoldchange:.2f}", f"{row.pval_adj:.2g}"]
            for j, v in enumerate(vals):
                self.markers.setItem(i, j, QTableWidgetItem(v))
        self.marker_status.value = f"{len(df)} genes" if len(df) else "no markers (fewer than two spots)"

    # ------------------------------------------------------------------ refresh
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
        for w in (self.n_clusters, self.assign_btn, self.lasso_btn, self.merge_btn, self.target, self.new_name,
                  self.merge_a, self.merge_b, self.marker_cluster, self.markers_btn):
            w.enabled = ok
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
        self.n_clusters.enabled = st.can_recluster
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

    def _on_n_clusters(self, value: int) -> None:
        if self._refreshing:
            return
        st = self._current_state()
        if st is None or not st.has_result or st.clustering_k == int(value):
            return
        keep = True
        if st.n_manual:
            answer = ask_keep_manual(self, st.n_manual, int(value))
            if answer is None:
                with self.n_clusters.changed.blocked():
                    self.n_clusters.value = st.clustering_k
                return
            keep = answer == "keep"
        self.set_n_clusters(int(value), keep_manual=keep)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._refreshing or self.legend.mode != "regions":
            return
        cid = self.legend.key(item.row())
        if item.column() == NAME:
            self.rename(cid, item.text())
        elif item.column() == SHOW:
            self.set_visible(cid, item.checkState() == Qt.CheckState.Checked)

    def _on_click(self, row: int, col: int) -> None:
        if col in (COLOUR, NAME, COUNT) and (key := self.legend.key(row)) is not None:
            self.select_region(key)

    def _on_double_click(self, row: int, col: int) -> None:
        if col == COLOUR and self.legend.mode == "regions" and (key := self.legend.key(row)) is not None:
            self.recolour(key)


def _compute_markers(adata: Any, key: str) -> Any:
    from ..markers import rank_markers

    return rank_markers(adata, key, n_genes=25)

