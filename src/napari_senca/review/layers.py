"""Describe a review state as napari layers: points ``features``, colours, kwargs.

The layer-data tuples a reader returns for a section are in :mod:`.layer_data`.

Layers are duck-typed (no napari import): the functions read and write the
attributes of a ``napari.layers.Points`` (``data``, ``features``,
``face_color`` ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..confidence import CONFIDENCE_KEY
from ..errors import DataError
from ..section import (
    LABEL_KEY,
    library_id,
    spot_diameter,
)
from .colours import (
    BORDER_COLOUR,
    BORDER_WIDTH,
    PALETTE,
    PLAIN_COLOUR,
    selection_borders,
    to_hex,
    value_colormap,
    value_rgba,
)
from .keys import EXPRESSION_KEY, REGION_KEY, REVIEW_KEY, UNLABELLED_NAME, default_name

if TYPE_CHECKING:
    from .state import ReviewState

__all__ = [
    "check_layer_matches",
    "spot_coordinates",
    "layer_changes",
    "describe_changes",
    "restore_layer",
    "label_values",
    "label_categories",
    "colour_column",
    "colour_cycle",
    "label_cycle",
    "spot_colours",
    "features",
    "metadata",
    "layer_kwargs",
    "apply_to_layer",
    "one_redraw",
    "state_from_layer",
    "apply_visibility",
    "apply_borders",
    "section_name",
]


def spot_coordinates(adata: AnnData) -> np.ndarray:
    """Spot centres as napari ``(row, col)`` = ``(y, x)`` full-res pixels."""
    return np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, 1::-1].copy()


def layer_changes(adata: AnnData, data: np.ndarray, tol: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Points of a layer that are not spots, and spots the layer no longer has.

    Parameters
    ----------
    adata
        The section.
    data
        The points layer's ``data`` (``(n, 2)`` row, col; last two columns used).
    tol
        Distance (pixels) within which a point counts as its spot.

    Returns
    -------
    added, missing
        Indices into ``data`` of points matching no spot (added or moved), and
        indices of spots no point matches (deleted or moved).
    """
    from scipy.spatial import cKDTree

    spots = spot_coordinates(adata)
    pts = np.asarray(data, dtype=np.float64)
    if pts.ndim != 2 or len(pts) == 0:
        return np.zeros(0, dtype=np.int64), np.arange(len(spots))
    dist, nearest = cKDTree(spots).query(pts[:, -2:], distance_upper_bound=tol)
    added = np.flatnonzero(~np.isfinite(dist))
    matched = np.zeros(len(spots), dtype=bool)
    matched[nearest[np.isfinite(dist)]] = True
    return added, np.flatnonzero(~matched)


def describe_changes(layer: Any, adata: AnnData) -> str | None:
    """One line on how a points layer differs from its section's spots (None: it matches)."""
    from .raster import is_raster_layer

    if is_raster_layer(layer):
        return None
    data = np.asarray(getattr(layer, "data", np.zeros((0, 2))))
    if len(data) == adata.n_obs and np.allclose(data[:, -2:], spot_coordinates(adata), atol=0.5):
        return None
    added, missing = layer_changes(adata, data)
    parts = []
    if added.size:
        parts.append(f"{added.size} point(s) added or moved")
    if missing.size:
        parts.append(f"{missing.size} spot(s) deleted or moved")
    return f"layer {getattr(layer, 'name', '?')!r}: " + (", ".join(parts) or "points changed")


def restore_layer(layer: Any, adata: AnnData) -> tuple[int, int]:
    """Put the spots back: drop added points, restore deleted or moved ones.

    Returns the number of added points dropped and of spots restored. Call
    :meth:`ReviewState.apply_to_layer` afterwards for colours and features.
    """
    added, missing = layer_changes(adata, np.asarray(layer.data))
    layer.selected_data = set()
    layer.data = spot_coordinates(adata)
    return int(added.size), int(missing.size)


def check_layer_matches(layer: Any, adata: AnnData) -> None:
    """Raise :class:`DataError` when a points layer no longer has one point per spot."""
    from .raster import GRID_KEY, is_raster_layer

    if is_raster_layer(layer):
        grid = layer.metadata[GRID_KEY]
        if grid.n_bins != adata.n_obs or tuple(np.shape(layer.data)) != grid.shape:
            raise DataError(None, f"layer {getattr(layer, 'name', '?')!r} no longer matches its section: reload it")
        return
    n = len(getattr(layer, "data", []))
    if n != adata.n_obs:
        raise DataError(
            None,
            f"layer {getattr(layer, 'name', '?')!r} has {n} points but its section has {adata.n_obs} spots "
            "(points were added or deleted): press 'Restore spots' in the Review widget",
        )


