"""Edge-preserving neighbour averaging: does it recover the border spots? (issue 9, twelfth session)

Every error of the naive concatenation's k-means on the cross-modal sections lies on a region
border (``fused_readout.py --errors``): averaging over the spot graph blurs the two sides.
A bilateral average weighs each neighbour j of spot i by ``exp(-|z_i - z_j|^2 / (tau * m))``
(m: the median squared distance between neighbours; the spot itself at weight 1); ``--soft``
renormalises the neighbours' weights to their plain total, so no spot (an outlier included)
is left unaveraged. ``tau=0`` is the plain average. Applied to

* the cross-modal sections (600 spots, seeds 0-5, both grids): 20 PCs of RNA and of the
  random-ResNet patch features, unit-scaled blocks, the joint distance, k-means (k = 6);
* HER2ST A1-H1 and DLPFC 151510: the smoothed-PCA baseline (10 PCs of the scaled 500 HVGs,
  4 neighbours, k-means, k = the labelled regions), seeds 0-8.

One JSON line per section (ARI per setting and seed); ``--table`` prints means.

    PYTHONPATH=src python benchmarks/edge_smoothing.py square 0 [--soft] >> edge.jsonl
    PYTHONPATH=src python benchmarks/edge_smoothing.py A1 [--soft] >> edge.jsonl
    python benchmarks/edge_smoothing.py --table edge.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np

SETTINGS = [(h, t) for h in (1, 2) for t in (0, 0.5, 1, 2)]


def neighbours(xy: np.ndarray, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(n, m) neighbour index and 0/1 mask of the spot graph (``graph.build_graph``, ``k`` neighbours), the
    spot itself left out (``graph.neighbour_index`` without its first column)."""
    from napari_senca.graph import build_graph, neighbour_index

    idx, mask = neighbour_index(build_graph(xy, k))
    return idx[:, 1:], mask[:, 1:].astype(np.float64)


def bilateral(z: np.ndarray, idx: np.ndarray, mask: np.ndarray, hops: int, tau: float, soft: bool) -> np.ndarray:
    """``z`` averaged ``hops`` times over itself and its graph neighbours, weighted by feature similarity."""
    for _ in range(hops):
        d2 = ((z[idx] - z[:, None, :]) ** 2).sum(-1)  # (n, m)
        if tau > 0:
            scale = tau * float(np.median(d2[mask > 0]))
            nearest = np.where(mask > 0, d2, np.inf).min(1, keepdims=True)
            w = np.exp(-(d2 - (np.nan_to_num(nearest, posinf=0.0) if soft else 0.0)) / scale) * mask
            if soft:  # the neighbours keep their plain total weight
                w = np.nan_to_num(w / w.sum(1, keepdims=True)) * mask.sum(1, keepdims=True)
        else:
            w = mask
        w = np.concatenate([np.ones((len(z), 1)), w], 1)  # (n, 1 + m): the spot itself first
        zz = np.concatenate([z[:, None, :], z[idx]], 1)  # (n, 1 + m, d)
        z = (w[..., None] * zz).sum(1) / w.sum(1, keepdims=True)
    return z


def measure(name: str, seed: int | None, soft: bool) -> dict:
    import torch
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score as ari

    from napari_senca.config import SencaConfig
    from napari_senca.embedding import pcs, unit
    from napari_senca.preprocess import preprocess_expression

    torch.set_num_threads(1)
    out: dict = {"section": name if seed is None else f"{name} {seed}", "soft": soft}
    if seed is not None:  # a cross-modal section
        from napari_senca.datasets import crossmodal_section
        from napari_senca.features import encode_iter, standardise
        from napari_senca.generators import drain

        ad = crossmodal_section(600, name, seed=seed)
        cfg = SencaConfig(seed=seed, image_weights="none", image_encoding="patches")
        torch.manual_seed(seed)
        feats = drain(encode_iter(ad, cfg, torch.device("cpu"))).feats
        blocks = [unit(pcs(preprocess_expression(ad, cfg).X, 20, seed)), unit(pcs(standardise(feats), 20, seed))]
        z0s, labelled, seeds = [np.hstack(blocks)], np.ones(ad.n_obs, bool), [seed]
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from her2st import shared_data

        from napari_senca.io import read_section

        root = shared_data()
        ad = read_section(root / ("dlpfc_151510" if name == "DLPFC" else f"her2st/{name}"))
        labelled = ad.obs["label"].notna().to_numpy()
        x = preprocess_expression(ad, SencaConfig()).X
        seeds = list(range(9))
        z0s = [PCA(10, random_state=s).fit_transform(x) for s in seeds]
    truth = ad.obs["label"].astype(str).to_numpy()[labelled]
    k = len(set(truth))
    idx, mask = neighbours(np.asarray(ad.obsm["spatial"])[:, :2])
    for hops, tau in SETTINGS:
        scores = []
        for s, z0 in zip(seeds, z0s, strict=True):
            z = bilateral(z0, idx, mask, hops, tau, soft)
            if seed is not None:  # keep the two blocks at unit scale after averaging
                z = np.hstack([unit(z[:, :20]), unit(z[:, 20:])])
            scores.append(ari(truth, KMeans(k, n_init=10, random_state=s).fit_predict(z)[labelled]))
        out[f"{hops} hop(s), tau {tau}"] = scores
    return out


def table(path: str) -> str:
    rows = [json.loads(line) for line in open(path)]
    keys = [f"{h} hop(s), tau {t}" for h, t in SETTINGS]
    lines = []
    for soft in (False, True):
        synth = [r for r in rows if r["soft"] == soft and r["section"].split()[0] in ("square", "hex")]
        real = [r for r in rows if r["soft"] == soft and r["section"].split()[0] not in ("square", "hex")]
        her = [r for r in real if r["section"] != "DLPFC"]
        dl = [r for r in real if r["section"] == "DLPFC"]
        lines += [f"\n{'soft' if soft else 'plain'} weights", "| setting | cross-modal median (12) | paired vs plain "
                  "| better on | HER2ST mean (8 x 9 seeds) | DLPFC |", "|---|---|---|---|---|---|"]
        for key in keys:
            v = [r[key][0] for r in synth]
            d = [r[key][0] - r["1 hop(s), tau 0"][0] for r in synth]
            h = statistics.mean(statistics.mean(r[key]) for r in her) if her else float("nan")
            dd = statistics.mean(dl[0][key]) if dl else float("nan")
            lines.append(f"| {key} | {statistics.median(v) if v else float('nan'):.3f} | "
                         f"{statistics.median(d) if d else float('nan'):+.3f} | {sum(x > 0 for x in d)} / {len(d)} | "
                         f"{h:.4f} | {dd:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--soft"]
    if args[0] == "--table":
        print(table(args[1]))
    else:
        print(json.dumps(measure(args[0], int(args[1]) if len(args) > 1 else None, "--soft" in sys.argv)))
