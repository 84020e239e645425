"""H&E patch features for the image branch (paper section 3.3).

A frozen encoder (:func:`napari_senca.model.backbone.build_backbone`: a
torchvision ResNet or any timm model) encodes every spot's patch once, at the
encoder's own input size unless ``patch_size`` says otherwise. CNN encoders
run fully convolutionally over the image and pool each spot's window
(:mod:`napari_senca.fcn`, ``image_encoding="auto"``/``"fcn"``); other encoders
(ViTs) and fine-tuning read batched patches (:mod:`napari_senca.patches`).

The features are cached in memory and on disk (:mod:`napari_senca.feature_cache`)
under a key of (image content, spot centres, encoder, weights, patch settings),
so that a second run on the same section (a new seed, an ablation, a re-run
from the widget, a new command) does not re-encode. Random weights depend on
the seed, so the seed is part of their key. Fine-tuning is never cached (the
backbone changes).

:func:`image_block` turns raw features into what the model reads and rebuilds:
standardised, reduced to principal components and scaled to the RNA input's
mean square, so that neither modality dominates a loss or a distance by scale.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from anndata import AnnData

from . import feature_cache
from .config import SencaConfig
from .image_weights import WEAK_FEATURES_NOTE, weights_are_random
from .patches import image_levels, iter_patches
from .section import spot_spacing

__all__ = [
    "ImageFeatures",
    "encode_iter",
    "feature_key",
    "clear_cache",
    "image_block",
    "standardise",
    "weights_are_random",
    "WEAK_FEATURES_NOTE",
]

_CACHE: OrderedDict[str, tuple[np.ndarray, str]] = OrderedDict()
_CACHE_SIZE = 4
#: the largest in-memory level hashed whole for the cache key (larger ones, and lazy ones, are sampled)
_HASH_PX = 64_000_000
_HASH_PX_LAZY = 4_000_000

@dataclass
class ImageFeatures:
    """Backbone features of every spot's patch."""

    feats: np.ndarray | None  # (n, F) float32; None: not encoded (random weights that would not count)
    weights_used: str
    cached: bool  # True when they came from the cache (memory or disk)
    backbone: torch.nn.Module | None = None  # kept only when fine-tuning
    patches: torch.Tensor | None = None  # (n, s, s, 3) uint8 on CPU, only when fine-tuning
    method: str = ""  # "fcn", "patches" or "skipped" ("" when cached)

    @property
    def informative(self) -> bool:
        """False when the weights were random (weak features: say so)."""
        return not weights_are_random(self.weights_used)


def _hash_levels(h: Any, adata: AnnData) -> None:
    levels = image_levels(adata)
    for arr, f in levels:
        h.update(repr((tuple(arr.shape), float(f))).encode())
    if levels:
        arr = min(levels, key=lambda lv: lv[1])[0]  # the coarsest level's pixels
        limit = _HASH_PX if isinstance(arr, np.ndarray) else _HASH_PX_LAZY
        step = 1
        while (arr.shape[0] // step) * (arr.shape[1] // step) > limit:
            step += 1
        h.update(np.ascontiguousarray(np.asarray(arr[::step, ::step])).data)


def _weights_id(weights: str) -> str:
    p = Path(weights).expanduser()
    if weights.lower() not in ("auto", "imagenet", "pretrained", "none", "random", "") and p.is_file():
        st = p.stat()
        return f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return weights


#: With a *measured* image gate (``image_gate=None``, the gated fusion), ``image_encoding="auto"`` pools a
#: fully convolutional pass above this many spots and encodes each patch below: the pooled features carry a
#: smooth spatial field that the gate reads as agreement with the expression (noise image: agreement 0.33
#: pooled vs 0.07-0.10 per patch, docs/method.md). With a fixed gate (the default) nothing reads that
#: agreement, and ``"auto"`` is always the 5-11x faster pass (same A1 accuracy, docs/benchmarks.md).
FCN_AUTO_MIN_SPOTS = 20_000


#: A CNN's patch is resampled to at most this many times its side on the image's finest level
#: (:func:`encoder_size`). DLPFC 151510 (lowres image only): 112 px instead of 224, encoding 8.7 -> 3-4.6 s
#: (whole command), ARI 0.493 / 0.498 / 0.503 (seeds 0-2) against 0.496 / 0.495 / 0.458 at 224 px.
MAX_UPSAMPLE = 3.0
#: Bumped when the features of the same settings change (old disk-cache entries are then not reused).
FEATURE_VERSION = 2


def feature_key(adata: AnnData, cfg: SencaConfig) -> str:
    """Cache key: image content, spot centres, encoder, weights, patch settings (and seed if random)."""
    h = hashlib.sha1()
    _hash_levels(h, adata)
    h.update(np.ascontiguousarray(adata.obsm["spatial"], dtype=np.float64)[:, :2].tobytes())
    w = str(cfg.image_weights)
    seeded = w.lower() in ("none", "random", "", "auto")  # 'auto' may fall back to random
    h.update(
        repr(
            (cfg.backbone, _weights_id(w), cfg.patch_radius_spacings, cfg.patch_size,
             _method(cfg, adata.n_obs), cfg.seed if seeded else None, FEATURE_VERSION)
        ).encode()
    )  # fmt: skip
    return h.hexdigest()


def _method(cfg: SencaConfig, n_spots: int) -> str:
    """``image_encoding`` with ``"auto"`` resolved for a section of ``n_spots``."""
    method = str(getattr(cfg, "image_encoding", "patches"))
    if method == "auto":  # per patch only where the measured gate (calibrated on it) reads the features
        measured_gate = getattr(cfg, "image_gate", 1.0) is None
        method = "patches" if measured_gate and n_spots <= FCN_AUTO_MIN_SPOTS else "fcn"
    return method


def clear_cache() -> None:
    """Forget every cached feature matrix, in memory and on disk."""
    _CACHE.clear()
    feature_cache.clear()


def _disk_hit_usable(used: str, cfg: SencaConfig) -> bool:
    """A disk entry is used unless it is an offline fallback and the pretrained weights may now load."""
    from .image_weights import download_failed, imagenet_cached
    from .model.backbone import RANDOM_OFFLINE, is_torchvision

    if used != RANDOM_OFFLINE or download_failed(str(cfg.backbone).removeprefix("timm:")):
        return True
    return is_torchvision(cfg.backbone) and imagenet_cached(cfg.backbone) is False


def _lookup(key: str, cfg: SencaConfig) -> tuple[np.ndarray, str] | None:
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if not getattr(cfg, "cache_features", True):
        return None
    hit = feature_cache.load(key)
    if hit is None or not _disk_hit_usable(hit[1], cfg):
        return None
    _remember(key, *hit)
    return hit


def _remember(key: str, feats: np.ndarray, used: str) -> None:
    _CACHE[key] = (feats, used)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)


