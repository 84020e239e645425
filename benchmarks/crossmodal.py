"""Cross-modal synthetic benchmark: does the fusion find what only both modalities see?

Sections come from :func:`napari_senca.datasets.crossmodal_section`: six
regions, of which 0-3 are a 2 x 2 design of two expression programmes and two
H&E-like textures (RNA alone merges 0+1 and 2+3, the image alone merges 0+2 and
1+3); regions 4 and 5 differ in both. ARI against the six regions, k = 6,
median over seeds with the min-max spread. Image weights are random ('none'):
nothing can be downloaded here, so the image branch sees colour and texture
statistics of a random-init ResNet-18.

Each (grid, seed) section is generated once in a child process that runs every
method on it; the patch features are encoded once and reused (features.py
cache), so the rows differ only in what they compute after the features.

Usage::

    python benchmarks/crossmodal.py --seeds 3 --grids square,hex --spots 600
    python benchmarks/crossmodal.py --methods "fused (default),RNA-only" --seeds 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

# fusion v2 (docs/method.md, "Fusion"): image decoder, projection heads, symmetric skip, image always counted fully
# (random_weights_gate=1: random image weights counted too; the default does not count them)
V2 = {"image_pcs": 30, "image_recon_weight": 1.0, "projection_heads": True, "skip_mode": "both", "image_gate": 1.0,
      "random_weights_gate": 1.0}
V1 = {"image_pcs": 0, "image_recon_weight": 0.0, "projection_heads": False, "skip_mode": "rna", "image_gate": 1.0,
      "random_weights_gate": 1.0}
# the gated presets, spelled out so the benchmark imports nothing at module level and the rows keep their meaning
NEW: dict = {**V2, "image_gate": None}  # v2 with the measured image gate (config.GATED_FUSION to the fourteenth session)
# the fifteenth session's candidates: A (lean) = no projection heads, loss-balanced decoders; B = A + cross-guided
# skip, config.GATED_FUSION in the fifteenth and sixteenth sessions
LEAN: dict = {**NEW, "projection_heads": False, "recon_balance": "loss"}
GATED15: dict = {**LEAN, "cross_guided_tau": 1.0}
# config.GATED_FUSION in the seventeenth session: B without the image decoder (nothing left to balance)
GATED17: dict = {**GATED15, "image_recon_weight": 0.0, "recon_balance": "scale"}
# config.GATED_FUSION since the eighteenth session: the image decoder back at half weight, loss-balanced (against the
# seventeenth's collapse on square seed 4; docs/benchmarks.md, "Eighteenth session")
GATED: dict = {**GATED17, "image_recon_weight": 0.5, "recon_balance": "loss"}

METHODS: dict[str, dict | str] = {
    "image-only (image PCs nbr-averaged + k-means)": "image",
    "RNA-only (RNA PCs nbr-averaged + k-means)": "rna",
    "naive concat (nbr-averaged RNA PCs + image PCs)": "concat",
    "naive concat with image x0.5": "concat_half",
    "ceiling: supervised on the concat features (labels seen, 5-fold CV)": "oracle1",
    "ceiling: supervised, features averaged over 2 hops": "oracle2",
    "senca RNA-only (use_image=False)": {"use_image": False},
    "senca default (random weights not counted)": {},
    "senca fused v1 (RNA-led, random weights counted)": dict(V1),
    "senca fused v2 (balanced, gate 1)": dict(V2),
    "senca gated fusion (v2 + measured image gate)": dict(NEW),
    "senca gated fusion (GATED_FUSION)": dict(GATED),  # the eighteenth session's candidate, adopted
    "senca gated fusion of the seventeenth session (no image decoder)": dict(GATED17),
    "new: no cross-attention": dict(NEW, cross_attention=False),
    "new: no hierarchical": dict(NEW, hierarchical=False),
    "new: fusion=concat": dict(NEW, fusion="concat"),
    "new: no image decoder": dict(NEW, image_recon_weight=0.0),
    "new: raw image features in (image_pcs=0)": dict(NEW, image_pcs=0),
    "new: no projection heads": dict(NEW, projection_heads=False),
    "new: RNA-only skip (skip_mode=rna)": dict(NEW, skip_mode="rna"),
    "new: no skip (S alone)": dict(NEW, skip_pcs=0),
    "old: S alone (skip_pcs=0)": dict(V1, skip_pcs=0),
    "new: decoder losses balanced by their values (recon_balance=loss)": dict(NEW, recon_balance="loss"),
    "new: lean gated fusion (no projection heads, loss-balanced decoders)": dict(LEAN),
    "new: lean gated fusion + cross-guided skip": dict(GATED15),  # config.GATED_FUSION of the 15th-16th sessions
    # the paper's ablations (its Table 4) on the gated fusion of the fifteenth and sixteenth sessions (run in the
    # seventeenth); "no image decoder" is config.GATED_FUSION since, the others stay on the preset they were measured on
    "gated: no cross-attention": dict(GATED15, cross_attention=False),
    "gated: no hierarchical": dict(GATED15, hierarchical=False),
    "gated: fusion=concat": dict(GATED15, fusion="concat"),
    "gated: no image decoder": dict(GATED15, image_recon_weight=0.0),
    "gated: RNA-only skip (skip_mode=rna)": dict(GATED15, skip_mode="rna"),
    "gated: no skip (S alone)": dict(GATED15, skip_pcs=0),
    # the paper's ablations on config.GATED_FUSION since the eighteenth session (run in the nineteenth); its "no image
    # decoder" is the seventeenth session's row above
    "GATED_FUSION: no cross-attention": dict(GATED, cross_attention=False),
    "GATED_FUSION: no hierarchical": dict(GATED, hierarchical=False),
    "GATED_FUSION: fusion=concat": dict(GATED, fusion="concat"),
    "GATED_FUSION: RNA-only skip (skip_mode=rna)": dict(GATED, skip_mode="rna"),
    "GATED_FUSION: no skip (S alone)": dict(GATED, skip_pcs=0),
    "GATED_FUSION: no cross-guided skip": dict(GATED, cross_guided_tau=0.0),
    "new: 20 epochs": dict(NEW, epochs=20),
    "new: 30 epochs": dict(NEW, epochs=30),
}


#: SencaConfig fields set with ``--set KEY=VALUE``, for every row (baselines read ``patch_radius_spacings`` too)
EXTRA: dict = {}


def _blocks(adata, seed: int, image_weights: str, hops: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Unit-scaled, neighbour-averaged (``hops`` times) 20 PCs of the RNA and of the per-patch image features."""
    import torch

    from napari_senca.config import SencaConfig
    from napari_senca.embedding import pcs, smooth, unit
    from napari_senca.features import encode_iter, standardise
    from napari_senca.generators import drain
    from napari_senca.pipeline import _graph_tensors
    from napari_senca.preprocess import preprocess_expression

    # per-patch features, as the gated fusion reads them (and as every earlier table of this benchmark)
    cfg = SencaConfig(seed=seed, image_weights=image_weights, image_encoding="patches",
                      patch_radius_spacings=EXTRA.get("patch_radius_spacings", 3.0))
    adj, _, _ = _graph_tensors(np.asarray(adata.obsm["spatial"])[:, :2], cfg, torch.device("cpu"))
    rna = unit(smooth(pcs(preprocess_expression(adata, cfg).X, 20, seed), adj, hops))
    torch.manual_seed(seed)
    feats = drain(encode_iter(adata, cfg, torch.device("cpu"))).feats
    img = unit(smooth(pcs(standardise(feats), 20, seed), adj, hops))
    return rna, img


