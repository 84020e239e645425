"""Regions named from annotated reference sections (label transfer).

A pathologist who has annotated some sections (region names given in the
Review widget and saved to ``annotated.h5ad``, or a labelled ``.h5ad``) can
name a new section's regions by the same names. :func:`predict_regions` learns
the regions from the references' expression and gives every spot of the new
section the most probable one; :func:`name_clusters` names each of the model's
clusters after the prediction most of its spots have, so that clusters given
one name become one region. The Review widget over-clusters the model's
embedding first (k + 3 regions), so the model draws the boundaries and the
reference says which tissue each cluster is (``ReviewState.name_from_reference``).

Measured on HER2ST with the other seven sections as the reference (docs/benchmarks.md,
"Twenty-second session"): 0.360 mean ARI against 0.298 for the model's k-means
(held-out seeds); with a single reference section the names collapse (0.045).

Features, per call (the genes depend on the section):

1. genes present in the section and in every reference; counts normalised to
   10,000 per spot (over those genes) and ``log1p``;
2. :data:`N_HVG` highly variable genes chosen on the references (scanpy,
   Seurat flavour, ``batch_key`` = reference; on the spots that fit step 5), after
   dropping genes with fewer than 10 counts over the references;
3. every gene z-scored within its own section (clipped at 10), so what remains
   is how a spot differs from the rest of its section, not the patient's or the
   run's level;
4. averaged over each spot and its spatial neighbours (k = ``n_neighbors``);
5. :data:`N_PCS` principal components fitted on the references; a class-balanced
   logistic regression on the references' labelled spots.

Pre-normalised input (``uns["senca_input"]["normalized"]``) skips step 1's
normalisation. Nothing here imports Qt or napari, and the section is not changed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .errors import ConfigError, DataError
from .graph import neighbour_mean_operator
from .section import LABEL_KEY, clean_label, is_normalized, source_path

__all__ = ["ReferencePrediction", "predict_regions", "reference_labels", "shared_genes", "name_clusters", "N_HVG",
           "N_PCS"]

#: genes chosen on the references, and principal components the classifier reads
N_HVG = 2000
N_PCS = 50
#: at most this many reference spots fit the components (a random, seeded subset above), and at least
#: this many of each reference (or all it has)
MAX_FIT_SPOTS = 50_000
MIN_FIT_SPOTS = 500
#: rows per block when a section's genes are scaled and projected (16,384 x 2,000 float64: 262 MB)
BLOCK = 16_384
#: ``obs`` columns looked for, in order, when no key is given
AUTO_KEYS = ("senca_region", LABEL_KEY)
#: the Review's name of a region nobody named
_DEFAULT = re.compile(r"cluster \S+")


@dataclass
class ReferencePrediction:
    """The regions :func:`predict_regions` gives a section.

    Attributes
    ----------
    names
        ``(n_spots,)`` the most probable region per spot (str).
    probabilities
        ``(n_spots, n_regions)`` one column per region, rows sum to 1.
    n_genes
        Genes the classifier read (highly variable among those shared).
    n_reference_spots
        Labelled reference spots it learnt from, per region.
    """

    names: np.ndarray
    probabilities: pd.DataFrame
    n_genes: int
    n_reference_spots: dict[str, int]


def reference_labels(adata: AnnData, key: str | None = None) -> tuple[np.ndarray, str]:
    """``(labels, key)``: the reference's region per spot (``None`` where unlabelled) and the column read.

    Without ``key``: ``obs["senca_region"]`` when at least two regions there
    were named in the Review (not the default ``cluster N``, which counts as
    unlabelled), else ``obs["label"]``.

    Raises
    ------
    DataError
        The column is missing, or it names fewer than two regions.
    """
    if key is None:
        for k in AUTO_KEYS:
            if k in adata.obs and _named_regions(adata.obs[k], review=k == AUTO_KEYS[0]) >= 2:
                key = k
                break
        else:
            cats = [c for c in adata.obs.columns if isinstance(adata.obs[c].dtype, pd.CategoricalDtype)]
            raise DataError(source_path(adata), "no region names to learn from: no named 'senca_region' (Review) or "
                                            f"'label' column; name one of {cats or 'its obs columns'}")
    if key not in adata.obs:
        raise DataError(source_path(adata), f"no obs column {key!r} to read the regions from")
    labels = np.array([clean_label(v) for v in adata.obs[key].astype(object)], dtype=object)
    if key == AUTO_KEYS[0]:  # the Review's default names ("cluster 3") name nothing
        labels[np.array([v is not None and _DEFAULT.fullmatch(v) is not None for v in labels], dtype=bool)] = None
    if len({v for v in labels if v is not None}) < 2:
        raise DataError(source_path(adata), f"obs[{key!r}] names fewer than two regions")
    return labels, key


def _named_regions(col: pd.Series, review: bool) -> int:
    """How many regions ``col`` names (the Review's default ``cluster N`` names nothing where ``review``)."""
    vals = {clean_label(v) for v in pd.unique(col.dropna().astype(object))} - {None}
    return len([v for v in vals if not (review and _DEFAULT.fullmatch(str(v)))])


def _lognorm_blocks(adata: AnnData, genes: np.ndarray, cols: np.ndarray, rows: np.ndarray | None = None):
    """Step 1 per block of :data:`BLOCK` rows: ``(start, CSR float64 block)`` of the ``cols`` of ``genes``,
    normalised over all of ``genes`` (as given when the section is pre-normalised); only ``rows`` when given.
    No copy of the whole section."""
    idx = adata.var_names.get_indexer(genes)
    normalized = is_normalized(adata)
    n = adata.n_obs if rows is None else len(rows)
    for b in range(0, n, BLOCK):
        xb = adata.X[b : b + BLOCK] if rows is None else adata.X[rows[b : b + BLOCK]]
        xb = xb if sp.issparse(xb) else sp.csr_matrix(np.asarray(xb))
        x = sp.csr_matrix(xb[:, idx[cols]], dtype=np.float64)
        x.sum_duplicates()  # log1p and the squares below are taken per stored entry
        if not normalized:
            lib = np.asarray(xb[:, idx].sum(1), dtype=np.float64).ravel()
            x.data *= np.repeat(1e4 / np.maximum(lib, 1), np.diff(x.indptr))
            np.log1p(x.data, out=x.data)
        yield b, x


def _hvgs(references: Sequence[AnnData], genes: np.ndarray, rows: list[np.ndarray]) -> np.ndarray:
    """Step 2: indices into ``genes`` of the references' highly variable genes, chosen on their spots ``rows``."""
    import warnings

    import scanpy as sc

    from .threads import keep_torch_threads

    total = sum(np.asarray(r.X.sum(0)).ravel()[r.var_names.get_indexer(genes)] for r in references)
    keep = np.flatnonzero(np.asarray(total, float) >= 10)
    if len(keep) < 2:
        raise ConfigError("fewer than 2 shared genes have 10 counts over the annotated sections")
    parts = [sp.vstack([x for _, x in _lognorm_blocks(r, genes, keep, idx)], format="csr")
             for r, idx in zip(references, rows, strict=True) if len(idx) >= 2]  # scanpy needs 2 spots a batch
    batch = np.repeat(np.arange(len(parts)).astype(str), [p.shape[0] for p in parts])
    pooled = AnnData(sp.vstack(parts, format="csr"),
                     obs=pd.DataFrame({"reference": batch}, index=np.arange(len(batch)).astype(str)))
    del parts
    with warnings.catch_warnings(), keep_torch_threads():
        warnings.simplefilter("ignore")
        n_top = min(N_HVG, len(keep))
        sc.pp.highly_variable_genes(pooled, n_top_genes=n_top, batch_key="reference" if len(references) > 1 else None)
    return keep[pooled.var["highly_variable"].to_numpy()]


def _scaled_blocks(adata: AnnData, genes: np.ndarray, cols: np.ndarray):
    """Step 3 per block of rows: ``(start, dense block z-scored over the section, clipped at 10)``; two passes."""
    total, sq = np.zeros(len(cols)), np.zeros(len(cols))
    for _, x in _lognorm_blocks(adata, genes, cols):
        total += np.bincount(x.indices, weights=x.data, minlength=len(cols))
        sq += np.bincount(x.indices, weights=x.data**2, minlength=len(cols))
    mean = total / adata.n_obs
    sd = np.sqrt(np.maximum(sq / adata.n_obs - mean**2, 0))
    sd = np.where(sd > 1e-8, sd, 1e-8)
    for b, x in _lognorm_blocks(adata, genes, cols):
        yield b, np.clip((x.toarray() - mean) / sd, -10, 10)


def _averaged(adata: AnnData, genes: np.ndarray, cols: np.ndarray, avg: sp.csr_matrix,
              rows: np.ndarray | None = None, project: np.ndarray | None = None) -> np.ndarray:
    """``avg[rows] @ scaled(section) [@ project]`` (steps 1-4), one block of rows at a time."""
    a = avg if rows is None else avg[rows]
    out = None
    for b, z in _scaled_blocks(adata, genes, cols):
        part = np.asarray(a[:, b : b + z.shape[0]] @ (z if project is None else z @ project))
        if out is None:
            out = part
        else:
            out += part
    return out


def predict_regions(adata: AnnData, references: Sequence[AnnData], key: str | None = None,
                    regions: Sequence[str] | None = None, n_neighbors: int = 4, seed: int = 0) -> ReferencePrediction:
    """Each spot of ``adata`` given the most probable region of the ``references`` (module docstring).

    Parameters
    ----------
    adata
        The section to name, counts in ``X`` and ``obsm["spatial"]``; not changed.
    references
        Annotated sections (counts, ``obsm["spatial"]`` and region names).
    key
        The references' ``obs`` column of region names (:func:`reference_labels`).
    regions
        Only these regions are predicted (the ones the user says the section has); default: all.
    n_neighbors
        Neighbours averaged per spot (the model's k).
    seed
        Seeds the subset of reference spots that fits the components, above :data:`MAX_FIT_SPOTS`.

    Raises
    ------
    ConfigError
        No reference, too few shared genes, or ``regions`` the references do not name.
    DataError
        A reference without region names (naming its file).
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    if not references:
        raise ConfigError("no reference section to learn the regions from")
    for s in (adata, *references):
        if "spatial" not in s.obsm:
            raise DataError(source_path(s), 'no spot positions (obsm["spatial"])')
    labels = [reference_labels(r, key)[0] for r in references]
    named = sorted({v for lab in labels for v in lab if v is not None})
    missing = sorted(set(regions or ()) - set(named))
    if missing:
        raise ConfigError(f"the references name no region {', '.join(map(repr, missing))}; they name "
                          f"{', '.join(map(repr, named))}")
    genes = shared_genes(adata, references)
    fit = _fit_rows(labels, seed)
    hvg = _hvgs(references, genes, fit)
    avgs = [neighbour_mean_operator(s.obsm["spatial"], n_neighbors) for s in (adata, *references)]  # step 4
    ref_feats = np.vstack([_averaged(r, genes, hvg, a, rows) for r, a, rows in zip(references, avgs[1:], fit,
                                                                                 strict=True)])
    pca = PCA(min(N_PCS, len(hvg), len(ref_feats)), random_state=0)
    x = pca.fit_transform(ref_feats)
    del ref_feats
    y = np.concatenate([lab[rows] for lab, rows in zip(labels, fit, strict=True)])
    has = np.array([v is not None for v in y])
    y = y[has].astype(str)
    lr = LogisticRegression(class_weight="balanced", max_iter=5000).fit(x[has], y)
    proj = pca.components_.T
    target = _averaged(adata, genes, hvg, avgs[0], project=proj) - pca.mean_ @ proj
    proba = pd.DataFrame(lr.predict_proba(target), columns=lr.classes_, index=adata.obs_names)
    if regions is not None:
        proba = proba[[c for c in lr.classes_ if c in set(regions)]]
        proba = proba.div(np.maximum(proba.sum(1), 1e-300), axis=0)
    names = proba.columns.to_numpy()[proba.to_numpy().argmax(1)].astype(str)
    counts = dict(zip(*np.unique(y, return_counts=True), strict=True))
    return ReferencePrediction(names, proba, len(hvg), {str(k): int(v) for k, v in counts.items()})


def shared_genes(adata: AnnData, references: Sequence[AnnData]) -> np.ndarray:
    """The genes of ``adata`` that every reference has (in ``adata``'s order).

    Raises
    ------
    ConfigError
        Fewer than 2 (checked before training by ``napari-senca run --name-from``).
    """
    genes = adata.var_names
    for r in references:
        genes = genes[genes.isin(r.var_names)]  # hashed; np.isin on strings takes seconds
    if len(genes) < 2:
        raise ConfigError(f"the section and the annotated sections share {len(genes)} gene names; "
                          "they must name genes alike (symbols or ids)")
    return np.asarray(genes)


def _fit_rows(labels: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Per reference, its spots that fit the components and the classifier (sorted).

    About :data:`MAX_FIT_SPOTS` over all references: each reference gets a share in proportion to its
    spots (at least :data:`MIN_FIT_SPOTS`, or all it has), labelled spots first (a random subset of them
    above its share), then unlabelled ones at random.
    """
    rng = np.random.default_rng(seed)
    sizes = np.array([len(lab) for lab in labels])
    if sizes.sum() <= MAX_FIT_SPOTS:
        return [np.arange(n) for n in sizes]
    out = []
    for lab, n in zip(labels, sizes, strict=True):
        share = min(n, max(MIN_FIT_SPOTS, int(MAX_FIT_SPOTS * n / sizes.sum())))
        has = np.array([v is not None for v in lab], dtype=bool)
        lab_idx, unl_idx = np.flatnonzero(has), np.flatnonzero(~has)
        if len(lab_idx) >= share:
            rows = rng.choice(lab_idx, share, replace=False)
        else:
            rows = np.concatenate([lab_idx, rng.choice(unl_idx, share - len(lab_idx), replace=False)])
        out.append(np.sort(rows))
    return out


def name_clusters(clusters: np.ndarray, predicted: np.ndarray) -> dict[int, str]:
    """Each cluster's name: the prediction most of its spots have (ties: the first in sorted order).

    ``clusters`` are integer codes (``-1``: no cluster, ignored), ``predicted`` one name per spot.
    """
    clusters = np.asarray(clusters)
    predicted = np.asarray(predicted).astype(str)
    out = {}
    for c in np.unique(clusters[clusters >= 0]):
        names, counts = np.unique(predicted[clusters == c], return_counts=True)
        out[int(c)] = str(names[counts.argmax()])
    return out
