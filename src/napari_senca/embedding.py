"""The clustered embedding: the learned S, smoothed, with an optional skip block.

The skip block is a connection around the network: the first ``skip_pcs``
principal components of the expression (and, with ``skip_mode="both"``, of the
standardised image features), each averaged over ``smooth_hops`` (at least
one) hops of the spot graph. Every block is scaled to a unit mean squared row
norm; in ``"both"`` mode the two modality blocks share that unit equally, so
neither dominates the distances k-means sees. With ``cross_guided_tau`` each
modality's averaging is guided by the other (:func:`cross_guided_smooth`): a
neighbour across a border that one modality sees counts less in both blocks.

The image gate (:func:`image_gate`) is how much the image counts in one
section, measured without labels: the agreement (ARI, averaged over k = 2-8)
between k-means partitions of the neighbour-averaged expression PCs and of the
neighbour-averaged image PCs. An image whose spatial structure matches the
expression nowhere (random-weight features of a real H&E, stain or lighting
gradients) gets a gate of 0; one that shares structure with the expression
gets up to 1, and then its private structure counts too (docs/method.md,
"Fusion").
"""

from __future__ import annotations

import numpy as np
import torch

from .config import SencaConfig

__all__ = ["pcs", "unit", "smooth", "cross_guided_smooth", "modality_agreement", "image_gate", "clustered_embedding", "clusters_reconstruction", "with_library_size", "library_column", "library_gate", "LIBRARY_NULL_DRAWS", "GATE_NULL", "GATE_FULL", "AGREEMENT_KS"]

#: Cross-modal agreement at or below which the image counts 0, and at or above which it counts fully
#: (between: linear). Set from measured agreements: 0.08-0.10 on HER2ST A1 with random image weights (image-only
#: ARI 0.06), 0.20-0.31 on the cross-modal synthetic sections (docs/benchmarks.md, "Gated fusion").
GATE_NULL = 0.12
GATE_FULL = 0.20
#: Cluster counts over which :func:`modality_agreement` averages.
AGREEMENT_KS = (2, 3, 4, 5, 6, 7, 8)


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


def cross_guided_smooth(z: np.ndarray, guide: np.ndarray, adj: torch.Tensor, tau: float) -> np.ndarray:
    """``z`` (n, d) averaged once over ``adj``, each neighbour's weight scaled by its similarity to the spot
    in ``guide`` (n, e): ``exp(-|g_i - g_j|^2 / (tau * median))``, the median over the graph's edges. The
    neighbours' weights are renormalised to their plain total, so the spot's own weight and an outlier's
    averaging stay as in :func:`smooth`; only how the neighbours share it changes."""
    a = adj.coalesce().cpu()
    rows, cols = a.indices().numpy()
    vals = a.values().numpy().astype(np.float64)
    off = rows != cols
    g = guide.astype(np.float64)
    d2 = ((g[rows[off]] - g[cols[off]]) ** 2).sum(1)
    w = vals.copy()
    w[off] = vals[off] * np.exp(-d2 / max(tau * float(np.median(d2)), 1e-12))
    plain = np.bincount(rows[off], vals[off], minlength=len(z))
    got = np.bincount(rows[off], w[off], minlength=len(z))
    w[off] *= (plain / np.maximum(got, 1e-300))[rows[off]]
    out = np.zeros(z.shape, dtype=np.float64)
    np.add.at(out, rows, w[:, None] * z[cols].astype(np.float64))
    return out.astype(np.float32)


