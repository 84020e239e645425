"""Shared pieces of the dock widgets: notifications, dialogs, the section picker.

The dialogs (:func:`ask_overwrite`, :func:`ask_save_path`, :func:`ask_open_path`,
:func:`pick_colour`) are module-level functions so that tests (and scripts)
can replace them with ``monkeypatch.setattr``.

This module holds what talks to the user: the notifications (napari's
``show_error`` / ``show_info`` / ``show_warning`` are looked up here), the
decorators that turn a callback's error into one, and the dialogs. The other
shared pieces live in :mod:`._workers` (worker threads), :mod:`._dock` (the
dock base), :mod:`._sections` (section layers and their placement) and
:mod:`._picker` (the section picker), and are importable from here as before.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QColorDialog, QFileDialog, QMessageBox, QWidget

from ..errors import SencaError

# the shared pieces that live in the modules below stay importable from here
# (DockWidget, PLACED_KEY and SECTION_GAP were not in __all__ either)
from ._dock import DockWidget as DockWidget
from ._dock import fit_width
from ._picker import SectionPicker
from ._sections import PLACED_KEY as PLACED_KEY
from ._sections import SECTION_GAP as SECTION_GAP
from ._sections import (
    add_section,
    is_section_layer,
    place_on_insert,
    place_section,
    section_groups,
    section_layers,
    tile_sections,
)
from ._workers import WorkerBox, import_torch, is_alive, preimport

__all__ = [
    "notify_error",
    "notify_info",
    "notify_warning",
    "error_message",
    "guarded",
    "ask_overwrite",
    "ask_yes_no",
    "ask_replace_review",
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


# --------------------------------------------------------------------------- dialogs


def ask_yes_no(parent: QWidget | None, title: str, text: str) -> bool:
    """A Yes/No question (default No); True for Yes."""
    ans = QMessageBox.question(
        parent,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return ans == QMessageBox.StandardButton.Yes


def ask_overwrite(parent: QWidget | None, path: str | Path) -> bool:
    """Ask whether an existing file may be replaced (Yes/No, default No)."""
    return ask_yes_no(parent, "Replace file?", f"{path} already exists.\nDo you want to replace it?")


def ask_replace_review(parent: QWidget | None, layer: str, edits: str, when: str = "") -> bool:
    """Ask whether a new run may replace the review of a layer (Yes/No, default No).

    ``edits`` says what would be replaced (:meth:`ReviewState.edits_summary`),
    ``when`` when it was made (e.g. ``", some made during the run"``).
    """
    text = (f"The regions of {layer!r} carry review edits{when} ({edits}).\n"
            "The new run's regions replace them, with their names, colours, hand assignments and undo history; "
            "export the section (.h5ad) first to keep them.\nReplace them?")  # fmt: skip
    return ask_yes_no(parent, "Replace the review?", text)


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
