"""Shared pieces of the dock widgets: notifications, dialogs, the section picker.

The dialogs (:func:`ask_overwrite`, :func:`ask_save_path`, :func:`ask_open_path`,
:func:`pick_colour`) are module-level functions so that tests (and scripts)
can replace them with ``monkeypatch.setattr``.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from magicgui.widgets import ComboBox
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QColorDialog, QFileDialog, QMessageBox, QWidget

from ..errors import SencaError
from ..review import REVIEW_KEY, ReviewState, section_layer_data

__all__ = [
    "notify_error",
    "notify_info",
    "notify_warning",
    "error_message",
    "guarded",
    "ask_overwrite",
    "fit_width",
    "ask_save_path",
    "ask_open_path",
    "pick_colour",
    "is_section_layer",
    "section_layers",
    "SectionPicker",
    "add_section",
    "place_section",
    "place_on_insert",
    "tile_sections",
    "section_groups",
    "preimport",
    "import_torch",
    "is_alive",
    "qt_callback",
    "WorkerBox",
]

log = logging.getLogger("napari_senca")
F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- notifications


def error_message(exc: BaseException) -> str:
    """The text shown for an error: the core's message, or type + message for bugs."""
    if isinstance(exc, (SencaError, FileExistsError, FileNotFoundError, IsADirectoryError, PermissionError)):
        return str(exc)
    if isinstance(exc, OSError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def notify_error(exc: BaseException | str) -> None:
    """Show an error notification (never raises)."""
    msg = exc if isinstance(exc, str) else error_message(exc)
    if isinstance(exc, BaseException) and not isinstance(exc, (SencaError, OSError)):
        log.error("napari-senca: unexpected error\n%s", "".join(traceback.format_exception(exc)))
    try:
        show_error(msg)
    except Exception:  # pragma: no cover - notification system gone (viewer closing)
        log.error(msg)


def notify_info(msg: str) -> None:
    """Show an info notification (never raises)."""
    try:
        show_info(msg)
    except Exception:  # pragma: no cover
        log.info(msg)


def notify_warning(msg: str) -> None:
    """Show a warning notification (never raises)."""
    try:
        show_warning(msg)
    except Exception:  # pragma: no cover
        log.warning(msg)


def guarded(fn: F) -> F:
    """Decorate a widget callback so that any error becomes a notification.

    The wrapped function returns None when it failed.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            notify_error(exc)
            return None

    return wrapper  # type: ignore[return-value]


def preimport(*modules: str) -> None:
    """Import modules in the main thread before a worker needs them.

    Some extension modules (torch's triton hooks, pulled in by torchvision)
    crash when they are first imported from a worker thread.
    """
    import importlib

    for m in modules:
        importlib.import_module(m)


def import_torch() -> None:
    """Import torch, ``torch._dynamo`` and torchvision in the main thread, safely.

    ``torch._dynamo`` (imported by torchvision and by the first optimiser
    step) probes for the optional ``triton`` package. Importing triton's
    statically linked LLVM after an OpenGL context exists crashes the process
    on Mesa drivers (llvmpipe under Xvfb, radeonsi, ...). The GUI never needs
    triton (nothing is compiled), so the probe is answered "not installed"
    when triton is not loaded yet.
    """
    import sys

    if "torch._dynamo" in sys.modules and "torchvision.models" in sys.modules:
        return
    blocked = "triton" not in sys.modules
    if blocked:
        sys.modules["triton"] = None  # type: ignore[assignment]  # makes `import triton` raise ImportError
    try:
        import torch
        import torch._dynamo  # noqa: F401
        import torchvision.models  # noqa: F401
    finally:
        if blocked and sys.modules.get("triton", 0) is None:
            del sys.modules["triton"]


def is_alive(obj: Any) -> bool:
    """False once the C++ side of a Qt object has been deleted (viewer closed)."""
    try:
        from qtpy import API_NAME

        if API_NAME.lower().startswith("pyqt"):
            from qtpy import sip

            return not sip.isdeleted(obj)
        import shiboken6  # PySide6

        return bool(shiboken6.isValid(obj))
    except Exception:  # pragma: no cover - unknown binding: assume alive
        return True


def qt_callback(fn: F) -> F:
    """Decorate a worker-signal handler of a widget method.

    The handler is skipped when the widget has been deleted meanwhile (the
    viewer was closed during a run), and errors become notifications.
    """

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_alive(self):
            return None
        try:
            return fn(self, *args, **kwargs)
        except RuntimeError as exc:
            if not is_alive(self):  # deleted while the handler ran
                return None
            notify_error(exc)
        except Exception as exc:
            notify_error(exc)
        return None

    return wrapper  # type: ignore[return-value]


class WorkerBox:
    """Holds a widget's running workers so they can be stopped when it is destroyed.

    Connected to the widget's ``destroyed`` signal; it is a plain Python object
    so the connection still works once the widget's C++ side is gone.
    """

    def __init__(self) -> None:
        self.workers: list[Any] = []

    def add(self, worker: Any) -> Any:
        self.workers.append(worker)
        worker.finished.connect(lambda w=worker: self.discard(w))
        return worker

    def discard(self, worker: Any) -> None:
        if worker in self.workers:
            self.workers.remove(worker)

    def quit_all(self, *_: Any) -> None:
        for w in list(self.workers):
            try:
                w.quit()
            except RuntimeError:  # pragma: no cover
                pass


# --------------------------------------------------------------------------- dialogs


class DockWidget(QWidget):
    """Base of the four dock widgets: the viewer and a box of worker threads
    that are asked to quit when the widget goes away."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._box = WorkerBox()
        place_on_insert(napari_viewer)
        self.destroyed.connect(self._box.quit_all)


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


def ask_overwrite(parent: QWidget | None, path: str | Path) -> bool:
    """Ask whether an existing file may be replaced (Yes/No, default No)."""
    ans = QMessageBox.question(
        parent,
        "Replace file?",
        f"{path} already exists.\nDo you want to replace it?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return ans == QMessageBox.StandardButton.Yes


def ask_save_path(parent: QWidget | None, caption: str, file_filter: str, start: str = "") -> str | None:
    """A save-file dialog that leaves the overwrite question to :func:`ask_overwrite`."""
    path, _ = QFileDialog.getSaveFileName(
        parent, caption, start, file_filter, options=QFileDialog.Option.DontConfirmOverwrite
    )
    return path or None


def ask_open_path(parent: QWidget | None, folder: bool = False, start: str = "") -> str | None:
    """Pick a section file (``.h5ad``, ``.h5``, ``counts.tsv``) or a folder."""
    if folder:
        path = QFileDialog.getExistingDirectory(parent, "Open a section folder", start)
    else:
        path, _ = QFileDialog.getOpenFileName(
            parent,
            "Open a section file",
            start,
            "Sections (*.h5ad *.h5 *.tsv *.tsv.gz);;All files (*)",
        )
    return path or None


def pick_colour(parent: QWidget | None, initial: str) -> str | None:
    """A colour dialog; returns ``#rrggbb`` or None when cancelled."""
    from qtpy.QtGui import QColor

    c = QColorDialog.getColor(QColor(initial), parent, "Region colour")
    return c.name() if c.isValid() else None


def confirm_target(parent: QWidget | None, path: str | Path) -> bool:
    """True when ``path`` is free, or exists and the user agreed to replace it."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder, not a file")
    if not p.exists():
        return True
    # look the function up at call time so that tests can patch it
    return bool(globals()["ask_overwrite"](parent, p))


# --------------------------------------------------------------------------- layers


def is_section_layer(layer: Any) -> bool:
    """True for a points layer or a labels raster made by napari-senca (it holds an AnnData)."""
    from anndata import AnnData

    from ..review import is_raster_layer

    md = getattr(layer, "metadata", None) or {}
    return (type(layer).__name__ == "Points" or is_raster_layer(layer)) and isinstance(md.get("adata"), AnnData)


def section_layers(viewer: Any) -> list[Any]:
    """The section layers of a viewer (points or rasters), in layer-list order."""
    return [ly for ly in viewer.layers if is_section_layer(ly)]


def add_section(viewer: Any, adata: Any, name: str | None = None) -> Any:
    """Add a section's H&E and spots to ``viewer`` beside the sections already
    there (see :func:`place_section`); returns the spots layer (points, or a
    labels raster for a large square-grid section)."""
    points = None
    added = []
    for data, kw, ltype in section_layer_data(adata, name):
        layer = getattr(viewer, f"add_{ltype}")(data, **kw)
        added.append(layer)
        if ltype in ("points", "labels"):
            points = layer
    place_section(viewer, added)
    if points is not None:
        # the state object created by the layer-data function is reused
        points.metadata.setdefault(REVIEW_KEY, ReviewState.from_layer(points))
        viewer.layers.selection.active = points
    viewer.reset_view()
    return points


PLACED_KEY = "senca_placed"
#: gap between two sections, as a fraction of the wider one's width
SECTION_GAP = 0.05


def _world_box(layers: list[Any]) -> np.ndarray | None:
    """``[[row_min, col_min], [row_max, col_max]]`` of the layers in world coordinates."""
    boxes = [np.asarray(ly.extent.world, dtype=np.float64)[:, -2:] for ly in layers if len(ly.data)]
    if not boxes:
        return None
    return np.array([np.min([b[0] for b in boxes], 0), np.max([b[1] for b in boxes], 0)])


def place_section(viewer: Any, layers: list[Any]) -> None:
    """Translate a new section's layers (H&E and spots together) to the right
    of the sections already placed in ``viewer``, tops aligned, with a gap.

    Only the layers' ``translate`` changes: the data, the AnnData and every
    export stay in the section's own pixel coordinates. Layers already placed
    are left alone, so calling this twice does nothing more. The first section
    (or one added when no other section is open) stays where it is.
    """
    new = [ly for ly in layers if ly in viewer.layers and not ly.metadata.get(PLACED_KEY)]
    if not new:
        return
    others = [
        part
        for pts in section_layers(viewer)
        if pts.metadata.get(PLACED_KEY) and pts not in new
        for part in _section_partner(viewer, pts)
    ]  # sections still open: an H&E whose spots were removed does not count
    old_box, new_box = _world_box(others), _world_box(new)
    if old_box is not None and new_box is not None:
        width = max(old_box[1, 1] - old_box[0, 1], new_box[1, 1] - new_box[0, 1])
        shift = np.array([old_box[0, 0] - new_box[0, 0], old_box[1, 1] + SECTION_GAP * width - new_box[0, 1]])
        for ly in new:
            t = np.asarray(ly.translate, dtype=np.float64).copy()
            t[-2:] += shift
            ly.translate = t
    for ly in new:
        ly.metadata[PLACED_KEY] = True


def _section_partner(viewer: Any, points: Any) -> list[Any]:
    """The points layer of a section and its H&E layer (the image layer of the
    same section inserted just before it, as the reader adds them)."""
    layers = list(viewer.layers)
    i = layers.index(points)
    lib = points.metadata.get("senca_library_id")
    if i > 0:
        prev = layers[i - 1]
        md = prev.metadata or {}
        if type(prev).__name__ == "Image" and "senca_scalef" in md and md.get("senca_library_id") == lib:
            return [prev, points]
    return [points]


def section_groups(viewer: Any) -> list[list[Any]]:
    """The open sections as ``[H&E layer, spots layer]`` (or ``[spots layer]``), in layer order."""
    return [_section_partner(viewer, pts) for pts in section_layers(viewer)]


def tile_sections(viewer: Any, columns: int | None = None) -> int:
    """Arrange every open section in a grid (default ``ceil(sqrt(n))`` columns), tops and lefts aligned.

    Like :func:`place_section`, only the layers' ``translate`` changes (data and
    exports stay in each section's own pixels). Each column is as wide as its
    widest section and each row as tall as its tallest, with a gap of
    :data:`SECTION_GAP` of the widest section between cells. Returns the number of sections.
    """
    groups = [g for g in section_groups(viewer) if _world_box(g) is not None]
    n = len(groups)
    if not n:
        return 0
    cols = max(1, min(n, columns or int(np.ceil(np.sqrt(n)))))
    boxes = [_world_box(g) for g in groups]
    sizes = np.array([b[1] - b[0] for b in boxes])  # (n, 2) rows, cols
    gap = SECTION_GAP * float(sizes[:, 1].max())
    n_rows = (n + cols - 1) // cols
    heights = [float(sizes[r * cols : (r + 1) * cols, 0].max()) for r in range(n_rows)]
    widths = [float(sizes[c::cols, 1].max()) for c in range(cols)]
    top0, left0 = boxes[0][0]
    for i, (g, b) in enumerate(zip(groups, boxes, strict=True)):
        r, c = divmod(i, cols)
        target = np.array([top0 + sum(heights[:r]) + r * gap, left0 + sum(widths[:c]) + c * gap])
        shift = target - b[0]
        for ly in g:
            t = np.asarray(ly.translate, dtype=np.float64).copy()
            t[-2:] += shift
            ly.translate = t
            ly.metadata[PLACED_KEY] = True
    return n


def place_on_insert(viewer: Any) -> None:
    """Place every section added to ``viewer`` from now on (also by File > Open)
    beside the others, and the sections already there side by side.

    Connected once per viewer, by the first napari-senca widget.
    """
    layers = viewer.layers
    if getattr(layers, "_senca_placing", False):
        return
    layers._senca_placing = True

    def on_inserted(event: Any) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and is_section_layer(layer) and not layer.metadata.get(PLACED_KEY):
            try:
                place_section(viewer, _section_partner(viewer, layer))
            except Exception as exc:  # never block adding a layer
                log.warning("napari-senca: could not place %s beside the other sections: %s", layer.name, exc)

    layers.events.inserted.connect(on_inserted)
    for ly in section_layers(viewer):
        place_section(viewer, _section_partner(viewer, ly))


class SectionPicker(ComboBox):
    """A combo box of the viewer's section layers, kept up to date.

    Its ``value`` is the picked layer (or None when there is none). A newly
    added section becomes current only while the user has not picked one
    (once they have, their pick stays until that layer is removed); renamed
    layers keep their place, a removed one gives way to the newest section.
    """

    def __init__(self, viewer: Any, label: str = "section", **kwargs: Any) -> None:
        self._viewer = viewer
        self._auto = 0  # > 0 while the value is set by the picker itself
        #: True once the user picked a section in the combo box
        self.user_picked = False
        super().__init__(label=label, choices=self._choices, nullable=True, **kwargs)
        ev = viewer.layers.events
        ev.inserted.connect(self._on_inserted)
        ev.removed.connect(self._refresh)
        ev.reordered.connect(self._refresh)
        for ly in viewer.layers:
            ly.events.name.connect(self._refresh)
        self.changed.connect(self._on_changed)
        self._refresh()

    def _layers(self) -> list[Any]:
        return section_layers(self._viewer)

    def _choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(ly.name, ly) for ly in self._layers()]

    def _set(self, layer: Any) -> None:
        self._auto += 1
        try:
            self.value = layer
        finally:
            self._auto -= 1

    def _on_changed(self, value: Any) -> None:
        if not self._auto:
            self.user_picked = value is not None

    def _refresh(self, event: Any = None) -> None:
        current = self.value
        self._auto += 1
        try:
            self.reset_choices()
        finally:
            self._auto -= 1
        layers = self._layers()
        if current in layers:
            self._set(current)
        else:
            self.user_picked = False
            self._set(layers[-1] if layers else None)

    def _on_inserted(self, event: Any) -> None:
        layer = getattr(event, "value", None)
        if layer is not None:
            layer.events.name.connect(self._refresh)
        self._refresh()
        if layer is not None and layer in self._layers() and not self.user_picked:
            self._set(layer)

    def require(self) -> Any:
        """The chosen layer, or raise :class:`SencaError` when there is none."""
        layer = self.value
        if layer is None or layer not in self._viewer.layers:
            raise SencaError(
                "no section loaded: open one with the Load section widget, File > Open, "
                "or File > Open Sample > napari-senca"
            )
        return layer

    def close_connections(self) -> None:
        """Disconnect from the viewer (when the widget is closed)."""
        ev = self._viewer.layers.events
        for sig, cb in ((ev.inserted, self._on_inserted), (ev.removed, self._refresh), (ev.reordered, self._refresh)):
            try:
                sig.disconnect(cb)
            except (TypeError, RuntimeError, ValueError):
                pass
