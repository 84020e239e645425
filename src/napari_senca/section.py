"""The in-memory section: an AnnData following the scanpy/squidpy convention.

A *section* is one :class:`anndata.AnnData` with

* ``X``: raw counts (spots x genes, ``scipy.sparse.csr_matrix`` of float32),
* ``obs_names``: spot ids, ``var_names``: gene names,
* ``obsm["spatial"]``: spot centres in full-resolution image pixels, ``(x, y)``,
* ``obs["array_row"]`` / ``obs["array_col"]``: grid coordinates,
* ``obs["label"]``: optional categorical ground truth (NaN = unlabelled),
* ``uns["spatial"][library_id]``: ``{"images": {"hires": HxWx3 uint8},
  "scalefactors": {"tissue_hires_scalef", "spot_diameter_fullres", ...},
  "metadata": {...}}`` (image pixel = full-resolution pixel x scale factor),
* ``uns["senca_input"]``: where the section came from (path, format).

Every reader builds its result with :func:`make_section`, which is also where
bad input is caught, so all readers report problems the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .errors import DataError

__all__ = [
    "CLUSTER_KEY",
    "EMBED_KEY",
    "LABEL_KEY",
    "UNS_KEY",
    "REFERENCE_KEY",
    "make_section",
    "source_path",
    "is_normalized",
    "library_id",
    "get_image",
    "get_image_levels",
    "fullres_reference",
    "set_fullres_reference",
    "spot_spacing",
    "spot_diameter",
    "has_labels",
    "validate_section",
    "drop_duplicate_genes",
]

CLUSTER_KEY = "senca_cluster"
EMBED_KEY = "X_senca"
LABEL_KEY = "label"
UNS_KEY = "senca"
#: ``uns["spatial"][library]["metadata"]`` key of the full-resolution image reference.
REFERENCE_KEY = "fullres_image"
UNLABELLED = ("", "undetermined", "nan", "na", "none", "unlabelled", "unlabeled")


def make_section(
    counts: Any,
    spot_ids: Sequence[str],
    gene_names: Sequence[str],
    spatial: np.ndarray,
    *,
    array_row: Sequence[float] | None = None,
    array_col: Sequence[float] | None = None,
    image: np.ndarray | None = None,
    image_scalef: float = 1.0,
    image_key: str = "hires",
    spot_diameter_fullres: float | None = None,
    extra_scalefactors: dict[str, float] | None = None,
    labels: Sequence[Any] | None = None,
    library_id: str = "section",
    source: str | PathLike | None = None,
    source_format: str = "memory",
    counts_path: str | PathLike | None = None,
    var_columns: dict[str, Sequence[Any]] | None = None,
) -> AnnData:
    """Build and validate a section.

    Parameters
    ----------
    counts
        Spots x genes counts (dense array, sparse matrix or DataFrame values).
    spot_ids, gene_names
        Row and column names. Duplicated spot ids are an error; of the
        columns that share a gene name, the one with the highest total count
        is kept (see :func:`drop_duplicate_genes`).
    spatial
        ``(n_spots, 2)`` spot centres ``(x, y)`` in full-resolution pixels.
    array_row, array_col
        Grid coordinates; default to ``spatial`` divided by the spot spacing.
    image
        Optional H&E as ``(H, W, 3)`` uint8 (grey or RGBA are converted).
    image_scalef
        Image pixel = full-resolution pixel x ``image_scalef``.
    spot_diameter_fullres
        Spot diameter in full-resolution pixels; default half the spacing
        (legacy ST: 100 um spots on a 200 um grid).
    labels
        Optional per-spot ground truth; entries in :data:`UNLABELLED` become NaN.
    source, counts_path
        Paths used in error messages (``counts_path`` for count problems).
    var_columns
        Extra per-gene columns for ``var`` (e.g. ``gene_ids``), one value per
        entry of ``gene_names``.

    Raises
    ------
    DataError
        Empty section, non-numeric / NaN / negative counts, mismatched
        lengths, duplicated spot ids, spots outside the image.
    """
    where = counts_path if counts_path is not None else source
    spot_ids = [str(s) for s in spot_ids]
    X = _checked_counts(counts, spot_ids, gene_names, where)
    spatial = _checked_positions(spatial, spot_ids, source)

    obs = pd.DataFrame(index=pd.Index(spot_ids, name=None))
    spacing = _median_nn(spatial)
    if array_row is None or array_col is None:
        step = spacing if spacing > 0 else 1.0
        array_col = np.round(spatial[:, 0] / step)
        array_row = np.round(spatial[:, 1] / step)
    obs["array_row"] = np.asarray(array_row, dtype=np.float64)
    obs["array_col"] = np.asarray(array_col, dtype=np.float64)
    obs["in_tissue"] = 1
    obs["total_counts"] = np.asarray(X.sum(1)).ravel()
    obs["n_genes"] = np.asarray((X > 0).sum(1)).ravel()
    if labels is not None:
        obs[LABEL_KEY] = clean_labels(labels)

    var = pd.DataFrame(index=pd.Index([str(g) for g in gene_names]))
    for col, values in (var_columns or {}).items():
        var[col] = np.asarray(values)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Variable names are not unique")
        adata = AnnData(X=X, obs=obs, var=var)
    adata.obsm["spatial"] = spatial

    if spot_diameter_fullres is None:
        spot_diameter_fullres = 0.5 * spacing if spacing > 0 else 1.0
    scalefactors: dict[str, float] = {"spot_diameter_fullres": float(spot_diameter_fullres)}
    if extra_scalefactors:
        scalefactors.update({k: float(v) for k, v in extra_scalefactors.items()})
    images: dict[str, np.ndarray] = {}
    if image is not None:
        img = as_rgb_uint8(image, source)
        scalefactors[f"tissue_{image_key}_scalef"] = float(image_scalef)
        _check_inside(spatial * image_scalef, img.shape, spot_ids, source)
        images[image_key] = img
    meta = {"source": "" if source is None else str(source)}
    adata.uns["spatial"] = {library_id: {"images": images, "scalefactors": scalefactors, "metadata": meta}}
    adata.uns["senca_input"] = {
        "path": "" if source is None else str(source),
        "format": source_format,
        "library_id": library_id,
    }
    if counts_path is not None:
        adata.uns["senca_input"]["counts_path"] = str(counts_path)
    return drop_duplicate_genes(adata, where)


def _checked_counts(counts: Any, spot_ids: list[str], gene_names: Sequence[str], where: Any) -> Any:
    """The counts as a numeric matrix, with one row per (unique) spot id and one column per gene name."""
    n = len(spot_ids)
    if n == 0:
        raise DataError(where, "the section has no spots")
    X = _as_counts(counts, where)
    if X.shape[0] != n:
        raise DataError(where, f"{X.shape[0]} count rows but {n} spot ids")
    if X.shape[1] == 0 or len(gene_names) == 0:
        raise DataError(where, "the section has no genes")
    if X.shape[1] != len(gene_names):
        raise DataError(where, f"{X.shape[1]} count columns but {len(gene_names)} gene names")
    dup = pd.Index(spot_ids)[pd.Index(spot_ids).duplicated()]
    if len(dup):
        raise DataError(where, f"duplicated spot ids, e.g. {dup[0]!r}")
    return X


def _checked_positions(spatial: Any, spot_ids: list[str], source: Any) -> np.ndarray:
    """``(n, 2)`` finite float64 spot centres (a DataError names the first spot without one)."""
    n = len(spot_ids)
    spatial = np.asarray(spatial, dtype=np.float64)
    if spatial.shape != (n, 2):
        raise DataError(source, f"spot positions have shape {spatial.shape}, expected ({n}, 2)")
    if not np.isfinite(spatial).all():
        bad = spot_ids[int(np.where(~np.isfinite(spatial).all(1))[0][0])]
        raise DataError(source, f"spot {bad!r} has a missing or non-numeric position")
    return spatial


def drop_duplicate_genes(adata: AnnData, where: str | PathLike | None = None) -> AnnData:
    """Keep one column per gene name: the one with the highest total; drop the others.

    A name that occurs more than once (e.g. two Ensembl ids with the same
    symbol) would otherwise be renamed ``ERBB2``, ``ERBB2-1``..., so that
    ``ERBB2`` might label the wrong column. The rule is deterministic: of the
    columns sharing a name, the one with the highest sum over all spots is
    kept under that name (ties: the first in file order), the others are
    dropped; the order of the kept columns is the file order. What was
    dropped is recorded in ``uns["senca_input"]["duplicate_genes"]``
    (``n_names``, ``n_dropped``, ``examples``) and emitted as a warning.

    Returns
    -------
    AnnData
        ``adata`` itself when all names are unique, else a copy without the
        dropped columns.
    """
    names = pd.Index(adata.var_names.astype(str))
    if names.is_unique:
        return adata
    from .notes import add_warning, examples, input_info

    totals = np.asarray(adata.X.sum(0)).ravel()
    order = pd.DataFrame({"name": names, "total": -totals, "pos": np.arange(len(names))})
    best = order.sort_values(["total", "pos"], kind="stable").drop_duplicates("name")["pos"]
    keep = np.sort(best.to_numpy())
    dup_names = list(dict.fromkeys(names[names.duplicated(keep=False)]))
    n_dropped = len(names) - len(keep)
    out = adata[:, keep].copy()
    out.var_names = names[keep]
    input_info(out)["duplicate_genes"] = {
        "n_names": len(dup_names),
        "n_dropped": int(n_dropped),
        "examples": [str(g) for g in dup_names[:3]],
    }
    src = f"{where}: " if where is not None else ""
    add_warning(
        out,
        f"{src}duplicated gene names ({examples(dup_names, 'names')}): kept the column with the "
        f"highest total count of each name, dropped {n_dropped} column(s)",
    )
    return out


def clean_label(value: Any) -> str | None:
    """One label as the section stores it: surrounding spaces removed; None for NaN and :data:`UNLABELLED`."""
    if value is None or bool(pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    s = str(value).strip()
    return None if s.lower() in UNLABELLED else s


def clean_labels(labels: Sequence[Any]) -> pd.Categorical:
    """Categorical labels with 'undetermined', '' and NaN as missing (:func:`clean_label`)."""
    return pd.Categorical(pd.Series(list(labels), dtype=object).map(clean_label))


def as_rgb_uint8(image: np.ndarray, source: str | PathLike | None = None) -> np.ndarray:
    """Return ``image`` as ``(H, W, 3)`` uint8 (grey, RGBA and 16-bit are converted)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 2:
        raise DataError(source, f"the image has shape {img.shape}, expected (H, W, 3) RGB")
    img = img[..., :3]
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating):
            mx = float(np.nanmax(img)) if img.size else 1.0
            img = np.clip(np.nan_to_num(img) * (255.0 if mx <= 1.0 else 1.0), 0, 255)
        elif img.dtype == np.uint16 or (np.issubdtype(img.dtype, np.integer) and img.max() > 255):
            img = img.astype(np.float64) / max(float(img.max()), 1.0) * 255.0
        img = img.astype(np.uint8)
    return np.ascontiguousarray(img)


