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
  them: the marker records their size, modification time and SHA-256
  (:func:`file_stamps`, compared by :func:`changed_outputs`), so review edits
  saved into it are never replaced without asking.

Nothing here deletes anything; :func:`replace_folder` swaps a finished
temporary folder into place and removes the old output only afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from ._version import __version__
from .errors import KeptOutputError, OutputError

__all__ = [
    "MARKER",
    "UNCHANGED",
    "Overwrite",
    "check_output_folder",
    "changed_outputs",
    "file_stamps",
    "restamp",
    "check_not_input",
    "check_writable",
    "read_marker",
    "write_marker",
    "replace_folder",
]

#: Name of the marker file written into every output folder.
MARKER = ".napari-senca-output.json"
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


def read_marker(folder: str | PathLike) -> dict[str, Any] | None:
    """The marker of a previous output in ``folder``, or None when there is none (or it is unreadable)."""
    try:
        obj = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def write_marker(
    folder: str | PathLike,
    files: Iterable[str],
    *,
    inputs: Iterable[str | PathLike] = (),
    config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the marker that identifies ``folder`` as a napari-senca output.

    Parameters
    ----------
    folder
        The (temporary) output folder.
    files
        Names of the files written into it (what a later overwrite may remove).
    inputs
        The inputs the result was made from.
    config
        The settings used (JSON-serialisable).
    extra
        More JSON-serialisable fields (e.g. the batch runner's input
        fingerprint and the settings asked for, to tell whether an output is current).

    Returns
    -------
    pathlib.Path
        The marker file.
    """
    info = {
        "napari_senca_output": 1,
        "version": __version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": sorted(str(f) for f in files),
        "inputs": [str(_resolve(i)) for i in inputs],
        "config": config or {},
        **(extra or {}),
    }
    path = Path(folder) / MARKER
    path.write_text(json.dumps(info, indent=1, default=str) + "\n", encoding="utf-8")
    return path


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
    out: str | PathLike, inputs: Iterable[str | PathLike] = (), *, overwrite: Overwrite = False
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
        changed since they were written (or were written without a record of them).
    """
    o = Path(out).expanduser().absolute()
    check_not_input(o, inputs)
    if o.exists() and not o.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose a new folder")
    if o.is_dir():
        _check_replaceable(o, overwrite)
    check_writable(o)
    return o


def _check_replaceable(o: Path, overwrite: Overwrite) -> None:
    """Raise unless the existing folder ``o`` may be replaced (see :func:`check_output_folder`)."""
    entries = sorted(p.name for p in o.iterdir())
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
        _check_unchanged(o, marker)


def _check_unchanged(o: Path, marker: dict[str, Any]) -> None:
    """Raise :class:`KeptOutputError` unless the outputs in ``o`` are as napari-senca wrote them."""
    changed = changed_outputs(o, marker)
    if changed is None:
        raise KeptOutputError(
            f"{o}: written by napari-senca {marker.get('version', '?')} without a record of its files, so edits "
            "saved there cannot be ruled out; it is kept (use --overwrite to replace it)"
        )
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise KeptOutputError(
            f"{o}: {shown} changed since napari-senca wrote it (e.g. review edits saved there); "
            "it is kept (use --overwrite to replace it)"
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_stamps(folder: str | PathLike, files: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Size, modification time and SHA-256 of each of ``files`` in ``folder``.

    Parameters
    ----------
    folder
        The output folder.
    files
        Names of files in it; folders (a SpatialData store) and missing files are left out.

    Returns
    -------
    dict
        ``{name: {"size": bytes, "mtime_ns": int, "sha256": hex}}``, for the marker's ``stamps``.
    """
    stamps: dict[str, dict[str, Any]] = {}
    for name in files:
        p = Path(folder) / name
        if p.is_file():
            st = p.stat()
            stamps[str(name)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(p)}
    return stamps


def _same(p: Path, stamp: Any) -> bool:
    """Whether ``p`` is the file ``stamp`` describes (size and time, else size and content)."""
    if not isinstance(stamp, dict) or not p.is_file():
        return False
    st = p.stat()
    if st.st_size != stamp.get("size"):
        return False
    return st.st_mtime_ns == stamp.get("mtime_ns") or _sha256(p) == stamp.get("sha256")


def changed_outputs(folder: str | PathLike, marker: dict[str, Any] | None = None) -> list[str] | None:
    """The files of a previous output that changed since napari-senca wrote them.

    Parameters
    ----------
    folder
        A previous output folder.
    marker
        Its marker (read from ``folder`` when None).

    Returns
    -------
    list of str or None
        The names (in the marker's order) of listed files that differ from
        their recorded stamp or have none (a folder); a deleted file is not a
        change. None when the marker records no stamps (an output written
        before napari-senca recorded them) or there is no marker.
    """
    marker = read_marker(folder) if marker is None else marker
    if marker is None or not isinstance(marker.get("stamps"), dict):
        return None
    stamps, o = marker["stamps"], Path(folder)
    listed = [str(f) for f in marker.get("files", []) or []]
    return [f for f in listed if (o / f).exists() and not _same(o / f, stamps.get(f))]


def restamp(folder: str | PathLike, files: Iterable[str]) -> None:
    """Record the current state of ``files`` in the marker of ``folder`` (after napari-senca rewrote them).

    Only for files napari-senca itself has just rewritten (e.g. the cohort
    region added by ``batch``) and that were unchanged before; the marker is
    replaced atomically. Nothing happens when the folder has no marker with stamps.
    """
    marker = read_marker(folder)
    if marker is None or not isinstance(marker.get("stamps"), dict):
        return
    marker["stamps"].update(file_stamps(folder, files))
    path = Path(folder) / MARKER
    fd, tmp = tempfile.mkstemp(prefix=f".{MARKER}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(marker, indent=1, default=str) + "\n")
        os.chmod(tmp, path.stat().st_mode & 0o7777)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
