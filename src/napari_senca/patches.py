"""H&E patches around each spot (paper section 3.3).

The patch radius is ``patch_radius_spacings`` times the median nearest-spot
distance (3 by default: up to the third-degree neighbour). Patches are cut from
the image already held in the section (it is never read from disk again),
padded with the image's border colour where they cross the edge, and resized
to ``patch_size`` pixels.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from anndata import AnnData
from PIL import Image

from .errors import DataError
from .section import get_image, spot_spacing

__all__ = ["patch_radius_px", "extract_patches", "iter_patches"]


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


def extract_patches(adata: AnnData, radius_spacings: float = 3.0, size: int = 224) -> np.ndarray:
    """All patches as one ``(n_spots, size, size, 3)`` uint8 array."""
    batches = list(iter_patches(adata, radius_spacings, size))
    return np.concatenate(batches, axis=0)


def _src(adata: AnnData) -> str | None:
    return adata.uns.get("senca_input", {}).get("path") or None