def _as_counts(counts: Any, where: str | PathLike | None) -> sp.csr_matrix:
    if isinstance(counts, pd.DataFrame):
        try:
            counts = counts.apply(pd.to_numeric, errors="raise").to_numpy()
        except (ValueError, TypeError) as exc:
            raise DataError(where, f"counts are not numeric ({exc})") from None
    if sp.issparse(counts):
        X = sp.csr_matrix(counts)
        data = X.data
    else:
        arr = np.asarray(counts)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
        ):
            try:
                arr = arr.astype(np.float64)
            except (ValueError, TypeError):
                raise DataError(where, "counts are not numeric") from None
        if arr.ndim != 2:
            raise DataError(where, f"counts must be a 2-D table, got {arr.ndim}-D")
        data = arr
        X = None
    data = np.asarray(data, dtype=np.float64)
    if data.size and not np.isfinite(data).all():
        raise DataError(where, "counts contain NaN or infinite values")
    if data.size and (data < 0).any():
        raise DataError(where, "counts contain negative values")
    if X is None:
        X = sp.csr_matrix(np.asarray(counts, dtype=np.float32))
    X = X.astype(np.float32)
    X.eliminate_zeros()
    return X


def _check_inside(xy_img: np.ndarray, shape: tuple[int, ...], ids: list[str], source: Any) -> None:
    h, w = shape[:2]
    out = (xy_img[:, 0] < 0) | (xy_img[:, 0] >= w) | (xy_img[:, 1] < 0) | (xy_img[:, 1] >= h)
    if out.any():
        i = int(np.where(out)[0][0])
        raise DataError(
            source,
            f"{int(out.sum())} of {len(ids)} spots lie outside the {w}x{h} image "
            f"(e.g. {ids[i]!r} at x={xy_img[i, 0]:.1f}, y={xy_img[i, 1]:.1f} image px); "
            "check the scale factor",
        )


