"""SENCA-st modules (paper sections 3.2-3.5), small and shape-commented.

Notation: n spots, G genes (HVGs), E embedding dim, Hd hidden dim, m the
padded neighbourhood size (the spot itself + its graph neighbours), F the
backbone's feature dim, S the shared dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GraphTransformer",
    "ImageHead",
    "NeighbourhoodCrossAttention",
    "NeighbourhoodSelfAttention",
    "ProjectionHead",
    "gather",
    "SharedAutoencoder",
    "nt_xent",
    "propagate",
    "window_pool",
]


class NeighbourhoodSelfAttention(nn.Module):
    """Multi-head self-attention of every spot over its graph neighbourhood.

    Spot i attends over the rows ``index[i]`` (the spot itself first, then its
    graph neighbours, padded; ``mask[i]`` marks the real ones), so time and
    memory are O(n * m * Hd) instead of O(n^2 * Hd) for all pairs.
    """

    def __init__(self, hidden: int, n_heads: int = 1):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, index: Tensor, mask: Tensor) -> Tensor:
        # h: (n, Hd), index/mask: (n, m) neighbourhood with the spot first
        n, d = h.shape
        m, nh = index.shape[1], self.n_heads
        q, k, v = self.qkv(h).split(d, dim=1)  # (n, Hd) each
        q = q.view(n, nh, d // nh)  # (n, nh, hd)
        k = gather(k, index).view(n, m, nh, d // nh)  # (n, m, nh, hd) keys of the neighbourhood
        v = gather(v, index).view(n, m, nh, d // nh)  # (n, m, nh, hd)
        logits = torch.einsum("nhd,nmhd->nhm", q, k) / math.sqrt(d // nh)  # (n, nh, m)
        logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
        w = torch.softmax(logits, dim=-1)  # (n, nh, m)
        a = torch.einsum("nhm,nmhd->nhd", w, v).reshape(n, d)  # (n, Hd)
        return self.proj(a)  # (n, Hd)


def gather(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` for x (n, D) and index (n, m) -> (n, m, D), via ``index_select``.

    Same values as advanced indexing; its backward is an ``index_add_`` instead
    of an accumulating ``index_put_``, about 4x faster on the CPU.
    """
    return x.index_select(0, index.reshape(-1)).view(*index.shape, x.shape[-1])


