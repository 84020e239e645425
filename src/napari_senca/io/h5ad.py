"""Sections saved as AnnData ``.h5ad`` files (read, and atomic write)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from anndata import AnnData

from ..errors import DataError
from ..section import library_id, validate_section

__all__ = ["read_h5ad", "write_h5ad"]


def read_h5ad(path: str | PathLike) -> AnnData:
    """Read a section saved as ``.h5ad`` and check it follows the section convention.

    Parameters
    ----------
    path
        An ``.h5ad`` file (e.g. written by :func:`write_h5ad`, scanpy or squidpy).

    Returns
    -------
    AnnData
        The section, loaded into memory. ``uns["senca_input"]`` is added when
        the file has none.

    Raises
    ------
    DataError
        Missing or unreadable file, or one that is not a valid section
        (no ``obsm["spatial"]``, bad counts, spots outside the image...).
    """
    import anndata

    p = Path(path)
    if not p.is_file():
        raise DataError(p, "file not found")
    try:
        adata = anndata.read_h5ad(p)
    except Exception as exc:  # h5py / anndata raise many types on corrupt files
        msg = str(exc).strip().splitlines()
        raise DataError(p, f"not a readable .h5ad file ({msg[0] if msg else type(exc).__name__})") from None
    validate_section(adata, p)
    if "senca_input" not in adata.uns:
        adata.uns["senca_input"] = {
            "path": str(p),
            "format": "h5ad",
            "library_id": library_id(adata) or p.stem,
        }
    return adata


def write_h5ad(adata: AnnData, path: str | PathLike, *, overwrite: bool = False) -> Path:
    """Write ``adata`` to ``path`` atomically.

    The data are written to a temporary file in the same folder, which then
    replaces ``path`` in one step, so a crash never leaves a half-written file.

    Parameters
    ----------
    adata
        The section.
    path
        Target ``.h5ad`` file.
    overwrite
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.
    """
    from ..export import atomic_path

    p = Path(path)
    with atomic_path(p, overwrite=overwrite) as tmp:
        adata.write_h5ad(tmp)
    return p
