"""Two more label-free gate candidates (issue 9): how clusterable the image is, and its private part.

For one section (names as in ``gate_signals.py``: A1, DLPFC, cm_<grid>_<seed>), with the
random-init ResNet-18 per patch: the 20 neighbour-averaged PCs of the expression and of the
image features (as the gate uses them); the image's *private* part (the residual of a ridge
regression of the image block on the expression block); and for each block the best silhouette
of k-means at k = 2-6 on its first 10 PCs (2,000 spots sampled). With the labels, the ARI of the
expression block and of the concatenation [RNA, 0.5 x image] for reference. One JSON line::

    PYTHONPATH=src python benchmarks/gate_private.py DLPFC >> private.jsonl
    python benchmarks/gate_private.py --table private.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def blocks(name: str) -> tuple[object, np.ndarray, np.ndarray]:
    """The section and its unit-scaled, neighbour-averaged expression and image blocks (20 PCs each)."""
    import torch
    from gate_signals import _section

    from napari_senca.config import SencaConfig
    from napari_senca.embedding import pcs, smooth, unit
    from napari_senca.features import encode_iter, standardise
    from napari_senca.generators import drain
    from napari_senca.pipeline import _graph_tensors
    from napari_senca.preprocess import preprocess_expression

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ad = _section(name)
    cfg = SencaConfig(image_weights="none", image_encoding="patches", cache_features=False)
    feats = drain(encode_iter(ad, cfg, torch.device("cpu"))).feats
    expr = preprocess_expression(ad, cfg).X
    adj, _, _ = _graph_tensors(np.asarray(ad.obsm["spatial"], float)[:, :2], cfg, torch.device("cpu"))
    rna = unit(smooth(pcs(expr, 20, 0), adj, 1))
    im = unit(smooth(pcs(standardise(feats), 20, 0), adj, 1))
    return ad, rna, im


def silhouettes(z: np.ndarray, ks: tuple[int, ...] = (2, 3, 4, 5, 6)) -> dict[int, float]:
    """Silhouette of k-means at each k on the first 10 PCs of ``z`` (2,000 spots sampled)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    from napari_senca.embedding import pcs, unit

    zz = unit(pcs(z - z.mean(0), 10, 0))
    sub = np.random.default_rng(0).choice(len(zz), min(2000, len(zz)), replace=False)
    return {k: float(silhouette_score(zz[sub], KMeans(k, n_init=10, random_state=0).fit_predict(zz)[sub])) for k in ks}


def measure(name: str) -> dict:
    from sklearn.cluster import KMeans
    from sklearn.linear_model import Ridge
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.pipeline import default_n_clusters

    ad, rna, im = blocks(name)
    private = im - Ridge(alpha=1.0).fit(rna, im).predict(rna)
    out: dict = {"section": name, "r2_image_from_rna": float(1 - (private**2).sum() / ((im - im.mean(0)) ** 2).sum())}
    for label, z in (("private", private), ("image", im), ("rna", rna)):
        out[f"sil_{label}"] = silhouettes(z)
    keep = np.asarray(ad.obs["label"].notna())
    k = default_n_clusters(ad)
    for label, z in (("rna", rna), ("concat05", np.hstack([rna, 0.5 * im]))):
        pred = KMeans(k, n_init=10, random_state=0).fit_predict(z)
        out[f"ari_{label}"] = float(adjusted_rand_score(ad.obs["label"][keep], pred[keep]))
    return out


def table(path: str) -> str:
    lines = ["| section | image from RNA, R^2 | best silhouette: image / RNA / image's private part | image / RNA | ARI: RNA / concat (image x 0.5) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for line in Path(path).read_text().splitlines():
        d = json.loads(line)
        si, sr, sp = (max(d[f"sil_{b}"].values()) for b in ("image", "rna", "private"))
        lines.append(f"| {d['section']} | {d['r2_image_from_rna']:.2f} | {si:.2f} / {sr:.2f} / {sp:.2f} | {si / sr:.2f} | "
                     f"{d['ari_rna']:.3f} / {d['ari_concat05']:.3f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        print(table(sys.argv[2]))
    else:
        print(json.dumps(measure(sys.argv[1])))
