"""Carry a review across a new clustering: match old and new clusters by shared spots."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["match_clusters"]


def match_clusters(old: Sequence[str], new: Sequence[str]) -> dict[str, str]:
    """Best one-to-one matching of new clusters to old ones by spot overlap.

    Hungarian matching (:func:`scipy.optimize.linear_sum_assignment`) on the
    contingency table maximises the number of spots that keep their cluster.
    Pairs that share no spot are not matched.

    Parameters
    ----------
    old, new
        Cluster id of every spot before and after (same length).

    Returns
    -------
    dict
        New id -> old id for every matched new cluster.
    """
    from scipy.optimize import linear_sum_assignment

    o = np.asarray(old, dtype=object).astype(str)
    n = np.asarray(new, dtype=object).astype(str)
    old_ids, oi = np.unique(o, return_inverse=True)
    new_ids, ni = np.unique(n, return_inverse=True)
    table = np.zeros((new_ids.size, old_ids.size), dtype=np.int64)
    np.add.at(table, (ni, oi), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {str(new_ids[r]): str(old_ids[c]) for r, c in zip(rows, cols, strict=True) if table[r, c] > 0}
