"""Cohort widget: several sections side by side with one shared legend.

Open a ``napari-senca batch`` output folder (or load sections one by one with
the Load widget), tile them in a grid, link their legends and rename a region
once for every section. Every control calls one method of the Qt-free
:class:`napari_senca.shared_legend.SharedLegend` (or :func:`tile_sections`),
then the section layers are redrawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import Container, Label, PushButton, SpinBox
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QTableWidgetItem, QVBoxLayout

from ..errors import ConfigError, OutputError, SencaError
from ..review import ReviewState
from ..shared_legend import SharedLegend
from . import _common
from ._common import (
    DockWidget,
    add_section,
    fit_width,
    guarded,
    notify_error,
    notify_info,
    qt_callback,
)
from ._legend import NAME, SHOW, LegendTable

__all__ = ["CohortWidget"]


def _section_name(layer: Any) -> str:
    name = str(layer.name)
    return name[: -len(" spots")] if name.endswith(" spots") else name


def _read_cohort(folder: str) -> Any:
    """Worker: the sections of a cohort folder and their region matching (None when linking needs none)."""
    from ..section import CLUSTER_KEY
    from ..shared_legend import match_for_link, read_cohort

    sections = read_cohort(folder)
    matched = match_for_link(sections, CLUSTER_KEY) if len(sections) > 1 else None
    return sections, matched


class CohortWidget(DockWidget):
    """Sections side by side, one legend for all of them, export per section or for the cohort.

    Parameters
    ----------
    napari_viewer
        The viewer whose section layers are tiled and linked.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.shared: SharedLegend | None = None
        self.layers: dict[str, Any] = {}
        self.worker: Any = None
        self._pending: list[tuple[str, Any]] = []  # read sections still to add
        self._matched: Any = None  # their region matching, from the read worker
        self.last_paths: list[Path] = []
        self.open_btn = PushButton(text="Open cohort folder…", tooltip="a 'napari-senca batch' output folder")
        self.columns = SpinBox(label="columns", min=0, max=20, value=0, tooltip="grid columns (0: automatic)")
        self.tile_btn = PushButton(text="Tile sections")
        self.link_btn = PushButton(text="Link legends", tooltip="one legend for every open section with regions")
        self.export_btn = PushButton(text="Export cohort…", tooltip="one folder per section and cohort_regions.csv")
        self.export_one_btn = PushButton(text="Export each section…", tooltip="one folder per section only")
        self.status = Label(value="")
        fit_width(self.status)
        self.legend = LegendTable()
        self.legend.setToolTip("double-click a name to rename the region in every section")
        form = Container(widgets=[self.open_btn, Container(widgets=[self.columns, self.tile_btn], layout="horizontal"),
                                  self.link_btn, self.status])  # fmt: skip
        exports = Container(widgets=[self.export_btn, self.export_one_btn], layout="horizontal", labels=False)
        lay = QVBoxLayout(self)
        lay.addWidget(form.native)
        lay.addWidget(QLabel("<b>Shared regions</b>"))
        lay.addWidget(self.legend)
        lay.addWidget(exports.native)
        lay.addStretch(1)

        self.open_btn.changed.connect(lambda: self.open_cohort())
        self.tile_btn.changed.connect(lambda: self.tile())
        self.link_btn.changed.connect(lambda: self.link())
        self.export_btn.changed.connect(lambda: self.export())
        self.export_one_btn.changed.connect(lambda: self.export(cohort=False))
        self.legend.itemChanged.connect(self._on_item_changed)

    # ------------------------------------------------------------------ actions
    @guarded
    def open_cohort(self, folder: str | None = None) -> Any:
        """Read every finished section of a cohort folder in a worker, then add, tile and link them."""
        if self.busy:
            raise SencaError("still reading or writing a cohort: wait for it")
        target = folder or _common.ask_open_path(self, folder=True)
        if not target:
            return None
        self.status.value = f"reading {target} …"
        self.worker = self.start_worker(_read_cohort, target, returned=self._on_read, errored=self._on_error,
                                        finished=self._on_finished)  # fmt: skip
        return self.worker

    @qt_callback
    def _on_read(self, result: tuple[list[tuple[str, Any]], Any]) -> None:
        """Add the sections one per turn of the event loop (the viewer redraws in between), then tile and link."""
        sections, self._matched = result
        self._pending = list(sections)
        QTimer.singleShot(0, self._add_next)

    @qt_callback
    def _add_next(self) -> None:
        if self._pending:
            name, adata = self._pending.pop(0)
            try:
                add_section(self.viewer, adata, name=name)
            except Exception as exc:  # the rest is not added: the widget is free again, the error one line
                self._pending, self._matched = [], None
                notify_error(exc)
                self.status.value = f"stopped at {name}: " + _common.error_message(exc)[:100]
                return
            self.status.value = f"opened {name}" + (f"; {len(self._pending)} to go" if self._pending else "")
            QTimer.singleShot(0, self._add_next)
            return
        self.tile()
        self.link()

    @property
    def busy(self) -> bool:
        """True while a cohort is read, its sections added, or a cohort written."""
        return self.worker is not None or bool(self._pending)

    @qt_callback
    def _on_error(self, exc: BaseException) -> None:
        notify_error(exc)
        self.status.value = "failed: " + _common.error_message(exc)[:120]

    @qt_callback
    def _on_finished(self) -> None:
        self.worker = None
        self._set_export_enabled(True)

    @guarded
    def tile(self) -> int:
        """Arrange the open sections in a grid."""
        n = _common.tile_sections(self.viewer, self.columns.value or None)
        self.viewer.reset_view()
        return n

    @guarded
    def link(self) -> SharedLegend:
        """Link the legends of every open section that has regions."""
        layers = [ly for ly in _common.section_layers(self.viewer) if ReviewState.from_layer(ly).has_result]
        self.layers = {_section_name(ly): ly for ly in layers}
        if len(self.layers) != len(layers):
            raise ConfigError("two open sections have the same layer name; rename one layer first")
        matched, self._matched = self._matched, None  # computed while the cohort was read; used once
        self.shared = SharedLegend.link([(n, ReviewState.from_layer(ly)) for n, ly in self.layers.items()],
                                        matched=matched)
        self._redraw()
        self.status.value = f"{len(layers)} sections linked ({self.shared.how})"
        return self.shared

    @guarded
    def rename(self, entry: Any, name: str) -> None:
        """Rename a shared region in every section."""
        try:
            self._require().rename(entry, name)
        finally:
            self._redraw()

    @guarded
    def recolour(self, entry: Any, colour: Any) -> None:
        """Recolour a shared region in every section."""
        self._require().recolour(entry, colour)
        self._redraw()

    @guarded
    def export(self, folder: str | Path | None = None, cohort: bool = True) -> Any:
        """Write one folder per section (and ``cohort_regions.csv``) into ``folder``, in a worker thread.

        The targets are checked and the sections copied now; returns the
        worker (``last_paths`` holds the files once written), or None when
        nothing will be written.
        """
        shared = self._require()
        if self.busy:
            raise SencaError("still reading or writing a cohort: wait for it, then export again")
        target = folder or _common.ask_open_path(self, folder=True)
        if not target:
            return None
        sections = None if cohort else [n for n, _ in shared.sections]
        try:
            job = shared.export_job(target, sections=sections)
        except OutputError:  # files exist (a section's own input is refused again here, whatever the answer)
            job = shared.export_job(target, sections=sections, overwrite=True)
            if not _common.ask_overwrite(self, target):
                return None
        self.status.value = f"writing to {target} …"
        self._set_export_enabled(False)
        self.worker = self.start_worker(job, returned=lambda paths: self._on_written(target, paths),
                                        errored=self._on_error, finished=self._on_finished)  # fmt: skip
        return self.worker

    @qt_callback
    def _on_written(self, target: Any, paths: list[Path]) -> None:
        self.last_paths = paths
        notify_info(f"{len(paths)} files written to {target}")
        self.status.value = f"wrote {len(paths)} files to {target}"

    def _set_export_enabled(self, on: bool) -> None:
        self.export_btn.enabled = self.export_one_btn.enabled = on

    # ------------------------------------------------------------------ helpers
    def _require(self) -> SharedLegend:
        if self.shared is None:
            raise ConfigError("link the legends first (Link legends)")
        return self.shared

    def _redraw(self) -> None:
        if self.shared is None:
            return
        for name, st in self.shared.sections:
            layer = self.layers.get(name)
            if layer is not None and layer in self.viewer.layers:
                st.apply_to_layer(layer)
        leg = self.shared.legend()
        self.legend.blockSignals(True)
        try:
            self.legend.show_regions([(r.entry, r.name, r.colour, int(r.n_spots), True) for r in leg.itertuples()])
            self.legend.setColumnHidden(SHOW, True)
        finally:
            self.legend.blockSignals(False)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == NAME and (key := self.legend.key(item.row())) is not None:
            self.rename(key, item.text())
