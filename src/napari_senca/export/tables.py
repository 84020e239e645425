"""CSV tables: the spot/cluster table and the marker-gene table (written atomically)."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from ..section import CLUSTER_KEY, LABEL_KEY, has_labels
from .atomic import atomic_write
from .clusters import _cluster_series

__all__ = ["clusters_table", "write_clusters_csv", "write_markers_csv"]


def _integral(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if np.isfinite(a).all() and np.all(a == np.round(a)):
        return a.astype(np.int64)
    return a


def clusters_table(adata: AnnData, key: str = CLUSTER_KEY) -> pd.DataFrame:
    """One row per spot: ``spot_id, x, y, pixel_x, pixel_y, cluster`` (and ``label`` if any).

    ``x``/``y`` are the grid coordinates (``array_col``/``array_row``),
    ``pixel_x``/``pixel_y`` the full-resolution pixel centres (``obsm["spatial"]``).

    Raises
    ------
    ConfigError
        When ``obs[key]`` is missing.
    """
    clusters = _cluster_series(adata, key)
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    df = pd.DataFrame(
        {
            "spot_id": np.asarray(adata.obs_names, dtype=object),
            "x": _integral(adata.obs["array_col"].to_numpy()) if "array_col" in adata.obs else np.nan,
            "y": _integral(adata.obs["array_row"].to_numpy()) if "array_row" in adata.obs else np.nan,
            "pixel_x": xy[:, 0],
            "pixel_y": xy[:, 1],
            "cluster": clusters.to_numpy(),
        }
    )
    if has_labels(adata):
        df["label"] = adata.obs[LABEL_KEY].to_numpy()
    return df


def write_clusters_csv(
    adata: AnnData,
    path: str | PathLike,
    key: str = CLUSTER_KEY,
    *,
    names: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`clusters_table` as CSV (atomic). Returns the path.

    With ``names`` (cluster -> display name) a ``cluster_name`` column follows ``cluster``.
    """
    df = clusters_table(adata, key)
    if names:
        df.insert(df.columns.get_loc("cluster") + 1, "cluster_name", df["cluster"].astype(str).map(names))
    with atomic_write(path, overwrite=overwrite) as fh:
        df.to_csv(fh, index=False)
    return Path(path)


def write_markers_csv(df: pd.DataFrame, path: str | PathLike, *, overwrite: bool = False) -> Path:
    """Write a marker-gene table (e.g. from :func:`napari_senca.markers.rank_markers`) as CSV."""
    with atomic_write(path, overwrite=overwrite) as fh:
        df.to_csv(fh, index=False)
    return Path(path)
