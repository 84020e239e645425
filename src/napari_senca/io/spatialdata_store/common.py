"""What every part of the SpatialData store code shares: the extra, the store layout, detection.

:func:`spatialdata_available` and :func:`looks_like_spatialdata` never import
``spatialdata``; :func:`_import_spatialdata` imports it and turns a missing
package into one line naming the extra.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from types import ModuleType

from ...errors import ConfigError

#: What to run when ``spatialdata`` is missing.
INSTALL_HINT = ('SpatialData stores need Python 3.11 or newer and the optional extra: '
                'pip install "napari-senca[spatialdata]"')
#: Coordinate system of written stores (full-resolution pixels of the section).
GLOBAL = "global"
_ELEMENT_GROUPS = ("tables", "shapes", "points", "images", "labels")
_ZARR_META = ("zarr.json", ".zgroup")


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


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
