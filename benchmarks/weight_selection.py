"""Can a label-free score pick, per section, how much the learned S counts in the clustered embedding?

The default clusters ``[skip block, 0.7 x S]`` on every section; the nine-seed
runs (``seed_ensemble.py --save-runs DIR``) showed that S helps some sections
(C1 +0.3) and hurts others (A1, F1 -0.2 to -0.3). This script re-clusters the
same nine saved models per section with S at weights 0, 0.35, 0.7, 1, 1.5 and 3
(k-means, 10 restarts, as the default) and lets a score that needs no labels
choose the weight per section and seed: the silhouette, the Calinski-Harabasz
index and the inertia ratio of the partition in its own space, the spatial
coherence of the labels (share of graph edges within a region), the stability
of k-means over restarts, and the agreement of the partition with those of
the other weights. ``oracle`` picks with the labels (the ceiling). Prints the
mean ARI over the nine seeds per section and the HER2ST mean::

    PYTHONPATH=src python benchmarks/weight_selection.py --runs /tmp/ens/runs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from clustered_blocks import DEFAULT_WEIGHT, averaging  # noqa: E402
from her2st import SECTIONS, shared_data  # noqa: E402

WEIGHTS = (0.0, 0.35, 0.7, 1.0, 1.5, 3.0)
SCORES = ("silhouette", "calinski_harabasz", "inertia_ratio", "coherence", "stability", "agreement")


def candidates(name: str, path: str, runs: Path, seeds: int) -> list[list[dict]]:
    """For each seed, one record per weight: the ARI and every label-free score."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score as ari
    from sklearn.metrics import calinski_harabasz_score, silhouette_score

    from napari_senca.config import SencaConfig
    from napari_senca.embedding import unit
    from napari_senca.graph import build_graph
    from napari_senca.io import read_section
    from napari_senca.preprocess import preprocess_expression

    adata = read_section(path)
    saved = np.load(runs / f"{name}.npz", allow_pickle=True)
    lab, truth = saved["labelled"].astype(bool), saved["truth"]
    k = len(np.unique(truth[lab]))
    x = preprocess_expression(adata, SencaConfig()).X
    op = averaging(adata, "gcn")
    edges = build_graph(adata.obsm["spatial"], 4).adjacency.tocoo()
    out = []
    for m in range(seeds):
        skip = unit(np.asarray(op @ PCA(20, random_state=m).fit_transform(x)))
        s = saved[f"emb_{m}"][:, -10:] / DEFAULT_WEIGHT
        recs, parts = [], []
        for w in WEIGHTS:
            z = skip if w == 0 else np.hstack([skip, w * s])
            km = KMeans(k, n_init=10, random_state=m).fit(z)
            p = km.labels_
            runs_ = [KMeans(k, n_init=1, random_state=100 + j).fit_predict(z) for j in range(4)]
            recs.append({"w": w, "ari": float(ari(truth[lab], p[lab])), "silhouette": float(silhouette_score(z, p)),
                         "calinski_harabasz": float(calinski_harabasz_score(z, p)),
                         "inertia_ratio": -float(km.inertia_ / ((z - z.mean(0)) ** 2).sum()),  # higher is better
                         "coherence": float(np.mean(p[edges.row] == p[edges.col])),
                         "stability": float(np.mean([ari(runs_[i], runs_[j]) for i in range(4) for j in range(i + 1, 4)]))})  # fmt: skip
            parts.append(p)
        for i, r in enumerate(recs):
            r["agreement"] = float(np.mean([ari(parts[i], parts[j]) for j in range(len(parts)) if j != i]))
        out.append(recs)
    return out


def pick(recs: list[dict], how: str) -> dict:
    if how.startswith("S x "):
        return next(r for r in recs if r["w"] == float(how[4:]))
    return max(recs, key=lambda r: r["ari" if how == "oracle" else how])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder of seed_ensemble.py --save-runs")
    ap.add_argument("--seeds", type=int, default=9)
    args = ap.parse_args()
    root = shared_data()
    sections = {s: str(root / "her2st" / s) for s in SECTIONS} | {"DLPFC": str(root / "dlpfc_151510")}
    res = {n: candidates(n, p, args.runs, args.seeds) for n, p in sections.items()}
    print(f"Mean ARI over seeds 0-{args.seeds - 1}; HER2ST: mean of the 8 sections ± SD of its per-seed values")
    print("\n| weight of S chosen by | HER2ST mean | " + " | ".join(sections) + " |")
    print("|---|---|" + "---|" * len(sections))
    for how in [f"S x {w}" for w in WEIGHTS] + list(SCORES) + ["oracle"]:
        per_seed = [np.mean([pick(res[s][m], how)["ari"] for s in SECTIONS]) for m in range(args.seeds)]
        cells = " | ".join(f"{np.mean([pick(r, how)['ari'] for r in res[s]]):.3f}" for s in sections)
        print(f"| {how} | {np.mean(per_seed):.4f} ± {np.std(per_seed):.3f} | {cells} |")


if __name__ == "__main__":
    main()
