"""HER2ST (and DLPFC) accuracy and speed benchmark: prints Markdown tables.

ARI against the pathologist labels on labelled spots only (``undetermined``
dropped), with the cluster count set to the number of labelled regions of each
section. Each (section, method) runs its seeds in a fresh child process so that
its peak memory (max RSS) is its own; wall time is measured inside the child
around each run of the method (imports excluded).

Only A1 has an H&E image in ``../shared/data/her2st``: the other sections run
RNA-only, which the table marks. Image weights are random ('none') unless
``--image-weights`` says otherwise, since this machine cannot download ImageNet
weights.

Usage::

    python benchmarks/her2st.py                      # main table, 3 seeds
    python benchmarks/her2st.py --ablations          # + paper ablations, k = 4/8/16
    python benchmarks/her2st.py --dlpfc --finetune   # + DLPFC, frozen vs fine-tuned on A1
    python benchmarks/her2st.py --quick              # 1 seed, main methods only
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

# the fusion designs, spelled out once in crossmodal.py (which imports nothing at module level) so the rows mean the
# same whatever the default is: v1 and v2 count the image fully, random weights included; GATED_V2, GATED15 and
# GATED17 are config.GATED_FUSION to the fourteenth, in the fifteenth-sixteenth and in the seventeenth session, GATED
# is config.GATED_FUSION since the eighteenth (docs/method.md, "Fusion")
from crossmodal import GATED, GATED15, GATED17
from crossmodal import NEW as GATED_V2
from crossmodal import V1 as FUSION_V1
from crossmodal import V2 as FUSION_V2

HERE = Path(__file__).resolve().parent
SECTIONS = ["A1", "B1", "C1", "D1", "E1", "F1", "G2", "H1"]
IMAGE_ONLY = {
    "senca fusion v1 (paper, RNA skip)",
    "senca gated fusion (GATED_FUSION)",
    "senca gated fusion of the seventeenth session (no image decoder)",
    "senca gated fusion of the fifteenth session (image decoder)",
    "senca gated fusion v2 (GATED_FUSION to the fourteenth session)",
    "senca fusion v2 (image decoder + proj. heads + symmetric skip)",
    "pca_nbr + image PCs concat",
    "senca RNA-only (image off)",
    "senca no cross-attention",
    "senca no hierarchical",
    "senca fusion=concat",
    "senca fine-tuned backbone",
}


def shared_data() -> Path:
    env = os.environ.get("NAPARI_SENCA_SHARED")
    for p in ([Path(env)] if env else []) + [HERE.parent.parent / "shared" / "data", Path("/work/shared/data")]:
        if p.is_dir():
            return p
    sys.exit("benchmark data not found: set NAPARI_SENCA_SHARED to the folder holding her2st/")


def _child(task: dict, queue: mp.Queue) -> None:
    """Run one (dataset, method) for every seed and put a list of result dicts on ``queue``."""
    import torch

    torch.set_num_threads(int(task.get("threads", 2)))
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.config import SencaConfig
    from napari_senca.io import read_section

    outs: list[dict] = []
    try:
        adata = read_section(task["path"])
    except Exception as exc:
        queue.put([{"task": dict(task, seed=s), "error": f"{type(exc).__name__}: {exc}"} for s in task["seeds"]])
        return
    labelled = adata.obs["label"].notna().to_numpy()
    truth = adata.obs["label"].to_numpy()[labelled].astype(str)
    k = len(set(truth))
    for seed in task["seeds"]:
        out: dict = {"task": dict(task, seed=seed)}
        try:
            t0 = time.perf_counter()
            method = task["method"]
            if method == "pca_nbr + image PCs concat":
                labels = _concat_baseline(adata, k, seed, task["config"]["image_weights"])
                timings, rna_only = {}, False
            elif method.startswith("pca"):
                labels = _baseline(adata, k, seed, smooth=method == "pca_nbr_kmeans")
                timings: dict = {}
                rna_only = True
            else:
                from napari_senca.pipeline import run_senca

                cfg = SencaConfig(n_clusters=k, seed=seed, **task.get("config", {}))
                res = run_senca(adata, cfg)
                labels, timings, rna_only = res.labels, res.timings, res.rna_only
            out.update(
                ari=float(adjusted_rand_score(truth, np.asarray(labels)[labelled])),
                seconds=time.perf_counter() - t0,
                timings=timings,
                rna_only=rna_only,
                n_spots=int(adata.n_obs),
                k=k,
            )
        except Exception as exc:  # reported in the table, never hides a crash
            out["error"] = f"{type(exc).__name__}: {exc}"
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        outs.append(out)
    queue.put(outs)


def neighbour_mean(adata):
    """``(n, n)`` sparse operator: each spot's row averages it and its neighbours on the k = 4 graph."""
    from napari_senca.graph import neighbour_mean_operator

    return neighbour_mean_operator(adata.obsm["spatial"], 4)


