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


def test_vocabulary_stays_sparse_and_matches_the_dense_computation():
    """A Visium HD section over every shared gene would not fit in memory as a dense copy."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from napari_senca import vocabulary

    rng = np.random.default_rng(0)
    x = sp.random(400, 250, density=0.1, format="csr", random_state=0, dtype=np.float32)
    x.data = np.round(x.data * 20) + 1
    sparse = ad.AnnData(X=x, obs=pd.DataFrame({"senca_cluster": pd.Categorical(rng.integers(0, 4, 400).astype(str))}))
    sparse.var_names = [f"g{i}" for i in range(250)]
    dense = ad.AnnData(X=x.toarray(), obs=sparse.obs.copy(), var=sparse.var.copy())
    assert sp.issparse(vocabulary._lognorm(sparse, list(sparse.var_names[:50])))
    genes = vocabulary.shared_genes([sparse], sparse, 80)
    assert genes == vocabulary.shared_genes([dense], dense, 80)
    (rs, cs), (rd, cd) = (vocabulary.region_centroids(a, genes) for a in (sparse, dense))
    assert rs == rd and np.allclose(cs, cd, atol=1e-12)
