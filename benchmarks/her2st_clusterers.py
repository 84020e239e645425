"""Is it the clusterer, on real sections? k-means against Gaussian mixtures (mclust's EEE, the
clusterer of GraphST, STAGATE and DeepST, is sklearn's tied covariance) on the default model's
clustered embedding and on the smoothed-PCA baseline's features, HER2ST's eight sections and
DLPFC 151510 (thirteenth session, issue 9's HER2ST target). ``--potts``: k-means refined under a
Potts prior on the spot lattice instead of the mixtures; ``--graph``: Leiden and spectral
clustering instead (fourteenth session).

One JSON line per (section, seed): ARI on the labelled spots, k = the labelled regions.
``--table`` prints the HER2ST mean of the per-seed means (± SD over seeds) and each section's
mean over seeds, as `her2st.py --seeds 9` does.

Usage::

    PYTHONPATH=src python benchmarks/her2st_clusterers.py A1,B1,C1,D1 0-8 >> clus.jsonl   # and the rest beside it
    PYTHONPATH=src python benchmarks/her2st_clusterers.py A1,B1,C1,D1 0-8 --potts >> potts.jsonl  # Potts instead of GMMs
    PYTHONPATH=src python benchmarks/her2st_clusterers.py A1,B1,C1,D1 0-8 --graph >> graph.jsonl  # Leiden, spectral (needs igraph)
    python benchmarks/her2st_clusterers.py --table clus.jsonl
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
HER2ST = ["A1", "B1", "C1", "D1", "E1", "F1", "G2", "H1"]
POTTS_BETAS = (2.0, 8.0, 16.0)


def lattice(xy: np.ndarray) -> sp.csr_matrix:
    """Spots within 1.2 x the median nearest-spot distance: 4 on an ST square grid, 6 on Visium's hexagons."""
    from sklearn.neighbors import NearestNeighbors, radius_neighbors_graph

    d = NearestNeighbors(n_neighbors=2).fit(xy).kneighbors(xy)[0][:, 1]
    a = radius_neighbors_graph(xy, 1.2 * float(np.median(d)), include_self=False)
    a.data[:] = 1.0
    return a.tocsr()


def potts(z: np.ndarray, labels: np.ndarray, adj, beta: float, rounds: int = 20) -> np.ndarray:
    """Labels under a Potts prior (BayesSpace / HMRF style, iterated conditional modes): each spot
    takes the cluster minimising ``|z - mu_c|^2 / (2 sigma^2) - beta * (neighbours in c)``, with one
    pooled variance per dimension; centroids refit each round."""
    k = int(labels.max()) + 1
    lab = labels.copy()
    for _ in range(rounds):
        mu = np.stack([z[lab == c].mean(0) if np.any(lab == c) else z.mean(0) for c in range(k)])
        var = max(float(((z - mu[lab]) ** 2).mean()), 1e-12)
        dist = ((z[:, None, :] - mu[None]) ** 2).sum(-1) / (2 * var)
        counts = np.asarray(adj @ np.eye(k)[lab])
        new = np.argmin(dist - beta * counts, axis=1)
        if np.array_equal(new, lab):
            break
        lab = new
    return lab


def leiden_k(z: np.ndarray, k: int, seed: int, n_neighbors: int = 15) -> np.ndarray:
    """scanpy's Leiden (igraph flavour) on a 15-nearest-neighbour graph of ``z``, the resolution
    bisected until it gives ``k`` clusters (the closest count after 20 halvings otherwise)."""
    import anndata as ad
    import scanpy as sc

    a = ad.AnnData(np.zeros((len(z), 1), dtype=np.float32), obsm={"z": z})
    sc.pp.neighbors(a, n_neighbors=n_neighbors, use_rep="z", random_state=seed)
    return leiden_at_k(a, k, seed)


def leiden_at_k(a, k: int, seed: int, adjacency: sp.spmatrix | None = None) -> np.ndarray:
    """scanpy's Leiden (igraph flavour) on ``a``'s neighbour graph or on ``adjacency``, the resolution
    bisected until it gives ``k`` clusters (the closest count after 20 halvings otherwise)."""
    import scanpy as sc

    lo, hi, best = 0.01, 5.0, None
    for _ in range(20):
        res = (lo * hi) ** 0.5
        sc.tl.leiden(a, resolution=res, adjacency=adjacency, flavor="igraph", n_iterations=2, random_state=seed,
                     directed=False)
        lab = a.obs["leiden"].cat.codes.to_numpy()
        n = lab.max() + 1
        if best is None or abs(n - k) < abs(best.max() + 1 - k):
            best = lab
        if n == k:
            break
        lo, hi = (res, hi) if n < k else (lo, res)
    return best


