"""Expression preprocessing (paper section 3.1).

Genes with a total count below ``min_gene_counts`` are dropped, every spot is
normalised to the same library size and log1p-transformed, and the top
``n_top_genes`` genes by normalised dispersion (Seurat flavour, as in ConGcR)
are kept as the node features, optionally scaled per gene (z-score, clipped at
10) as in scanpy's standard workflow.

Pre-normalised input (read with ``normalized=True``, CLI ``--normalized``;
``uns["senca_input"]["normalized"]`` is then True) is used as given: no
library-size normalisation and no log1p, and the gene filter keeps every gene
that is non-zero somewhere (``min_gene_counts`` applies to counts only).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from .config import SencaConfig
from .errors import DataError
from .section import is_normalized, source_path
from .threads import keep_torch_threads

__all__ = ["Expression", "preprocess_expression"]


@dataclass
class Expression:
    """Preprocessed expression of one section.

    Attributes
    ----------
    X
        ``(n_spots, n_hvg)`` float32 log-normalised expression of the HVGs.
    genes
        Names of the HVG columns.
    n_genes_kept
        Genes left after the count filter (before HVG selection).
    library_size
        ``(n_spots,)`` total counts of the kept genes per spot (before
        normalisation); for pre-normalised input the row sums of
        ``layers["counts"]`` when present, else None.
    """

    X: np.ndarray
    genes: list[str]
    n_genes_kept: int
    library_size: np.ndarray | None = None


def preprocess_expression(adata: AnnData, config: SencaConfig | None = None) -> Expression:
    """Filter, normalise, log1p and select HVGs without modifying ``adata``.

    Parameters
    ----------
    adata
        A section with raw counts in ``X``, or with normalised, log-transformed
        values when ``uns["senca_input"]["normalized"]`` is True (then they are
        not normalised again).
    config
        Uses ``min_gene_counts``, ``target_sum`` and ``n_top_genes``.

    Raises
    ------
    DataError
        When no gene passes the count filter or a spot has no counts at all.
    """
    import scanpy as sc

    cfg = config or SencaConfig()
    src, normalized = source_path(adata), is_normalized(adata)
    X = adata.X
    X = sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X) else sp.csr_matrix(np.asarray(X, np.float32))
    if X.nnz and not np.isfinite(X.data).all():
        raise DataError(src, "counts contain NaN or infinite values")
    gene_totals = np.asarray(X.sum(0)).ravel()
    keep = gene_totals > 0 if normalized else gene_totals >= cfg.min_gene_counts
    if keep.sum() < 2:
        what = "are non-zero" if normalized else f"have a total count >= {cfg.min_gene_counts} (min_gene_counts)"
        raise DataError(src, f"fewer than 2 genes {what}")
    ad = AnnData(X=X[:, keep].copy())
    ad.var_names = np.asarray(adata.var_names)[keep]
    lib = np.asarray(ad.X.sum(1)).ravel()
    if (lib <= 0).any():
        bad = adata.obs_names[int(np.where(lib <= 0)[0][0])]
        raise DataError(src, f"spot {bad!r} has no counts in the kept genes; remove empty spots first")
    with warnings.catch_warnings(), keep_torch_threads():  # numba's first call resets torch's threads
        warnings.simplefilter("ignore")
        if not normalized:
            sc.pp.normalize_total(ad, target_sum=cfg.target_sum)
            sc.pp.log1p(ad)
        n_top = min(cfg.n_top_genes, ad.n_vars)
        if n_top < ad.n_vars:
            sc.pp.highly_variable_genes(ad, flavor="seurat", n_top_genes=n_top, subset=True)
    dense = ad.X.toarray() if sp.issparse(ad.X) else np.asarray(ad.X)
    dense = np.asarray(dense, dtype=np.float64)
    if cfg.scale:
        sd = dense.std(0)
        dense = (dense - dense.mean(0)) / np.where(sd > 0, sd, 1.0)
        dense = np.clip(dense, -10.0, 10.0)
    return Expression(
        X=np.ascontiguousarray(dense, dtype=np.float32),
        genes=[str(g) for g in ad.var_names],
        n_genes_kept=int(keep.sum()),
        library_size=_given_library_size(adata) if normalized else lib.astype(np.float64),
    )


def _given_library_size(adata: AnnData) -> np.ndarray | None:
    """Row sums of ``layers["counts"]`` (scanpy's habit of keeping the raw counts) for pre-normalised
    input when usable (finite, >= 0), else None; ``obs["total_counts"]`` is not trusted, since it may
    have been computed from the normalised values."""
    if "counts" not in adata.layers:
        return None
    total = np.asarray(adata.layers["counts"].sum(1), dtype=np.float64).ravel()
    return total if np.isfinite(total).all() and (total >= 0).all() else None
