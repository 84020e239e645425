"""The section layers of a viewer: which layers are sections, adding one, and placing them side by side.

Placing only changes the layers' ``translate``: the data, the AnnData and
every export stay in each section's own pixel coordinates.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..review import REVIEW_KEY, ReviewState, section_layer_data

__all__ = [
    "is_section_layer",
    "section_layers",
    "add_section",
    "place_section",
    "place_on_insert",
    "tile_sections",
    "section_groups",
]

log = logging.getLogger("napari_senca")


def is_section_layer(layer: Any) -> bool:
    """True for a points layer or a labels raster made by napari-senca (it holds an AnnData)."""
    from anndata import AnnData

    from ..review import is_raster_layer

    md = getattr(layer, "metadata", None) or {}
    return (type(layer).__name__ == "Points" or is_raster_layer(layer)) and isinstance(md.get("adata"), AnnData)


def section_layers(viewer: Any) -> list[Any]:
    """The section layers of a viewer (points or rasters), in layer-list order."""
    return [ly for ly in viewer.layers if is_section_layer(ly)]


def add_section(viewer: Any, adata: Any, name: str | None = None) -> Any:
    """Add a section's H&E and spots to ``viewer`` beside the sections already
    there (see :func:`place_section`); returns the spots layer (points, or a
    labels raster for a large square-grid section)."""
    points = None
    added = []
    for data, kw, ltype in section_layer_data(adata, name):
        layer = getattr(viewer, f"add_{ltype}")(data, **kw)
        added.append(layer)
        if ltype in ("points", "labels"):
            points = layer
    place_section(viewer, added)
    if points is not None:
        # the state object created by the layer-data function is reused
        points.metadata.setdefault(REVIEW_KEY, ReviewState.from_layer(points))
        viewer.layers.selection.active = points
    viewer.reset_view()
    return points


PLACED_KEY = "senca_placed"
#: gap between two sections, as a fraction of the wider one's width
SECTION_GAP = 0.05


def _world_box(layers: list[Any]) -> np.ndarray | None:
    """``[[row_min, col_min], [row_max, col_max]]`` of the layers in world coordinates."""
    boxes = [np.asarray(ly.extent.world, dtype=np.float64)[:, -2:] for ly in layers if len(ly.data)]
    if not boxes:
        return None
    return np.array([np.min([b[0] for b in boxes], 0), np.max([b[1] for b in boxes], 0)])


def place_section(viewer: Any, layers: list[Any]) -> None:
    """Translate a new section's layers (H&E and spots together) to the right
    of the sections already placed in ``viewer``, tops aligned, with a gap.

    Only the layers' ``translate`` changes: the data, the AnnData and every
    export stay in the section's own pixel coordinates. Layers already placed
    are left alone, so calling this twice does nothing more. The first section
    (or one added when no other section is open) stays where it is.
    """
    new = [ly for ly in layers if ly in viewer.layers and not ly.metadata.get(PLACED_KEY)]
    if not new:
        return
    others = [
        part
        for pts in section_layers(viewer)
        if pts.metadata.get(PLACED_KEY) and pts not in new
        for part in _section_partner(viewer, pts)
    ]  # sections still open: an H&E whose spots were removed does not count
    old_box, new_box = _world_box(others), _world_box(new)
    if old_box is not None and new_box is not None:
        width = max(old_box[1, 1] - old_box[0, 1], new_box[1, 1] - new_box[0, 1])
        shift = np.array([old_box[0, 0] - new_box[0, 0], old_box[1, 1] + SECTION_GAP * width - new_box[0, 1]])
        for ly in new:
            t = np.asarray(ly.translate, dtype=np.float64).copy()
            t[-2:] += shift
            ly.translate = t
    for ly in new:
        ly.metadata[PLACED_KEY] = True


def _section_partner(viewer: Any, points: Any) -> list[Any]:
    """The points layer of a section and its H&E layer (the image layer of the
    same section inserted just before it, as the reader adds them)."""
    layers = list(viewer.layers)
    i = layers.index(points)
    lib = points.metadata.get("senca_library_id")
    if i > 0:
        prev = layers[i - 1]
        md = prev.metadata or {}
        if type(prev).__name__ == "Image" and "senca_scalef" in md and md.get("senca_library_id") == lib:
            return [prev, points]
    return [points]


def section_groups(viewer: Any) -> list[list[Any]]:
    """The open sections as ``[H&E layer, spots layer]`` (or ``[spots layer]``), in layer order."""
    return [_section_partner(viewer, pts) for pts in section_layers(viewer)]


def tile_sections(viewer: Any, columns: int | None = None) -> int:
    """Arrange every open section in a grid (default ``ceil(sqrt(n))`` columns), tops and lefts aligned.

    Like :func:`place_section`, only the layers' ``translate`` changes (data and
    exports stay in each section's own pixels). Each column is as wide as its
    widest section and each row as tall as its tallest, with a gap of
    :data:`SECTION_GAP` of the widest section between cells. Returns the number of sections.
    """
    groups = [g for g in section_groups(viewer) if _world_box(g) is not None]
    n = len(groups)
    if not n:
        return 0
    cols = max(1, min(n, columns or int(np.ceil(np.sqrt(n)))))
    boxes = [_world_box(g) for g in groups]
    sizes = np.array([b[1] - b[0] for b in boxes])  # (n, 2) rows, cols
    gap = SECTION_GAP * float(sizes[:, 1].max())
    n_rows = (n + cols - 1) // cols
    heights = [float(sizes[r * cols : (r + 1) * cols, 0].max()) for r in range(n_rows)]
    widths = [float(sizes[c::cols, 1].max()) for c in range(cols)]
    top0, left0 = boxes[0][0]
    for i, (g, b) in enumerate(zip(groups, boxes, strict=True)):
        r, c = divmod(i, cols)
        target = np.array([top0 + sum(heights[:r]) + r * gap, left0 + sum(widths[:c]) + c * gap])
        shift = target - b[0]
        for ly in g:
            t = np.asarray(ly.translate, dtype=np.float64).copy()
            t[-2:] += shift
            ly.translate = t
            ly.metadata[PLACED_KEY] = True
    return n


def place_on_insert(viewer: Any) -> None:
    """Place every section added to ``viewer`` from now on (also by File > Open)
    beside the others, and the sections already there side by side.

    Connected once per viewer, by the first napari-senca widget.
    """
    layers = viewer.layers
    if getattr(layers, "_senca_placing", False):
        return
    layers._senca_placing = True

    def on_inserted(event: Any) -> None:
        layer = getattr(event, "value", None)
        if layer is not None and is_section_layer(layer) and not layer.metadata.get(PLACED_KEY):
            try:
                place_section(viewer, _section_partner(viewer, layer))
            except Exception as exc:  # never block adding a layer
                log.warning("napari-senca: could not place %s beside the other sections: %s", layer.name, exc)

    layers.events.inserted.connect(on_inserted)
    for ly in section_layers(viewer):
        place_section(viewer, _section_partner(viewer, ly))