def _median_nn(xy: np.ndarray) -> float:
    if len(xy) < 2:
        return 0.0
    from scipy.spatial import cKDTree  # imports in a fraction of sklearn's time; same distances

    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.median(d[:, 1]))


def source_path(adata: AnnData) -> str | None:
    """The file or folder the section was read from (``uns["senca_input"]["path"]``), for error messages."""
    return (adata.uns.get("senca_input") or {}).get("path") or None


def is_normalized(adata: AnnData) -> bool:
    """True when ``X`` holds pre-normalised values (read with ``normalized=True``), not counts."""
    return bool((adata.uns.get("senca_input") or {}).get("normalized", False))


def library_id(adata: AnnData) -> str | None:
    """The first library id under ``uns["spatial"]`` (None if there is none)."""
    spatial = adata.uns.get("spatial")
    if isinstance(spatial, dict) and spatial:
        return next(iter(spatial))
    return None


def get_image(adata: AnnData, prefer: Sequence[str] = ("fullres", "hires", "lowres")) -> tuple[np.ndarray, float] | None:
    """The section's H&E and its scale factor (image px per full-res px), or None."""
    lib = library_id(adata)
    if lib is None:
        return None
    entry = adata.uns["spatial"][lib]
    images = entry.get("images", {}) or {}
    sf = entry.get("scalefactors", {}) or {}
    keys = [k for k in prefer if k in images] + [k for k in images if k not in prefer]
    for key in keys:
        img = images[key]
        if img is None or np.asarray(img).size == 0:
            continue
        return np.asarray(img), float(sf.get(f"tissue_{key}_scalef", 1.0))
    return None


