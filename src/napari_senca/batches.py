"""Mini-batches of spatial tiles, each with its graph halo (issue 10).

A large section (more than ``SencaConfig.batch_spots`` spots) is not trained
or embedded in one piece. Its spots are grouped into square spatial tiles of
about ``batch_spots`` spots (the *core* of a batch); each core is extended by
the spots within ``hops`` graph hops (the *halo*). The model's output at a spot
depends only on the inputs within its receptive field (two hops for the RNA
branch: propagation, then neighbourhood attention; one more for the
cross-attention), so with ``hops`` at least that field the outputs at the core
spots are exactly those of a whole-section pass. The halo spots are computed
too but their outputs are discarded (their own neighbourhoods are cut).

The restricted adjacency keeps the whole section's normalisation
(``D^-1/2 (A + I) D^-1/2`` of the full graph), so a core spot's propagation
is unchanged. Cost per batch: O(batch spots + halo), never O(n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

__all__ = ["Subgraph", "HaloSampler", "tile_cores", "sparse_tensor"]


def sparse_tensor(a: sp.spmatrix, device: torch.device | str = "cpu") -> Tensor:
    """A scipy sparse matrix as a coalesced float32 sparse COO tensor on ``device``."""
    c = a.tocoo()
    t = torch.sparse_coo_tensor(
        np.vstack([c.row, c.col]).astype(np.int64), c.data.astype(np.float32), c.shape, dtype=torch.float32,
        check_invariants=False,
    )
    return t.coalesce().to(device)


@dataclass
class Subgraph:
    """One mini-batch: ``nodes[:n_core]`` are the core spots, the rest their halo."""

    nodes: np.ndarray  # (b,) section rows, core first
    n_core: int
    adj: Tensor  # (b, b) sparse normalised adjacency (the section's normalisation)
    index: Tensor  # (b, m) neighbourhood in batch rows, spot first
    mask: Tensor  # (b, m) False for padding and for neighbours outside the batch


class HaloSampler:
    """Builds :class:`Subgraph` batches of one section.

    Parameters
    ----------
    adj
        ``(n, n)`` normalised adjacency (CSR, with self loops).
    index, mask
        ``(n, m)`` neighbourhood lists of :func:`napari_senca.graph.neighbour_index`.
    hops
        Halo depth in graph hops (the model's receptive field).
    """

    def __init__(self, adj: sp.csr_matrix, index: np.ndarray, mask: np.ndarray, hops: int):
        self.adj = adj.tocsr()
        self.index = np.asarray(index)
        self.mask = np.asarray(mask)
        self.hops = int(hops)
        self._pos = np.full(self.adj.shape[0], -1, dtype=np.int64)  # section row -> batch row, -1 outside

    def nodes(self, core: np.ndarray) -> np.ndarray:
        """The core spots followed by their halo (breadth first)."""
        pos = self._pos
        parts = [np.asarray(core, dtype=np.int64)]
        pos[parts[0]] = 0
        frontier = parts[0]
        for _ in range(self.hops):
            nb = np.unique(self.adj[frontier].indices)  # neighbours of the frontier
            nb = nb[pos[nb] < 0]
            pos[nb] = 0
            parts.append(nb)
            frontier = nb
        nodes = np.concatenate(parts)
        pos[nodes] = -1
        return nodes

    def subgraph(self, core: np.ndarray, device: torch.device | str = "cpu") -> Subgraph:
        """Core + halo with the adjacency and neighbourhoods restricted to them."""
        nodes = self.nodes(core)
        b = nodes.size
        pos = self._pos
        pos[nodes] = np.arange(b)
        try:
            rows = self.adj[nodes]  # (b, n) CSR
            cols = pos[rows.indices]  # (nnz,) batch column, -1 outside
            r = np.repeat(np.arange(b), np.diff(rows.indptr))
            keep = cols >= 0
            adj = sp.csr_matrix((rows.data[keep], (r[keep], cols[keep])), shape=(b, b))
            idx = pos[self.index[nodes]]  # (b, m)
            mask = self.mask[nodes] & (idx >= 0)
            idx = np.where(mask, idx, np.arange(b)[:, None])
        finally:
            pos[nodes] = -1
        return Subgraph(
            nodes=nodes,
            n_core=int(len(core)),
            adj=sparse_tensor(adj, device),
            index=torch.from_numpy(idx).to(device),
            mask=torch.from_numpy(mask).to(device),
        )


def tile_cores(
    xy: np.ndarray, side: float, rng: np.random.Generator | None = None, min_spots: int = 1
) -> list[np.ndarray]:
    """Spots grouped by square tiles of ``side`` (random offset when ``rng`` is given).

    Tiles with fewer than ``min_spots`` spots are left out (use 1 to cover every spot).
    """
    off = rng.uniform(0, side, size=2) if rng is not None else np.zeros(2)
    cells = np.floor((xy - xy.min(0) + off) / side).astype(np.int64)
    key = cells[:, 0] * (int(cells[:, 1].max()) + 1) + cells[:, 1]
    order = np.argsort(key, kind="stable")
    _, start, counts = np.unique(key[order], return_index=True, return_counts=True)
    return [order[s : s + c] for s, c in zip(start, counts, strict=True) if c >= min_spots]
