"""The clusters of a section: categories, display names, colours, agreement with the labels.

Display names come from ``names=`` when given, else from
``adata.uns["senca"]["cluster_names"]`` (a dict cluster -> name, or a list in
category order), else ``"Region <cluster>"``. Colours come from
``adata.uns["<key>_colors"]`` (scanpy's convention, hex strings in category
order) when it matches the categories, else from :data:`PALETTE`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import ConfigError
from ..review.colours import PALETTE as _REVIEW_PALETTE
from ..section import CLUSTER_KEY, LABEL_KEY, UNS_KEY

__all__ = ["PALETTE", "cluster_categories", "cluster_names", "cluster_colors", "adjusted_rand"]

#: Region colours when none are stored: the review's palette, chosen to stay visible on H&E
#: (one palette for the viewer, overview.png, GeoJSON and the cohort figure).
PALETTE: tuple[str, ...] = tuple(_REVIEW_PALETTE)


def _cluster_series(adata: AnnData, key: str) -> pd.Series:
    if key not in adata.obs:
        raise ConfigError(f"no clustering {key!r} on this section: run the model first")
    s = adata.obs[key]
    if not isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(str).where(s.notna()).astype("category")
    return s


def cluster_categories(adata: AnnData, key: str = CLUSTER_KEY) -> list[str]:
    """The clusters of ``obs[key]`` as strings, in category order."""
    return [str(c) for c in _cluster_series(adata, key).cat.categories]


def cluster_names(
    adata: AnnData, key: str = CLUSTER_KEY, names: Mapping[Any, str] | Sequence[str] | None = None
) -> dict[str, str]:
    """Display name of every cluster (see the module notes for the sources)."""
    cats = cluster_categories(adata, key)
    src: Any = names
    if src is None:
        uns = adata.uns.get(UNS_KEY)
        src = uns.get("cluster_names") if isinstance(uns, Mapping) else None
    out = {c: f"Region {c}" for c in cats}
    if isinstance(src, Mapping):
        for k, v in src.items():
            if str(k) in out and v is not None and str(v).strip():
                out[str(k)] = str(v)
    elif src is not None and not isinstance(src, str):
        vals = list(np.asarray(src, dtype=object).ravel())
        if len(vals) == len(cats):
            for c, v in zip(cats, vals, strict=True):
                if v is not None and str(v).strip():
                    out[c] = str(v)
    return out


def _hex_to_rgb(h: str) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(h)
    return round(r * 255), round(g * 255), round(b * 255)


def cluster_colors(adata: AnnData, key: str = CLUSTER_KEY) -> dict[str, tuple[int, int, int]]:
    """RGB (0-255) of every cluster: ``uns[key + "_colors"]`` if it fits, else :data:`PALETTE`."""
    cats = cluster_categories(adata, key)
    stored = adata.uns.get(f"{key}_colors")
    colours: list[str] = list(PALETTE)
    if stored is not None and len(stored) == len(cats):
        try:
            return {c: _hex_to_rgb(str(h)) for c, h in zip(cats, stored, strict=True)}
        except ValueError:
            pass
    return {c: _hex_to_rgb(colours[i % len(colours)]) for i, c in enumerate(cats)}


def adjusted_rand(adata: AnnData, key: str = CLUSTER_KEY, label_key: str = LABEL_KEY) -> float | None:
    """Adjusted Rand index of ``obs[key]`` against the labels, on labelled spots only.

    Returns None when the section has no labels.
    """
    if label_key not in adata.obs or not adata.obs[label_key].notna().any():
        return None
    from sklearn.metrics import adjusted_rand_score

    clusters = _cluster_series(adata, key)
    labels = adata.obs[label_key]
    ok = (labels.notna() & clusters.notna()).to_numpy()
    if not ok.any():
        return None
    return float(adjusted_rand_score(labels[ok].astype(str), clusters[ok].astype(str)))
