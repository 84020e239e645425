"""The 2-D embedding view without Qt: layouts, plot selections and colours.

The Embedding view widget (``napari_senca._qt._embedding``) draws
``obsm["X_senca"]`` in two dimensions and links selections between the plot
and the spots on the H&E; everything it computes lives here.

* :func:`layout_2d` returns PCA (instant, the default) or UMAP (umap-learn,
  about 20 s the first time in a process) coordinates, cached in
  ``obsm["X_senca_pca"]`` / ``obsm["X_senca_umap"]`` together with a checksum
  of the embedding, so a new run never reuses an old layout.
* :func:`points_in_lasso` and :func:`points_in_rectangle` turn a selection
  drawn in plot coordinates into spot indices (all spots, vectorised: a
  400-vertex lasso over 500,000 points takes about 0.1 s).
* :class:`PlotPoints` is what the plot shows of a layout: every point for
  selections, a random subsample of at most :data:`MAX_DRAWN` for the
  scatter (a large Visium HD section stays fluid), and the colours and
  selection rings of the drawn points.
* :func:`region_colours` is the RGBA of every spot's region (no per-spot loop).
* :func:`confidence_colours` maps :mod:`napari_senca.confidence` values to
  RGBA (NaN, a spot assigned by hand, in grey).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from anndata import AnnData

from .errors import ConfigError
from .section import EMBED_KEY, UNS_KEY

__all__ = [
    "LAYOUTS",
    "CONFIDENCE_CMAP",
    "NAN_COLOUR",
    "layout_key",
    "cached_layout",
    "compute_layout",
    "compute_layout_isolated",
    "store_layout",
    "layout_2d",
    "points_in_lasso",
    "points_in_rectangle",
    "confidence_colours",
    "MAX_DRAWN",
    "FADED_ALPHA",
    "MAX_RINGS",
    "Splat",
    "plot_sample",
    "selection_mask",
    "PlotPoints",
    "region_colours",
]

#: Layout methods: name -> obsm key suffix.
LAYOUTS = ("pca", "umap")
#: Colormap of the confidence: ColorBrewer RdYlBu (colour-blind safe); uncertain spots are red
#: and orange, which stay visible on the purple and pink of H&E, confident ones blue.
CONFIDENCE_CMAP = "RdYlBu"
#: Colour of spots without a confidence (assigned by hand).
NAN_COLOUR = (0.6, 0.6, 0.6, 1.0)
#: Most points drawn in the scatter (a random subsample above it; selections use every point).
MAX_DRAWN = 30_000
#: Opacity of the points outside the selection while there is one.
FADED_ALPHA = 0.3
#: Most selected points ringed in the plot; a larger selection shows by opacity alone.
MAX_RINGS = 2_000


def layout_key(method: str) -> str:
    """The ``obsm`` key of a cached layout, e.g. ``"X_senca_pca"``."""
    m = _method(method)
    return f"{EMBED_KEY}_{m}"


def _method(method: str) -> str:
    m = str(method).strip().lower()
    if m not in LAYOUTS:
        raise ConfigError(f"unknown layout {method!r}; use 'pca' or 'umap'")
    return m


def _checksum(z: np.ndarray) -> str:
    return f"{zlib.crc32(np.ascontiguousarray(z, dtype=np.float32).tobytes()):08x}"


def _embedding(adata: AnnData) -> np.ndarray:
    if EMBED_KEY not in adata.obsm:
        raise ConfigError("no SENCA embedding on this section yet: run the model first")
    return np.asarray(adata.obsm[EMBED_KEY])


def cached_layout(adata: AnnData, method: str = "pca") -> np.ndarray | None:
    """The stored layout when it was computed from the current ``X_senca``, else None."""
    key = layout_key(method)
    info = adata.uns.get(UNS_KEY)
    sums = info.get("layouts") if isinstance(info, dict) else None
    if key not in adata.obsm or not isinstance(sums, dict) or EMBED_KEY not in adata.obsm:
        return None
    if str(sums.get(_method(method))) != _checksum(_embedding(adata)):
        return None
    xy = np.asarray(adata.obsm[key], dtype=np.float64)
    return xy if xy.shape == (adata.n_obs, 2) else None


def compute_layout_isolated(embedding: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """:func:`compute_layout`, UMAP in the session's helper process (:func:`napari_senca.isolated.call_isolated`).

    For a worker thread: umap-learn's kernels hold the GIL for seconds at a
    time, which would pause the viewer again and again; in another process
    they cannot.
    """
    if _method(method) != "umap":
        return compute_layout(embedding, method, seed)
    from .isolated import call_isolated

    return call_isolated(compute_layout, np.asarray(embedding), "umap", seed)


def compute_layout(embedding: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """``(n, 2)`` PCA scores or UMAP coordinates of ``embedding`` (no caching).

    Raises
    ------
    ConfigError
        UMAP asked for but umap-learn is not installed, or too few spots.
    """
    m = _method(method)
    z = np.asarray(embedding, dtype=np.float64)
    n = len(z)
    if m == "umap":
        if n < 15:
            raise ConfigError(f"UMAP needs at least 15 spots, the section has {n}: use PCA")
        try:
            import umap  # noqa: F401
        except ImportError:
            raise ConfigError("UMAP needs the umap-learn package (pip install umap-learn): use PCA") from None
        from .export.layout import embedding_2d

        return embedding_2d(z, seed=seed)[0]
    zc = z - z.mean(0)
    if n < 2 or zc.shape[1] == 0:
        return np.zeros((n, 2))
    _, vecs = np.linalg.eigh(zc.T @ zc)  # the (d, d) scatter matrix: 10x faster than an SVD of (n, d) at 500k
    vt = vecs[:, ::-1][:, :2].T  # (<=2, d) the leading principal axes
    pcs = zc @ vt.T  # (n, <=2) the scores, as u * s of the SVD
    signs = np.sign(vt.sum(1))  # deterministic orientation
    pcs = pcs * np.where(signs == 0, 1.0, signs)
    if pcs.shape[1] < 2:
        pcs = np.concatenate([pcs, np.zeros((n, 2 - pcs.shape[1]))], axis=1)
    return pcs


def store_layout(adata: AnnData, method: str, xy: np.ndarray, embedding: np.ndarray | None = None) -> None:
    """Cache a layout in ``obsm`` with the checksum of the embedding it came from."""
    m = _method(method)
    z = _embedding(adata) if embedding is None else embedding
    adata.obsm[layout_key(m)] = np.asarray(xy, dtype=np.float32)
    info = adata.uns.setdefault(UNS_KEY, {})
    if isinstance(info, dict):
        sums = dict(info.get("layouts") or {})
        sums[m] = _checksum(z)
        info["layouts"] = sums


def layout_2d(adata: AnnData, method: str = "pca", seed: int = 0) -> np.ndarray:
    """The cached 2-D layout of ``obsm["X_senca"]``, computed and stored when missing."""
    xy = cached_layout(adata, method)
    if xy is None:
        z = _embedding(adata)
        xy = compute_layout(z, method, seed)
        store_layout(adata, method, xy, z)
    return np.asarray(xy, dtype=np.float64)


def points_in_lasso(xy: np.ndarray, vertices: Sequence[Sequence[float]]) -> np.ndarray:
    """Sorted indices of the points of ``xy`` inside the polygon ``vertices`` (plot coordinates).

    The even-odd rule (as :meth:`matplotlib.path.Path.contains_points` for a
    simple polygon), computed edge by edge on the points sorted by height, so
    the cost grows with the points near each edge's height band rather than
    with points x vertices.

    Parameters
    ----------
    xy
        ``(n, 2)`` point coordinates.
    vertices
        ``(m, 2)`` polygon vertices (closed implicitly); fewer than three select nothing.

    Returns
    -------
    numpy.ndarray
        Sorted int64 indices.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or len(v) < 3:
        return np.zeros(0, dtype=np.int64)
    p = np.asarray(xy, dtype=np.float64)[:, :2]
    cand = np.flatnonzero(np.all((p >= v[:, :2].min(0)) & (p <= v[:, :2].max(0)), axis=1))
    return cand[_even_odd(p[cand], v[:, :2])].astype(np.int64)


