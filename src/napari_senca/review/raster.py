"""Large square-grid sections (Visium HD) drawn as rasters: one pixel per bin.

A points layer with 500,000 markers is slow to draw and slower to recolour;
a napari ``Labels`` layer of the bin grid (label = region id + 1, colours
from the review through a direct colour map) redraws at once. Colouring by
a gene shows an RGBA ``Image`` of the same grid under the labels, which then
turn transparent; the selection is a second, outlined labels raster on top.
Layers are duck-typed (no napari import): the functions return layer-data
tuples and write the attributes of existing layers.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..section import LABEL_KEY, library_id
from .colours import PALETTE, PLAIN_COLOUR, SELECT_COLOUR, value_rgba
from .geometry import index_mask, polygon_mask, shape_outline
from .grid import Grid, square_grid
from .keys import UNLABELLED_NAME, default_name

if TYPE_CHECKING:
    from .state import ReviewState

__all__ = [
    "RASTER_MIN_SPOTS",
    "GRID_KEY",
    "raster_grid",
    "is_raster_layer",
    "label_values",
    "region_raster",
    "raster_colormap",
    "labels_layer_data",
    "apply_to_labels",
    "value_image",
    "value_layer_data",
    "selection_layer_data",
    "selected_bins",
    "select_bins",
    "watch_selection",
    "unwatch_selection",
    "show_rgba",
    "layer_world_coords",
    "bins_in_shapes",
    "painted_bins",
]

#: Sections with at least this many spots on a square grid are drawn as a raster
#: (the environment variable ``NAPARI_SENCA_RASTER_MIN_SPOTS`` overrides it; 0: every square grid).
RASTER_MIN_SPOTS = 50_000
RASTER_ENV = "NAPARI_SENCA_RASTER_MIN_SPOTS"
#: Layer ``metadata`` keys: the grid, the selected bins, the companion layers.
GRID_KEY = "senca_grid"
SELECTED_KEY = "senca_selected"
VALUE_LAYER_KEY = "senca_value_layer"
SELECTION_LAYER_KEY = "senca_selection_layer"
COLORMAP_KEY = "senca_colormap"
WRITING_KEY = "senca_writing"
WATCHERS_KEY = "senca_selection_watchers"


def raster_grid(adata: AnnData, min_spots: int | None = None) -> Grid | None:
    """The grid to draw ``adata`` as a raster, or None (points): square grid and at least ``min_spots`` spots."""
    if min_spots is not None:
        limit = int(min_spots)
    else:
        env = os.environ.get(RASTER_ENV, "").strip()
        limit = int(env) if env.isdigit() else RASTER_MIN_SPOTS
    if adata.n_obs < limit:
        return None
    return square_grid(adata)


def is_raster_layer(layer: Any) -> bool:
    """True for a labels layer made by :func:`labels_layer_data` (it holds a :class:`Grid`)."""
    md = getattr(layer, "metadata", None) or {}
    return type(layer).__name__ == "Labels" and isinstance(md.get(GRID_KEY), Grid)


# ----------------------------------------------------------------- label values and colours
def label_values(state: ReviewState) -> tuple[np.ndarray, list[str], list[str]]:
    """Label value of every spot (0: none), with the name and colour of each value 1..

    After a run the value of a region is its id + 1 when all ids are numbers
    (stable across edits), else its position + 1; before a run the
    pathologist labels are numbered 1.., and without them every spot is 1.
    Returns ``(per-spot values, names, colours)``; ``names[v - 1]`` is the name of value v.
    """
    from .layers import label_categories, label_cycle

    n = state.n_spots
    if state.has_result:
        ids = state.clusters
        codes = state.codes()
        lut = region_values(state)
        top = int(lut.max(initial=0))
        names, colours = [""] * top, ["#00000000"] * top
        for i, c in enumerate(ids):
            names[lut[i] - 1] = state.names.get(c, default_name(c))
            colours[lut[i] - 1] = "#00000000" if c in state.hidden else state.colours.get(c, PALETTE[0])
        return lut[codes], names, colours
    if LABEL_KEY in state.adata.obs:
        cats = label_categories(state.adata)
        cyc = label_cycle(state)
        lab = state.adata.obs[LABEL_KEY]
        s = lab.astype(str).where(lab.notna(), UNLABELLED_NAME)
        codes = pd.Categorical(s, categories=cats).codes.astype(np.int64)
        return codes + 1, cats, [cyc[c] for c in cats]
    return np.ones(n, dtype=np.int64), ["spots"], [PLAIN_COLOUR]


def region_values(state: ReviewState) -> np.ndarray:
    """Label value of each cluster code (in :attr:`ReviewState.clusters` order), then 0 for code -1.

    The id + 1 when every id is a number (stable across edits), else the position + 1.
    """
    nums = [int(c) if c.isdigit() else -1 for c in state.clusters]
    if min(nums, default=0) >= 0 and max(nums, default=0) < 65_000:
        return np.asarray([v + 1 for v in nums] + [0], dtype=np.int64)
    lut = np.arange(1, len(nums) + 2, dtype=np.int64)
    lut[-1] = 0
    return lut


def _dtype(top: int) -> type:
    return np.uint8 if top < 256 else np.uint16 if top < 65_536 else np.int32


def region_raster(state: ReviewState, grid: Grid) -> np.ndarray:
    """``(H, W)`` label raster of the section (0 outside the tissue)."""
    vals, names, _ = label_values(state)
    return grid.paint(vals, 0, _dtype(len(names)))


def raster_colormap(state: ReviewState, transparent: bool = False) -> dict[Any, Any]:
    """Label value -> colour for napari's ``DirectLabelColormap`` (all transparent with ``transparent``)."""
    _, _, colours = label_values(state)
    clear = "#00000000"
    cmap: dict[Any, Any] = {None: clear, 0: clear}
    for v, c in enumerate(colours, start=1):
        cmap[v] = clear if transparent else c
    return cmap


