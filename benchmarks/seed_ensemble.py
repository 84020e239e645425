"""Seed ensembles of the default SENCA-st model: more accurate, more reproducible?

The default model's ARI depends on its training seed (HER2ST A1: 0.735 / 0.726 /
0.513 for seeds 0 / 1 / 2). Here one "user run" with outer seed ``s`` trains the
default model (``SencaConfig()`` with ``n_clusters``, ``seed`` and, as in ``her2st.py``,
``image_weights="none"`` set) with
``--members`` inner seeds ``s, s + S, s + 2S, ...`` (``S`` = the number of outer
seeds, so no two user runs share a model) and combines them:

* **single**: the member with seed ``s`` alone, i.e. today's default run.
* **concat**: each member's clustered embedding (``SencaResult.embedding``: the
  unit-scaled skip block of smoothed expression PCs beside ``skip_weight`` x the
  smoothed, unit-scaled S; what ``obsm["X_senca"]`` holds) is centred and scaled
  to unit total variance, the members are concatenated column-wise, and the
  result is clustered as the default clusters (``cluster_embedding`` with
  ``SencaConfig().cluster_method``, k, seed ``s``).
* **coassoc**: the co-association matrix (the fraction of members whose
  partition, at k, puts two spots together), then average-linkage hierarchical
  clustering of ``1 - coassoc`` (SciPy), cut at k.

Averaging the embeddings themselves is not done: members trained from different
seeds have unaligned (rotated, permuted) S spaces.

ARI is computed as in ``her2st.py``: on labelled spots, k = the number of
labelled regions; every method clusters all spots. The smoothed-PCA baseline
(``pca_nbr_kmeans`` of ``her2st.py``) runs in the same process for the record.
Also reported: the seed spread (max - min over outer seeds), the agreement
(ARI on all spots) between the partitions of two user runs, and wall time.
Everything runs in this one process, one section at a time.

Usage::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=src \\
        python benchmarks/seed_ensemble.py --dlpfc --json /tmp/ens/results.json
    python benchmarks/seed_ensemble.py --sections A1 --seeds 1 --members 2   # smoke test
    python benchmarks/seed_ensemble.py --subsets /tmp/ens/runs --json /tmp/ens/subsets.json
        # every 3-subset of the 9 models saved by --save-runs: expected ARI and spread
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from her2st import SECTIONS, _baseline, shared_data  # noqa: E402

METHODS = ("single", "concat", "coassoc")


def standardised(z: np.ndarray) -> np.ndarray:
    """``z`` (n, d) centred and scaled to a total variance (sum over columns) of 1."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.mean(0)
    return z / max(float(np.sqrt((z**2).sum(1).mean())), 1e-12)


def concat_labels(embeddings: list[np.ndarray], k: int, method: str, seed: int) -> np.ndarray:
    """Cluster the members' standardised embeddings side by side, as the default clusters one."""
    from napari_senca.cluster import cluster_embedding

    z = np.hstack([standardised(e) for e in embeddings])
    return cluster_embedding(z, k, method, seed)[0]


def coassociation(partitions: list[np.ndarray]) -> np.ndarray:
    """(n, n) fraction of ``partitions`` in which two spots share a cluster."""
    c = None
    for labels in partitions:
        onehot = np.eye(int(labels.max()) + 1, dtype=np.float32)[labels]
        same = onehot @ onehot.T
        c = same if c is None else c + same
    return c / len(partitions)


