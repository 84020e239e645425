"""Marker genes per region: Wilcoxon rank-sum, one cluster against the rest.

As in the paper's table 3: for each cluster, genes ranked by the Wilcoxon
statistic with Benjamini-Hochberg adjusted p-values, computed on
log-normalised expression of every gene that passes the count filter.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .errors import ConfigError
from .section import CLUSTER_KEY, is_normalized
from .threads import keep_torch_threads

__all__ = ["rank_markers", "MARKER_COLUMNS"]

MARKER_COLUMNS = ["cluster", "rank", "gene", "score", "logfoldchange", "pval", "pval_adj"]


def rank_markers(
    adata: AnnData,
    key: str = CLUSTER_KEY,
    n_genes: int = 25,
    min_gene_counts: int = 10,
) -> pd.DataFrame:
    """Marker-gene table of every cluster in ``obs[key]``.

    Parameters
    ----------
    adata
        Section with raw counts (or pre-normalised values when
        ``uns["senca_input"]["normalized"]`` is set: they are tested as given)
        and a categorical ``obs[key]``.
    key
        The clustering column.
    n_genes
        Top genes kept per cluster.
    min_gene_counts
        Genes with fewer total counts are not tested.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`MARKER_COLUMNS`, sorted by cluster then rank.

    Raises
    ------
    ConfigError
        When ``obs[key]`` is missing or has fewer than two clusters.
    """
    import scanpy as sc

    if key not in adata.obs:
        raise ConfigError(f"no clustering {key!r} on this section: run the model first")
    groups = adata.obs[key].astype("category")
    counts = groups.value_counts()
    usable = counts[counts >= 2].index
    if len(usable) < 2:
        raise ConfigError("marker genes need at least two clusters with two or more spots each")
    keep_spots = groups.isin(usable).to_numpy()
    X = adata.X[keep_spots]
    X = sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X) else sp.csr_matrix(np.asarray(X, np.float32))
    normalized = is_normalized(adata)
    totals = np.asarray(X.sum(0)).ravel()
    # pre-normalised input (read with normalized=True) is tested as given
    gene_ok = totals > 0 if normalized else totals >= min_gene_counts
    ad = AnnData(X=X[:, gene_ok])
    ad.var_names = np.asarray(adata.var_names)[gene_ok]
    ad.obs_names = np.asarray(adata.obs_names)[keep_spots]
    ad.obs["group"] = pd.Categorical(groups[keep_spots].astype(str))
    with warnings.catch_warnings(), keep_torch_threads():  # numba's first call resets torch's threads
        warnings.simplefilter("ignore")
        if not normalized:
            sc.pp.normalize_total(ad)
            sc.pp.log1p(ad)
        sc.tl.rank_genes_groups(ad, "group", method="wilcoxon", n_genes=min(n_genes, ad.n_vars), pts=False)
        df = sc.get.rank_genes_groups_df(ad, group=None)
    df = df.rename(columns={"group": "cluster", "names": "gene", "scores": "score", "logfoldchanges": "logfoldchange", "pvals": "pval", "pvals_adj": "pval_adj"})
    if "cluster" not in df:
        df.insert(0, "cluster", str(ad.obs["group"].cat.categories[0]))
    df["cluster"] = df["cluster"].astype(str)
    df["rank"] = df.groupby("cluster").cumcount() + 1
    order = {c: i for i, c in enumerate(groups.cat.categories.astype(str))}
    df = df.sort_values(["cluster", "rank"], key=lambda s: s.map(order) if s.name == "cluster" else s)
    return df[MARKER_COLUMNS].reset_index(drop=True)
