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

__all__ = ["default_mode", "atomic_path", "atomic_write"]


def default_mode(folder: bool = False) -> int:
    """Permission bits a new file (or folder) gets under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def _check_target(path: str | PathLike, overwrite: bool) -> Path:
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder, not a file")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} already exists (use overwrite=True to replace it)")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


@contextmanager
def atomic_path(path: str | PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    For libraries that write to a file name themselves. On an exception the
    temporary file is removed and ``path`` is left untouched.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    """
    p = _check_target(path, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + p.suffix, dir=p.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, default_mode())  # mkstemp makes 0600 files
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
