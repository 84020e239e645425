"""10x Visium sections from a Space Ranger ``outs/`` folder.

The count matrix comes from :func:`.tenx_h5.read_10x_h5`; this module finds the
files, reads the tissue positions, scale factors, images and labels, and
joins them on the barcodes.
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
from ..notes import add_excluded, add_warning, examples
from ..section import as_rgb_uint8, make_section
from .image import check_inside, load_image, positive_number, read_json, record_image_origin
from .labels import check_match, labels_by_id, match_ids, record_label_match
from .slide import image_reference, is_slide, open_levels, read_overview
from .tenx_h5 import decode, read_10x_h5

__all__ = ["read_visium", "read_spaceranger_folder", "read_10x_h5", "find_visium_outs"]

_H5_NAMES = ("filtered_feature_bc_matrix.h5",)
_SF_PREFIXES = ("tissue_", "spot_", "fiducial_", "regist_")
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

    Returns None when neither a ``filtered_feature_bc_matrix.h5`` nor a
    ``spatial/`` folder with tissue positions or scale factors is found
    (file names only). Never raises.
    """
    try:
        p = Path(path)
        if p.is_file() and p.name.endswith("filtered_feature_bc_matrix.h5"):
            return p.parent
        for d in (p, p / "outs"):
            if d.is_dir() and (
                _find_h5(d) is not None
                or _find_positions(d / "spatial") is not None
                or (d / "spatial" / "scalefactors_json.json").is_file()
            ):
                return d
    except OSError:
        return None
    return None


_POSITION_FILES = (
    "tissue_positions.csv",
    "tissue_positions.parquet",
    "tissue_positions_list.csv",
    "tissue_positions_list.txt",
)


def _find_positions(spatial: Path) -> Path | None:
    for name in _POSITION_FILES:
        if (spatial / name).is_file():
            return spatial / name
    return None


def _read_positions(path: Path) -> pd.DataFrame:
    """Tissue positions indexed by barcode, columns found by name.

    A headered CSV (Space Ranger >= 2) or a Parquet file (Space Ranger 3) is
    read by column name, so the column order does not matter; a headerless
    ``tissue_positions_list.csv`` (Space Ranger 1) has the documented order
    ``barcode, in_tissue, array_row, array_col, pxl_row_in_fullres,
    pxl_col_in_fullres``.
    """
    try:
        if path.suffix.lower() == ".parquet":
            df = _read_parquet(path)
        else:
            with open(path, encoding="utf-8") as fh:
                first = fh.readline()
            header = _is_header(first)
            df = pd.read_csv(path, header=0 if header else None, dtype={0: str})
            if not header:
                if df.shape[1] != 6:
                    raise DataError(
                        path,
                        f"expected 6 columns ({', '.join(_POS_V1_COLUMNS)}) in a file without a header, "
                        f"found {df.shape[1]}",
                    )
                df.columns = _POS_V1_COLUMNS
    except pd.errors.EmptyDataError:
        raise DataError(path, "the tissue positions file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(path, f"cannot read the tissue positions ({_first_line(exc)})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in _POS_V1_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            path,
            f"missing column(s) {', '.join(missing)} (expected {', '.join(_POS_V1_COLUMNS)}; "
            f"found {', '.join(map(str, df.columns[:8]))})",
        )
    df = df[_POS_V1_COLUMNS].copy()
    df["barcode"] = df["barcode"].astype(str).str.strip()
    for c in _POS_V1_COLUMNS[1:]:
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any():
            bad = df["barcode"][v.isna()].tolist()
            raise DataError(path, f"column {c!r} is not numeric or empty for {examples(bad, 'barcodes')}")
        df[c] = v
    dup = df["barcode"][df["barcode"].duplicated()].tolist()
    if dup:
        raise DataError(path, f"{examples(dup, 'barcodes')} listed twice")
    return df.set_index("barcode")


