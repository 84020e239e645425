"""CSV manifests: one section per row, with per-row settings (read and validated)."""

from __future__ import annotations

import csv
import dataclasses
from os import PathLike
from pathlib import Path
from typing import Any

from ..config import SencaConfig
from ..errors import ConfigError, DataError
from ..io.detect import detect_format
from .jobs import SectionJob, _name_for

__all__ = ["read_manifest", "apply_overrides"]

#: Manifest columns that are not settings.
MANIFEST_COLUMNS = ("path", "name", "section", "image", "label_column", "bin_size")


def _convert(name: str, value: str, default: Any) -> Any:
    """A manifest cell as the type of the setting's default."""
    v = value.strip()
    try:
        if isinstance(default, bool):
            low = v.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(v)
            return low in ("true", "1", "yes")
        if isinstance(default, int):
            return int(v)
        if isinstance(default, float):
            return float(v)
    except ValueError:
        raise ConfigError(f"setting {name}: {v!r} is not a {type(default).__name__}") from None
    if default is None:  # n_clusters, target_sum: a number when given
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return v
    return v


def _read_rows(p: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The manifest's rows and (stripped) column names; it must have rows and a ``path`` column."""
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            cols = [c.strip() for c in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(p, f"cannot read the manifest ({exc})") from None
    if not rows:
        raise DataError(p, "the manifest has no rows")
    if "path" not in cols:
        raise DataError(p, f"the manifest needs a 'path' column (it has {', '.join(cols[:6])})")
    return rows, cols


def _relative_to(p: Path, path: str) -> str:
    """``path`` as written in the manifest ``p``: relative paths are relative to the manifest."""
    return path if Path(path).expanduser().is_absolute() else str(p.parent / path)


def _row_job(p: Path, i: int, row: dict[str, str], cols: list[str], defaults: dict[str, Any]) -> SectionJob:
    """The job of manifest row ``i`` (its cells stripped)."""
    if not row.get("path"):
        raise DataError(p, f"row {i} has no path")
    sec_path = row["path"] if row["path"].startswith("sample:") else _relative_to(p, row["path"])
    image = row.get("image") or None
    if image and detect_format(sec_path) != "spatialdata":  # a store's image is an element name, not a path
        image = _relative_to(p, image)
    overrides = {}
    for c in cols:
        if c in defaults and row.get(c):
            try:
                overrides[c] = _convert(c, row[c], defaults[c])
            except ConfigError as exc:
                raise DataError(p, f"row {i}: {exc}") from None
    section = row.get("section") or None
    bin_size = None
    if row.get("bin_size"):
        try:
            bin_size = int(float(row["bin_size"]))
        except ValueError:
            raise DataError(p, f"row {i}: bin_size must be a number of um (2, 8 or 16), got {row['bin_size']!r}") from None
    name = row.get("name") or _name_for(row["path"], section)
    return SectionJob(name, sec_path, section, image, row.get("label_column") or None, overrides, bin_size)


def read_manifest(path: str | PathLike) -> list[SectionJob]:
    """Sections of a CSV manifest: ``path`` (required), ``name``, ``section``, ``image``,
    ``label_column``, ``bin_size`` (Visium HD bins in um) and any
    :class:`~napari_senca.config.SencaConfig` setting as a per-row override (empty
    cells: no override). Relative paths are relative to the manifest.

    Raises
    ------
    DataError
        Unreadable file, no ``path`` column, unknown columns or bad values (naming row and column).
    """
    p = Path(path)
    rows, cols = _read_rows(p)
    defaults = {f.name: f.default for f in dataclasses.fields(SencaConfig)}
    unknown = [c for c in cols if c not in MANIFEST_COLUMNS and c not in defaults]
    if unknown:
        raise DataError(p, f"unknown column(s) {', '.join(unknown[:5])}; use {', '.join(MANIFEST_COLUMNS)} or settings")
    return [
        _row_job(p, i, {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}, cols, defaults)
        for i, raw in enumerate(rows, start=2)
    ]


def apply_overrides(config: SencaConfig, overrides: dict[str, Any]) -> SencaConfig:
    """``config`` with a manifest row's settings (validated; an error names the setting)."""
    if not overrides:
        return config
    try:
        return config.replace(**overrides)
    except TypeError as exc:
        raise ConfigError(f"bad setting in the manifest ({exc})") from None
