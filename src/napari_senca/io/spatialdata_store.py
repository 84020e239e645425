"""SpatialData ``.zarr`` stores: read a table as a section, write an annotated section as a store.

Needs the optional extra ``napari-senca[spatialdata]`` (the ``spatialdata``
package and its stack: geopandas, xarray, ome-zarr, dask-image...); the rest
of napari-senca never imports it. ``spatialdata`` is imported inside the
functions, and a missing package is one line naming the extra.

Reading (:func:`read_spatialdata`): one *table* (an AnnData: counts, gene
names, obs) annotates one *region* element through
``table.uns["spatialdata_attrs"]`` (``region``, ``region_key``,
``instance_key``). Circles shapes give the spot centres and their diameter;
other shapes their centroids; points their coordinates. The spots go into the
coordinate system they share with the chosen *image*, through the elements'
transformations (:func:`spatialdata.transformations.get_transformation`), and
the image level closest to 2,000 px becomes the section's ``hires`` image
(a gigapixel level is never loaded whole). See :func:`read_spatialdata` for
the frame of ``obsm["spatial"]``.

Writing (:func:`write_spatialdata`): the section becomes a table (all of its
obs, obsm, layers and uns but the images), circles of the true spot radius
and the stored images (``hires`` and ``lowres``, at most Space Ranger's
sizes) with the scale transformation that puts them on the spots, all in the
``global`` coordinate system (full-resolution pixels). The store is written
beside the target and moved into place; an existing path is replaced only
with ``overwrite=True``, and only when it is a SpatialData store.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from os import PathLike
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from ..errors import ConfigError, DataError
from ..notes import add_warning, examples

__all__ = [
    "INSTALL_HINT",
    "spatialdata_available",
    "looks_like_spatialdata",
    "read_spatialdata",
    "section_to_spatialdata",
    "write_spatialdata",
]

#: What to run when ``spatialdata`` is missing.
INSTALL_HINT = ('SpatialData stores need Python 3.11 or newer and the optional extra: '
                'pip install "napari-senca[spatialdata]"')
#: Longest side (px) of the image level read as ``hires``.
HIRES_SIDE = 2000
#: Coordinate system of written stores (full-resolution pixels of the section).
GLOBAL = "global"
_ELEMENT_GROUPS = ("tables", "shapes", "points", "images", "labels")
_ZARR_META = ("zarr.json", ".zgroup")
_SKIP_UNS = ("spatialdata_attrs", "senca_input")


# --------------------------------------------------------------------------- detection, import


def spatialdata_available() -> bool:
    """True when the ``spatialdata`` package can be imported (without importing it)."""
    from importlib.util import find_spec

    try:
        return find_spec("spatialdata") is not None
    except (ImportError, ValueError):
        return False


def looks_like_spatialdata(path: str | PathLike) -> bool:
    """True when ``path`` is a zarr group folder with a SpatialData ``tables`` group (names only).

    Only a store with a table can be a section, so a plain zarr array, an
    OME-Zarr image (its ``labels/`` folder included) or a SpatialData store
    without a table is left to other readers (napari-ome-zarr,
    napari-spatialdata). Never raises.
    """
    return _is_store(path, ("tables",))


def _is_store(path: str | PathLike, groups: tuple[str, ...] = _ELEMENT_GROUPS) -> bool:
    """A zarr group folder holding one of the element ``groups`` (names only; never raises)."""
    try:
        p = Path(path)
        return p.is_dir() and any((p / m).is_file() for m in _ZARR_META) and any((p / g).is_dir() for g in groups)
    except (OSError, TypeError, ValueError):
        return False


def _import_spatialdata(where: str | PathLike | None) -> ModuleType:
    try:
        import spatialdata
    except ImportError as exc:
        raise ConfigError(f"{where}: {INSTALL_HINT} ({exc})" if where else INSTALL_HINT) from None
    return spatialdata


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


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


# --------------------------------------------------------------------------- table and region


def _pick_table(sdata: Any, path: Path, table: str | None) -> tuple[str, AnnData]:
    """The table to read: ``table`` by name, else the only one."""
    names = list(sdata.tables.keys())
    if table is not None:
        if table not in names:
            raise DataError(path, f"no table {table!r} (tables: {', '.join(names) or 'none'})")
        return table, sdata.tables[table]
    if not names:
        raise DataError(path, "the store has no table (no counts to read); napari-senca needs a table of spots x genes")
    if len(names) > 1:
        raise DataError(
            path,
            f"{len(names)} tables ({', '.join(names)}): choose one (table= in Python, --section on the command line)",
        )
    return names[0], sdata.tables[names[0]]


def _table_rows(tab: AnnData, where: Path, region: str | None) -> tuple[str, AnnData, str]:
    """The region element the table annotates, the table's rows for it, and its instance key."""
    attrs = tab.uns.get("spatialdata_attrs")
    if not isinstance(attrs, dict) or "region" not in attrs or "instance_key" not in attrs:
        raise DataError(where, "the table annotates no element (no region / instance_key in uns['spatialdata_attrs'])")
    regions = [str(r) for r in np.atleast_1d(np.asarray(attrs["region"], dtype=object)).tolist()]
    rkey, ikey = str(attrs.get("region_key")), str(attrs["instance_key"])
    if region is None:
        if len(regions) != 1:
            raise DataError(where, f"the table annotates {len(regions)} elements ({', '.join(regions)}): choose one with region=")
        region = regions[0]
    elif region not in regions:
        raise DataError(where, f"the table does not annotate {region!r} (it annotates {', '.join(regions)})")
    if ikey not in tab.obs:
        raise DataError(where, f"no instance key column {ikey!r} in the table's obs")
    if len(regions) > 1 and rkey in tab.obs:
        tab = tab[tab.obs[rkey].astype(str).to_numpy() == region]
    return region, tab, ikey


