"""Per-spot confidence of the region calls.

The confidence of a spot is the *simplified silhouette* of its region in the
clustered space (``obsm["X_senca"]``, the space that
:mod:`napari_senca.cluster` cuts or runs k-means on)::

    a = distance to the centre of the spot's own region
    b = distance to the nearest centre of any other region
    confidence = (b - a) / max(a, b), clipped to [0, 1]

Why this measure
----------------
* It is computed for the clustering actually shown: the centres are the means
  of ``X_senca`` over the current regions (for k-means they are the k-means
  centres; for Ward they are the centroids Ward's variance criterion is built
  on), so it follows re-clustering and merges.
* It has no parameter: no temperature or variance to estimate, and it does not
  depend on the scale of the embedding (which mixes unit-scaled blocks).
* It reads simply: 1 at the centre of the region, 0 on the boundary half-way
  between two centres (the k-means decision boundary), and 0 for a spot that
  lies closer to another region's centre than to its own (Ward can do that).
  ``1 - confidence`` is the ratio of the two distances, ``a / b``.
* A soft assignment (softmax of negative squared distances) ranks the spots of
  two regions the same way near their boundary but saturates at 1 for most
  spots in a space of 20-40 dimensions, which makes a poor colour scale.

Spots assigned by hand
----------------------
A spot moved to another region by hand has no model confidence: its value is
NaN (it is shown in grey and never counted as *uncertain*, so a reviewed spot
does not come back for review). A spot counts as moved by hand when it no
longer lies in the region that holds most of the spots of its model region
(the cut or k-means call for the current region count, recorded in
``uns["senca"]["model_labels"]``), so merging two regions keeps the
confidence of their spots while assigning a few spots sets theirs to NaN.

The values are stored in ``obs["senca_confidence"]`` (float).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from .errors import ConfigError
from .section import CLUSTER_KEY, EMBED_KEY, UNS_KEY

__all__ = [
    "CONFIDENCE_KEY",
    "silhouette_confidence",
    "region_centres",
    "hand_assigned",
    "record_model_call",
    "update_confidence",
    "uncertain_spots",
]

CONFIDENCE_KEY = "senca_confidence"
MODEL_LABELS_KEY = "model_labels"


def _factorize(labels: np.ndarray, as_str: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels and the code of every label (as ``np.unique(..., return_inverse=True)``,
    but hashing instead of sorting all the labels: 500,000 strings in milliseconds).

    With ``as_str`` the labels are compared as strings (only the distinct values are converted).
    """
    series = pd.Series(np.asarray(labels).ravel(), dtype=object)
    codes, uniques = pd.factorize(series, sort=not as_str, use_na_sentinel=False)  # NaN is a label too
    if as_str:
        ucodes, uniques = pd.factorize(pd.Series(np.asarray(uniques, dtype=object)).astype(str), sort=True)
        codes = ucodes[codes]
    return np.asarray(uniques, dtype=object), np.asarray(codes, dtype=np.int64)