def raster_features(state: ReviewState) -> pd.DataFrame:
    """One row per label value: ``index`` (the value), ``region`` and ``n_spots`` (shown on hover)."""
    vals, names, _ = label_values(state)
    counts = np.bincount(vals, minlength=len(names) + 1)[1:]
    keep = [i for i, nm in enumerate(names) if nm]
    return pd.DataFrame(
        {"index": [i + 1 for i in keep], "region": [names[i] for i in keep], "n_spots": counts[keep].astype(np.int64)}
    )


# ----------------------------------------------------------------- layers
def _placement(grid: Grid) -> dict[str, Any]:
    return {"scale": tuple(grid.scale), "rotate": grid.rotate.copy(), "translate": tuple(grid.translate)}


def labels_layer_data(state: ReviewState, grid: Grid, name: str) -> tuple[Any, dict[str, Any], str]:
    """The section as a napari labels layer-data tuple (one pixel per bin, on the H&E)."""
    from .layers import metadata

    md = metadata(state)
    md[GRID_KEY] = grid
    md[COLORMAP_KEY] = cmap = raster_colormap(state, transparent=state.colour_by is not None)
    kw = {
        "name": name,
        "colormap": cmap,
        "features": raster_features(state),
        "opacity": 0.8,
        "metadata": md,
        **_placement(grid),
    }
    return region_raster(state, grid), kw, "labels"


def _same_placement(dst: Any, src: Any) -> None:
    """Give a companion layer the placement of the section's raster (only what differs: each set redraws)."""
    for attr in ("scale", "rotate", "translate"):
        want = np.asarray(getattr(src, attr))
        if not np.array_equal(np.asarray(getattr(dst, attr)), want):
            setattr(dst, attr, want.copy())


def apply_to_labels(state: ReviewState, layer: Any) -> None:
    """Write regions, colours, features and metadata to a raster labels layer and its companions."""
    from .layers import metadata

    grid: Grid = layer.metadata[GRID_KEY]
    layer.metadata.update(metadata(state))
    _write_raster(layer, region_raster(state, grid))
    layer.features = raster_features(state)
    cmap = raster_colormap(state, transparent=state.colour_by is not None)
    if cmap != layer.metadata.get(COLORMAP_KEY):  # setting a colour map re-maps the whole raster
        layer.colormap = cmap
        layer.metadata[COLORMAP_KEY] = cmap
    values = layer.metadata.get(VALUE_LAYER_KEY)
    if values is not None:
        if state.colour_by is not None:
            values.data = value_image(state, grid)
            _same_placement(values, layer)
        if values.visible != (state.colour_by is not None):
            values.visible = state.colour_by is not None