def modality_agreement(
    expr: np.ndarray, image: np.ndarray, adj: torch.Tensor, seed: int, ks: tuple[int, ...] = AGREEMENT_KS
) -> float:
    """Label-free agreement of the two modalities' spatial structure, about 0 (none) to 1.

    The mean, over the cluster counts ``ks``, of the ARI between a k-means
    partition of the neighbour-averaged expression PCs and one of the
    neighbour-averaged image PCs (20 PCs each, unit-scaled). Averaging over
    several k makes it independent of the run's region count and robust to a
    k at which one modality must split a group it cannot see.

    Parameters
    ----------
    expr
        (n, G) scaled HVG expression.
    image
        (n, F) standardised image features.
    adj
        Normalised spot adjacency (sparse torch tensor).
    seed
        PCA and k-means seed.
    ks
        Cluster counts (those at or above the spot count are skipped).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    blocks = [unit(smooth(pcs(x, 20, seed), adj, 1)) for x in (expr, image)]
    scores = []
    for k in (k for k in ks if k < expr.shape[0]):
        a, b = (KMeans(k, n_init=10, random_state=seed).fit_predict(z) for z in blocks)
        scores.append(adjusted_rand_score(a, b))
    return float(np.mean(scores)) if scores else 0.0


def image_gate(agreement: float) -> float:
    """How much the image counts (0..1) for a cross-modal ``agreement`` (see :data:`GATE_NULL`)."""
    return float(np.clip((agreement - GATE_NULL) / (GATE_FULL - GATE_NULL), 0.0, 1.0))


def clusters_reconstruction(cfg: SencaConfig, image_counts: bool) -> bool:
    """True when the run clusters the gene decoder's reconstruction rather than S (``cfg.cluster_on``)."""
    if cfg.cluster_on == "auto":
        return not image_counts
    return cfg.cluster_on == "reconstruction"


LIBRARY_R2_NULL = 0.1
"""Below this excess R^2 (over the null, :func:`library_gate`) the library size is not what the expression explains
and does not count: on the cross-modal synthetic sections, whose library sizes are drawn independently of the
regions, the plain R^2 is 0.04-0.12 (docs/method.md)."""
LIBRARY_R2_FULL = 0.2
"""From this excess R^2 on it counts fully: HER2ST plain R^2 0.18-0.72, DLPFC 0.72-0.73 (seeds 0-2)."""
LIBRARY_NULL_DRAWS = 19
"""Random columns, smoothed like the library size column, whose R^2 on the embedding is the gate's null."""
LIBRARY_T_NULL, LIBRARY_T_FULL = 2.0, 4.0
"""The excess R^2 counts from 2 null standard deviations above the null's mean, fully from 4."""


def _neighbourhood_mean(x: np.ndarray, adj: torch.Tensor, hops: int) -> np.ndarray:
    """``x`` (n, m) averaged over ``hops`` hops of ``adj`` with the weights renormalised to a mean: (n, m) float64.

    A spot at the tissue's edge is averaged like any other (the symmetric GCN weights alone would put
    its degree into the result)."""
    summed = smooth(np.hstack([x, np.ones((len(x), 1))]), adj, hops).astype(np.float64)  # (n, m + 1)
    return summed[:, :-1] / summed[:, -1:]


def library_column(library: np.ndarray, adj: torch.Tensor, hops: int) -> np.ndarray:
    """``log1p(library)`` averaged over each spot and its graph neighbours (:func:`_neighbourhood_mean`),
    centred: (n,)."""
    log = np.log1p(np.asarray(library, dtype=np.float64))
    col = _neighbourhood_mean((log - log.mean())[:, None], adj, hops)[:, 0]
    return col - col.mean()


