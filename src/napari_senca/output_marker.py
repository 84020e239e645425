"""The marker napari-senca writes into every output folder, and the record of its files.

:func:`write_marker` writes :data:`MARKER` (version, time, inputs, settings
and the names of the files written); ``batch`` adds ``stamps``, each output
file's size, modification time and SHA-256 (a folder: its file listing;
:func:`file_stamps`). :func:`changed_outputs` tells which outputs changed
since (review edits saved into the folder), reading a file only when its size
matches and its mtime does not; :func:`restamp` records files napari-senca
itself rewrote; :func:`upgrade_marker` gives an older marker without stamps a
record once, judged by modification time. The folder checks that use all this
are in :mod:`napari_senca.outputs`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

from ._version import __version__

__all__ = [
    "MARKER",
    "read_marker",
    "write_marker",
    "file_stamps",
    "has_stamps",
    "changed_outputs",
    "restamp",
    "upgrade_marker",
    "is_marker_temp",
]

#: Name of the marker file written into every output folder.
MARKER = ".napari-senca-output.json"


def _resolve(p: str | PathLike) -> Path:
    return Path(p).expanduser().resolve(strict=False)


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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _listing(folder: Path) -> dict[str, list[int]]:
    """``{relative path: [size, mtime_ns]}`` of every file under ``folder`` (nothing is read)."""
    listing: dict[str, list[int]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            listing[p.relative_to(folder).as_posix()] = [st.st_size, st.st_mtime_ns]
    return listing


def _stamp(p: Path, old: Any = None, *, hash_file: bool = True) -> dict[str, Any] | None:
    """The stamp of the file or folder ``p`` (None when it does not exist).

    A file: size, mtime and SHA-256, the hash taken from ``old`` (its previous
    stamp) when size and mtime match it, and left out when not ``hash_file``.
    A folder (a SpatialData store): its file listing, never hashed.
    """
    if p.is_dir():
        return {"listing": _listing(p)}
    if not p.is_file():
        return None
    st = p.stat()
    stamp: dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    as_before = isinstance(old, dict) and (old.get("size"), old.get("mtime_ns")) == (st.st_size, st.st_mtime_ns)
    if as_before and old.get("sha256"):
        stamp["sha256"] = old["sha256"]
    elif hash_file:
        stamp["sha256"] = _sha256(p)
    return stamp


def file_stamps(folder: str | PathLike, files: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stamp of each of ``files`` in ``folder``, for the marker's ``stamps``.

    Parameters
    ----------
    folder
        The output folder.
    files
        Names of files or folders in it; missing ones are left out.

    Returns
    -------
    dict
        ``{name: {"size": bytes, "mtime_ns": int, "sha256": hex}}`` for a file,
        ``{name: {"listing": {relative path: [size, mtime_ns]}}}`` for a folder
        (a SpatialData store: its files are listed, not hashed).
    """
    stamps: dict[str, dict[str, Any]] = {}
    for name in files:
        stamp = _stamp(Path(folder) / name)
        if stamp is not None:
            stamps[str(name)] = stamp
    return stamps


def _same(p: Path, stamp: Any) -> bool:
    """Whether ``p`` is what ``stamp`` describes.

    A file: same size, and same mtime or (only then hashed) same content; a
    folder: the same file listing.
    """
    if not isinstance(stamp, dict):
        return False
    try:
        if "listing" in stamp:
            return p.is_dir() and _listing(p) == stamp["listing"]
        if not p.is_file():
            return False
        st = p.stat()
        if st.st_size != stamp.get("size"):
            return False
        if st.st_mtime_ns == stamp.get("mtime_ns"):
            return True
        return bool(stamp.get("sha256")) and _sha256(p) == stamp["sha256"]
    except OSError:  # unreadable (another user's file): not known to be ours, so it counts as changed
        return False


def has_stamps(marker: dict[str, Any] | None) -> bool:
    """Whether ``marker`` records its files' stamps (markers of older versions do not)."""
    return marker is not None and isinstance(marker.get("stamps"), dict)


def _newest_mtime(p: Path) -> int:
    """The modification time (ns) of the file ``p``, or of the newest file in the folder ``p``."""
    if p.is_dir():
        return max((t for _, t in _listing(p).values()), default=0)
    return p.stat().st_mtime_ns


