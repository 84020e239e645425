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
import scipy.sparse as sp
from anndata import AnnData

from .errors import ConfigError
from .section import CLUSTER_KEY, EMBED_KEY, UNS_KEY

__all__ = [
    "CONFIDENCE_KEY",
    "silhouette_confidence",
    "silhouette_from_codes",
    "region_means",
    "label_codes",
    "region_centres",
    "hand_assigned",
    "record_model_call",
    "update_confidence",
    "uncertain_spots",
    "factorize_labels",
    "contingency",
    "check_confidence",
]

CONFIDENCE_KEY = "senca_confidence"
MODEL_LABELS_KEY = "model_labels"


def factorize_labels(labels: np.ndarray, as_str: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels and the code of every label (as ``np.unique(..., return_inverse=True)``,
    but hashing instead of sorting all the labels: 500,000 strings in milliseconds).

    With ``as_str`` the labels are compared as strings (only the distinct values are converted).
    """
    series = pd.Series(np.asarray(labels).ravel(), dtype=object)
    codes, uniques = pd.factorize(series, sort=not as_str, use_na_sentinel=False)  # NaN is a label too
    if as_str:
        # str() of each distinct value, as astype(str) of the labels did (also NaN -> "nan" under pandas 3)
        ucodes, uniques = pd.factorize(pd.Series([str(u) for u in uniques], dtype=object), sort=True)
        codes = ucodes[codes]
    return np.asarray(uniques, dtype=object), np.asarray(codes, dtype=np.int64)


def contingency(a: np.ndarray, b: np.ndarray, na: int, nb: int) -> np.ndarray:
    """``(na, nb)`` counts of the code pairs ``(a[i], b[i])`` (one bincount; 500,000 spots in milliseconds)."""
    return np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb)


def check_confidence(confidence: np.ndarray | None, n_spots: int) -> None:
    """Raise ``ConfigError`` unless ``confidence`` is None or one value per spot."""
    if confidence is not None and np.shape(confidence) != (n_spots,):
        raise ConfigError(f"{np.size(confidence)} confidence values for a section of {n_spots} spots")


def region_centres(embedding: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``embedding`` over each region.

    Returns
    -------
    regions, centres
        The distinct labels (sorted) and their ``(n_regions, dim)`` centres.
    """
    regions, codes = factorize_labels(labels)
    return regions, region_means(np.asarray(embedding), codes, len(regions))


#: rows per block of :func:`region_means`: a (block, dim) float64 copy at a time, never the whole embedding
_MEANS_BLOCK = 65_536


def region_means(z: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """``(k, dim)`` float64 mean of the rows of ``z`` per code in ``0..k-1`` (rows with code < 0 left out).

    One sparse product per block of :data:`_MEANS_BLOCK` rows, so a large section's embedding is never copied
    whole (the Review's classification keeps nearly every spot a member).
    """
    codes = np.asarray(codes)
    sums = np.zeros((k, z.shape[1]))
    for start in range(0, len(codes), _MEANS_BLOCK):
        idx = np.flatnonzero(codes[start : start + _MEANS_BLOCK] >= 0) + start
        if idx.size:
            onehot = sp.csr_matrix((np.ones(idx.size), (codes[idx], np.arange(idx.size))), shape=(k, idx.size))
            sums += onehot @ np.asarray(z[idx], dtype=np.float64)
    return sums / np.maximum(np.bincount(codes[codes >= 0], minlength=k), 1)[:, None]


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
    z = np.asarray(embedding)
    lab = np.asarray(labels)
    if z.ndim != 2 or len(z) != len(lab):
        raise ConfigError(f"embedding {z.shape} and labels ({len(lab)}) do not match")
    regions, own = factorize_labels(lab)
    return silhouette_from_codes(z, own, len(regions))


def silhouette_from_codes(embedding: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """:func:`silhouette_confidence` for regions given as codes ``0..k-1`` (500,000 spots: about 0.1 s)."""
    z = np.asarray(embedding, dtype=np.float64)
    if k < 2:
        return np.ones(len(z))
    centres = region_means(z, codes, k)
    d2 = np.einsum("nd,nd->n", z, z)[:, None] - 2.0 * (z @ centres.T) + (centres**2).sum(1)[None, :]
    np.maximum(d2, 0.0, out=d2)  # (n, k) squared distances to every centre
    rows = np.arange(len(z))
    a2 = d2[rows, codes].copy()
    d2[rows, codes] = np.inf
    a, b = np.sqrt(a2), np.sqrt(d2.min(1))
    top = np.maximum(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(top > 0, (b - a) / top, 0.0)
    return np.clip(s, 0.0, 1.0)


def label_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_factorize` of ``column.astype(str)``, from a categorical's codes when it is one (no string per spot)."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return factorize_labels(np.asarray(column), as_str=True)
    cat = column.array
    names = [str(c) for c in cat.categories] + ["nan"]  # code -1 (missing) reads "nan", as astype(str) says
    uniq, remap = factorize_labels(np.asarray(names, dtype=object))
    codes = np.where(cat.codes < 0, len(names) - 1, cat.codes)
    return uniq, remap[codes]


def hand_assigned(current: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Mask of the spots that left the region holding most of their model region.

    Each model region is matched to the current region that holds most of its
    spots; a spot elsewhere was moved by hand. Merges and renames move whole
    model regions and so flag nothing.
    """
    if len(current) != len(model):
        return np.zeros(len(current), dtype=bool)
    cur_names, cc = factorize_labels(current, as_str=True)
    return _moved(cur_names, cc, model)


def _moved(cur_names: np.ndarray, cc: np.ndarray, model: np.ndarray) -> np.ndarray:
    """:func:`hand_assigned` with the current regions already factorised (names sorted as strings, codes)."""
    mod_names, mc = factorize_labels(model, as_str=True)
    home = contingency(mc, cc, len(mod_names), len(cur_names)).argmax(1)  # ties: the first in sorted order
    return (cc != home[mc]).astype(bool)


def _n_clusters(adata: AnnData, key: str) -> str:
    info = adata.uns.get(UNS_KEY)
    k = info.get("n_clusters") if isinstance(info, dict) else None
    return str(int(k)) if k is not None else str(adata.obs[key].nunique())


def record_model_call(adata: AnnData, key: str = CLUSTER_KEY, confidence: np.ndarray | None = None) -> np.ndarray:
    """Remember the model's regions for the current count and store the confidence.

    Called where the model assigns regions: :func:`napari_senca.pipeline.annotate`
    and :func:`napari_senca.cluster.recluster`. The call is kept per region count
    in ``uns["senca"]["model_labels"]`` so that undoing a re-clustering still
    finds the matching call. Returns :func:`update_confidence`'s values;
    ``confidence`` is stored instead when given (the
    :func:`silhouette_confidence` of these regions, computed in a worker: no
    spot is moved by hand in a fresh model call, so it is the same values).
    """
    check_confidence(confidence, adata.n_obs)
    info = adata.uns.get(UNS_KEY)
    if isinstance(info, dict) and key in adata.obs:
        calls = info.get(MODEL_LABELS_KEY)
        calls = dict(calls) if isinstance(calls, dict) else {}
        calls[_n_clusters(adata, key)] = np.asarray(adata.obs[key].astype(str), dtype=object)
        info[MODEL_LABELS_KEY] = calls
    if confidence is None:
        return update_confidence(adata, key)
    conf = np.asarray(confidence, dtype=np.float64)
    adata.obs[CONFIDENCE_KEY] = conf
    return conf


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
    names, codes = label_codes(adata.obs[key])
    used = np.bincount(codes, minlength=len(names)) > 0
    dense = np.cumsum(used) - 1  # regions with spots, numbered 0..k-1
    conf = silhouette_from_codes(np.asarray(adata.obsm[EMBED_KEY]), dense[codes], int(used.sum()))
    info = adata.uns.get(UNS_KEY)
    calls = info.get(MODEL_LABELS_KEY) if isinstance(info, dict) else None
    model = calls.get(_n_clusters(adata, key)) if isinstance(calls, dict) else None
    if model is not None and len(model) == len(codes):
        conf[_moved(names, codes, np.asarray(model))] = np.nan
    adata.obs[CONFIDENCE_KEY] = conf
    return conf


def uncertain_spots(confidence: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the spots whose confidence is below ``threshold`` (NaN never is)."""
    c = np.asarray(confidence, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(c < float(threshold))
