"""10x Visium HD sections: one bin size of a Space Ranger ``binned_outputs`` folder.

Space Ranger (>= 3) writes, for a Visium HD run::

    outs/
      binned_outputs/
        square_002um/  square_008um/  square_016um/
          filtered_feature_bc_matrix.h5
          spatial/
            tissue_positions.parquet      (barcode, in_tissue, array_row, array_col,
                                           pxl_row_in_fullres, pxl_col_in_fullres)
            scalefactors_json.json        (bin_size_um, microns_per_pixel,
                                           spot_diameter_fullres = bin side, tissue_*_scalef)
            tissue_hires_image.png  tissue_lowres_image.png
      spatial/ ...

Each ``square_XXXum`` folder has the layout of a standard Visium ``outs``
folder, so it is read by :func:`~napari_senca.io.visium.read_spaceranger_folder`
(sparse counts, positions by column name). The full-resolution H&E (the
microscope image given to Space Ranger) is not in ``outs``: it is passed by
the user, or found beside the data (a single TIFF-family file in
``microscope_image/`` or named ``*tissue_image.*`` next to ``outs``) and read
lazily (:mod:`napari_senca.io.slide`).
"""

from __future__ import annotations

import re
from os import PathLike
from pathlib import Path

from anndata import AnnData

from ..errors import ConfigError, DataError
from ..notes import add_warning, input_info
from .slide import is_slide
from .visium import read_spaceranger_folder

__all__ = ["DEFAULT_BIN_SIZE", "read_visium_hd", "find_hd_bins", "find_fullres_image"]

#: Bin size (um) read when none is asked for: 16 um bins (100k-200k per section) keep sections interactive.
DEFAULT_BIN_SIZE = 16
_BIN_DIR = re.compile(r"^square_(\d+)um$")
_H5 = "filtered_feature_bc_matrix.h5"


def _bin_of(d: Path) -> int | None:
    m = _BIN_DIR.match(d.name)
    return int(m.group(1)) if m else None


def find_hd_bins(path: str | PathLike) -> dict[int, Path]:
    """``{bin size in um: square_XXXum folder}`` for a Visium HD path, ``{}`` when it is none.

    ``path`` may be the ``outs`` folder, its parent, ``binned_outputs``, one
    ``square_XXXum`` folder (then only that bin size) or that folder's
    ``filtered_feature_bc_matrix.h5``. Looks at names only; never raises.
    """
    try:
        p = Path(path)
        if p.is_file():
            p = p.parent if p.name.endswith(_H5) else Path()
        size = _bin_of(p)
        if size is not None:
            return {size: p} if ((p / _H5).is_file() or (p / "spatial").is_dir()) else {}
        for d in (p, p / "binned_outputs", p / "outs" / "binned_outputs"):
            if d.name == "binned_outputs" and d.is_dir():
                found = {_bin_of(s): s for s in d.iterdir() if s.is_dir() and _bin_of(s) is not None}
                if found:
                    return dict(sorted(found.items()))  # type: ignore[arg-type]
    except OSError:
        return {}
    return {}


def _outs_of(square: Path) -> Path:
    return square.parent.parent if square.parent.name == "binned_outputs" else square


def find_fullres_image(outs: Path) -> tuple[Path | None, list[Path]]:
    """The microscope image beside a Visium HD ``outs`` folder, and every candidate seen.

    Candidates are TIFF-family files (read lazily) in ``microscope_image/``
    of ``outs`` or its parent, or named ``*tissue_image.<tif|tiff|btf>`` in
    ``outs`` or its parent. The image is used only when there is exactly one.
    """
    seen: list[Path] = []
    for d in (outs, outs.parent):
        for folder, pattern in ((d / "microscope_image", "*"), (d, "*tissue_image.*")):
            if folder.is_dir():
                seen += [f for f in sorted(folder.glob(pattern)) if f.is_file() and is_slide(f)]
    seen = list(dict.fromkeys(f.resolve() for f in seen))
    return (seen[0] if len(seen) == 1 else None), seen


