"""2-D layouts of an embedding for the overview figure and the embedding view: PCA or UMAP."""

from __future__ import annotations

import warnings

import numpy as np
from anndata import AnnData

from ..section import EMBED_KEY

__all__ = ["embedding_2d", "pca_2d", "overview_layout"]


def embedding_2d(emb: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D layout of an embedding: UMAP (umap-learn), or PCA for fewer than 15 spots.

    Returns the coordinates and the method's name (``"UMAP"`` or ``"PCA"``).
    """
    x = np.asarray(emb, dtype=np.float64)
    n = x.shape[0]
    if n >= 15:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import umap

                xy = umap.UMAP(n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1).fit_transform(x)
            return np.asarray(xy, dtype=np.float64), "UMAP"
        except ImportError:
            pass
    return pca_2d(x), "PCA"


def pca_2d(emb: np.ndarray) -> np.ndarray:
    """The first two principal components of an embedding, ``(n, 2)`` (zeros where undefined)."""
    x = np.asarray(emb, dtype=np.float64)
    n = x.shape[0]
    xc = x - x.mean(0) if n else x
    if n < 2 or xc.shape[1] == 0:
        return np.zeros((n, 2))
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    pcs = u[:, :2] * s[:2]
    if pcs.shape[1] < 2:
        pcs = np.concatenate([pcs, np.zeros((n, 2 - pcs.shape[1]))], axis=1)
    return pcs


def overview_layout(adata: AnnData, embedding_key: str, layout: str = "pca", seed: int = 0) -> tuple[np.ndarray, str]:
    """The overview's 2-D layout of ``obsm[embedding_key]``: PCA (default, milliseconds) or UMAP.

    UMAP reuses the layout the viewer's embedding view stored for this very
    embedding (:func:`napari_senca.embedding_view.cached_layout`, checked by
    checksum); else umap-learn runs (its numba kernels compile on first use in
    a process, about 20 s).
    """
    emb = np.asarray(adata.obsm[embedding_key])
    if str(layout).lower() == "umap":
        if embedding_key == EMBED_KEY:
            from ..embedding_view import cached_layout

            stored = cached_layout(adata, "umap")
            if stored is not None:
                return np.asarray(stored, dtype=np.float64), "UMAP"
        return embedding_2d(emb, seed=seed)
    return pca_2d(emb), "PCA"
