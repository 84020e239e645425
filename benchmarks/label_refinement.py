"""Does a SpaGCN/GraphST-style label refinement raise ARI on HER2ST and DLPFC?

Refinement relabels a spot with the majority label of its k nearest spots when that label
holds more than half of them and more of them than the spot's own label (SpaGCN's
``refine``; GraphST's ``refinement`` is the same vote over more neighbours). Applied to the
smoothed-PCA baseline (`pca_nbr_kmeans`: 10 PCs of the scaled HVGs averaged over 4 spatial
neighbours, k-means), for k = 4, 6, 8, 12 neighbours, one round and three rounds. ARI median
over seeds 0-2 on labelled spots. One JSON line per section (docs/method.md, "Clustering").

    PYTHONPATH=src python benchmarks/label_refinement.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SECTIONS = [f"her2st/{s}" for s in ("A1", "B1", "C1", "D1", "E1", "F1", "G2", "H1")] + ["dlpfc_151510"]


def refine(labels: np.ndarray, xy: np.ndarray, k: int, rounds: int = 1) -> np.ndarray:
    """Majority vote of the ``k`` nearest spots, repeated ``rounds`` times."""
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
    lab = labels.copy()
    for _ in range(rounds):
        new = lab.copy()
        for i in range(len(lab)):
            vals, cnt = np.unique(lab[idx[i]], return_counts=True)
            j = cnt.argmax()
            if vals[j] != lab[i] and cnt[j] > k / 2 and (lab[idx[i]] == lab[i]).sum() < cnt[j]:
                new[i] = vals[j]
        lab = new
    return lab


def measure(path: Path) -> dict:
    from sklearn.metrics import adjusted_rand_score as ari

    sys.path.insert(0, str(HERE))
    from her2st import _baseline

    from napari_senca.io import read_section

    ad = read_section(path)
    keep = ad.obs["label"].notna().to_numpy()
    truth = ad.obs["label"].to_numpy()[keep].astype(str)
    k_regions = len(set(truth))
    xy = np.asarray(ad.obsm["spatial"], float)[:, :2]
    res: dict[str, list[float]] = {}
    for seed in range(3):
        lab = _baseline(ad, k_regions, seed, smooth=True)
        res.setdefault("none", []).append(ari(truth, lab[keep]))
        for k in (4, 6, 8, 12):
            for rounds in (1, 3):
                res.setdefault(f"k{k} x{rounds}", []).append(ari(truth, refine(lab, xy, k, rounds)[keep]))
    return {"section": path.name, **{m: round(float(np.median(v)), 3) for m, v in res.items()}}


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    from her2st import shared_data

    for sec in SECTIONS:
        print(json.dumps(measure(shared_data() / sec)), flush=True)
