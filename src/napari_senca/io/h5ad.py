"""Sections saved as AnnData ``.h5ad`` files (read, and atomic write).

An ``.h5ad`` never holds a copy of a gigapixel H&E: :func:`write_h5ad` stores
images of at most Space Ranger's sizes (:data:`STORED_IMAGE_SIDE`: ``hires``
2000 px, ``lowres`` 600 px on the longer side), downscaled with matching
``tissue_<key>_scalef`` scale factors so spots stay on the same tissue, plus
the path of the full-resolution file in
``uns["spatial"][library]["metadata"]["source_image_path"]`` when it is known.
A section whose full-resolution slide is read lazily keeps its reference
(``metadata["fullres_image"]``: path, size, header hash; see
:mod:`napari_senca.io.slide`); :func:`read_h5ad` re-opens it lazily through
:func:`~napari_senca.section.get_image_levels`, or warns when the file moved or
changed and the stored images are used instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import DataError
from ..notes import add_warning
from ..section import as_rgb_uint8, fullres_reference, library_id, validate_section
from .slide import reference_problem

__all__ = [
    "read_h5ad",
    "write_h5ad",
    "compact_spatial",
    "STORED_IMAGE_SIDE",
    "SOURCE_IMAGE_KEY",
    "LIBRARY_COLUMN",
]

#: Longest side (px) of each image stored in an ``.h5ad``; other keys (``fullres``) become ``hires``.
STORED_IMAGE_SIDE = {"hires": 2000, "lowres": 600}
#: ``metadata`` key naming the full-resolution image file a stored image was made from.
SOURCE_IMAGE_KEY = "source_image_path"
#: ``obs`` column naming each spot's library (section) in a file holding several (squidpy's convention).
LIBRARY_COLUMN = "library_id"


def read_h5ad(path: str | PathLike, *, library: str | None = None) -> AnnData:
    """Read a section saved as ``.h5ad`` and check it follows the section convention.

    Parameters
    ----------
    path
        An ``.h5ad`` file (e.g. written by :func:`write_h5ad`, scanpy or squidpy).
    library
        The library (section) to read when ``uns["spatial"]`` holds several:
        only its image is kept, and only its spots (those whose
        ``obs["library_id"]`` names it). Needed for such a file, unless all
        its spots belong to one library; optional otherwise (it must then be
        the file's library).

    Returns
    -------
    AnnData
        The section, loaded into memory. ``uns["senca_input"]`` is added when
        the file has none.

    Raises
    ------
    DataError
        Missing or unreadable file, or one that is not a valid section
        (no ``obsm["spatial"]``, bad counts, spots outside the image...);
        several libraries and no ``library`` (the message lists them), an
        unknown ``library``, or spots that cannot be assigned to it.
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
    adata = _select_library(adata, p, library)
    validate_section(adata, p)
    if "senca_input" not in adata.uns:
        adata.uns["senca_input"] = {
            "path": str(p),
            "format": "h5ad",
            "library_id": library_id(adata) or p.stem,
        }
    ref = fullres_reference(adata)
    problem = reference_problem(ref) if ref is not None else None
    if problem is not None:
        add_warning(
            adata,
            f"{p}: {problem}; using the stored images (hires / lowres) instead; give the slide again as the "
            "image (--image) to read it",
        )
    return adata


def _select_library(adata: AnnData, p: Path, library: str | None) -> AnnData:
    """``adata`` reduced to one library (its ``uns["spatial"]`` entry and its spots).

    The libraries are the entries of ``uns["spatial"]`` and the values of
    ``obs["library_id"]``. A file with at most one is returned as it is
    (``library``, when given, must name it); one with several needs ``library``,
    unless every spot belongs to the same one.
    """
    spatial = adata.uns.get("spatial")
    uns_libs = [str(k) for k in spatial] if isinstance(spatial, dict) else []
    used = _used_libraries(adata)
    libs = uns_libs + [lib for lib in used if lib not in uns_libs]
    if library is None:
        if len(libs) < 2:
            return adata
        if len(used) != 1:
            where = 'uns["spatial"]' if len(uns_libs) > 1 else f'obs["{LIBRARY_COLUMN}"]'
            raise DataError(
                p,
                f"{len(libs)} libraries (sections) in {where} ({', '.join(libs)}): choose one "
                "(--section on the command line, the section field of the Load widget, section= in read_section)",
            )
        library = used[0]  # every spot belongs to one library
    if library not in libs:
        raise DataError(p, f"no library {library!r} in the file (libraries: {', '.join(libs) or 'none'})")
    if library in uns_libs:
        adata.uns["spatial"] = {library: spatial[library]}
    elif uns_libs:  # the stored images belong to other libraries
        del adata.uns["spatial"]
    return _library_spots(adata, p, library, len(libs))


def _used_libraries(adata: AnnData) -> list[str]:
    """The values of ``obs["library_id"]`` in order of appearance (none without the column)."""
    if LIBRARY_COLUMN not in adata.obs:
        return []
    return list(dict.fromkeys(adata.obs[LIBRARY_COLUMN].astype(str).tolist()))


def _library_spots(adata: AnnData, p: Path, library: str, n_libs: int) -> AnnData:
    """The spots of ``library`` (by ``obs["library_id"]``); all spots for a one-library file without the column."""
    if LIBRARY_COLUMN not in adata.obs:
        if n_libs > 1:
            raise DataError(
                p,
                f'no obs["{LIBRARY_COLUMN}"] column says which spots belong to library {library!r} '
                f'({n_libs} libraries in uns["spatial"])',
            )
        return adata
    keep = adata.obs[LIBRARY_COLUMN].astype(str).to_numpy() == library
    if not keep.any():
        raise DataError(p, f'no spot belongs to library {library!r} (obs["{LIBRARY_COLUMN}"])')
    return adata if keep.all() else adata[keep].copy()


def write_h5ad(adata: AnnData, path: str | PathLike, *, overwrite: bool = False) -> Path:
    """Write ``adata`` to ``path`` atomically.

    The data are written to a temporary file in the same folder, which then
    replaces ``path`` in one step, so a crash never leaves a half-written file.
    Images larger than Space Ranger's are stored downscaled (see
    :func:`compact_spatial`); ``adata`` itself is not changed.

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
    OSError
        ``ENOSPC`` naming ``path`` when its disk has too little space (checked
        before HDF5 starts: it can crash the process on a full disk).

    Notes
    -----
    With pandas >= 3 every string column and index is a pandas string array,
    which anndata (0.11-0.12) refuses to write unless
    ``anndata.settings.allow_write_nullable_strings`` is on; it is switched on
    for this write only (such files need anndata >= 0.11 to read).
    """
    from ..export import atomic_path

    p = Path(path)
    spatial = adata.uns.get("spatial")
    compact = compact_spatial(spatial) if isinstance(spatial, dict) else spatial
    _check_free_space(adata, p, {**adata.uns, "spatial": compact})
    with atomic_path(p, overwrite=overwrite) as tmp:
        if isinstance(spatial, dict):
            adata.uns["spatial"] = compact
        try:
            with string_arrays_allowed():
                adata.write_h5ad(tmp)
        finally:
            if isinstance(spatial, dict):
                adata.uns["spatial"] = spatial
    return p


def string_arrays_allowed() -> Any:
    """A context in which anndata writes pandas string arrays (pandas >= 3's default for text)."""
    import contextlib

    import anndata

    settings = getattr(anndata, "settings", None)
    if settings is None or not hasattr(settings, "allow_write_nullable_strings"):
        return contextlib.nullcontext()  # anndata < 0.11: pandas < 3, no such arrays by default
    return settings.override(allow_write_nullable_strings=True)


def compact_spatial(spatial: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``uns["spatial"]`` whose images are no larger than :data:`STORED_IMAGE_SIDE`.

    Parameters
    ----------
    spatial
        ``uns["spatial"]``: ``{library_id: {"images", "scalefactors", "metadata"}}``.

    Returns
    -------
    dict
        New dictionaries (``spatial`` is not modified; images that are small
        enough are shared, not copied). ``hires`` and ``lowres`` images are
        downscaled to at most 2000 and 600 px on the longer side, and their
        ``tissue_<key>_scalef`` multiplied by the same factor. Any other image
        (``fullres``) is stored as ``hires`` when there is none, else left out;
        the full-resolution file stays named in ``metadata["source_image_path"]``
        when the reader recorded it.
    """
    out: dict[str, Any] = {}
    for lib, entry in spatial.items():
        if not isinstance(entry, dict):
            out[lib] = entry
            continue
        images = dict(entry.get("images") or {})
        sf = dict(entry.get("scalefactors") or {})
        kept: dict[str, Any] = {}
        for key in sorted(images, key=lambda k: k not in STORED_IMAGE_SIDE):  # hires / lowres first
            target = key if key in STORED_IMAGE_SIDE else "hires"
            scale = float(sf.pop(f"tissue_{key}_scalef", 1.0))
            if target in kept:
                continue  # a second candidate for "hires": the stored one is enough
            small, factor = _downscale(images[key], STORED_IMAGE_SIDE[target])
            kept[target] = small
            sf[f"tissue_{target}_scalef"] = scale * factor
        out[lib] = {**entry, "images": kept, "scalefactors": sf, "metadata": dict(entry.get("metadata") or {})}
    return out


def _downscale(image: Any, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk so its longer side is at most ``max_side``, and the factor applied (new / old px)."""
    arr = np.asarray(image)
    if arr.ndim < 2 or max(arr.shape[:2]) <= max_side:
        return arr, 1.0
    from PIL import Image

    h, w = arr.shape[:2]
    f = max_side / max(h, w)
    nw, nh = max(1, round(w * f)), max(1, round(h * f))
    small = Image.fromarray(as_rgb_uint8(arr)).resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(small), nw / w


def _nbytes(value: Any) -> int:
    """Bytes an array, sparse matrix, frame or nested mapping of them holds (0 for anything else)."""
    import scipy.sparse as sp

    if sp.issparse(value):
        return sum(int(getattr(value, a).nbytes) for a in ("data", "indices", "indptr") if hasattr(value, a))
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(index=True, deep=True).sum())
    if isinstance(value, Mapping):
        return sum(_nbytes(v) for v in value.values())
    return 0


def _check_free_space(adata: AnnData, path: Path, uns: Mapping[str, Any]) -> None:
    """Raise ``OSError(ENOSPC)`` naming ``path`` when its disk cannot hold the file.

    HDF5 does not fail cleanly on a full disk: the library can crash the
    process while closing the file (and napari with it, unsaved review edits
    included), so the space is checked before it starts: the section's
    arrays, frames and images (uncompressed, as written) plus 10 % and 4 MB.
    """
    import errno
    import shutil

    folder = next((q for q in (path.parent, *path.parent.parents) if q.exists()), None)
    if folder is None:
        return
    parts = [adata.X, adata.obs, adata.var, *adata.layers.values(), *adata.obsm.values(), *adata.varm.values(),
             *adata.obsp.values(), uns]  # fmt: skip
    need = int(1.1 * sum(_nbytes(v) for v in parts)) + (4 << 20)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OSError(errno.ENOSPC, f"not enough free space ({free >> 20} MB free, about {need >> 20} MB needed)",
                      str(path))
