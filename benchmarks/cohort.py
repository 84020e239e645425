"""Cohort benchmark: the eight HER2ST sections through ``batch``, matched to one region vocabulary.

Prints Markdown tables:

* throughput: ``run_batch`` on a 2-process LocalCluster against ``run_section``
  one section after another in this process (same settings, same outputs);
* cross-section consistency: ARI over all labelled spots of all sections
  together for the matched cohort regions, the per-section region ids taken
  as they are ("region 2" everywhere the same), the ids kept apart per section,
  and a pooled smoothed-PCA + k-means baseline with and without scanpy's ComBat;
* with ``--joint``: one model trained over all eight sections (``napari_senca.joint``,
  per batch handling, ``benchmarks/joint.py``), pooled and per-section ARI, time and peak memory.

Usage::

    python benchmarks/cohort.py --out /tmp/cohort_bench [--workers 2] [--dlpfc] [--joint scale combat none]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from her2st import SECTIONS, shared_data  # noqa: E402


def _md(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (no tabulate needed)."""
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v))

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _pooled(outs: dict[str, Path]) -> pd.DataFrame:
    import anndata

    frames = []
    for name, out in outs.items():
        a = anndata.read_h5ad(out / "annotated.h5ad")
        frames.append(
            pd.DataFrame(
                {
                    "section": name,
                    "label": a.obs["label"].astype(object).to_numpy() if "label" in a.obs else None,
                    "cluster": a.obs["senca_cluster"].astype(str).to_numpy(),
                    "cohort_region": a.obs["cohort_region"].astype(str).to_numpy()
                    if "cohort_region" in a.obs
                    else None,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _ari(df: pd.DataFrame, col: str) -> float:
    from sklearn.metrics import adjusted_rand_score

    ok = df["label"].notna().to_numpy()
    return float(adjusted_rand_score(df.loc[ok, "label"].astype(str), df.loc[ok, col].astype(str)))


def _baseline(paths: dict[str, Path], k: int, combat: bool, seed: int = 0) -> pd.DataFrame:
    """Pooled smoothed PCA (scaled 500 HVGs, 10 PCs, mean over 4 neighbours) [+ ComBat] + k-means."""
    import anndata
    import scanpy as sc
    import scipy.sparse as sp
    from sklearn.cluster import KMeans

    from napari_senca.graph import build_graph
    from napari_senca.io import read_section

    ads = {n: read_section(p) for n, p in paths.items()}
    for n, a in ads.items():
        a.obs["section"] = n
        a.obs_names = [f"{n}:{o}" for o in a.obs_names]
        a.uns.pop("spatial", None)
    pooled = anndata.concat(list(ads.values()), join="inner", merge="first")
    sc.pp.filter_genes(pooled, min_counts=10)
    sc.pp.normalize_total(pooled)
    sc.pp.log1p(pooled)
    sc.pp.highly_variable_genes(pooled, n_top_genes=500, batch_key="section", flavor="seurat")
    pooled = pooled[:, pooled.var["highly_variable"]].copy()
    if combat:
        sc.pp.combat(pooled, key="section")
    sc.pp.scale(pooled, max_value=10)
    z = sc.pp.pca(pooled.X, n_comps=10, random_state=seed)
    parts = []
    for n in ads:
        m = (pooled.obs["section"] == n).to_numpy()
        xy = pooled.obsm["spatial"][m]
        adj = build_graph(xy, 4).adjacency + sp.identity(int(m.sum()))
        parts.append((m, sp.diags(1.0 / np.asarray(adj.sum(1)).ravel()) @ adj @ z[m]))
    zs = np.zeros_like(z)
    for m, v in parts:
        zs[m] = v
    labels = KMeans(k, n_init=10, random_state=seed).fit_predict(zs)
    lab = pooled.obs["label"].astype(object) if "label" in pooled.obs else None
    return pd.DataFrame({"label": lab.to_numpy(), "baseline": labels.astype(str)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dlpfc", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--resume", action="store_true",
                    help="keep --out: sections already done there are skipped by batch's resume (no throughput)")
    ap.add_argument("--joint", nargs="*", default=None, metavar="BATCH", help="also joint training (batch handlings)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds of the joint runs")
    args = ap.parse_args()

    from napari_senca.batch import run_batch
    from napari_senca.config import SencaConfig
    from napari_senca.runner import run_section
    from napari_senca.vocabulary import match_cohort_outputs, match_sections

    root = shared_data()
    paths = {s: root / "her2st" / s for s in SECTIONS}
    if args.dlpfc:
        paths["DLPFC_151510"] = root / "dlpfc_151510"
    cfg = SencaConfig(image_weights="none")  # no ImageNet download on this machine
    out = Path(args.out)
    if out.exists() and not args.resume:
        shutil.rmtree(out)

    t0 = time.perf_counter()
    res = run_batch([str(p) for p in paths.values()], out / "parallel", cfg, n_workers=args.workers, match_regions=False)
    t_par = time.perf_counter() - t0
    print(_md(res.table[["section", "status", "spots", "regions", "ari", "time_total", "error"]]))
    t_seq = None
    if not args.skip_throughput:
        import torch

        torch.set_num_threads(1)
        t0 = time.perf_counter()
        for n, p in paths.items():
            run_section(p, out / "sequential" / n, cfg)
        t_seq = time.perf_counter() - t0

    her = {n: out / "parallel" / n for n in SECTIONS}
    t0 = time.perf_counter()
    vocab = match_cohort_outputs(list(her.items()))
    t_match = time.perf_counter() - t0
    df = _pooled(her)
    k = int(df["label"].dropna().nunique())
    rows = [
        ("per-section ids as they are (today)", _ari(df, "cluster"), int(df.groupby("section")["cluster"].nunique().max())),
        ("per-section ids kept apart", _ari(df.assign(sep=df["section"] + ":" + df["cluster"]), "sep"),
         int((df["section"] + ":" + df["cluster"]).nunique())),
        ("matched cohort regions (min_corr 0.1, default)", _ari(df, "cohort_region"), int(df["cohort_region"].nunique())),
    ]  # fmt: skip
    import anndata

    loaded = [(n, anndata.read_h5ad(p / "annotated.h5ad")) for n, p in her.items()]
    for mc in (0.2, 0.3, 0.5):
        mapping, _ = match_sections(loaded, min_corr=mc)
        col = df["section"].astype(str) + "|" + df["cluster"]
        flat = {f"{s}|{r}": e for s, m in mapping.items() for r, e in m.items()}
        d2 = df.assign(m=col.map(flat))
        rows.append((f"matched cohort regions (min_corr {mc})", _ari(d2, "m"), int(d2["m"].nunique())))
    for combat in (False, True):
        t1 = time.perf_counter()
        b = _baseline(paths_her := {n: paths[n] for n in SECTIONS}, k, combat)
        del paths_her
        name = f"pooled smoothed PCA{' + ComBat' if combat else ''} + k-means (k={k})"
        rows.append((name, _ari(b, "baseline"), k))
        print(f"{name}: {time.perf_counter() - t1:.1f} s", file=sys.stderr)
    joint_rows = []
    if args.joint is not None:
        from joint import her2st as joint_her2st

        joint_rows = joint_her2st(args.joint or ["scale", "combat", "none"], args.seeds, out / "joint")
        for b in dict.fromkeys(r["batch"] for r in joint_rows):
            rs = [r for r in joint_rows if r["batch"] == b]
            med = float(np.median([r["pooled_ari"] for r in rs]))
            spread = f" ({min(r['pooled_ari'] for r in rs):.3f}-{max(r['pooled_ari'] for r in rs):.3f})" if len(rs) > 1 else ""
            rows.append((f"joint training, one model over the 8 sections, batch={b}{spread}", med, rs[0]["k"]))
    print()
    print("| clustering of the 8 sections | pooled ARI | regions |")
    print("|---|---|---|")
    for name, ari, n in rows:
        print(f"| {name} | {ari:.3f} | {n} |")
    print()
    print(f"mean per-section ARI: {res.table['ari'].mean():.3f}; union of labelled regions: {k}; "
          f"vocabulary entries: {vocab['cohort_region'].nunique()}; matching {t_match:.1f} s")  # fmt: skip
    print()
    print("| run | wall s |")
    print("|---|---|")
    print(f"| batch, LocalCluster {args.workers} processes x 1 thread (incl. start-up) | {t_par:.1f} |")
    if t_seq is not None:
        print(f"| run_section one after another, 1 process, 1 torch thread | {t_seq:.1f} |")
    if joint_rows:
        print()
        print(_md(pd.DataFrame(joint_rows)))
        print()
        print(_md(res.table[["section", "ari"]]))
    if vocab is not None:
        print()
        print(_md(vocab))


if __name__ == "__main__":
    main()
