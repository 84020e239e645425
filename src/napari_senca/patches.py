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
from .section import get_image, source_path, spot_spacing

__all__ = [
    "patch_radius_px",
    "extract_patches",
    "iter_patches",
    "image_levels",
    "choose_level",
    "border_colour",
    "read_window",
    "iter_level_patches",
]


def image_levels(adata: AnnData) -> list[tuple[Any, float]]:
    """The section's H&E levels, finest first: ``(array_like (H, W, 3), factor full-res -> level px)``.

    :func:`napari_senca.section.get_image_levels` when the section module has
    it (lazy full-resolution pyramids), else the in-memory image alone.
    """
    from . import section  # looked up at call time (tests replace it)

    return list(section.get_image_levels(adata))


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

    Only the part inside the image is sliced (``image`` may be lazy: a dask
    window is computed synchronously, a few tiles being cheaper without its
    thread pool).
    """
    out = np.empty((h, w, 3), dtype=np.uint8)
    out[:] = fill
    ih, iw = image.shape[:2]
    ya, yb, xa, xb = max(0, y0), min(ih, y0 + h), max(0, x0), min(iw, x0 + w)
    if ya < yb and xa < xb:
        part = image[ya:yb, xa:xb]
        part = part.compute(scheduler="synchronous") if hasattr(part, "compute") else np.asarray(part)
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = part[..., :3]
    return out


def patch_radius_px(adata: AnnData, radius_spacings: float = 3.0) -> float:
    """Patch radius in image pixels of the section's H&E."""
    img = get_image(adata)
    if img is None:
        raise DataError(source_path(adata), "the section has no H&E image")
    return float(radius_spacings * spot_spacing(adata) * img[1])


def iter_patches(
    adata: AnnData, radius_spacings: float = 3.0, size: int = 224, batch: int = 256
) -> Iterator[np.ndarray]:
    """Yield ``(b, size, size, 3)`` uint8 batches of patches, in spot order.

    Patches come from the coarsest of :func:`image_levels` that still gives
    ``size`` px per patch; a lazily read level (dask) is read one bounded
    region per batch (:func:`iter_level_patches`).
    """
    levels = image_levels(adata)
    if not levels:
        raise DataError(source_path(adata), "the section has no H&E image")
    radius_full = radius_spacings * spot_spacing(adata)
    image, scalef = choose_level(levels, radius_full, size)
    if hasattr(image, "compute"):
        yield from iter_level_patches(adata, image, scalef, radius_spacings, size, batch)
        return
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


def iter_level_patches(
    adata: AnnData, level: Any, scalef: float, radius_spacings: float = 3.0, size: int = 224, batch: int = 256
) -> Iterator[np.ndarray]:
    """Patches read from a lazily read level (dask / zarr): one bounded region per batch.

    Each batch reads the bounding box of its windows once when that box has at
    most :data:`MAX_BATCH_PIXELS` pixels (spots in file order are mostly
    neighbours), else window by window; windows crossing the edge are padded
    with white. Memory stays bounded by the batch, never by the slide.
    """
    h, w = level.shape[:2]
    r = max(1, int(round(radius_spacings * spot_spacing(adata) * scalef)))
    centres = np.rint(np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2] * scalef).astype(np.int64)
    for start in range(0, len(centres), batch):
        c = centres[start : start + batch]
        x0, y0 = c[:, 0].min() - r, c[:, 1].min() - r
        x1, y1 = c[:, 0].max() + r, c[:, 1].max() + r
        region = _window(level, x0, y0, x1, y1, h, w) if (x1 - x0) * (y1 - y0) <= MAX_BATCH_PIXELS else None
        out = np.empty((len(c), size, size, 3), dtype=np.uint8)
        for j, (cx, cy) in enumerate(c):
            if region is not None:
                crop = region[cy - r - y0 : cy + r - y0, cx - r - x0 : cx + r - x0]
            else:
                crop = _window(level, cx - r, cy - r, cx + r, cy + r, h, w)
            if crop.shape[0] != size or crop.shape[1] != size:
                crop = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR))
            out[j] = crop
        yield out


#: Largest region (pixels) read at once for a batch of patches from a lazily read level (~200 MB as RGB).
MAX_BATCH_PIXELS = 64_000_000


def _window(level: Any, x0: int, y0: int, x1: int, y1: int, h: int, w: int) -> np.ndarray:
    """``level[y0:y1, x0:x1]`` as numpy, white where the window leaves the image."""
    out = np.full((y1 - y0, x1 - x0, 3), 255, dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        part = level[sy0:sy1, sx0:sx1]
        # a few tiles: dask's thread pool costs more than it saves (0.6 s vs 0.04 s for 1 Mpx here)
        part = part.compute(scheduler="synchronous") if hasattr(part, "compute") else np.asarray(part)
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = part[..., :3]
    return out


def extract_patches(adata: AnnData, radius_spacings: float = 3.0, size: int = 224) -> np.ndarray:
    """All patches as one ``(n_spots, size, size, 3)`` uint8 array."""
    batches = list(iter_patches(adata, radius_spacings, size))
    return np.concatenate(batches, axis=0)

