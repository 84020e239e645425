"""Legacy Spatial Transcriptomics (ST, 2016) sections, e.g. HER2ST.

Two layouts are read:

* a *section folder* (:func:`read_st_folder`) with ``counts.tsv[.gz]``,
  ``spots.tsv`` and optionally ``labels.tsv``, one H&E image and a JSON
  sidecar beside the image (``<image stem>.json`` with ``spot_to_image_scale``);
* the original `almaan/her2st <https://github.com/almaan/her2st>`_ repository
  (:func:`read_her2st_repo`), one section at a time.

Joins
-----
* counts rows are named ``"<x>x<y>"`` (array coordinates) and join the spot
  file on ``x``, ``y``. The spot file may list more spots than the counts
  (HER2ST A1, C1 and D1 list spots whose counts were dropped upstream): those
  extra spots are ignored. A counts row without a spot-file row is an error.
* Spot-file rows with ``selected == 0`` are not under the tissue; counts rows
  on them are dropped.
* ``labels.tsv`` joins on ``round(x)``, ``round(y)`` (its ``x``/``y`` are the
  adjusted array coordinates); rows without coordinates are ignored and
  ``undetermined`` means unlabelled.
* ``spots.tsv`` ``pixel_x``/``pixel_y`` are the full-resolution frame (the raw
  H&E); image px = spot px x ``spot_to_image_scale`` (1 without a sidecar).
"""

from __future__ import annotations

import gzip
import re
import zlib
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..errors import ConfigError, DataError
from ..notes import add_excluded, examples
from ..section import make_section
from .counts_table import read_integer_counts
from .image import (
    check_inside,
    find_images,
    image_size,
    load_image,
    read_scale_sidecar,
    record_image_origin,
)
from .labels import check_match, labels_by_id, record_label_match
from .slide import image_reference, is_slide, open_levels, read_overview

__all__ = ["read_st_folder", "read_her2st_repo", "find_st_counts", "her2st_repo_sections"]

_ID_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*x\s*(-?\d+(?:\.\d+)?)\s*$")
ImageArg = str | PathLike | bool | None
_ID_COLUMNS = ("spot", "spot_id", "id", "barcode", "row.names", "")


def find_st_counts(folder: str | PathLike) -> Path | None:
    """``counts.tsv.gz`` or ``counts.tsv`` inside ``folder`` (None if neither exists)."""
    d = Path(folder)
    for name in ("counts.tsv.gz", "counts.tsv"):
        if (d / name).is_file():
            return d / name
    return None


