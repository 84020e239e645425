"""The full-resolution H&E of a SpatialData store, referenced and read lazily.

:func:`~napari_senca.io.spatialdata_store.read_spatialdata` keeps an
in-memory level of about 2,000 px (``hires``). When the store holds a finer
image (a Visium HD slide of 20,000-60,000 px), the section also records a
reference to it, as for a whole-slide TIFF (:mod:`napari_senca.io.slide`):
patches are then read from the store's own pyramid, window by window, and
napari shows it as a multiscale image; the section never holds a copy.

The levels are read with zarr and dask directly (the OME-NGFF layout
``images/<element>/<level>`` of ``(c, y, x)`` arrays), so a section saved as
``.h5ad`` opens its store again without the ``spatialdata`` extra.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from ...errors import DataError

__all__ = ["KIND", "store_image_reference", "store_reference_problem", "open_store_levels"]

#: ``kind`` of a reference to an image element of a SpatialData store (a TIFF reference has none)
KIND = "spatialdata"


def store_image_reference(store: Path, element: str, width: int, height: int, scalef: float) -> dict[str, Any]:
    """A reference to image ``element`` of ``store`` (finest level ``width`` x ``height``) for ``uns``.

    ``scalef``: pixels of the finest level per ``obsm["spatial"]`` unit.
    """
    return {"kind": KIND, "path": str(Path(store).expanduser().absolute()), "element": str(element),
            "width": int(width), "height": int(height), "scalef": float(scalef)}  # fmt: skip


def _element_dir(ref: dict[str, Any]) -> Path:
    return Path(str(ref["path"])) / "images" / str(ref.get("element", ""))


def _level_arrays(folder: Path) -> list[Any]:
    """The element's levels as zarr arrays ``(c, y, x)``, finest first (metadata only)."""
    import zarr

    try:
        group = zarr.open_group(str(folder), mode="r")
        keys = sorted(group.array_keys(), key=lambda k: int(re.sub(r"\D", "", k) or 0))
        arrays = [group[k] for k in keys]
    except Exception as exc:  # zarr raises many types on broken stores
        raise DataError(folder, f"cannot open the image levels ({str(exc).strip().splitlines()[0][:200]})") from None
    arrays = [a for a in arrays if a.ndim == 3]
    if not arrays:
        raise DataError(folder, "no (c, y, x) image level")
    return sorted(arrays, key=lambda a: -int(a.shape[-1]))


def store_reference_problem(ref: dict[str, Any]) -> str | None:
    """Why a store reference cannot be opened (moved, changed), or None when it can (metadata only)."""
    folder = _element_dir(ref)
    if not folder.is_dir():
        return f"the image {ref.get('element')!r} of {ref.get('path')} is not there (moved or deleted)"
    try:
        finest = _level_arrays(folder)[0]
    except DataError as exc:
        return str(exc)
    if (int(finest.shape[-2]), int(finest.shape[-1])) != (int(ref.get("height", -1)), int(ref.get("width", -1))):
        return f"the image {ref.get('element')!r} of {ref.get('path')} has changed since the section was read"
    return None


def open_store_levels(ref: dict[str, Any]) -> list[Any]:
    """The referenced image's levels as lazy ``(H, W, 3)`` uint8 dask arrays, finest first.

    As :func:`napari_senca.io.slide.open_levels`: coarser 2x mean-pooled levels
    are added on demand down to about 2,000 px; nothing is decoded here.
    """
    folder = _element_dir(ref)
    try:
        stamp = folder.stat().st_mtime_ns
    except OSError:
        raise DataError(folder, "image element not found") from None
    return list(_open_cached(str(folder), stamp))


@functools.lru_cache(maxsize=8)
def _open_cached(folder: str, _stamp: int) -> tuple[Any, ...]:
    from ..slide import _add_coarse_levels, _as_yxc

    p = Path(folder)
    return tuple(_add_coarse_levels([_as_yxc(a, "CYX", p) for a in _level_arrays(p)]))