# ----------------------------------------------------------------- pathologist labels
def label_values(adata: AnnData) -> list[str]:
    """``obs["label"]`` as strings, missing values as ``"unlabelled"``."""
    lab = adata.obs[LABEL_KEY]
    return [UNLABELLED_NAME if pd.isna(v) else str(v) for v in lab]


def label_categories(adata: AnnData) -> list[str]:
    """Categories of ``obs["label"]`` (plus ``"unlabelled"`` when some spots have none)."""
    lab = adata.obs[LABEL_KEY]
    if isinstance(lab.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in lab.cat.categories]
    else:
        cats = [str(c) for c in pd.unique(lab.dropna())]
    if lab.isna().any() and UNLABELLED_NAME not in cats:
        cats.append(UNLABELLED_NAME)
    return cats


# ----------------------------------------------------------------- colours
def colour_column(state: ReviewState) -> str | None:
    """The ``features`` column spots are coloured by (None: one colour)."""
    if state.colour_by is not None:
        return EXPRESSION_KEY
    if state.has_result:
        return state.key
    if LABEL_KEY in state.adata.obs:
        return LABEL_KEY
    return None


def colour_cycle(state: ReviewState) -> dict[str, str]:
    """Cluster id -> colour, for a points layer's ``face_color_cycle``."""
    return {c: state.colours.get(c, PALETTE[i % len(PALETTE)]) for i, c in enumerate(state.clusters)}


def cluster_rgba(state: ReviewState) -> np.ndarray:
    """``(n_spots, 4)`` RGBA of each spot's region (a look-up by cluster code; grey without a region)."""
    from matplotlib.colors import to_rgba

    lut = np.asarray([to_rgba(h) for h in colour_cycle(state).values()] + [to_rgba(PLAIN_COLOUR)], dtype=float)
    return lut[state.codes()]


def label_cycle(state: ReviewState) -> dict[str, str]:
    """Pathologist label -> colour (used before a run)."""
    cats = label_categories(state.adata)
    return {c: (PLAIN_COLOUR if c == UNLABELLED_NAME else PALETTE[i % len(PALETTE)]) for i, c in enumerate(cats)}


def spot_colours(state: ReviewState) -> np.ndarray:
    """``(n_spots, 4)`` RGBA colours as the layer shows them (clusters/labels/values)."""
    from matplotlib.colors import to_rgba

    col = colour_column(state)
    if col == EXPRESSION_KEY and state.colour_by is not None:
        v = state.values()
        lo, hi = state.gene_limits()
        return value_rgba((v - lo) / (hi - lo))
    if col == state.key:
        return cluster_rgba(state)
    if col == LABEL_KEY:
        cyc = label_cycle(state)
        return np.asarray([to_rgba(cyc[v]) for v in label_values(state.adata)], dtype=float)
    return np.tile(to_rgba(PLAIN_COLOUR), (state.n_spots, 1))


# ----------------------------------------------------------------- layer description
def features(state: ReviewState) -> pd.DataFrame:
    """The spot table for a points layer's ``features``.

    Columns: ``spot_id``, ``array_row``, ``array_col``, ``total_counts``,
    ``label`` (when present), ``senca_cluster`` (categorical ids) and
    ``senca_region`` (names) after a run, ``expression`` when coloured by
    a gene, and ``senca_confidence`` once the confidence is known (shown on
    hover).
    """
    adata = state.adata
    obs = adata.obs
    df = pd.DataFrame(index=pd.RangeIndex(state.n_spots))
    df["spot_id"] = np.asarray(adata.obs_names, dtype=object)
    for c in ("array_row", "array_col"):
        if c in obs:
            df[c] = np.asarray(obs[c])
    if "total_counts" in obs:
        df["total_counts"] = np.asarray(obs["total_counts"], dtype=np.float64)
    else:
        df["total_counts"] = np.asarray(adata.X.sum(1), dtype=np.float64).ravel()
    if LABEL_KEY in obs:
        df[LABEL_KEY] = pd.Categorical(label_values(adata), categories=label_categories(adata))
    if state.has_result:
        labels = state._labels()
        df[state.key] = pd.Categorical(np.asarray(labels.astype(object)), categories=labels.categories)
        names = [state.names.get(c, default_name(c)) for c in labels.categories]
        if len(set(names)) == len(names):
            df[REGION_KEY] = pd.Categorical.from_codes(np.asarray(labels.codes), categories=names)
        else:
            df[REGION_KEY] = pd.Categorical(np.asarray(names + [np.nan], dtype=object)[np.asarray(labels.codes)])
    if CONFIDENCE_KEY in obs:
        df[CONFIDENCE_KEY] = np.asarray(obs[CONFIDENCE_KEY], dtype=np.float64)
    if state.colour_by is not None:
        df[EXPRESSION_KEY] = state.values()
    return df