def _region_element(sdata: Any, region: str, where: Path) -> tuple[Any, str]:
    """The element named ``region`` and its kind (``"shapes"`` or ``"points"``)."""
    if region in sdata.shapes:
        return sdata.shapes[region], "shapes"
    if region in sdata.points:
        return sdata.points[region], "points"
    if region in sdata.labels:
        raise DataError(
            where, f"the table annotates labels {region!r} (a segmentation raster): napari-senca needs spots (shapes or points)"
        )
    raise DataError(where, f"the table annotates {region!r}, which is not a shapes or points element of the store")


def _element_geometry(element: Any, kind: str) -> tuple[pd.Index, np.ndarray, np.ndarray | None]:
    """Instance ids, ``(n, 2)`` centres ``(x, y)`` and per-instance diameters (None for points)."""
    if kind == "points":
        df = element[["x", "y"]].compute()
        return pd.Index(df.index), df[["x", "y"]].to_numpy(np.float64), None
    geom = element.geometry
    if (geom.geom_type == "Point").all():
        xy = np.stack([geom.x.to_numpy(), geom.y.to_numpy()], axis=1)
        radius = element["radius"].to_numpy(np.float64) if "radius" in element else None
        return pd.Index(element.index), xy, None if radius is None else 2.0 * radius
    cent = geom.centroid
    diam = 2.0 * np.sqrt(np.asarray(geom.area, dtype=np.float64) / np.pi)  # circle of the same area
    return pd.Index(element.index), np.stack([cent.x.to_numpy(), cent.y.to_numpy()], axis=1), diam


def _match_instances(index: pd.Index, ids: pd.Series, where: Path, region: str) -> np.ndarray:
    """Row of ``index`` for every table instance id (errors name the ids that are missing)."""
    if not index.is_unique:
        raise DataError(where, f"element {region!r} has duplicated instance ids")
    idx = index.get_indexer(ids.to_numpy())
    if (idx < 0).any():  # ids stored as text on one side and numbers on the other
        idx = pd.Index(index.astype(str)).get_indexer(ids.astype(str).to_numpy())
    if (idx < 0).any():
        missing = ids[idx < 0].astype(str).tolist()
        raise DataError(where, f"no instance in {region!r} for {examples(missing, 'table rows')} (of {len(ids)})")
    return idx


# --------------------------------------------------------------------------- transformations and images


def _affine(element: Any, cs: str) -> np.ndarray:
    """The 3 x 3 ``(x, y, 1)`` affine matrix from ``element``'s own coordinates to ``cs``."""
    from spatialdata.transformations import get_transformation

    t = get_transformation(element, to_coordinate_system=cs)
    return np.asarray(t.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=np.float64)


def _coordinate_systems(element: Any) -> list[str]:
    from spatialdata.transformations import get_transformation

    return list(get_transformation(element, get_all=True))


