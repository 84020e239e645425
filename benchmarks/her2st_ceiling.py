"""How far can any clustering of the expression go on HER2ST? A supervised ceiling.

Issue 9 keeps a goal of 0.35 mean ARI over the eight HER2ST sections, seven of
which have no H&E here. This script asks whether the pathologist's regions can
be read from the expression at all: for each section and each representation of
its spots, classifiers are *trained on the labels* and their out-of-fold
predictions scored with the same ARI as the clusterings. An unsupervised method
sees the same features without the labels, so what the best classifier reaches
is a reference for it, not a bound: optimistic with random folds, pessimistic
with spatial blocks (below), and a clustering is not bound by a classifier's
errors, though it has strictly less to go on.

Two cross-validation schemes:

* ``random``: stratified 5-fold. Neighbour-averaged features leak across folds
  (a held-out spot's features contain its training neighbours'), so this is
  the optimistic figure.
* ``blocks``: the section cut into 5 spatial blocks (k-means on the spot
  coordinates), each held out in turn. Classes that live in one block are then
  never seen in training; the figure is pessimistic.

The ceiling of a (section, representation, scheme) is the best ARI over a grid
of classifiers (logistic regression at four strengths, plain and
class-balanced; k nearest neighbours; gradient-boosted trees), chosen on the
same labels, so it flatters the ceiling further.

Two more kinds of rows ask why clustering falls short of the ceiling:

* ``geometry``: each spot given the region whose mean (over the other labelled
  spots) is nearest; and k-means started from the regions' means, on the
  labelled spots (if the pathologist's regions were a k-means solution it
  would not move) and on all spots.
* ``by hand``: n labelled spots of each region given (at random, or among the
  spots whose neighbours all share their label, as a reviewer might pick
  typical spots), every other spot to the nearest of their region means (what
  the Review widget's "Classify the rest from assigned spots" does), scored on
  the spots not given; the median of 10 draws per seed.
* ``review``: k-means with m more clusters than regions, each cluster then
  renamed to the region most of its labelled spots have: a heuristic reviewer
  who merges in the Review widget with the labels in hand (optimistic in
  that; not the merge that maximises the ARI).

The unsupervised methods of ``her2st.py`` (the smoothed-PCA baseline and the
default model) run on the same sections and seeds, so the table compares like
with like (in one process with ``--threads`` threads, 1 by default, where
``her2st.py`` starts one per section and method: a thread count can move the last
digits). The classifiers use the first seed's representations; the other rows
are medians over seeds.

Usage::

    python benchmarks/her2st_ceiling.py                 # 8 sections; seeds 0-2 (classifiers: seed 0)
    python benchmarks/her2st_ceiling.py --sections A1,B1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from anndata import AnnData
    from sklearn.base import BaseEstimator

    from napari_senca.pipeline import SencaResult

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from her2st import SECTIONS, baseline_features, neighbour_mean, shared_data  # noqa: E402

SCHEMES = ("random", "blocks")
BASELINE = "10 PCs, neighbour-averaged (the baseline's features)"
MODEL = "the model's clustered embedding"
#: the representations the review rows over-cluster: what the baseline and the model cluster
REVIEWED = (BASELINE, MODEL)
#: how many more clusters than regions the review rows cut
EXTRA_CLUSTERS = (0, 2, 3, 4, 6)
#: spots per region the "by hand" rows assign, and how many random draws of them each seed takes
BY_HAND = (3, 5, 10)
DRAWS = 10


def classifiers(seed: int = 0) -> dict[str, BaseEstimator]:
    """The grid the ceiling is the best of (features standardised inside each fold)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    grid = {}
    for c in (0.01, 0.1, 1.0, 10.0):
        for cw in (None, "balanced"):
            name = f"logistic C={c}" + (" balanced" if cw else "")
            grid[name] = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight=cw, max_iter=3000))
    for k in (5, 15):
        grid[f"{k}-NN"] = make_pipeline(StandardScaler(), KNeighborsClassifier(k))
    grid["gradient-boosted trees"] = HistGradientBoostingClassifier(random_state=seed)
    return grid


