"""Readers and writers of spatial-transcriptomics sections.

Every reader returns a section (see :mod:`napari_senca.section`) built with
:func:`~napari_senca.section.make_section`, and reports broken input as a
one-line :class:`~napari_senca.errors.DataError` naming the file.
:func:`read_section` picks the reader with :func:`detect_format`.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from anndata import AnnData

from ..errors import ConfigError, DataError
from ..section import drop_duplicate_genes
from .checks import check_counts
from .detect import FORMATS, SAMPLE_PREFIX, SAMPLES, detect_format
from .h5ad import read_h5ad, write_h5ad
from .image import load_image
from .legacy_st import read_her2st_repo, read_st_folder
from .spatialdata_store import read_spatialdata, write_spatialdata
from .tenx_h5 import read_10x_h5
from .visium import read_visium
from .visium_hd import read_visium_hd

__all__ = [
    "FORMATS",
    "SAMPLES",
    "detect_format",
    "read_section",
    "read_st_folder",
    "read_her2st_repo",
    "read_visium",
    "read_visium_hd",
    "read_10x_h5",
    "read_h5ad",
    "write_h5ad",
    "read_spatialdata",
    "write_spatialdata",
    "load_image",
    "relink_slide",
]

EXPECTED = (
    "expected a legacy ST folder with counts.tsv[.gz] and spots.tsv, a her2st repository "
    "checkout, a Space Ranger outs folder (Visium or Visium HD), an .h5ad file, a SpatialData .zarr store, or "
    "sample:her2st_A1 / "
    "sample:synthetic"
)


def read_section(
    path: str | PathLike,
    *,
    section: str | None = None,
    image: str | PathLike | bool | None = None,
    normalized: bool = False,
    bin_size: int | None = None,
    **kw: Any,
) -> AnnData:
    """Read a section in any supported format.

    Parameters
    ----------
    path
        A legacy ST folder, a her2st repository checkout (with ``section``), a
        Space Ranger ``outs`` folder (Visium, or Visium HD with
        ``binned_outputs/``; or one ``square_XXXum`` folder), an ``.h5ad``
        file, a SpatialData ``.zarr`` store (needs ``napari-senca[spatialdata]``,
        see :func:`~napari_senca.io.spatialdata_store.read_spatialdata`), or a
        bundled sample named ``"sample:her2st_A1"`` / ``"sample:synthetic"``.
    section
        The section to read from a her2st repository (required there), the
        table to read from a SpatialData store (needed when it has several),
        or the library of an ``.h5ad`` file (needed when ``uns["spatial"]``
        holds several; see :func:`~napari_senca.io.h5ad.read_h5ad`).
    image
        An H&E to use instead of the one found beside the data (for Visium and
        Visium HD: the full-resolution image; a TIFF / OME-TIFF / SVS file is
        read lazily and referenced, see :func:`~napari_senca.section.get_image_levels`;
        for a SpatialData store: the name of its image element);
        ``False`` reads no image (legacy ST, SpatialData).
    normalized
        The values are already normalised and log-transformed: use them as
        they are (preprocessing skips normalisation and log1p). By default
        the values must be raw counts (see :func:`~napari_senca.io.checks.check_counts`).
    **kw
        Passed on to the format's reader.

    Returns
    -------
    AnnData
        The section. ``uns["senca_input"]`` says what was left out or
        changed (excluded spots, label rows that match no spot, duplicated
        gene names, warnings; see :mod:`napari_senca.notes`); each warning is
        also emitted as a :class:`~napari_senca.notes.InputWarning`.

    Raises
    ------
    DataError
        When nothing at ``path`` is recognised, the data are broken, or the
        values are not raw counts and ``normalized`` is False.
    ConfigError
        When ``section``, ``image`` or ``bin_size`` do not apply to the format, or a her2st
        repository is given without ``section``.
    """
    fmt = detect_format(path)
    if bin_size is not None:
        if fmt != "visium_hd":
            raise ConfigError(f"{path}: a bin size only applies to a Visium HD folder (this is {fmt or 'unknown'})")
        kw["bin_size"] = int(bin_size)
    adata = _read_any(fmt, path, section, image, kw)
    info = adata.uns.get("senca_input") or {}
    if fmt == "h5ad":
        adata = drop_duplicate_genes(adata, path)
        where = str(path)
        normalized = normalized or bool(info.get("normalized", False))  # a file this plugin wrote
    elif fmt == "spatialdata":
        where = info.get("counts_path") or str(path)
        normalized = normalized or bool(info.get("normalized", False))  # a store this plugin wrote
    else:
        where = info.get("counts_path") or str(path)
    adata = check_counts(adata, where, normalized)
    if fmt != "sample":  # the path actually read (an .h5ad keeps the source it was first read from in "path")
        adata.uns.setdefault("senca_input", {})["opened"] = str(Path(path).expanduser().resolve())
    return adata


def _read_any(fmt: str | None, path: str | PathLike, section: str | None, image: Any, kw: dict[str, Any]) -> AnnData:
    if fmt == "sample":
        return _read_sample(str(path), image)
    p = Path(path)
    if fmt is None:
        if not p.exists():
            raise DataError(p, "not found")
        raise DataError(p, f"not a recognised section ({EXPECTED})")
    if fmt == "spatialdata":
        if image is not None and image is not False and not isinstance(image, str):
            raise ConfigError(f"{p}: for a SpatialData store, the image is the name of one of its image elements")
        return read_spatialdata(p, table=section, image=image, **kw)
    if section is not None and fmt not in ("her2st_repo", "h5ad"):
        raise ConfigError(
            f"{p}: a section name only applies to a her2st repository, a SpatialData store's table or an .h5ad "
            f"file's library (this is {fmt!r})"
        )
    if fmt == "h5ad":
        kw["library"] = section
    if fmt == "st":
        return read_st_folder(p if p.is_dir() else p.parent, image=image, **kw)
    if fmt == "her2st_repo":
        return read_her2st_repo(p, section or "", image=image, **kw)
    if fmt in ("visium", "visium_hd"):
        if image is False:
            image = None
        if image is not None:
            kw["fullres_image"] = image
        return read_visium(p, **kw) if fmt == "visium" else read_visium_hd(p, **kw)
    if image is not None and image is not False:
        from .slide import is_slide

        if not is_slide(image):
            raise ConfigError(
                f"{p}: an .h5ad file carries its own images; only its full-resolution slide (a TIFF) can be "
                "given again (e.g. after it moved)"
            )
        return relink_slide(read_h5ad(p, **kw), image)
    return read_h5ad(p, **kw)


def relink_slide(adata: AnnData, image: str | PathLike) -> AnnData:
    """Point a section at its full-resolution slide (a TIFF, read lazily), e.g. after the file moved.

    The spots must fall inside the slide (its reference's scale factor, 1 by
    default, maps ``obsm["spatial"]`` to slide pixels). A section with no
    stored image (e.g. an ``.h5ad`` without ``uns["spatial"]``) gets one: a
    library entry holding the slide's overview as ``hires`` (see
    :func:`~napari_senca.io.slide.read_overview`), so that it is used.

    Raises
    ------
    DataError
        The file is not a readable TIFF, or spots lie outside it.
    """
    import numpy as np

    from ..notes import input_info
    from ..section import fullres_reference, set_fullres_reference
    from .image import check_inside, record_source_image
    from .slide import image_reference

    old = fullres_reference(adata) or {}
    ref = image_reference(image, scalef=float(old.get("scalef", 1.0)))
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2] * ref["scalef"]
    check_inside(xy, (ref["height"], ref["width"]), list(adata.obs_names), image)
    _attach_overview(adata, ref)
    set_fullres_reference(adata, ref)
    record_source_image(adata, ref["path"])
    info = input_info(adata)
    info["warnings"] = [w for w in info.get("warnings", []) if "full-resolution image" not in str(w)]
    return adata


def _attach_overview(adata: AnnData, ref: dict[str, Any]) -> None:
    """Store the referenced slide's overview as ``hires`` when the section has no image (creating its library entry)."""
    from ..section import get_image, library_id, spot_diameter
    from .slide import open_levels, read_overview

    if get_image(adata) is not None:
        return
    lib = library_id(adata) or str((adata.uns.get("senca_input") or {}).get("library_id") or Path(ref["path"]).stem)
    spatial = adata.uns.get("spatial")
    entry = dict(spatial.get(lib) or {}) if isinstance(spatial, dict) else {}
    scalefactors = {"spot_diameter_fullres": spot_diameter(adata), **dict(entry.get("scalefactors") or {})}
    overview, factor = read_overview(open_levels(ref["path"]))
    scalefactors["tissue_hires_scalef"] = float(ref["scalef"]) * factor
    adata.uns["spatial"] = {
        lib: {
            **entry,
            "images": {**dict(entry.get("images") or {}), "hires": overview},
            "scalefactors": scalefactors,
            "metadata": dict(entry.get("metadata") or {}),
        }
    }


def _read_sample(name: str, image: str | PathLike | bool | None) -> AnnData:
    key = name[len(SAMPLE_PREFIX) :].strip()
    if key == "synthetic":
        from ..datasets import synthetic_section

        return synthetic_section(with_image=image is not False)
    if key == "her2st_A1":
        from ..datasets import sample_data_dir

        return read_st_folder(sample_data_dir() / "her2st_A1", image=image)
    raise DataError(name, f"unknown sample (available: {', '.join(SAMPLE_PREFIX + s for s in SAMPLES)})")
