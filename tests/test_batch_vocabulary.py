"""Matching the regions of separately run sections to one vocabulary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_senca.datasets import synthetic_section
from napari_senca.section import CLUSTER_KEY
from napari_senca.vocabulary import match_sections


def _clustered(seed: int, n_regions: int, perm: dict[int, int]):
    """A synthetic section whose 'clusters' are its true regions under arbitrary ids ``perm``."""
    a = synthetic_section(n_side=14, n_regions=n_regions, with_image=False, seed=seed)
    region = a.obs["label"].astype(str).str.replace("region ", "").astype(int)
    a.obs[CLUSTER_KEY] = pd.Categorical([str(perm[r]) for r in region])
    return a


def test_shared_regions_are_matched_and_a_new_one_is_added():
    ref = _clustered(0, 3, {0: 0, 1: 1, 2: 2})
    b = _clustered(1, 3, {0: 2, 1: 0, 2: 1})  # same tissues, other ids
    c = _clustered(2, 4, {0: 1, 1: 3, 2: 0, 3: 2})  # plus a tissue the reference lacks
    mapping, table = match_sections([("A", ref), ("B", b), ("C", c)], min_corr=0.3)
    assert mapping["A"] == {"0": "Region 0", "1": "Region 1", "2": "Region 2"}
    assert mapping["B"] == {"2": "Region 0", "0": "Region 1", "1": "Region 2"}
    assert mapping["C"] == {"1": "Region 0", "3": "Region 1", "0": "Region 2", "2": "C:2"}
    assert table.loc[table["section"] == "C", "new_entry"].sum() == 1
    assert (table.loc[~table["new_entry"], "correlation"] > 0.5).all()


def test_reference_names_carry_over_and_split_regions_join():
    ref = _clustered(0, 3, {0: 0, 1: 1, 2: 2})
    names = {"0": "invasive cancer", "1": "stroma", "2": "immune"}
    b = _clustered(1, 3, {0: 0, 1: 1, 2: 2})
    # section B split tissue 0 into two clusters: both must map to 'invasive cancer'
    lab = b.obs[CLUSTER_KEY].astype(str).to_numpy().copy()
    idx = np.flatnonzero(lab == "0")
    lab[idx[: len(idx) // 2]] = "3"
    b.obs[CLUSTER_KEY] = pd.Categorical(lab)
    mapping, _ = match_sections([("B", b)], reference=ref, reference_names=names)
    assert mapping["B"] == {"0": "invasive cancer", "3": "invasive cancer", "1": "stroma", "2": "immune"}
