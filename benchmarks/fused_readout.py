"""Can a different read-out of the gated fusion beat the naive concatenation? (issue 9, twelfth session)

One gated-fusion run (``config.GATED_FUSION``, random image weights) per cross-modal section
(600 spots); from the trained model, without retraining, k-means on:

* the two decoders' reconstructions from S, the RNA input (``x_hat``) and the image block
  (``f_hat``), each neighbour-averaged over 1 or 2 hops and unit-scaled, the image block at
  x0.5 / x0.7 / x1 (what the RNA-only default clusters since the eleventh session, extended
  to both modalities: the model's denoised inputs in their own metric, no skip block);
* either reconstruction alone, S alone, and both reconstructions beside S;

and, on the labels themselves, SpaGCN's majority-vote refinement over 4, 6 or 8 nearest
spots (1 or 3 rounds) of the gated fusion's and of the two concatenations' labels. One JSON
line per section; ``--table`` prints medians over sections, seeds 0-2 and 3-5 apart, and
how often a row beats the better of the two concatenations on the same section.

    PYTHONPATH=src python benchmarks/fused_readout.py square 0 >> readout.jsonl
    python benchmarks/fused_readout.py --table readout.jsonl
    PYTHONPATH=src python benchmarks/fused_readout.py --errors square 0   # where the concatenation errs
    PYTHONPATH=src python benchmarks/fused_readout.py --attention square 0 >> attn.jsonl  # attention-weighted averaging
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

REFINEMENTS = ((4, 1), (4, 3), (6, 1), (8, 1))


def gated_run(grid: str, seed: int, spots: int) -> tuple:
    """One gated-fusion run (random image weights) on a cross-modal section, one thread: (section, true
    labels, k, result, the trained model, its inputs as the pipeline embedded them)."""
    import torch

    import napari_senca.pipeline as pipeline
    from napari_senca.config import GATED_FUSION, SencaConfig
    from napari_senca.datasets import crossmodal_section

    torch.set_num_threads(1)
    kept: dict = {}
    embed_iter = pipeline.embed_iter

    def keep(model, data, output="s"):  # the trained model and its inputs, as the pipeline embeds them
        kept.update(model=model, data=data)
        return (yield from embed_iter(model, data, output))

    ad = crossmodal_section(spots, grid, seed=seed)
    truth = ad.obs["label"].astype(str).to_numpy()
    k = len(set(truth))
    pipeline.embed_iter = keep
    try:
        res = pipeline.run_senca(ad, SencaConfig(n_clusters=k, seed=seed, image_weights="none", **GATED_FUSION))
    finally:
        pipeline.embed_iter = embed_iter
    return ad, truth, k, res, kept["model"], kept["data"]


def measure(grid: str, seed: int, spots: int = 600) -> dict:
    import numpy as np
    import torch
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score as ari

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from crossmodal import _baseline
    from label_refinement import refine

    from napari_senca.embedding import smooth, unit

    ad, truth, k, res, model, d = gated_run(grid, seed, spots)
    out = {"grid": grid, "seed": seed, "gate": res.image_gate, "gated": ari(truth, res.labels)}
    model.eval()
    with torch.no_grad():
        o = model(d.x, d.adj, d.index, d.mask, d.feats)
    x_hat, f_hat, s = o.x_hat.numpy(), o.f_hat.numpy(), o.s.numpy()

    def km(z):
        return KMeans(k, n_init=10, random_state=seed).fit_predict(z)

    for hops in (1, 2):
        xr, fr, sr = (unit(smooth(a, d.adj, hops)) for a in (x_hat, f_hat, s))
        for w in (0.5, 0.7, 1.0):
            out[f"x_hat + f_hat x{w}, {hops} hop"] = ari(truth, km(np.hstack([xr, w * fr])))
        out[f"x_hat alone, {hops} hop"] = ari(truth, km(xr))
        out[f"f_hat alone, {hops} hop"] = ari(truth, km(fr))
        out[f"S alone, {hops} hop"] = ari(truth, km(sr))
        out[f"x_hat + f_hat + S, {hops} hop"] = ari(truth, km(np.hstack([xr, fr, sr])))
    xy = np.asarray(ad.obsm["spatial"])[:, :2]
    labels = {"gated": res.labels, **{c: _baseline(ad, c, k, seed, "none") for c in ("concat", "concat_half")}}
    for name, lab in labels.items():
        out.setdefault(name, ari(truth, lab))
        for nb, rounds in REFINEMENTS:
            out[f"{name}, refined {nb} nbrs x{rounds}"] = ari(truth, refine(np.asarray(lab), xy, nb, rounds))
    return out


def concat_errors(grid: str, seed: int, spots: int = 600) -> dict:
    """Where the naive concatenation's k-means goes wrong: spots off their region after the best matching of
    clusters to regions, how many of them lie on a region border (a true neighbour among the 8 nearest spots
    in another region), and whether k-means found a lower within-cluster sum of squares than the true regions
    (then no better clusterer of the same objective can recover them)."""
    import numpy as np
    import torch
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score as ari
    from sklearn.metrics import confusion_matrix
    from sklearn.neighbors import NearestNeighbors

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from crossmodal import _blocks

    from napari_senca.datasets import crossmodal_section

    torch.set_num_threads(1)
    ad = crossmodal_section(spots, grid, seed=seed)
    truth = ad.obs["label"].cat.codes.to_numpy().astype(int)
    k = int(truth.max()) + 1
    z = np.hstack(_blocks(ad, seed, "none"))
    km = KMeans(k, n_init=10, random_state=seed).fit(z)
    rows, cols = linear_sum_assignment(-confusion_matrix(truth, km.labels_))
    region_of = dict(zip(cols, rows, strict=True))
    wrong = np.array([region_of[c] for c in km.labels_]) != truth
    xy = np.asarray(ad.obsm["spatial"])[:, :2]
    nbrs = NearestNeighbors(n_neighbors=9).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
    border = (truth[nbrs] != truth[:, None]).any(1)
    centres = np.stack([z[truth == r].mean(0) for r in range(k)])
    return {"grid": grid, "seed": seed, "concat": ari(truth, km.labels_), "wrong": int(wrong.sum()),
            "wrong on a border": int((wrong & border).sum()), "border spots": int(border.sum()),
            "smallest region": int(np.bincount(truth).min()), "k-means SSE": float(km.inertia_),
            "true regions SSE": float(((z - centres[truth]) ** 2).sum())}


def attention_readout(grid: str, seed: int, spots: int = 600) -> dict:
    """The naive concatenation's blocks averaged with the trained gated fusion's cross-attention weights
    (eqs. 3-4: each spot's weights over its neighbourhood, learned from both modalities) instead of the
    fixed normalised adjacency: can the model say where a border is? (thirteenth session)"""
    import numpy as np
    import torch
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score as ari

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from crossmodal import _blocks

    from napari_senca.embedding import smooth, unit
    from napari_senca.model.modules import gather

    ad, truth, k, res, model, d = gated_run(grid, seed, spots)
    model.eval()
    xa = model.xattn
    with torch.no_grad():
        o = model(d.x, d.adj, d.index, d.mask, d.feats)
        rp, hp = xa.proj_r(o.r), xa.proj_h(o.h)  # (n, E)

        def weights(q, keys):  # (n, m) softmax over each spot's neighbourhood, the spot first
            logits = torch.einsum("ne,nme->nm", q, gather(keys, d.index)) * xa.scale
            return torch.softmax(logits.masked_fill(~d.mask, float("-inf")), dim=-1)

        w_img = weights(xa.q1(hp), xa.k1(rp))  # image query over the RNA neighbourhood (A1)
        w_rna = weights(xa.q2(rp), xa.k2(hp))  # RNA query over the image neighbourhood (A2)
    idx = d.index.numpy()
    rna0, img0 = _blocks(ad, seed, "none", hops=0)  # un-averaged, unit-scaled PCs

    def average(z, w, rounds=1):
        for _ in range(rounds):
            z = (w[:, :, None] * z[idx]).sum(1)
        return z

    def km(z):
        return KMeans(k, n_init=10, random_state=seed).fit_predict(z)

    out = {"grid": grid, "seed": seed, "gate": res.image_gate, "gated": ari(truth, res.labels)}
    rna1, img1 = (unit(smooth(b, d.adj, 1)) for b in (rna0, img0))
    out["concat"] = ari(truth, km(np.hstack([rna1, img1])))
    out["concat_half"] = ari(truth, km(np.hstack([rna1, 0.5 * img1])))
    uniform = d.mask.numpy() / d.mask.numpy().sum(1, keepdims=True)
    ws = {"uniform over the neighbourhood": uniform, "cross-attention, mean of both": (w_img + w_rna).numpy() / 2,
          "cross-attention, image query": w_img.numpy(), "cross-attention, RNA query": w_rna.numpy()}
    for name, w in ws.items():
        for rounds in (1, 2):
            z = np.hstack([unit(average(rna0, w, rounds)), unit(average(img0, w, rounds))])
            out[f"concat, {name}, {rounds} round(s)"] = ari(truth, km(z))
    own = (w_img + w_rna).numpy()[:, 0] / 2
    out["mean own weight (uniform 1/m)"] = float(own.mean())
    return out


def table(paths: list[str]) -> str:
    rows = [json.loads(line) for p in paths for line in open(p)]
    keys = [k for k in rows[0] if k not in ("grid", "seed", "gate")]
    lines = ["| read-out | median, 12 sections | seeds 0-2 | seeds 3-5 | min | beats the better concat | "
             "paired median vs it |", "|---|---|---|---|---|---|---|"]
    for key in keys:
        vals = [r[key] for r in rows]
        half = [statistics.median([r[key] for r in rows if (r["seed"] < 3) == first]) for first in (True, False)]
        best = [max(r["concat"], r["concat_half"]) for r in rows]
        wins = sum(v > b for v, b in zip(vals, best, strict=True))
        paired = statistics.median(v - b for v, b in zip(vals, best, strict=True))
        lines.append(f"| {key} | {statistics.median(vals):.3f} | {half[0]:.3f} | {half[1]:.3f} | {min(vals):.3f} | "
                     f"{wins} / {len(rows)} | {paired:+.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        print(table(sys.argv[2:]))
    elif sys.argv[1] == "--attention":
        print(json.dumps(attention_readout(sys.argv[2], int(sys.argv[3]))))
    elif sys.argv[1] == "--errors":
        print(json.dumps(concat_errors(sys.argv[2], int(sys.argv[3]))))
    else:
        print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
