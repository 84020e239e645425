"""H&E patches around each spot (paper section 3.3).

The patch radius is ``patch_radius_spacings`` times the median nearest-spot
distance (3 by default: up to the third-degree neighbour), so the patch
follows the physical spot spacing. Patches are cut from the section's image
levels (:func:`image_levels`: the full-resolution pyramid when the section
refers to one, else the image held in the section). The coarsest level on
which a patch still spans ``size`` pixels is used, and only windows are
sliced out of it (a level may be a lazy zarr/dask array: it is never read
whole). Windows that cross the edge are padded with the image's border
colour, and resized to ``size`` pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from anndata import AnnData
from PIL import Image

from .errors import DataError
from .section import get_image, spot_spacing

__all__ = [
    "patch_radius_px",
    "extract_patches",
    "iter_patches",
    "image_levels",
    "choose_level",
    "border_colour",
    "read_window",
]


def image_levels(adata: AnnData) -> list[tuple[Any, float]]:
    """The section's H&E levels, finest first: ``(array_like (H, W, 3), factor full-res -> level px)``.

    :func:`napari_senca.section.get_image_levels` when the section module has
    it (lazy full-resolution pyramids), else the in-memory image alone.
    """
    from . import section

    levels = getattr(section, "get_image_levels", None)
    if levels is not None:
        return list(levels(adata))
    found = get_image(adata)
    return [] if found is None else [found]


def choose_level(levels: list[tuple[Any, float]], radius_full: float, size: int) -> tuple[Any, float]:
    """The coarsest level on which a patch of radius ``radius_full`` (full-res px) spans ``size`` px.

    The finest level when none does (the patch is then enlarged).
    """
    if not levels:
        raise ValueError("no image levels")
    ok = [lv for lv in levels if 2.0 * radius_full * lv[1] >= size]
    return min(ok, key=lambda lv: lv[1]) if ok else max(levels, key=lambda lv: lv[1])


def border_colour(image: Any) -> np.ndarray:
    """Median colour of the image's outermost rows and columns, ``(3,)`` uint8."""
    parts = [np.asarray(image[0]), np.asarray(image[-1]), np.asarray(image[:, 0]), np.asarray(image[:, -1])]
    border = np.concatenate([p[..., :3] for p in parts])
    return np.median(border, axis=0).astype(np.uint8)


def read_window(image: Any, y0: int, x0: int, h: int, w: int, fill: np.ndarray) -> np.ndarray:
    """``image[y0:y0+h, x0:x0+w, :3]`` as uint8, padded with ``fill`` outside the image.

    Only the part inside the image is sliced (``image`` may be lazy).
    """
    out = np.empty((h, w, 3), dtype=np.uint8)
    out[:] = fill
    ih, iw = image.shape[:2]
    ya, yb, xa, xb = max(0, y0), min(ih, y0 + h), max(0, x0), min(iw, x0 + w)
    if ya < yb and xa < xb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = np.asarray(image[ya:yb, xa:xb])[..., :3]
    return out


def patch_radius_px(adata: AnnData, radius_spacings: float = 3.0) -> float:
    """Patch radius in image pixels of the section's H&E."""
    img = get_image(adata)
    if img is None:
        raise DataError(_src(adata), "the section has no H&E image")
    return float(radius_spacings * spot_spacing(adata) * img[1])


def iter_patches(
    adata: AnnData, radius_spacings: float = 3.0, size: int = 224, batch: int = 256
) -> Iterator[np.ndarray]:
    """Yield ``(b, size, size, 3)`` uint8 batches of patches, in spot order."""
    levels = image_levels(adata)
    if not levels:
        raise DataError(_src(adata), "the section has no H&E image")
    radius_full = radius_spacings * spot_spacing(adata)
    image, scalef = choose_level(levels, radius_full, size)
    r = max(1, int(round(radius_full * scalef)))
    centres = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2] * scalef
    fill = border_colour(image)
    n = len(centres)
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        out = np.empty((stop - start, size, size, 3), dtype=np.uint8)
        for j, (cx, cy) in enumerate(centres[start:stop]):
            crop = read_window(image, int(round(cy)) - r, int(round(cx)) - r, 2 * r, 2 * r, fill)
            if crop.shape[0] != size or crop.shape[1] != size:
                crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))
            out[j] = crop
        yield out


def extract_patches(adata: AnnData, radius_spacings: float = 3.0, size: int = 224) -> np.ndarray:
    """All patches as one ``(n_spots, size, size, 3)`` uint8 array."""
    batches = list(iter_patches(adata, radius_spacings, size))
    return np.concatenate(batches, axis=0)


def _src(adata: AnnData) -> str | None:
    return adata.uns.get("senca_input", {}).get("path") or None