def _r2(z: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """R^2 of each column of ``cols`` (n, m) regressed on ``z`` (n, d) with an intercept: (m,)."""
    x = np.hstack([z.astype(np.float64), np.ones((len(z), 1))])
    resid = cols - x @ np.linalg.lstsq(x, cols, rcond=None)[0]
    total = ((cols - cols.mean(0)) ** 2).sum(0)
    return 1.0 - (resid**2).sum(0) / np.maximum(total, 1e-300)


def library_gate(z: np.ndarray, col: np.ndarray, adj: torch.Tensor, hops: int, seed: int = 0) -> float:
    """How much the library size counts (0..1): how far the expression ``z`` explains ``col`` beyond chance.

    The null is the R^2 of :data:`LIBRARY_NULL_DRAWS` Gaussian columns averaged over the same ``hops`` of
    ``adj`` as :func:`library_column`: smoothing makes chance R^2 large on small sections (median 0.17 at
    100 spots, 0.31 at 60; docs/method.md). The gate is the smaller of two ramps: the R^2 in excess of the
    null's mean, ``(r2 - mean) / (1 - mean)``, from :data:`LIBRARY_R2_NULL` to :data:`LIBRARY_R2_FULL`
    (is it large enough to matter?), and its distance from that mean in null standard deviations, from
    :data:`LIBRARY_T_NULL` to :data:`LIBRARY_T_FULL` (is it more than chance?).
    """
    noise = np.random.default_rng(seed).standard_normal((len(col), LIBRARY_NULL_DRAWS))
    null = _r2(z, _neighbourhood_mean(noise - noise.mean(0), adj, hops))  # (draws,), averaged as the column
    r2 = float(_r2(z, np.asarray(col, np.float64)[:, None])[0])
    mean, sd = float(null.mean()), max(float(null.std(ddof=1)), 1e-12)
    excess = (r2 - mean) / max(1.0 - mean, 1e-12)
    size = (excess - LIBRARY_R2_NULL) / (LIBRARY_R2_FULL - LIBRARY_R2_NULL)
    chance = ((r2 - mean) / sd - LIBRARY_T_NULL) / (LIBRARY_T_FULL - LIBRARY_T_NULL)
    return float(np.clip(min(size, chance), 0.0, 1.0))


def with_library_size(
    z: np.ndarray, library: np.ndarray | None, adj: torch.Tensor, cfg: SencaConfig
) -> tuple[np.ndarray, float | None]:
    """``z`` (n, d) with the spots' neighbour-averaged log library size appended: ``((n, d + 1), gate)``.

    The column (:func:`library_column`) is scaled to ``cfg.library_size_weight`` x the measured
    :func:`library_gate` x ``z``'s RMS row norm. ``z`` comes back unchanged, with gate None when
    the weight is 0, ``library`` is None or it does not vary, and with gate 0 when the expression
    does not explain it.
    """
    if cfg.library_size_weight <= 0 or library is None:
        return z, None
    col = library_column(library, adj, cfg.smooth_hops)
    if float(np.abs(col).max()) <= 1e-6:
        return z, None
    gate = library_gate(z, col, adj, cfg.smooth_hops, cfg.seed)
    if gate == 0.0:
        return z, 0.0
    scale = cfg.library_size_weight * gate * float(np.sqrt((z.astype(np.float64) ** 2).sum(1).mean()))
    return np.hstack([z, scale * unit(col[:, None])]).astype(z.dtype), gate


def clustered_embedding(
    s: np.ndarray,
    expr: np.ndarray,
    image: np.ndarray | None,
    adj: torch.Tensor,
    cfg: SencaConfig,
    gate: float = 1.0,
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
    gate
        Weight of the image block relative to the RNA block in ``"both"`` mode
        (1: balanced, half of the skip's mean square each; 0: the RNA block alone).
    """
    if not cfg.skip_pcs:
        return s
    hops = max(1, cfg.smooth_hops)
    r = pcs(expr, cfg.skip_pcs, cfg.seed)
    if not (cfg.skip_mode == "both" and image is not None and gate > 0):
        return np.hstack([unit(smooth(r, adj, hops)), cfg.skip_weight * unit(s)]).astype(np.float32)
    i = pcs(image, cfg.skip_pcs, cfg.seed)
    if cfg.cross_guided_tau > 0:  # each modality's averaging guided by the other, one hop at a time
        for _ in range(hops):
            r, i = cross_guided_smooth(r, i, adj, cfg.cross_guided_tau), cross_guided_smooth(i, r, adj, cfg.cross_guided_tau)
    else:
        r, i = smooth(r, adj, hops), smooth(i, adj, hops)
    blocks = [unit(r) / np.sqrt(1.0 + gate**2), gate * unit(i) / np.sqrt(1.0 + gate**2)]
    return np.hstack([*blocks, cfg.skip_weight * unit(s)]).astype(np.float32)
