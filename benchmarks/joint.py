"""Joint training benchmarks (napari_senca.joint): HER2ST A-H and patient C.

* ``her2st``: one model over the eight labelled HER2ST sections, clustered
  together into the union of their labelled regions, for each batch handling
  (``scale``, ``combat``, ``none``): ARI over all labelled spots of all sections
  together, per-section ARI, wall time and peak memory (each run in a fresh
  process, peak RSS of that process). ``benchmarks/cohort.py --joint`` runs this
  in the same run as the per-section and vocabulary-matched numbers.
* ``patient-c``: C1 (labelled, no image) alone against C1 trained jointly with
  its serial sections C2-C6 (``her2st_unlabelled``, no labels), RNA-only, ARI
  on C1, over seeds.

Usage::

    python benchmarks/joint.py her2st [--batch scale combat none] [--seeds 0]
    python benchmarks/joint.py patient-c [--seeds 0 1 2]
    python benchmarks/joint.py representation   # the batch handlings without the model (seconds)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from her2st import SECTIONS, shared_data  # noqa: E402

PATIENT_C = ("C2", "C3", "C4", "C5", "C6")


def _paths(kind: str) -> dict[str, Path]:
    root = shared_data()
    if kind == "her2st":
        return {s: root / "her2st" / s for s in SECTIONS}
    return {"C1": root / "her2st" / "C1", **{s: root / "her2st_unlabelled" / s for s in PATIENT_C}}


def child(kind: str, batch: str, seed: int, out: Path) -> None:
    """One joint run in this (fresh) process: writes labels to ``out`` and prints time and peak memory as JSON."""
    import resource
    import time

    import torch

    torch.set_num_threads(1)
    from napari_senca.config import SencaConfig
    from napari_senca.io import read_section
    from napari_senca.joint import SECTION_KEY, cross_section_edges, run_joint

    cfg = SencaConfig(image_weights="none", use_image=False, seed=seed)
    secs = [(n, read_section(p, image=False)) for n, p in _paths(kind).items()]
    t0 = time.perf_counter()
    jr = run_joint(secs, cfg, batch)
    wall = time.perf_counter() - t0
    u = jr.union
    lab = u.obs["label"].astype(object) if "label" in u.obs else pd.Series([None] * u.n_obs)
    pd.DataFrame(
        {"section": u.obs[SECTION_KEY].astype(str).to_numpy(), "label": lab.to_numpy(),
         "cluster": u.obs["senca_cluster"].astype(str).to_numpy()}  # fmt: skip
    ).to_csv(out, index=False)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "peak_rss_mb": rss_mb, "spots": int(u.n_obs), "genes": int(u.n_vars),
                      "k": int(jr.result.n_clusters), "cross_edges": cross_section_edges(u, cfg.n_neighbors)}))  # fmt: skip


def run_child(kind: str, batch: str, seed: int, workdir: Path) -> tuple[pd.DataFrame, dict]:
    """:func:`child` in a fresh Python process (so its peak memory is its own)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{kind}_{batch}_{seed}.csv"
    cmd = [sys.executable, __file__, "child", kind, batch, str(seed), str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    info = json.loads(res.stdout.strip().splitlines()[-1])
    return pd.read_csv(out, dtype={"cluster": str}), info


def aris(df: pd.DataFrame, col: str = "cluster") -> tuple[float, dict[str, float]]:
    """Pooled ARI over all labelled spots and ARI per labelled section."""
    from sklearn.metrics import adjusted_rand_score

    ok = df["label"].notna()
    d = df[ok]
    pooled = float(adjusted_rand_score(d["label"].astype(str), d[col].astype(str)))
    per = {s: float(adjusted_rand_score(g["label"].astype(str), g[col].astype(str))) for s, g in d.groupby("section", sort=False)}
    return pooled, per


def her2st(batches: list[str], seeds: list[int], workdir: Path) -> list[dict]:
    """Joint runs over the eight labelled sections; one row per (batch, seed)."""
    rows = []
    for b in batches:
        for s in seeds:
            df, info = run_child("her2st", b, s, workdir)
            pooled, per = aris(df)
            rows.append({"batch": b, "seed": s, "pooled_ari": pooled, "mean_section_ari": float(np.mean(list(per.values()))),
                         **{f"ari_{k}": v for k, v in per.items()}, **info})  # fmt: skip
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def patient_c(seeds: list[int], workdir: Path, batch: str = "scale") -> pd.DataFrame:
    """ARI on C1: C1 alone (its own run) against C1 in the joint model with C2-C6."""
    import time

    import torch

    torch.set_num_threads(1)
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.config import SencaConfig
    from napari_senca.io import read_section
    from napari_senca.pipeline import run_senca

    c1 = read_section(_paths("patient-c")["C1"], image=False)
    ok = c1.obs["label"].notna().to_numpy()
    rows = []
    for s in seeds:
        t0 = time.perf_counter()
        r = run_senca(c1, SencaConfig(image_weights="none", use_image=False, seed=s))
        alone = float(adjusted_rand_score(c1.obs["label"][ok].astype(str), r.labels[ok].astype(str)))
        t_alone = time.perf_counter() - t0
        df, info = run_child("patient-c", batch, s, workdir)
        _, per = aris(df)
        rows.append({"seed": s, "C1 alone": alone, "C1 in joint C1-C6": per["C1"], "alone_s": t_alone, **info})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def representation(kind: str = "her2st", k: int = 6) -> pd.DataFrame:
    """The union's input per batch handling, without the model: smoothed PCA (20 PCs, 4 neighbours) + k-means.

    Pooled ARI against the labels and ARI against the section (how much the
    clusters are the sections).
    """
    import scipy.sparse as sp
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.config import SencaConfig
    from napari_senca.embedding import pcs
    from napari_senca.graph import build_graph
    from napari_senca.io import read_section
    from napari_senca.joint import BATCH_MODES, SECTION_KEY, build_union

    secs = [(n, read_section(p, image=False)) for n, p in _paths(kind).items()]
    rows = []
    for mode in BATCH_MODES:
        u = build_union(secs, SencaConfig(), mode)
        x = np.asarray(u.X, dtype=np.float64)
        x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-9)
        g = build_graph(u.obsm["spatial"], 4).adjacency + sp.identity(u.n_obs)
        z = sp.diags(1 / np.asarray(g.sum(1)).ravel()) @ g @ pcs(x, 20, 0)
        lab = KMeans(k, n_init=10, random_state=0).fit_predict(z).astype(str)
        ok = u.obs["label"].notna().to_numpy()
        rows.append({"batch": mode, "pooled_ari": adjusted_rand_score(u.obs["label"][ok].astype(str), lab[ok]),
                     "ari_vs_section": adjusted_rand_score(u.obs[SECTION_KEY].astype(str), lab)})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        _, _, kind, batch, seed, out = sys.argv
        child(kind, batch, int(seed), Path(out))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("her2st", "patient-c", "representation"))
    ap.add_argument("--batch", nargs="+", default=["scale", "combat", "none"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--work", default="/tmp/joint_bench")
    args = ap.parse_args()
    work = Path(args.work)
    if args.what == "representation":
        print(representation().to_string())
    elif args.what == "her2st":
        print(pd.DataFrame(her2st(args.batch, args.seeds, work)).to_string())
    else:
        df = patient_c(args.seeds, work, args.batch[0])
        print(df.to_string())
        med = df[["C1 alone", "C1 in joint C1-C6"]].median()
        lo, hi = df[["C1 alone", "C1 in joint C1-C6"]].min(), df[["C1 alone", "C1 in joint C1-C6"]].max()
        for c in med.index:
            print(f"{c}: median {med[c]:.3f} (range {lo[c]:.3f}-{hi[c]:.3f})")


if __name__ == "__main__":
    main()
