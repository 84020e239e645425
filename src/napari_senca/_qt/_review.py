"""Review widget: legend, cluster count, colour by gene, edits, markers.

Every control calls one method of :class:`napari_senca.review.ReviewState`
and then writes the state back to the points layer.

The widget is put together from mixins, one concern each: the actions
(:mod:`._review_actions`), the marker genes panel (:mod:`._review_markers`),
following the layer and redrawing (:mod:`._review_sync`) and the selection on
points or rasters (:mod:`._review_raster`). This module builds and lays out
the controls and connects them.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox, Container, Label, LineEdit, PushButton, SpinBox
from qtpy.QtCore import QStringListModel, Qt
from qtpy.QtWidgets import (
    QCompleter,
    QFileDialog,
    QFrame,
    QLabel,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..review import ReviewState
from ._common import DockWidget, SectionPicker
from ._legend import COLOUR, COUNT, NAME, SHOW, ColourBar, LegendTable
from ._review_actions import NEW_REGION, ReviewActionsMixin
from ._review_markers import ReviewMarkersMixin
from ._review_raster import RasterSelectionMixin, value_overlay
from ._review_sync import ReviewSyncMixin

__all__ = ["ReviewWidget"]


#: Width of the dock's contents: names, counts and the marker table fit without a horizontal scroll bar.
MIN_WIDTH = 380


def _keep_drop_cancel(parent: QWidget | None, title: str, text: str, more: str) -> str | None:
    """A question answered Keep (the default), Drop or Cancel: "keep", "drop" or None."""
    box = QMessageBox(parent)
    box.setWindowTitle(title)
    box.setText(text)
    box.setInformativeText(more)
    keep = box.addButton("Keep", QMessageBox.ButtonRole.AcceptRole)
    drop = box.addButton("Drop", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(keep)
    box.exec()
    clicked = box.clickedButton()
    return "keep" if clicked is keep else "drop" if clicked is drop else None


def ask_reference_paths(parent: QWidget | None) -> list[str]:
    """Pick one or more annotated sections (``.h5ad``); empty when cancelled."""
    paths, _ = QFileDialog.getOpenFileNames(parent, "Annotated sections to name the regions after", "",
                                            "AnnData (*.h5ad);;All files (*)")
    return list(paths)


def ask_keep_manual(parent: QWidget | None, n_manual: int, k: int) -> str | None:
    """Ask what to do with hand-assigned spots before re-clustering: "keep", "drop" or None (cancel)."""
    return _keep_drop_cancel(
        parent, "Re-cluster", f"{n_manual} spot(s) were assigned by hand. Re-cluster into {k} regions and keep them there?",
        "Names and colours move to the best-matching new regions either way; Undo goes back.")


def ask_keep_regions(parent: QWidget | None, names: list[str], named: list[str]) -> str | None:
    """Ask what to do with the regions that have no spot assigned by hand: "keep", "drop" or None (cancel).

    ``names`` are their display names; ``named`` those among them the user named (dropping them is said first).
    """
    shown = ", ".join(repr(n) for n in names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    many = len(names) > 1
    lost = (f"Drop empties {', '.join(repr(n) for n in named)}, which you named. " if named else "")
    return _keep_drop_cancel(
        parent, "Classify the rest",
        f"{len(names)} region{'s' if many else ''} ({shown}) {'have' if many else 'has'} no spot assigned by hand. "
        "Keep them, each classified from its current spots?",
        "Keep: add or correct a region and keep the others (their spots are classified too). "
        f"Drop: their spots go to the regions you assigned spots to. {lost}Undo takes it back.")


class ReviewWidget(ReviewActionsMixin, ReviewMarkersMixin, ReviewSyncMixin, RasterSelectionMixin, DockWidget):
    """Review and correct the regions of a section.

    Legend (show/hide, colour, name, spot count; click a row to select its
    spots, double-click a name to rename it, a swatch to recolour; the
    pathologist labels before a run), the cluster count k (re-clusters the
    stored embedding instantly and keeps names, colours and hand
    assignments), colour by gene or numeric value with a colour bar, assign the
    selected spots to a region or a new one, classify the other spots from the
    ones assigned by hand, merge two regions, undo, and the marker genes of a
    region.

    Parameters
    ----------
    napari_viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.marker_worker: Any = None
        self.recluster_worker: Any = None
        self.reference_worker: Any = None
        self._layer: Any = None
        self._refreshing = False
        self._marker_key: tuple[int, str] | None = None
        self._marker_failed: int | None = None
        self._marker_pending = False
        self._mode_warned = False
        self._merge_version: tuple[int, int] | None = None

        top = self._build_top(napari_viewer)
        self._build_legend()
        edits = self._build_edits()
        colour_by = self._build_colour_by()
        markers = self._build_markers()
        self._lay_out(top, edits, colour_by, markers)
        self._connect()
        self._on_layer()

    # ------------------------------------------------------------------ controls
    def _build_top(self, napari_viewer: Any) -> Container:
        """Section picker and cluster count (returned); status line, Restore spots, Undo / Redo."""
        self.layer = SectionPicker(napari_viewer)
        self.hint = Label(value="")
        self.hint.native.setWordWrap(True)
        self.restore_btn = PushButton(text="Restore spots", visible=False,
                                      tooltip="drop points added to the spots layer and put back deleted ones")
        self.n_clusters = SpinBox(label="clusters (k)", min=2, max=50, value=2,
                                  tooltip="re-cluster the stored embedding into k regions (no retraining) when "
                                          "you press Enter, leave the box or step with the arrows; names, colours "
                                          "and hand assignments are kept, also for regions that come back")
        self.n_clusters.native.setKeyboardTracking(False)  # typing 25 must not cut into 2 regions first
        self.undo_btn = PushButton(text="Undo")
        self.redo_btn = PushButton(text="Redo")
        top = Container(widgets=[self.layer, self.n_clusters])
        self.hint.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        return top

    def _build_legend(self) -> None:
        """The legend table under its title, and the colour bar of a gene or value."""
        self.legend_title = QLabel("<b>Regions</b>")
        self.legend = LegendTable()
        self.legend.setToolTip("click a row to select its spots; tick 'show' to hide or show them; "
                               "double-click a name to rename, a colour to recolour")
        self.colour_bar = ColourBar()
        self.colour_bar.setVisible(False)

    def _build_edits(self) -> Container:
        """Select inside shapes, assign to a region, classify the rest, merge two, undo / redo."""
        self.target = ComboBox(label="assign to", choices=[NEW_REGION])
        self.new_name = LineEdit(label="new name", tooltip="name of the new region (optional)")
        self.lasso_btn = PushButton(text="Select spots inside drawn shapes",
                                    tooltip="draw with a Shapes layer's lasso, polygon, rectangle or ellipse tool")
        self.assign_btn = PushButton(text="Assign selected spots")
        self.classify_btn = PushButton(
            text="Classify the rest from assigned spots",
            tooltip="every spot you did not assign by hand goes to the region whose hand-assigned spots are "
                    "nearest in the SENCA embedding; regions with no spot by hand are kept (classified from their "
                    "current spots) or dropped, as you choose (Undo takes it back)")
        self.reference_btn = PushButton(
            text="Name regions from annotated sections…",
            tooltip="pick .h5ad files of sections whose regions have names (the Review's names, saved with "
                    "Export, or a 'label' column); the embedding is cut into k + 3 clusters, each named after the "
                    "region most of its spots resemble in those sections, and clusters with one name merge "
                    "(several sections work far better than one; Undo takes it back)")
        self.merge_a = ComboBox(label="merge", choices=[])
        self.merge_b = ComboBox(label="into", choices=[])
        self.merge_btn = PushButton(text="Merge")
        return Container(
            widgets=[self.lasso_btn, self.target, self.new_name, self.assign_btn, self.classify_btn,
                     self.reference_btn, self.merge_a, self.merge_b, self.merge_btn,
                     Container(widgets=[self.undo_btn, self.redo_btn], layout="horizontal", labels=False)]
        )  # fmt: skip

    def _build_colour_by(self) -> Container:
        """A gene or numeric column (with completion), colour by it or by region again."""
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
        return colour_by

    def _lay_out(self, top: Container, edits: Container, colour_by: Container, markers: Container) -> None:
        """Everything in a scroll area: a long legend never forces the window to grow."""
        for lbl in (self.hint, self.marker_status):  # magicgui labels are Fixed: they would not use the width
            lbl.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
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

    def _connect(self) -> None:
        """Every control calls one widget method."""
        self.n_clusters.changed.connect(self._on_n_clusters)
        self.legend.itemChanged.connect(self._on_item_changed)
        self.legend.cellClicked.connect(self._on_click)
        self.legend.cellDoubleClicked.connect(self._on_double_click)
        self.restore_btn.changed.connect(lambda: self.restore_spots())
        self.assign_btn.changed.connect(lambda: self.assign_selected())
        self.classify_btn.changed.connect(self._on_classify)
        self.reference_btn.changed.connect(self._on_reference)
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

    # ------------------------------------------------------------------ legend and cluster count
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

    def _on_classify(self, *_: Any) -> None:
        """Classify the rest; first ask whether the regions without spots by hand are kept or dropped."""
        st = self._current_state()
        others = st.regions_without_hand() if st is not None and st.can_recluster else []
        if not others or st.n_hand_regions < 1:
            self.classify_rest()  # nothing to ask (or nothing by hand: the action says what to do)
            return
        if st.n_hand_regions < 2:
            self.classify_rest(keep_unassigned=True)  # dropping them would leave one region
            return
        answer = ask_keep_regions(self, [st.name_of(c) for c in others], st.classify_would_empty())
        if answer is not None:
            self.classify_rest(keep_unassigned=answer == "keep")

    def _on_reference(self, *_: Any) -> None:
        """Pick annotated sections, then name the regions after them."""
        paths = ask_reference_paths(self)
        if paths:
            self.name_from_reference(paths)

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
