"""Fully convolutional vs per-patch image encoding: agreement and time (issue 10, item 2).

For HER2ST A1 (labelled, with its H&E) both encodings of the default encoder
(resnet18; random weights, since nothing downloads here) are compared:
the time to encode, the agreement of the features (median per-feature Pearson
correlation over spots, and the correlation of the spot-to-spot distance
matrices), image-only ARI (k-means on 20 PCs of the standardised features) and
the model's ARI (full run, several seeds). The unlabelled full-resolution
sections (about 9,300 x 9,900 px) give encoding times only.

    PYTHONPATH=src python benchmarks/image_encoding.py [--seeds 3] [--unlabelled B4,C2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NAPARI_SENCA_CACHE", "off")  # every encoding is timed


def encode(adata, cfg):
    import torch

    from napari_senca.features import encode_iter

    torch.manual_seed(cfg.seed)
    from napari_senca.generators import drain

    t0 = time.perf_counter()
    feats = drain(encode_iter(adata, cfg, torch.device("cpu")))
    return feats, time.perf_counter() - t0


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Median per-feature correlation, and correlation of the spot distance matrices."""
    from scipy.spatial.distance import pdist

    from napari_senca.features import standardise

    za, zb = standardise(a), standardise(b)
    keep = (za.std(0) > 0) & (zb.std(0) > 0)
    per = float(np.median((za[:, keep] * zb[:, keep]).mean(0)))
    dist = float(np.corrcoef(pdist(za), pdist(zb))[0, 1])
    return per, dist


def image_only_ari(feats: np.ndarray, labels, k: int) -> float:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.features import standardise

    z = PCA(20, random_state=0).fit_transform(standardise(feats))
    ok = labels.notna().to_numpy()
    pred = KMeans(k, n_init=10, random_state=0).fit_predict(z)
    return float(adjusted_rand_score(labels[ok].astype(str), pred[ok]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--unlabelled", default="B4,C2")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from napari_senca import SencaConfig
    from napari_senca.pipeline import run_senca
    from napari_senca.runner import read_input
    from napari_senca.section import LABEL_KEY

    data = args.data if args.data.is_dir() else Path("/work/shared/data")
    a1 = read_input(data / "her2st" / "A1")
    k = int(a1.obs[LABEL_KEY].dropna().nunique())
    print(f"## A1: {a1.n_obs} spots, k = {k}, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}\n")
    rows = []
    feats = {}
    for m in ("patches", "fcn"):
        f, secs = encode(a1, SencaConfig(image_weights="none", image_encoding=m))
        feats[m] = f.feats
        rows.append((m, secs, image_only_ari(f.feats, a1.obs[LABEL_KEY], k)))
    per, dist = agreement(feats["patches"], feats["fcn"])
    print("| encoding | encode time (s) | image-only ARI |\n|---|---|---|")
    for m, secs, ari in rows:
        print(f"| {m} | {secs:.1f} | {ari:.3f} |")
    print(f"\nfeature agreement fcn vs patches: median per-feature r = {per:.3f}, distance-matrix r = {dist:.3f}\n")
    print("| encoding | model ARI per seed | median |\n|---|---|---|")
    for m in ("patches", "fcn"):
        aris = []
        for s in range(args.seeds):
            cfg = SencaConfig(image_weights="none", image_encoding=m, seed=s, n_clusters=k, cache_features=False)
            res = run_senca(a1.copy(), cfg)
            from sklearn.metrics import adjusted_rand_score

            ok = a1.obs[LABEL_KEY].notna().to_numpy()
            aris.append(adjusted_rand_score(a1.obs[LABEL_KEY][ok].astype(str), np.asarray(res.labels)[ok]))
        print(f"| {m} | {', '.join(f'{x:.3f}' for x in aris)} | {np.median(aris):.3f} |")
    print("\n## Unlabelled full-resolution sections (time only)\n")
    print("| section | spots | image px | patches (s) | fcn (s) | speed-up |\n|---|---|---|---|---|---|")
    for name in filter(None, args.unlabelled.split(",")):
        ad = read_input(data / "her2st_unlabelled" / name)
        from napari_senca.section import get_image

        img = get_image(ad)[0]
        t = {}
        for m in ("patches", "fcn"):
            t[m] = encode(ad, SencaConfig(image_weights="none", image_encoding=m))[1]
        print(f"| {name} | {ad.n_obs} | {img.shape[1]} x {img.shape[0]} | {t['patches']:.1f} | {t['fcn']:.1f} "
              f"| {t['patches'] / t['fcn']:.1f}x |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
