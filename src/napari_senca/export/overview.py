"""The overview figure (``overview.png``): spots coloured by cluster over the H&E, beside a 2-D layout."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..section import CLUSTER_KEY, EMBED_KEY, get_image, library_id, spot_diameter
from .atomic import atomic_write
from .clusters import (
    _cluster_series,
    adjusted_rand,
    cluster_categories,
    cluster_colors,
    cluster_names,
)
from .layout import overview_layout

__all__ = ["write_overview_png"]


def _spot_rgb(clusters: pd.Series, col: dict[str, tuple[int, int, int]]) -> np.ndarray:
    """``(n, 3)`` colours in 0-1 of every spot; grey where it has no cluster."""
    return np.array(
        [np.array(col[str(c)]) / 255.0 if not pd.isna(c) else (0.6, 0.6, 0.6) for c in clusters],
        dtype=np.float64,
    ).reshape(-1, 3)


def _draw_section(ax: Any, adata: AnnData, rgb: np.ndarray) -> None:
    """The spots as true-size discs over the (downsampled) H&E, or on white without an image."""
    from matplotlib.collections import EllipseCollection

    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    d = spot_diameter(adata)
    img = get_image(adata)
    if img is not None:
        image, scale = img
        step = max(1, int(math.ceil(max(image.shape[:2]) / 2000)))
        shown = image[::step, ::step]
        s = scale / step
        ax.imshow(shown, extent=(-0.5, shown.shape[1] - 0.5, shown.shape[0] - 0.5, -0.5))
        pts = xy * s
        dd = d * s
    else:
        pts = xy
        dd = d
        ax.set_facecolor("white")
        pad = max(dd, 1.0)
        ax.set_xlim(pts[:, 0].min() - pad, pts[:, 0].max() + pad)
        ax.set_ylim(pts[:, 1].max() + pad, pts[:, 1].min() - pad)
    ax.add_collection(
        EllipseCollection(
            widths=np.full(len(pts), dd),
            heights=np.full(len(pts), dd),
            angles=np.zeros(len(pts)),
            units="xy",
            offsets=pts,
            offset_transform=ax.transData,
            facecolors=rgb,
            edgecolors="none",
            alpha=0.85,
        )
    )
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _section_title(adata: AnnData, key: str, n_regions: int) -> str:
    title = f"{library_id(adata) or 'section'}: {adata.n_obs} spots, {n_regions} regions"
    ari = adjusted_rand(adata, key)
    if ari is not None:
        title += f" (ARI {ari:.3f})"
    return title


def _draw_layout(ax: Any, adata: AnnData, embedding_key: str, layout: str, rgb: np.ndarray) -> None:
    """The embedding's 2-D layout (:func:`~napari_senca.export.overview_layout`) as a scatter plot."""
    lay, method = overview_layout(adata, embedding_key, layout)
    ax.scatter(lay[:, 0], lay[:, 1], c=rgb, s=max(2.0, min(30.0, 3000.0 / max(adata.n_obs, 1))), linewidths=0)
    ax.set_title(f"{method} of {embedding_key}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")


def _legend_handles(
    clusters: pd.Series, cats: list[str], nm: dict[str, str], col: dict[str, tuple[int, int, int]]
) -> list[Any]:
    """One marker per cluster, labelled with its name and spot count."""
    from matplotlib.lines import Line2D

    counts = clusters.value_counts()
    return [
        Line2D([], [], marker="o", linestyle="", markersize=8, color=np.array(col[c]) / 255.0,
               label=f"{nm[c]} ({int(counts.get(c, 0))})")
        for c in cats
    ]  # fmt: skip


def write_overview_png(
    adata: AnnData,
    path: str | PathLike,
    key: str = CLUSTER_KEY,
    embedding_key: str = EMBED_KEY,
    *,
    names: Mapping[Any, str] | Sequence[str] | None = None,
    overwrite: bool = False,
    dpi: int = 150,
    layout: str = "pca",
) -> Path:
    """Save a figure: spots coloured by cluster over the H&E, beside a 2-D layout of the embedding.

    Parameters
    ----------
    adata
        Section with ``obs[key]``; ``obsm[embedding_key]`` adds the layout panel
        (the panel is left out without it).
    path
        Target ``.png``.
    names
        Cluster display names for the legend.
    overwrite
        Replace an existing file.
    dpi
        Resolution.
    layout
        ``"pca"`` (default: instant) or ``"umap"`` (see :func:`~napari_senca.export.overview_layout`).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    clusters = _cluster_series(adata, key)
    cats = cluster_categories(adata, key)
    nm = cluster_names(adata, key, names)
    col = cluster_colors(adata, key)
    rgb = _spot_rgb(clusters, col)
    has_emb = embedding_key in adata.obsm

    fig = Figure(figsize=(13.0 if has_emb else 7.5, 6.0), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if has_emb else 1, squeeze=False)[0]
    _draw_section(axes[0], adata, rgb)
    axes[0].set_title(_section_title(adata, key, len(cats)), fontsize=10)
    if has_emb:
        _draw_layout(axes[1], adata, embedding_key, layout, rgb)
    axes[-1].legend(
        handles=_legend_handles(clusters, cats, nm, col), loc="center left", bbox_to_anchor=(1.02, 0.5),
        frameon=False, fontsize=9, title=key,
    )  # fmt: skip
    fig.tight_layout()
    with atomic_write(path, overwrite=overwrite, mode="wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    return Path(path)