def baseline_features(adata, seed: int, smooth: bool = True) -> np.ndarray:
    """Scanpy-standard PCA (scaled 500 HVGs, 10 PCs) [+ mean over 4 spatial neighbours]: (n, 10)."""
    from sklearn.decomposition import PCA

    from napari_senca.config import SencaConfig
    from napari_senca.preprocess import preprocess_expression

    x = preprocess_expression(adata, SencaConfig()).X
    z = PCA(10, random_state=seed).fit_transform(x)
    if smooth:
        z = neighbour_mean(adata) @ z
    return np.asarray(z)


def _baseline(adata, k: int, seed: int, smooth: bool) -> np.ndarray:
    """:func:`baseline_features` + k-means."""
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=10, random_state=seed).fit_predict(baseline_features(adata, seed, smooth))


def _concat_baseline(adata, k: int, seed: int, image_weights: str) -> np.ndarray:
    """20 neighbour-averaged RNA PCs and 20 neighbour-averaged image-feature PCs, unit-scaled blocks, k-means."""
    sys.path.insert(0, str(HERE))
    from crossmodal import _baseline

    return _baseline(adata, "concat", k, seed, image_weights)


def run_task(task: dict) -> list[dict]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(task, q))
    p.start()
    try:
        res = q.get(timeout=task.get("timeout", 3600))
    except Exception:
        res = [{"task": dict(task, seed=s), "error": "timed out or crashed"} for s in task["seeds"]]
    p.join()
    return res


def _stat(f, vals: np.ndarray) -> str:
    return f"{f(vals):.3f}" if len(vals) > 1 else "–"