def graph_clusterers(z: np.ndarray, k: int, seed: int) -> dict[str, np.ndarray]:
    """Graph-based clusterers on a kNN graph of ``z``: Leiden at k clusters, spectral clustering."""
    from sklearn.cluster import SpectralClustering

    spec = SpectralClustering(k, affinity="nearest_neighbors", n_neighbors=15, random_state=seed,
                              assign_labels="cluster_qr")
    return {"Leiden (k clusters)": leiden_k(z, k, seed), "spectral (15-NN graph)": spec.fit_predict(z)}


def clusterers(z: np.ndarray, k: int, seed: int, adj=None, graph: bool = False) -> dict[str, np.ndarray]:
    """k-means (the default) and beside it: with ``graph``, Leiden and spectral clustering
    (:func:`graph_clusterers`); else with ``adj`` (the spot lattice), k-means refined under a Potts
    prior at ``POTTS_BETAS``; else Gaussian mixtures (:func:`mixtures`)."""
    from sklearn.cluster import KMeans

    km = KMeans(k, n_init=10, random_state=seed).fit_predict(z)
    if graph:
        return {"k-means": km, **graph_clusterers(z, k, seed)}
    if adj is not None:
        return {"k-means": km, **{f"k-means + Potts beta {b}": potts(z, km, adj, b) for b in POTTS_BETAS}}
    return {"k-means": km, **mixtures(z, k, seed)}


def mixtures(z: np.ndarray, k: int, seed: int) -> dict[str, np.ndarray]:
    """Gaussian mixtures with tied (mclust EEE) and full covariance, on ``z`` and on its first 10 PCs
    (mclust is usually run on a few PCs of an embedding)."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    out = {}
    zp = PCA(min(10, z.shape[1]), random_state=seed).fit_transform(z)
    for name, feats in (("", z), (", 10 PCs", zp)):
        for cov in ("tied", "full"):
            g = GaussianMixture(k, covariance_type=cov, n_init=3, random_state=seed, reg_covar=1e-4)
            try:
                out[f"GMM {cov}{name}"] = g.fit_predict(feats)
            except (ValueError, np.linalg.LinAlgError):
                pass  # reported as missing
    return out


def measure(section: str, seed: int, spatial: bool = False, graph: bool = False) -> dict:
    import torch
    from sklearn.metrics import adjusted_rand_score as ari

    sys.path.insert(0, str(HERE))
    from her2st import baseline_features, shared_data

    from napari_senca.config import SencaConfig
    from napari_senca.io import read_section
    from napari_senca.pipeline import run_senca

    torch.set_num_threads(1)
    data = shared_data()
    path = data / "dlpfc_151510" if section == "DLPFC" else data / "her2st" / section
    adata = read_section(path)
    labelled = adata.obs["label"].notna().to_numpy()
    truth = adata.obs["label"].to_numpy()[labelled].astype(str)
    k = len(set(truth))
    res = run_senca(adata, SencaConfig(n_clusters=k, seed=seed, image_weights="none"))
    out = {"section": section, "seed": seed, "senca (run)": float(ari(truth, res.labels[labelled]))}
    adj = lattice(np.asarray(adata.obsm["spatial"], dtype=float)) if spatial else None
    for name, lab in clusterers(np.asarray(res.embedding, dtype=np.float64), k, seed, adj, graph).items():
        out[f"senca, {name}"] = float(ari(truth, lab[labelled]))
    z = baseline_features(adata, seed)  # the smoothed-PCA baseline's features (her2st.py's pca_nbr_kmeans)
    for name, lab in clusterers(z, k, seed, adj, graph).items():
        out[f"smoothed PCA, {name}"] = float(ari(truth, lab[labelled]))
    return out


def table(paths: list[str]) -> str:
    rows = [json.loads(line) for p in paths for line in open(p)]
    keys = [key for key in rows[0] if key not in ("section", "seed")]
    seeds = sorted({r["seed"] for r in rows})
    sections = [s for s in [*HER2ST, "DLPFC"] if any(r["section"] == s for r in rows)]
    lines = [f"| features, clusterer | HER2ST mean ({len(seeds)} seeds) | " + " | ".join(sections) + " |",
             "|---|---|" + "---|" * len(sections)]
    for key in keys:
        per_seed = []
        for s in seeds:
            vals = [r.get(key) for r in rows if r["seed"] == s and r["section"] in HER2ST]
            if len(vals) == len(HER2ST) and None not in vals:
                per_seed.append(statistics.mean(vals))
        head = (f"{statistics.mean(per_seed):.4f} ± {statistics.pstdev(per_seed):.3f}" if per_seed else "–")
        cells = []
        for sec in sections:
            vals = [r[key] for r in rows if r["section"] == sec and r.get(key) is not None]
            cells.append(f"{statistics.mean(vals):.3f}" if vals else "–")
        lines.append(f"| {key} | {head} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    if sys.argv[1] == "--table":
        print(table(sys.argv[2:]))
    else:
        for sec in sys.argv[1].split(","):
            for sd in seed_range(sys.argv[2]):
                print(json.dumps(measure(sec, sd, spatial="--potts" in sys.argv, graph="--graph" in sys.argv)), flush=True)
