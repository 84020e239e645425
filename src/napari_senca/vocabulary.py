"""One region vocabulary for sections that were run separately.

Each section's regions are described by their expression centroid: the mean
log-normalised expression (``normalize_total`` to 10,000 counts, ``log1p``) of
a shared gene set over the region's spots, minus the section's mean over all
its spots (which removes most of a section's batch effect). A section is
matched to the vocabulary by Pearson correlation of these centroids and the
Hungarian algorithm (:func:`scipy.optimize.linear_sum_assignment`, one
section region per vocabulary entry). Regions left over, or matched with a
correlation below ``min_corr``, join the entry they correlate best with when
that correlation reaches ``min_corr`` (default 0.1, the best of 0.1-0.5 on HER2ST;
a section may split one tissue in two),
and otherwise become new vocabulary entries. The vocabulary starts from a
reference section (a previous output's ``annotated.h5ad``, whose region names
carry over, or the first section) and keeps the reference centroids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .section import CLUSTER_KEY

__all__ = ["Vocabulary", "region_centroids", "shared_genes", "match_sections", "match_cohort_outputs", "COHORT_KEY"]

#: ``obs`` column (and clusters.csv column) with the matched cohort region.
COHORT_KEY = "cohort_region"


@dataclass
class Vocabulary:
    """Named region centroids over ``genes``."""

    genes: list[str]
    names: list[str] = field(default_factory=list)
    centroids: list[np.ndarray] = field(default_factory=list)

    def add(self, name: str, centroid: np.ndarray) -> int:
        base, i = name, 2
        while name in self.names:
            name, i = f"{base} ({i})", i + 1
        self.names.append(name)
        self.centroids.append(np.asarray(centroid, dtype=np.float64))
        return len(self.names) - 1

    def matrix(self) -> np.ndarray:
        return np.vstack(self.centroids) if self.centroids else np.zeros((0, len(self.genes)))


def _lognorm(adata: AnnData, genes: Sequence[str]) -> np.ndarray | sp.csr_matrix:
    """``log1p(counts / library size * 1e4)`` of ``genes``; sparse when ``X`` is (log1p keeps zeros).

    A dense copy of a Visium HD section over every shared gene would not fit
    in memory (160,000 bins x 18,000 genes: 23 GB in float64).
    """
    x = adata.X
    x = x.tocsr() if sp.issparse(x) else np.asarray(x)
    lib = np.asarray(x.sum(1)).ravel().astype(np.float64)
    lib[lib <= 0] = 1.0
    idx = adata.var_names.get_indexer(list(genes))
    sub = x[:, idx]
    if sp.issparse(sub):
        out = sp.csr_matrix(sp.diags(1e4 / lib) @ sp.csr_matrix(sub, dtype=np.float64))
        out.data = np.log1p(out.data)
        return out
    return np.log1p(np.asarray(sub).astype(np.float64) / lib[:, None] * 1e4)


def _column_mean(x: np.ndarray | sp.spmatrix) -> np.ndarray:
    return np.asarray(x.mean(0), dtype=np.float64).ravel()


def _column_var(x: np.ndarray | sp.spmatrix) -> np.ndarray:
    if not sp.issparse(x):
        return np.asarray(x).var(0)
    mean = _column_mean(x)
    return np.maximum(_column_mean(x.multiply(x)) - mean**2, 0.0)


def shared_genes(adatas: Sequence[AnnData], reference: AnnData, n_genes: int = 2000) -> list[str]:
    """The ``n_genes`` most variable genes of the reference (log-normalised) present in every section."""
    common = set(reference.var_names)
    for a in adatas:
        common &= set(a.var_names)
    genes = [g for g in reference.var_names if g in common]
    if not genes:
        return []
    order = np.argsort(-_column_var(_lognorm(reference, genes)), kind="stable")[:n_genes]
    return [genes[i] for i in sorted(order)]


def region_centroids(adata: AnnData, genes: Sequence[str], key: str = CLUSTER_KEY) -> tuple[list[str], np.ndarray]:
    """Regions of ``obs[key]`` and their centred mean log-normalised expression (regions x genes)."""
    x = _lognorm(adata, genes)
    overall = _column_mean(x)
    lab = adata.obs[key].astype(str).to_numpy()
    ok = adata.obs[key].notna().to_numpy()
    regions = [str(c) for c in pd.unique(lab[ok])]
    cats = getattr(adata.obs[key], "cat", None)
    if cats is not None:
        regions = [str(c) for c in adata.obs[key].cat.categories if str(c) in set(regions)]
    return regions, np.vstack([_column_mean(x[ok & (lab == r)]) - overall for r in regions])


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    def z(m: np.ndarray) -> np.ndarray:
        m = m - m.mean(1, keepdims=True)
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)

    return z(a) @ z(b).T


def _match(vocab: Vocabulary, section: str, regions: list[str], cents: np.ndarray, min_corr: float) -> list[tuple[str, str, float, bool]]:
    """(region, entry name, correlation, new) for every region of a section; grows ``vocab``."""
    from scipy.optimize import linear_sum_assignment

    out: list[tuple[str, str, float, bool]] = []
    if not vocab.names:
        for r, c in zip(regions, cents, strict=True):
            vocab.add(f"Region {r}" if section == "" else f"{section}:{r}", c)
            out.append((r, vocab.names[-1], 1.0, True))
        return out
    corr = _corr(cents, vocab.matrix())  # (regions, entries)
    rows, cols = linear_sum_assignment(-corr)
    assigned = {int(i): int(j) for i, j in zip(rows, cols, strict=True) if corr[i, j] >= min_corr}
    n_before = len(vocab.names)
    for i, r in enumerate(regions):
        j = assigned.get(i)
        if j is None:
            best = int(np.argmax(corr[i, :n_before]))
            if corr[i, best] >= min_corr:
                j = best
        if j is not None:
            out.append((r, vocab.names[j], float(corr[i, j]), False))
        else:
            best = float(corr[i].max())
            vocab.add(f"{section}:{r}", cents[i])
            out.append((r, vocab.names[-1], best, True))
    return out


def match_sections(
    sections: Sequence[tuple[str, AnnData]],
    reference: AnnData | None = None,
    *,
    key: str = CLUSTER_KEY,
    min_corr: float = 0.1,
    n_genes: int = 2000,
    reference_names: dict[str, str] | None = None,
) -> tuple[dict[str, dict[str, str]], pd.DataFrame]:
    """Match the regions of every section to one vocabulary.

    Parameters
    ----------
    sections
        ``(name, adata)`` with ``obs[key]``, raw counts in ``X``.
    reference
        Section whose regions seed the vocabulary (default: the first of ``sections``).
    min_corr
        Lowest centroid correlation for a region to join an entry; below it the region becomes a new entry.
    n_genes
        Most variable reference genes (present in every section) used for the centroids.
    reference_names
        Display names of the reference's regions (e.g. ``uns["senca"]["cluster_names"]``).

    Returns
    -------
    mapping, table
        ``mapping[section][region] = entry name`` and one row per (section, region):
        ``section, region, cohort_region, correlation, new_entry, spots``.
    """
    if not sections:
        return {}, pd.DataFrame(columns=["section", "region", COHORT_KEY, "correlation", "new_entry", "spots"])
    ref_name, ref = ("(reference)", reference) if reference is not None else sections[0]
    genes = shared_genes([a for _, a in sections], ref, n_genes)
    vocab = Vocabulary(genes)
    names = reference_names or {}
    ref_regions, ref_cents = region_centroids(ref, genes, key)
    for r, c in zip(ref_regions, ref_cents, strict=True):
        vocab.add(names.get(r) or f"Region {r}", c)
    mapping: dict[str, dict[str, str]] = {}
    rows = []
    for name, a in sections:
        regions, cents = region_centroids(a, genes, key)
        if reference is None and name == ref_name:
            res = [(r, vocab.names[i], 1.0, False) for i, r in enumerate(regions)]
        else:
            res = _match(vocab, name, regions, cents, min_corr)
        sizes = a.obs[key].astype(str).value_counts()
        mapping[name] = {r: e for r, e, _, _ in res}
        rows += [
            {"section": name, "region": r, COHORT_KEY: e, "correlation": round(c, 4), "new_entry": new, "spots": int(sizes.get(r, 0))}
            for r, e, c, new in res
        ]
    return mapping, pd.DataFrame(rows)


def _read(path: Path) -> AnnData:
    import anndata

    return anndata.read_h5ad(path)


def match_cohort_outputs(
    outputs: Sequence[tuple[str, Path]],
    reference: str | PathLike | None = None,
    min_corr: float = 0.1,
    on_written: Callable[[Path, str], None] | None = None,
    may_write: Callable[[Path, str], bool] | None = None,
) -> pd.DataFrame | None:
    """Match the regions of finished section outputs and add ``cohort_region`` to their files.

    Every ``annotated.h5ad`` gets ``obs["cohort_region"]`` and every
    ``clusters.csv`` a ``cohort_region`` column (rewritten atomically).
    ``on_written`` is called with the output folder and the file name right
    after each file is rewritten (so that a stop partway loses nothing);
    ``may_write`` just before, and a file it refuses is left as it is (one
    the user saved into while matching ran). Returns the vocabulary table
    (None when no section finished).
    """
    from .export import atomic_write, cluster_names
    from .io import write_h5ad

    if not outputs:
        return None
    loaded = [(name, _read(out / "annotated.h5ad")) for name, out in outputs]
    ref = None
    ref_names: dict[str, str] | None = None
    if reference is not None:
        ref = _read(Path(reference))
        names = cluster_names(ref, CLUSTER_KEY)
        ref_names = {k: v for k, v in names.items() if v != f"Region {k}"}
    mapping, table = match_sections(loaded, ref, reference_names=ref_names, min_corr=min_corr)
    for (name, out), (_, a) in zip(outputs, loaded, strict=True):
        m = mapping[name]
        a.obs[COHORT_KEY] = pd.Categorical(a.obs[CLUSTER_KEY].astype(str).map(m))
        if may_write is None or may_write(out, "annotated.h5ad"):
            write_h5ad(a, out / "annotated.h5ad", overwrite=True)
            if on_written is not None:
                on_written(out, "annotated.h5ad")
        if may_write is not None and not may_write(out, "clusters.csv"):
            continue
        csv = pd.read_csv(out / "clusters.csv", dtype={"cluster": str})
        csv[COHORT_KEY] = csv["cluster"].astype(str).map(m)
        with atomic_write(out / "clusters.csv", overwrite=True) as fh:
            csv.to_csv(fh, index=False)
        if on_written is not None:
            on_written(out, "clusters.csv")
    return table