def fullres_reference(adata: AnnData) -> dict[str, Any] | None:
    """The reference to the section's full-resolution image file, or None.

    Stored by the readers in ``uns["spatial"][lib]["metadata"]["fullres_image"]``
    (see :func:`napari_senca.io.slide.image_reference`: path, size, header hash).
    """
    lib = library_id(adata)
    if lib is None:
        return None
    ref = (adata.uns["spatial"][lib].get("metadata") or {}).get(REFERENCE_KEY)
    return dict(ref) if isinstance(ref, dict) and ref.get("path") else None


def set_fullres_reference(adata: AnnData, ref: dict[str, Any]) -> None:
    """Store ``ref`` as the section's full-resolution image reference (read back by :func:`fullres_reference`).

    A section without a library (no ``uns["spatial"]`` entry) has no image to refer to: nothing is stored.
    """
    lib = library_id(adata)
    if lib is not None:
        adata.uns["spatial"][lib].setdefault("metadata", {})[REFERENCE_KEY] = ref


def get_image_levels(adata: AnnData) -> list[tuple[Any, float]]:
    """Pyramid levels of the section's full-resolution H&E, finest first.

    Each entry is ``(array, factor)``: an ``(H, W, 3)`` uint8 array-like that
    supports slicing (a lazily read dask array for a referenced TIFF / OME-TIFF
    / SVS file or SpatialData image element, else numpy), and the factor that maps ``obsm["spatial"]`` to
    that level's pixels. Slice windows out of them; never materialise a whole
    large level.

    Returns
    -------
    list
        The referenced file's levels (see :func:`fullres_reference`) when it
        is there and unchanged; otherwise ``[get_image(adata)]``, or ``[]``
        for a section without an image.
    """
    ref = fullres_reference(adata)
    if ref is not None:
        from .io.slide import open_reference, reference_problem

        if reference_problem(ref) is None:
            try:
                levels = open_reference(ref)
            except DataError:
                levels = []
            if levels:
                base = float(ref.get("scalef", 1.0))
                w0 = float(levels[0].shape[1])
                return [(lv, base * lv.shape[1] / w0) for lv in levels]
    img = get_image(adata)
    return [] if img is None else [img]


