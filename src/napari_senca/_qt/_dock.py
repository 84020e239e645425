"""The base of the dock widgets, and keeping long texts from widening the dock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtWidgets import QWidget

from ._sections import place_on_insert
from ._workers import WorkerBox, start_labels_warm_up

__all__ = ["DockWidget", "fit_width"]


class DockWidget(QWidget):
    """Base of the dock widgets: the viewer and a box of worker threads that
    are asked to quit when the widget goes away. The first one opened starts
    compiling napari's labels colouring in a daemon thread
    (:func:`._workers.start_labels_warm_up`)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._box = WorkerBox()
        place_on_insert(napari_viewer)
        self.destroyed.connect(self._box.quit_all)
        start_labels_warm_up()  # the first square-grid section of a session then opens 1-2 s sooner

    def start_worker(self, fn: Callable[..., Any], *args: Any, **connect: Callable[..., Any]) -> Any:
        """Run ``fn(*args)`` in a napari worker thread kept in this widget's box; returns the worker.

        ``connect`` maps worker signals to slots (``returned=..., errored=...``).
        """
        from napari.qt.threading import create_worker

        worker = self._box.add(create_worker(fn, *args, _start_thread=False, _connect=connect))
        worker.start()
        return worker


def fit_width(*widgets: Any, min_chars: int = 16) -> None:
    """Keep long texts from widening the dock: labels wrap, combo boxes elide.

    A QLabel without word wrap and a QComboBox sized to its longest item ask for
    their whole text's width; docks tabbed together take the widest minimum, so
    one long status line would stretch every napari-senca dock.
    """
    from qtpy.QtWidgets import QComboBox, QLabel, QSizePolicy

    for w in widgets:
        native = getattr(w, "native", w)
        if isinstance(native, QLabel):
            native.setWordWrap(True)
            native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        elif isinstance(native, QComboBox):
            native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            native.setMinimumContentsLength(min_chars)
