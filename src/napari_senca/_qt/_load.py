"""Load widget: pick a section file or folder (or a bundled sample) and show it."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container, Label, LineEdit, PushButton
from qtpy.QtWidgets import QVBoxLayout

from ..errors import SencaError
from . import _common
from ._common import (
    DockWidget,
    add_section,
    fit_width,
    guarded,
    notify_error,
    notify_info,
    preimport,
    qt_callback,
)

__all__ = ["LoadWidget"]


def _read(path: str, section: str | None) -> Any:
    from ..io import read_section

    return read_section(path, section=section or None)


class LoadWidget(DockWidget):
    """Open a legacy ST folder, a Space Ranger folder, an ``.h5ad`` or a sample.

    The H&E becomes an image layer in full-resolution pixel coordinates and
    the spots a points layer at the true spot diameter, with the spot table in
    its ``features``. Reading runs in a worker thread.

    Parameters
    ----------
    napari_viewer
        The viewer the layers are added to.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.worker: Any = None
        self.last_layer: Any = None
        self.path = LineEdit(label="path", tooltip="A section folder, Space Ranger outs folder or .h5ad file")
        self.section = LineEdit(
            label="section",
            tooltip="Section name: of a her2st repository checkout, a SpatialData store's table, or an .h5ad "
            "file's library (when it holds several)",
        )
        self.file_btn = PushButton(text="File…")
        self.folder_btn = PushButton(text="Folder…")
        self.load_btn = PushButton(text="Load")
        self.a1_btn = PushButton(text="Sample: HER2ST A1")
        self.synth_btn = PushButton(text="Sample: synthetic")
        self.status = Label(value="")
        browse = Container(widgets=[self.file_btn, self.folder_btn], layout="horizontal", labels=False)
        samples = Container(widgets=[self.a1_btn, self.synth_btn], layout="horizontal", labels=False)
        self.form = Container(widgets=[self.path, browse, self.section, self.load_btn, samples, self.status])
        fit_width(self.status)
        lay = QVBoxLayout(self)
        lay.addWidget(self.form.native)
        lay.addStretch(1)

        self.file_btn.changed.connect(lambda: self.browse(folder=False))
        self.folder_btn.changed.connect(lambda: self.browse(folder=True))
        self.load_btn.changed.connect(lambda: self.load())
        self.path.native.returnPressed.connect(lambda: self.load())
        self.a1_btn.changed.connect(lambda: self.load("sample:her2st_A1"))
        self.synth_btn.changed.connect(lambda: self.load("sample:synthetic"))

    @property
    def busy(self) -> bool:
        """True while a section is being read."""
        return self.worker is not None

    @guarded
    def browse(self, folder: bool = False) -> None:
        """Ask for a file or folder and load it."""
        path = _common.ask_open_path(self, folder=folder, start=self.path.value or "")
        if path:
            self.path.value = path
            self.load(path)

    @guarded
    def load(self, path: str | None = None) -> Any:
        """Read ``path`` (default: the path field) in a worker; returns the worker.

        Unrecognised or broken input becomes an error notification and adds
        no layer.
        """
        if self.worker is not None:
            notify_info("a section is already being loaded")
            return None
        target = (path if path is not None else self.path.value or "").strip()
        if not target:
            raise SencaError("choose a section file or folder first (File… or Folder…)")
        section = self.section.value.strip() or None
        preimport("napari_senca.io", "napari_senca.datasets")
        self.status.value = f"reading {target} …"
        self._set_enabled(False)
        self.worker = self.start_worker(_read, target, section, returned=self._on_loaded, errored=self._on_error,
                                        finished=self._on_finished)  # fmt: skip
        return self.worker

    @qt_callback
    def _on_loaded(self, adata: Any) -> None:
        try:
            self.last_layer = add_section(self.viewer, adata)
            n = adata.n_obs
            self.status.value = f"{self.last_layer.name}: {n} spots, {adata.n_vars} genes"
        except Exception as exc:
            notify_error(exc)
            self.status.value = "failed"

    @qt_callback
    def _on_error(self, exc: BaseException) -> None:
        notify_error(exc)
        self.status.value = "failed: " + _common.error_message(exc)[:120]

    @qt_callback
    def _on_finished(self) -> None:
        self.worker = None
        self._set_enabled(True)

    def _set_enabled(self, on: bool) -> None:
        for w in (self.load_btn, self.a1_btn, self.synth_btn, self.file_btn, self.folder_btn):
            w.enabled = on
