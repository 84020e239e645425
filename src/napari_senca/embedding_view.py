"""The 2-D embedding view without Qt: layouts, plot selections and colours.

The Embedding view widget (``napari_senca._qt._embedding``) draws
``obsm["X_senca"]`` in two dimensions and links selections between the plot
and the spots on the H&E; everything it computes lives here.

* :func:`layout_2d` returns PCA (instant, the default) or UMAP (umap-learn,
  about 20 s the first time in a process) coordinates, cached in
  ``obsm["X_senca_pca"]`` / ``obsm["X_senca_umap"]`` together with a checksum
  of the embedding, so a new run never reuses an old layout.
* :func:`points_in_lasso` and :func:`points_in_rectangle` turn a selection
  drawn in plot coordinates into spot indices.
* :func:`confidence_colours` maps :mod:`napari_senca.confidence` values to
  RGBA (NaN, a spot assigned by hand, in grey).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
from anndata import AnnData

from .errors import ConfigError
from .section import EMBED_KEY, UNS_KEY

__all__ = [
    "LAYOUTS",
    "CONFIDENCE_CMAP",
    "NAN_COLOUR",
    "layout_key",
    "cached_layout",
    "compute_layout",
    "store_layout",
    "layout_2d",
    "points_in_lasso",
    "points_in_rectangle",
    "confidence_colours",
]

#: Layout methods: name -> obsm key suffix.
LAYOUTS = ("pca", "umap")
#: Colormap of the confidence: ColorBrewer RdYlBu (colour-blind safe); uncertain spots are red
#: and orange, which stay visible on the purple and pink of H&E, confident ones blue.
CONFIDENCE_CMAP = "RdYlBu"
#: Colour of spots without a confidence (assigned by hand).
NAN_COLOUR = (0.6, 0.6, 0.6, 1.0)


def layout_key(method: str) -> str:
    """The ``obsm`` key of a cached layout, e.g. ``"X_senca_pca"``."""
    m = _method(method)
    return f"{EMBED_KEY}_{m}"


def _method(method: str) -> str:
    m = str(method).strip().lower()
    if m not in LAYOUTS:
        raise ConfigError(f"unknown layout {method!r}; use 'pca' or 'umap'")
    return m


def _checksum(z: np.ndarray) -> str:
    return f"{zlib.crc32(np.ascontiguousarray(z, dtype=np.float32).tobytes()):08x}"


def _embedding(adata: AnnData) -> np.ndarray:
    if EMBED_KEY not in adata.obsm:
        raise ConfigError("no SENCA embedding on this section yet: run the model first")
    return np.asarray(adata.obsm[EMBED_KEY])


def cached_layout(adata: AnnData, method: str = "pca") -> np.ndarray | None:
    """The stored layout when it was computed from the current ``X_senca``, else None."""
    key = layout_key(method)
    info = adata.uns.get(UNS_KEY)
    sums = info.get("layouts") if isinstance(info, dict) else None
    if key not in adata.obsm or not isinstance(sums, dict) or EMBED_KEY not in adata.obsm:
        return None
    if str(sums.get(_method(method))) != _checksum(_embedding(adata)):
        return None
    xy = np.asarray(adata.obsm[key], dtype=np.float64)
    return xy if xy.shape == (adata.n_obs, 2) else None


def compute_layout(embedding: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """``(n, 2)`` PCA scores or UMAP coordinates of ``embedding`` (no caching).

    Raises
    ------
    ConfigError
        UMAP asked for but umap-learn is not installed, or too few spots.
    """
    m = _method(method)
    z = np.asarray(embedding, dtype=np.float64)
    n = len(z)
    if m == "umap":
        if n < 15:
            raise ConfigError(f"UMAP needs at least 15 spots, the section has {n}: use PCA")
        try:
            import umap  # noqa: F401
        except ImportError:
            raise ConfigError("UMAP needs the umap-learn package (pip install umap-learn): use PCA") from None
        from .export.layout import embedding_2d

        return embedding_2d(z, seed=seed)[0]
    zc = z - z.mean(0)
    if n < 2 or zc.shape[1] == 0:
        return np.zeros((n, 2))
    u, s, vt = np.linalg.svd(zc, full_matrices=False)
    pcs = u[:, :2] * s[:2]
    signs = np.sign(vt[: pcs.shape[1]].sum(1))  # deterministic orientation
    pcs = pcs * np.where(signs == 0, 1.0, signs)
    if pcs.shape[1] < 2:
        pcs = np.concatenate([pcs, np.zeros((n, 2 - pcs.shape[1]))], axis=1)
    return pcs


def store_layout(adata: AnnData, method: str, xy: np.ndarray, embedding: np.ndarray | None = None) -> None:
    """Cache a layout in ``obsm`` with the checksum of the embedding it came from."""
    m = _method(method)
    z = _embedding(adata) if embedding is None else embedding
    adata.obsm[layout_key(m)] = np.asarray(xy, dtype=np.float32)
    info = adata.uns.setdefault(UNS_KEY, {})
    if isinstance(info, dict):
        sums = dict(info.get("layouts") or {})
        sums[m] = _checksum(z)
        info["layouts"] = sums


def layout_2d(adata: AnnData, method: str = "pca", seed: int = 0) -> np.ndarray:
    """The cached 2-D layout of ``obsm["X_senca"]``, computed and stored when missing."""
    xy = cached_layout(adata, method)
    if xy is None:
        z = _embedding(adata)
        xy = compute_layout(z, method, seed)
        store_layout(adata, method, xy, z)
    return np.asarray(xy, dtype=np.float64)


def points_in_lasso(xy: np.ndarray, vertices: Sequence[Sequence[float]]) -> np.ndarray:
    """Sorted indices of the points of ``xy`` inside the polygon ``vertices`` (plot coordinates)."""
    from matplotlib.path import Path

    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or len(v) < 3:
        return np.zeros(0, dtype=np.int64)
    inside = Path(v).contains_points(np.asarray(xy, dtype=np.float64)[:, :2])
    return np.flatnonzero(inside)


def points_in_rectangle(xy: np.ndarray, corner_a: Sequence[float], corner_b: Sequence[float]) -> np.ndarray:
    """Sorted indices of the points inside the axis-aligned rectangle of two corners."""
    p = np.asarray(xy, dtype=np.float64)[:, :2]
    lo = np.minimum(corner_a, corner_b)
    hi = np.maximum(corner_a, corner_b)
    return np.flatnonzero(np.all((p >= lo) & (p <= hi), axis=1))


def confidence_colours(confidence: np.ndarray, cmap: str = CONFIDENCE_CMAP) -> np.ndarray:
    """``(n, 4)`` RGBA of confidences in ``[0, 1]``; NaN in :data:`NAN_COLOUR`."""
    import matplotlib

    c = np.asarray(confidence, dtype=np.float64)
    rgba = np.asarray(matplotlib.colormaps[cmap](np.clip(np.nan_to_num(c, nan=0.0), 0.0, 1.0)), dtype=np.float64)
    rgba[np.isnan(c)] = NAN_COLOUR
    return rgba
