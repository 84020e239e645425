"""Carry a review across a new clustering: match old and new clusters by shared spots.

:func:`match_clusters` matches the regions of the current cut to those of a
new one. :class:`RegionMemory` remembers the regions a cut (or a merge)
made disappear, with their spots, name and colour, so that a region that
comes back with (nearly) the same spots, e.g. after stepping the cluster
count down and up again, gets its id, name and colour back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..confidence import contingency, factorize_labels

__all__ = ["match_clusters", "RegionMemory", "Remembered", "RECALL_MIN_JACCARD"]

#: a remembered region comes back when it and a new region share at least this
#: fraction of their spots together (Jaccard index)
RECALL_MIN_JACCARD = 0.5


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

    old_ids, oi = factorize_labels(np.asarray(old, dtype=object), as_str=True)
    new_ids, ni = factorize_labels(np.asarray(new, dtype=object), as_str=True)
    table = contingency(ni, oi, new_ids.size, old_ids.size)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {str(new_ids[r]): str(old_ids[c]) for r, c in zip(rows, cols, strict=True) if table[r, c] > 0}


@dataclass(frozen=True)
class Remembered:
    """A region that disappeared: its spots (packed bits), size, name and colour."""

    bits: np.ndarray
    size: int
    name: str
    colour: str | None


class RegionMemory:
    """Regions that disappeared from a section, to give them back when they reappear.

    Memory: one bit per spot and region (62 kB per region of a 500,000-bin
    section); only the last ``max_regions`` are kept. Not an edit: undo does
    not change it.

    Parameters
    ----------
    n_spots
        Number of spots of the section.
    max_regions
        How many disappeared regions are remembered.
    """

    def __init__(self, n_spots: int, max_regions: int = 64) -> None:
        self.n_spots = int(n_spots)
        self.max_regions = int(max_regions)
        self._regions: dict[str, Remembered] = {}

    def ids(self) -> list[str]:
        """Ids of the remembered regions (not to be given to other regions)."""
        return list(self._regions)

    def get(self, cid: str) -> Remembered | None:
        """The remembered region ``cid`` (None when not remembered)."""
        return self._regions.get(cid)

    def remember(self, labels: np.ndarray, ids: Iterable[str], names: dict[str, str], colours: dict[str, str]) -> None:
        """Remember the regions ``ids`` as they are in ``labels`` (cluster id per spot)."""
        lab = np.asarray(labels, dtype=object).astype(str)
        for cid in ids:
            mask = lab == cid
            if not mask.any() or cid not in names:
                continue
            self._regions.pop(cid, None)  # the newest goes last
            self._regions[cid] = Remembered(np.packbits(mask), int(mask.sum()), names[cid], colours.get(cid))
        while len(self._regions) > self.max_regions:
            del self._regions[next(iter(self._regions))]

    def recall(self, current: np.ndarray, new: np.ndarray, min_jaccard: float = RECALL_MIN_JACCARD) -> dict[str, str]:
        """New clusters that are a remembered region again: new id -> remembered id.

        A new cluster takes a remembered region (one-to-one, Hungarian on the
        Jaccard index) when they share at least ``min_jaccard`` of their
        spots and it is closer to that region than to every region of the
        ``current`` cut. Remembered ids present in ``current`` are skipped.
        """
        from scipy.optimize import linear_sum_assignment

        cur_ids, ci = factorize_labels(np.asarray(current, dtype=object), as_str=True)
        present = set(cur_ids.tolist())
        keys = [c for c in self._regions if c not in present]
        if not keys:
            return {}
        new_ids, ni = factorize_labels(np.asarray(new, dtype=object), as_str=True)
        sizes = np.bincount(ni, minlength=new_ids.size)
        best_now = _best_jaccard(ni, sizes, ci, cur_ids.size)
        table = np.zeros((new_ids.size, len(keys)))
        for j, cid in enumerate(keys):
            reg = self._regions[cid]
            mask = np.unpackbits(reg.bits, count=self.n_spots).astype(bool)
            inter = np.bincount(ni[mask], minlength=new_ids.size)
            jac = inter / (sizes + reg.size - inter)
            table[:, j] = np.where((jac >= min_jaccard) & (jac > best_now), jac, 0.0)
        rows, cols = linear_sum_assignment(table, maximize=True)
        return {str(new_ids[r]): keys[c] for r, c in zip(rows, cols, strict=True) if table[r, c] > 0}


def _best_jaccard(ni: np.ndarray, sizes: np.ndarray, ci: np.ndarray, n_current: int) -> np.ndarray:
    """For every new cluster (codes ``ni``), its highest Jaccard index with a current cluster (codes ``ci``)."""
    table = contingency(ni, ci, sizes.size, n_current)
    osz = table.sum(axis=0)
    jac = table / (sizes[:, None] + osz[None, :] - table)
    return jac.max(axis=1) if jac.size else np.zeros(sizes.size)