def coassoc_labels(partitions: list[np.ndarray], k: int) -> np.ndarray:
    """Average-linkage clustering of ``1 - coassociation``, cut into ``k`` clusters (largest = 0)."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    from napari_senca.cluster import cut

    d = 1.0 - coassociation(partitions).astype(np.float64)
    np.fill_diagonal(d, 0.0)
    tree = linkage(squareform(d, checks=False), method="average")
    return cut(tree, k)


def run_section(path: str, seeds: list[int], n_members: int, save_runs: Path | None, name: str,
                image_weights: str = "none") -> dict:
    """All methods on one section; returns its JSON record."""
    from sklearn.metrics import adjusted_rand_score as ari

    from napari_senca.config import SencaConfig
    from napari_senca.io import read_section
    from napari_senca.pipeline import run_senca

    adata = read_section(path)
    labelled = adata.obs["label"].notna().to_numpy()
    truth = adata.obs["label"].to_numpy()[labelled].astype(str)
    k = len(set(truth))
    score = lambda labels: float(ari(truth, np.asarray(labels)[labelled]))  # noqa: E731
    rec: dict = {"section": name, "n_spots": int(adata.n_obs), "n_labelled": int(labelled.sum()), "k": k,
                 "cluster_method": SencaConfig().cluster_method, "outer": {}, "members": {}}

    for s in seeds:  # the baseline, for the record
        t0 = time.perf_counter()
        labels = _baseline(adata, k, s, smooth=True)
        rec["outer"][s] = {"pca_nbr_kmeans": {"ari": score(labels), "seconds": time.perf_counter() - t0}}

    stride = len(seeds)
    runs: dict[int, dict] = {}
    for s in seeds:
        for j in range(n_members):
            m = s + j * stride
            t0 = time.perf_counter()
            res = run_senca(adata, SencaConfig(n_clusters=k, seed=m, image_weights=image_weights))
            runs[m] = {"embedding": res.embedding, "labels": res.labels, "seconds": time.perf_counter() - t0}
            rec["members"][m] = {"ari": score(res.labels), "seconds": runs[m]["seconds"]}
            print(f"  {name} member seed {m}: ARI {rec['members'][m]['ari']:.3f} in {runs[m]['seconds']:.1f}s",
                  file=sys.stderr, flush=True)

    partitions: dict[str, dict[int, np.ndarray]] = {m: {} for m in METHODS}
    method = SencaConfig().cluster_method
    for s in seeds:
        members = [runs[s + j * stride] for j in range(n_members)]
        train_s = sum(r["seconds"] for r in members)
        t0 = time.perf_counter()
        partitions["concat"][s] = concat_labels([r["embedding"] for r in members], k, method, s)
        t_concat = time.perf_counter() - t0
        t0 = time.perf_counter()
        partitions["coassoc"][s] = coassoc_labels([r["labels"] for r in members], k)
        t_coassoc = time.perf_counter() - t0
        partitions["single"][s] = runs[s]["labels"]
        out = rec["outer"][s]
        out["single"] = {"ari": score(runs[s]["labels"]), "seconds": runs[s]["seconds"]}
        out["concat"] = {"ari": score(partitions["concat"][s]), "seconds": train_s + t_concat, "combine_s": t_concat}
        out["coassoc"] = {"ari": score(partitions["coassoc"][s]), "seconds": train_s + t_coassoc,
                          "combine_s": t_coassoc}
        out["member_seeds"] = [s + j * stride for j in range(n_members)]
        print(f"  {name} outer seed {s}: " + ", ".join(f"{m} {out[m]['ari']:.3f}" for m in METHODS),
              file=sys.stderr, flush=True)

    rec["agreement"] = {  # ARI between two user runs' partitions, all spots
        m: {f"{a}-{b}": float(ari(partitions[m][a], partitions[m][b])) for a, b in itertools.combinations(seeds, 2)}
        for m in METHODS
    }
    if save_runs is not None:
        save_runs.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            save_runs / f"{name}.npz", labelled=labelled, truth=adata.obs["label"].to_numpy().astype(str),
            **{f"emb_{m}": r["embedding"] for m, r in runs.items()}, **{f"lab_{m}": r["labels"] for m, r in runs.items()},
        )
    return rec


def subsets(npz: Path, n_members: int, cluster_method: str) -> dict:
    """Every ``n_members``-subset of the models saved for one section (``--save-runs``), combined.

    Three outer seeds give three draws per method; the nine saved models give nine single runs
    and C(9, 3) = 84 ensembles, so the expected ARI and spread of each method are estimated on the
    same models. Agreement: mean ARI (all spots) over pairs of single runs, and over pairs of
    ensembles sharing no model.
    """
    from sklearn.metrics import adjusted_rand_score as ari

    f = np.load(npz)
    labelled, truth = f["labelled"], f["truth"][f["labelled"]]
    k = len(set(truth))
    seeds = sorted(int(key[4:]) for key in f.files if key.startswith("lab_"))
    emb = {m: f[f"emb_{m}"] for m in seeds}
    lab = {m: f[f"lab_{m}"] for m in seeds}
    score = lambda labels: float(ari(truth, np.asarray(labels)[labelled]))  # noqa: E731
    combos = list(itertools.combinations(seeds, n_members))
    parts = {"single": {(m,): lab[m] for m in seeds},
             "concat": {c: concat_labels([emb[m] for m in c], k, cluster_method, 0) for c in combos},
             "coassoc": {c: coassoc_labels([lab[m] for m in c], k) for c in combos}}
    out: dict = {"section": npz.stem, "k": k, "models": seeds, "n_members": n_members,
                 "pool_all": {"concat": score(concat_labels(list(emb.values()), k, cluster_method, 0)),
                              "coassoc": score(coassoc_labels(list(lab.values()), k))}}
    for m, p in parts.items():
        aris = [score(v) for v in p.values()]
        pairs = [(a, b) for a, b in itertools.combinations(p, 2) if not set(a) & set(b)]
        out[m] = {"aris": aris, "mean": float(np.mean(aris)), "median": float(np.median(aris)),
                  "sd": float(np.std(aris)), "min": min(aris), "max": max(aris),
                  "agreement": float(np.mean([ari(p[a], p[b]) for a, b in pairs])) if pairs else float("nan")}
    return out


def _num(v: float, digits: int) -> str:
    return "–" if np.isnan(v) else f"{v:.{digits}f}"


def subsets_report(recs: list[dict]) -> str:
    """Markdown table of :func:`subsets` records."""
    n = recs[0]["n_members"]
    out = [f"All models of each section: single = each of the {len(recs[0]['models'])} seeds; concat / coassoc = "
           f"every {n}-subset ({len(recs[0]['concat']['aris'])} ensembles); mean ± sd [min-max] of ARI; "
           "pool = all models in one ensemble; agree = mean ARI between two runs sharing no model (–: none); "
           "subsets overlap, so their sd understates that of independent ensembles\n",
           "| section | single | concat | coassoc | pool concat / coassoc | agree single / concat / coassoc |",
           "|---|---|---|---|---|---|"]
    for r in recs:
        cells = [f"{r[m]['mean']:.3f} ± {r[m]['sd']:.3f} [{r[m]['min']:.3f}-{r[m]['max']:.3f}]" for m in METHODS]
        out.append(f"| {r['section']} | " + " | ".join(cells) + f" | {r['pool_all']['concat']:.3f} / "
                   f"{r['pool_all']['coassoc']:.3f} | " + " / ".join(_num(r[m]["agreement"], 2) for m in METHODS) + " |")
    her = [r for r in recs if r["section"] != "DLPFC"]
    if her:
        out.append("| HER2ST mean | " + " | ".join(
            f"{np.mean([r[m]['mean'] for r in her]):.4f} ± {np.mean([r[m]['sd'] for r in her]):.3f}" for m in METHODS)
            + f" | {np.mean([r['pool_all']['concat'] for r in her]):.4f} / "
              f"{np.mean([r['pool_all']['coassoc'] for r in her]):.4f} | "
            + " / ".join(_num(np.mean([r[m]["agreement"] for r in her]), 3) for m in METHODS) + " |")
    return "\n".join(out)


def _med(vals: list[float]) -> str:
    return f"{np.median(vals):.3f} [{min(vals):.3f}-{max(vals):.3f}]"


def report(records: list[dict], seeds: list[int], n_members: int) -> str:
    """Markdown tables: ARI per section, HER2ST means, spread, agreement, time."""
    rows = ["pca_nbr_kmeans", *METHODS]
    her = [r for r in records if r["section"] != "DLPFC"]
    out = [f"ARI on labelled spots, median over outer seeds {seeds} [min-max]; ensembles of {n_members} members "
           f"(clustering: {records[0]['cluster_method']})\n",
           "| section | k | spots | " + " | ".join(rows) + " |", "|---|---|---|" + "---|" * len(rows)]
    for r in records:
        out.append(f"| {r['section']} | {r['k']} | {r['n_spots']} | " + " | ".join(
            _med([r["outer"][s][m]["ari"] for s in seeds]) for m in rows) + " |")

    def medians(recs: list[dict], m: str) -> list[float]:
        return [float(np.median([r["outer"][s][m]["ari"] for s in seeds])) for r in recs]

    def spread(recs: list[dict], m: str) -> list[float]:
        return [max(a := [r["outer"][s][m]["ari"] for s in seeds]) - min(a) for r in recs]

    if her:
        out += ["", f"Summary over {len(her)} HER2ST sections (and DLPFC apart)\n",
                "| method | HER2ST mean of medians | HER2ST median of medians | HER2ST mean per outer seed "
                "| seed spread (max-min): median over HER2ST [min-max] | DLPFC median | DLPFC spread |",
                "|---|---|---|---|---|---|---|"]
        dl = [r for r in records if r["section"] == "DLPFC"]
        for m in rows:
            per_seed = " / ".join(f"{np.mean([r['outer'][s][m]['ari'] for r in her]):.3f}" for s in seeds)
            sp = spread(her, m)
            out.append(
                f"| {m} | {np.mean(medians(her, m)):.4f} | {np.median(medians(her, m)):.3f} | {per_seed} | "
                f"{np.median(sp):.3f} [{min(sp):.3f}-{max(sp):.3f}] | "
                + (f"{medians(dl, m)[0]:.3f} | {spread(dl, m)[0]:.3f} |" if dl else "– | – |"))
    if len(seeds) > 1:
        out += ["", "Agreement between user runs: ARI (all spots) between the partitions of two outer seeds, "
                "per pair " + ", ".join(next(iter(records))["agreement"]["single"]) + "\n",
                "| section | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
        for r in records:
            out.append(f"| {r['section']} | " + " | ".join(
                " / ".join(f"{v:.2f}" for v in r["agreement"][m].values()) for m in METHODS) + " |")
        if her:
            out.append("| HER2ST mean | " + " | ".join(
                f"{np.mean([v for r in her for v in r['agreement'][m].values()]):.3f}" for m in METHODS) + " |")
    out += ["", "Wall time per user run, seconds (median over outer seeds; ensembles include training all members)\n",
            "| section | pca_nbr_kmeans | single | concat | coassoc | combine concat / coassoc |", "|---|---|---|---|---|---|"]
    for r in records:
        med = {m: np.median([r["outer"][s][m]["seconds"] for s in seeds]) for m in rows}
        comb = [np.median([r["outer"][s][m]["combine_s"] for s in seeds]) for m in ("concat", "coassoc")]
        out.append(f"| {r['section']} | {med['pca_nbr_kmeans']:.1f} | {med['single']:.1f} | {med['concat']:.1f} | "
                   f"{med['coassoc']:.1f} | {comb[0]:.2f} / {comb[1]:.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=",".join(SECTIONS), help="HER2ST sections (comma-separated)")
    ap.add_argument("--dlpfc", action="store_true", help="add the DLPFC 151510 Visium section")
    ap.add_argument("--seeds", type=int, default=3, help="outer seeds (user runs) 0..N-1")
    ap.add_argument("--members", type=int, default=3, help="models per ensemble (inner seeds s, s+N, s+2N, ...)")
    ap.add_argument("--image-weights", default="none",
                    help="as in her2st.py: 'none' (random; they do not count by default) needs no download")
    ap.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    ap.add_argument("--json", type=Path, help="write every number here")
    ap.add_argument("--save-runs", type=Path, help="save each member's embedding and labels here (.npz per section)")
    ap.add_argument("--subsets", type=Path, metavar="DIR",
                    help="no training: combine every --members subset of the models saved in DIR by --save-runs")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    if args.subsets:
        from napari_senca.config import SencaConfig

        order = {name: i for i, name in enumerate([*SECTIONS, "DLPFC"])}
        recs = [subsets(f, args.members, SencaConfig().cluster_method)
                for f in sorted(args.subsets.glob("*.npz"), key=lambda f: order.get(f.stem, len(order)))]
        print(subsets_report(recs))
        if args.json:
            args.json.write_text(json.dumps(recs, indent=1))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    root = shared_data()
    datasets = {s: str(root / "her2st" / s) for s in args.sections.split(",") if s}
    if args.dlpfc:
        datasets["DLPFC"] = str(root / "dlpfc_151510")
    seeds = list(range(args.seeds))
    records = []
    t_all = time.perf_counter()
    for name, path in datasets.items():
        t0 = time.perf_counter()
        records.append(run_section(path, seeds, args.members, args.save_runs, name, args.image_weights))
        print(f"[{len(records)}/{len(datasets)}] {name} done in {time.perf_counter() - t0:.0f}s", file=sys.stderr,
              flush=True)
        if args.json:  # after every section, so an interrupted run keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"seeds": seeds, "members": args.members, "records": records}, indent=1))
    print(report(records, seeds, args.members))
    print(f"\ntotal {time.perf_counter() - t_all:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