def region_centres(embedding: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``embedding`` over each region.

    Returns
    -------
    regions, centres
        The distinct labels (sorted) and their ``(n_regions, dim)`` centres.
    """
    z = np.asarray(embedding, dtype=np.float64)
    regions, codes = _factorize(labels)
    return regions, _centres(z, codes, len(regions))


def _centres(z: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """``(k, dim)`` mean of the rows of ``z`` per code (one ``np.bincount`` per dimension)."""
    counts = np.bincount(codes, minlength=k)[:, None]
    sums = np.stack([np.bincount(codes, z[:, j], minlength=k) for j in range(z.shape[1])], 1).reshape(k, -1)
    return sums / np.maximum(counts, 1)


def silhouette_confidence(embedding: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Simplified silhouette ``(b - a) / max(a, b)`` of every spot, clipped to ``[0, 1]``.

    Parameters
    ----------
    embedding
        ``(n_spots, dim)`` the clustered embedding.
    labels
        ``(n_spots,)`` region of every spot (any hashable values).

    Returns
    -------
    numpy.ndarray
        ``(n_spots,)`` float64; 1 everywhere when there is a single region.
    """
    z = np.asarray(embedding, dtype=np.float64)
    lab = np.asarray(labels)
    if z.ndim != 2 or len(z) != len(lab):
        raise ConfigError(f"embedding {z.shape} and labels ({len(lab)}) do not match")
    regions, own = _factorize(lab)
    if len(regions) < 2:
        return np.ones(len(z))
    centres = _centres(z, own, len(regions))
    d2 = (z**2).sum(1)[:, None] - 2.0 * z @ centres.T + (centres**2).sum(1)[None, :]
    d = np.sqrt(np.maximum(d2, 0.0))  # (n, k) distances to every centre
    a = d[np.arange(len(z)), own]
    d[np.arange(len(z)), own] = np.inf
    b = d.min(1)
    top = np.maximum(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(top > 0, (b - a) / top, 0.0)
    return np.clip(s, 0.0, 1.0)


def hand_assigned(current: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Mask of the spots that left the region holding most of their model region.

    Each model region is matched to the current region that holds most of its
    spots; a spot elsewhere was moved by hand. Merges and renames move whole
    model regions and so flag nothing.
    """
    if len(current) != len(model):
        return np.zeros(len(current), dtype=bool)
    cur_names, cc = _factorize(current, as_str=True)
    mod_names, mc = _factorize(model, as_str=True)
    table = np.bincount(mc * len(cur_names) + cc, minlength=len(mod_names) * len(cur_names))
    home = table.reshape(len(mod_names), len(cur_names)).argmax(1)  # ties: the first in sorted order
    return (cc != home[mc]).astype(bool)


def _n_clusters(adata: AnnData, key: str) -> str:
    info = adata.uns.get(UNS_KEY)
    k = info.get("n_clusters") if isinstance(info, dict) else None
    return str(int(k)) if k is not None else str(adata.obs[key].nunique())


def record_model_call(adata: AnnData, key: str = CLUSTER_KEY) -> np.ndarray:
    """Remember the model's regions for the current count and store the confidence.

    Called where the model assigns regions: :func:`napari_senca.pipeline.annotate`
    and :func:`napari_senca.cluster.recluster`. The call is kept per region count
    in ``uns["senca"]["model_labels"]`` so that undoing a re-clustering still
    finds the matching call. Returns :func:`update_confidence`'s values.
    """
    info = adata.uns.get(UNS_KEY)
    if isinstance(info, dict) and key in adata.obs:
        calls = info.get(MODEL_LABELS_KEY)
        calls = dict(calls) if isinstance(calls, dict) else {}
        calls[_n_clusters(adata, key)] = np.asarray(adata.obs[key].astype(str), dtype=object)
        info[MODEL_LABELS_KEY] = calls
    return update_confidence(adata, key)


def update_confidence(adata: AnnData, key: str = CLUSTER_KEY) -> np.ndarray:
    """Recompute ``obs["senca_confidence"]`` for the current regions and return it.

    Spots moved by hand (see :func:`hand_assigned`) get NaN.

    Raises
    ------
    ConfigError
        When the section has no clustered SENCA embedding.
    """
    if EMBED_KEY not in adata.obsm or key not in adata.obs:
        raise ConfigError("no SENCA result on this section yet: run the model first")
    labels = np.asarray(adata.obs[key].astype(str), dtype=object)
    conf = silhouette_confidence(np.asarray(adata.obsm[EMBED_KEY]), labels)
    info = adata.uns.get(UNS_KEY)
    calls = info.get(MODEL_LABELS_KEY) if isinstance(info, dict) else None
    model = calls.get(_n_clusters(adata, key)) if isinstance(calls, dict) else None
    if model is not None and len(model) == len(labels):
        conf[hand_assigned(labels, np.asarray(model))] = np.nan
    adata.obs[CONFIDENCE_KEY] = conf
    return conf


def uncertain_spots(confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the spots whose confidence is below ``threshold`` (NaN never is)."""
    c = np.asarray(confidence, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(c < float(threshold))
