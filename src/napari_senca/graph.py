"""Spatial kNN graph of the spots (paper section 3.1).

Neighbours come from a ball tree on the spot centres. The graph is made
symmetric (i is a neighbour of j when either lists the other) and self loops
are handled explicitly: :func:`normalized_adjacency` adds them once, as in a
GCN, and :func:`neighbour_index` puts the spot itself first in its own list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import BallTree

from .errors import ConfigError

__all__ = ["SpatialGraph", "build_graph", "normalized_adjacency", "neighbour_mean_operator", "neighbour_index"]


@dataclass
class SpatialGraph:
    """A symmetric spatial kNN graph without self loops.

    Attributes
    ----------
    adjacency
        ``(n, n)`` symmetric 0/1 CSR matrix, zero diagonal.
    knn
        ``(n, k)`` indices of each spot's k nearest other spots (not symmetric).
    distances
        ``(n, k)`` their distances, in the units of the positions.
    """

    adjacency: sp.csr_matrix
    knn: np.ndarray
    distances: np.ndarray

    @property
    def n_spots(self) -> int:
        return self.adjacency.shape[0]


def build_graph(xy: np.ndarray, n_neighbors: int = 4) -> SpatialGraph:
    """Ball-tree kNN graph of spot positions.

    Parameters
    ----------
    xy
        ``(n, 2)`` spot centres.
    n_neighbors
        k, the number of nearest other spots per spot.

    Raises
    ------
    ConfigError
        When ``n_neighbors`` is not smaller than the number of spots.
    """
    xy = np.asarray(xy, dtype=np.float64)
    n = len(xy)
    if n_neighbors < 1:
        raise ConfigError(f"n_neighbors must be >= 1, got {n_neighbors}")
    if n_neighbors >= n:
        raise ConfigError(f"n_neighbors ({n_neighbors}) must be smaller than the number of spots ({n})")
    tree = BallTree(xy)
    dist, idx = tree.query(xy, k=n_neighbors + 1)
    # drop each spot itself; with duplicated positions it may not come first (or not at all)
    order = np.argsort(idx == np.arange(n)[:, None], axis=1, kind="stable")[:, :n_neighbors]  # others first
    knn = np.take_along_axis(idx, order, 1).astype(np.int64)
    kd = np.take_along_axis(dist, order, 1)
    rows = np.repeat(np.arange(n), n_neighbors)
    a = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, knn.ravel())), shape=(n, n))
    a = ((a + a.T) > 0).astype(np.float32).tocsr()
    a.setdiag(0)
    a.eliminate_zeros()
    return SpatialGraph(adjacency=a, knn=knn, distances=kd)


def normalized_adjacency(graph: SpatialGraph, self_loops: bool = True) -> sp.csr_matrix:
    """Symmetrically normalised adjacency ``D^-1/2 (A + I) D^-1/2`` (GCN style)."""
    a = graph.adjacency
    if self_loops:
        a = a + sp.identity(a.shape[0], dtype=np.float32, format="csr")
    deg = np.asarray(a.sum(1)).ravel()
    d = sp.diags(1.0 / np.sqrt(np.maximum(deg, 1e-12)))
    return (d @ a @ d).astype(np.float32).tocsr()


def neighbour_mean_operator(xy: np.ndarray, n_neighbors: int = 4) -> sp.csr_matrix:
    """``(n, n)`` row-stochastic operator: each spot's row averages it and its neighbours, equal weights."""
    a = build_graph(np.asarray(xy, float), n_neighbors).adjacency + sp.identity(len(xy))
    return sp.csr_matrix(sp.diags(1.0 / np.asarray(a.sum(1)).ravel()) @ a)


def neighbour_index(graph: SpatialGraph) -> tuple[np.ndarray, np.ndarray]:
    """Padded neighbour lists for attention: the spot first, then its neighbours.

    Returns
    -------
    index
        ``(n, m)`` int64, ``m = 1 + max degree``; padding repeats the spot.
    mask
        ``(n, m)`` bool, True for real entries.
    """
    a = graph.adjacency.tocsr()
    n = a.shape[0]
    deg = np.diff(a.indptr)
    m = 1 + int(deg.max(initial=0))
    index = np.repeat(np.arange(n)[:, None], m, axis=1)
    mask = np.zeros((n, m), dtype=bool)
    mask[:, 0] = True
    rows = np.repeat(np.arange(n), deg)  # (nnz,) the row of every stored neighbour
    slot = 1 + np.arange(rows.size) - a.indptr[rows]  # its column in the padded list
    index[rows, slot] = a.indices
    mask[rows, slot] = True
    return index, mask