def wider(index: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Two-hop neighbourhoods from one-hop ones, each spot once, the spot first.

    index/mask: (n, m) -> (n, m * m); duplicates and entries outside the batch are masked.
    """
    n, m = index.shape
    idx2 = index[index].reshape(n, m * m)  # (n, m*m) neighbours of neighbours
    msk2 = (mask[:, :, None] & mask[index]).reshape(n, m * m)
    idx2 = torch.where(msk2, idx2, -1)
    own = torch.arange(n, device=index.device)[:, None]
    idx2 = torch.where(idx2 == own, -2, idx2)  # the spot itself sorts first
    srt, _ = idx2.sort(dim=1)  # (n, m*m)
    keep = srt >= -2
    keep[:, 1:] &= srt[:, 1:] != srt[:, :-1]
    keep &= srt != -1
    srt = torch.where(srt == -2, own, srt)
    return torch.where(keep, srt, own), keep


def propagate(adj: Tensor, h: Tensor) -> Tensor:
    """``adj @ h`` for a sparse or dense adjacency (message passing)."""
    return torch.sparse.mm(adj, h) if adj.is_sparse else adj @ h


class GraphTransformer(nn.Module):
    """RNA branch g: masked expression -> R (section 3.2).

    dropout (masking) -> linear -> adjacency propagation -> self-attention
    block -> LayerNorm -> feed-forward -> residual -> activation -> linear.
    The self-attention runs over each spot's graph neighbourhood
    (:class:`NeighbourhoodSelfAttention`; ``attention_hops=2``: the two-hop
    neighbourhood), so the branch is linear in spots; R_i depends on the
    inputs within ``1 + attention_hops`` hops of spot i.
    """

    def __init__(
        self, n_genes: int, hidden: int, embed: int, n_heads: int = 1, dropout: float = 0.2,
        attention_hops: int = 1, full: bool = False,
    ):
        super().__init__()
        self.attention_hops = attention_hops
        self.mask = nn.Dropout(dropout)
        self.lin = nn.Linear(n_genes, hidden)
        # full=True: the earlier all-pairs attention, O(n^2), kept for comparison on small sections
        self.attn = nn.MultiheadAttention(hidden, n_heads, batch_first=True) if full else NeighbourhoodSelfAttention(hidden, n_heads)
        self.norm = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.out = nn.Linear(hidden, embed)

    def forward(self, x: Tensor, adj: Tensor, index: Tensor, mask: Tensor) -> Tensor:
        # x: (n, G), adj: (n, n) normalised adjacency (sparse or dense), index/mask: (n, m)
        h = self.lin(self.mask(x))  # (n, Hd)
        h = propagate(adj, h)  # (n, Hd) message passing
        if isinstance(self.attn, nn.MultiheadAttention):
            a = self.attn(h[None], h[None], h[None], need_weights=False)[0][0]  # (n, Hd) all pairs
        else:
            if self.attention_hops == 2:
                index, mask = wider(index, mask)  # (n, m*m)
            a = self.attn(h, index, mask)  # (n, Hd) attention over the neighbourhood
        z = self.ff(self.norm(a))  # (n, Hd)
        z = F.gelu(h + z)  # residual around the block, then activation
        return self.out(z)  # (n, E)


class ImageHead(nn.Module):
    """FC layer after the ResNet trunk: backbone features -> H (section 3.3)."""

    def __init__(self, n_features: int, embed: int):
        super().__init__()
        self.norm = nn.LayerNorm(n_features)
        self.fc = nn.Linear(n_features, embed)

    def forward(self, f: Tensor) -> Tensor:
        # f: (n, F) -> (n, E)
        return self.fc(self.norm(f))


class NeighbourhoodCrossAttention(nn.Module):
    """Eqs. 3-4: cross-attention between the modalities over each neighbourhood.

    A1_i attends with the spot's projected image embedding (query) over the
    projected RNA embeddings of its neighbourhood (keys) and takes the original
    RNA embeddings (values); A2_i is the same with the modalities swapped.
    Residual connections keep each spot's own R_i and H_i in the output.
    """

    def __init__(self, embed: int):
        super().__init__()
        self.proj_r = nn.Linear(embed, embed)
        self.proj_h = nn.Linear(embed, embed)
        self.q1, self.k1, self.v1 = (nn.Linear(embed, embed, bias=False) for _ in range(3))
        self.q2, self.k2, self.v2 = (nn.Linear(embed, embed, bias=False) for _ in range(3))
        self.scale = 1.0 / math.sqrt(embed)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        # q: (n, E), k/v: (n, m, E), mask: (n, m)
        logits = torch.einsum("ne,nme->nm", q, k) * self.scale  # (n, m)
        logits = logits.masked_fill(~mask, float("-inf"))
        w = torch.softmax(logits, dim=-1)  # (n, m)
        return torch.einsum("nm,nme->ne", w, v)  # (n, E)

    def forward(self, r: Tensor, h: Tensor, index: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        # r, h: (n, E); index, mask: (n, m) neighbourhood with the spot first
        rp, hp = self.proj_r(r), self.proj_h(h)  # (n, E) each
        a1 = self._attend(self.q1(hp), gather(self.k1(rp), index), gather(self.v1(r), index), mask)  # (n, E)
        a2 = self._attend(self.q2(rp), gather(self.k2(hp), index), gather(self.v2(h), index), mask)  # (n, E)
        return r + a1, h + a2


class SharedAutoencoder(nn.Module):
    """Dimension-reducing encoder e and growing decoder (eq. 2)."""

    def __init__(self, n_in: int, hidden: int, shared: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, shared))
        self.decoder = nn.Sequential(nn.Linear(shared, hidden), nn.GELU(), nn.Linear(hidden, n_in))

    def forward(self, e: Tensor) -> tuple[Tensor, Tensor]:
        # e: (n, D) -> S: (n, S), D_out: (n, D)
        s = self.encoder(e)
        return s, self.decoder(s)


class ProjectionHead(nn.Module):
    """SimCLR projection g(.): the contrastive loss acts on g(z), not on z (Chen et al. 2020).

    Alignment then only has to hold after a learned map that may discard
    what one modality sees alone, so R and H keep their private information.
    """

    def __init__(self, embed: int, out: int | None = None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(embed, embed), nn.GELU(), nn.Linear(embed, out or embed // 2))

    def forward(self, z: Tensor) -> Tensor:
        # z: (N, E) -> (N, out)
        return self.net(z)


def nt_xent(a: Tensor, b: Tensor, temperature: float = 0.5) -> Tensor:
    """SimCLR NT-Xent between matching rows of ``a`` and ``b`` (each (N, E))."""
    n = a.shape[0]
    if n < 2:
        return a.new_zeros(())
    z = F.normalize(torch.cat([a, b], 0), dim=1)  # (2N, E)
    sim = z @ z.T / temperature  # (2N, 2N)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def window_pool(x: Tensor, window: Tensor, n_windows: int) -> Tensor:
    """Mean of the rows of ``x`` (n, E) in each window id of ``window`` (n,)."""
    out = x.new_zeros((n_windows, x.shape[1]))
    out.index_add_(0, window, x)
    cnt = torch.bincount(window, minlength=n_windows).clamp_min(1).to(x.dtype)
    return out / cnt[:, None]  # (W, E)
