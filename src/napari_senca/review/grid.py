"""Square bin grids (Visium HD): find the grid of a section and map bins to raster pixels.

A section whose spots lie on a square lattice (Visium HD bins; not the
hexagonal standard Visium grid) can be drawn as an image with one pixel per
bin. :func:`square_grid` finds that lattice from ``obs["array_row"]`` /
``obs["array_col"]`` or, without them, from ``obsm["spatial"]`` alone, and
returns the pixel of every bin and the transform from raster pixels to the
full-resolution pixels of ``obsm["spatial"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from anndata import AnnData

__all__ = ["Grid", "square_grid", "MAX_RASTER_PIXELS"]

#: Largest raster drawn (rows x columns of the grid's bounding box).
MAX_RASTER_PIXELS = 64_000_000


@dataclass(eq=False)
class Grid:
    """A square grid: raster pixel of every bin and the raster -> full-res transform.

    ``world = translate + rotate @ (scale * (row, col))`` gives a bin's centre as
    napari ``(y, x)`` full-resolution pixels (the layer's ``scale``, ``rotate``
    and ``translate``).
    """

    rows: np.ndarray
    cols: np.ndarray
    shape: tuple[int, int]
    scale: np.ndarray
    rotate: np.ndarray
    translate: np.ndarray
    _index: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_bins(self) -> int:
        """Number of bins (spots) on the grid."""
        return int(self.rows.size)

    @property
    def spacing(self) -> float:
        """Distance between neighbouring bins in full-resolution pixels."""
        return float(np.abs(self.scale).mean())

    def index(self) -> np.ndarray:
        """``(H, W)`` raster of bin indices (-1 where there is no bin), cached."""
        if self._index is None:
            idx = np.full(self.shape, -1, dtype=np.int32 if self.n_bins < 2**31 else np.int64)
            idx[self.rows, self.cols] = np.arange(self.n_bins)
            self._index = idx
        return self._index

    def paint(self, values: np.ndarray, background: float | int = 0, dtype: np.dtype | None = None) -> np.ndarray:
        """An ``(H, W[, C])`` raster with ``values[i]`` at bin ``i`` and ``background`` elsewhere."""
        v = np.asarray(values)
        out = np.full(self.shape + v.shape[1:], background, dtype=dtype or v.dtype)
        out[self.rows, self.cols] = v
        return out

    def to_world(self, rc: np.ndarray) -> np.ndarray:
        """Raster ``(row, col)`` -> full-res ``(y, x)`` (both ``(n, 2)``)."""
        return np.asarray(rc, dtype=np.float64) * self.scale @ self.rotate.T + self.translate

    def to_raster(self, yx: np.ndarray) -> np.ndarray:
        """Full-res ``(y, x)`` -> raster ``(row, col)`` (fractional)."""
        return (np.asarray(yx, dtype=np.float64) - self.translate) @ self.rotate / self.scale


def square_grid(adata: AnnData, tol: float = 0.2) -> Grid | None:
    """The square grid of a section, or None when its spots are not on one.

    Parameters
    ----------
    adata
        The section (``obsm["spatial"]``; ``obs["array_row"]``/``["array_col"]`` when present).
    tol
        Largest distance of a spot from its grid position, in bin spacings.

    Returns
    -------
    Grid or None
        None for hexagonal grids (standard Visium), irregular positions, two
        spots on one grid cell, or a raster larger than :data:`MAX_RASTER_PIXELS`.
    """
    if "spatial" not in adata.obsm or adata.n_obs < 4:
        return None
    yx = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, 1::-1]
    if not np.isfinite(yx).all():
        return None
    rc = _array_indices(adata)
    grid = None if rc is None else _fit(rc[:, 0], rc[:, 1], yx, tol)
    if grid is None:  # no array columns, or ones that do not follow the positions
        rc = _infer_indices(yx, tol)
        grid = None if rc is None else _fit(rc[:, 0], rc[:, 1], yx, tol)
    return grid


def _array_indices(adata: AnnData) -> np.ndarray | None:
    obs = adata.obs
    if "array_row" not in obs or "array_col" not in obs:
        return None
    try:
        rc = np.stack([np.asarray(obs["array_row"], dtype=np.float64), np.asarray(obs["array_col"], dtype=np.float64)], 1)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(rc).all() or not np.array_equal(rc, np.round(rc)):
        return None
    return (rc - rc.min(0)).astype(np.int64)


def _infer_indices(yx: np.ndarray, tol: float) -> np.ndarray | None:
    """Grid indices from positions alone: spacing and angle from nearest neighbours."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)
    sample = rng.choice(len(yx), size=min(len(yx), 5000), replace=False)
    dist, nn = cKDTree(yx).query(yx[sample], k=2)
    step = float(np.median(dist[:, 1]))
    if not step > 0:
        return None
    v = yx[nn[:, 1]] - yx[sample]
    theta = float(np.angle(np.exp(4j * np.arctan2(v[:, 0], v[:, 1])).mean())) / 4.0
    c, s = np.cos(theta), np.sin(theta)
    # rotate by -theta: the lattice becomes axis-aligned
    u = np.stack([c * yx[:, 0] - s * yx[:, 1], s * yx[:, 0] + c * yx[:, 1]], 1) / step
    u -= u.min(0)
    rc = np.round(u)
    if np.abs(u - rc).max() > tol:
        return None
    return rc.astype(np.int64)


def _fit(rows: np.ndarray, cols: np.ndarray, yx: np.ndarray, tol: float) -> Grid | None:
    """Least-squares raster -> full-res transform; None unless square, exact and one bin per cell."""
    shape = (int(rows.max()) + 1, int(cols.max()) + 1)
    if shape[0] * shape[1] > MAX_RASTER_PIXELS:
        return None
    flat = rows * shape[1] + cols
    seen = np.zeros(shape[0] * shape[1], dtype=bool)  # at most 64 MB; np.unique sorted: 0.5 s at 500,000 bins
    seen[flat] = True
    if int(np.count_nonzero(seen)) != flat.size:
        return None  # two spots on one cell: not a grid of bins
    a = np.stack([rows, cols, np.ones_like(rows)], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, yx, rcond=None)
    lin, t = coef[:2].T, coef[2]  # lin[:, 0]: step along rows, lin[:, 1]: along cols
    n0, n1 = np.linalg.norm(lin[:, 0]), np.linalg.norm(lin[:, 1])
    if not (n0 > 0 and n1 > 0) or abs(n0 / n1 - 1) > 0.05:
        return None  # hexagonal (standard Visium) or stretched
    if abs(float(lin[:, 0] @ lin[:, 1])) / (n0 * n1) > 0.05:
        return None
    if np.abs(a @ coef - yx).max() > tol * (n0 + n1) / 2:
        return None
    u0, u1 = lin[:, 0] / n0, lin[:, 1] / n1
    s1 = n1
    if np.linalg.det(np.stack([u0, u1], 1)) < 0:
        u1, s1 = -u1, -n1  # a mirrored grid: negative column scale, proper rotation
    # nearest rotation matrix (polar decomposition)
    w, _, vt = np.linalg.svd(np.stack([u0, u1], 1))
    rot = w @ vt
    return Grid(
        rows=rows.astype(np.int32),
        cols=cols.astype(np.int32),
        shape=shape,
        scale=np.array([n0, s1]),
        rotate=rot,
        translate=np.asarray(t, dtype=np.float64),
    )
