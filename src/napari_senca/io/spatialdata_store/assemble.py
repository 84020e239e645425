"""The section assembled from a table's rows, the placed spots and the image.

Reading side of :func:`~napari_senca.io.spatialdata_store.read_spatialdata`:
counts, gene names and obs of the table go through
:func:`~napari_senca.section.make_section`; the table's other annotations are
carried over, and the elements read are recorded in the section's input notes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anndata import AnnData

from ...errors import DataError
from ...notes import add_warning

_SKIP_UNS = ("spatialdata_attrs", "senca_input")


def _library(tab: AnnData, region: str) -> str:
    """The library id a napari-senca store recorded, else the region's name."""
    info = tab.uns.get("senca_input")
    lib = info.get("library_id") if isinstance(info, dict) else None
    return str(lib) if isinstance(lib, str) and lib else region


def _build_section(
    tab: AnnData,
    path: Path,
    where: Path,
    spatial: np.ndarray,
    diameter: float | None,
    hires: np.ndarray | None,
    scalef: float,
    region: str,
) -> AnnData:
    """A section from the table's rows, placed spots and image (see :func:`read_spatialdata`)."""
    from ...section import LABEL_KEY, make_section

    if tab.X is None:
        raise DataError(where, "the table has no X (no counts)")
    obs = tab.obs
    grid = "array_row" in obs and "array_col" in obs
    img = hires[..., 0] if hires is not None and hires.shape[-1] == 1 else hires
    adata = make_section(
        tab.X,
        [str(i) for i in tab.obs_names],
        [str(g) for g in tab.var_names],
        spatial,
        array_row=obs["array_row"].to_numpy(np.float64) if grid else None,
        array_col=obs["array_col"].to_numpy(np.float64) if grid else None,
        image=img,
        image_scalef=scalef,
        spot_diameter_fullres=diameter,
        labels=obs[LABEL_KEY].tolist() if LABEL_KEY in obs else None,
        library_id=_library(tab, region),
        source=path,
        source_format="spatialdata",
        counts_path=where,
        var_columns={str(c): tab.var[c].to_numpy() for c in tab.var.columns},
    )
    _copy_annotations(tab, adata)
    return adata


def _copy_annotations(tab: AnnData, adata: AnnData) -> None:
    """Carry the table's obs columns, obsm, obsp, layers and uns over to the section."""
    attrs = tab.uns.get("spatialdata_attrs") or {}
    skip = {str(attrs.get("region_key")), str(attrs.get("instance_key")), *adata.obs.columns}
    for col in tab.obs.columns:
        if str(col) not in skip:
            adata.obs[str(col)] = tab.obs[col].values  # by position; categoricals stay categorical
    for key, val in tab.obsm.items():
        if key != "spatial":
            adata.obsm[key] = val
    for key, val in tab.obsp.items():
        adata.obsp[key] = val
    if adata.n_vars == tab.n_vars:  # no duplicated gene names were dropped
        for key, val in tab.layers.items():
            adata.layers[key] = val
    for key, val in tab.uns.items():
        if key not in (*_SKIP_UNS, "spatial"):
            adata.uns[key] = val
    _merge_metadata(tab, adata)


def _merge_metadata(tab: AnnData, adata: AnnData) -> None:
    """Keep what a napari-senca store recorded about the images (slide reference, source image path)."""
    from ...section import library_id

    lib = library_id(adata)
    stored = tab.uns.get("spatial")
    entry = stored.get(lib) if isinstance(stored, dict) and lib is not None else None
    if isinstance(entry, dict) and isinstance(entry.get("metadata"), dict):
        meta = adata.uns["spatial"][lib]["metadata"]
        for key, val in entry["metadata"].items():
            meta.setdefault(key, val)
    info = tab.uns.get("senca_input")
    if isinstance(info, dict) and info.get("normalized"):
        adata.uns["senca_input"]["normalized"] = True


def _note_source(
    adata: AnnData, table: str, region: str, image: str | None, cs: str, in_image: bool, skipped: str
) -> None:
    """Record which elements were read, and warn when the frame is not the coordinate system."""
    from ...notes import input_info

    path = adata.uns["senca_input"]["path"]
    input_info(adata)["spatialdata"] = {"table": table, "region": region, "image": image or "", "coordinate_system": cs}
    if in_image:
        add_warning(
            adata,
            f"{path}: image {image!r} is not a plain scale of {cs!r} (translated, rotated or unequal axes): "
            "spot positions are in the image's pixels",
        )
    if skipped:
        add_warning(adata, f"{path}: {skipped}")
