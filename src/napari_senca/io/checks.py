"""Is ``X`` raw counts? A cheap check on a sample of the values.

SENCA-st normalises and log-transforms the counts itself, so log-normalised
values read as counts would be transformed twice, silently. The check looks
at up to :data:`SAMPLE` non-zero values (for sparse ``X`` its stored values,
for dense ``X`` a random set of rows): counts are whole numbers.
"""

from __future__ import annotations

from os import PathLike
from typing import Any

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

from ..errors import DataError
from ..notes import add_warning, input_info

__all__ = ["SAMPLE", "count_problem", "check_counts", "NORMALIZED_HINT"]

SAMPLE = 20_000
NORMALIZED_HINT = "for pre-normalised (log1p) data use normalized=True (CLI: --normalized)"


def _sample_values(X: Any, n: int = SAMPLE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if sp.issparse(X):
        data = np.asarray(X.data if X.format in ("csr", "csc", "coo") else X.tocsr().data)
        if data.size > n:
            data = data[rng.choice(data.size, n, replace=False)]
        return data.astype(np.float64, copy=False)
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.size == 0:
        return np.zeros(0)
    rows = max(1, min(arr.shape[0], n // max(arr.shape[1], 1) + 1))
    pick = np.sort(rng.choice(arr.shape[0], rows, replace=False))
    vals = np.asarray(arr[pick], dtype=np.float64).ravel()
    return vals[vals != 0]


def count_problem(X: Any) -> str | None:
    """Why ``X`` does not look like raw counts, or None when it does.

    Non-integer values are not counts; when they are also small (at most 30)
    they look log-transformed.
    """
    v = _sample_values(X)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    frac = np.abs(v - np.rint(v)) > 1e-3 + 1e-6 * np.abs(v)
    if not frac.any():
        return None
    ex = float(v[frac][0])
    share = float(frac.mean())
    mx = float(v.max())
    text = f"the values are not integer counts (e.g. {ex:.4g}; {share:.0%} of sampled values are fractional"
    text += f", max {mx:.3g})"
    if mx <= 30:
        text += "; they look log-normalised"
    return text


def check_counts(adata: AnnData, path: str | PathLike | None, normalized: bool = False) -> AnnData:
    """Make sure ``X`` holds raw counts, or accept pre-normalised data when asked.

    When ``X`` is not counts and ``normalized`` is False, an ``.h5ad``'s
    ``layers["counts"]`` or ``.raw`` is used instead when it holds counts (a
    warning says so; the original ``X`` is kept in ``layers["input_X"]``).
    With ``normalized=True`` the values are used as given:
    ``uns["senca_input"]["normalized"]`` is set and preprocessing skips
    normalisation and log1p.

    Returns
    -------
    AnnData
        ``adata`` (possibly rebuilt from ``.raw``).

    Raises
    ------
    DataError
        When ``X`` is not counts, no counts are found, and ``normalized`` is False.
    """
    problem = count_problem(adata.X)
    if normalized:
        input_info(adata)["normalized"] = True
        if problem is None:
            add_warning(
                adata,
                f"{path}: normalized=True but the values are whole numbers (raw counts?); "
                "they are used without normalisation or log1p",
            )
        return adata
    if problem is None:
        return adata
    layer = adata.layers.get("counts") if "counts" in adata.layers else None
    if layer is not None and count_problem(layer) is None:
        adata.layers["input_X"] = adata.X
        adata.X = layer
        add_warning(adata, f"{path}: X is not raw counts; using layers['counts'] instead")
        return adata
    raw = adata.raw
    if raw is not None and count_problem(raw.X) is None:
        info = dict(input_info(adata))
        out = raw.to_adata()
        if out.var_names.equals(adata.var_names):
            out.layers["input_X"] = adata.X
        out.uns = dict(adata.uns)
        out.uns["senca_input"] = info
        add_warning(out, f"{path}: X is not raw counts; using .raw ({out.n_vars} genes) instead")
        return out
    raise DataError(path, f"{problem}; napari-senca expects raw counts ({NORMALIZED_HINT})")