def _baseline(adata, kind: str, k: int, seed: int, image_weights: str) -> np.ndarray:
    """Neighbour-averaged PCs of RNA and/or image features, unit-scaled blocks, k-means."""
    from sklearn.cluster import KMeans

    rna, img = _blocks(adata, seed, image_weights)
    z = {"rna": rna, "image": img, "concat": np.hstack([rna, img]), "concat_half": np.hstack([rna, 0.5 * img])}[kind]
    return KMeans(k, n_init=10, random_state=seed).fit_predict(z)


def _oracle(adata, truth: np.ndarray, hops: int, seed: int, image_weights: str) -> np.ndarray:
    """A ceiling, not a method: the labels predicted by a classifier that saw them (5-fold cross-validated
    logistic regression on the concatenated blocks). What any clustering of these features can reach at best."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    z = np.hstack(_blocks(adata, seed, image_weights, hops))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return cross_val_predict(LogisticRegression(max_iter=2000), z, truth, cv=folds)


def _child(task: dict, queue: mp.Queue) -> None:
    import torch

    torch.set_num_threads(task["threads"])
    EXTRA.update(task.get("extra", {}))
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.config import SencaConfig
    from napari_senca.datasets import crossmodal_section
    from napari_senca.pipeline import run_senca

    seed = task["seed"]
    adata = crossmodal_section(task["spots"], task["grid"], seed=seed)
    truth = adata.obs["label"].astype(str).to_numpy()
    k = len(set(truth))
    outs = []
    for name in task["methods"]:
        spec = METHODS[name]
        out = {"method": name, "grid": task["grid"], "seed": seed, "n_spots": int(adata.n_obs)}
        try:
            t0 = time.perf_counter()
            if isinstance(spec, str) and spec.startswith("oracle"):
                labels = _oracle(adata, truth, int(spec[-1]), seed, task["image_weights"])
            elif isinstance(spec, str):
                labels = _baseline(adata, spec, k, seed, task["image_weights"])
            else:
                cfg = SencaConfig(n_clusters=k, seed=seed, image_weights=task["image_weights"], **{**spec, **EXTRA})
                res = run_senca(adata, cfg)
                labels = res.labels
                out["weights"] = res.image_weights_used
                out["gate"] = res.image_gate
                out["agreement"] = res.modality_agreement
                out["timings"] = res.timings
            out["ari"] = float(adjusted_rand_score(truth, labels))
            out["seconds"] = time.perf_counter() - t0
        except Exception as exc:  # reported, never hidden
            out["error"] = f"{type(exc).__name__}: {exc}"
        what = (f"{out['ari']:.3f} in {out['seconds']:.1f}s gate {out.get('gate')} agreement {out.get('agreement')}"
                if "ari" in out else out["error"])
        print(f"  {task['grid']} seed {seed} {name}: {what}", file=sys.stderr, flush=True)
        outs.append(out)
    queue.put(outs)


def run_task(task: dict) -> list[dict]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(task, q))
    p.start()
    try:
        res = q.get(timeout=7200)
    except Exception:
        res = [{"method": m, "grid": task["grid"], "seed": task["seed"], "error": "crashed"} for m in task["methods"]]
    p.join()
    return res


def table(results: list[dict], methods: list[str], grids: list[str]) -> str:
    """Median ARI [min-max] per grid and over both grids, and median seconds per run."""
    head = " | ".join(f"{g} ARI median [min-max]" for g in grids)
    lines = [f"| method | {head} | all: median | seeds | s/run |", "|---" * (len(grids) + 4) + "|"]
    for m in methods:
        cells, every, secs = [], [], []
        for g in grids:
            v = [r["ari"] for r in results if r["method"] == m and r["grid"] == g and "ari" in r]
            secs += [r["seconds"] for r in results if r["method"] == m and r["grid"] == g and "ari" in r]
            every += v
            cells.append(f"{np.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]" if v else "–")
        all_ = f"{np.median(every):.3f}" if every else "err"
        n_seeds = len({r["seed"] for r in results if r["method"] == m and "ari" in r})
        lines.append(f"| {m} | {' | '.join(cells)} | {all_} | {n_seeds} | "
                     f"{np.median(secs) if secs else float('nan'):.1f} |")
    return "\n".join(lines)


def paired(results: list[dict], methods: list[str], ref: str) -> str:
    """Each row minus ``ref`` on the same (grid, seed) sections: median, min-max, and wins."""
    base = {(r["grid"], r["seed"]): r["ari"] for r in results if r["method"] == ref and "ari" in r}
    lines = [f"| method | paired difference from {ref}: median [min-max] | better on | sections |", "|---|---|---|---|"]
    for m in methods:
        d = [r["ari"] - base[(r["grid"], r["seed"])] for r in results
             if r["method"] == m and "ari" in r and (r["grid"], r["seed"]) in base]
        if m == ref or not d:
            continue
        lines.append(f"| {m} | {np.median(d):+.3f} [{min(d):+.3f}-{max(d):+.3f}] | {sum(x > 0 for x in d)} | {len(d)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1 (held-out draws)")
    ap.add_argument("--grids", default="square,hex")
    ap.add_argument("--spots", type=int, default=600)
    ap.add_argument("--image-weights", default="none")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", help="semicolon-separated subset of the row names")
    ap.add_argument("--ablation-seeds", type=int, help="run the ablation rows (names with ':') on the first N seeds only")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a SencaConfig field for every row (e.g. patch_radius_spacings=1)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--tables", nargs="+", type=Path, help="print the table of earlier --json files and exit")
    ap.add_argument("--paired", metavar="ROW", help="with --tables: each row's difference from ROW, paired by section")
    args = ap.parse_args(argv)
    if args.tables:
        done = [r for f in args.tables for r in json.loads(f.read_text())]
        names = [m for m in METHODS if any(r["method"] == m for r in done)]
        print(table(done, names, sorted({r["grid"] for r in done}, reverse=True)))
        if args.paired:
            print("\n" + paired(done, names, args.paired))
        return 0
    methods = [m.strip() for m in args.methods.split(";")] if args.methods else list(METHODS)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        sys.exit(f"unknown methods: {', '.join(unknown)}")
    grids = args.grids.split(",")
    extra = {k: json.loads(v) for k, v in (a.split("=", 1) for a in args.set)}
    results: list[dict] = []
    n_abl = args.seeds if args.ablation_seeds is None else args.ablation_seeds
    core = [m for m in methods if ":" not in m]
    ablations = [m for m in methods if ":" in m]
    # seed-major, main rows first: a cut-short run still has every grid and the main rows
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    plan = [(seed, g, core) for seed in seeds for g in grids]
    plan += [(seed, g, ablations) for seed in seeds[:n_abl] for g in grids if ablations]
    for seed, g, ms in plan:
        task = {"grid": g, "seed": seed, "spots": args.spots, "methods": ms,
                "image_weights": args.image_weights, "threads": args.threads, "extra": extra}
        results += run_task(task)
        if args.json:  # partial results survive an interrupted run
            args.json.write_text(json.dumps(results, indent=1))
    n = sorted({r["n_spots"] for r in results if "n_spots" in r})
    print(f"\nCross-modal synthetic sections: ARI, median [min-max] over {args.seeds} seed(s); "
          f"spots per section: {n}; image weights {args.image_weights!r}; settings {extra}\n")
    print(table(results, methods, grids))
    print("\ns/run: wall seconds of one run on a shared, contended CPU; the patch features are encoded once per "
          "section and reused by the later rows (features.py cache)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
