"""Is it the clusterer? k-means against Gaussian mixtures on the naive concatenation and on the
gated fusion's clustered embedding, cross-modal sections (600 spots, seeds 0-5), one JSON line per section.

Usage::

    python benchmarks/clusterers.py square > square.jsonl    # and hex, beside it
    python benchmarks/clusterers.py square --hops             # neighbour averaging over 1-3 hops instead
"""
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))
from crossmodal import NEW, _blocks  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import adjusted_rand_score as ari  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

from napari_senca.config import SencaConfig  # noqa: E402
from napari_senca.datasets import crossmodal_section  # noqa: E402
from napari_senca.pipeline import run_senca  # noqa: E402


def clus(z: np.ndarray, k: int, seed: int) -> dict:
    """Labels of each clusterer (None where a mixture failed to fit)."""
    out = {"km": KMeans(k, n_init=10, random_state=seed).fit_predict(z)}
    for cov in ("full", "diag", "tied"):
        try:
            g = GaussianMixture(k, covariance_type=cov, n_init=3, random_state=seed, reg_covar=1e-4)
            out[f"gmm_{cov}"] = g.fit_predict(z)
        except (ValueError, np.linalg.LinAlgError):
            out[f"gmm_{cov}"] = None
    # full covariance in 10 PCs (fewer parameters per component)
    zp = PCA(min(10, z.shape[1]), random_state=seed).fit_transform(z)
    g = GaussianMixture(k, covariance_type="full", n_init=3, random_state=seed, reg_covar=1e-4)
    out["gmm_full_pca10"] = g.fit_predict(zp)
    return out


def main(grid: str, by_hops: bool = False) -> None:
    for seed in range(6):
        (hops if by_hops else section)(grid, seed)


def hops(grid: str, seed: int) -> None:
    """One section: k-means on the concatenation and the gated fusion, both averaged over 1-3 hops."""
    ad = crossmodal_section(600, grid, seed=seed)
    truth = ad.obs["label"].astype(str).to_numpy()
    k = len(set(truth))
    rec = {"grid": grid, "seed": seed}
    for h in (1, 2, 3):
        z = np.hstack(_blocks(ad, seed, "none", h))
        rec[f"concat_h{h}"] = round(ari(truth, KMeans(k, n_init=10, random_state=seed).fit_predict(z)), 3)
        res = run_senca(ad, SencaConfig(n_clusters=k, seed=seed, image_weights="none", smooth_hops=h, **NEW))
        rec[f"gated_h{h}"] = round(ari(truth, res.labels), 3)
    print(json.dumps(rec), flush=True)


def section(grid: str, seed: int) -> None:
    """One section: the gated run's own ARI, then every clusterer on both embeddings."""
    ad = crossmodal_section(600, grid, seed=seed)
    truth = ad.obs["label"].astype(str).to_numpy()
    k = len(set(truth))
    rna, img = _blocks(ad, seed, "none")
    res = run_senca(ad, SencaConfig(n_clusters=k, seed=seed, image_weights="none", **NEW))
    rec = {"grid": grid, "seed": seed, "gated_default": round(ari(truth, res.labels), 3)}
    for name, z in (("concat", np.hstack([rna, img])), ("gated", res.embedding)):
        for m, lab in clus(z, k, seed).items():
            rec[f"{name}_{m}"] = None if lab is None else round(ari(truth, lab), 3)
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], "--hops" in sys.argv[2:])
