"""Regions from a few spots assigned by hand: every other spot to the nearest region mean.

A clustering cannot know how coarse the pathologist's regions are (on HER2ST
the pathologist's regions are not a k-means solution of the model's
embedding; docs/benchmarks.md, "Twentieth session"). A few spots of each
region, assigned by hand in the Review widget, say it: each of the other
spots is given the region whose hand-assigned spots' mean in the SENCA
embedding is nearest. The region means are all the rule learns from the
user, so a few spots per region are enough (HER2ST: 0.39 mean ARI with five
random spots per region, against 0.31 for the unsupervised clustering;
``benchmarks/her2st_ceiling.py``).

A reviewer who only corrects the clustering (adds the region it missed with a
few spots, merges what it split) keeps the regions without spots by hand:
each of them competes with the mean of its current spots (HER2ST, merge and
add: 0.37 against 0.32 for the merge alone; ``benchmarks/corrective_review.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from anndata import AnnData

from ..confidence import region_means
from ..errors import ConfigError

__all__ = ["ClassifyMixin", "nearest_region_mean"]

#: spots per distance block: a (block, d) float64 copy and (block, regions) distances, a few MB at any size
_BLOCK = 65_536


def nearest_region_mean(
    embedding: np.ndarray, codes: np.ndarray, given: np.ndarray, keep_unassigned: bool = False
) -> np.ndarray:
    """Each spot outside ``given`` takes the code of the nearest mean of the given spots' regions.

    Parameters
    ----------
    embedding
        ``(n_spots, d)`` the clustered SENCA embedding (``obsm["X_senca"]``).
    codes
        ``(n_spots,)`` int region codes now (``-1``: none; such spots get a region too unless given).
    given
        ``(n_spots,)`` bool, the spots whose region the user gave (assigned by hand); they keep theirs.
    keep_unassigned
        Regions with spots but none of them given compete too, with the mean of their current spots;
        by default they lose their spots to the regions with given spots.

    Returns
    -------
    np.ndarray
        ``(n_spots,)`` new codes: ``codes`` on the given spots, the nearest region mean's code elsewhere.

    Raises
    ------
    ConfigError
        When no spot is given, when fewer than two regions would compete, or when the embedding does not match
        the spots.
    """
    x = np.asarray(embedding)  # not copied: float64 per block below
    codes = np.asarray(codes)
    given = np.asarray(given, dtype=bool)
    if x.ndim != 2 or len(x) != len(codes) or len(given) != len(codes):
        raise ConfigError(f"the stored embedding has {len(x)} rows for {len(codes)} spots: run the model again")
    sel = given & (codes >= 0)
    if keep_unassigned:
        sel |= (codes >= 0) & ~np.isin(codes, codes[sel])  # regions with no spot by hand: their current spots
    regions = np.unique(codes[sel])
    if not (given & (codes >= 0)).any() or len(regions) < 2:
        n = len(np.unique(codes[given & (codes >= 0)]))
        raise ConfigError(
            "assign a few spots of at least two regions by hand first (select them, 'Assign selected spots'); "
            f"spots assigned by hand are now in {n} region{'s' if n != 1 else ''}"
            if not keep_unassigned or not n
            else "there is only one region: assign a few spots to a new region first"
        )
    means = region_means(x, np.where(sel, np.searchsorted(regions, codes), -1), len(regions))  # (m, d)
    out = codes.copy()
    rest = np.flatnonzero(~given)
    sq = (means**2).sum(1)
    for start in range(0, len(rest), _BLOCK):
        idx = rest[start : start + _BLOCK]
        d2 = sq[None, :] - 2.0 * x[idx].astype(np.float64) @ means.T  # (block, m): |x - mean|^2 less |x|^2
        out[idx] = regions[np.argmin(d2, axis=1)]
    return out


class ClassifyMixin:
    """The "Classify the rest from assigned spots" edit of :class:`~napari_senca.review.ReviewState` (undoable).

    Uses the state's ``adata``, ``manual``, ``hidden``, ``clusters``, ``has_result``,
    ``can_recluster``, ``require_result``, ``renamed``, ``name_of``, ``_labels``,
    ``_push``, ``_set_labels`` and ``_changed``.
    """

    adata: AnnData
    manual: np.ndarray
    hidden: set[str]
    clusters: list[str]
    has_result: bool
    can_recluster: bool
    require_result: Callable[[], None]
    renamed: Callable[[str], bool]
    name_of: Callable[[str], str]
    _labels: Callable[[], pd.Categorical]
    _push: Callable[..., None]
    _set_labels: Callable[..., None]
    _changed: Callable[..., None]

    def classify_from_assigned(self, keep_unassigned: bool = False) -> str:
        """Give every spot not assigned by hand the region whose hand-assigned spots' mean is nearest.

        In the stored SENCA embedding (:func:`.classify.nearest_region_mean`).
        Spots assigned by hand keep their region; the others (spots of no
        region included) are not marked as assigned by hand, so a new cluster
        count re-cuts them. Regions with no spot assigned by hand lose their
        other spots and disappear (:meth:`classify_would_empty` names the ones
        the user named), or, with ``keep_unassigned``, compete with the mean of
        their current spots (:meth:`regions_without_hand`): the way to add a
        region the clustering missed, or correct one, and keep the others.
        One edit: undo takes it back; nothing to change, no edit.

        Returns
        -------
        str
            What was done, in words.

        Raises
        ------
        ConfigError
            No stored SENCA embedding, no spot assigned by hand, or fewer than two regions to classify into.
        """
        from ..section import EMBED_KEY

        self.require_result()
        if not self.can_recluster:
            raise ConfigError("this clustering has no stored SENCA embedding: run the model first")
        labels = self._labels()
        codes = np.asarray(labels.codes)
        new = nearest_region_mean(self.adata.obsm[EMBED_KEY], codes, self.manual, keep_unassigned)
        idx = np.flatnonzero(new != codes)
        n_hand = int(self.manual.sum())
        if not idx.size:
            return "nothing to change: every spot is already in the region with the nearest mean"
        hand_regions = set(np.unique(codes[self.manual & (codes >= 0)]).tolist())
        before, after = set(np.unique(codes[codes >= 0]).tolist()), set(np.unique(new[new >= 0]).tolist())
        kept = len(after - hand_regions)
        lost = [self.name_of(self.clusters[i]) for i in sorted(before - after)] if keep_unassigned else []
        cats = list(labels.categories)
        hidden = [cats.index(c) for c in self.hidden if c in cats]
        n_hidden = int((np.isin(codes[idx], hidden) | np.isin(new[idx], hidden)).sum())
        what = (f"classified {int((~self.manual).sum())} spots into {len(after)} regions from {n_hand} "
                "spots assigned by hand" + (f" and {kept} region{'s' if kept > 1 else ''}'{'' if kept > 1 else 's'} own spots" if kept else "")
                + f" ({idx.size} changed"
                + (f", {n_hidden} of them into or out of hidden regions)" if n_hidden else ")")
                + (f"; {', '.join(repr(n) for n in lost)} lost all {'their' if len(lost) > 1 else 'its'} spots"
                   if lost else ""))
        self._push(what, idx)
        self._set_labels(pd.Categorical.from_codes(new, categories=labels.categories))
        self._changed(what, labels=True, spots=idx)
        return what

    def regions_without_hand(self) -> list[str]:
        """Ids of the regions that have spots but none assigned by hand (kept or emptied by the classification)."""
        if not self.has_result:
            return []
        codes = np.asarray(self._labels().codes)
        without = set(np.unique(codes[codes >= 0]).tolist()) - set(np.unique(codes[self.manual]).tolist())
        return [c for i, c in enumerate(self.clusters) if i in without]

    @property
    def n_hand_regions(self) -> int:
        """How many regions hold spots assigned by hand."""
        if not self.has_result:
            return 0
        codes = np.asarray(self._labels().codes)
        return len(np.unique(codes[self.manual & (codes >= 0)]))

    def classify_would_empty(self) -> list[str]:
        """Names the user gave to regions that :meth:`classify_from_assigned` would empty (none of their spots by hand)."""
        if self.n_hand_regions < 2:
            return []  # nothing would be classified without keeping the other regions
        return [self.name_of(c) for c in self.regions_without_hand() if self.renamed(c)]
