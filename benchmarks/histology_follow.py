"""Do the regions follow the histology where the expression is ambiguous? (issue 9)

The six full-resolution HER2ST H&E of ``../shared/data/her2st_unlabelled/`` (B4, C2-C6) have no
labels, so this benchmark asks a label-free question. For each section and seed it runs

* ``rna``: the default run (random image weights do not count: RNA-only), and
* ``fused``: ``GATED_FUSION`` (the random ResNet-18 features count through the measured gate),
* ``counted``: the paper's fusion (v1) with the random ResNet-18 features counted in full,

and compares both partitions (k regions) with a **histology reference** that no network and no
expression made: k-means on the neighbour-averaged PCs of 21 H&E colour-deconvolution
statistics per patch (``gate_signals.stain_features``: haematoxylin / eosin densities,
background, nuclear edges; the patch the model sees, radius 3 spot spacings). Spots are split by
the RNA-only run's own confidence (the silhouette the Review widget shows): the quarter with the
lowest confidence is "ambiguous", the rest "confident".

Columns: ARI of each partition with the histology reference on ambiguous and confident spots;
the share of ambiguous spots whose region changes from ``rna`` to ``fused``; the image gate the
fused run measured. If the image acts where it should, ``fused`` agrees more with the histology
than ``rna`` on the ambiguous spots and about as much on the confident ones.

    PYTHONPATH=src python benchmarks/histology_follow.py --seeds 3 --json follow.json \
        --figure docs/images/histology_follow_C2.png
    python benchmarks/histology_follow.py --table follow.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "her2st_unlabelled"
SECTIONS = ("B4", "C2", "C3", "C4", "C5", "C6")
#: the paper's fusion (v1: RNA skip, no image decoder) with the random features counted in full
COUNTED = {"image_pcs": 0, "image_recon_weight": 0.0, "projection_heads": False, "skip_mode": "rna", "image_gate": 1.0,
           "random_weights_gate": 1.0}


def histology_reference(adata, k: int, seed: int, radius: float = 3.0) -> np.ndarray:
    """k-means labels of the smoothed stain statistics of each spot's patch (no network, no expression)."""
    import torch
    from gate_signals import stain_features
    from sklearn.cluster import KMeans

    from napari_senca.config import SencaConfig
    from napari_senca.embedding import pcs, smooth, unit
    from napari_senca.features import standardise
    from napari_senca.patches import iter_patches
    from napari_senca.pipeline import _graph_tensors

    cfg = SencaConfig(patch_radius_spacings=radius)
    feats = np.concatenate([stain_features(b) for b in iter_patches(adata, radius, 64, 64)])
    adj, _, _ = _graph_tensors(np.asarray(adata.obsm["spatial"], float)[:, :2], cfg, torch.device("cpu"))
    z = unit(smooth(pcs(standardise(feats), 10, seed), adj, 1))
    return KMeans(k, n_init=10, random_state=seed).fit_predict(z)


def measure(name: str, k: int, seed: int, radius: float = 3.0) -> tuple[dict, dict]:
    """One section and seed: the row of the table, and the partitions (for the figure)."""
    from sklearn.metrics import adjusted_rand_score as ari

    from napari_senca.confidence import silhouette_confidence
    from napari_senca.config import GATED_FUSION, SencaConfig
    from napari_senca.io import read_section
    from napari_senca.pipeline import run_senca

    adata = read_section(ROOT / name)
    runs = {}
    for tag, extra in (("rna", {}), ("fused", GATED_FUSION), ("counted", COUNTED)):
        t = time.perf_counter()
        cfg = SencaConfig(n_clusters=k, seed=seed, image_weights="none", patch_radius_spacings=radius, **extra)
        runs[tag] = run_senca(adata, cfg)
        runs[tag].seconds = time.perf_counter() - t
    hist = histology_reference(adata, k, seed, radius)
    conf = silhouette_confidence(runs["rna"].embedding, runs["rna"].labels)
    amb = conf <= np.quantile(conf, 0.25)
    row = {"section": name, "seed": seed, "k": k, "radius": radius, "n_spots": adata.n_obs, "n_ambiguous": int(amb.sum()),
           "gate": runs["fused"].image_gate, "agreement": runs["fused"].modality_agreement,
           "changed_ambiguous": float((runs["rna"].labels[amb] != runs["fused"].labels[amb]).mean()),
           "rna_vs_fused": ari(runs["rna"].labels, runs["fused"].labels),
           "rna_vs_counted": ari(runs["rna"].labels, runs["counted"].labels)}
    for tag, res in runs.items():
        row[f"{tag}_s"] = res.seconds
        for part, mask in (("ambiguous", amb), ("confident", ~amb), ("all", np.ones_like(amb))):
            row[f"{tag}_{part}"] = ari(hist[mask], res.labels[mask])
    parts = {"adata": adata, "hist": hist, "amb": amb, **{tag: res.labels for tag, res in runs.items()}}
    return row, parts


