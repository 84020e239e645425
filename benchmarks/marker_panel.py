"""Regions named by marker genes: a panel the user writes, each spot's score, the spots that seed each region.

Measured and not shipped (twenty-first session, ``her2st_markers.py``): on HER2ST the textbook panel below
scores 0.215 mean ARI against 0.307 for the unsupervised model, so the rule stays here, beside its benchmark.

A clustering cannot know which distinctions the pathologist draws (docs/method.md, "Twentieth
session"). Marker genes say it without a single spot assigned by hand: the user names each region
and a few genes it expresses (``adipose tissue: ADIPOQ, PLIN1, FABP4``). Each region's score on a
spot is the mean of its markers' z-scored log-normalised expression, averaged over the spot and its
k = 4 neighbours; the spots where a region's score leads the others' by the widest margin seed it,
and every other spot joins the region whose seeds' mean is nearest in the SENCA embedding
(:func:`napari_senca.review.classify.nearest_region_mean`). The markers choose the grain; the model's embedding draws
the boundaries.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from napari_senca.errors import ConfigError, DataError
from napari_senca.review.genes import gene_values, library_sizes

__all__ = ["parse_panel", "read_panel", "marker_scores", "seed_spots", "SEEDS_PER_REGION", "BREAST_PANEL"]

#: spots that seed each region (the widest score margins); the rest join the nearest seeds' mean
SEEDS_PER_REGION = 10

#: an example panel for breast cancer sections (HER2ST's region names), written from textbook markers
#: before it was measured (docs/benchmarks.md, "Twenty-first session"); users write their own
BREAST_PANEL = """\
invasive cancer: ERBB2, GRB7, STARD3, KRT8, KRT18, KRT19, EPCAM, MKI67
cancer in situ: ERBB2, GRB7, KRT8, KRT18, KRT19, KRT5, KRT14, KRT17, TP63, ACTA2
breast glands: KRT5, KRT14, KRT15, KRT17, TP63, ACTA2, PIP, SCGB2A2
connective tissue: COL1A1, COL1A2, COL3A1, DCN, LUM, FBLN1, PDGFRB
adipose tissue: ADIPOQ, PLIN1, PLIN4, FABP4, LEP, CIDEA, LPL, CD36
immune infiltrate: PTPRC, CD74, HLA-DRA, IGKC, IGHG1, IGHM, JCHAIN, MZB1, CD3E, CD79A, MS4A1, CXCL13
"""


def parse_panel(text: str) -> dict[str, list[str]]:
    """A panel from text: one region per line, ``region: GENE1, GENE2 ...`` (commas or spaces between genes).

    Blank lines and lines starting with ``#`` are skipped; a region named twice gets the genes of both lines.

    Raises
    ------
    ConfigError
        A line without ``:``, a region without genes, or fewer than two regions.
    """
    panel: dict[str, list[str]] = {}
    for n, line in enumerate(str(text).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        region, sep, genes = line.partition(":")
        region, names = region.strip(), [g for g in re.split(r"[,\s;]+", genes) if g]
        if not sep or not region:
            raise ConfigError(f"marker panel line {n}: write 'region: GENE1, GENE2', not {line!r}")
        if not names:
            raise ConfigError(f"marker panel line {n}: region {region!r} has no genes")
        panel.setdefault(region, [])
        panel[region] += [g for g in names if g not in panel[region]]
    if len(panel) < 2:
        raise ConfigError(f"a marker panel needs at least two regions; it has {len(panel)}")
    return panel


def read_panel(path: str | Path) -> dict[str, list[str]]:
    """A panel from a file: the text form of :func:`parse_panel`, or a CSV / TSV table with columns ``region, gene``.

    Raises
    ------
    DataError
        The file cannot be read, or a table lacks the two columns.
    ConfigError
        As :func:`parse_panel`.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(p, f"cannot read the marker panel: {exc}") from exc
    if p.suffix.lower() not in (".csv", ".tsv"):
        return parse_panel(text)
    table = pd.read_csv(p, sep="\t" if p.suffix.lower() == ".tsv" else ",", dtype=str)
    cols = {c.strip().lower(): c for c in table.columns}
    if not {"region", "gene"} <= set(cols):
        raise DataError(p, f"a marker table needs the columns 'region' and 'gene'; it has {list(table.columns)}")
    table = table.dropna(subset=[cols["region"], cols["gene"]])
    return parse_panel("\n".join(f"{r}: {g}" for r, g in zip(table[cols["region"]], table[cols["gene"]], strict=True)))


def marker_scores(adata: AnnData, panel: dict[str, list[str]], neighbours: sp.spmatrix | None = None) -> pd.DataFrame:
    """Each region's marker score on each spot: the mean of its markers' z-scored log-normalised expression.

    Parameters
    ----------
    adata
        The section (raw counts in ``X``; gene names matched case-insensitively).
    panel
        Region name to marker genes (:func:`parse_panel`).
    neighbours
        ``(n_spots, n_spots)`` row-normalised averaging operator applied to the scores; ``None``: the spot
        and its k = 4 neighbours on the spot graph.

    Returns
    -------
    pandas.DataFrame
        ``(n_spots, n_regions)``, columns in panel order, index ``obs_names``.

    Raises
    ------
    ConfigError
        When none of a region's markers is in the section (the missing genes are named).
    """
    lib = library_sizes(adata)
    cache: dict[str, np.ndarray] = {}
    cols = {}
    for region, genes in panel.items():
        have = [g for g in genes if _has(adata, g)]
        if not have:
            raise ConfigError(f"none of the markers of {region!r} is in the section: {', '.join(genes)}")
        for g in have:
            if g not in cache:
                v = gene_values(adata, g, lib)
                sd = v.std()
                cache[g] = (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)
        cols[region] = np.mean([cache[g] for g in have], axis=0)
    scores = np.column_stack(list(cols.values()))
    if neighbours is None:
        from napari_senca.graph import neighbour_mean_operator

        neighbours = neighbour_mean_operator(adata.obsm["spatial"], 4)
    return pd.DataFrame(np.asarray(neighbours @ scores), index=adata.obs_names, columns=list(cols))


def seed_spots(scores: pd.DataFrame, n: int = SEEDS_PER_REGION) -> np.ndarray:
    """``(n_spots,)`` region codes (column positions of ``scores``) on the seeds, ``-1`` elsewhere.

    A region's seeds are the ``n`` spots where its score exceeds the best other region's by the widest
    margin, among the spots it leads; a spot seeds at most one region (it leads only one).
    """
    s = scores.to_numpy(float)
    out = np.full(len(s), -1)
    if s.shape[1] < 2:
        return out
    top2 = np.sort(s, axis=1)[:, -2]
    for c in range(s.shape[1]):
        margin = s[:, c] - np.where(s[:, c] >= s.max(1), top2, s.max(1))
        leads = np.flatnonzero((s[:, c] >= s.max(1)) & (margin > 0))
        out[leads[np.argsort(-margin[leads], kind="stable")[:n]]] = c
    return out


def _has(adata: AnnData, gene: str) -> bool:
    return gene in adata.var_names or gene.lower() in set(adata.var_names.str.lower())

