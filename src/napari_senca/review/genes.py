"""Genes of a section: search, exact names and per-spot values for colouring."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ..errors import ConfigError

__all__ = ["gene_names", "search_genes", "resolve_gene", "library_sizes", "gene_values", "robust_limits"]


def gene_names(adata: AnnData) -> list[str]:
    """All gene names of the section, sorted case-insensitively."""
    return sorted(map(str, adata.var_names), key=str.lower)


def search_genes(adata: AnnData, text: str, limit: int = 50) -> list[str]:
    """Genes containing ``text`` (case-insensitive), prefix matches first."""
    t = str(text).strip().lower()
    names = gene_names(adata)
    if not t:
        return names[:limit]
    pre = [g for g in names if g.lower().startswith(t)]
    rest = [g for g in names if t in g.lower() and not g.lower().startswith(t)]
    return (pre + rest)[:limit]


def resolve_gene(adata: AnnData, gene: str) -> str:
    """The exact gene name (case-insensitive match).

    Raises
    ------
    ConfigError
        When the section has no such gene.
    """
    g = str(gene).strip()
    names = adata.var_names
    if g in names:
        return g
    low = {str(n).lower(): str(n) for n in names}
    if g.lower() in low:
        return low[g.lower()]
    close = search_genes(adata, g, limit=5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"the section has no gene {gene!r}{hint}")


def library_sizes(adata: AnnData) -> np.ndarray:
    """Total counts per spot."""
    return np.asarray(adata.X.sum(1), dtype=np.float64).ravel()


def gene_values(adata: AnnData, gene: str, libsize: np.ndarray | None = None) -> np.ndarray:
    """log1p of library-size-normalised expression of one gene (per spot)."""
    g = resolve_gene(adata, gene)
    j = int(adata.var_names.get_loc(g))
    col = adata.X[:, j]
    col = np.asarray(col.toarray() if sp.issparse(col) else col, dtype=np.float64).ravel()
    tot = library_sizes(adata) if libsize is None else libsize
    target = float(np.median(tot[tot > 0])) if (tot > 0).any() else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(tot > 0, col / tot * target, 0.0)
    return np.log1p(norm)


def robust_limits(values: np.ndarray) -> tuple[float, float]:
    """Colour limits: the 2nd and 98th percentiles of the finite values (robust to outliers)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, [2, 98]))
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def is_numeric(column: object) -> bool:
    """True for a numeric, non-boolean ``obs`` column (pandas Series)."""
    import pandas as pd

    s = column if isinstance(column, pd.Series) else pd.Series(column)
    return bool(pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype))