def table(results: list[dict], methods: list[str], datasets: list[str], image_sections: set[str]) -> str:
    """Markdown table: median ARI over seeds per dataset, mean and median over datasets.

    The last ARI column is the HER2ST mean of the *mean* over seeds: with few
    seeds the median hides a section whose result flips between two partitions
    (A1: seeds 0-1 give 0.73, most others 0.41-0.54; docs/benchmarks.md, "Tenth session").
    """
    lines = ["| method | " + " | ".join(
        f"{d}{' (H&E)' if d in image_sections else ' (RNA)'}" for d in datasets
    ) + " | HER2ST mean | HER2ST median | HER2ST mean of seed means | s/section (median) | peak MB (max) |"]
    lines.append("|" + "---|" * (len(datasets) + 6))
    for m in methods:
        row, means, secs, mem = [], [], [], []
        for d in datasets:
            rs = [r for r in results if r["task"]["method"] == m and r["task"]["dataset"] == d]
            ok = [r for r in rs if "ari" in r]
            if not ok:
                row.append(float("nan") if rs else float("inf"))  # inf: not run here
                means.append(row[-1])
                continue
            row.append(float(np.median([r["ari"] for r in ok])))
            means.append(float(np.mean([r["ari"] for r in ok])))
            secs += [r["seconds"] for r in ok]
            mem += [r["peak_mb"] for r in ok]
        vals = np.array(row, dtype=float)
        cells = " | ".join("err" if np.isnan(v) else "–" if np.isinf(v) else f"{v:.3f}" for v in vals)
        her2st = np.array([d != "DLPFC" for d in datasets])
        vals = vals[np.isfinite(vals) & her2st]  # mean over HER2ST
        mvals = np.array(means, dtype=float)
        mvals = mvals[np.isfinite(mvals) & her2st]
        lines.append(
            f"| {m} | {cells} | {_stat(np.mean, vals)} | {_stat(np.median, vals)} | {_stat(np.mean, mvals)} | "
            f"{np.median(secs) if secs else float('nan'):.1f} | {max(mem) if mem else float('nan'):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds FIRST .. FIRST + SEEDS - 1")
    ap.add_argument("--quick", action="store_true", help="1 seed, main methods only")
    ap.add_argument("--ablations", action="store_true", help="paper ablations and k = 4/8/16")
    ap.add_argument("--finetune", action="store_true", help="frozen vs fine-tuned backbone on A1")
    ap.add_argument("--dlpfc", action="store_true", help="add the DLPFC 151510 Visium section")
    ap.add_argument("--attention", action="store_true",
                    help="add the neighbourhood (linear) attention row beside the default (auto: all pairs up to 3,000 spots)")
    ap.add_argument("--fusion", action="store_true",
                    help="on image sections: fusion v1 and v2, image off, RNA+image PCs concatenated")
    ap.add_argument("--dlpfc-seeds", type=int, help="seeds on DLPFC (default: --seeds)")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--image-weights", default="none")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--finetune-batch", type=int, default=8, help="patches re-encoded per step when fine-tuning")
    ap.add_argument("--methods", help="only these methods (comma-separated names as in the table)")
    ap.add_argument("--json", type=Path, help="also write every raw result here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a SencaConfig setting for every senca row (repeatable), e.g. attention_hops=2")
    args = ap.parse_args(argv)
    seeds = [args.first_seed] if args.quick else list(range(args.first_seed, args.first_seed + args.seeds))
    root = shared_data()
    datasets = {s: str(root / "her2st" / s) for s in args.sections.split(",")}
    image_sections = {s for s, p in datasets.items() if any(Path(p).glob("*.png")) or any(Path(p).glob("*.jpg"))}
    if args.dlpfc:
        datasets["DLPFC"] = str(root / "dlpfc_151510")
        image_sections.add("DLPFC")
    sets = {k: json.loads(v) for k, v in (a.split("=", 1) for a in args.set)}
    base = {"image_weights": args.image_weights, **sets}
    methods: dict[str, dict | None] = {
        "pca_kmeans": None,
        "pca_nbr_kmeans": None,
        "senca": dict(base),
    }
    if args.attention:
        methods["senca attention=local (linear)"] = dict(base, attention="local")
    if args.fusion:
        methods.update({
            "senca fusion v1 (paper, RNA skip)": dict(base, **FUSION_V1),
            "senca gated fusion (GATED_FUSION)": dict(base, **GATED),
            "senca gated fusion of the seventeenth session (no image decoder)": dict(base, **GATED17),
            "senca gated fusion of the fifteenth session (image decoder)": dict(base, **GATED15),
            "senca gated fusion v2 (GATED_FUSION to the fourteenth session)": dict(base, **GATED_V2),
            "senca fusion v2 (image decoder + proj. heads + symmetric skip)": dict(base, **FUSION_V2),
            "senca RNA-only (image off)": dict(base, use_image=False),
            "pca_nbr + image PCs concat": dict(base),
        })
    ablations: dict[str, dict] = {}
    if args.ablations and not args.quick:
        ablations = {
            "senca S only (no skip)": dict(base, skip_pcs=0),
            "senca RNA-only (image off)": dict(base, use_image=False),
            # the paper's fusion ablations, on fusion v1 counting the (random) image features
            "senca no cross-attention": dict(base, **FUSION_V1, cross_attention=False),
            "senca no hierarchical": dict(base, **FUSION_V1, hierarchical=False),
            "senca fusion=concat": dict(base, **FUSION_V1, fusion="concat"),
            "senca k=8": dict(base, n_neighbors=8),
            "senca k=16": dict(base, n_neighbors=16),
            "senca genes as input": dict(base, input_pcs=0),
            "senca Ward (paper's clustering)": dict(base, cluster_method="agglomerative"),
            "senca no library size column (to the fifteenth session)": dict(base, library_size_weight=0.0),
        }
        methods.update(ablations)
    # --set wins over a row's own preset: before, dict(base, **PRESET) let the preset undo it silently
    methods = {m: None if c is None else {**c, **sets} for m, c in methods.items()}
    if args.methods:
        keep = [m.strip() for m in args.methods.split(",")]
        unknown = sorted(set(keep) - set(methods))
        if unknown:
            sys.exit(f"unknown methods: {', '.join(unknown)}")
        methods = {m: methods[m] for m in keep}
    tasks = []
    for m, cfg in methods.items():
        for d, path in datasets.items():
            if m in ablations and d == "DLPFC":
                continue  # ablations on HER2ST only (DLPFC is the scale case)
            if m in IMAGE_ONLY and d not in image_sections:
                continue  # the same model as "senca" on an RNA-only section
            seeds_d = seeds[: args.dlpfc_seeds] if d == "DLPFC" and args.dlpfc_seeds else seeds
            tasks.append({"method": m, "dataset": d, "path": path, "seeds": seeds_d, "config": cfg or {},
                          "threads": args.threads})
    if args.finetune and "A1" in datasets:
        ft = dict(base, freeze_backbone=False, finetune_batch=args.finetune_batch)
        tasks.append({"method": "senca fine-tuned backbone", "dataset": "A1", "path": datasets["A1"],
                      "seeds": seeds[:1], "config": ft, "threads": args.threads})
        methods["senca fine-tuned backbone"] = ft
    results = []
    for i, t in enumerate(tasks, 1):
        for r in run_task(t):
            results.append(r)
            status = r.get("error") or f"ARI {r['ari']:.3f} in {r['seconds']:.1f}s, {r['peak_mb']:.0f} MB"
            print(f"[{i}/{len(tasks)}] {t['method']} {t['dataset']} seed {r['task']['seed']}: {status}",
                  file=sys.stderr, flush=True)
    print(f"\nARI (median of {len(seeds)} seed(s)); (H&E) = image branch on, (RNA) = RNA-only section\n")
    print(table(results, list(methods), list(datasets), image_sections))
    senca = [r for r in results if r["task"]["method"] == "senca" and "timings" in r]
    if senca:
        print("\nSENCA-st time split (median seconds per section)\n")
        print("| section | preprocess | patches | train | cluster | total |\n|---|---|---|---|---|---|")
        for d in datasets:
            rs = [r["timings"] for r in senca if r["task"]["dataset"] == d]
            if rs:
                med = {k: np.median([t.get(k, 0.0) for t in rs]) for k in ("preprocess", "patches", "train", "cluster", "total")}
                print(f"| {d} | " + " | ".join(f"{med[k]:.2f}" for k in ("preprocess", "patches", "train", "cluster", "total")) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
