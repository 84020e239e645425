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
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["nearest_region_mean"]

#: spots per distance block: a (block, d) float64 copy and (block, regions) distances, a few MB at any size
_BLOCK = 65_536


def nearest_region_mean(embedding: np.ndarray, codes: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Each spot outside ``given`` takes the code of the nearest mean of the given spots' regions.

    Parameters
    ----------
    embedding
        ``(n_spots, d)`` the clustered SENCA embedding (``obsm["X_senca"]``).
    codes
        ``(n_spots,)`` int region codes now (``-1``: none; such spots get a region too unless given).
    given
        ``(n_spots,)`` bool, the spots whose region the user gave (assigned by hand); they keep theirs.

    Returns
    -------
    np.ndarray
        ``(n_spots,)`` new codes: ``codes`` on the given spots, the nearest region mean's code elsewhere.

    Raises
    ------
    ConfigError
        When the given spots are in fewer than two regions, or the embedding does not match the spots.
    """
    x = np.asarray(embedding)  # not copied: float64 per block below
    codes = np.asarray(codes)
    given = np.asarray(given, dtype=bool)
    if x.ndim != 2 or len(x) != len(codes) or len(given) != len(codes):
        raise ConfigError(f"the stored embedding has {len(x)} rows for {len(codes)} spots: run the model again")
    regions = np.unique(codes[given & (codes >= 0)])
    if len(regions) < 2:
        raise ConfigError(
            "assign a few spots of at least two regions by hand first (select them, 'Assign selected spots'); "
            f"spots assigned by hand are now in {len(regions)} region{'s' if len(regions) != 1 else ''}"
        )
    means = np.stack([x[given & (codes == r)].mean(0, dtype=np.float64) for r in regions])  # (m, d)
    out = codes.copy()
    rest = np.flatnonzero(~given)
    sq = (means**2).sum(1)
    for start in range(0, len(rest), _BLOCK):
        idx = rest[start : start + _BLOCK]
        d2 = sq[None, :] - 2.0 * x[idx].astype(np.float64) @ means.T  # (block, m): |x - mean|^2 less |x|^2
        out[idx] = regions[np.argmin(d2, axis=1)]
    return out
