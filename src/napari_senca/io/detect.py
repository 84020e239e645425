"""Recognising which reader can open a path (never raises, never reads data).

Recognition looks at file names only, so it is cheap enough for napari's
reader hook: a folder *looks like* a section when it holds the files a
section is made of, even if some are missing or broken (reading it then
fails with one line saying what is wrong).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from .legacy_st import find_st_counts
from .spatialdata_store import looks_like_spatialdata
from .visium import find_visium_outs
from .visium_hd import find_hd_bins

__all__ = ["detect_format", "FORMATS", "SAMPLE_PREFIX", "SAMPLES"]

FORMATS = ("st", "her2st_repo", "visium", "visium_hd", "h5ad", "spatialdata", "sample")
SAMPLE_PREFIX = "sample:"
SAMPLES = ("her2st_A1", "synthetic")
_ST_FILES = ("counts.tsv", "counts.tsv.gz", "spots.tsv")
_ST_FOLDER_FILES = ("counts.tsv.gz", "counts.tsv", "spots.tsv")


def detect_format(path: Any) -> str | None:
    """Name the format of ``path``, or None when no reader recognises it.

    Parameters
    ----------
    path
        A folder, a file, or ``"sample:<name>"`` for bundled samples.

    Returns
    -------
    str or None
        ``"st"`` (a folder with ``counts.tsv[.gz]`` or ``spots.tsv``, or one
        of these files), ``"her2st_repo"`` (a checkout of almaan/her2st, needs a
        section), ``"visium"`` (Space Ranger ``outs`` folder, its parent or its
        ``filtered_feature_bc_matrix.h5``), ``"visium_hd"`` (an ``outs`` folder
        or its parent with ``binned_outputs/square_XXXum/``, ``binned_outputs``,
        one ``square_XXXum`` folder or its h5), ``"h5ad"``, ``"spatialdata"`` (a
        zarr folder with SpatialData element groups: ``tables/``, ``shapes/``...;
        recognised whether or not the ``spatialdata`` package is installed) or
        ``"sample"``. Never raises: anything it cannot make sense of gives None.
    """
    try:
        if isinstance(path, str) and path.startswith(SAMPLE_PREFIX):
            return "sample"
        if not isinstance(path, str | PathLike):
            return None
        p = Path(path)
        if p.is_file():
            name = p.name.lower()
            if name.endswith(".h5ad"):
                return "h5ad"
            if name.endswith("filtered_feature_bc_matrix.h5"):
                return "visium_hd" if find_hd_bins(p) else "visium"
            if name in _ST_FILES:
                return "st"
            return None
        if p.is_dir():
            if looks_like_spatialdata(p):
                return "spatialdata"
            if (p / "data" / "ST-cnts").is_dir():
                return "her2st_repo"
            if find_st_counts(p) is not None or (p / "spots.tsv").is_file():
                return "st"
            if find_hd_bins(p):
                return "visium_hd"
            if find_visium_outs(p) is not None:
                return "visium"
    except (OSError, ValueError, TypeError):
        return None
    return None
