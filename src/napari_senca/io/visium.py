"""10x Visium sections from a Space Ranger ``outs/`` folder.

The count matrix is read from the 10x HDF5 file with :mod:`h5py` directly
(both the Cell Ranger >= 3 ``matrix/`` layout and the older per-genome
layout), because scanpy's reader insists on fields that trimmed or re-written
files (such as the shared DLPFC section) do not carry.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..errors import DataError
from ..section import as_rgb_uint8, make_section
from .image import check_inside, load_image, positive_number, read_json

__all__ = ["read_visium", "read_10x_h5", "find_visium_outs"]

_H5_NAMES = ("filtered_feature_bc_matrix.h5",)
_POS_V1_COLUMNS = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]


def _find_h5(d: Path) -> Path | None:
    for name in _H5_NAMES:
        if (d / name).is_file():
            return d / name
    if d.is_dir():
        hits = sorted(d.glob("*filtered_feature_bc_matrix.h5"))
        if len(hits) == 1:
            return hits[0]
    return None


def find_visium_outs(path: str | PathLike) -> Path | None:
    """The Space Ranger ``outs`` folder for ``path`` (itself, ``path/outs``, or the h5's folder).

    Returns None when no ``filtered_feature_bc_matrix.h5`` or ``spatial/``
    folder is found. Never raises.
    """
    try:
        p = Path(path)
        if p.is_file() and p.name.endswith("filtered_feature_bc_matrix.h5"):
            return p.parent
        for d in (p, p / "outs"):
            if d.is_dir() and (_find_h5(d) is not None or _find_positions(d / "spatial") is not None):
                return d
    except OSError:
        return None
    return None


def _find_positions(spatial: Path) -> Path | None:
    for name in ("tissue_positions.csv", "tissue_positions_list.csv", "tissue_positions_list.txt"):
        if (spatial / name).is_file():
            return spatial / name
    return None


def _decode(a: np.ndarray) -> list[str]:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in a.tolist()]


def read_10x_h5(path: str | PathLike) -> tuple[sp.csr_matrix, list[str], pd.DataFrame, dict[str, Any]]:
    """Read a 10x HDF5 feature-barcode matrix.

    Parameters
    ----------
    path
        ``filtered_feature_bc_matrix.h5`` (Cell Ranger / Space Ranger >= 3
        ``matrix/`` layout, or the older ``<genome>/`` layout).

    Returns
    -------
    X, barcodes, features, attrs
        Barcodes x features counts (CSR), barcodes, a features table with
        columns ``gene_ids``, ``name``, ``feature_types`` (gene-expression
        features only), and the file's root attributes.

    Raises
    ------
    DataError
        When the file is not readable HDF5 or lacks a required dataset.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise DataError(p, "count matrix file not found")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DataError(p, f"not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
    with f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        if "matrix" in f:
            g = f["matrix"]
            need = ["data", "indices", "indptr", "shape", "barcodes", "features/name"]
            feats_ids = "features/id"
            feats_types = "features/feature_type"
            feats_names = "features/name"
        else:
            groups = [k for k in f if isinstance(f[k], h5py.Group)]
            if not groups:
                raise DataError(p, "no 'matrix' group: not a 10x feature-barcode HDF5 file")
            g = f[groups[0]]
            need = ["data", "indices", "indptr", "shape", "barcodes", "gene_names"]
            feats_ids = "genes"
            feats_types = ""
            feats_names = "gene_names"
        absent = [k for k in need if k not in g]
        if absent:
            raise DataError(p, f"missing dataset {g.name.strip('/')}/{absent[0]} (not a 10x feature-barcode matrix)")
        try:
            data = np.asarray(g["data"][()])
            indices = np.asarray(g["indices"][()], dtype=np.int64)
            indptr = np.asarray(g["indptr"][()], dtype=np.int64)
            shape = tuple(int(v) for v in g["shape"][()])
            barcodes = _decode(np.asarray(g["barcodes"][()]))
            names = _decode(np.asarray(g[feats_names][()]))
            ids = _decode(np.asarray(g[feats_ids][()])) if feats_ids in g else list(names)
            types = (
                _decode(np.asarray(g[feats_types][()]))
                if feats_types and feats_types in g
                else ["Gene Expression"] * len(names)
            )
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise DataError(p, f"cannot read the count matrix ({exc})") from None
    n_feat, n_bc = shape if len(shape) == 2 else (-1, -1)
    if (
        n_feat != len(names)
        or n_bc != len(barcodes)
        or len(indptr) != n_bc + 1
        or len(ids) != n_feat
        or len(types) != n_feat
        or len(data) != len(indices)
        or (len(indptr) and int(indptr[-1]) != len(data))
    ):
        raise DataError(
            p,
            f"inconsistent matrix: shape {shape}, {len(names)} features, {len(barcodes)} barcodes, "
            f"{len(indptr)} indptr entries, {len(data)} values",
        )
    if len(indices) and (indices.min() < 0 or indices.max() >= max(n_feat, 1)):
        raise DataError(p, "inconsistent matrix: feature indices out of range")
    if not np.issubdtype(data.dtype, np.number):
        raise DataError(p, "counts are not numeric")
    X = sp.csc_matrix((data, indices, indptr), shape=(n_feat, n_bc)).T.tocsr()
    features = pd.DataFrame({"gene_ids": ids, "name": names, "feature_types": types})
    gex = features["feature_types"].str.lower().str.contains("gene expression").to_numpy()
    if gex.any() and not gex.all():
        X = X[:, np.where(gex)[0]]
        features = features[gex].reset_index(drop=True)
    return X, barcodes, features, attrs


def _read_positions(path: Path) -> pd.DataFrame:
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
        header = "barcode" in first.lower()
        df = pd.read_csv(path, header=0 if header else None, dtype={0: str})
    except pd.errors.EmptyDataError:
        raise DataError(path, "the tissue positions file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(path, f"cannot read the tissue positions ({str(exc).splitlines()[0]})") from None
    if df.shape[1] != 6:
        raise DataError(
            path,
            f"expected 6 columns ({', '.join(_POS_V1_COLUMNS)}), found {df.shape[1]}",
        )
    df.columns = _POS_V1_COLUMNS
    df["barcode"] = df["barcode"].astype(str).str.strip()
    for c in _POS_V1_COLUMNS[1:]:
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any():
            i = int(np.where(v.isna())[0][0])
            raise DataError(path, f"column {c!r} is not numeric (barcode {df['barcode'].iloc[i]!r})")
        df[c] = v
    if df["barcode"].duplicated().any():
        raise DataError(path, f"barcode {df['barcode'][df['barcode'].duplicated()].iloc[0]!r} is listed twice")
    return df.set_index("barcode")


def _read_visium_labels(path: Path, barcodes: list[str]) -> list[Any]:
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(path, "the labels file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(path, f"cannot read the labels ({str(exc).splitlines()[0]})") from None
    if df.shape[1] < 2:
        raise DataError(path, "expected two tab-separated columns: barcode, label")
    col = "label" if "label" in df.columns else df.columns[1]
    bc = df.iloc[:, 0].astype(str).str.strip()
    table = dict(zip(bc, df[col], strict=True))
    return [table.get(b) for b in barcodes]


def read_visium(path: str | PathLike, *, fullres_image: str | PathLike | None = None) -> AnnData:
    """Read a Visium section from a Space Ranger ``outs`` folder.

    Parameters
    ----------
    path
        The ``outs`` folder, its parent, or the ``filtered_feature_bc_matrix.h5``.
        Expected inside: ``filtered_feature_bc_matrix.h5``,
        ``spatial/tissue_positions.csv`` (v2, with header) or
        ``spatial/tissue_positions_list.csv`` (v1, headerless),
        ``spatial/scalefactors_json.json`` and ``tissue_hires_image.png`` and/or
        ``tissue_lowres_image.png``; optionally ``labels.tsv`` (barcode, label
        with a header) in the folder or its parent.
    fullres_image
        Optional full-resolution H&E (TIFF or other), stored under the image
        key ``"fullres"`` with scale factor 1.

    Returns
    -------
    AnnData
        A section with ``obsm["spatial"] = (pxl_col, pxl_row)`` in full-res
        pixels; only in-tissue spots that have counts; ``var_names`` are the
        feature names (made unique), ``var["gene_ids"]`` the feature ids.

    Raises
    ------
    DataError
        Missing or unreadable files, barcodes without positions, malformed
        scale factors, unreadable images or spots outside an image.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(p, "not found")
    outs = find_visium_outs(p)
    if outs is None:
        raise DataError(p, "no filtered_feature_bc_matrix.h5 or spatial/ folder (expected a Space Ranger outs folder)")
    h5 = _find_h5(outs)
    if h5 is None:
        raise DataError(outs / "filtered_feature_bc_matrix.h5", "count matrix file not found")
    spatial_dir = outs / "spatial"
    pos_path = _find_positions(spatial_dir)
    if pos_path is None:
        raise DataError(spatial_dir / "tissue_positions.csv", "tissue positions file not found (nor tissue_positions_list.csv)")

    X, barcodes, features, attrs = read_10x_h5(h5)
    pos = _read_positions(pos_path)
    missing = [b for b in barcodes if b not in pos.index]
    if missing:
        raise DataError(
            h5,
            f"mismatched spot ids: {len(missing)} of {len(barcodes)} barcodes have no row in "
            f"{pos_path} (e.g. {missing[0]!r})",
        )
    sub = pos.loc[barcodes]
    keep = (sub["in_tissue"].to_numpy() != 0)
    if not keep.all():
        X = X[np.where(keep)[0]]
        barcodes = [b for b, k in zip(barcodes, keep, strict=True) if k]
        sub = sub[keep]
    spatial = np.stack(
        [sub["pxl_col_in_fullres"].to_numpy(np.float64), sub["pxl_row_in_fullres"].to_numpy(np.float64)], axis=1
    )

    sf_path = spatial_dir / "scalefactors_json.json"
    scalefactors: dict[str, float] = {}
    if sf_path.is_file():
        raw = read_json(sf_path)
        for key in raw:
            if key.startswith(("tissue_", "spot_", "fiducial_", "regist_")) or key.endswith("_scalef"):
                scalefactors[key] = positive_number(raw, key, sf_path)

    images: dict[str, tuple[np.ndarray, float, Path, Path | None]] = {}
    if fullres_image is not None:
        fp = Path(fullres_image)
        images["fullres"] = (load_image(fp), 1.0, fp, None)
    for key in ("hires", "lowres"):
        ip = spatial_dir / f"tissue_{key}_image.png"
        if ip.is_file():
            skey = f"tissue_{key}_scalef"
            if skey not in scalefactors:
                where = sf_path if sf_path.is_file() else spatial_dir
                problem = f"missing {skey!r}" if sf_path.is_file() else "scalefactors_json.json not found"
                raise DataError(where, f"{problem}: needed to place {ip.name}")
            images[key] = (load_image(ip), scalefactors[skey], ip, sf_path)
    for _key, (img, scale, ip, src) in images.items():
        check_inside(spatial * scale, img.shape, barcodes, ip, src)

    labels = None
    for cand in (outs / "labels.tsv", outs.parent / "labels.tsv"):
        if cand.is_file():
            labels = _read_visium_labels(cand, barcodes)
            break

    lib = _library_id(attrs, outs)
    primary = next(iter(images), None)
    extra = {k: v for k, v in scalefactors.items() if k != "spot_diameter_fullres"}
    adata = make_section(
        X,
        barcodes,
        features["name"].tolist(),
        spatial,
        array_row=sub["array_row"].to_numpy(np.float64),
        array_col=sub["array_col"].to_numpy(np.float64),
        image=None if primary is None else images[primary][0],
        image_scalef=1.0 if primary is None else images[primary][1],
        image_key=primary or "hires",
        spot_diameter_fullres=scalefactors.get("spot_diameter_fullres"),
        extra_scalefactors=extra,
        labels=labels,
        library_id=lib,
        source=outs,
        source_format="visium",
        counts_path=h5,
    )
    entry = adata.uns["spatial"][lib]
    for key, (img, scale, _ip, _src) in images.items():
        if key == primary:
            continue
        entry["images"][key] = as_rgb_uint8(img)
        entry["scalefactors"][f"tissue_{key}_scalef"] = float(scale)
    adata.var["gene_ids"] = features["gene_ids"].to_numpy()
    adata.var["feature_types"] = features["feature_types"].to_numpy()
    return adata


def _library_id(attrs: dict[str, Any], outs: Path) -> str:
    ids = attrs.get("library_ids")
    if ids is not None:
        vals = _decode(np.atleast_1d(np.asarray(ids)))
        if len(vals) == 1 and vals[0]:
            return vals[0]
    folder = outs.parent if outs.name == "outs" else outs
    return folder.name or "visium"
