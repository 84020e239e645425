"""H&E patch features for the image branch (paper section 3.3).

A frozen backbone encodes every spot's patch once. The features are kept in a
small in-memory cache keyed by (image, spot centres, encoder, weights, patch
settings), so that a second run on the same section in the same process (a new
seed, an ablation, a re-run from the widget) does not re-encode. Random weights
depend on the seed, so the seed is part of their key. Fine-tuning is never
cached (the backbone changes).

:func:`image_block` turns raw features into what the model reads and rebuilds:
standardised, reduced to principal components and scaled to the RNA input's
mean square, so that neither modality dominates a loss or a distance by scale.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch
from anndata import AnnData

from .config import SencaConfig
from .patches import iter_patches
from .section import get_image

__all__ = ["ImageFeatures", "encode_iter", "feature_key", "clear_cache", "image_block", "standardise"]

_CACHE: OrderedDict[str, tuple[np.ndarray, str]] = OrderedDict()
_CACHE_SIZE = 4


@dataclass
class ImageFeatures:
    """Backbone features of every spot's patch."""

    feats: np.ndarray  # (n, F) float32
    weights_used: str
    cached: bool  # True when they came from the cache
    backbone: torch.nn.Module | None = None  # kept only when fine-tuning
    patches: torch.Tensor | None = None  # (n, s, s, 3) uint8 on CPU, only when fine-tuning


def feature_key(adata: AnnData, cfg: SencaConfig) -> str:
    """Cache key: image bytes, spot centres, encoder, weights, patch settings (and seed if random)."""
    found = get_image(adata)
    h = hashlib.sha1()
    if found is not None:
        image, scalef = found
        h.update(np.ascontiguousarray(image).data)
        h.update(repr((image.shape, float(scalef))).encode())
    h.update(np.ascontiguousarray(adata.obsm["spatial"], dtype=np.float64)[:, :2].tobytes())
    w = str(cfg.image_weights)
    seeded = w.lower() in ("none", "random", "", "auto")  # 'auto' may fall back to random
    h.update(repr((cfg.backbone, w, cfg.patch_radius_spacings, cfg.patch_size, cfg.seed if seeded else None)).encode())
    return h.hexdigest()


def clear_cache() -> None:
    """Forget every cached feature matrix."""
    _CACHE.clear()


def encode_iter(
    adata: AnnData, cfg: SencaConfig, device: torch.device, batch: int = 64
) -> Generator[tuple[int, int], None, ImageFeatures]:
    """Encode every spot's patch; yields ``(batch done, batches)``, returns :class:`ImageFeatures`.

    The backbone's random initialisation (``image_weights`` 'none', or 'auto'
    offline) uses torch's global generator: seed it before calling.
    """
    from .model.backbone import build_backbone

    key = feature_key(adata, cfg) if cfg.freeze_backbone else None
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        feats, used = _CACHE[key]
        yield (1, 1)
        return ImageFeatures(feats=feats, weights_used=used, cached=True)
    backbone = build_backbone(cfg.backbone, cfg.image_weights).to(device).eval()
    n = adata.n_obs
    n_batches = (n + batch - 1) // batch
    chunks: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    with torch.no_grad():
        for i, b in enumerate(iter_patches(adata, cfg.patch_radius_spacings, cfg.patch_size, batch)):
            chunks.append(backbone(torch.from_numpy(b).to(device)).float().cpu().numpy())
            if not cfg.freeze_backbone:
                kept.append(b)
            yield (i + 1, n_batches)
    feats = np.concatenate(chunks, 0)  # (n, F)
    if key is None:
        return ImageFeatures(
            feats=feats, weights_used=backbone.weights_used, cached=False,
            backbone=backbone.train(), patches=torch.from_numpy(np.concatenate(kept, 0)),
        )
    _CACHE[key] = (feats, backbone.weights_used)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return ImageFeatures(feats=feats, weights_used=backbone.weights_used, cached=False)


def standardise(f: np.ndarray) -> np.ndarray:
    """Columns to zero mean and unit variance (constant columns become 0)."""
    f = np.asarray(f, dtype=np.float64)
    sd = f.std(0)
    return ((f - f.mean(0)) / np.where(sd > 1e-8, sd, 1.0)).astype(np.float32)


def image_block(feats: np.ndarray, n_components: int, mean_square: float, seed: int) -> np.ndarray:
    """Standardised features -> first ``n_components`` PCs with mean square ``mean_square`` per entry.

    ``n_components = 0`` keeps every standardised feature (same scaling).
    """
    from sklearn.decomposition import PCA

    z = standardise(feats)
    if n_components:
        k = min(n_components, *z.shape)
        z = PCA(k, random_state=seed).fit_transform(z).astype(np.float32)
    ms = float((z.astype(np.float64) ** 2).mean())
    return np.ascontiguousarray(z * np.sqrt(mean_square / max(ms, 1e-12)), dtype=np.float32)
