"""Regions from an annotated reference: each HER2ST section named from the other sections' labels.

The twentieth session showed that the model's embedding carries the pathologist's regions but that no
clustering objective picks their grain; the twenty-first that textbook marker genes do not give it either
(0.215). A third source of the grain, not tried before: sections a pathologist has already annotated. A
user with an annotated cohort (a previous run's ``annotated.h5ad`` with region names, or a labelled
``.h5ad``) opens a new section and asks for its regions by those names. Here every HER2ST section is the
new section in turn, and the labels of the other seven (other patients) are the reference: leave one
section out. The target section's labels are used only to score.

Features (per leave-one-out split, target-independent except for the genes it has):

* genes present in every section; counts per spot normalised to 10,000 and ``log1p``;
* 2,000 highly variable genes chosen on the reference sections (scanpy, ``batch_key`` = section), after
  dropping genes with fewer than 10 counts over the references;
* each gene z-scored within its own section (all its spots, clipped at 10): what remains is how a spot
  differs from the rest of its section, not the patient's or the run's level;
* averaged over each spot and its 4 neighbours (within its section);
* 50 PCs fitted on the reference spots, the target projected on them.

Rows (ARI on the target's labelled spots):

* ``LR, section's regions`` (**primary**): logistic regression (class-balanced, scikit-learn defaults
  otherwise) trained on the references' labelled spots; each target spot gets the most probable region
  among those the target section has (the user ticks which of the reference's regions the section shows:
  the protocol's k is the same knowledge, counted);
* ``LR, all regions``: the same without that restriction;
* ``nearest reference centroid``: each region's mean over the references' labelled spots, each target
  spot to the most correlated (section's regions);
* ``one reference section``: the primary rule with a single other section as the reference (what a user
  with one annotated section has), the median over the seven; a target region the reference lacks
  cannot be predicted;
* ``k + 3 clusters named by the transfer``: k-means into k + 3 clusters (the model's embedding or the
  baseline's PCs), each cluster named after the primary's most frequent prediction over its spots
  (clusters with one name merge): the twentieth session's "review" row with the reference as reviewer;
* ``10 seeds + nearest mean``: the 10 spots per region with the widest probability margin of the primary
  seed it, every other spot joins the nearest seeds' mean in the model's embedding (or the baseline's);
* the unsupervised rows of ``her2st.py`` (smoothed PCA + k-means, the default model) on the same seeds.

Pre-registered (committed before the first run): the primary row decides. A core function and a CLI /
Review entry to name a section's regions from an annotated reference are built only if the primary's
HER2ST mean beats the default model's k-means mean in the same run by at least 0.02. Issue 9's 0.35 goal
is not called met by any row here: they use other sections' labels, so they are reported as reference-
guided figures beside the unsupervised ones. A secondary row that beats the primary is reported, not
adopted, in this run.

Result of the first run (seeds 0-2, commit 9c11eb0): the primary row 0.296 against 0.307 for the model's
k-means, so it fails; the secondary ``k + 3 clusters named by the transfer`` on the model's embedding gave
0.382. Second rule, committed before its run, on held-out seeds (45-53, never used for HER2ST before):

* the confirmed row is ``k + 3 clusters named by the transfer`` on the model's clustered embedding, the
  names from the primary's restricted predictions, exactly as in the first run;
* a core function and a CLI / Review entry that name a section's regions from annotated reference
  sections this way are built only if that row's HER2ST mean (of the per-section medians over the nine
  seeds) beats the default model's k-means mean in the same run by at least 0.02;
* reported beside it, not deciding: the same naming without the restriction to the section's regions
  (``all regions``), and with one other section as the reference (median over the seven references and
  the seeds).

Result of the second run (057eee3, seeds 45-53): 0.368 against 0.298, so the rule is confirmed and the
rule is now ``napari_senca.reference`` (``predict_regions``, ``name_clusters``) with
``ReviewState.name_from_reference``. This script calls that shipped code since; the first two runs used
this script's own copy of the recipe (same steps; dense HVG selection on sorted genes), and a
``nearest reference centroid`` row (0.235 in the first run) that the shipped code does not offer.

Usage::

    python benchmarks/her2st_transfer.py --json transfer.json          # 8 sections, seeds 0-2
    python benchmarks/her2st_transfer.py --seeds 9 --first-seed 45     # the held-out confirmation
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from anndata import AnnData

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from her2st import SECTIONS, baseline_features, shared_data  # noqa: E402
from her2st_ceiling import (  # noqa: E402
    BASELINE,
    MODEL,
    read_labelled,
    run_over_sections,
    unsupervised,
    unsupervised_aris,
)

EXTRA = 3
N_SEEDS = 10


@cache
def section(name: str) -> tuple[AnnData, np.ndarray, np.ndarray]:
    """A HER2ST section read once: (adata, labelled mask, labels)."""
    return read_labelled(str(shared_data() / "her2st" / name))


def transfer(target: str, refs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The shipped rule (:func:`napari_senca.reference.predict_regions`): (classes, target probabilities)."""
    from napari_senca.reference import predict_regions

    pred = predict_regions(section(target)[0], [section(s)[0] for s in refs])
    return pred.probabilities.columns.to_numpy(), pred.probabilities.to_numpy()


