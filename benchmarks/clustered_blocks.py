"""What the clustered embedding is made of, re-weighted over nine trained models per section (no training).

The default clusters ``[skip block, skip_weight x S]``: the skip block is the
first ``skip_pcs`` (20) principal components of the scaled expression averaged
over one hop of the GCN-normalised spot graph, S the model's learned
embedding, both unit-scaled (``embedding.clustered_embedding``). The
smoothed-PCA baseline of ``her2st.py`` clusters 10 PCs averaged uniformly over
a spot and its 4 neighbours. This script takes the nine models per section
that ``seed_ensemble.py --save-runs DIR`` saved (seeds 0-8; S is the last
columns of each saved embedding divided by 0.7) and clusters, for every seed,
the skip block made with 5 / 10 / 20 PCs and GCN or uniform averaging, beside S
at weights 0 (the block alone) to 1, with k-means as the default does
(10 restarts, ``random_state`` = the seed). Reports the mean ARI over the nine
seeds per section and the HER2ST mean with the spread of its per-seed values::

    PYTHONPATH=src python benchmarks/clustered_blocks.py --runs /tmp/ens/runs --json /tmp/blocks.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from her2st import SECTIONS, neighbour_mean, shared_data  # noqa: E402

WEIGHTS = (0.0, 0.35, 0.5, 0.7, 1.0)
BLOCKS = {"20 PCs, GCN (default)": (20, "gcn"), "10 PCs, GCN": (10, "gcn"), "10 PCs, uniform (baseline)": (10, "mean"),
          "20 PCs, uniform": (20, "mean"), "5 PCs, GCN": (5, "gcn")}  # fmt: skip
DEFAULT_WEIGHT = 0.7  # the skip_weight the saved embeddings were made with


def averaging(adata, how: str):
    """The spot graph's averaging operator: GCN-normalised (the model's) or the uniform mean over a spot and its neighbours."""
    from napari_senca.graph import build_graph, normalized_adjacency

    if how == "gcn":
        return normalized_adjacency(build_graph(adata.obsm["spatial"], 4))
    return neighbour_mean(adata)


def section_scores(name: str, path: str, runs: Path, seeds: int) -> dict[str, list[float]]:
    """ARI per (block, weight) for each seed of one section."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.config import SencaConfig
    from napari_senca.embedding import unit
    from napari_senca.io import read_section
    from napari_senca.preprocess import preprocess_expression

    adata = read_section(path)
    saved = np.load(runs / f"{name}.npz", allow_pickle=True)
    labelled, truth = saved["labelled"].astype(bool), saved["truth"]
    k = len(np.unique(truth[labelled]))
    x = preprocess_expression(adata, SencaConfig()).X
    ops = {how: averaging(adata, how) for how in ("gcn", "mean")}
    out: dict[str, list[float]] = {}
    for block, (n_pcs, how) in BLOCKS.items():
        for w in WEIGHTS:
            vals = []
            for m in range(seeds):
                skip = unit(np.asarray(ops[how] @ PCA(n_pcs, random_state=m).fit_transform(x)))
                s = saved[f"emb_{m}"][:, -10:] / DEFAULT_WEIGHT  # the unit-scaled S
                z = skip if w == 0 else np.hstack([skip, w * s])
                pred = KMeans(k, n_init=10, random_state=m).fit_predict(z)
                vals.append(float(adjusted_rand_score(truth[labelled], pred[labelled])))
            out[f"{block} | S x {w}"] = vals
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder of seed_ensemble.py --save-runs")
    ap.add_argument("--seeds", type=int, default=9)
    ap.add_argument("--dlpfc", action="store_true", help="also DLPFC 151510 (saved as DLPFC.npz)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    root = shared_data()
    sections = {s: str(root / "her2st" / s) for s in SECTIONS}
    if args.dlpfc:
        sections["DLPFC"] = str(root / "dlpfc_151510")
    res = {name: section_scores(name, path, args.runs, args.seeds) for name, path in sections.items()}
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    print(f"Mean ARI over seeds 0-{args.seeds - 1}; HER2ST: mean over the 8 sections, ± the SD of its per-seed values")
    print("\n| skip block | S weight | HER2ST mean | " + " | ".join(sections) + " |")
    print("|---|---|---|" + "---|" * len(sections))
    for key in res[SECTIONS[0]]:
        block, w = key.split(" | S x ")
        per_seed = [np.mean([res[s][key][m] for s in SECTIONS]) for m in range(args.seeds)]
        cells = " | ".join(f"{np.mean(res[s][key]):.3f}" for s in sections)
        print(f"| {block} | {w} | {np.mean(per_seed):.4f} ± {np.std(per_seed):.3f} | {cells} |")


if __name__ == "__main__":
    main()
