"""Label-free signals for the image gate, against the ARI they should predict (issue 9).

For each section: the cross-modal agreement (ARI between k-means partitions of the
neighbour-averaged expression PCs and image PCs) for k = 2..10, and, with the labels,
the ARI of a naive concatenation [RNA block, w * image block] for several image weights w,
the image-only ARI and each partition's edge homophily (share of graph edges inside one
cluster). Random image weights (nothing can be downloaded here). One JSON line per
(section, encoding); ``--table`` prints the summary in docs/benchmarks.md ("Gate signals").

Encodings: ``patches`` and ``fcn`` (the random-init ResNet-18 per patch, or pooled from one
fully convolutional pass), and ``stain``: no network, 21 H&E colour-deconvolution statistics per
patch (``skimage.color.rgb2hed``: mean, sd and 10/50/90th percentiles of the haematoxylin, eosin
and residual densities; background share, grey mean and sd; haematoxylin edge strength and
coarse texture; share of strongly haematoxylin- and eosin-stained pixels). The ``stain``
features measure histology a pathologist names (nuclear density, stroma, fat), so they test
whether the random weights are what keeps the image from counting on A1 and DLPFC.

    PYTHONPATH=src python benchmarks/gate_signals.py DLPFC patches >> gate.jsonl
    PYTHONPATH=src python benchmarks/gate_signals.py cm_square_0 fcn >> gate.jsonl
    PYTHONPATH=src python benchmarks/gate_signals.py A1 stain 1.0 >> gate.jsonl   # patch radius 1 spot spacing
    python benchmarks/gate_signals.py --table gate.jsonl
"""

from __future__ import annotations

import json
import sys
import time

DATA = {"A1": "/work/shared/data/her2st/A1", "DLPFC": "/work/shared/data/dlpfc_151510"}
WEIGHTS = (0, 0.2, 0.3, 0.5, 0.7, 1.0)


def _section(name: str):
    from napari_senca.datasets import crossmodal_section
    from napari_senca.io import read_section

    if name.startswith("cm_"):  # cm_<grid>_<seed>: the cross-modal benchmark's 600-spot section
        _, grid, seed = name.split("_")
        return crossmodal_section(600, grid, seed=int(seed))
    return read_section(DATA[name])


def measure(name: str, encoding: str, radius: float = 3.0) -> dict:
    import numpy as np
    import torch
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score as ari

    from napari_senca.config import SencaConfig
    from napari_senca.embedding import pcs, smooth, unit
    from napari_senca.features import encode_iter, standardise
    from napari_senca.generators import drain
    from napari_senca.pipeline import _graph_tensors, default_n_clusters
    from napari_senca.preprocess import preprocess_expression

    torch.set_num_threads(1)
    ad = _section(name)
    base = encoding.removesuffix("_masked")
    cfg = SencaConfig(image_weights="none", image_encoding="patches" if base == "stain" else base, cache_features=False,
                      patch_radius_spacings=radius)
    torch.manual_seed(0)
    t = time.time()
    from napari_senca.patches import iter_patches

    if encoding.endswith("_masked"):  # glass pixels filled with the patch's mean tissue colour before encoding
        import napari_senca.features as features_module

        encoding = encoding[: -len("_masked")]
        masked_from = features_module.iter_patches
        features_module.iter_patches = lambda *a, **k: (mask_glass(b) for b in masked_from(*a, **k))
        out_enc = f"{encoding}_masked"
    else:
        out_enc = encoding
    if encoding == "stain":
        batches = iter_patches(ad, cfg.patch_radius_spacings, 64, 64)
        feats = np.concatenate([stain_features(mask_glass(b) if out_enc != encoding else b) for b in batches])
    else:
        feats = drain(encode_iter(ad, cfg, torch.device("cpu"))).feats
    out: dict = {"section": name, "enc": out_enc, "radius": radius, "encode_s": time.time() - t,
                 "K": default_n_clusters(ad)}
    expr = preprocess_expression(ad, cfg).X
    adj, _, _ = _graph_tensors(np.asarray(ad.obsm["spatial"], float)[:, :2], cfg, torch.device("cpu"))
    rna = unit(smooth(pcs(expr, 20, 0), adj, 1))
    im = unit(smooth(pcs(standardise(feats), min(20, feats.shape[1]), 0), adj, 1))
    src, dst = adj.coalesce().indices().numpy()
    lab = ad.obs["label"]
    keep = np.asarray(lab.notna())

    def km(z, k):
        return KMeans(k, n_init=10, random_state=0).fit_predict(z)

    out["agree"] = {k: ari(km(rna, k), km(im, k)) for k in range(2, 11)}
    # the same agreement on the spots whose patch holds almost no glass (the tissue border left out)
    glass = np.concatenate([stain_features(b)[:, 15] for b in iter_patches(ad, cfg.patch_radius_spacings, 64, 64)])
    inner = glass <= 0.05
    out["glass_free_spots"] = int(inner.sum())
    out["agree_glass_free"] = (float(np.mean([ari(km(rna[inner], k), km(im[inner], k)) for k in range(2, 9)]))
                               if inner.sum() >= 20 else None)
    for w in WEIGHTS:
        lw = km(np.hstack([rna, w * im]), out["K"])
        out[f"w{w}"] = {"ari": ari(lab[keep], lw[keep]), "homophily": float((lw[src] == lw[dst]).mean())}
    li = km(im, out["K"])
    out["image_only"] = {"ari": ari(lab[keep], li[keep]), "homophily": float((li[src] == li[dst]).mean())}
    return out


