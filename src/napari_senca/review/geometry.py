"""Which spots lie inside shapes drawn in napari (lasso, polygon, rectangle, ellipse)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["spots_in_shapes"]


def _shape_outline(vertices: np.ndarray, shape_type: str) -> np.ndarray | None:
    v = np.asarray(vertices, dtype=np.float64)[:, -2:]
    if shape_type == "ellipse" and len(v) == 4:
        # napari stores an ellipse as the four corners of its bounding box
        c = v.mean(0)
        a, b = (v[1] - v[0]) / 2.0, (v[3] - v[0]) / 2.0
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)[:, None]
        return c + np.cos(t) * a + np.sin(t) * b
    if shape_type in ("line", "path", "polyline") or len(v) < 3:
        return None
    return v


def spots_in_shapes(
    coords: np.ndarray, shapes: Sequence[np.ndarray], shape_types: Sequence[str] | None = None
) -> np.ndarray:
    """Indices of the spots whose centres lie inside any of the drawn shapes.

    Parameters
    ----------
    coords
        ``(n_spots, 2)`` spot centres, napari ``(row, col)``, in the same
        (world) coordinates as the shapes.
    shapes
        Vertex arrays of polygons, lasso polygons, rectangles or ellipses
        (lines and paths enclose nothing and are ignored).
    shape_types
        napari shape type of each entry (default: polygon).

    Returns
    -------
    numpy.ndarray
        Sorted spot indices.
    """
    from matplotlib.path import Path as MplPath

    pts = np.asarray(coords, dtype=np.float64)[:, -2:]
    inside = np.zeros(len(pts), dtype=bool)
    types = list(shape_types) if shape_types is not None else ["polygon"] * len(shapes)
    for verts, kind in zip(shapes, types, strict=True):
        outline = _shape_outline(verts, kind)
        if outline is None:
            continue
        # only the spots in the shape's bounding box are tested (a lasso on 500,000 bins)
        lo, hi = outline.min(0), outline.max(0)
        cand = np.flatnonzero(((pts >= lo) & (pts <= hi)).all(1) & ~inside)
        if cand.size:
            inside[cand[MplPath(outline).contains_points(pts[cand])]] = True
    return np.flatnonzero(inside)
