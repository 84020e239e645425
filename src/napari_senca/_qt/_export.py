"""Export widget: CSV, GeoJSON (QuPath), .h5ad and a PNG snapshot of the view.

No existing file is replaced without asking (:func:`._common.ask_overwrite`),
and every file is written atomically (a temporary file renamed into place).
The questions are asked and the section is copied (:func:`~napari_senca.export.section_snapshot`,
milliseconds) in the GUI thread; the file is written in a worker thread, so
the viewer stays responsive and review edits made meanwhile do not reach it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton
from qtpy.QtWidgets import QVBoxLayout

from ..errors import SencaError
from ..review import ReviewState
from . import _common
from ._common import (
    DockWidget,
    SectionPicker,
    confirm_target,
    fit_width,
    guarded,
    notify_error,
    notify_info,
    qt_callback,
)

__all__ = ["ExportWidget"]


def _layer_meta(layer: Any) -> dict[str, Any]:
    size = getattr(layer, "size", 1.0)  # a labels raster has no point size (its section has one)
    return {"metadata": layer.metadata, "features": layer.features, "size": size, "name": layer.name}


class ExportWidget(DockWidget):
    """Write the chosen section's regions to files.

    Each ``export_*`` method takes a path (asked with a file dialog when
    None), asks before replacing an existing file and writes it in a worker
    thread: it returns the worker (when the file is written, ``last_path`` is
    set and a notification says so; ``worker`` is None again once it has
    finished), or None when nothing will be written. One file is written at a
    time; the buttons are disabled meanwhile.

    Parameters
    ----------
    napari_viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.last_path: Path | None = None
        self.worker: Any = None
        self._writing: Path | None = None  # the file the worker writes
        self.layer = SectionPicker(napari_viewer)
        self.csv_btn = PushButton(text="Spots + regions CSV…")
        self.geojson_btn = PushButton(text="GeoJSON for QuPath…")
        self.frame = ComboBox(label="GeoJSON frame", choices=self._frame_choices, nullable=True,
                              tooltip="pixel frame of the GeoJSON coordinates: that of the image you open in QuPath")
        self.h5ad_btn = PushButton(text="Annotated section .h5ad…")
        self.png_btn = PushButton(text="PNG snapshot of the view…")
        self.whole_window = CheckBox(text="snapshot the whole window", value=False)
        self.status = Label(value="")
        self.form = Container(
            widgets=[self.layer, self.csv_btn, self.frame, self.geojson_btn, self.h5ad_btn, self.png_btn,
                     self.whole_window, self.status]
        )  # fmt: skip
        fit_width(self.status, self.frame)
        lay = QVBoxLayout(self)
        lay.addWidget(self.form.native)
        lay.addStretch(1)
        self.csv_btn.changed.connect(lambda: self.export_csv())
        self.geojson_btn.changed.connect(lambda: self.export_geojson())
        self.h5ad_btn.changed.connect(lambda: self.export_h5ad())
        self.png_btn.changed.connect(lambda: self.export_png())
        self.layer.changed.connect(self._on_layer)
        self._on_layer()

    # ------------------------------------------------------------------ frames
    def _frame_choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        """GeoJSON frames of the picked section, the default (QuPath's) marked."""
        from ..export import default_geojson_frame, geojson_frames

        layer = getattr(self, "layer", None)
        adata = (layer.value.metadata.get("adata") if layer is not None and layer.value is not None else None)
        if adata is None:
            return []
        default = default_geojson_frame(adata)
        return [(f.label + (" - default" if f.name == default else ""), f.name) for f in geojson_frames(adata)]

    @guarded
    def _on_layer(self, *_: Any) -> None:
        """Offer the picked section's frames, with its default selected."""
        from ..export import default_geojson_frame

        self.frame.reset_choices()
        layer = self.layer.value
        if layer is not None and layer.metadata.get("adata") is not None:
            self.frame.value = default_geojson_frame(layer.metadata["adata"])

    # ------------------------------------------------------------------ helpers
    def _target(self, path: str | Path | None, caption: str, file_filter: str, suffix: str) -> Path | None:
        if path is None:
            layer = self.layer.value
            stem = (layer.name if layer is not None else "section").replace(" ", "_")
            start = str(Path.cwd() / f"{stem}{suffix}")
            chosen = _common.ask_save_path(self, caption, file_filter, start)
            if not chosen:
                return None
            path = chosen
        p = Path(path).expanduser()
        if not p.suffix:
            p = p.with_suffix(suffix)
        layer = self.layer.value
        adata = layer.metadata.get("adata") if layer is not None else None
        if adata is not None:
            from ..export import refuse_input

            refuse_input(adata, p)  # the section's own input is never replaced, whatever the answer would be
        if not confirm_target(self, p):
            self.status.value = f"not written: {p.name} exists"
            return None
        return p

    def _write(self, job: Callable[[], Any], p: Path, what: str) -> Any:
        """Run ``job`` (which writes ``p``) in a worker thread; returns the worker."""
        self.status.value = f"writing {p.name} …"
        self._writing = p
        self._set_enabled(False)
        self.worker = self.start_worker(job, returned=lambda _=None: self._done(p, what), errored=self._on_error,
                                        finished=self._on_finished)  # fmt: skip
        return self.worker

    def _require_idle(self) -> None:
        if self.worker is not None:
            raise SencaError(f"still writing {self._writing.name}: wait for it, then export again")

    @qt_callback
    def _done(self, p: Path, what: str) -> None:
        self.last_path = p
        self.status.value = f"wrote {p}"
        notify_info(f"{what} written to {p}")

    @qt_callback
    def _on_error(self, exc: BaseException) -> None:
        notify_error(exc)
        self.status.value = "not written: " + _common.error_message(exc)[:120]

    @qt_callback
    def _on_finished(self) -> None:
        self.worker = None
        self._set_enabled(True)

    def _set_enabled(self, on: bool) -> None:
        for w in (self.csv_btn, self.geojson_btn, self.h5ad_btn, self.png_btn):
            w.enabled = on

    def _section(self) -> tuple[Any, ReviewState]:
        layer = self.layer.require()
        state = ReviewState.from_layer(layer)
        return layer, state

    # ------------------------------------------------------------------ exports
    @guarded
    def export_csv(self, path: str | Path | None = None) -> Any:
        """Spots with grid/pixel coordinates, cluster id, name (and label) as CSV."""
        from ..export import write_clusters_csv

        return self._export_points(write_clusters_csv, path, "Save spots and regions as CSV", "CSV (*.csv)",
                                   ".csv", "CSV")  # fmt: skip

    @guarded
    def export_geojson(self, path: str | Path | None = None) -> Any:
        """Spots as circles of the true diameter with region properties (QuPath), in the chosen frame."""
        from ..export import write_geojson

        frame = self.frame.value
        writer = functools.partial(write_geojson, frame=frame)
        return self._export_points(writer, path, "Save spots as GeoJSON",
                                   "GeoJSON (*.geojson *.json)", ".geojson", f"GeoJSON ({frame or 'default'} frame)")  # fmt: skip

    def _export_points(
        self, writer: Any, path: str | Path | None, caption: str, file_filter: str, suffix: str, what: str
    ) -> Any:
        """Write the section behind the points layer with ``writer(adata, path, names=, overwrite=)``."""
        from .._napari import adata_from_layer
        from ..export import section_snapshot
        from ..review import is_raster_layer

        self._require_idle()
        layer, state = self._section()
        state.require_result()
        p = self._target(path, caption, file_filter, suffix)
        if p is None:
            return None
        data = state.coordinates() if is_raster_layer(layer) else layer.data  # a raster: the bins' centres
        adata, names = adata_from_layer(data, _layer_meta(layer))  # refuses points added or deleted by hand
        job = functools.partial(writer, section_snapshot(adata), p, names=names, overwrite=True)
        return self._write(job, p, what)

    @guarded
    def export_h5ad(self, path: str | Path | None = None) -> Any:
        """The annotated section (clusters, names, colours, edits) as ``.h5ad``."""
        from ..export import section_snapshot
        from ..io import write_h5ad

        self._require_idle()
        _, state = self._section()
        p = self._target(path, "Save annotated section", "AnnData (*.h5ad)", ".h5ad")
        if p is None:
            return None
        return self._write(functools.partial(write_h5ad, section_snapshot(state.adata), p, overwrite=True), p,
                           "Section")  # fmt: skip

    @guarded
    def export_png(self, path: str | Path | None = None) -> Any:
        """A PNG snapshot of the canvas (or of the whole window)."""
        self._require_idle()
        p = self._target(path, "Save a snapshot", "PNG (*.png)", ".png")
        if p is None:
            return None
        img = self.viewer.screenshot(canvas_only=not self.whole_window.value, flash=False)  # drawn here, saved there
        return self._write(functools.partial(_save_png, img, p), p, "Snapshot")


def _save_png(img: Any, p: Path) -> None:
    from PIL import Image

    from ..export import atomic_write

    with atomic_write(p, overwrite=True, mode="wb") as fh:
        Image.fromarray(img).save(fh, format="PNG")
