"""The clustered embedding: the learned S, smoothed, with an optional skip block.

The skip block is a connection around the network: the first ``skip_pcs``
principal components of the expression (and, with ``skip_mode="both"``, of the
standardised image features), each averaged over ``smooth_hops`` (at least
one) hops of the spot graph. Every block is scaled to a unit mean squared row
norm; in ``"both"`` mode the two modality blocks share that unit equally, so
neither dominates the distances k-means sees.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import SencaConfig

__all__ = ["pcs", "unit", "smooth", "clustered_embedding"]


def pcs(x: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    """Principal-component scores of ``x`` (n, G) -> (n, min(n_components, n, G))."""
    from sklearn.decomposition import PCA

    k = min(n_components, *x.shape)
    return np.ascontiguousarray(PCA(k, random_state=seed).fit_transform(x), dtype=np.float32)


def unit(z: np.ndarray) -> np.ndarray:
    """``z`` scaled to a mean squared row norm of 1."""
    return z / max(float(np.sqrt((z.astype(np.float64) ** 2).sum(1).mean())), 1e-12)


def smooth(z: np.ndarray, adj: torch.Tensor, hops: int) -> np.ndarray:
    """``z`` (n, d) averaged over ``hops`` hops of the normalised adjacency ``adj``."""
    t = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(adj.device)
    for _ in range(hops):
        t = torch.sparse.mm(adj, t)
    return t.cpu().numpy()


def clustered_embedding(
    s: np.ndarray, expr: np.ndarray, image: np.ndarray | None, adj: torch.Tensor, cfg: SencaConfig
) -> np.ndarray:
    """S (already smoothed), or [skip block(s), skip_weight * S], all unit-scaled.

    Parameters
    ----------
    s
        (n, S) shared embedding.
    expr
        (n, G) scaled HVG expression.
    image
        (n, F) standardised image features, or None (RNA-only run).
    adj
        Normalised spot adjacency (sparse torch tensor).
    cfg
        ``skip_pcs``, ``skip_mode``, ``skip_weight``, ``smooth_hops``, ``seed``.
    """
    if not cfg.skip_pcs:
        return s
    hops = max(1, cfg.smooth_hops)
    blocks = [unit(smooth(pcs(expr, cfg.skip_pcs, cfg.seed), adj, hops))]
    if cfg.skip_mode == "both" and image is not None:
        blocks.append(unit(smooth(pcs(image, cfg.skip_pcs, cfg.seed), adj, hops)))
        blocks = [b * np.sqrt(0.5) for b in blocks]
    return np.hstack([*blocks, cfg.skip_weight * unit(s)]).astype(np.float32)