def metadata(state: ReviewState) -> dict[str, Any]:
    """Points-layer ``metadata``: the AnnData, the state, names and colours."""
    return {
        "adata": state.adata,
        REVIEW_KEY: state,
        "senca_names": dict(state.names),
        "senca_colours": dict(state.colours),
        "senca_colour_by": state.colour_by,
        "senca_library_id": library_id(state.adata),
    }


def layer_kwargs(state: ReviewState, name: str | None = None) -> dict[str, Any]:
    """Keyword arguments of ``napari.layers.Points`` for the section."""
    kw: dict[str, Any] = {
        "name": name or f"{section_name(state.adata)} spots",
        "features": features(state),
        "size": float(spot_diameter(state.adata)),
        "border_width": BORDER_WIDTH,
        "border_width_is_relative": True,
        "border_color": BORDER_COLOUR,
        "opacity": 0.9,
        "shown": state.shown_mask(),
        "metadata": metadata(state),
    }
    col = colour_column(state)
    if col == EXPRESSION_KEY:
        kw.update(face_color=col, face_colormap=value_colormap(), face_contrast_limits=state.gene_limits())
    elif col == state.key:
        kw.update(face_color=col, face_color_cycle=colour_cycle(state))
    elif col == LABEL_KEY:
        kw.update(face_color=col, face_color_cycle=label_cycle(state))
    else:
        kw.update(face_color=PLAIN_COLOUR)
    return kw


@contextmanager
def one_redraw(layer: Any) -> Iterator[None]:
    """Property writes on a points layer inside the block redraw its points once, at the end.

    napari rebuilds the markers of every point on each colour, border or
    ``shown`` write (0.05-0.1 s each at 50,000 points; an edit made 2-7 of
    them). The events that only tell the canvas to redraw are held back and
    one ``refresh`` follows; ``features`` and other events still fire. A layer
    without them (not a napari points layer) is written as it is.
    """
    redraw = False
    emitters = [getattr(getattr(layer, "events", None), name, None)
                for name in ("face_color", "border_color", "border_width", "set_data")]  # fmt: skip
    for part in ("_face", "_border"):  # the colour managers napari's canvas also listens to
        emitters += list(getattr(getattr(getattr(layer, part, None), "events", None), "emitters", {}).values())
    held: list[Any] = []
    try:
        with ExitStack() as stack:
            held = [stack.enter_context(em.blocker()) for em in emitters if hasattr(em, "blocker")]
            try:
                yield
            finally:
                redraw = not held or any(b.count for b in held)
    finally:  # also after an error: what was written before it is drawn
        if redraw:
            layer.refresh()


def apply_to_layer(state: ReviewState, layer: Any) -> None:
    """Write features, colours and metadata to a napari points layer (one redraw, :func:`one_redraw`).

    Raises
    ------
    DataError
        When the layer's point count differs from the section's spots
        (points were added or deleted).
    """
    check_layer_matches(layer, state.adata)
    with one_redraw(layer):
        _write_layer(state, layer)


def _write_layer(state: ReviewState, layer: Any) -> None:
    layer.metadata.update(metadata(state))
    new = features(state)
    col = colour_column(state)
    old = getattr(layer, "features", None)
    if col is not None and isinstance(old, pd.DataFrame) and col not in old.columns and len(old) == len(new):
        # keep the column napari colours by now valid until the new one exists
        merged = old.copy()
        for c in new.columns:
            merged[c] = new[c].to_numpy() if not isinstance(new[c].dtype, pd.CategoricalDtype) else new[c].array
        layer.features = merged
    if col is None:
        layer.face_color = PLAIN_COLOUR
    elif col == EXPRESSION_KEY:
        layer.face_color = col
        layer.face_color_mode = "colormap"
        layer.face_colormap = value_colormap()
        layer.face_contrast_limits = state.gene_limits()
    else:
        layer.face_color_mode = "cycle"
        layer.face_color = col
        layer.face_color_cycle = colour_cycle(state) if col == state.key else label_cycle(state)
    layer.features = new
    if col == EXPRESSION_KEY:
        layer.face_contrast_limits = state.gene_limits()
        if not np.isfinite(new[EXPRESSION_KEY].to_numpy()).all():
            layer.face_color = spot_colours(state)  # napari's colormap has no colour for NaN
    # napari's mapping and ours must agree; fall back to explicit colours
    if col not in (None, EXPRESSION_KEY):
        want = spot_colours(state)
        got = np.asarray(layer.face_color)
        if got.shape != want.shape or not np.allclose(got, want, atol=1e-2):
            layer.face_color = want
    apply_visibility(state, layer)


