"""Atomic file writing: a temporary file beside the target replaces it in one step.

Nothing is left behind on failure, and an existing file is replaced only with
``overwrite=True``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import IO, Any

__all__ = ["default_mode", "atomic_path", "atomic_write", "input_files", "refuse_input"]


def default_mode(folder: bool = False) -> int:
    """Permission bits a new file (or folder) gets under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def _check_target(path: str | PathLike, overwrite: bool) -> tuple[Path, list[Path]]:
    """The target, and the folders made for it (innermost first; removed again when the write fails)."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder, not a file")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} already exists (use overwrite=True to replace it)")
    above = next((q for q in p.parents if q.exists()), None)
    if above is not None and not above.is_dir():
        raise NotADirectoryError(f"{above} is a file, not a folder: cannot write {p}")
    made = [q for q in p.parents if not q.exists()]
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _naming(exc, p) from None
    return p, made


def _naming(exc: OSError, target: Path) -> OSError:
    """The same kind of error, naming the target instead of a temporary file: ``[Errno 28] No space ...: 'target'``.

    An error without an errno is returned as it is.
    """
    if exc.errno is None:
        return exc
    return OSError(exc.errno, os.strerror(exc.errno), str(target))  # OSError picks the subclass (PermissionError ...)


def _remove_empty(folders: list[Path]) -> None:
    for q in folders:  # innermost first; only folders made for this write and still empty
        try:
            q.rmdir()
        except OSError:
            break


@contextmanager
def atomic_path(path: str | PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    For libraries that write to a file name themselves. On an exception the
    temporary file is removed and ``path`` is left untouched.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    OSError
        A failed write (full disk, read-only folder) names ``path``, not the
        temporary file; folders made for it are removed again.
    """
    p, made = _check_target(path, overwrite)
    try:  # a short name: a long target name must not fail for its temporary file's length
        fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name[:40]}.", suffix=".tmp" + p.suffix[:12], dir=p.parent)
    except OSError as exc:
        _remove_empty(made)
        raise _naming(exc, p) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, default_mode())  # mkstemp makes 0600 files
        os.replace(tmp, p)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _remove_empty(made)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, str(tmp), tmp):
            raise _naming(exc, p) from exc
        raise


@contextmanager
def atomic_write(path: str | PathLike, *, overwrite: bool = False, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` that replaces ``path`` when the block ends.

    Parameters
    ----------
    path
        The target file.
    overwrite
        Replace an existing file.
    mode
        ``"w"`` (text, UTF-8, ``newline=""``) or ``"wb"`` (binary).

    Yields
    ------
    file object
        Write to it; on an exception it is closed and removed, and ``path`` is
        left untouched.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    ValueError
        For a mode other than ``"w"`` or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, overwrite=overwrite) as tmp:
        if mode == "w":
            fh: IO[Any] = open(tmp, "w", encoding="utf-8", newline="")
        else:
            fh = open(tmp, "wb")
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def input_files(adata: Any) -> set[Path]:
    """The files a section was read from: the path opened, its counts file and its H&E (resolved)."""
    uns = getattr(adata, "uns", None) or {}
    info, spatial = uns.get("senca_input"), uns.get("spatial")
    names = [info.get(k) for k in ("opened", "path", "counts_path")] if isinstance(info, dict) else []
    if isinstance(spatial, dict):
        for entry in spatial.values():
            meta = entry.get("metadata") if isinstance(entry, dict) else None
            if isinstance(meta, dict):
                names.append(meta.get("source_image_path"))
    out = set()
    for name in names:
        if isinstance(name, str) and name:
            p = Path(name).expanduser()
            if p.is_file():
                out.add(p.resolve())
    return out


def refuse_input(adata: Any, path: str | PathLike) -> None:
    """Raise :class:`~napari_senca.errors.OutputError` when ``path`` is a file the section was read from.

    Writing over it would replace the user's input with an export of one view
    of it (an ``.h5ad`` keeps one library and downscaled images; a CSV is not
    an ``.h5ad`` at all).
    """
    from ..errors import OutputError

    p = Path(path).expanduser()
    if p.exists() and p.resolve() in input_files(adata):
        raise OutputError(f"{p}: the section was read from this file; choose another name (it is not replaced)")
