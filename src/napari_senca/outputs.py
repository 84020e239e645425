"""Output folders that never put the user's data at risk.

A command that writes a result folder (``napari-senca run --out DIR``) checks
the folder with :func:`check_output_folder` *before any work*:

* it must not be, contain or lie inside one of the inputs (the section, a
  repository, an image or weights file...);
* it must be creatable and writable (a probe folder is made and removed);
* an existing folder is replaced only when it is empty, or when it holds the
  tool's own marker (:data:`MARKER`, written by :func:`write_marker` into every
  output) and nothing but the files that marker lists, and only when the user
  asked for it (``overwrite``);
* with ``overwrite=UNCHANGED`` (what ``batch`` does without ``--overwrite``) a
  previous output is replaced only when its files are as napari-senca wrote
  them: the marker records their size, modification time and SHA-256 (a
  folder: its file listing; :func:`file_stamps`, compared by
  :func:`changed_outputs`), so review edits saved into it are never replaced
  without asking. An older marker without that record is judged by
  modification time (see :func:`changed_outputs`).

Nothing here deletes anything; :func:`replace_folder` swaps a finished
temporary folder into place and removes the old output only afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from .errors import KeptOutputError, OutputError
from .output_marker import (  # re-exported: the marker is part of what an output folder is
    MARKER,
    changed_outputs,
    file_stamps,
    has_stamps,
    is_marker_temp,
    read_marker,
    restamp,
    upgrade_marker,
    write_marker,
)

__all__ = [
    "MARKER",
    "UNCHANGED",
    "Overwrite",
    "check_output_folder",
    "changed_outputs",
    "check_unchanged",
    "file_stamps",
    "restamp",
    "upgrade_marker",
    "check_not_input",
    "check_writable",
    "read_marker",
    "write_marker",
    "replace_folder",
]

#: ``overwrite`` value: replace a previous output only when its files are as napari-senca wrote them.
UNCHANGED = "unchanged"
#: What ``overwrite`` takes: False (never), True (a previous output, as the user asked) or :data:`UNCHANGED`.
Overwrite = bool | Literal["unchanged"]


def _resolve(p: str | PathLike) -> Path:
    return Path(p).expanduser().resolve(strict=False)


def check_not_input(out: str | PathLike, inputs: Iterable[str | PathLike]) -> None:
    """Refuse an output folder that is, contains or lies inside an input.

    Parameters
    ----------
    out
        The output folder (need not exist).
    inputs
        Paths the command reads (files or folders; symlinks are resolved).

    Raises
    ------
    OutputError
        Naming the output folder, the input and what to do.
    """
    o = _resolve(out)
    for inp in inputs:
        i = _resolve(inp)
        if o == i:
            why = "is the input"
        elif o.is_relative_to(i):
            why = "lies inside the input"
        elif i.is_relative_to(o):
            why = "contains the input"
        else:
            continue
        raise OutputError(f"{out}: the output folder {why} {inp}; choose a new folder outside the input")


def _nearest_existing(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(out: str | PathLike) -> None:
    """Check that ``out`` can be created (or replaced) and written, without leaving a trace.

    A probe folder is created and removed in the folder that will receive
    ``out`` (its parent, or the nearest existing ancestor when the parent does
    not exist yet), since the result is written beside ``out`` and then moved
    into place.

    Raises
    ------
    OutputError
        Naming ``out`` (never a temporary path) and the reason.
    """
    o = Path(out)
    base = _nearest_existing(o.parent)
    if not base.is_dir():
        raise OutputError(f"{out}: cannot create the output folder: {base} is a file, not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".napari-senca-probe-", dir=base)
    except OSError as exc:
        raise OutputError(
            f"{out}: cannot write the output folder in {base} ({exc.strerror or type(exc).__name__}); "
            "choose a folder you can write to"
        ) from None
    os.rmdir(probe)


def check_output_folder(
    out: str | PathLike,
    inputs: Iterable[str | PathLike] = (),
    *,
    overwrite: Overwrite = False,
    written_before: int | None = None,
) -> Path:
    """Everything to check about an output folder before any work starts.

    Parameters
    ----------
    out
        The output folder the user named.
    inputs
        Paths the command reads (see :func:`check_not_input`).
    overwrite
        Whether the user allows replacing a previous output; :data:`UNCHANGED`:
        only one whose files are as napari-senca wrote them (see :func:`changed_outputs`).
    written_before
        With :data:`UNCHANGED`, for a marker without a record of its files: a
        time (``st_mtime_ns``) napari-senca last wrote there, see :func:`changed_outputs`.

    Returns
    -------
    pathlib.Path
        ``out`` as an absolute path.

    Raises
    ------
    OutputError
        ``out`` is, contains or lies inside an input; exists and is not a
        folder; is a previous output without ``overwrite``; or cannot be written.
    KeptOutputError
        ``out`` is a non-empty folder that is not a previous output or holds
        files the tool did not write; or, with :data:`UNCHANGED`, its outputs
        changed since they were written.
    """
    o = Path(out).expanduser().absolute()
    check_not_input(o, inputs)
    if o.exists() and not o.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose a new folder")
    if o.is_dir():
        _check_replaceable(o, overwrite, written_before)
    check_writable(o)
    return o


def _check_replaceable(o: Path, overwrite: Overwrite, written_before: int | None = None) -> None:
    """Raise unless the existing folder ``o`` may be replaced (see :func:`check_output_folder`)."""
    try:  # a marker rewrite killed midway leaves its temporary file: not the user's, replaced with the folder
        entries = sorted(p.name for p in o.iterdir() if not is_marker_temp(p.name))
    except OSError as exc:
        raise OutputError(f"{o}: cannot list the folder ({exc.strerror or type(exc).__name__})") from None
    if not entries:
        return
    marker = read_marker(o)
    if marker is None:
        raise KeptOutputError(
            f"{o}: the folder is not empty and is not a napari-senca output (it has no {MARKER}), "
            "so it is never replaced; choose a new or empty folder"
        )
    ours = {MARKER, *(str(f) for f in marker.get("files", []) or [])}
    extra = [e for e in entries if e not in ours]
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise KeptOutputError(
            f"{o}: holds {len(extra)} file(s) napari-senca did not write ({shown}); "
            "move them away or choose a new folder"
        )
    if not overwrite:
        raise OutputError(f"{o}: holds a previous result (use --overwrite to replace it, or choose a new folder)")
    if overwrite == UNCHANGED:
        check_unchanged(o, marker, written_before=written_before)


def check_unchanged(
    folder: str | PathLike, marker: dict[str, Any] | None = None, *, written_before: int | None = None
) -> None:
    """Raise :class:`KeptOutputError` unless the outputs in ``folder`` are as napari-senca wrote them.

    Parameters
    ----------
    folder
        A previous output folder (one without a marker passes: nothing in it is napari-senca's).
    marker
        Its marker (read from ``folder`` when None).
    written_before
        See :func:`changed_outputs`.

    Raises
    ------
    KeptOutputError
        Naming the folder and the changed files.
    """
    marker = read_marker(folder) if marker is None else marker
    changed = changed_outputs(folder, marker, written_before=written_before) or []
    if not changed:
        return
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    how = "" if has_stamps(marker) else " (judged by modification time: its marker records no sizes)"
    raise KeptOutputError(
        f"{folder}: {shown} changed since napari-senca wrote it{how} (e.g. review edits saved there); "
        "it is kept (use --overwrite to replace it)"
    )


def replace_folder(tmp: str | PathLike, out: str | PathLike) -> None:
    """Move the finished folder ``tmp`` to ``out``; a previous ``out`` is removed only afterwards.

    ``out`` must have passed :func:`check_output_folder`. When the move fails
    the previous ``out`` is put back.
    """
    tmp, out = Path(tmp), Path(out)
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old / out.name, out)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