def apply_visibility(state: ReviewState, layer: Any) -> None:
    """Hide the spots of hidden regions and draw the selection ring.

    napari (0.9) ignores ``Points.shown`` for 2-D data, so hidden spots are
    also made transparent (face and border alpha 0); ``shown`` is set too.
    """
    mask = state.shown_mask()
    if len(getattr(layer, "data", ())) != len(mask):
        return
    if not mask.all():
        face = np.array(layer.face_color, dtype=np.float64, copy=True)
        if face.shape == (len(mask), 4):
            face[~mask, 3] = 0.0
            layer.face_color = face
    if not _same(getattr(layer, "shown", None), mask):  # each set redraws every point (0.3 s at 50,000)
        layer.shown = mask
    apply_borders(layer, mask)


def _same(current: Any, wanted: np.ndarray, atol: float = 0.0) -> bool:
    """True when a layer property already holds ``wanted`` (then setting it again would only redraw)."""
    cur = np.asarray(current) if current is not None else None
    if cur is None or cur.shape != wanted.shape:
        return False
    return bool(np.array_equal(cur, wanted)) if atol == 0 else bool(np.allclose(cur, wanted, atol=atol))


def apply_borders(layer: Any, shown: np.ndarray | None = None) -> None:
    """White borders, a thick magenta ring on the layer's selected spots, none on hidden spots.

    Only what differs from the layer is set: a rename or recolour leaves the
    borders as they are, and each set redraws every point.
    """
    n = len(getattr(layer, "data", ()))
    colours, widths = selection_borders(n, getattr(layer, "selected_data", ()) or (), shown)
    if not getattr(layer, "border_width_is_relative", True):
        layer.border_width_is_relative = True
    if not _same(getattr(layer, "border_color", None), np.asarray(colours, dtype=np.float64), atol=1e-6):
        layer.border_color = colours
    if not _same(getattr(layer, "border_width", None), np.asarray(widths, dtype=np.float64), atol=1e-9):
        layer.border_width = widths


def state_from_layer(cls: type[ReviewState], layer: Any) -> ReviewState:
    """The state of a points layer made by this plugin (created if needed).

    Raises
    ------
    DataError
        When the layer carries no section or its points no longer match it.
    """
    meta = getattr(layer, "metadata", None) or {}
    state = meta.get(REVIEW_KEY)
    adata = meta.get("adata")
    if isinstance(state, cls) and (adata is None or state.adata is adata):
        check_layer_matches(layer, state.adata)
        return state
    if not isinstance(adata, AnnData):
        raise DataError(None, f"layer {getattr(layer, 'name', '?')!r} holds no section: load one with the Load widget")
    check_layer_matches(layer, adata)
    state = cls(adata)
    names, colours = meta.get("senca_names"), meta.get("senca_colours")
    if isinstance(names, dict):
        state.names.update({str(k): str(v) for k, v in names.items() if str(k) in state.clusters})
    if isinstance(colours, dict):
        state.colours.update({str(k): to_hex(v) for k, v in colours.items() if str(k) in state.clusters})
    if state.has_result:
        state._write()
    meta[REVIEW_KEY] = state
    return state


def section_name(adata: AnnData) -> str:
    """A short name of the section (input folder or file stem, else library id).

    Visium HD: ``"<library> (16 um bins)"``, so that the layers say which bins they show.
    """
    lib = library_id(adata)
    info = adata.uns.get("senca_input")
    if isinstance(info, dict) and info.get("bin_size_um"):
        return f"{lib or 'Visium HD'} ({int(info['bin_size_um'])} um bins)"
    if isinstance(info, dict) and info.get("path"):
        from pathlib import Path

        p = Path(str(info["path"]))
        stem = p.name[: -len(".h5ad")] if p.name.endswith(".h5ad") else p.name
        if stem in ("outs", "") and p.parent.name:
            stem = p.parent.name
        return stem or (lib or "section")
    return lib or "section"