def folds(y: np.ndarray, xy: np.ndarray, scheme: str, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs of one cross-validation scheme."""
    from sklearn.cluster import KMeans
    from sklearn.model_selection import StratifiedKFold

    if scheme == "random":
        return list(StratifiedKFold(5, shuffle=True, random_state=seed).split(xy, y))
    blocks = KMeans(5, n_init=10, random_state=seed).fit_predict(xy)
    return [(np.flatnonzero(blocks != b), np.flatnonzero(blocks == b)) for b in range(5)]


def out_of_fold(model: BaseEstimator, x: np.ndarray, y: np.ndarray,
                splits: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each spot predicted by the model trained without its fold (a fold's unseen classes stay unseen)."""
    from sklearn.base import clone

    pred = np.empty(len(y), dtype=object)
    for train, test in splits:
        classes = np.unique(y[train])
        if len(classes) == 1:
            pred[test] = classes[0]
            continue
        pred[test] = clone(model).fit(x[train], y[train]).predict(x[test])
    return pred.astype(str)


def centroid_rows(x: np.ndarray, y: np.ndarray, x_all: np.ndarray, seed: int) -> dict[str, float]:
    """How well k-means' geometry fits the labels: ``x`` the labelled spots' features, ``y`` their labels, ``x_all`` all spots'.

    ``nearest true centroid``: each labelled spot given the region whose mean over the *other* labelled spots is
    nearest (k means are all it learns from the labels; a region of one spot is never predicted).
    ``k-means from the true centroids``: k-means started at the regions' means and run to convergence, on the
    labelled spots (if the regions were a k-means solution of ``x`` it would not move: ARI 1) and on all spots,
    unlabelled included (what a run clusters).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    classes = np.unique(y)
    cent = np.stack([x[y == c].mean(0) for c in classes])
    n = np.array([(y == c).sum() for c in classes], float)
    d2 = ((x[:, None, :] - cent[None]) ** 2).sum(-1)  # (n_labelled, k)
    own = np.searchsorted(classes, y)
    rows = np.arange(len(y))
    # leave-one-out: x_i - mean_without_i = n / (n - 1) * (x_i - mean) (in 500 dimensions a small region's
    # in-sample mean sits close to each of its members)
    n_own = n[own]
    d2[rows, own] = np.where(n_own > 1, d2[rows, own] * (n_own / np.maximum(n_own - 1, 1)) ** 2, np.inf)
    near = classes[np.argmin(d2, axis=1)]
    k = len(classes)
    on_labelled = KMeans(k, init=cent, n_init=1, random_state=seed).fit(x).labels_
    on_all = KMeans(k, init=cent, n_init=1, random_state=seed).fit(x_all).predict(x)
    return {"nearest true centroid": adjusted_rand_score(y, near),
            "k-means from the true centroids, labelled spots": adjusted_rand_score(y, on_labelled),
            "k-means from the true centroids, all spots": adjusted_rand_score(y, on_all)}


def merged_by_majority(clusters: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each cluster renamed to the region most of its labelled spots have.

    A heuristic reviewer who sees the labels the result is scored against: optimistic in that, and not the
    ARI-optimal merge either (a section whose clusters all have one majority region scores 0).
    """
    out = np.empty(len(y), dtype=object)
    for c in np.unique(clusters):
        names, counts = np.unique(y[clusters == c], return_counts=True)
        out[clusters == c] = names[np.argmax(counts)]
    return out.astype(str)


def review_rows(x: np.ndarray, lab: np.ndarray, y: np.ndarray, seed: int) -> dict[int, float]:
    """ARI after over-clustering ``x`` (all spots) into k + m regions and merging them by majority, per m."""
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.cluster import cluster_embedding

    k = len(set(y))
    return {m: adjusted_rand_score(y, merged_by_majority(cluster_embedding(x, k + m, "kmeans", seed)[0][lab], y))
            for m in EXTRA_CLUSTERS}


def read_labelled(path: str) -> tuple[AnnData, np.ndarray, np.ndarray]:
    """A section, its labelled spots (bool, ``(n_spots,)``) and their labels (str, one per labelled spot)."""
    from napari_senca.io import read_section

    adata = read_section(path)
    lab = adata.obs["label"].notna().to_numpy()
    return adata, lab, adata.obs["label"].to_numpy()[lab].astype(str)


def label_codes(lab: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The region names (sorted) and every spot's code among them (``-1``: unlabelled), from :func:`read_labelled`."""
    names, code_l = np.unique(y, return_inverse=True)
    codes = np.full(len(lab), -1)
    codes[np.flatnonzero(lab)] = code_l
    return names, codes


def interior_spots(adata: AnnData, lab: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Labelled spots whose neighbours on the k = 4 graph all carry their label: spots a reviewer would call typical."""
    from napari_senca.graph import build_graph

    label = np.full(adata.n_obs, None, dtype=object)
    label[np.flatnonzero(lab)] = y
    adj = build_graph(adata.obsm["spatial"], 4).adjacency.tocsr()
    out = np.zeros(adata.n_obs, bool)
    for i in np.flatnonzero(lab):
        nbrs = adj.indices[adj.indptr[i] : adj.indptr[i + 1]]
        out[i] = all(label[j] == label[i] for j in nbrs)
    return out


def _draw(rng: np.random.Generator, members: np.ndarray, pool: np.ndarray, n: int) -> np.ndarray:
    """n spots of a region (one always left out), from ``pool`` first, topped up from the other members."""
    n = min(n, max(1, len(members) - 1))
    first = members[pool[members]]
    take = rng.choice(first, min(n, len(first)), replace=False)
    rest = np.setdiff1d(members, take)
    return np.concatenate([take, rng.choice(rest, n - len(take), replace=False)])


def by_hand_rows(x: np.ndarray, lab: np.ndarray, y: np.ndarray, interior: np.ndarray,
                 seed: int) -> dict[tuple[int, str], float]:
    """Median ARI over :data:`DRAWS` draws of n spots per region given by hand, per (n, how they are drawn).

    ``random``: any labelled spots of the region; ``interior``: spots whose neighbours all share the region's
    label (:func:`interior_spots`; topped up at random where a region has too few). The rest of the spots get
    the nearest region mean of the given ones in ``x`` (:func:`napari_senca.review.classify.nearest_region_mean`,
    what the Review widget's "Classify the rest from assigned spots" does); scored on the labelled spots that
    were not given. A region keeps at least one spot out of the draw.
    """
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.review.classify import nearest_region_mean

    names, codes = label_codes(lab, y)
    rng = np.random.default_rng(seed)
    out = {}
    for how, pool in (("random", lab), ("interior", interior)):
        for n in BY_HAND:
            aris = []
            for _ in range(DRAWS):
                given = np.zeros(len(x), bool)
                for c in range(len(names)):
                    given[_draw(rng, np.flatnonzero(codes == c), pool, n)] = True
                pred = nearest_region_mean(x, codes, given)
                test = lab & ~given
                aris.append(adjusted_rand_score(codes[test], pred[test]))
            out[(n, how)] = float(np.median(aris))
    return out


def hvg_features(adata: AnnData) -> dict[str, np.ndarray]:
    """The seed-independent features: the preprocessed HVGs (the model reads their PCs), raw and neighbour-averaged."""
    from napari_senca.config import SencaConfig
    from napari_senca.preprocess import preprocess_expression

    x = preprocess_expression(adata, SencaConfig()).X
    return {
        "500 HVGs (scaled, as preprocessed for the model)": x,
        "500 HVGs, neighbour-averaged": np.asarray(neighbour_mean(adata) @ x),
    }


def representations(adata: AnnData, hvgs: dict[str, np.ndarray], res: SencaResult, seed: int) -> dict[str, np.ndarray]:
    """Every spot's features, (n_spots, d) each: ``hvgs`` (:func:`hvg_features`), the baseline's PCs, the model's embedding.

    ``res`` is the default model's run with ``seed`` (a :class:`~napari_senca.pipeline.SencaResult`).
    """
    return {**hvgs, BASELINE: baseline_features(adata, seed), MODEL: res.embedding}


def unsupervised(adata: AnnData, k: int, seeds: list[int]) -> tuple[dict[str, list[np.ndarray]], list[SencaResult]]:
    """The labels of ``her2st.py``'s smoothed-PCA baseline and default model, one array per seed, and the model's runs."""
    from sklearn.cluster import KMeans

    from napari_senca.config import SencaConfig
    from napari_senca.pipeline import run_senca

    runs = [run_senca(adata, SencaConfig(n_clusters=k, seed=s, image_weights="none")) for s in seeds]
    baseline = [KMeans(k, n_init=10, random_state=s).fit_predict(baseline_features(adata, s)) for s in seeds]
    return {"smoothed PCA + k-means (pca_nbr_kmeans)": baseline, "senca default": [r.labels for r in runs]}, runs


def unsupervised_aris(labels: dict[str, list[np.ndarray]], y: np.ndarray, lab: np.ndarray) -> dict[str, list[float]]:
    """The ARI of every seed of :func:`unsupervised`'s labels on the labelled spots, per method."""
    from sklearn.metrics import adjusted_rand_score

    return {name: [adjusted_rand_score(y, np.asarray(lb)[lab]) for lb in per_seed] for name, per_seed in labels.items()}


def run_section(path: str, seeds: list[int]) -> list[dict]:
    """Every ceiling, geometry and unsupervised row of one section.

    The classifiers run on the first seed's representations; the geometry and unsupervised rows are medians over
    ``seeds`` (only the model's embedding changes with the seed).
    """
    from sklearn.metrics import adjusted_rand_score

    adata, lab, y = read_labelled(path)
    xy = np.asarray(adata.obsm["spatial"], float)[lab]
    k = len(set(y))
    labels, runs = unsupervised(adata, k, seeds)
    interior = interior_spots(adata, lab, y)
    hvgs = hvg_features(adata)
    rows, geometry, review, by_hand = [], {}, {}, {}
    for i, (seed, run) in enumerate(zip(seeds, runs, strict=True)):
        for rep, x in representations(adata, hvgs, run, seed).items():
            for name, ari in centroid_rows(x[lab], y, x, seed).items():
                geometry.setdefault((rep, name), []).append(ari)
            if rep in REVIEWED:
                for m, ari in review_rows(x, lab, y, seed).items():
                    review.setdefault((rep, m), []).append(ari)
                for (n, how), ari in by_hand_rows(x, lab, y, interior, seed).items():
                    by_hand.setdefault((rep, n, how), []).append(ari)
            if i:
                continue
            for scheme in SCHEMES:
                t0 = time.perf_counter()
                splits = folds(y, xy, scheme)
                scores = {name: adjusted_rand_score(y, out_of_fold(m, x[lab], y, splits))
                          for name, m in classifiers().items()}
                best = max(scores, key=scores.get)
                rows.append(dict(kind="ceiling", representation=rep, scheme=f"{scheme}, seed {seed}", ari=scores[best],
                                 best=best, all=scores, seconds=time.perf_counter() - t0))
    span = f"seeds {seeds[0]}-{seeds[-1]}"
    for (rep, name), aris in geometry.items():
        rows.append(dict(kind="geometry", representation=rep, scheme=f"{name}, {span}", ari=float(np.median(aris)),
                         per_seed=aris))
    for (rep, m), aris in review.items():
        rows.append(dict(kind="review", representation=rep, scheme=f"k + {m} clusters merged by majority, {span}",
                         ari=float(np.median(aris)), per_seed=aris))
    for (rep, n, how), aris in by_hand.items():
        rows.append(dict(kind="by hand", representation=rep,
                         scheme=f"{n} {how} spots per region, the rest by nearest mean, {span}",
                         ari=float(np.median(aris)), per_seed=aris))
    for name, aris in unsupervised_aris(labels, y, lab).items():
        rows.append(dict(kind="unsupervised", representation=name, scheme=span, ari=float(np.median(aris)),
                         per_seed=aris))
    return rows


def table(results: dict[str, list[dict]]) -> str:
    """Markdown: one row per (representation, scheme), one column per section, the mean over sections."""
    secs = list(results)
    keys = list(dict.fromkeys((r["kind"], r["representation"], r["scheme"]) for rows in results.values() for r in rows))
    head = "| what | scheme | " + " | ".join(secs) + " | mean |\n|---|---|" + "---|" * (len(secs) + 1) + "\n"
    lines = []
    for key in keys:
        by_sec = {s: {(r["kind"], r["representation"], r["scheme"]): r["ari"] for r in results[s]}.get(key) for s in secs}
        vals = [v for v in by_sec.values() if v is not None]
        cells = " | ".join("–" if v is None else f"{v:.3f}" for v in by_sec.values())
        label = f"{key[0]}: {key[1]}" if key[0] != "unsupervised" else key[1]
        lines.append(f"| {label} | {key[2]} | {cells} | **{np.mean(vals):.3f}** |")
    return head + "\n".join(lines)


def run_over_sections(doc: str, run_section: Callable[[str, list[int]], list[dict]], argv: list[str] | None = None,
                      dlpfc: bool = False, report: Callable[[list[dict]], str] | None = None) -> int:
    """The command line these scripts share: one ``run_section(path, seeds)`` per section, the table, the raw JSON.

    Options ``--sections``, ``--seeds``, ``--first-seed``, ``--threads``, ``--json``, and with ``dlpfc`` a ``--dlpfc`` that runs
    DLPFC 151510 instead of HER2ST. ``report`` adds to each section's progress line.
    """
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=",".join(SECTIONS))
    if dlpfc:
        ap.add_argument("--dlpfc", action="store_true", help="DLPFC 151510 instead of HER2ST")
    ap.add_argument("--seeds", type=int, default=3, help="seeds FIRST .. FIRST + SEEDS - 1")
    ap.add_argument("--first-seed", type=int, default=0, help="the first seed (held-out runs start above those used)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write every raw result here")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    paths = ({"DLPFC": shared_data() / "dlpfc_151510"} if getattr(args, "dlpfc", False)
             else {s: shared_data() / "her2st" / s for s in args.sections.split(",")})
    results = {}
    for sec, path in paths.items():
        t0 = time.perf_counter()
        results[sec] = run_section(str(path), list(range(args.first_seed, args.first_seed + args.seeds)))
        print(f"{sec}: {time.perf_counter() - t0:.0f} s" + (f", {report(results[sec])}" if report else ""), flush=True)
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


def best_ceiling(rows: list[dict]) -> str:
    """A section's best ceiling, in words."""
    best = max((r for r in rows if r["kind"] == "ceiling"), key=lambda r: r["ari"])
    return f"best ceiling {best['ari']:.3f} ({best['representation']}, {best['scheme']}, {best['best']})"


def main(argv: list[str] | None = None) -> int:
    """Run every section, print the table, optionally write the raw rows as JSON (the classifiers use seed 0)."""
    return run_over_sections(__doc__, run_section, argv, report=best_ceiling)


if __name__ == "__main__":
    sys.exit(main())
