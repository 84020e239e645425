"""npe2 contributions that need no Qt: reader, writers and sample data.

Every function here returns napari layer-data tuples ``(data, kwargs,
layer_type)`` or writes files; none imports Qt, and napari itself is never
imported (the manifest points napari at these functions). A section becomes
two layers: the H&E as an RGB image scaled to full-resolution pixels, and the
spots as a points layer in the same coordinates, holding the spot table in
``features`` and the AnnData in ``metadata["adata"]`` (see
:mod:`napari_senca.review`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .errors import DataError, SencaError
from .notes import InputWarning, one_line
from .review import REGION_KEY, ReviewState, section_layer_data
from .section import CLUSTER_KEY, make_section

__all__ = [
    "get_reader",
    "read_layers",
    "write_points_csv",
    "write_points_geojson",
    "write_section_h5ad",
    "write_section_spatialdata",
    "sample_her2st_a1",
    "sample_synthetic",
    "adata_from_layer",
]

LayerData = tuple[Any, dict[str, Any], str]
_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- reader


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """napari reader hook: a reader function when ``path`` looks like a section, else None.

    Accepts a legacy ST folder (or its ``counts.tsv[.gz]``/``spots.tsv``), a
    Space Ranger ``outs`` folder (or its ``filtered_feature_bc_matrix.h5``), a
    Visium HD ``outs`` folder (its 16 um bins; the layer names say so) or one
    of its ``square_XXXum`` folders (those bins), an ``.h5ad`` file, and a
    SpatialData ``.zarr`` store with one table (only when ``spatialdata`` is
    installed: ``napari-senca[spatialdata]``; otherwise None, so that another
    plugin such as napari-spatialdata can open it). A
    full-resolution TIFF H&E beside Visium HD data becomes a multiscale image
    layer read lazily. Recognition looks at file names only (see
    :func:`~napari_senca.io.detect_format`): it never raises and never reads
    the data, so an ordinary folder is declined at once. A folder that looks
    like a section but is broken gets the reader, which then raises one line
    saying what is wrong.
    """
    from .io import detect_format

    try:
        paths = [path] if isinstance(path, (str, PathLike)) else list(path)
    except TypeError:
        return None
    if not paths:
        return None
    for p in paths:
        fmt = detect_format(str(p))
        if fmt is None or fmt in ("sample", "her2st_repo"):
            return None
        if fmt == "spatialdata":
            from .io.spatialdata_store import spatialdata_available

            if not spatialdata_available():
                return None
    return read_layers


def read_layers(path: str | Sequence[str]) -> list[LayerData]:
    """Read one or more sections into image + points layer data.

    Warnings about the input (excluded spots, unmatched labels, duplicated
    genes...) are emitted as :class:`~napari_senca.notes.InputWarning`, which
    napari shows as notifications.

    Raises
    ------
    SencaError
        One line (naming the file, with counts and a few examples, at most
        :data:`~napari_senca.notes.MAX_MESSAGE` characters) when a section
        cannot be read; the traceback is cut at this function, so napari
        shows the message rather than the reader's internals.
    """
    from .io import read_section

    paths = [path] if isinstance(path, (str, PathLike)) else list(path)
    out: list[LayerData] = []
    for p in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", InputWarning)  # each time the file is opened
                adata = read_section(p)
        except SencaError as exc:
            err: SencaError = DataError(None, one_line(exc))
        except (MemoryError, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            _log.debug("reading %s failed", p, exc_info=True)
            err = DataError(p, one_line(f"cannot read this section ({type(exc).__name__}: {exc})"))
        else:
            out.extend(section_layer_data(adata))
            continue
        raise err from None
    return out


# --------------------------------------------------------------------------- writers


def adata_from_layer(data: Any, meta: dict[str, Any]) -> tuple[AnnData, dict[str, str] | None]:
    """The section behind a points layer, with its cluster display names.

    For a layer made by this plugin this is ``metadata["adata"]`` (with the
    edits of the review state). For any other points layer a minimal section
    is built from the point coordinates and ``features`` (a categorical or
    string ``senca_cluster`` / ``cluster`` column is used as the clustering).

    Raises
    ------
    DataError
        When the layer has no points, or its points no longer match its section.
    """
    md = dict(meta.get("metadata") or {})
    adata = md.get("adata")
    coords = np.asarray(data, dtype=np.float64)
    if isinstance(adata, AnnData):
        if coords.ndim != 2 or len(coords) != adata.n_obs:
            raise DataError(
                None,
                f"the points layer has {len(coords)} points but its section has {adata.n_obs} spots "
                "(points were added or deleted): reload the section",
            )
        state = md.get("senca_review")
        if not isinstance(state, ReviewState):
            state = ReviewState(adata)
        names = {c: state.name_of(c) for c in state.clusters} if state.has_result else None
        return adata, names
    if coords.ndim != 2 or len(coords) == 0:
        raise DataError(None, "the points layer has no points to write")
    feats = meta.get("features")
    feats = pd.DataFrame(feats) if feats is not None else pd.DataFrame(index=range(len(coords)))
    ids = feats["spot_id"].astype(str).tolist() if "spot_id" in feats else [f"spot{i}" for i in range(len(coords))]
    size = np.asarray(meta.get("size", 1.0), dtype=np.float64)
    diam = float(np.median(size)) if size.size else 1.0
    ad = make_section(
        np.zeros((len(coords), 1), dtype=np.float32),
        ids,
        ["none"],
        coords[:, -1:-3:-1],
        spot_diameter_fullres=diam,
        source_format="points layer",
        labels=feats["label"].tolist() if "label" in feats else None,
    )
    names = None
    for col in (CLUSTER_KEY, "cluster"):
        if col in feats:
            ad.obs[CLUSTER_KEY] = pd.Categorical(feats[col].astype(str).to_numpy())
            break
    if CLUSTER_KEY in ad.obs and REGION_KEY in feats:
        pairs = pd.DataFrame({"c": ad.obs[CLUSTER_KEY].astype(str).to_numpy(), "n": feats[REGION_KEY].astype(str)})
        names = dict(pairs.drop_duplicates("c").itertuples(index=False, name=None))
    if CLUSTER_KEY not in ad.obs:
        raise DataError(None, "the points layer has no cluster column (senca_cluster) to write")
    return ad, names


def write_points_csv(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """napari writer: a points layer's spots and clusters as CSV.

    Columns ``spot_id, x, y, pixel_x, pixel_y, cluster`` (grid and full-res
    pixel coordinates), plus ``cluster_name`` and ``label`` when known. The
    file is written atomically; napari's save dialog has already asked about
    replacing an existing file.
    """
    from .export import refuse_input, write_clusters_csv

    adata, names = adata_from_layer(data, meta)
    refuse_input(adata, path)
    write_clusters_csv(adata, path, names=names, overwrite=True)
    return [str(path)]


def write_points_geojson(path: str, data: Any, meta: dict[str, Any], frame: str | None = None) -> list[str]:
    """napari writer: spots as QuPath-readable GeoJSON circles of the true spot diameter.

    ``frame`` is the pixel frame of the coordinates (see
    :func:`napari_senca.export.geojson_frames`); napari's File > Save uses the
    default, :func:`napari_senca.export.default_geojson_frame`. The layer's
    ``translate`` (sections placed side by side) never enters the file.
    """
    from .export import refuse_input, write_geojson

    adata, names = adata_from_layer(data, meta)
    refuse_input(adata, path)
    write_geojson(adata, path, names=names, frame=frame, overwrite=True)
    return [str(path)]


def write_section_h5ad(path: str, layer_data: list[LayerData]) -> list[str]:
    """napari writer: the annotated section behind a points layer as ``.h5ad``.

    Names, colours and manual edits are stored in the AnnData (see
    :mod:`napari_senca.review`), so reading the file back restores them.

    Raises
    ------
    DataError
        When none of the layers holds a section.
    """
    from .export import refuse_input
    from .io import write_h5ad

    adata = _section_to_save(path, layer_data)
    refuse_input(adata, path)
    write_h5ad(adata, path, overwrite=True)
    return [str(path)]


def _section_to_save(path: str, layer_data: list[LayerData]) -> AnnData:
    """The annotated section of the first spots layer made by napari-senca among ``layer_data``."""
    for data, meta, ltype in layer_data:
        md = meta.get("metadata") or {}
        if ltype == "points" and isinstance(md.get("adata"), AnnData):
            return adata_from_layer(data, meta)[0]
    raise DataError(path, "no section to save: select the spots layer made by napari-senca")


def write_section_spatialdata(path: str, layer_data: list[LayerData]) -> list[str]:
    """napari writer: the annotated section behind a points layer as a SpatialData ``.zarr`` store.

    Table with the regions, circles of the true spot radius and the H&E (see
    :func:`napari_senca.io.spatialdata_store.write_spatialdata`); an existing
    store is replaced only when napari-senca wrote it and it is not the
    section's own input; anything else never.

    Raises
    ------
    DataError
        When none of the layers holds a section.
    ConfigError
        ``spatialdata`` is not installed (the message names the extra).
    """
    from .io.spatialdata_store import write_spatialdata

    write_spatialdata(_section_to_save(path, layer_data), path, overwrite=True)
    return [str(path)]


# --------------------------------------------------------------------------- sample data


def sample_her2st_a1() -> list[LayerData]:
    """HER2ST section A1 (Andersson et al. 2021) with its downscaled H&E."""
    from .datasets import her2st_a1

    return section_layer_data(her2st_a1(), "HER2ST A1")


def sample_synthetic() -> list[LayerData]:
    """A small synthetic section (16 x 16 spots, 3 regions, painted H&E)."""
    from .datasets import synthetic_section

    return section_layer_data(synthetic_section(), "synthetic")