def read_visium_hd(
    path: str | PathLike,
    *,
    bin_size: int | None = None,
    fullres_image: str | PathLike | None = None,
) -> AnnData:
    """Read one bin size of a Visium HD section.

    Parameters
    ----------
    path
        The Space Ranger ``outs`` folder (or its parent, or ``binned_outputs``),
        or one ``square_XXXum`` folder (or its ``filtered_feature_bc_matrix.h5``).
    bin_size
        Bin side in um (2, 8 or 16 as Space Ranger writes them); default
        :data:`DEFAULT_BIN_SIZE` (16), or the folder's own size when ``path``
        is a ``square_XXXum`` folder.
    fullres_image
        The full-resolution H&E (the microscope image given to Space Ranger).
        Default: the one found beside the data (:func:`find_fullres_image`).
        TIFF-family files are read lazily.

    Returns
    -------
    AnnData
        As :func:`~napari_senca.io.visium.read_visium`, one observation per
        bin (counts sparse), ``format`` ``"visium_hd"``; ``uns["senca_input"]``
        also holds ``bin_size_um`` and ``bin_sizes_available``, and a note says
        which bins were read; ``scalefactors`` keep ``bin_size_um`` and
        ``microns_per_pixel``. Labels: ``labels.tsv`` (barcode, label) in the
        bin folder, ``outs`` or its parent.

    Raises
    ------
    DataError
        No Visium HD bins at ``path``, the asked-for bin size is absent, or any
        problem :func:`~napari_senca.io.visium.read_visium` reports.
    ConfigError
        ``bin_size`` contradicts the ``square_XXXum`` folder given as ``path``.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(p, "not found")
    bins = find_hd_bins(p)
    if not bins:
        raise DataError(p, "no Visium HD bins (expected binned_outputs/square_016um/ ... or a square_XXXum folder)")
    direct = len(bins) == 1 and _bin_of(p if p.is_dir() else p.parent) is not None
    size = bin_size if bin_size is not None else (next(iter(bins)) if direct else DEFAULT_BIN_SIZE)
    if size not in bins:
        have = ", ".join(f"{b} um" for b in bins)
        if direct:
            raise ConfigError(f"{p}: this folder holds the {have} bins; bin_size={size} asks for others")
        raise DataError(p, f"no square_{int(size):03d}um folder in binned_outputs (bin sizes found: {have})")
    square = bins[size]
    outs = _outs_of(square)
    found_note = None
    if fullres_image is None:
        fullres_image, seen = find_fullres_image(outs)
        if fullres_image is not None:
            found_note = f"{fullres_image}: full-resolution H&E found beside the data (read lazily)"
        elif len(seen) > 1:
            found_note = (
                f"{len(seen)} candidate full-resolution images beside {outs} (e.g. {seen[0].name}, "
                f"{seen[1].name}); none used: pass the one to use as the image"
            )
    others = _scalefactors_hd(square)
    adata = read_spaceranger_folder(
        square,
        fullres_image=fullres_image,
        label_folders=(square, outs, outs.parent),
        library_folder=outs,
        source_format="visium_hd",
        extra_scalefactors=others,
    )
    info = input_info(adata)
    info["bin_size_um"] = int(size)
    info["bin_sizes_available"] = [int(b) for b in bins]
    if found_note is not None:
        add_warning(adata, found_note)
    return adata


def _scalefactors_hd(square: Path) -> dict[str, float]:
    """``bin_size_um`` and ``microns_per_pixel`` of a bin folder's scale factors (when numbers)."""
    from .image import read_json

    sf = square / "spatial" / "scalefactors_json.json"
    raw = read_json(sf) if sf.is_file() else {}
    return {
        k: float(raw[k])
        for k in ("bin_size_um", "microns_per_pixel")
        if isinstance(raw.get(k), int | float) and not isinstance(raw.get(k), bool) and raw[k] > 0
    }
