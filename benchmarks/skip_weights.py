"""Does re-weighting the clustered embedding let the gated fusion beat the naive concatenation? (issue 9)

The gated fusion clusters ``[RNA block, gate * image block] / sqrt(1 + gate^2)`` beside
``skip_weight * S`` (``embedding.clustered_embedding``); the naive concatenation clusters the two
blocks alone. One gated run per cross-modal section (600 spots); the blocks are taken back out
of its embedding and re-weighted without retraining: S weight 0 (the two blocks alone, i.e. the
concatenation of the same features) to 3, image block x0.5 or x1, k-means or Ward. Seeds 0-2 and
3-5 are reported apart, so a weighting chosen on one half can be checked on the other.
One JSON line per section; ``--table`` summarises (docs/method.md, "Fusion").

    PYTHONPATH=src python benchmarks/skip_weights.py square 0 >> skip.jsonl
    python benchmarks/skip_weights.py --table skip.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

SKIP_WEIGHTS = (0, 0.35, 0.7, 1.0, 1.5, 3.0)


def measure(grid: str, seed: int) -> dict:
    import numpy as np
    import torch
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score as ari

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from crossmodal import _baseline

    from napari_senca.cluster import cluster_embedding
    from napari_senca.config import GATED_FUSION, SencaConfig
    from napari_senca.datasets import crossmodal_section
    from napari_senca.pipeline import run_senca

    torch.set_num_threads(1)
    ad = crossmodal_section(600, grid, seed=seed)
    truth = ad.obs["label"].astype(str).to_numpy()
    k = len(set(truth))
    cfg = SencaConfig(n_clusters=k, seed=seed, image_weights="none", **GATED_FUSION)
    res = run_senca(ad, cfg)
    g, z = float(res.image_gate), res.embedding
    out = {"grid": grid, "seed": seed, "gate": g, "gated": ari(truth, res.labels)}
    if g == 0:
        return out  # the image block is not in the embedding
    c, p = 1 / np.sqrt(1 + g * g), cfg.skip_pcs
    rna, img, s = z[:, :p] / c, z[:, p : 2 * p] / (c * g), z[:, 2 * p :] / cfg.skip_weight
    for sw in SKIP_WEIGHTS:
        for iw in (0.5, 1.0):
            zz = np.hstack([rna, iw * img, sw * s])
            out[f"S x{sw}, image x{iw}"] = ari(truth, KMeans(k, n_init=10, random_state=seed).fit_predict(zz))
            if iw == 1.0:
                out[f"S x{sw}, Ward"] = ari(truth, cluster_embedding(zz, k, "agglomerative", seed)[0])
    for kind in ("concat", "concat_half"):
        out[kind] = ari(truth, _baseline(ad, kind, k, seed, "none"))
    return out


def table(path: str) -> str:
    rows = [json.loads(line) for line in open(path)]
    keys = [k for k in rows[0] if k not in ("grid", "seed", "gate")]
    lines = ["| embedding | all: median | seeds 0-2 | seeds 3-5 | min |", "|---|---|---|---|---|"]
    for k in keys:
        vals = [r[k] for r in rows if k in r]
        half = [[r[k] for r in rows if k in r and (r["seed"] < 3) == first] for first in (True, False)]
        med = [f"{statistics.median(h):.3f}" if h else "–" for h in half]
        lines.append(f"| {k} | {statistics.median(vals):.3f} | {med[0]} | {med[1]} | {min(vals):.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        print(table(sys.argv[2]))
    else:
        print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