def glass(name: str, k: int, seed: int, radius: float = 3.0) -> dict:
    """How much glass (grey > 0.82) the patches hold, per cluster of the histology reference and per region
    of the RNA-only and gated runs: does the image follow the tissue border rather than the tissue?"""
    from gate_signals import stain_features

    from napari_senca.config import GATED_FUSION, SencaConfig
    from napari_senca.io import read_section
    from napari_senca.patches import iter_patches
    from napari_senca.pipeline import run_senca

    adata = read_section(ROOT / name)
    stats = np.concatenate([stain_features(b) for b in iter_patches(adata, radius, 64, 64)])
    share, haem = stats[:, 15], stats[:, 0]  # glass share, mean haematoxylin density

    def per(labels: np.ndarray) -> list[dict]:
        return [{"n": int((labels == c).sum()), "glass": float(share[labels == c].mean()),
                 "haematoxylin": float(haem[labels == c].mean())} for c in np.unique(labels)]

    out = {"section": name, "seed": seed, "radius": radius, "median_glass": float(np.median(share)),
           "reference": per(histology_reference(adata, k, seed, radius))}
    for tag, extra in (("rna", {}), ("gated", GATED_FUSION)):
        res = run_senca(adata, SencaConfig(n_clusters=k, seed=seed, image_weights="none",
                                           patch_radius_spacings=radius, **extra))
        out[tag] = per(res.labels)
        out[f"{tag}_gate"] = res.image_gate
    return out


def _med(vals: list[float]) -> str:
    return f"{statistics.median(vals):.3f} [{min(vals):.3f}-{max(vals):.3f}]"


def table(rows: list[dict]) -> str:
    """Medians over seeds [min-max], one line per section and one for all sections."""
    cols = [("rna_ambiguous", "RNA-only, ambiguous"), ("fused_ambiguous", "gated, ambiguous"),
            ("counted_ambiguous", "v1 counted, ambiguous"), ("rna_confident", "RNA-only, confident"),
            ("fused_confident", "gated, confident"), ("counted_confident", "v1 counted, confident"),
            ("gate", "image gate (gated)"), ("rna_vs_counted", "RNA-only vs v1 counted (ARI)")]
    out = ["| section | spots | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 2) + "|"]
    names = list(dict.fromkeys(r["section"] for r in rows))
    for name in [*names, "all"]:
        sel = [r for r in rows if name in ("all", r["section"])]
        n = "" if name == "all" else str(sel[0]["n_spots"])
        out.append(f"| {name} | {n} | " + " | ".join(_med([r[c] or 0.0 for r in sel]) for c, _ in cols) + " |")
    out.append("")
    for tag, name in (("fused", "gated"), ("counted", "v1 counted")):
        for part in ("ambiguous", "confident"):
            diff = [r[f"{tag}_{part}"] - r[f"rna_{part}"] for r in rows]
            out.append(f"{name} - RNA-only, agreement with the histology on {part} spots (paired by section and "
                       f"seed): {_med(diff)}; higher in {sum(d > 0 for d in diff)} of {len(diff)}")
    return "\n".join(out)


def figure(parts: dict, path: str, title: str) -> None:
    """H&E with the RNA-only regions, the fused regions and the histology reference; ambiguous spots ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_senca.section import get_image, spot_spacing

    adata = parts["adata"]
    img, scale = get_image(adata)[:2]
    step = max(1, img.shape[0] // 1200)
    small, xy = img[::step, ::step], np.asarray(adata.obsm["spatial"], float) * scale / step
    fig, axes = plt.subplots(1, 5, figsize=(25, 5.6))
    axes[0].imshow(small)
    axes[0].set_title(f"{title}: H&E")
    names = ("RNA-only (default)", "gated fusion (random ResNet)", "v1, random ResNet counted", "histology reference (stain)")
    for ax, key, name in zip(axes[1:], ("rna", "fused", "counted", "hist"), names, strict=True):
        ax.imshow(small)
        ax.scatter(*xy.T, c=parts[key], cmap="tab10", vmin=0, vmax=9, s=110, alpha=0.55)
        amb = parts["amb"]
        ax.scatter(*xy[amb].T, facecolors="none", edgecolors="k", s=150, linewidths=1.0)
        ax.set_title(name)
    pad = 2.0 * spot_spacing(adata) * scale / step
    for ax in axes:
        ax.set_axis_off()
        ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
        ax.set_ylim(xy[:, 1].max() + pad, xy[:, 1].min() - pad)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("-k", type=int, default=4, help="regions per section (no labels: fixed, default 4)")
    p.add_argument("--patch-radius", type=float, default=3.0, help="patch radius in spot spacings (default 3)")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--figure", help="PNG of the first section at --figure-seed")
    p.add_argument("--figure-seed", type=int, default=0)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--table", help="print the table of a JSON file written before")
    p.add_argument("--glass", action="store_true", help="print the glass share per region / reference cluster "
                   "(one JSON line per section and seed) instead of the table")
    a = p.parse_args(argv)
    if a.table:
        print(table(json.loads(Path(a.table).read_text())))
        return 0
    import torch

    torch.set_num_threads(1)
    if a.glass:
        for name in a.sections.split(","):
            for seed in range(a.first_seed, a.first_seed + a.seeds):
                print(json.dumps(glass(name, a.k, seed, a.patch_radius)), flush=True)
        return 0
    rows = []
    for i, name in enumerate(a.sections.split(",")):
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            row, parts = measure(name, a.k, seed, a.patch_radius)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if a.figure and i == 0 and seed == a.figure_seed:
                figure(parts, a.figure, name)
            if a.json:
                Path(a.json).write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
