"""Self-training refinement of the clusters: does a classifier trained on the clusters find better ones?

The supervised ceiling of ``crossmodal.py`` (a logistic regression that saw the labels) sits
0.04-0.06 above k-means on the same features. This asks whether a classifier trained on the
k-means clusters themselves closes that gap: five rounds of 5-fold cross-validated logistic
regression, each predicting the previous round's labels. One JSON line per section and seed.

Usage::

    python benchmarks/self_training.py crossmodal square      # concatenation, 600 spots, seeds 0-5
    python benchmarks/self_training.py real A1,C1,DLPFC       # the default senca run's embedding, seeds 0-2
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
from crossmodal import _blocks  # noqa: E402
from her2st import shared_data  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import adjusted_rand_score as ari  # noqa: E402
from sklearn.model_selection import StratifiedKFold, cross_val_predict  # noqa: E402

from napari_senca.config import SencaConfig  # noqa: E402


def self_train(z: np.ndarray, labels: np.ndarray, seed: int, c: float = 1.0, rounds: int = 5) -> np.ndarray:
    """``rounds`` of cross-validated logistic regression (inverse regularisation ``c``) on the previous labels."""
    lab = np.unique(labels, return_inverse=True)[1]
    for _ in range(rounds):
        n_splits = int(max(2, min(5, np.bincount(lab).min())))
        folds = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
        lab = cross_val_predict(LogisticRegression(C=c, max_iter=2000), z, lab, cv=folds)
        lab = np.unique(lab, return_inverse=True)[1]
    return lab


def crossmodal(grid: str) -> None:
    from napari_senca.datasets import crossmodal_section

    for seed in range(6):
        ad = crossmodal_section(600, grid, seed=seed)
        truth = ad.obs["label"].astype(str).to_numpy()
        k = len(set(truth))
        z = np.hstack(_blocks(ad, seed, "none", 1))
        lab = KMeans(k, n_init=10, random_state=seed).fit_predict(z)
        rec = {"grid": grid, "seed": seed, "km": round(ari(truth, lab), 3)}
        for c in (0.1, 1.0):
            rec[f"self_C{c}"] = round(ari(truth, self_train(z, lab, seed, c)), 3)
        print(json.dumps(rec), flush=True)


def real(sections: str) -> None:
    from napari_senca.io import read_section
    from napari_senca.pipeline import run_senca

    root = shared_data()
    for name in sections.split(","):
        ad = read_section(root / "dlpfc_151510" if name == "DLPFC" else root / "her2st" / name)
        m = ad.obs["label"].notna().to_numpy()
        truth = ad.obs["label"].to_numpy()[m].astype(str)
        for seed in range(3):
            res = run_senca(ad, SencaConfig(n_clusters=len(set(truth)), seed=seed))
            refined = self_train(np.asarray(res.embedding), np.asarray(res.labels), seed)
            rec = {"section": name, "seed": seed, "senca": round(ari(truth, np.asarray(res.labels)[m]), 3),
                   "senca_self": round(ari(truth, refined[m]), 3)}
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    {"crossmodal": crossmodal, "real": real}[sys.argv[1]](sys.argv[2])
