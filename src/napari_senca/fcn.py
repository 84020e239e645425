"""Fully convolutional patch encoding for CNN encoders (issue 10, item 2).

Patches of radius 3 spacings around neighbouring spots overlap about 36-fold,
so encoding each patch on its own computes every pixel's features many times.
Here the CNN trunk runs once over the image, resampled so that one patch
spans the encoder's input size, in tiles (with a margin of half a patch plus
some context, so that every spot window lies inside its tile's feature map);
each spot's feature is then the average of the feature map over its window
(:func:`window_means`: ``torchvision.ops.roi_align`` with a k x k grid
averaged, k = size / stride, without importing torchvision), which is what
the CNN's global average pooling does on a single patch. Only
windows of the chosen image level are read (lazy levels stay lazy); each
window is reduced by an integer block mean in row strips and then resized
(bilinear), so that memory is bounded by one tile.

The features differ from per-patch encoding only where zero padding at a
patch's edge and real context differ; docs/benchmarks.md gives the agreement
(feature correlation and ARI) and the speed-up.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import torch
from PIL import Image

from .patches import border_colour, choose_level, read_window

__all__ = ["encode_fcn", "read_scaled", "tile_plan", "window_means"]

#: level pixels read per strip before the block mean (bounds memory on whole-slide levels)
_STRIP_PX = 8_000_000


def read_scaled(image: Any, y0: int, x0: int, h: int, w: int, scale: float, fill: np.ndarray) -> np.ndarray:
    """The level window ``[y0, y0+h) x [x0, x0+w)`` resampled by ``scale`` (output ``round(h*scale)`` rows).

    Downscaling by more than 2 first takes an integer block mean (strip by
    strip, so a whole-slide window is never held at full resolution), then a
    bilinear resize to the exact size.
    """
    oh, ow = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    q = max(1, int(1.0 / scale)) if scale < 0.5 else 1
    if q > 1:
        hq, wq = h // q, w // q
        rows = max(1, (_STRIP_PX // max(w * q, 1))) * q  # level rows per strip, a multiple of q
        reduced = np.empty((hq, wq, 3), dtype=np.uint8)
        for ys in range(0, hq * q, rows):
            ye = min(hq * q, ys + rows)
            strip = read_window(image, y0 + ys, x0, ye - ys, wq * q, fill).astype(np.float32)
            blocks = strip.reshape((ye - ys) // q, q, wq, q, 3).mean(axis=(1, 3))
            reduced[ys // q : ye // q] = np.clip(np.rint(blocks), 0, 255).astype(np.uint8)
        src = reduced
    else:
        src = read_window(image, y0, x0, h, w, fill)
    if src.shape[:2] == (oh, ow):
        return src
    return np.asarray(Image.fromarray(src).resize((ow, oh), Image.BILINEAR))


def _axis_weights(lo: np.ndarray, hi: np.ndarray, k: int, size: int) -> np.ndarray:
    """``(n, size)``: each window's mean bilinear weights along one axis, over its 2k samples.

    ``lo``/``hi`` are window edges in feature-map px (pixel i covers [i, i+1)).
    As ``roi_align(aligned=True, sampling_ratio=2)``: samples at the centres of
    2k equal steps, clamped to the edge pixels within one pixel of the map,
    weightless beyond.
    """
    n, s = len(lo), 2 * k
    pos = (lo - 0.5)[:, None] + (np.arange(s) + 0.5)[None, :] * ((hi - lo) / s)[:, None]  # (n, 2k) pixel-centre coordinates
    valid = (pos >= -1.0) & (pos <= size)
    p = np.clip(pos, 0.0, size - 1.0)
    low = np.minimum(np.floor(p).astype(np.int64), size - 1)
    frac = np.where(low >= size - 1, 0.0, p - low)
    high = np.minimum(low + 1, size - 1)
    w = np.zeros((n, size))
    rows = np.repeat(np.arange(n), s)
    np.add.at(w, (rows, low.ravel()), ((1.0 - frac) * valid).ravel() / s)
    np.add.at(w, (rows, high.ravel()), (frac * valid).ravel() / s)
    return w


def window_means(fmap: torch.Tensor, boxes: np.ndarray, k: int, chunk: int = 256) -> torch.Tensor:
    """Mean of ``fmap`` (C, H, W) over each box, sampled bilinearly on a 2k x 2k grid -> (n, C).

    ``boxes``: ``(n, 4)`` ``x1, y1, x2, y2`` in feature-map px. The same values
    as ``torchvision.ops.roi_align(..., (k, k), sampling_ratio=2, aligned=True)``
    averaged over its k x k bins (tested against it): the samples form a grid,
    so their mean is separable into one weight vector per axis.
    """
    _, h, w = fmap.shape
    wy = torch.as_tensor(_axis_weights(boxes[:, 1], boxes[:, 3], k, h), dtype=fmap.dtype, device=fmap.device)  # (n, H)
    wx = torch.as_tensor(_axis_weights(boxes[:, 0], boxes[:, 2], k, w), dtype=fmap.dtype, device=fmap.device)  # (n, W)
    out = [torch.einsum("chw,nw->nch", fmap, wx[i : i + chunk]).mul_(wy[i : i + chunk, None, :]).sum(-1)
           for i in range(0, len(boxes), chunk)]  # (chunk, C) each
    return torch.cat(out) if out else fmap.new_zeros((0, fmap.shape[0]))


def tile_plan(centres: np.ndarray, half: float, tile: float) -> list[tuple[float, float, np.ndarray]]:
    """Tiles (core origin y, x in level px, spot indices) covering ``centres`` with cores of side ``tile``.

    Each spot belongs to the tile whose core holds its centre; empty tiles are left out.
    """
    lo = centres.min(0) - 1e-6
    cell = np.floor((centres - lo) / tile).astype(np.int64)
    plan = []
    for cy in np.unique(cell[:, 1]):
        for cx in np.unique(cell[cell[:, 1] == cy, 0]):
            idx = np.flatnonzero((cell[:, 0] == cx) & (cell[:, 1] == cy))
            plan.append((lo[1] + cy * tile, lo[0] + cx * tile, idx))
    return plan


def encode_fcn(
    levels: list[tuple[Any, float]],
    xy_full: np.ndarray,
    radius_full: float,
    encoder: Any,
    size: int,
    device: torch.device,
    tile_px: int = 1536,
) -> Generator[tuple[int, int], None, np.ndarray]:
    """Features of every spot window from one convolutional pass per tile; yields ``(tile, tiles)``.

    Parameters
    ----------
    levels
        Image levels, ``(array_like, factor full-res -> level px)``.
    xy_full
        ``(n, 2)`` spot centres in full-res pixels.
    radius_full
        Patch radius in full-res pixels.
    encoder
        A backbone with ``stride``, ``normalise`` and ``feature_map`` (a CNN).
    size
        Side a patch is resampled to (the encoder's input size).
    tile_px
        Core side of a tile in encoder pixels.

    Returns
    -------
    numpy.ndarray
        ``(n, F)`` float32 features, in spot order.
    """
    image, f = choose_level(levels, radius_full, size)
    fill = border_colour(image)
    r_lvl = radius_full * f  # patch radius in level px
    scale = size / (2.0 * r_lvl)  # level px -> encoder px
    stride = int(encoder.stride)
    k = max(1, int(round(size / stride)))
    margin = r_lvl + 2.0 * stride / scale  # level px around a core: half a patch + context
    centres = np.asarray(xy_full, dtype=np.float64)[:, :2] * f
    plan = tile_plan(centres, r_lvl, tile_px / scale)
    feats: np.ndarray | None = None
    for t, (_, _, idx) in enumerate(plan):
        c = centres[idx]  # the tile's read window: its spots' extent plus the margin
        y0, x0 = int(math.floor(c[:, 1].min() - margin)), int(math.floor(c[:, 0].min() - margin))
        h = int(math.ceil(c[:, 1].max() + margin)) - y0
        w = int(math.ceil(c[:, 0].max() + margin)) - x0
        tile = read_scaled(image, y0, x0, h, w, scale, fill)
        sy, sx = tile.shape[0] / h, tile.shape[1] / w  # exact scale after rounding
        with torch.no_grad():
            x = encoder.normalise(torch.from_numpy(np.require(tile, requirements=["C", "W"])).unsqueeze(0).to(device))
            fmap = encoder.feature_map(x)  # (1, F, h', w')
            boxes = np.stack(
                [
                    np.zeros(len(idx)),
                    (c[:, 0] - r_lvl - x0) * sx,
                    (c[:, 1] - r_lvl - y0) * sy,
                    (c[:, 0] + r_lvl - x0) * sx,
                    (c[:, 1] + r_lvl - y0) * sy,
                ],
                1,
            )
            out = window_means(fmap[0], boxes[:, 1:] / stride, k).float().cpu().numpy()
        if feats is None:
            feats = np.zeros((len(centres), out.shape[1]), dtype=np.float32)
        feats[idx] = out
        yield (t + 1, len(plan))
    assert feats is not None
    return feats