def _write_raster(layer: Any, data: np.ndarray) -> None:
    """Put a new raster in the layer; when few pixels changed only those (napari redraws their box)."""
    old = getattr(layer, "data", None)
    if not (isinstance(old, np.ndarray) and old.shape == data.shape and old.dtype == data.dtype):
        layer.data = data
        return
    diff = np.flatnonzero(old.ravel() != data.ravel())
    if diff.size == 0:
        return
    if diff.size > old.size // 3 or not hasattr(layer, "data_setitem"):
        layer.data = data
        return
    layer.metadata[WRITING_KEY] = True  # data_setitem emits napari's paint event: not a brush stroke
    try:
        layer.data_setitem(np.unravel_index(diff, old.shape), data.ravel()[diff])
    finally:
        layer.metadata[WRITING_KEY] = False
        for name in ("_undo_history", "_redo_history"):  # the review's Undo is the one that stays in sync
            hist = getattr(layer, name, None)
            if hasattr(hist, "clear"):
                hist.clear()


def value_image(state: ReviewState, grid: Grid) -> np.ndarray:
    """``(H, W, 4)`` RGBA raster of the value the section is coloured by (transparent outside the tissue)."""
    v = state.values()
    lo, hi = state.gene_limits()
    rgba = (value_rgba((v - lo) / (hi - lo)) * 255).astype(np.uint8)
    rgba[~state.shown_mask(), 3] = 0
    return grid.paint(rgba, 0, np.uint8)


def value_layer_data(state: ReviewState, layer: Any) -> tuple[Any, dict[str, Any], str]:
    """Image layer-data tuple of :func:`value_image` placed like the labels ``layer`` (hidden and
    empty while the section is coloured by region)."""
    grid: Grid = layer.metadata[GRID_KEY]
    shown = state.colour_by is not None
    data = value_image(state, grid) if shown else np.zeros((*grid.shape, 4), dtype=np.uint8)
    kw = {
        "name": f"{layer.name} values",
        "rgb": True,
        "scale": tuple(np.asarray(layer.scale)),
        "rotate": np.asarray(layer.rotate).copy(),
        "translate": tuple(np.asarray(layer.translate)),
        "visible": shown,
        "metadata": {"senca_values_of": layer.name, "senca_library_id": library_id(state.adata)},
    }
    return data, kw, "image"


# ----------------------------------------------------------------- selection
def selected_bins(layer: Any) -> np.ndarray:
    """Indices of the bins selected on a raster layer (sorted)."""
    sel = (getattr(layer, "metadata", None) or {}).get(SELECTED_KEY)
    return np.zeros(0, dtype=np.int64) if sel is None else np.asarray(sel, dtype=np.int64)


