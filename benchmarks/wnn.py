"""Seurat's weighted nearest neighbours (WNN) against the naive concatenation on the cross-modal
sections (fourteenth session, issue 9's open target "fused beats the naive concatenation").

WNN (Hao et al., Cell 2021) is single-cell's standard multi-modal fusion: each spot gets its own
modality weights, from how well its neighbours *within* a modality predict its profile in that
modality against how well its neighbours in the *other* modality do; the fused affinity of two
spots is the weighted sum of their per-modality affinities. A per-spot gate, learned from the
data without labels -- what the gated fusion does per section. Re-implemented from the paper
(Seurat's ``FindMultiModalNeighbors``: embeddings scaled to unit length per spot, k = 20, the
kernel width from each spot's 20th neighbour, scores clipped to [0, 200]) on the naive concatenation's two blocks (20 neighbour-averaged, unit-scaled PCs of
the RNA and of the random-ResNet patch features, ``crossmodal._blocks``). Read-outs:

* the concatenation, k-means (the baseline to beat);
* the blocks re-weighted per spot by the WNN weights (``sqrt(2 w)`` each), k-means;
* the WNN graph (20 neighbours by fused affinity), spectral clustering and Leiden at k.

One JSON line per section; ``--table`` prints medians over the sections.

    PYTHONPATH=src python benchmarks/wnn.py square 0-5 >> wnn.jsonl   # and hex beside it
    python benchmarks/wnn.py --table wnn.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
K = 20


def _knn(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) distances and indices of each row's k nearest other rows."""
    from sklearn.neighbors import NearestNeighbors

    d, idx = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z)
    return d[:, 1:], idx[:, 1:]