def mask_glass(batch):
    """``(b, s, s, 3)`` uint8 patches with their glass pixels (grey > 0.82, as ``stain_features`` counts
    background) set to the patch's mean tissue colour: what a patch shows without the slide's border."""
    import numpy as np

    out = batch.copy()
    for patch in out:
        glass = patch.mean(-1) > 0.82 * 255
        if glass.any() and (~glass).any():
            patch[glass] = patch[~glass].mean(0).astype(np.uint8)
    return out


def stain_features(batch):
    """``(b, s, s, 3)`` uint8 patches -> ``(b, 21)`` H&E colour-deconvolution statistics (no learned weights)."""
    import numpy as np
    from scipy import ndimage as ndi
    from skimage.color import rgb2hed

    out = []
    for patch in batch:
        rgb = patch.astype(np.float32) / 255.0
        hed = rgb2hed(rgb)
        h, grey = hed[..., 0], rgb.mean(-1)
        f = [v for c in np.moveaxis(hed, -1, 0) for v in (c.mean(), c.std(), *np.percentile(c, [10, 50, 90]))]
        hs = ndi.gaussian_filter(h, 1.0)
        f += [(grey > 0.82).mean(), grey.mean(), grey.std(),
              np.abs(ndi.sobel(hs, 0)).mean() + np.abs(ndi.sobel(hs, 1)).mean(),
              ndi.gaussian_filter(h, 4.0).std(), (h > 0.05).mean(), (hed[..., 1] > 0.05).mean()]
        out.append(f)
    return np.asarray(out, np.float32)


def table(path: str) -> str:
    rows = ["| section | encoding, patch radius | agreement mean k=2-8 | max | concat ARI / homophily at w = "
            + " / ".join(map(str, WEIGHTS)) + " | image-only ARI |", "|---|---|---|---|---|---|"]
    for line in open(path):
        d = json.loads(line)
        ag = [d["agree"][str(k)] for k in range(2, 9)]
        ws = " ".join(f"{d[f'w{w}']['ari']:.2f}/{d[f'w{w}']['homophily']:.2f}" for w in WEIGHTS)
        rows.append(f"| {d['section']} | {d['enc']}, {d.get('radius', 3.0):g} | {sum(ag) / 7:.3f} | {max(ag):.3f} | {ws} "
                    f"| {d['image_only']['ari']:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        print(table(sys.argv[2]))
    else:
        print(json.dumps(measure(sys.argv[1], sys.argv[2], *(float(r) for r in sys.argv[3:4]))))