def _is_header(line: str) -> bool:
    """True when the first CSV line is a header (its coordinate fields are not numbers)."""
    fields = [f.strip().strip('"') for f in line.split(",")]
    if any(f.lower() in _POS_V1_COLUMNS for f in fields):
        return True
    for f in fields[1:]:
        try:
            float(f)
        except ValueError:
            return True
    return False


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError:
        raise DataError(path, "reading .parquet needs pyarrow (pip install pyarrow)") from None
    except Exception as exc:  # pyarrow raises its own error types on corrupt files
        raise DataError(path, f"cannot read the tissue positions ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _read_visium_labels(path: Path, barcodes: list[str]) -> tuple[list[Any], int, list[str]]:
    """Labels per barcode from ``labels.tsv``, with the number of rows and the unmatched ids.

    Columns by name: ``barcode`` (else the first column) and ``label`` (else
    the second). A file whose first line is already a barcode of the section
    has no header. Barcodes match exactly or after normalisation
    (:func:`~napari_senca.io.labels.match_ids`: ``-1`` suffix, ...).
    """
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if df.shape[1] >= 2 and "label" not in [str(c).strip().lower() for c in df.columns]:
            if match_ids([str(df.columns[0])], barcodes)[0] >= 0:
                df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, header=None)
                df.columns = ["barcode", "label"] + [f"c{i}" for i in range(2, df.shape[1])]
    except pd.errors.EmptyDataError:
        raise DataError(path, "the labels file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(path, f"cannot read the labels ({_first_line(exc)})") from None
    if df.shape[1] < 2:
        raise DataError(path, "expected two tab-separated columns: barcode, label")
    cols = {str(c).strip().lower(): c for c in df.columns}
    lab_col = cols.get("label", df.columns[1])
    id_col = cols.get("barcode", df.columns[0] if df.columns[0] != lab_col else df.columns[1])
    bc = df[id_col].astype(str).str.strip().tolist()
    out, unmatched = labels_by_id(bc, df[lab_col].tolist(), barcodes, path)
    return out, len(bc), unmatched


def read_visium(path: str | PathLike, *, fullres_image: str | PathLike | None = None) -> AnnData:
    """Read a Visium section from a Space Ranger ``outs`` folder.

    Parameters
    ----------
    path
        The ``outs`` folder, its parent, or the ``filtered_feature_bc_matrix.h5``.
        Expected inside: ``filtered_feature_bc_matrix.h5``,
        ``spatial/tissue_positions.csv`` (v2, with header; read by column
        name), ``spatial/tissue_positions.parquet`` (Space Ranger 3) or
        ``spatial/tissue_positions_list.csv`` (v1, headerless, documented
        column order), ``spatial/scalefactors_json.json`` and
        ``tissue_hires_image.png`` and/or ``tissue_lowres_image.png``;
        optionally ``labels.tsv`` (``barcode``, ``label``) in the folder or
        its parent.
    fullres_image
        Optional full-resolution H&E. A TIFF-family file (``.tif``,
        ``.tiff``, ``.btf``, ``.svs``; pyramidal or not) is read lazily: the
        section keeps a reference to it (see :mod:`napari_senca.io.slide`
        and :func:`~napari_senca.section.get_image_levels`), never its pixels.
        Any other image (PNG, JPEG) is decoded and stored under the image key
        ``"fullres"`` with scale factor 1.

    Returns
    -------
    AnnData
        A section with ``obsm["spatial"] = (pxl_col, pxl_row)`` in full-res
        pixels; only in-tissue spots that have counts (the others are
        counted in ``uns["senca_input"]["n_excluded"]``); only ``Gene
        Expression`` features; ``var_names`` are the feature names (one
        column per name, see
        :func:`~napari_senca.section.drop_duplicate_genes`),
        ``var["gene_ids"]`` the feature ids. Label rows are counted in
        ``uns["senca_input"]["labels"]``; barcodes match with or without
        their ``-1`` suffix.

    Raises
    ------
    DataError
        Missing or unreadable files, barcodes without positions, no
        ``Gene Expression`` feature, malformed scale factors that the reader
        uses, unreadable images, spots outside an image, or labels of which
        no row matches a spot.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(p, "not found")
    outs = find_visium_outs(p)
    if outs is None:
        raise DataError(p, "no filtered_feature_bc_matrix.h5 or spatial/ folder (expected a Space Ranger outs folder)")
    packed = sorted(outs.glob("*binned_outputs.tar*"))
    if _find_h5(outs) is None and packed:
        raise DataError(
            packed[0],
            "a Visium HD output whose bins are still packed: extract it (tar -xzf) beside outs/ and open the folder again",
        )
    return read_spaceranger_folder(
        outs, fullres_image=fullres_image, label_folders=(outs, outs.parent), library_folder=outs
    )


def read_spaceranger_folder(
    folder: Path,
    *,
    fullres_image: str | PathLike | None = None,
    label_folders: tuple[Path, ...] = (),
    library_folder: Path | None = None,
    source_format: str = "visium",
    extra_scalefactors: dict[str, float] | None = None,
) -> AnnData:
    """Read a folder holding ``filtered_feature_bc_matrix.h5`` and ``spatial/`` (see :func:`read_visium`).

    A standard Visium ``outs`` folder and a Visium HD ``square_XXXum`` folder
    have this layout. ``label_folders`` are searched for ``labels.tsv``;
    ``library_folder`` names the library when the HDF5 file does not.
    """
    h5, spatial_dir, pos_path = _spaceranger_files(folder)
    notes: list[str] = []
    X, barcodes, features, attrs = read_10x_h5(h5, notes)
    pos = _read_positions(pos_path)
    X, barcodes, sub, off_tissue, no_counts = _match_positions(X, barcodes, pos, h5, pos_path)
    spatial = np.stack(
        [sub["pxl_col_in_fullres"].to_numpy(np.float64), sub["pxl_row_in_fullres"].to_numpy(np.float64)], axis=1
    )

    sf_path = spatial_dir / "scalefactors_json.json"
    raw_sf = read_json(sf_path) if sf_path.is_file() else {}
    scalefactors = _scalefactors(raw_sf, sf_path)

    images, ref = _read_images(spatial_dir, raw_sf, fullres_image, spatial, barcodes)
    labels_path = next((p for p in (d / "labels.tsv" for d in label_folders) if p.is_file()), None)
    labels = None
    if labels_path is not None:
        labels, n_label_rows, label_unmatched = _read_visium_labels(labels_path, barcodes)
        label_warning = check_match(labels_path, n_label_rows, label_unmatched, barcodes)

    lib = _library_id(attrs, library_folder or folder)
    primary = next(iter(images), None)
    extra = {k: v for k, v in scalefactors.items() if k != "spot_diameter_fullres"}
    extra.update(extra_scalefactors or {})
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
        source=folder,
        source_format=source_format,
        counts_path=h5,
        var_columns={
            "gene_ids": features["gene_ids"].to_numpy(),
            "feature_types": features["feature_types"].to_numpy(),
        },
    )
    _attach_images(adata, lib, images, primary, ref)
    add_excluded(adata, "in_tissue = 0", off_tissue)
    add_excluded(adata, f"in {pos_path.name} (in tissue) without counts", no_counts)
    if labels_path is not None:
        record_label_match(adata, labels_path, n_label_rows, label_unmatched, label_warning)
    for note in notes:
        add_warning(adata, note)
    return adata


def _spaceranger_files(folder: Path) -> tuple[Path, Path, Path]:
    """The count matrix, ``spatial/`` and the tissue positions file of a Space Ranger folder (DataError if absent)."""
    h5 = _find_h5(folder)
    if h5 is None:
        raise DataError(folder / "filtered_feature_bc_matrix.h5", "count matrix file not found")
    spatial_dir = folder / "spatial"
    pos_path = _find_positions(spatial_dir)
    if pos_path is None:
        raise DataError(
            spatial_dir,
            "tissue positions file not found (expected tissue_positions.csv, tissue_positions.parquet "
            "or tissue_positions_list.csv)",
        )
    return h5, spatial_dir, pos_path


def _attach_images(adata: AnnData, lib: str, images: dict[str, _Image], primary: str | None, ref: dict | None) -> None:
    """Store the images besides the primary one and each one's scale; record the slide they came from."""
    entry = adata.uns["spatial"][lib]
    for key, (img, scale, _ip, _src) in images.items():
        entry["scalefactors"][f"tissue_{key}_scalef"] = float(scale)
        if key != primary:
            entry["images"][key] = as_rgb_uint8(img)
    # the largest image read (full resolution when given) leads back to the slide
    record_image_origin(adata, ref, None if primary is None else images[primary][2])


#: An image of a section: (pixels, scale from full-resolution pixels, its file, the file giving its scale).
_Image = tuple[np.ndarray, float, Path, Path | None]


def _read_images(
    spatial_dir: Path, raw_sf: dict, fullres_image: str | PathLike | None, spatial: np.ndarray, barcodes: list[str]
) -> tuple[dict[str, _Image], dict | None]:
    """The section's images by key (fullres, hires, lowres) and the lazy reference of a whole-slide image.

    Every image is checked to hold the spots. A slide given as ``fullres_image``
    is not read; when the folder has no other image, a small overview of it
    becomes ``hires``.
    """
    sf_path = spatial_dir / "scalefactors_json.json"
    images: dict[str, _Image] = {}
    ref = None
    if fullres_image is not None:
        fp = Path(fullres_image)
        if is_slide(fp):
            ref = image_reference(fp)
            check_inside(spatial, (ref["height"], ref["width"]), barcodes, fp, None)
        else:
            images["fullres"] = (load_image(fp), 1.0, fp, None)
    for key in ("hires", "lowres"):
        ip = spatial_dir / f"tissue_{key}_image.png"
        if ip.is_file():
            skey = f"tissue_{key}_scalef"
            if skey not in raw_sf:
                where = sf_path if sf_path.is_file() else spatial_dir
                problem = f"missing {skey!r}" if sf_path.is_file() else "scalefactors_json.json not found"
                raise DataError(where, f"{problem}: needed to place {ip.name}")
            scale = positive_number(raw_sf, skey, sf_path)
            images[key] = (load_image(ip), scale, ip, sf_path)
    if ref is not None and not images:  # only the slide: keep a small in-memory overview of it
        overview, factor = read_overview(open_levels(ref["path"]))
        images["hires"] = (overview, factor, Path(ref["path"]), None)
    for _key, (img, scale, ip, src) in images.items():
        check_inside(spatial * scale, img.shape, barcodes, ip, src)
    return images, ref


def _match_positions(
    X: sp.csr_matrix, barcodes: list[str], pos: pd.DataFrame, h5: Path, pos_path: Path
) -> tuple[sp.csr_matrix, list[str], pd.DataFrame, list[str], list[str]]:
    """Rows of the positions table for the matrix's barcodes (vectorised: Visium HD has 10^5-10^7 bins).

    Returns the in-tissue counts, their barcodes and positions, the matrix
    barcodes that are off tissue and the in-tissue barcodes without counts.
    """
    idx = pos.index.get_indexer(barcodes)
    if (idx < 0).any():
        missing = [barcodes[i] for i in np.flatnonzero(idx < 0)]
        raise DataError(
            h5,
            f"mismatched spot ids: {len(missing)} of {len(barcodes)} barcodes have no row in "
            f"{pos_path} ({examples(missing, 'barcodes')})",
        )
    in_tissue = pos["in_tissue"].to_numpy() != 0
    keep = in_tissue[idx]
    off_tissue = [barcodes[i] for i in np.flatnonzero(~keep)]
    if not keep.all():
        X = X[np.flatnonzero(keep)]
        barcodes = [barcodes[i] for i in np.flatnonzero(keep)]
    sub = pos.iloc[idx[keep]]
    in_h5 = np.zeros(len(pos), dtype=bool)
    in_h5[idx] = True
    no_counts = pos.index[in_tissue & ~in_h5].tolist()
    return X, barcodes, sub, off_tissue, no_counts


def _scalefactors(raw: dict[str, Any], path: Path) -> dict[str, float]:
    """The scale factors the reader uses, checked; other keys are kept only when they are numbers.

    ``spot_diameter_fullres`` must be a positive number when present (the
    ``tissue_*_scalef`` of an image are checked where the image is placed);
    any other key (``regist_target_img_scalef``, ``fiducial_diameter_fullres``...)
    is kept when it is a positive number and ignored otherwise (``null``...).
    """
    out: dict[str, float] = {}
    if "spot_diameter_fullres" in raw:
        out["spot_diameter_fullres"] = positive_number(raw, "spot_diameter_fullres", path)
    for key, v in raw.items():
        if key in out or not (key.startswith(_SF_PREFIXES) or key.endswith("_scalef")):
            continue
        if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) and v > 0:
            out[key] = float(v)
    return out


def _library_id(attrs: dict[str, Any], outs: Path) -> str:
    ids = attrs.get("library_ids")
    if ids is not None:
        vals = decode(np.atleast_1d(np.asarray(ids)))
        if len(vals) == 1 and vals[0]:
            return vals[0]
    folder = outs.parent if outs.name == "outs" else outs
    return folder.name or "visium"