def _first_cs(systems: list[str]) -> str:
    return GLOBAL if GLOBAL in systems else systems[0]


def _shared(element: Any, image: Any) -> list[str]:
    theirs = set(_coordinate_systems(image))
    return [cs for cs in _coordinate_systems(element) if cs in theirs]


def _image_levels(image: Any) -> list[Any]:
    """The levels of an image element as ``(c, y, x)`` DataArrays, finest first."""
    if hasattr(image, "dims") and "y" in image.dims:
        return [image]
    levels = []
    for key in sorted(image.keys(), key=lambda k: int(re.sub(r"\D", "", k) or 0)):
        node = image[key]
        levels.append(node["image"] if "image" in node else next(iter(node.ds.data_vars.values())))
    return levels


def _side(level: Any) -> int:
    return int(max(level.sizes["y"], level.sizes["x"]))


def _pick_image(sdata: Any, element: Any, image: str | bool | None, where: Path) -> tuple[str | None, str, str]:
    """The image element to read, the coordinate system of the spots and why no image was read.

    ``image`` by name, else the largest RGB (or grey) image that shares a
    coordinate system with the spots; ``global`` when they share it.
    """
    systems = _coordinate_systems(element)
    if not systems:
        raise DataError(where, "the spots have no coordinate system (no transformation)")
    if image is False:
        return None, _first_cs(systems), ""
    if isinstance(image, str):
        if image not in sdata.images:
            raise DataError(where, f"no image {image!r} (images: {', '.join(sdata.images.keys()) or 'none'})")
        shared = _shared(element, sdata.images[image])
        if not shared:
            raise DataError(where, f"image {image!r} shares no coordinate system with the spots ({', '.join(systems)})")
        level0 = _image_levels(sdata.images[image])[0]
        if not _channels_ok(level0):
            why = f"image {image!r} has {int(level0.sizes['c'])} channels, not an RGB H&E: read without an image"
            return None, _first_cs(shared), why
        return image, _first_cs(shared), ""
    if image is not None:
        raise ConfigError(f"{where}: image= names an image element of the store (or False for none)")
    usable = [(n, _shared(element, im), _image_levels(im)[0]) for n, im in sdata.images.items()]
    usable = [(n, shared, lv) for n, shared, lv in usable if shared and _channels_ok(lv)]
    if not usable:
        return None, _first_cs(systems), ""
    name, shared, _ = max(usable, key=lambda u: _side(u[2]))
    return name, _first_cs(shared), ""


def _read_hires(levels: list[Any], where: Path, name: str) -> tuple[np.ndarray, float]:
    """The level nearest :data:`HIRES_SIDE` as ``(H, W, C)``, and its pixels per pixel of the finest level.

    A level more than twice that size (a single-scale slide) is read with a
    stride, chunk by chunk, never whole; the result is at most
    :data:`HIRES_SIDE` px on its longer side.
    """
    level = min(levels, key=lambda lv: abs(np.log(_side(lv) / HIRES_SIDE)))
    step = max(1, int(np.ceil(_side(level) / (2 * HIRES_SIDE))))
    arr = level.transpose("y", "x", "c").data if "c" in level.dims else level.data[..., None]
    try:
        strided = arr[::step, ::step]
        img = np.asarray(strided.compute() if hasattr(strided, "compute") else strided)
    except Exception as exc:  # a missing or corrupt chunk
        raise DataError(where, f"cannot read image {name!r} ({_first_line(exc)})") from None
    from .h5ad import _downscale

    factor = float(level.sizes["x"]) / float(levels[0].sizes["x"]) / step  # per pixel of the finest level
    if img.shape[-1] in (3, 4):
        img, f = _downscale(img, HIRES_SIDE)
        factor *= f
    return img, factor


def _channels_ok(level: Any) -> bool:
    return "c" not in level.dims or int(level.sizes["c"]) in (1, 3, 4)