def selection_mask(grid: Grid, idx: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 raster: 1 on the outline of the selected bins (those with an unselected 4-neighbour)."""
    sel = np.zeros((grid.shape[0] + 2, grid.shape[1] + 2), dtype=bool)
    sel[grid.rows[idx] + 1, grid.cols[idx] + 1] = True
    inner = sel[1:-1, 1:-1] & sel[:-2, 1:-1] & sel[2:, 1:-1] & sel[1:-1, :-2] & sel[1:-1, 2:]
    return (sel[1:-1, 1:-1] & ~inner).astype(np.uint8)


def select_bins(layer: Any, idx: Any, n_spots: int | None = None) -> np.ndarray:
    """Select bins on a raster layer (stored in its metadata, drawn by its selection layer)."""
    arr = np.asarray(list(idx) if not isinstance(idx, np.ndarray) else idx, dtype=np.int64)
    sel = index_mask(arr, layer.metadata[GRID_KEY].n_bins if n_spots is None else n_spots)
    layer.metadata[SELECTED_KEY] = sel
    overlay = layer.metadata.get(SELECTION_LAYER_KEY)
    if overlay is not None:
        overlay.data = selection_mask(layer.metadata[GRID_KEY], sel)
        _same_placement(overlay, layer)
        if overlay.visible != bool(sel.size):
            overlay.visible = bool(sel.size)
    for callback in list(layer.metadata.get(WATCHERS_KEY, ())):
        callback()
    return sel


def watch_selection(layer: Any, callback: Any) -> None:
    """Call ``callback()`` after every change of a raster layer's selection (:func:`select_bins`).

    A raster has no napari selection event (its selection lives in the
    metadata), so the watchers are kept there too.
    """
    watchers = layer.metadata.setdefault(WATCHERS_KEY, [])
    if callback not in watchers:
        watchers.append(callback)


def unwatch_selection(layer: Any, callback: Any) -> None:
    """Stop calling ``callback`` on selection changes of a raster layer."""
    watchers = (getattr(layer, "metadata", None) or {}).get(WATCHERS_KEY, [])
    if callback in watchers:
        watchers.remove(callback)


def show_rgba(state: ReviewState, layer: Any, rgba: np.ndarray) -> None:
    """Colour the bins of a raster layer with one RGBA (floats in 0..1) per spot.

    The colours go to the layer's value image (which must exist: see
    :func:`value_layer_data`) and the labels turn transparent, as when
    colouring by a gene; spots of hidden regions stay transparent. The next
    :func:`apply_to_labels` (any review edit) puts the review's colours back.
    """
    values = layer.metadata.get(VALUE_LAYER_KEY)
    if values is None:
        raise ValueError("the raster has no value image yet: add it first (value_layer_data)")
    grid: Grid = layer.metadata[GRID_KEY]
    img = (np.clip(np.asarray(rgba, dtype=np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
    img[~state.shown_mask(), 3] = 0
    values.data = grid.paint(img, 0, np.uint8)
    _same_placement(values, layer)
    if not values.visible:
        values.visible = True
    cmap = raster_colormap(state, transparent=True)
    if cmap != layer.metadata.get(COLORMAP_KEY):
        layer.colormap = cmap
        layer.metadata[COLORMAP_KEY] = cmap


def selection_layer_data(layer: Any) -> tuple[Any, dict[str, Any], str]:
    """Labels layer-data tuple drawing the outline of the selected bins in magenta over ``layer``."""
    grid: Grid = layer.metadata[GRID_KEY]
    kw = {
        "name": f"{layer.name} selection",
        "colormap": {None: "#00000000", 0: "#00000000", 1: SELECT_COLOUR},
        "opacity": 1.0,
        "visible": bool(selected_bins(layer).size),
        "scale": tuple(np.asarray(layer.scale)),
        "rotate": np.asarray(layer.rotate).copy(),
        "translate": tuple(np.asarray(layer.translate)),
        "metadata": {"senca_selection_of": layer.name},
    }
    return selection_mask(grid, selected_bins(layer)), kw, "labels"


def layer_world_coords(layer: Any) -> np.ndarray:
    """Spot centres of a section layer (points or raster) in world ``(row, col)``, vectorised."""
    if is_raster_layer(layer):
        g: Grid = layer.metadata[GRID_KEY]
        data = np.stack([g.rows, g.cols], 1).astype(np.float64)
    else:
        data = np.asarray(layer.data, dtype=np.float64)
    try:
        return np.asarray(layer._transforms[1:].simplified(data))[:, -2:]
    except (AttributeError, TypeError, ValueError, IndexError):  # an older napari: one point at a time
        return np.asarray([layer.data_to_world(p) for p in data])[:, -2:]



def bins_in_shapes(layer: Any, shapes: list[np.ndarray], shape_types: list[str]) -> np.ndarray:
    """Bins of a raster layer whose centres lie inside drawn shapes (world vertices), sorted.

    Each shape is mapped into the raster's pixel grid and filled there
    (:func:`.geometry.polygon_mask`), so the cost does not grow with
    bins x vertices.
    """
    grid: Grid = layer.metadata[GRID_KEY]
    inv = layer._transforms[1:].simplified.inverse
    mask = np.zeros(grid.shape, dtype=bool)
    for verts, kind in zip(shapes, shape_types, strict=True):
        outline = shape_outline(np.asarray(verts)[:, -2:], kind)
        if outline is not None:
            mask |= polygon_mask(np.asarray(inv(outline))[:, -2:], grid.shape)
    idx = grid.index()[mask]
    return np.sort(idx[idx >= 0]).astype(np.int64)


def painted_bins(state: ReviewState, layer: Any) -> dict[str, np.ndarray]:
    """Bins painted on a raster layer since the review last wrote it, by target region.

    Returns region id (or ``""`` for a label value no region has: a new
    region) -> bin indices. Pixels outside the tissue and erased bins (label
    0) are not edits; the next :func:`apply_to_labels` puts them back.
    """
    grid: Grid = layer.metadata[GRID_KEY]
    want, _, _ = label_values(state)
    now = np.asarray(layer.data)[grid.rows, grid.cols].astype(np.int64)
    changed = np.flatnonzero((now != want) & (now > 0))
    if not changed.size:
        return {}
    by_value = {int(v): c for c, v in enumerate(region_values(state)[:-1])} if state.has_result else {}
    out: dict[str, np.ndarray] = {}
    for v in np.unique(now[changed]):
        code = by_value.get(int(v))
        key = state.clusters[code] if code is not None else ""
        out[key] = np.concatenate([out.get(key, np.zeros(0, np.int64)), changed[now[changed] == v]])
    return out