def _legacy_changed(o: Path, present: list[str], written_before: int | None) -> list[str]:
    """Of ``present`` outputs of an old marker without stamps: those newer than the marker and ``written_before``."""
    try:
        limit = (o / MARKER).stat().st_mtime_ns
    except OSError:
        limit = 0
    limit = max(limit, written_before or 0)
    changed = []
    for f in present:
        try:
            newer = _newest_mtime(o / f) > limit
        except OSError:  # unreadable: counts as changed
            newer = True
        if newer:
            changed.append(f)
    return changed


def changed_outputs(
    folder: str | PathLike, marker: dict[str, Any] | None = None, *, written_before: int | None = None
) -> list[str] | None:
    """The files of a previous output that changed since napari-senca wrote them.

    A file whose size and mtime match its stamp is unchanged without being
    read; only one of the same size but another mtime is hashed.

    A marker written by a napari-senca that recorded no stamps is judged by
    modification time: a file (or, for a folder, its newest file) is unchanged
    when it is not later than the marker file itself, or not later than
    ``written_before``, a time napari-senca last wrote into the folder (for
    ``batch``: its ``cohort.csv``, written after region matching rewrote the
    sections); anything newer counts as changed.

    Parameters
    ----------
    folder
        A previous output folder.
    marker
        Its marker (read from ``folder`` when None).
    written_before
        ``st_mtime_ns`` for markers without stamps (see above); None: the marker's own time only.

    Returns
    -------
    list of str or None
        The names (in the marker's order) of listed files or folders that
        differ from their stamp or have none; a deleted file is not a change.
        None when there is no marker.
    """
    marker = read_marker(folder) if marker is None else marker
    if marker is None:
        return None
    o = Path(folder)
    present = [str(f) for f in marker.get("files", []) or [] if (o / str(f)).exists()]
    if not has_stamps(marker):
        return _legacy_changed(o, present, written_before)
    stamps = marker["stamps"]
    return [f for f in present if not _same(o / f, stamps.get(f))]


def is_marker_temp(name: str) -> bool:
    """Whether ``name`` is a temporary file :func:`_write_marker_atomic` left behind (a killed process)."""
    return name.startswith(f".{MARKER}.") and name.endswith(".tmp")


def _write_marker_atomic(folder: str | PathLike, marker: dict[str, Any]) -> None:
    """Replace the marker of ``folder`` by ``marker`` in one step, keeping its permissions."""
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


def restamp(folder: str | PathLike, files: Iterable[str]) -> None:
    """Record the current state of ``files`` in the marker of ``folder`` (after napari-senca rewrote them).

    Only for files napari-senca itself has just rewritten (e.g. the cohort
    region added by ``batch``) and that were unchanged before. A file whose
    size and mtime match its record is not read again; the marker is replaced
    atomically, and only when a stamp changed. Nothing happens when the folder
    has no marker with stamps.
    """
    marker = read_marker(folder)
    if not has_stamps(marker):
        return
    stamps = marker["stamps"]
    new = {str(f): _stamp(Path(folder) / f, stamps.get(str(f))) for f in files}
    new = {f: s for f, s in new.items() if s is not None and s != stamps.get(f)}
    if new:
        stamps.update(new)
        _write_marker_atomic(folder, marker)


def upgrade_marker(folder: str | PathLike, written_before: int | None = None) -> list[str] | None:
    """Give the marker of an older output (written without stamps) a record of its files, once.

    The files :func:`changed_outputs` judges unchanged by modification time
    (with ``written_before``) are recorded like new outputs (size, mtime and
    SHA-256, so a copy of the cohort that changes only the times is still
    known as unchanged); the changed ones get no record,
    so they count as changed from now on, even after ``written_before`` (a
    ``cohort.csv`` that batch rewrites) moves past them. Nothing happens when
    ``folder`` has no marker or its marker has stamps; a marker that cannot be
    written is left as it is.

    Returns
    -------
    list of str or None
        The changed files; None when nothing was done.
    """
    marker = read_marker(folder)
    if marker is None or has_stamps(marker):
        return None
    changed = changed_outputs(folder, marker, written_before=written_before) or []
    o = Path(folder)
    listed = [str(f) for f in marker.get("files", []) or [] if str(f) not in changed]
    stamps = {}
    for f in listed:
        try:
            stamps[f] = _stamp(o / f)
        except OSError:  # unreadable: no record, so it counts as changed
            stamps[f] = None
    marker["stamps"] = {f: s for f, s in stamps.items() if s is not None}
    try:
        _write_marker_atomic(folder, marker)
    except OSError:  # a read-only folder: judged by time again next time; nothing there can be replaced anyway
        pass
    return changed