def _place(xy: np.ndarray, diam: np.ndarray | None, to_cs: np.ndarray, img_to_cs: np.ndarray | None) -> tuple[
    np.ndarray, float | None, float, bool
]:
    """Spot centres and diameter in the section's full-resolution frame, and that frame's image scale.

    The frame is the spots' coordinate system when the image's transformation
    to it is a plain scale (the usual case: pixels or micrometres); otherwise
    (a translation, rotation or unequal axes) it is the image's own pixels.
    Returns ``(spatial, diameter, image px per frame unit, frame is the image)``.
    """
    mat, scale, in_image = to_cs, 1.0, False
    if img_to_cs is not None:
        lin = img_to_cs[:2, :2]
        s = float(lin[0, 0])
        if s > 0 and np.allclose(lin, np.diag([s, s])) and np.allclose(img_to_cs[:2, 2], 0.0):
            scale = 1.0 / s
        else:
            mat, in_image = np.linalg.inv(img_to_cs) @ to_cs, True
    pts = np.c_[xy, np.ones(len(xy))] @ mat.T
    d = None if diam is None or not np.isfinite(diam).any() else float(np.nanmedian(diam))
    if d is not None:
        d *= float(np.sqrt(abs(np.linalg.det(mat[:2, :2]))))
    return pts[:, :2], d, scale, in_image


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
    _note_source(adata, name, region, img_name, cs, in_image, skipped)
    return adata


# --------------------------------------------------------------------------- the section


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
    from ..section import LABEL_KEY, make_section

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
    from ..section import library_id

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
    from ..notes import input_info

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


# --------------------------------------------------------------------------- writing


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

    from ..section import as_rgb_uint8
    from .h5ad import compact_spatial

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

    from ..section import library_id, spot_diameter

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


def write_spatialdata(adata: AnnData, path: str | PathLike, *, overwrite: bool = False) -> Path:
    """Write an (annotated) section as a SpatialData ``.zarr`` store, atomically.

    The store (see :func:`section_to_spatialdata`) is written into a hidden
    folder beside ``path`` and moved into place when complete, so a failure
    or interruption never leaves a half-written store; ``adata`` is not changed.

    Parameters
    ----------
    adata
        The section, e.g. after :func:`napari_senca.pipeline.annotate`
        (``obs["senca_cluster"]``, ``obsm["X_senca"]``, ``uns["senca"]``).
    path
        The store to write (by convention a ``.zarr`` folder).
    overwrite
        Replace an existing store at ``path`` that napari-senca wrote. Anything
        else there (a file, a folder, another program's store, the section's
        own input) is never replaced.

    Returns
    -------
    pathlib.Path
        The written store.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False; or it is not a store that
        napari-senca wrote (another program's store may hold tables and
        images that this one would lose); or it is the section's own input.
    ConfigError
        ``spatialdata`` is not installed.
    """
    from ..outputs import replace_folder

    p = Path(path)
    if p.exists():
        _check_replaceable(adata, p, overwrite)
    sdata = section_to_spatialdata(adata)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
    try:
        sdata.write(tmp / p.name)
        _mark_ours(tmp / p.name)
        replace_folder(tmp / p.name, p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return p


#: Root attribute of the stores :func:`write_spatialdata` writes (only those are ever replaced).
OWN_STORE_ATTR = "napari_senca"


def _mark_ours(store: Path) -> None:
    """Record in the store's root attributes that napari-senca wrote it."""
    import zarr

    from .._version import __version__

    zarr.open_group(store, mode="r+").attrs[OWN_STORE_ATTR] = {"version": __version__}


def _root_attributes(store: Path) -> dict[str, Any]:
    """The root group's attributes (zarr v3 ``zarr.json`` or v2 ``.zattrs``), {} when unreadable."""
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        try:
            meta = json.loads((store / name).read_text())
        except (OSError, ValueError):
            continue
        attrs = meta.get(key, {}) if key else meta
        return attrs if isinstance(attrs, dict) else {}
    return {}


def _check_replaceable(adata: AnnData, p: Path, overwrite: bool) -> None:
    """Raise FileExistsError unless ``p`` may be replaced by this section's store."""
    if not overwrite:
        raise FileExistsError(f"{p} already exists (use overwrite=True to replace it)")
    if not _is_store(p) or OWN_STORE_ATTR not in _root_attributes(p):
        raise FileExistsError(f"{p} exists and was not written by napari-senca (it may hold other tables and "
                              "images): it is never replaced; save to a new path")  # fmt: skip
    source = ((adata.uns.get("senca_input") or {}).get("path")) or None
    if source and Path(source).expanduser().resolve() == p.resolve():
        raise FileExistsError(f"{p} is the section's own input: it is never replaced; save to a new path")
