"""The 10x HDF5 feature-barcode matrix (Cell Ranger / Space Ranger), read with :mod:`h5py`.

Both the Cell Ranger >= 3 ``matrix/`` layout and the older per-genome layout
are read directly, because scanpy's reader insists on fields that trimmed or
re-written files (such as the shared DLPFC section) do not carry.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError

__all__ = ["read_10x_h5", "decode"]


def decode(a: np.ndarray) -> list[str]:
    """Strings of an HDF5 string / bytes dataset (invalid UTF-8 replaced)."""
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in a.tolist()]


def read_10x_h5(
    path: str | PathLike, notes: list[str] | None = None
) -> tuple[sp.csr_matrix, list[str], pd.DataFrame, dict[str, Any]]:
    """Read a 10x HDF5 feature-barcode matrix.

    Parameters
    ----------
    path
        ``filtered_feature_bc_matrix.h5`` (Cell Ranger / Space Ranger >= 3
        ``matrix/`` layout, or the older ``<genome>/`` layout).
    notes
        A list that receives a one-line note when features other than
        ``Gene Expression`` (e.g. ``Antibody Capture``) were dropped.

    Returns
    -------
    X, barcodes, features, attrs
        Barcodes x features counts (CSR), barcodes, a features table with
        columns ``gene_ids``, ``name``, ``feature_types`` (gene-expression
        features only: the others are dropped), and the file's root attributes.

    Raises
    ------
    DataError
        When the file is not readable HDF5, lacks a required dataset, or has
        no ``Gene Expression`` feature (e.g. only ``Antibody Capture``).
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise DataError(p, "count matrix file not found")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DataError(p, f"not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
    with f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        data, indices, indptr, shape, barcodes, features = _h5_matrix(f, p)
    _check_matrix(p, data, indices, indptr, shape, barcodes, features)
    X = sp.csc_matrix((data, indices, indptr), shape=shape).T.tocsr()
    X, features = _gene_expression_only(X, features, p, notes)
    return X, barcodes, features, attrs


def _h5_matrix(f: Any, p: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...], list[str], pd.DataFrame]:
    """The CSC arrays, shape, barcodes and features table of an open 10x HDF5 file (either layout)."""
    import h5py

    if "matrix" in f:  # Cell Ranger / Space Ranger >= 3
        g = f["matrix"]
        need = ["data", "indices", "indptr", "shape", "barcodes", "features/name"]
        feats_ids, feats_types, feats_names = "features/id", "features/feature_type", "features/name"
    else:  # older: one group per genome
        groups = [k for k in f if isinstance(f[k], h5py.Group)]
        if not groups:
            raise DataError(p, "no 'matrix' group: not a 10x feature-barcode HDF5 file")
        g = f[groups[0]]
        need = ["data", "indices", "indptr", "shape", "barcodes", "gene_names"]
        feats_ids, feats_types, feats_names = "genes", "", "gene_names"
    absent = [k for k in need if k not in g]
    if absent:
        raise DataError(p, f"missing dataset {g.name.strip('/')}/{absent[0]} (not a 10x feature-barcode matrix)")
    try:
        data = np.asarray(g["data"][()])
        indices = np.asarray(g["indices"][()], dtype=np.int64)
        indptr = np.asarray(g["indptr"][()], dtype=np.int64)
        shape = tuple(int(v) for v in g["shape"][()])
        barcodes = decode(np.asarray(g["barcodes"][()]))
        names = decode(np.asarray(g[feats_names][()]))
        ids = decode(np.asarray(g[feats_ids][()])) if feats_ids in g else list(names)
        has_types = feats_types and feats_types in g
        types = decode(np.asarray(g[feats_types][()])) if has_types else ["Gene Expression"] * len(names)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise DataError(p, f"cannot read the count matrix ({exc})") from None
    if not len(ids) == len(types) == len(names):
        raise DataError(p, f"inconsistent matrix: {len(names)} feature names, {len(ids)} ids, {len(types)} types")
    features = pd.DataFrame({"gene_ids": ids, "name": names, "feature_types": types})
    return data, indices, indptr, shape, barcodes, features


def _check_matrix(
    p: Path, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, ...],
    barcodes: list[str], features: pd.DataFrame,
) -> None:  # fmt: skip
    """Raise a DataError when the CSC arrays do not make the ``features x barcodes`` matrix they claim."""
    n_feat, n_bc = shape if len(shape) == 2 else (-1, -1)
    if (
        n_feat != len(features)
        or n_bc != len(barcodes)
        or len(indptr) != n_bc + 1
        or len(data) != len(indices)
        or (len(indptr) and int(indptr[-1]) != len(data))
    ):
        raise DataError(
            p,
            f"inconsistent matrix: shape {shape}, {len(features)} features, {len(barcodes)} barcodes, "
            f"{len(indptr)} indptr entries, {len(data)} values",
        )
    if len(indices) and (indices.min() < 0 or indices.max() >= max(n_feat, 1)):
        raise DataError(p, "inconsistent matrix: feature indices out of range")
    if not np.issubdtype(data.dtype, np.number):
        raise DataError(p, "counts are not numeric")


def _gene_expression_only(
    X: sp.csr_matrix, features: pd.DataFrame, p: Path, notes: list[str] | None
) -> tuple[sp.csr_matrix, pd.DataFrame]:
    """Keep the ``Gene Expression`` features (a note names what was dropped); none at all is a DataError."""
    gex = features["feature_types"].str.lower().str.contains("gene expression").to_numpy()
    if gex.all():
        return X, features
    other = features["feature_types"][~gex].value_counts()
    kinds = ", ".join(f"{int(n)} {t!r}" for t, n in other.items())
    if not gex.any():
        raise DataError(p, f"no 'Gene Expression' features (found {kinds}): napari-senca needs gene-expression counts")
    if notes is not None:
        notes.append(f"{p}: kept the {int(gex.sum())} 'Gene Expression' features, dropped {kinds}")
    return X[:, np.where(gex)[0]], features[gex].reset_index(drop=True)
