"""Output folders that never put the user's data at risk.

A command that writes a result folder (``napari-senca run --out DIR``) checks
the folder with :func:`check_output_folder` *before any work*:

* it must not be, contain or lie inside one of the inputs (the section, a
  repository, an image or weights file...);
* it must be creatable and writable (a probe folder is made and removed);
* an existing folder is replaced only when it is empty, or when it holds the
  tool's own marker (:data:`MARKER`, written by :func:`write_marker` into every
  output) and nothing but the files that marker lists, and only when the user
  asked for it (``overwrite``).

Nothing here deletes anything; :func:`replace_folder` swaps a finished
temporary folder into place and removes the old output only afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import OutputError

__all__ = [
    "MARKER",
    "check_output_folder",
    "check_not_input",
    "check_writable",
    "read_marker",
    "write_marker",
    "replace_folder",
]

#: Name of the marker file written into every output folder.
MARKER = ".napari-senca-output.json"


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
    out: str | PathLike, inputs: Iterable[str | PathLike] = (), *, overwrite: bool = False
) -> Path:
    """Everything to check about an output folder before any work starts.

    Parameters
    ----------
    out
        The output folder the user named.
    inputs
        Paths the command reads (see :func:`check_not_input`).
    overwrite
        Whether the user allows replacing a previous output.

    Returns
    -------
    pathlib.Path
        ``out`` as an absolute path.

    Raises
    ------
    OutputError
        ``out`` is, contains or lies inside an input; exists and is not a
        folder; is a non-empty folder that is not a previous output, holds files
        the tool did not write, or is a previous output without ``overwrite``;
        or cannot be written.
    """
    o = Path(out).expanduser().absolute()
    check_not_input(o, inputs)
    if o.exists() and not o.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; choose a new folder")
    if o.is_dir():
        _check_replaceable(o, overwrite)
    check_writable(o)
    return o


def _check_replaceable(o: Path, overwrite: bool) -> None:
    entries = sorted(p.name for p in o.iterdir())
    if not entries:
        return
    marker = read_marker(o)
    if marker is None:
        raise OutputError(
            f"{o}: the folder is not empty and is not a napari-senca output (it has no {MARKER}), "
            "so it is never replaced; choose a new or empty folder"
        )
    ours = {MARKER, *(str(f) for f in marker.get("files", []) or [])}
    extra = [e for e in entries if e not in ours]
    if extra:
        shown = ", ".join(extra[:3]) + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise OutputError(
            f"{o}: holds {len(extra)} file(s) napari-senca did not write ({shown}); "
            "move them away or choose a new folder"
        )
    if not overwrite:
        raise OutputError(f"{o}: holds a previous result (use --overwrite to replace it, or choose a new folder)")


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
