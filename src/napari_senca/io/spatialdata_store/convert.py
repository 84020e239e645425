"""A section as a :class:`spatialdata.SpatialData` object (:func:`section_to_spatialdata`; nothing is written).

Elements: the table (all of the section but its images), circles of the true
spot radius and the stored images with the scale that puts them on the spots,
all in the ``global`` coordinate system (full-resolution pixels).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .common import GLOBAL, _import_spatialdata


def _element_name(text: str) -> str:
    """``text`` as a valid SpatialData element name (letters, digits, ``_ - .``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._") or "section"
    return name


def _free_column(obs: pd.DataFrame, name: str) -> str:
    while name in obs.columns:
        name = f"spatialdata_{name}"
    return name


def _table_uns(adata: AnnData) -> dict[str, Any]:
    """The section's uns for the table: everything but the images (they become image elements)."""
    uns = {k: v for k, v in adata.uns.items() if k != "spatial"}
    spatial = adata.uns.get("spatial")
    if isinstance(spatial, dict):
        uns["spatial"] = {
            lib: {k: v for k, v in entry.items() if k != "images"} if isinstance(entry, dict) else entry
            for lib, entry in spatial.items()
        }
    return uns


def _image_elements(adata: AnnData, lib: str) -> dict[str, Any]:
    """The stored images (at most Space Ranger's sizes) with a scale transformation to ``global``."""
    from spatialdata.models import Image2DModel
    from spatialdata.transformations import Scale

    from ...section import as_rgb_uint8
    from ..h5ad import compact_spatial

    spatial = adata.uns.get("spatial")
    entry = compact_spatial(spatial).get(lib) if isinstance(spatial, dict) else None
    if not isinstance(entry, dict):
        return {}
    out = {}
    for key, img in (entry.get("images") or {}).items():
        sf = float(entry["scalefactors"].get(f"tissue_{key}_scalef", 1.0))
        data = np.moveaxis(as_rgb_uint8(np.asarray(img)), -1, 0)
        out[f"{_element_name(lib)}_{key}_image"] = Image2DModel.parse(
            data, dims=("c", "y", "x"), c_coords=["r", "g", "b"],
            transformations={GLOBAL: Scale([1.0 / sf, 1.0 / sf], axes=("y", "x"))},
        )  # fmt: skip
    return out


def section_to_spatialdata(adata: AnnData) -> Any:
    """The section as a :class:`spatialdata.SpatialData` object (nothing is written).

    Elements: ``table`` (counts, obs, obsm, layers, uns but the images;
    ``obs["region"]`` / ``obs["instance_id"]`` link each row to its circle),
    ``<library>_spots`` (circles of the section's spot radius, centres from
    ``obsm["spatial"]``) and ``<library>_hires_image`` / ``_lowres_image``,
    all in the ``global`` coordinate system (full-resolution pixels).

    Raises
    ------
    ConfigError
        ``spatialdata`` is not installed.
    """
    sd = _import_spatialdata(None)
    from spatialdata.models import ShapesModel, TableModel
    from spatialdata.transformations import Identity

    from ...section import library_id, spot_diameter

    lib = library_id(adata) or "section"
    shapes_name = f"{_element_name(lib)}_spots"
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    radius = np.full(adata.n_obs, 0.5 * spot_diameter(adata))
    spots = ShapesModel.parse(xy, geometry=0, radius=radius, index=np.arange(adata.n_obs),
                              transformations={GLOBAL: Identity()})  # fmt: skip
    tab = AnnData(X=adata.X, obs=adata.obs.copy(), var=adata.var.copy(), obsm=dict(adata.obsm),
                  obsp=dict(adata.obsp), layers=dict(adata.layers), uns=_table_uns(adata))  # fmt: skip
    rkey, ikey = _free_column(tab.obs, "region"), _free_column(tab.obs, "instance_id")
    tab.obs[rkey] = pd.Categorical([shapes_name] * adata.n_obs)
    tab.obs[ikey] = np.arange(adata.n_obs)
    table = TableModel.parse(tab, region=shapes_name, region_key=rkey, instance_key=ikey)
    return sd.SpatialData(images=_image_elements(adata, lib), shapes={shapes_name: spots}, tables={"table": table})
