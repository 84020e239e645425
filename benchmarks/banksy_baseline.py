"""BANKSY-style features as a HER2ST baseline (fourteenth session, issue 9's HER2ST target).

BANKSY (Singhal et al., Nature Genetics 2024) clusters each spot's own expression beside its
neighbourhood's: ``[sqrt(1 - lambda) x, sqrt(lambda) m, sqrt(lambda) g]`` where ``m`` is the
Gaussian-weighted mean over the 15 nearest spots and ``g`` the magnitude of the first azimuthal
Gabor harmonic (a local expression gradient, "AGF"); then PCA and a clusterer. Re-implemented
here from the paper's description (the package is R/Python with its own dependencies), on the
same 500 scaled HVGs the smoothed-PCA baseline uses; lambda 0.2/0.5/0.8 (0.8 is BANKSY's
setting for domains), with and without the AGF, 10 or 20 PCs; k-means (seeds 0-2) and Leiden
(seed 0; needs igraph).

Usage::

    PYTHONPATH=src python benchmarks/banksy_baseline.py A1,B1,C1,D1 > banksy.jsonl   # and the rest beside it
    python benchmarks/banksy_baseline.py --table banksy.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def banksy(x: np.ndarray, xy: np.ndarray, lam: float, kgeom: int = 15, agf: bool = True, npcs: int = 20,
           seed: int = 0) -> np.ndarray:
    """(n, npcs) PCs of the BANKSY feature matrix of expression ``x`` (n, G) at spot positions ``xy``."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    d, idx = NearestNeighbors(n_neighbors=kgeom + 1).fit(xy).kneighbors(xy)
    d, idx = d[:, 1:], idx[:, 1:]  # (n, kgeom) without the spot itself
    w = np.exp(-(d**2) / (2 * np.median(d) ** 2))
    w /= w.sum(1, keepdims=True)
    m = np.einsum("nk,nkg->ng", w, x[idx])  # (n, G) neighbourhood mean
    blocks = [np.sqrt(1 - lam) * x, np.sqrt(lam) * m]
    if agf:
        vec = xy[idx] - xy[:, None]
        phase = np.exp(1j * np.arctan2(vec[..., 1], vec[..., 0]))  # (n, kgeom)
        blocks.append(np.sqrt(lam) * np.abs(np.einsum("nk,nkg->ng", w * phase, x[idx] - m[:, None])))
    return PCA(npcs, random_state=seed).fit_transform(np.hstack(blocks))


def measure(section: str) -> dict:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score as ari

    sys.path.insert(0, str(HERE))
    from her2st import shared_data
    from her2st_clusterers import leiden_k

    from napari_senca.config import SencaConfig
    from napari_senca.io import read_section
    from napari_senca.preprocess import preprocess_expression

    ad = read_section(shared_data() / ("dlpfc_151510" if section == "DLPFC" else f"her2st/{section}"))
    mk = ad.obs["label"].notna().to_numpy()
    truth = ad.obs["label"].to_numpy()[mk].astype(str)
    k = len(set(truth))
    x = preprocess_expression(ad, SencaConfig()).X.astype(np.float64)
    xy = np.asarray(ad.obsm["spatial"], dtype=float)
    out: dict = {"section": section}
    for seed in range(3):
        for lam in (0.2, 0.5, 0.8):
            for agf in (True, False):
                for npcs in (10, 20):
                    z = banksy(x, xy, lam, agf=agf, npcs=npcs, seed=seed)
                    key = f"BANKSY lambda {lam}{' + AGF' if agf else ''}, {npcs} PCs"
                    lab = KMeans(k, n_init=10, random_state=seed).fit_predict(z)
                    out.setdefault(key + ", k-means", []).append(float(ari(truth, lab[mk])))
                    if npcs == 20 and seed == 0:
                        out.setdefault(key + ", Leiden", []).append(float(ari(truth, leiden_k(z, k, seed)[mk])))
    return out


def table(paths: list[str]) -> str:
    rows = [json.loads(line) for p in paths for line in open(p)]
    sections = [r["section"] for r in rows]
    lines = ["| features, clusterer | HER2ST mean | " + " | ".join(sections) + " |", "|---|---|" + "---|" * len(sections)]
    for key in (k for k in rows[0] if k != "section"):
        vals = [statistics.mean(r[key]) for r in rows]
        her2st = [v for v, sec in zip(vals, sections, strict=True) if sec != "DLPFC"]
        lines.append(f"| {key} | {statistics.mean(her2st):.4f} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    if sys.argv[1] == "--table":
        print(table(sys.argv[2:]))
    else:
        for sec in sys.argv[1].split(","):
            print(json.dumps(measure(sec)), flush=True)