def _even_odd(p: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside mask of points ``p`` for polygon ``v``: a ray to the right crosses an odd number of edges."""
    order = np.argsort(p[:, 1], kind="stable")
    ys, xs = p[order, 1], p[order, 0]
    inside = np.zeros(len(p), dtype=bool)
    edges = np.concatenate([v, np.roll(v, -1, axis=0)], axis=1).tolist()
    for x0, y0, x1, y1 in edges:
        if y0 == y1:
            continue
        i, j = np.searchsorted(ys, [min(y0, y1), max(y0, y1)], side="left")  # lo <= y < hi
        if i < j:
            cross = x0 + (ys[i:j] - y0) * ((x1 - x0) / (y1 - y0))
            inside[i:j] ^= xs[i:j] < cross
    out = np.zeros(len(p), dtype=bool)
    out[order] = inside
    return out


def points_in_rectangle(xy: np.ndarray, corner_a: Sequence[float], corner_b: Sequence[float]) -> np.ndarray:
    """Sorted indices of the points inside the axis-aligned rectangle of two corners."""
    p = np.asarray(xy, dtype=np.float64)[:, :2]
    lo = np.minimum(corner_a, corner_b)
    hi = np.maximum(corner_a, corner_b)
    return np.flatnonzero(np.all((p >= lo) & (p <= hi), axis=1))


def confidence_colours(confidence: np.ndarray, cmap: str = CONFIDENCE_CMAP) -> np.ndarray:
    """``(n, 4)`` RGBA of confidences in ``[0, 1]``; NaN in :data:`NAN_COLOUR`."""
    import matplotlib

    c = np.asarray(confidence, dtype=np.float64)
    rgba = np.asarray(matplotlib.colormaps[cmap](np.clip(np.nan_to_num(c, nan=0.0), 0.0, 1.0)), dtype=np.float64)
    rgba[np.isnan(c)] = NAN_COLOUR
    return rgba


def plot_sample(n: int, max_points: int = MAX_DRAWN, seed: int = 0) -> np.ndarray:
    """Indices of the points drawn in the scatter: all of them, or a random ``max_points`` (sorted).

    The sample depends only on ``n``, ``max_points`` and ``seed``, so the
    same section always shows the same points.
    """
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(max_points), replace=False)).astype(np.int64)


def selection_mask(n: int, selected: Any) -> np.ndarray:
    """Boolean mask of length ``n`` that is True at the ``selected`` indices (out-of-range ones dropped)."""
    idx = np.asarray(selected, dtype=np.int64).ravel()
    mask = np.zeros(int(n), dtype=bool)
    mask[idx[(idx >= 0) & (idx < n)]] = True
    return mask


@dataclass(eq=False)
class PlotPoints:
    """A 2-D layout as the plot shows it: every point for selections, a subsample for drawing.

    Parameters
    ----------
    xy
        ``(n, 2)`` layout of every spot (selections are computed on all of them).
    drawn
        Sorted indices of the points drawn in the scatter (see :func:`plot_sample`).
    """

    xy: np.ndarray
    drawn: np.ndarray

    @classmethod
    def of(cls, xy: np.ndarray, max_points: int | None = None, seed: int = 0) -> PlotPoints:
        """The layout ``xy`` with at most ``max_points`` (default :data:`MAX_DRAWN`) of its points drawn."""
        p = np.asarray(xy, dtype=np.float64)
        return cls(p, plot_sample(len(p), MAX_DRAWN if max_points is None else max_points, seed))

    @property
    def n(self) -> int:
        """Number of points (spots) in the layout."""
        return len(self.xy)

    @property
    def subsampled(self) -> bool:
        """True when fewer points are drawn than there are."""
        return len(self.drawn) < self.n

    def in_lasso(self, vertices: Sequence[Sequence[float]]) -> np.ndarray:
        """Indices of all the points inside a lasso (see :func:`points_in_lasso`)."""
        return points_in_lasso(self.xy, vertices)

    def in_rectangle(self, corner_a: Sequence[float], corner_b: Sequence[float]) -> np.ndarray:
        """Indices of all the points inside a rectangle (see :func:`points_in_rectangle`)."""
        return points_in_rectangle(self.xy, corner_a, corner_b)

    def colours(self, rgba: np.ndarray, selected: Any, faded: float = FADED_ALPHA) -> np.ndarray:
        """RGBA of the drawn points: ``rgba`` (one row per spot), the unselected faded while any is selected."""
        out = np.array(np.asarray(rgba, dtype=np.float64)[self.drawn], copy=True)
        mask = selection_mask(self.n, selected)
        if mask.any():  # something is selected, drawn or not: the rest fades
            out[:, 3] = np.where(mask[self.drawn], 1.0, faded)
        return out

    def ring(self, selected: Any, max_rings: int | None = None) -> np.ndarray:
        """``(k, 2)`` positions of the drawn points that are selected (ringed in the plot).

        Empty when more than ``max_rings`` (default :data:`MAX_RINGS`) would be
        ringed: rings would cover the colours, the opacity shows the selection.
        """
        ringed = self.drawn[selection_mask(self.n, selected)[self.drawn]]
        limit = MAX_RINGS if max_rings is None else max_rings
        return self.xy[ringed] if len(ringed) <= limit else np.zeros((0, 2))


@dataclass(eq=False)
class Splat:
    """Dense plots as an image: each drawn point is one pixel of an RGBA raster.

    A 30,000-point scatter takes Agg about 0.2 s to draw, the image about
    0.05 s; at that density a marker is about one pixel anyway. Where points
    share a pixel the most opaque is shown (a selection stays visible over
    faded points). Row 0 is the bottom (``imshow`` with ``origin="lower"`` and
    :attr:`extent`); points outside the extent (a zoomed view) are left out.
    """

    pix: np.ndarray  # (k,) flat pixel of every drawn point inside the extent
    inside: np.ndarray  # (k,) their indices among the drawn points
    shape: tuple[int, int]  # (height, width) in pixels
    extent: tuple[float, float, float, float]  # x0, x1, y0, y1 in layout units

    @classmethod
    def of(
        cls, xy: np.ndarray, width: int, height: int, margin: float = 0.03,
        extent: tuple[float, float, float, float] | None = None,
    ) -> Splat:
        """Pixels of the drawn layout ``xy`` (m, 2) on a ``width`` x ``height`` raster.

        ``extent`` ``(x0, x1, y0, y1)``: the view (default: the points with a ``margin`` around).
        """
        p = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if extent is None:
            lo, hi = (p.min(0), p.max(0)) if len(p) else (np.zeros(2), np.ones(2))
            pad = np.where(hi > lo, hi - lo, 1.0) * margin + (hi <= lo) * 0.5
            lo, hi = lo - pad, hi + pad
            extent = (lo[0], hi[0], lo[1], hi[1])
        splat = cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), (int(height), int(width)),
                    tuple(float(v) for v in extent))  # type: ignore[arg-type]  # fmt: skip
        pix, ok = splat.pixels(p)
        splat.pix, splat.inside = pix, np.flatnonzero(ok)
        return splat

    def pixels(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat pixel index of each point of ``xy`` (k, 2) inside the extent, and the inside mask (k,)."""
        h, w = self.shape
        x0, x1, y0, y1 = self.extent
        p = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        fx, fy = (p[:, 0] - x0) / (x1 - x0), (p[:, 1] - y0) / (y1 - y0)
        ok = (fx >= 0) & (fx <= 1) & (fy >= 0) & (fy <= 1)
        col = np.clip((fx[ok] * w).astype(np.int64), 0, w - 1)
        row = np.clip((fy[ok] * h).astype(np.int64), 0, h - 1)
        return row * w + col, ok

    def image(self, rgba: np.ndarray, ring: np.ndarray | None = None) -> np.ndarray:
        """``(height, width, 4)`` float image of the drawn points' ``rgba`` (m, 4); ``ring`` (k, 2) outlined in white."""
        h, w = self.shape
        out = np.zeros((h * w, 4))
        colours = np.asarray(rgba, dtype=np.float64)[self.inside]
        order = np.argsort(colours[:, 3], kind="stable")  # the most opaque painted last: it wins its pixel
        out[self.pix[order]] = colours[order]
        if ring is not None and len(ring):
            centre, _ = self.pixels(ring)
            r, c = np.divmod(centre, w)
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    if dr or dc:
                        out[np.clip(r + dr, 0, h - 1) * w + np.clip(c + dc, 0, w - 1)] = 1.0
            mine = np.isin(self.pix[order], centre)
            out[self.pix[order][mine]] = colours[order][mine]  # the ringed points themselves on top of their rings
        return out.reshape(h, w, 4)


def region_colours(state: Any) -> np.ndarray:
    """``(n_spots, 4)`` RGBA of each spot's region (a look-up by cluster code; grey without a region).

    ``state`` is a :class:`~napari_senca.review.ReviewState` with a result.
    """
    from .review.layers import cluster_rgba

    return cluster_rgba(state)
