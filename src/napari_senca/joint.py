"""Joint training: one SENCA-st model over several sections, one clustering of all their spots.

The sections are put side by side in one AnnData, the *union*, so that the
existing training code (:func:`napari_senca.pipeline.run_senca_iter`) trains
one model with shared weights over all of them and clusters all spots at once:
region ``k`` is then the same tissue in every section.

* **No graph edge and no window across sections.** Every section's spot
  centres are divided by its own spot spacing (1 unit = one spot pitch, so
  windows of ``window_spacings`` mean the same on every platform) and shifted
  along x so that consecutive sections are :data:`GAP` units apart, far more
  than a kNN edge or a (pooled) contrastive window can reach.
  The kNN graph and the windows are therefore a disjoint union; the union's
  graph is checked (:func:`cross_section_edges`). The RNA branch's
  self-attention (``GraphTransformer``) is all-pairs in the current model, so
  until it becomes neighbourhood-local spots still attend to spots of other
  sections there (the cross-modal attention is already neighbourhood-local).
* **Genes chosen jointly.** Counts are normalised and log1p-transformed per
  spot, genes kept that pass ``min_gene_counts`` in the pooled counts, and the
  ``n_top_genes`` HVGs are chosen with
  ``scanpy.pp.highly_variable_genes(batch_key="section")`` (genes variable in
  many sections first).
* **Batch effects** (``batch="scale"``, the default, chosen by measurement,
  docs/benchmarks.md): every gene is centred and scaled to unit variance within
  each section, so a section's overall shift or scale of a gene does not look
  like a region. ``"combat"`` runs ``scanpy.pp.combat`` (batch = section)
  on the log-expression first; ``"none"`` scales the pooled data only.

The union holds these values as pre-normalised input (shifted by +10, the
clip value, so they read as non-negative log values; the pipeline's own
per-gene scaling removes the shift again). :func:`run_joint_iter` yields the
pipeline's progress and returns a :class:`JointResult`; :func:`split` gives
every section its own annotated AnnData (``obs["senca_cluster"]`` with the
categories of all regions, ``obsm["X_senca"]``, ``uns["senca"]``).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .config import SencaConfig
from .errors import ConfigError, DataError
from .generators import drain
from .section import LABEL_KEY, spot_spacing
from .threads import keep_torch_threads

__all__ = [
    "SECTION_KEY",
    "GAP",
    "BATCH_MODES",
    "JointResult",
    "joint_expression",
    "build_union",
    "cross_section_edges",
    "run_joint_iter",
    "run_joint",
    "split",
]

#: ``obs`` column of the union naming each spot's section.
SECTION_KEY = "senca_section"

#: Space between consecutive sections in the union, in spot spacings.
GAP = 1000.0

#: Batch handling of :func:`joint_expression`.
BATCH_MODES = ("scale", "combat", "none")

_SHIFT = 10.0  # the pipeline clips scaled values at +-10


@dataclass
class JointResult:
    """One model over several sections (see :func:`split` for per-section results)."""

    union: AnnData  # annotated union (obs[SECTION_KEY], senca_cluster, X_senca)
    names: list[str]
    result: object  # napari_senca.pipeline.SencaResult over the union


def _check(sections: Sequence[tuple[str, AnnData]]) -> None:
    if len(sections) < 2:
        raise ConfigError(f"joint training needs at least 2 sections, got {len(sections)}")
    names = [n for n, _ in sections]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{len(dup)} section name(s) used twice ({', '.join(dup[:3])})")


def joint_expression(
    sections: Sequence[tuple[str, AnnData]], config: SencaConfig | None = None, batch: str = "scale"
) -> tuple[np.ndarray, list[str]]:
    """Per-spot log-expression of jointly chosen HVGs with the section effect handled.

    Parameters
    ----------
    sections
        ``(name, adata)`` with raw counts in ``X`` (genes matched by name; only
        genes present in every section are used).
    config
        ``min_gene_counts``, ``target_sum``, ``n_top_genes``.
    batch
        ``"scale"`` (per-section z-score per gene), ``"combat"`` or ``"none"``.

    Returns
    -------
    values, genes
        ``(n_spots_total, n_hvg)`` float32 in section order (``"scale"``: per
        section centred and scaled, clipped at +-10; otherwise log values), and the genes.

    Raises
    ------
    DataError, ConfigError
        No gene shared by all sections, or an unknown ``batch``.
    """
    import anndata
    import scanpy as sc

    cfg = config or SencaConfig()
    if batch not in BATCH_MODES:
        raise ConfigError(f"unknown batch handling {batch!r}; use one of {', '.join(BATCH_MODES)}")
    _check(sections)
    parts = []
    for name, a in sections:
        b = AnnData(X=sp.csr_matrix(a.X, dtype=np.float32))
        b.var_names = [str(g) for g in a.var_names]
        b.var_names_make_unique()
        b.obs_names = [f"{name}:{o}" for o in a.obs_names]
        b.obs["section"] = name
        parts.append(b)
    pooled = anndata.concat(parts, join="inner")
    keep = np.asarray(pooled.X.sum(0)).ravel() >= cfg.min_gene_counts
    if keep.sum() < 2:
        raise DataError(None, f"fewer than 2 genes shared by all {len(sections)} sections pass min_gene_counts")
    pooled = pooled[:, keep].copy()
    if (np.asarray(pooled.X.sum(1)).ravel() <= 0).any():
        raise DataError(None, "a spot has no counts in the genes shared by all sections; remove empty spots first")
    with warnings.catch_warnings(), keep_torch_threads():  # numba's first call resets torch's threads
        warnings.simplefilter("ignore")
        sc.pp.normalize_total(pooled, target_sum=cfg.target_sum)
        sc.pp.log1p(pooled)
        n_top = min(cfg.n_top_genes, pooled.n_vars)
        sc.pp.highly_variable_genes(pooled, flavor="seurat", n_top_genes=n_top, batch_key="section")
        pooled = pooled[:, pooled.var["highly_variable"].to_numpy()].copy()
        if batch == "combat":
            pooled.X = pooled.X.toarray() if sp.issparse(pooled.X) else pooled.X
            sc.pp.combat(pooled, key="section")
    x = pooled.X.toarray() if sp.issparse(pooled.X) else np.asarray(pooled.X)
    x = np.asarray(x, dtype=np.float64)
    if batch == "scale":
        sec = pooled.obs["section"].to_numpy()
        for name, _ in sections:
            m = sec == name
            sd = x[m].std(0)
            x[m] = np.clip((x[m] - x[m].mean(0)) / np.where(sd > 0, sd, 1.0), -_SHIFT, _SHIFT)
    return x.astype(np.float32), [str(g) for g in pooled.var_names]


def build_union(
    sections: Sequence[tuple[str, AnnData]], config: SencaConfig | None = None, batch: str = "scale"
) -> AnnData:
    """One AnnData of all sections side by side, ready for :func:`~napari_senca.pipeline.run_senca_iter`.

    ``X`` holds :func:`joint_expression` (+10, as pre-normalised input),
    ``obsm["spatial"]`` the spot-spacing-normalised centres shifted apart
    (``obsm["spatial_section"]`` the original ones), ``obs[SECTION_KEY]`` the
    section and ``obs["label"]`` the labels where a section has them. No image:
    joint training is RNA-only.
    """
    x, genes = joint_expression(sections, config, batch)
    xy_parts, x0 = [], 0.0
    for _name, a in sections:
        xy = np.asarray(a.obsm["spatial"], dtype=np.float64)[:, :2]
        xy = (xy - xy.min(0)) / max(spot_spacing(a), 1e-9)
        xy_parts.append(xy + np.array([x0, 0.0]))
        x0 += float(xy[:, 0].max(initial=0.0)) + GAP
    names = [n for n, _ in sections]
    obs = pd.DataFrame(
        {SECTION_KEY: pd.Categorical(np.repeat(names, [a.n_obs for _, a in sections]), categories=names)},
        index=[f"{n}:{o}" for n, a in sections for o in a.obs_names],
    )
    labels = [a.obs[LABEL_KEY].astype(object) if LABEL_KEY in a.obs else pd.Series([None] * a.n_obs) for _, a in sections]
    lab = pd.concat(labels, ignore_index=True).to_numpy()
    if pd.notna(lab).any():
        obs[LABEL_KEY] = pd.Categorical(lab)
    union = AnnData(X=x + np.float32(_SHIFT), obs=obs)
    union.var_names = genes
    union.obsm["spatial"] = np.vstack(xy_parts)
    union.obsm["spatial_section"] = np.vstack([np.asarray(a.obsm["spatial"], np.float64)[:, :2] for _, a in sections])
    union.uns["senca_input"] = {"normalized": True, "joint": names, "batch": batch}
    return union


def cross_section_edges(union: AnnData, n_neighbors: int) -> int:
    """Number of kNN-graph edges of the union that join two different sections (0 by construction)."""
    from .graph import build_graph

    g = build_graph(np.asarray(union.obsm["spatial"]), n_neighbors).adjacency.tocoo()
    sec = union.obs[SECTION_KEY].cat.codes.to_numpy()
    return int((sec[g.row] != sec[g.col]).sum())


def run_joint_iter(
    sections: Sequence[tuple[str, AnnData]], config: SencaConfig | None = None, batch: str = "scale"
) -> Generator[object, None, JointResult]:
    """Train one model over ``sections`` and cluster all their spots together.

    Yields the pipeline's :class:`~napari_senca.progress.Progress` reports and
    returns a :class:`JointResult`. ``config.n_clusters=None`` uses the number
    of labelled regions in all sections together (else 7).

    Raises
    ------
    ConfigError, DataError
        Fewer than 2 sections, a section with too few spots, no shared genes.
    """
    from .pipeline import annotate, run_senca_iter

    cfg = (config or SencaConfig()).replace(use_image=False)
    for name, a in sections:
        if a.n_obs <= cfg.n_neighbors:
            raise DataError(None, f"section {name!r} has {a.n_obs} spots; joint training needs more than "
                            f"n_neighbors={cfg.n_neighbors}")  # fmt: skip
    union = build_union(sections, cfg, batch)
    # enough input genes for the pipeline to keep them all (no second HVG selection)
    cfg = cfg.replace(n_top_genes=max(cfg.n_top_genes, union.n_vars))
    result = yield from run_senca_iter(union, cfg)
    annotate(union, result)
    return JointResult(union=union, names=[n for n, _ in sections], result=result)


def run_joint(
    sections: Sequence[tuple[str, AnnData]], config: SencaConfig | None = None, batch: str = "scale"
) -> JointResult:
    """:func:`run_joint_iter` to the end."""
    return drain(run_joint_iter(sections, config, batch))


def split(joint: JointResult, sections: Sequence[tuple[str, AnnData]]) -> list[tuple[str, AnnData]]:
    """Every section annotated with its part of the joint result (the sections are modified).

    ``obs["senca_cluster"]`` has the categories of all joint regions (a region
    absent from a section keeps its id), ``uns["senca"]`` records the joint run
    (``joint``: the section names; no linkage, the tree spans all sections).
    """
    from dataclasses import replace

    from .pipeline import annotate

    res = joint.result
    sec = joint.union.obs[SECTION_KEY].to_numpy()
    out = []
    for name, a in sections:
        m = sec == name
        part = replace(res, embedding=res.embedding[m], labels=res.labels[m], linkage=None)  # type: ignore[type-var]
        annotate(a, part)
        cats = [str(i) for i in range(int(res.n_clusters))]
        a.obs["senca_cluster"] = pd.Categorical(a.obs["senca_cluster"].astype(str), categories=cats)
        a.uns["senca"]["joint"] = np.asarray(joint.names, dtype=object)
        out.append((name, a))
    return out
