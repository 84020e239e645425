"""One section of a cohort (:class:`SectionJob`) and the rules for its name (its output folder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .folder import COHORT_FILES

__all__ = ["SectionJob"]


@dataclass
class SectionJob:
    """One section of a cohort (a row of the manifest)."""

    name: str
    path: str
    section: str | None = None
    image: str | None = None
    label_column: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    bin_size: int | None = None  # Visium HD: the bins to read (um); None: the reader's default (16)


def _name_for(path: str, section: str | None) -> str:
    if section:
        return str(section)
    p = Path(path)
    if p.name in ("outs",) and p.parent.name:
        return p.parent.name
    return p.stem if p.suffix in (".h5ad",) else p.name


def _check_names(jobs: list[SectionJob]) -> None:
    seen: dict[str, int] = {}
    for j in jobs:
        seen[j.name] = seen.get(j.name, 0) + 1
        if not j.name or j.name.startswith(".") or "/" in j.name or "\\" in j.name or j.name in COHORT_FILES:
            raise ConfigError(f"{j.path}: {j.name!r} cannot name an output folder; give the section a name")
    dup = [n for n, c in seen.items() if c > 1]
    if dup:
        raise ConfigError(
            f"{len(dup)} section name(s) used twice ({', '.join(dup[:3])}); give each section its own name "
            "(a 'name' column in the manifest)"
        )
