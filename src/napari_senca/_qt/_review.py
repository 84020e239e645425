"""Review widget: legend, cluster count, colour by gene, edits, markers.

Every control calls one method of :class:`napari_senca.review.ReviewState`
and then writes the state back to the points layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton, SpinBox
from napari.qt.threading import create_worker
from qtpy.QtCore import QStringListModel, Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QFrame,
    QHeaderView,
    QLabel,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..errors import ConfigError
from ..review import ReviewState
from . import _common
from ._common import (
    DockWidget,
    SectionPicker,
    guarded,
    notify_error,
    notify_info,
    preimport,
    qt_callback,
)

__all__ = ["ReviewWidget"]

NEW_REGION = "+ new region"


def _swatch(colour: str, size: int = 14) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(colour))
    return QIcon(pm)


class ReviewWidget(DockWidget):
    """Review and correct the regions of a section.

    Legend (name, colour, spot count; double-click a name to rename it, a
    swatch to recolour), the cluster count (re-clusters the stored embedding
    instantly), colour by gene, assign the selected spots to a region or a new
    one, merge two regions, undo, and the marker genes of a region.

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

        self.layer = SectionPicker(napari_viewer)
        self.hint = Label(value="")
        self.hint.native.setWordWrap(True)
        self.n_clusters = SpinBox(label="regions", min=2, max=50, value=2,
                                  tooltip="re-cluster the stored embedding: no retraining")
        self.undo_btn = PushButton(text="Undo")
        top = Container(widgets=[self.layer, self.hint, self.n_clusters])

        # legend
        self.legend = QTableWidget(0, 3)
        self.legend.setHorizontalHeaderLabels(["", "region", "spots"])
        self.legend.verticalHeader().setVisible(False)
        hh = self.legend.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.legend.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.legend.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.legend.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.legend.setToolTip("double-click a name to rename, a colour to recolour")

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
                     self.undo_btn]
        )  # fmt: skip

        # colour by gene
        self.gene = LineEdit(label="gene", tooltip="type to search; Enter colours the spots by this gene")
        self.gene_btn = PushButton(text="Colour by gene")
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
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        lay = QVBoxLayout(inner)
        lay.addWidget(top.native)
        lay.addWidget(QLabel("<b>Legend</b>"))
        lay.addWidget(self.legend, 2)
        lay.addWidget(edits.native)
        lay.addWidget(QLabel("<b>Colour by</b>"))
        lay.addWidget(colour_by.native)
        lay.addWidget(QLabel("<b>Marker genes</b> (Wilcoxon, region vs rest)"))
        lay.addWidget(markers.native)
        lay.addWidget(self.markers, 2)

        self.n_clusters.changed.connect(self._on_n_clusters)
        self.legend.itemChanged.connect(self._on_item_changed)
        self.legend.cellDoubleClicked.connect(self._on_double_click)
        self.assign_btn.changed.connect(lambda: self.assign_selected())
        self.lasso_btn.changed.connect(lambda: self.select_in_shapes())
        self.merge_btn.changed.connect(lambda: self.merge())
        self.undo_btn.changed.connect(lambda: self.undo())
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
        state.apply_to_layer(self.layer.require())
        self.refresh()

    # ------------------------------------------------------------------ actions
    @guarded
    def set_n_clusters(self, k: int) -> None:
        """Re-cluster the stored embedding into ``k`` regions and re-colour."""
        st = self.state()
        st.set_n_clusters(int(k))
        self._apply(st)

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
        layer = self.layer.require()
        st = self.state()
        st.require_result()
        sel = sorted(int(i) for i in layer.selected_data)
        if not sel:
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
        polys = [np.asarray([shp.data_to_world(v) for v in verts]) for verts in shp.data]
        world = np.asarray([layer.data_to_world(p) for p in layer.data])
        idx = spots_in_shapes(world, polys, list(shp.shape_type))
        layer.selected_data = {int(i) for i in idx}
        self.viewer.layers.selection.active = layer
        layer.mode = "select"
        notify_info(f"{len(idx)} spots selected inside {len(shp.data)} shape(s) of {shp.name!r}")
        return [int(i) for i in idx]

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
    def colour_by_gene(self, gene: str | None = None) -> None:
        """Colour the spots by a gene's log-normalised expression."""
        st = self.state()
        g = (self.gene.value if gene is None else gene).strip()
        if not g:
            raise ConfigError("type a gene name first")
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
            try:
                self._layer.events.features.disconnect(self._on_features)
            except (TypeError, RuntimeError, ValueError):
                pass
        self._layer = layer
        if layer is not None:
            layer.events.features.connect(self._on_features)
        self.refresh()

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
        for w in (self.n_clusters, self.assign_btn, self.lasso_btn, self.merge_btn, self.target, self.new_name, self.merge_a,
                  self.merge_b, self.gene_btn, self.clusters_btn, self.marker_cluster, self.markers_btn):
            w.enabled = ok
        self.gene.enabled = st is not None
        self.gene_btn.enabled = st is not None
        self.clusters_btn.enabled = st is not None
        self.undo_btn.enabled = bool(st is not None and st.can_undo)
        if st is None:
            self.hint.value = "load a section first"
        elif not st.has_result:
            self.hint.value = "run SENCA-st to see regions"
        else:
            text = f"{st.n_spots} spots, {st.n_clusters} regions"
            if st.colour_by:
                lo, hi = st.gene_limits()
                text += f"; colour: {st.colour_by}, log-norm. {lo:.2f} (dark) – {hi:.2f} (yellow)"
            self.hint.value = text
        genes = st.genes() if st is not None else []
        if self._gene_model.rowCount() != len(genes):
            self._gene_model.setStringList(genes)
        self.legend.blockSignals(True)
        try:
            leg = st.legend() if ok else None
            self.legend.setRowCount(0 if leg is None else len(leg))
            if leg is not None:
                for i, row in enumerate(leg.itertuples(index=False)):
                    sw = QTableWidgetItem()
                    sw.setIcon(_swatch(row.colour))
                    sw.setData(Qt.ItemDataRole.UserRole, row.cluster)
                    sw.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                    sw.setToolTip(f"{row.colour} (double-click to change)")
                    name = QTableWidgetItem(row.name)
                    name.setData(Qt.ItemDataRole.UserRole, row.cluster)
                    name.setToolTip(f"cluster id {row.cluster} (double-click to rename)")
                    cnt = QTableWidgetItem(str(row.n_spots))
                    cnt.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                    cnt.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.legend.setItem(i, 0, sw)
                    self.legend.setItem(i, 1, name)
                    self.legend.setItem(i, 2, cnt)
        finally:
            self.legend.blockSignals(False)
        rows = max(3, min(self.legend.rowCount(), 6))
        row_h = self.legend.verticalHeader().defaultSectionSize()
        self.legend.setMinimumHeight(self.legend.horizontalHeader().height() + rows * row_h + 6)
        if not ok:
            for cb in (self.target, self.merge_a, self.merge_b, self.marker_cluster):
                cb.choices = [NEW_REGION] if cb is self.target else []
            self._fill_markers(None)
            return
        assert st is not None
        with self.n_clusters.changed.blocked():
            self.n_clusters.max = max(2, min(50, st.n_spots))
            self.n_clusters.value = max(2, min(self.n_clusters.max, st.n_clusters))
        self.n_clusters.enabled = st.can_recluster
        pairs = [(st.name_of(c), c) for c in st.clusters]
        for cb, extra in ((self.target, [(NEW_REGION, NEW_REGION)]), (self.merge_a, []), (self.merge_b, []),
                          (self.marker_cluster, [])):
            old = cb.value
            with cb.changed.blocked():
                cb.choices = pairs + extra
                values = [v for _, v in pairs + extra]
                if old in values:
                    cb.value = old
                elif cb is self.merge_b and len(values) > 1:
                    cb.value = values[1]
                elif values:
                    cb.value = values[0]
        self.show_markers(compute=False)

    def _on_n_clusters(self, value: int) -> None:
        if self._refreshing:
            return
        st = self._current_state()
        if st is None or not st.has_result or st.n_clusters == int(value):
            return
        self.set_n_clusters(int(value))

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._refreshing or item.column() != 1:
            return
        cid = item.data(Qt.ItemDataRole.UserRole)
        self.rename(cid, item.text())

    def _on_double_click(self, row: int, col: int) -> None:
        if col != 0:
            return
        item = self.legend.item(row, 0)
        if item is not None:
            self.recolour(item.data(Qt.ItemDataRole.UserRole))


def _compute_markers(adata: Any, key: str) -> Any:
    from ..markers import rank_markers

    return rank_markers(adata, key, n_genes=25)