def encode_iter(
    adata: AnnData, cfg: SencaConfig, device: torch.device, batch: int = 64, skip_random: bool = False
) -> Generator[tuple[int, int], None, ImageFeatures]:
    """Encode every spot's patch; yields ``(step done, steps)``, returns :class:`ImageFeatures`.

    The backbone's random initialisation (``image_weights`` 'none', or 'auto'
    offline) uses torch's global generator: seed it before calling.
    ``skip_random``: when the encoder turns out to have random weights (and the
    features are not cached), return without reading a patch (``feats`` None).
    When nothing is encoded (cached features, or skipped) the one report is ``(0, 0)``.
    """
    from .model.backbone import build_backbone

    key = feature_key(adata, cfg) if cfg.freeze_backbone else None
    hit = None if key is None else _lookup(key, cfg)
    if hit is not None:
        yield (0, 0)  # nothing to encode
        return ImageFeatures(feats=hit[0], weights_used=hit[1], cached=True)
    backbone = build_backbone(cfg.backbone, cfg.image_weights).to(device).eval()
    if skip_random and weights_are_random(backbone.weights_used):
        yield (0, 0)  # nothing to encode
        return ImageFeatures(feats=None, weights_used=backbone.weights_used, cached=False, method="skipped")
    size = encoder_size(adata, cfg, backbone)
    method = _method(cfg, adata.n_obs)
    use_fcn = cfg.freeze_backbone and backbone.stride is not None and method == "fcn"
    if use_fcn:
        from .fcn import encode_fcn

        radius = cfg.patch_radius_spacings * spot_spacing(adata)
        xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
        feats = yield from encode_fcn(image_levels(adata), xy, radius, backbone, size, device)
        method = "fcn"
    else:
        feats, kept = yield from _encode_patches(adata, cfg, backbone, size, device, batch)
        method = "patches"
        if key is None:
            return ImageFeatures(
                feats=feats, weights_used=backbone.weights_used, cached=False, backbone=backbone.train(),
                patches=torch.from_numpy(np.concatenate(kept, 0)), method=method,
            )  # fmt: skip
    assert key is not None
    _remember(key, feats, backbone.weights_used)
    if getattr(cfg, "cache_features", True):
        feature_cache.save(key, feats, backbone.weights_used)
    return ImageFeatures(feats=feats, weights_used=backbone.weights_used, cached=False, method=method)


def encoder_size(adata: AnnData, cfg: SencaConfig, backbone: torch.nn.Module) -> int:
    """Side in pixels a patch is resampled to before the encoder.

    ViTs read their own input size; ``patch_size`` when set; else the CNN's
    input size, but never more than :data:`MAX_UPSAMPLE` times the patch's
    side on the image's finest level (rounded up to 16 px, at least 32): a
    low-resolution image (DLPFC's 600 px ``tissue_lowres_image``, 37 px
    patches) is not blown up 6x into pixels it does not have.
    """
    if backbone.stride is None:
        return int(backbone.input_size)  # ViTs read their own input size
    if cfg.patch_size:
        return int(cfg.patch_size)
    finest = max(f for _, f in image_levels(adata))  # full-res px -> finest level px
    native = 2.0 * cfg.patch_radius_spacings * spot_spacing(adata) * finest
    return int(min(int(backbone.input_size), max(32, 16 * math.ceil(MAX_UPSAMPLE * native / 16))))


def _encode_patches(
    adata: AnnData, cfg: SencaConfig, backbone: torch.nn.Module, size: int, device: torch.device, batch: int
) -> Generator[tuple[int, int], None, tuple[np.ndarray, list[np.ndarray]]]:
    """Batched patches through the encoder: ``(features, the patches when fine-tuning)``."""
    n = adata.n_obs
    n_batches = (n + batch - 1) // batch
    chunks: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    with torch.no_grad():
        for i, b in enumerate(iter_patches(adata, cfg.patch_radius_spacings, size, batch)):
            chunks.append(backbone(torch.from_numpy(b).to(device)).float().cpu().numpy())
            if not cfg.freeze_backbone:
                kept.append(b)
            yield (i + 1, n_batches)
    return np.concatenate(chunks, 0), kept


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
