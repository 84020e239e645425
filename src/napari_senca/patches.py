"""H&E patches around each spot (paper section 3.3).

The patch radius is ``patch_radius_spacings`` times the median nearest-spot
distance (3 by default: up to the third-degree neighbour). Patches are cut from
the image already held in the section (it is never read from disk again),
padded with the image's border colour where they cross the edge, and resized
to ``patch_size`` pixels. A section that references a full-resolution slide
is read lazily, batch by batch, from the appropriate pyramid level.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from anndata import AnnData
from PIL import Image

from .errors import DataError
from .section import fullres_reference, get_image, get_image_levels, spot_spacing

__all__ = ["patch_radius_px", "extract_patches", "iter_patches", "iter_level_patches", "pick_level"]


def patch_radius_px(adata: AnnData, radius_spacings: float = 3.0) -> float:
    """Patch radius in image pixels of the section's H&E."""
    img = get_image(adata)
    if img is None:
        raise DataError(_src(adata), "the section has no H&E image")
    return float(radius_spacings * spot_spacing(adata) * img[1])


def pick_level(levels: list[tuple[Any, float]], diameter: float, size: int) -> tuple[Any, float]:
    """The coarsest level on which a window of ``diameter`` spot-coordinate units still spans ``size`` px."""
    ok = [lv for lv in levels if diameter * lv[1] >= size]
    return ok[-1] if ok else levels[0]


def iter_patches(
    adata: AnnData, radius_spacings: float = 3.0, size: int = 224, batch: int = 256
) -> Iterator[np.ndarray]:
    """Yield ``(b, size, size, 3)`` uint8 batches of patches, in spot order.

    A section that references a full-resolution slide
    (:func:`~napari_senca.section.get_image_levels`) is read window by window
    from the coarsest pyramid level that still gives ``size`` px per patch
    (:func:`iter_level_patches`); otherwise patches are cut from the image in memory.
    """
    levels = get_image_levels(adata) if fullres_reference(adata) is not None else []
    if levels:
        level, f = pick_level(levels, 2 * radius_spacings * spot_spacing(adata), size)
        yield from iter_level_patches(adata, level, f, radius_spacings, size, batch)
        return
    found = get_image(adata)
    if found is None:
        raise DataError(_src(adata), "the section has no H&E image")
    image, scalef = found
    h, w = image.shape[:2]
    r = max(1, int(round(radius_spacings * spot_spacing(adata) * scalef)))
    centres = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2] * scalef
    # pad once with the median border colour so that every crop is in range
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    fill = np.median(border, axis=0).astype(np.uint8)
    padded = np.empty((h + 2 * r, w + 2 * r, 3), dtype=np.uint8)
    padded[:] = fill
    padded[r : r + h, r : r + w] = image[..., :3]
    n = len(centres)
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        out = np.empty((stop - start, size, size, 3), dtype=np.uint8)
        for j, (cx, cy) in enumerate(centres[start:stop]):
            x0 = int(round(cx))  # padded coordinates: centre + r - r
            y0 = int(round(cy))
            crop = padded[y0 : y0 + 2 * r, x0 : x0 + 2 * r]
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


def _src(adata: AnnData) -> str | None:
    return adata.uns.get("senca_input", {}).get("path") or None