def restricted(classes: np.ndarray, proba: np.ndarray, allowed: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """The most probable allowed class per spot, and the allowed classes' probabilities ``(n, n_allowed)``."""
    cols = np.flatnonzero(np.isin(classes, sorted(allowed)))
    return classes[cols][proba[:, cols].argmax(1)], proba[:, cols]


def named_by_vote(clusters: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Each cluster named after the most frequent prediction over its spots (:func:`napari_senca.reference.name_clusters`)."""
    from napari_senca.reference import name_clusters

    names = name_clusters(clusters, pred)
    return np.asarray([names[int(c)] for c in clusters], dtype=object).astype(str)


def run_section(path: str, seeds: list[int]) -> list[dict]:
    """Every row of one target section."""
    import pandas as pd
    from marker_panel import seed_spots
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.cluster import cluster_embedding
    from napari_senca.review.classify import nearest_region_mean

    target = Path(path).name
    adata, lab, y = section(target)
    allowed = set(y)
    k = len(allowed)
    refs = [s for s in SECTIONS if s != target]
    rows: list[dict] = []

    def add(kind: str, rep: str, scheme: str, aris: list[float]) -> None:
        rows.append(dict(kind=kind, representation=rep, scheme=scheme, ari=float(np.median(aris)), per_seed=aris))

    classes, proba = transfer(target, refs)
    pred, p_allowed = restricted(classes, proba, allowed)
    add("transfer", "seven other sections", "LR, section's regions (primary)", [adjusted_rand_score(y, pred[lab])])
    add("transfer", "seven other sections", "LR, all regions", [adjusted_rand_score(y, classes[proba.argmax(1)][lab])])
    single, single_pred = [], {}
    for r in refs:
        c1, p1 = transfer(target, [r])
        single_pred[r] = restricted(c1, p1, allowed)[0]
        single.append(adjusted_rand_score(y, single_pred[r][lab]))
    rows.append(dict(kind="transfer", representation="one other section", scheme="LR, section's regions, median of 7",
                     ari=float(np.median(single)), per_reference=dict(zip(refs, single, strict=True))))

    labels, runs = unsupervised(adata, k, seeds)
    reps = [{MODEL: r.embedding, BASELINE: baseline_features(adata, s)} for r, s in zip(runs, seeds, strict=True)]
    span = f"seeds {seeds[0]}-{seeds[-1]}"
    names = classes[np.isin(classes, sorted(allowed))]
    given = seed_spots(pd.DataFrame(p_allowed, columns=names), N_SEEDS)
    for rep in (MODEL, BASELINE):
        add("transfer", rep, f"k + {EXTRA} clusters named by the transfer, {span}",
            [adjusted_rand_score(y, named_by_vote(cluster_embedding(r[rep], k + EXTRA, "kmeans", s)[0], pred)[lab])
             for r, s in zip(reps, seeds, strict=True)])
        add("transfer", rep, f"{N_SEEDS} seeds + nearest mean, {span}",
            [adjusted_rand_score(y, names[nearest_region_mean(r[rep], given, given >= 0)][lab]) for r in reps])
    model_clusters = [cluster_embedding(r[MODEL], k + EXTRA, "kmeans", s)[0] for r, s in zip(reps, seeds, strict=True)]
    unrestricted = classes[proba.argmax(1)]
    add("transfer", MODEL, f"k + {EXTRA} clusters named by the transfer, all regions, {span}",
        [adjusted_rand_score(y, named_by_vote(c, unrestricted)[lab]) for c in model_clusters])
    per_pair = [adjusted_rand_score(y, named_by_vote(c, p)[lab]) for c in model_clusters for p in single_pred.values()]
    add("transfer", MODEL, f"k + {EXTRA} clusters named by one other section, median of 7 x seeds, {span}", per_pair)
    for name, aris in unsupervised_aris(labels, y, lab).items():
        add("unsupervised", name, span, aris)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every section, print the table, optionally write the raw rows as JSON."""
    return run_over_sections(__doc__, run_section, argv)


if __name__ == "__main__":
    sys.exit(main())
