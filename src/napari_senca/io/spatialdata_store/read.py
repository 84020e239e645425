"""Read one table of a SpatialData store as a section (:func:`read_spatialdata`)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from anndata import AnnData

from ...errors import DataError
from .assemble import _build_section, _note_source
from .common import _first_line, _import_spatialdata, _is_store
from .image import _affine, _image_levels, _pick_image, _place, _read_hires
from .table import _element_geometry, _match_instances, _pick_table, _region_element, _table_rows


def _open_store(path: Path) -> Any:
    sd = _import_spatialdata(path)
    if not path.exists():
        raise DataError(path, "not found")
    if not _is_store(path):
        raise DataError(path, "not a SpatialData store (expected a zarr folder with tables/, shapes/, images/...)")
    try:
        return sd.read_zarr(path)
    except Exception as exc:  # zarr / ome-zarr / anndata raise many types on broken stores
        raise DataError(path, f"not a readable SpatialData store ({_first_line(exc)})") from None


def read_spatialdata(
    path: str | PathLike,
    *,
    table: str | None = None,
    region: str | None = None,
    image: str | bool | None = None,
) -> AnnData:
    """Read one table of a SpatialData ``.zarr`` store as a section.

    Parameters
    ----------
    path
        The store (a folder written by :meth:`spatialdata.SpatialData.write`).
    table
        The table to read; by default the only one (several: an error lists them).
    region
        The element whose spots to read, when the table annotates several.
    image
        The image element to use as the H&E; by default the largest image that
        has a transformation to the spots' coordinate system (none: the
        section has no image). ``False`` reads no image.

    Returns
    -------
    AnnData
        A section: counts (``X`` and ``layers`` as stored), obs columns
        (``label`` becomes the reference labels), obsm and uns of the table;
        ``obsm["spatial"]`` in the spots' coordinate system (``global`` when
        they have it) or, when the image's transformation to it is more than
        a scale, in the image's full-resolution pixels (a note says so);
        ``uns["spatial"][library]["images"]["hires"]`` the image level nearest
        2,000 px with its ``tissue_hires_scalef``; ``spot_diameter_fullres``
        from the circles' radius. ``uns["senca_input"]["spatialdata"]`` names
        the table, region, image and coordinate system.

    Raises
    ------
    DataError
        Not a readable store; no table, several without ``table``, or an
        unknown one; a table annotating no shapes or points (labels, a missing
        element); instance ids without a spot; spots outside the image.
    ConfigError
        ``spatialdata`` is not installed (the message names the extra).
    """
    p = Path(path)
    sdata = _open_store(p)
    name, tab = _pick_table(sdata, p, table)
    where = p / "tables" / name
    region, tab, ikey = _table_rows(tab, where, region)
    element, kind = _region_element(sdata, region, where)
    index, xy, diam = _element_geometry(element, kind)
    rows = _match_instances(index, tab.obs[ikey], where, region)
    img_name, cs, skipped = _pick_image(sdata, element, image, p)
    levels = _image_levels(sdata.images[img_name]) if img_name else []
    img_to_cs = _affine(sdata.images[img_name], cs) if levels else None
    spatial, d, scale, in_image = _place(xy[rows], None if diam is None else diam[rows], _affine(element, cs), img_to_cs)
    hires, factor = _read_hires(levels, p / "images" / str(img_name), str(img_name)) if levels else (None, 1.0)
    adata = _build_section(tab, p, where, spatial, d, hires, scale * factor, region)
    if levels and factor < FINER_FACTOR and levels[0].dtype == np.uint8:  # finer pixels than hires: read lazily
        _reference_fullres(adata, p, str(img_name), levels[0], scale)
    _note_source(adata, name, region, img_name, cs, in_image, skipped)
    return adata


#: ``hires`` px per finest-level px below which the finest level is referenced (read lazily for patches).
#: Only uint8 images: others are scaled by their own range for ``hires`` (``section.as_rgb_uint8``),
#: which a lazily read level would not know.
FINER_FACTOR = 0.75


def _reference_fullres(adata: AnnData, store: Path, element: str, finest: Any, scalef: float) -> None:
    """Record the store's finest image level as the section's full-resolution image (never copied)."""
    from ...section import set_fullres_reference
    from .fullres import store_image_reference

    ref = store_image_reference(store, element, int(finest.sizes["x"]), int(finest.sizes["y"]), scalef)
    set_fullres_reference(adata, ref)