def _affinity(dist: np.ndarray, d1: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """Seurat's kernel: exp(-max(d - d_nearest, 0) / bandwidth), per spot (rows)."""
    return np.exp(-np.maximum(dist - d1[:, None], 0.0) / bw[:, None])


def l2(z: np.ndarray) -> np.ndarray:
    """Each spot's embedding scaled to unit length (Seurat's ``l2.norm = TRUE``)."""
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def _bandwidth(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour distance and kernel width (the k-th neighbour's distance minus it), per spot."""
    return d[:, 0], np.maximum(d[:, -1] - d[:, 0], 1e-6)


def wnn_weights(blocks: list[np.ndarray], knn: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(n, M) per-spot modality weights (rows sum to 1) from each block's ``_knn(z, K)``: softmax over
    modalities of the ratio of the within-modality to the cross-modality prediction's affinity, clipped
    to [0, 200] as Seurat does."""
    scores = []
    for m, z in enumerate(blocks):
        d1, bw = _bandwidth(knn[m][0])
        within = np.linalg.norm(z - z[knn[m][1]].mean(1), axis=1)[:, None]
        others = [knn[o][1] for o in range(len(blocks)) if o != m]
        cross = np.mean([np.linalg.norm(z - z[oi].mean(1), axis=1) for oi in others], 0)[:, None]
        ratio = _affinity(within, d1, bw)[:, 0] / (_affinity(cross, d1, bw)[:, 0] + 1e-4)
        scores.append(np.clip(ratio, 0.0, 200.0))
    s = np.stack(scores, 1)
    e = np.exp(s - s.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def wnn_graph(blocks: list[np.ndarray], knn: list[tuple[np.ndarray, np.ndarray]], w: np.ndarray, k: int = K,
              candidates: int = 50) -> sp.csr_matrix:
    """Symmetric (n, n) WNN affinity graph: each spot's k best candidates (the union of its ``candidates``
    nearest in each block) by fused affinity; ``knn`` as for :func:`wnn_weights`."""
    n = len(blocks[0])
    cand = np.sort(np.concatenate([_knn(z, candidates)[1] for z in blocks], 1), axis=1)  # (n, M * candidates)
    repeat = np.zeros(cand.shape, dtype=bool)
    repeat[:, 1:] = cand[:, 1:] == cand[:, :-1]  # a spot among the candidates of two blocks: count it once
    theta = np.zeros(cand.shape)
    for m, z in enumerate(blocks):
        d1, bw = _bandwidth(knn[m][0])
        dist = np.linalg.norm(z[:, None, :] - z[cand], axis=2)  # (n, C)
        theta += w[:, m : m + 1] * _affinity(dist, d1, bw)
    theta[repeat] = -np.inf
    top = np.argsort(-theta, 1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    g = sp.csr_matrix((np.take_along_axis(theta, top, 1).ravel(), (rows, np.take_along_axis(cand, top, 1).ravel())),
                      shape=(n, n))
    return (g + g.T) / 2


def leiden_graph(g: sp.csr_matrix, k: int, seed: int) -> np.ndarray:
    """scanpy's Leiden on a given graph at ``k`` clusters (``her2st_clusterers.leiden_at_k``)."""
    import anndata as ad

    sys.path.insert(0, str(HERE))
    from her2st_clusterers import leiden_at_k

    return leiden_at_k(ad.AnnData(np.zeros((g.shape[0], 1), dtype=np.float32)), k, seed, adjacency=g)


def measure(grid: str, seed: int) -> dict:
    import torch
    from sklearn.cluster import KMeans, SpectralClustering
    from sklearn.metrics import adjusted_rand_score as ari

    sys.path.insert(0, str(HERE))
    from crossmodal import _blocks

    from napari_senca.datasets import crossmodal_section

    torch.set_num_threads(1)
    adata = crossmodal_section(600, grid, seed=seed)
    truth = adata.obs["label"].astype(str).to_numpy()
    k = len(set(truth))
    rna, img = _blocks(adata, seed, "none")
    blocks = [l2(rna), l2(img)]
    knn = [_knn(z, K) for z in blocks]
    w = wnn_weights(blocks, knn)
    km = KMeans(k, n_init=10, random_state=seed)
    g = wnn_graph(blocks, knn, w)
    spec = SpectralClustering(k, affinity="precomputed", random_state=seed, assign_labels="cluster_qr")
    out = {"section": f"{grid} {seed}", "rna weight mean": float(w[:, 0].mean()),
           "rna weight sd": float(w[:, 0].std()),
           "concat, k-means": ari(truth, km.fit_predict(np.hstack([rna, img]))),
           "WNN-weighted blocks, k-means": ari(truth, km.fit_predict(np.hstack([np.sqrt(2 * w[:, :1]) * rna,
                                                                               np.sqrt(2 * w[:, 1:]) * img]))),
           "WNN graph, spectral": ari(truth, spec.fit_predict(g.toarray())),
           "WNN graph, Leiden (k)": ari(truth, leiden_graph(g, k, seed))}
    return {key: float(v) if not isinstance(v, str) else v for key, v in out.items()}


def table(paths: list[str]) -> str:
    rows = [json.loads(line) for p in paths for line in open(p)]
    keys = [key for key in rows[0] if key != "section"]
    lines = ["| read-out | median (12) | square | hex | min | paired vs concat: median, better on |", "|---|---|---|---|---|---|"]
    for key in keys:
        vals = [r[key] for r in rows]
        sq = [r[key] for r in rows if r["section"].startswith("square")]
        hx = [r[key] for r in rows if r["section"].startswith("hex")]
        diff = [r[key] - r["concat, k-means"] for r in rows]
        paired = "" if key.startswith("rna weight") else f"{statistics.median(diff):+.3f}, {sum(d > 0 for d in diff)} / {len(diff)}"
        lines.append(f"| {key} | {statistics.median(vals):.3f} | {statistics.median(sq):.3f} | "
                     f"{statistics.median(hx):.3f} | {min(vals):.3f} | {paired} |")
    return "\n".join(lines)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    if sys.argv[1] == "--table":
        print(table(sys.argv[2:]))
    else:
        sys.path.insert(0, str(HERE))
        from her2st_clusterers import seed_range

        for sd in seed_range(sys.argv[2]):
            print(json.dumps(measure(sys.argv[1], sd)), flush=True)
