"""A reviewer who corrects the clustering instead of assigning every region: what do a few corrections give?

*Classify the rest from assigned spots* (twentieth session) wants spots by hand in every region the user
keeps: regions with none lose their spots. A pathologist who finds the clustering right except where it
merged two tissues, or split one, would rather fix just that. This script simulates such a reviewer on
HER2ST, starting from the default model's k-means (k = the labelled regions):

* ``merge``: clusters whose labelled spots have the same majority region are merged (the Merge button);
* ``add``: each labelled region that is the majority of no cluster gets n spots by hand, at random among its
  labelled spots, in a new region; then every spot not assigned by hand is classified, the regions without
  spots by hand *kept* and represented by the mean of their current spots (``keep`` mode,
  :func:`napari_senca.review.classify.nearest_region_mean` with ``keep_unassigned=True``), or *dropped* as the button
  did before the twenty-first session (``drop``, now its *Drop* answer: only the new regions survive; where
  fewer than two regions have spots by hand it refused, and the clustering stays; the button now keeps the
  others then);
* ``merge + add``: both, merge first.

Scored on the labelled spots not given by hand, the median of 10 draws per seed, seeds 0-2; the clustering
itself and every spot-by-hand-in-each-region row (``her2st_ceiling.py``'s "by hand", 5 random spots per
region) from the same runs for comparison, with the number of spots given by hand.

Decision rule, written before the first run: the ``keep`` mode is built into the Review action only if
``merge + add (keep)`` with 5 spots beats ``merge`` alone by at least 0.02 in the HER2ST mean (so the added
regions, not the merge, pay) and is above ``merge + add (drop)``.

Usage::

    python benchmarks/corrective_review.py --json corrective.json
    python benchmarks/corrective_review.py --dlpfc --json corrective_dlpfc.json   # after the decision
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from her2st_ceiling import DRAWS, _draw, label_codes, read_labelled, run_over_sections, unsupervised  # noqa: E402

N_HAND = 5


def nearest_region_mean(x: np.ndarray, codes: np.ndarray, given: np.ndarray, keep_unassigned: bool) -> np.ndarray:
    """The Review rule; with ``keep_unassigned`` a region without given spots competes with its current spots' mean.

    (The first run, on commit 50817ec, used a copy of the keep rule written here; the package's rule gives the
    same rows.)
    """
    from napari_senca.review.classify import nearest_region_mean as rule

    return rule(x, codes, given, keep_unassigned)


def majority(clusters: np.ndarray, lab: np.ndarray, codes: np.ndarray) -> dict[int, int]:
    """Each cluster's majority labelled region (clusters without labelled spots left out)."""
    out = {}
    for c in np.unique(clusters):
        m = clusters[lab] == c
        if m.any():
            vals, counts = np.unique(codes[lab][m], return_counts=True)
            out[int(c)] = int(vals[np.argmax(counts)])
    return out


def merged(clusters: np.ndarray, lab: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Clusters with the same majority region merged into the first of them."""
    out = clusters.copy()
    first: dict[int, int] = {}
    for c, r in sorted(majority(clusters, lab, codes).items()):
        out[clusters == c] = first.setdefault(r, c)
    return out


def added(rng: np.random.Generator, x: np.ndarray, clusters: np.ndarray, lab: np.ndarray, codes: np.ndarray,
          keep: bool) -> tuple[np.ndarray, np.ndarray]:
    """New regions for the labelled regions no cluster has as majority, n spots each by hand, the rest classified.

    Returns the labels and the given mask (nothing given and the clustering unchanged when no region is missing,
    or, in ``drop`` mode, when fewer than two regions would have spots by hand).
    """
    have = set(majority(clusters, lab, codes).values())
    missing = [r for r in np.unique(codes[lab]) if r not in have]
    given = np.zeros(len(x), bool)
    if not missing or (not keep and len(missing) < 2):
        return clusters, given
    out = clusters.copy()
    new_code = int(clusters.max()) + 1
    for r in missing:
        idx = _draw(rng, np.flatnonzero(codes == r), lab, N_HAND)
        out[idx] = new_code
        given[idx] = True
        new_code += 1
    return nearest_region_mean(x, out, given, keep), given


def run_section(path: str, seeds: list[int]) -> list[dict]:
    """Every row of one section."""
    from sklearn.metrics import adjusted_rand_score

    adata, lab, y = read_labelled(path)
    names, codes = label_codes(lab, y)
    labels, runs = unsupervised(adata, len(names), seeds)
    per: dict[str, list[float]] = {}
    hand: dict[str, list[float]] = {}

    def score(pred: np.ndarray, given: np.ndarray) -> float:
        test = lab & ~given
        return adjusted_rand_score(codes[test], pred[test])

    for seed, run, km in zip(seeds, runs, labels["senca default"], strict=True):
        x = np.asarray(run.embedding)
        km = np.asarray(km)
        rng = np.random.default_rng(seed)
        none = np.zeros(len(x), bool)
        rows: dict[str, list[tuple[float, int]]] = {"k-means (no correction)": [(score(km, none), 0)],
                                                     "merge": [(score(merged(km, lab, codes), none), 0)]}
        for _ in range(DRAWS):
            for keep in (True, False):
                mode = "keep" if keep else "drop"
                pred, given = added(rng, x, km, lab, codes, keep)
                rows.setdefault(f"add ({mode})", []).append((score(pred, given), int(given.sum())))
                pred, given = added(rng, x, merged(km, lab, codes), lab, codes, keep)
                rows.setdefault(f"merge + add ({mode})", []).append((score(pred, given), int(given.sum())))
            given = np.zeros(len(x), bool)
            for c in range(len(names)):
                given[_draw(rng, np.flatnonzero(codes == c), lab, N_HAND)] = True
            rows.setdefault(f"{N_HAND} spots in every region (today's button)", []).append(
                (score(nearest_region_mean(x, codes, given, False), given), int(given.sum())))
        for name, vals in rows.items():
            per.setdefault(name, []).append(float(np.median([v for v, _ in vals])))
            hand.setdefault(name, []).append(float(np.median([n for _, n in vals])))
    span = f"seeds {seeds[0]}-{seeds[-1]}"
    out = [dict(kind="review", representation=name, scheme=f"{N_HAND} spots per added region, {span}",
                ari=float(np.median(a)), per_seed=a, spots_by_hand=float(np.median(hand[name])))
           for name, a in per.items()]
    for name in per:  # the spots given by hand, as rows of their own for the table
        out.append(dict(kind="spots by hand", representation=name, scheme=span, ari=float(np.median(hand[name]))))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every section, print the table, optionally write the raw rows as JSON."""
    return run_over_sections(__doc__, run_section, argv, dlpfc=True)


if __name__ == "__main__":
    sys.exit(main())