def read_st_folder(path: str | PathLike, *, image: ImageArg = None) -> AnnData:
    """Read a legacy ST section folder (the layout of ``her2st/<section>/``).

    Parameters
    ----------
    path
        Folder with ``counts.tsv[.gz]`` (spots x genes, first column the spot
        ids ``"<x>x<y>"``), ``spots.tsv`` (``x, y, pixel_x, pixel_y`` and
        optionally ``selected``), optional ``labels.tsv`` (``x, y, label``), an
        optional H&E (``.jpg``, ``.jpeg``, ``.png``, ``.tif``, ``.tiff``) and an
        optional JSON sidecar ``<image stem>.json`` with ``spot_to_image_scale``.
    image
        ``None`` uses the one image in the folder (if any); a path reads that
        image (its sidecar is ``<stem>.json`` beside it); ``False`` reads no image.

    Returns
    -------
    AnnData
        A section (see :mod:`napari_senca.section`), library id = folder name.

    Raises
    ------
    DataError
        Missing or unreadable files, non-numeric / negative / NaN counts, spot
        ids that do not match between counts and positions, spots outside the
        image, an unreadable image or a malformed sidecar.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(folder, "not a folder (expected a legacy ST section folder)")
    counts_path = find_st_counts(folder)
    if counts_path is None:
        raise DataError(folder, "no counts.tsv.gz or counts.tsv in this folder")
    spots_path = folder / "spots.tsv"
    labels_path = folder / "labels.tsv"
    image_path, sidecar = _choose_image(folder, image)
    return _read_st(
        counts_path,
        spots_path,
        labels_path if labels_path.is_file() else None,
        image_path,
        sidecar,
        library_id=folder.name,
        source=folder,
        source_format="st",
    )


def her2st_repo_sections(root: str | PathLike) -> list[str]:
    """Sections with a counts file in a her2st repository checkout, sorted."""
    d = Path(root) / "data" / "ST-cnts"
    if not d.is_dir():
        return []
    names = {f.name.split(".")[0] for f in d.iterdir() if f.name.endswith((".tsv", ".tsv.gz"))}
    return sorted(names)


def read_her2st_repo(root: str | PathLike, section: str, *, image: ImageArg = None) -> AnnData:
    """Read one section of a checkout of the almaan/her2st repository.

    Parameters
    ----------
    root
        Repository root, holding ``data/ST-cnts/<S>.tsv.gz``,
        ``data/ST-spotfiles/<S>_selection.tsv``, ``data/ST-imgs/<P>/<S>/*.jpg``
        and ``data/ST-pat/lbl/<S>_labeled_coordinates.tsv`` (or under ``res/``).
    section
        Section name, e.g. ``"A1"``.
    image
        ``None`` uses the section's image under ``data/ST-imgs`` (if any), a
        path reads that image instead, ``False`` reads no image. The raw
        images are in the spot-pixel frame (scale 1).

    Raises
    ------
    ConfigError
        When ``section`` is not given.
    DataError
        As :func:`read_st_folder`; also an unknown section.
    """
    repo = Path(root)
    if not section:
        avail = ", ".join(her2st_repo_sections(repo)) or "none found"
        raise ConfigError(f"{repo}: a her2st repository holds many sections; choose one (available: {avail})")
    section = str(section)
    data = repo / "data"
    counts_path = None
    for name in (f"{section}.tsv.gz", f"{section}.tsv"):
        if (data / "ST-cnts" / name).is_file():
            counts_path = data / "ST-cnts" / name
            break
    if counts_path is None:
        avail = ", ".join(her2st_repo_sections(repo)) or "none"
        raise DataError(data / "ST-cnts", f"no counts for section {section!r} (available: {avail})")
    spots_path = data / "ST-spotfiles" / f"{section}_selection.tsv"
    labels_path = None
    for base in (data, repo / "res"):
        cand = base / "ST-pat" / "lbl" / f"{section}_labeled_coordinates.tsv"
        if cand.is_file():
            labels_path = cand
            break
    image_path: Path | None = None
    sidecar: Path | None = None
    if image is None:
        image_path = _her2st_repo_image(data / "ST-imgs", section)
    elif image is not False and image is not True:
        image_path, sidecar = _explicit_image(Path(image))
    return _read_st(
        counts_path,
        spots_path,
        labels_path,
        image_path,
        sidecar,
        library_id=section,
        source=repo,
        source_format="her2st_repo",
    )


def _her2st_repo_image(imgs: Path, section: str) -> Path | None:
    if not imgs.is_dir():
        return None
    candidates = [imgs / section[:1] / section]
    candidates += sorted(p for p in imgs.rglob(section) if p.is_dir() and p not in candidates)
    for d in candidates:
        found = find_images(d)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(f.name for f in found)
            raise DataError(d, f"several images ({names}); choose one with image= (CLI: --image)")
    return None


def _explicit_image(p: Path) -> tuple[Path, Path | None]:
    if not p.is_file():
        raise DataError(p, "image file not found")
    side = p.with_suffix(".json")
    return p, side if side.is_file() else None


def _choose_image(folder: Path, image: ImageArg) -> tuple[Path | None, Path | None]:
    if image is False:
        return None, None
    if image is not None and image is not True:
        return _explicit_image(Path(image))
    found = find_images(folder)
    if not found:
        return None, None
    if len(found) > 1:
        names = ", ".join(f.name for f in found)
        raise DataError(folder, f"several images ({names}); choose one with image= (CLI: --image)")
    side = found[0].with_suffix(".json")
    return found[0], side if side.is_file() else None


def _read_table(path: Path, what: str, **kw: object) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(path, f"{what} file not found")
    try:
        return pd.read_csv(path, sep="\t", **kw)  # type: ignore[call-overload]
    except pd.errors.EmptyDataError:
        raise DataError(path, f"the {what} file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError, zlib.error, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DataError(path, f"cannot read the {what} file ({first})") from None


def _parse_id(spot_id: str) -> tuple[float, float] | None:
    m = _ID_RE.match(spot_id)
    if m is None:
        return None
    return float(m.group(1)), float(m.group(2))


def _numeric_column(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    vals = pd.to_numeric(df[col], errors="coerce")
    bad = vals.isna() & df[col].notna()
    if bad.any():
        raise DataError(path, f"column {col!r} is not numeric (e.g. {df[col][bad].iloc[0]!r})")
    return vals.to_numpy(dtype=np.float64)


def _header_names(path: Path, counts: pd.DataFrame) -> list[str]:
    """The gene names as written in the header (pandas renames repeats ``ERBB2`` -> ``ERBB2.1``)."""
    names = [str(g) for g in counts.columns]
    if len(set(names)) == len(names) and not any(re.search(r"\.\d+$", g) for g in names):
        return names
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:  # one line: read_csv makes a Series per column
        raw = [g.strip().strip('"') for g in fh.readline().rstrip("\r\n").split("\t")[1:]]
    return raw if len(raw) == len(names) else names


def _short(v: object, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _counts_matrix(counts: pd.DataFrame, path: Path) -> np.ndarray:
    if counts.shape[0] == 0:
        return np.zeros(counts.shape, dtype=np.float64)
    if counts.shape[1] == 0 or (counts.shape[1] == 1 and "," in str(counts.columns[0])):
        raise DataError(path, "not a tab-separated table (expected spots x genes with tabs between the columns)")
    non_num = [c for c, t in counts.dtypes.items() if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t))]
    if non_num:
        col = non_num[0]
        vals = counts[col]
        bad = vals[pd.to_numeric(vals, errors="coerce").isna() & vals.notna()]
        example = f" (e.g. {_short(bad.iloc[0])} for spot {_short(bad.index[0])})" if len(bad) else ""
        raise DataError(path, f"counts are not numeric: {examples(non_num, 'genes')}{example}")
    return counts.to_numpy(dtype=np.float64)


#: A TIFF-family H&E with more pixels than this is read lazily (:mod:`napari_senca.io.slide`): the
#: section holds a ~2,000 px overview and a reference to the file, patches come from its levels.
LAZY_TIFF_MIN_PIXELS = 50_000_000


def _section_image(
    path: Path, scale: float, spatial: np.ndarray, ids: list[str], sidecar: Path | None
) -> tuple[np.ndarray, float, dict | None]:
    """``(in-memory image, its pixels per spatial unit, slide reference or None)``; spots checked inside."""
    w, h = image_size(path)
    if is_slide(path) and w * h > LAZY_TIFF_MIN_PIXELS:
        ref = image_reference(path, scalef=scale)
        check_inside(spatial * scale, (ref["height"], ref["width"]), ids, path, sidecar)
        overview, factor = read_overview(open_levels(ref["path"]))
        return overview, scale * factor, ref
    img = load_image(path)
    check_inside(spatial * scale, img.shape, ids, path, sidecar)
    return img, scale, None


def _read_counts(counts_path: Path) -> tuple[list[str], list[str], sp.csr_matrix, list[tuple[float, float]]]:
    """Spot ids, genes, counts and each id's (x, y) grid position from a ``<x>x<y>`` counts table."""
    fast = read_integer_counts(counts_path)  # None: not plain integers, read (and checked) by pandas
    if fast is not None:
        ids, genes, X = fast
    else:
        counts = _read_table(counts_path, "counts", index_col=0)
        ids = [str(i).strip() for i in counts.index]
        X = _counts_matrix(counts, counts_path)
        genes = _header_names(counts_path, counts)
    keys: list[tuple[float, float]] = []
    for sid in ids:
        k = _parse_id(sid)
        if k is None:
            raise DataError(counts_path, f"spot id {sid!r} is not of the form '<x>x<y>'")
        keys.append(k)
    return ids, genes, X, keys


def _read_spots(spots_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Columns x, y, pixel_x, pixel_y and selected (all True when absent) of ``spots.tsv``."""
    spots = _read_table(spots_path, "spot positions")
    spots.columns = [str(c).strip() for c in spots.columns]
    missing = [c for c in ("x", "y", "pixel_x", "pixel_y") if c not in spots.columns]
    if missing:
        raise DataError(
            spots_path,
            f"missing column(s) {', '.join(missing)} (expected x, y, pixel_x, pixel_y[, selected])",
        )
    cols = [_numeric_column(spots, c, spots_path) for c in ("x", "y", "pixel_x", "pixel_y")]
    selected = (
        _numeric_column(spots, "selected", spots_path) != 0
        if "selected" in spots.columns
        else np.ones(len(spots), dtype=bool)
    )
    return cols[0], cols[1], cols[2], cols[3], selected


def _read_st(
    counts_path: Path,
    spots_path: Path,
    labels_path: Path | None,
    image_path: Path | None,
    sidecar: Path | None,
    *,
    library_id: str,
    source: Path,
    source_format: str,
) -> AnnData:
    ids, genes, X, keys = _read_counts(counts_path)
    sx, sy, px, py, selected = _read_spots(spots_path)
    pos: dict[tuple[float, float], int] = {}
    for i, k in enumerate(zip(sx.tolist(), sy.tolist(), strict=True)):
        if k in pos:
            raise DataError(spots_path, f"spot x={k[0]:g}, y={k[1]:g} is listed twice")
        pos[k] = i

    rows = [pos.get(k) for k in keys]
    unmatched = [sid for sid, r in zip(ids, rows, strict=True) if r is None]
    if unmatched:
        raise DataError(
            counts_path,
            f"mismatched spot ids: {len(unmatched)} of {len(ids)} counts rows have no position in "
            f"{spots_path} ({examples(unmatched)}); counts ids '<x>x<y>' must match spots.tsv x, y",
        )
    idx = np.asarray(rows, dtype=np.int64)
    keep = selected[idx] if len(idx) else np.zeros(0, dtype=bool)
    if len(ids) and not keep.any():
        raise DataError(spots_path, "no counts spot is selected (selected == 1): the section has no spots")
    not_selected = [s for s, k in zip(ids, keep, strict=True) if not k]
    has_counts = np.zeros(len(sx), dtype=bool)
    has_counts[idx] = True
    no_counts = [f"{sx[i]:g}x{sy[i]:g}" for i in np.where(selected & ~has_counts)[0]]
    if not keep.all():
        X = X[keep]
        ids = [s for s, k in zip(ids, keep, strict=True) if k]
        idx = idx[keep]
    spatial = np.stack([px[idx], py[idx]], axis=1) if len(idx) else np.zeros((0, 2))
    bad = ~np.isfinite(spatial).all(axis=1)
    if bad.any():
        raise DataError(spots_path, f"spot {ids[int(np.where(bad)[0][0])]!r} has a missing pixel_x / pixel_y")

    labels = None
    if labels_path is not None:
        labels, n_label_rows, label_unmatched = _read_labels(labels_path, ids, sx[idx], sy[idx])
        label_warning = check_match(labels_path, n_label_rows, label_unmatched, ids)

    img, ref = None, None
    scale = 1.0
    if image_path is not None:
        if sidecar is not None:
            scale = read_scale_sidecar(sidecar)
        img, scale, ref = _section_image(image_path, scale, spatial, ids, sidecar)

    adata = make_section(
        X,
        ids,
        genes,
        spatial,
        array_row=sy[idx],
        array_col=sx[idx],
        image=img,
        image_scalef=scale,
        image_key="hires",
        labels=labels,
        library_id=library_id,
        source=source,
        source_format=source_format,
        counts_path=counts_path,
    )
    record_image_origin(adata, ref, image_path)  # a large TIFF: a reference and an overview, not the pixels
    add_excluded(adata, "selected = 0", not_selected)
    add_excluded(adata, f"in {spots_path.name} without counts", no_counts)
    if labels_path is not None:
        record_label_match(adata, labels_path, n_label_rows, label_unmatched, label_warning)
    return adata


def _read_labels(path: Path, ids: list[str], x: np.ndarray, y: np.ndarray) -> tuple[list[object], int, list[str]]:
    """Per-spot labels from ``labels.tsv`` (None where a spot has no label row).

    Columns are found by name: ``x``, ``y``, ``label`` (joined on the rounded
    coordinates), or a spot-id column and ``label`` (joined on the ids, see
    :func:`~napari_senca.io.labels.match_ids`).

    Returns
    -------
    labels, n_rows, unmatched
        The per-spot labels, the number of label rows and the ids of the rows
        that match no spot (``"<x>x<y>"`` for coordinate rows, ``"line <n>: no
        x/y"`` for rows without coordinates).
    """
    df = _read_table(path, "labels")
    df.columns = [str(c).strip() for c in df.columns]
    if {"x", "y", "label"} <= set(df.columns):
        lx = pd.to_numeric(df["x"], errors="coerce")
        ly = pd.to_numeric(df["y"], errors="coerce")
        ok = (lx.notna() & ly.notna()).to_numpy()
        table: dict[tuple[int, int], object] = {}
        for kx, ky, lab in zip(
            np.round(lx[ok]).astype(np.int64).tolist(),
            np.round(ly[ok]).astype(np.int64).tolist(),
            df["label"][ok].tolist(),
            strict=True,
        ):
            prev = table.setdefault((kx, ky), lab)
            if prev != lab and not (pd.isna(prev) and pd.isna(lab)):
                raise DataError(path, f"spot x={kx}, y={ky} has two labels ({prev!r} and {lab!r})")
        spot_keys = list(zip(np.round(x).astype(np.int64).tolist(), np.round(y).astype(np.int64).tolist(), strict=True))
        present = set(spot_keys)
        row_keys = zip(np.round(lx.fillna(0)).astype(np.int64).tolist(), np.round(ly.fillna(0)).astype(np.int64).tolist(), strict=True)
        unmatched = [
            f"line {i + 2}: no x/y" if not has else f"{k[0]}x{k[1]}"
            for i, (k, has) in enumerate(zip(row_keys, ok.tolist(), strict=True))
            if not has or k not in present
        ]
        return [table.get(k) for k in spot_keys], len(df), unmatched
    if "label" in df.columns or df.shape[1] == 2:
        col = "label" if "label" in df.columns else df.columns[1]
        id_col = next((c for c in df.columns if c.lower() in _ID_COLUMNS and c != col), None)
        if id_col is None and df.columns[0] != col:
            id_col = df.columns[0]
        if id_col is not None:
            label_ids = df[id_col].astype(str).str.strip().tolist()
            out, unmatched = labels_by_id(label_ids, df[col].tolist(), ids, path)
            return out, len(label_ids), unmatched
    raise DataError(path, "expected columns x, y, label (or spot id, label)")
