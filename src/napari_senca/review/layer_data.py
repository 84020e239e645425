"""The napari layer-data tuples of a section: its H&E and its spots (points or a labels raster).

What the reader returns and the widgets add; the spots' colours and
``features`` come from :mod:`.layers`.
"""

from __future__ import annotations

from typing import Any

from anndata import AnnData

from ..section import fullres_reference, get_image, get_image_levels, library_id
from .layers import layer_kwargs, section_name

__all__ = ["image_layer_data", "points_layer_data", "spots_layer_data", "section_layer_data"]


def image_layer_data(adata: AnnData, name: str | None = None) -> tuple[Any, dict[str, Any], str] | None:
    """The section's H&E as a napari image layer-data tuple, or None.

    The layer is scaled by ``1 / scalefactor`` so that it lies in full-resolution
    pixel coordinates, the coordinates of the spots. A section that references
    a full-resolution slide (see :func:`~napari_senca.section.get_image_levels`)
    gets a multiscale layer of its lazily read levels (dask arrays); napari
    reads only the tiles on screen, from the level that fits the zoom.
    """
    levels = get_image_levels(adata) if fullres_reference(adata) is not None else []
    got = levels[0] if levels else get_image(adata)
    if got is None:
        return None
    img, scalef = got
    s = 1.0 / float(scalef) if scalef else 1.0
    kw = {
        "name": name or f"{section_name(adata)} H&E",
        "rgb": True,
        "scale": (s, s),
        "metadata": {"senca_library_id": library_id(adata), "senca_scalef": float(scalef)},
    }
    if levels:  # a lazily read slide: napari reads the tiles on screen from the right level
        img = [lv for lv, _ in levels] if len(levels) > 1 else img
        kw.update(multiscale=len(levels) > 1, contrast_limits=(0, 255))
    return (img, kw, "image")


def points_layer_data(adata: AnnData, name: str | None = None) -> tuple[Any, dict[str, Any], str]:
    """The spots as a napari points layer-data tuple (see :class:`~napari_senca.review.state.ReviewState`)."""
    from .state import ReviewState

    state = ReviewState(adata)
    return (state.coordinates(), layer_kwargs(state, name), "points")


def spots_layer_data(
    adata: AnnData, name: str | None = None, raster_min_spots: int | None = None
) -> tuple[Any, dict[str, Any], str]:
    """The spots as a labels raster (large square-grid sections, see :mod:`.raster`) or a points layer."""
    from .raster import labels_layer_data, raster_grid
    from .state import ReviewState

    grid = raster_grid(adata, raster_min_spots)
    if grid is None:
        return points_layer_data(adata, name)
    return labels_layer_data(ReviewState(adata), grid, name or f"{section_name(adata)} spots")


def section_layer_data(
    adata: AnnData, name: str | None = None, raster_min_spots: int | None = None
) -> list[tuple[Any, dict[str, Any], str]]:
    """Image (when there is one) and spots layer-data tuples of a section.

    The spots are a points layer, or a labels raster for a section of at
    least ``raster_min_spots`` (default :data:`.raster.RASTER_MIN_SPOTS`) spots on
    a square grid (Visium HD); 0 draws every square-grid section as a raster.
    """
    base = name or section_name(adata)
    out: list[tuple[Any, dict[str, Any], str]] = []
    img = image_layer_data(adata, f"{base} H&E")
    if img is not None:
        out.append(img)
    out.append(spots_layer_data(adata, f"{base} spots", raster_min_spots))
    return out
