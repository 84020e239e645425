"""Clustering of the shared embedding (paper section 3.5).

Agglomerative (Ward) clustering keeps its tree as a SciPy linkage matrix, so a
new cluster count is a cut of the stored tree: milliseconds, no retraining.
The linkage is stored in ``adata.uns["senca"]["linkage"]`` and survives a
round trip through ``.h5ad``. k-means is available too (ConGcR's evaluation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy.cluster.hierarchy import cut_tree, linkage

from .confidence import check_confidence, record_model_call
from .errors import ConfigError
from .section import CLUSTER_KEY, EMBED_KEY, UNS_KEY

__all__ = ["ward_linkage", "cut", "cluster_embedding", "recluster", "recluster_labels", "recluster_in_worker",
           "stored_clustering",
           "check_n_clusters", "check_method_size", "WARD_MAX_SPOTS"]

#: Ward's tree needs the n(n-1)/2 pairwise distances (0.4 GB and ~10 s at 10,000 spots, 1 TB at
#: 500,000): above this many spots only k-means is offered.
WARD_MAX_SPOTS = 10_000


def check_n_clusters(n_clusters: int, n_spots: int) -> None:
    """Raise :class:`ConfigError` unless ``2 <= n_clusters <= n_spots``."""
    if n_clusters < 2:
        raise ConfigError(f"the cluster count must be at least 2, got {n_clusters}")
    if n_clusters > n_spots:
        raise ConfigError(f"more clusters ({n_clusters}) than spots ({n_spots})")


def check_method_size(method: str, n_spots: int) -> None:
    """Raise :class:`ConfigError` when ``method`` cannot cluster ``n_spots`` spots in bounded memory."""
    if method == "agglomerative" and n_spots > WARD_MAX_SPOTS:
        gb = n_spots * (n_spots - 1) / 2 * 8 / 1e9
        raise ConfigError(
            f"Ward clustering of {n_spots:,} spots needs their {gb:,.0f} GB distance matrix; at most "
            f"{WARD_MAX_SPOTS:,} spots: use cluster_method='kmeans'"
        )


def ward_linkage(embedding: np.ndarray) -> np.ndarray:
    """Ward linkage matrix ``(n - 1, 4)`` of the rows of ``embedding``."""
    return linkage(np.asarray(embedding, dtype=np.float64), method="ward")


def cut(tree: np.ndarray, n_clusters: int) -> np.ndarray:
    """Cut a linkage into ``n_clusters`` labels, numbered by decreasing size."""
    n = tree.shape[0] + 1
    check_n_clusters(n_clusters, n)
    labels = cut_tree(tree, n_clusters=n_clusters).ravel()
    return _by_size(labels)


def cluster_embedding(
    embedding: np.ndarray, n_clusters: int, method: str = "agglomerative", seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cluster ``embedding``; returns ``(labels, linkage or None)``."""
    n = len(embedding)
    check_n_clusters(n_clusters, n)
    check_method_size(method, n)
    if method == "agglomerative":
        tree = ward_linkage(embedding)
        return cut(tree, n_clusters), tree
    if method == "kmeans":
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(embedding)
        return _by_size(km.labels_), None
    raise ConfigError(f"unknown clustering method {method!r}; use 'agglomerative' or 'kmeans'")


def stored_clustering(adata: AnnData) -> tuple[np.ndarray | None, np.ndarray, int]:
    """``(Ward tree or None, clustered embedding, seed)`` of the section's SENCA result (nothing copied).

    Raises
    ------
    ConfigError
        When the section has no SENCA result yet.
    """
    info = adata.uns.get(UNS_KEY)
    if not isinstance(info, dict) or EMBED_KEY not in adata.obsm:
        raise ConfigError("no SENCA result on this section yet: run the model first")
    tree = info.get("linkage")
    tree = np.asarray(tree) if tree is not None and np.asarray(tree).size else None
    seed = int(info.get("config", {}).get("seed", 0))
    return tree, np.asarray(adata.obsm[EMBED_KEY]), seed


def recluster_labels(tree: np.ndarray | None, embedding: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """The model's regions for ``n_clusters``: a re-cut of ``tree``, else k-means on ``embedding``.

    Pure (no section is read or changed), so it can run in a worker thread:
    k-means on 160,000 bins takes seconds.
    """
    if tree is not None:
        return cut(tree, n_clusters)
    return cluster_embedding(embedding, n_clusters, "kmeans", seed)[0]


def recluster_in_worker(tree: np.ndarray | None, embedding: np.ndarray, n_clusters: int,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`recluster_labels` and their confidence (:func:`~napari_senca.confidence.silhouette_confidence`).

    Pure, for a worker thread: on 500,000 bins the confidence takes 0.4 s
    that would otherwise pause the viewer when the new regions are applied.
    """
    from .confidence import silhouette_confidence

    labels = recluster_labels(tree, embedding, n_clusters, seed)
    return labels, silhouette_confidence(embedding, labels)


def recluster(adata: AnnData, n_clusters: int, key: str = CLUSTER_KEY, labels: np.ndarray | None = None,
              confidence: np.ndarray | None = None) -> pd.Categorical:
    """Re-cut the stored tree (or re-run k-means) and update ``obs[key]``.

    ``labels`` are the new regions when already computed (by
    :func:`recluster_labels`, e.g. in a worker thread), ``confidence`` their
    confidence (:func:`recluster_in_worker`; computed here when None).

    Raises
    ------
    ConfigError
        When the section has no SENCA result yet, the count is out of range
        or ``labels`` do not fit the section.
    """
    tree, embedding, seed = stored_clustering(adata)
    check_n_clusters(n_clusters, adata.n_obs)
    if labels is None:
        labels = recluster_labels(tree, embedding, n_clusters, seed)
    labels = np.asarray(labels)
    if labels.shape != (adata.n_obs,):
        raise ConfigError(f"{labels.shape[0] if labels.ndim else 0} region labels for a section of {adata.n_obs} spots")
    check_confidence(confidence, adata.n_obs)  # before anything changes
    cats = as_categorical(labels)
    adata.obs[key] = cats
    adata.uns[UNS_KEY]["n_clusters"] = int(n_clusters)
    record_model_call(adata, key, confidence=confidence)  # obs["senca_confidence"] for the new regions
    return cats


def as_categorical(labels: np.ndarray) -> pd.Categorical:
    """Integer labels as a categorical of strings '0', '1', ... in order."""
    codes = np.asarray(labels).astype(np.int64)
    k = int(codes.max()) + 1 if len(codes) else 0
    return pd.Categorical.from_codes(codes, categories=[str(i) for i in range(k)])  # no string per spot


def _by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber labels so that cluster 0 is the largest (stable for ties)."""
    labels = np.asarray(labels).astype(np.int64)
    uniq, counts = np.unique(labels, return_counts=True)
    order = uniq[np.lexsort((uniq, -counts))]
    remap = np.empty(uniq.max() + 1, dtype=np.int64)
    remap[order] = np.arange(order.size)
    return remap[labels]
