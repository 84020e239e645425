"""The Review widget's marker genes panel (a mixin): region choice, table, worker thread.

The Wilcoxon tests (all regions at once) run in a worker the first time after
each change of the regions; the results are cached in the review state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import ComboBox, Container, Label, PushButton
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from ..review import ReviewState
from . import _common
from ._common import guarded, notify_error, qt_callback

__all__ = ["ReviewMarkersMixin"]


class ReviewMarkersMixin:
    """Marker genes of :class:`~napari_senca._qt.ReviewWidget`.

    Uses the widget's ``start_worker`` and ``_current_state``; keeps
    ``marker_worker`` and the ``_marker_*`` flags the widget starts with.
    """

    start_worker: Callable[..., Any]
    marker_worker: Any
    _marker_key: tuple[int, str] | None
    _marker_failed: int | None
    _marker_pending: bool

    def _build_markers(self) -> Container:
        """The region choice, Find button and status line (returned) and the marker table (``markers``)."""
        self.marker_cluster = ComboBox(label="markers of", choices=[])
        self.marker_status = Label(value="")
        self.marker_status.native.setWordWrap(True)
        self.markers_btn = PushButton(text="Find marker genes")
        self.markers = QTableWidget(0, 4)
        self.markers.setHorizontalHeaderLabels(["gene", "score", "log2 FC", "adj. p"])
        self.markers.verticalHeader().setVisible(False)
        self.markers.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.markers.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.markers.setMinimumHeight(140)
        return Container(widgets=[self.marker_cluster, self.markers_btn, self.marker_status])

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
        self.marker_worker = self.start_worker(
            _compute_markers, snap, st.key,
            returned=lambda df, st=st, v=version: self._on_markers(st, v, df),
            errored=self._on_marker_error, finished=self._on_marker_finished,
        )  # fmt: skip
        return self.marker_worker

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



def _compute_markers(adata: Any, key: str) -> Any:
    """Worker: the Wilcoxon tests; the first call also imports scanpy here (0.7 s, not on the GUI thread)."""
    from ..markers import rank_markers

    return rank_markers(adata, key, n_genes=25)