def spot_spacing(adata: AnnData) -> float:
    """Median distance from each spot to its nearest spot, in full-res pixels."""
    return _median_nn(np.asarray(adata.obsm["spatial"], dtype=np.float64))


def spot_diameter(adata: AnnData) -> float:
    """Spot diameter in full-res pixels (scale factors, else half the spacing)."""
    lib = library_id(adata)
    if lib is not None:
        d = adata.uns["spatial"][lib].get("scalefactors", {}).get("spot_diameter_fullres")
        if d:
            return float(d)
    return 0.5 * spot_spacing(adata)


def has_labels(adata: AnnData) -> bool:
    """True when ``obs["label"]`` exists and labels at least one spot."""
    return LABEL_KEY in adata.obs and bool(adata.obs[LABEL_KEY].notna().any())


def validate_section(adata: AnnData, path: str | PathLike | None = None) -> AnnData:
    """Check that an AnnData follows the section convention.

    Raises
    ------
    DataError
        Naming ``path`` and the first problem found.
    """
    if adata.n_obs == 0:
        raise DataError(path, "the section has no spots")
    if adata.n_vars == 0:
        raise DataError(path, "the section has no genes")
    if "spatial" not in adata.obsm:
        raise DataError(path, 'no spot positions: obsm["spatial"] is missing')
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise DataError(path, f'obsm["spatial"] has shape {xy.shape}, expected (n_spots, 2)')
    if not np.isfinite(xy[:, :2]).all():
        raise DataError(path, 'obsm["spatial"] contains NaN positions')
    X = adata.X
    data = X.data if sp.issparse(X) else np.asarray(X)
    if not np.issubdtype(np.asarray(data).dtype, np.number):
        raise DataError(path, "counts are not numeric")
    if np.asarray(data).size and not np.isfinite(data).all():
        raise DataError(path, "counts contain NaN or infinite values")
    if np.asarray(data).size and (np.asarray(data) < 0).any():
        raise DataError(path, "counts contain negative values")
    if adata.obs_names.has_duplicates:
        raise DataError(path, f"duplicated spot ids, e.g. {adata.obs_names[adata.obs_names.duplicated()][0]!r}")
    img = get_image(adata)
    if img is not None:
        _check_inside(xy[:, :2] * img[1], img[0].shape, list(adata.obs_names), path)
    return adata
