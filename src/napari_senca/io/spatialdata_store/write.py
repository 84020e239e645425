"""Write a section as a SpatialData store, atomically, and the rules for replacing one.

:func:`write_spatialdata` writes beside the target and moves the store into
place; an existing path is replaced only with ``overwrite=True``, only when
napari-senca wrote it (:data:`OWN_STORE_ATTR`), and never when it is the
section's own input.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from os import PathLike
from pathlib import Path
from typing import Any

from anndata import AnnData

from .common import _is_store
from .convert import section_to_spatialdata


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
    from ...outputs import replace_folder
    from ..h5ad import string_arrays_allowed

    p = Path(path)
    if p.exists():
        _check_replaceable(adata, p, overwrite)
    sdata = section_to_spatialdata(adata)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
    try:
        with string_arrays_allowed():  # the table's text columns as pandas string arrays
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

    from ..._version import __version__

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
