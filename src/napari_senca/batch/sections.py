"""The sections of a cohort from paths, glob patterns, CSV manifests and :class:`SectionJob`."""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from ..errors import ConfigError
from .jobs import SectionJob, _check_names, _name_for
from .manifest import read_manifest

__all__ = ["collect_sections"]


def _has_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def collect_sections(items: Sequence[str | PathLike], section: str | None = None) -> list[SectionJob]:
    """Sections from paths, glob patterns and CSV manifests (in the order given).

    Raises
    ------
    ConfigError
        No section, a glob that matches nothing, or two sections with one name.
    """
    if section and "," in section:  # one her2st repository, several sections
        names = [x.strip() for x in section.split(",") if x.strip()]
        return [j for sec in names for j in collect_sections(items, sec)] if names else collect_sections(items)
    jobs: list[SectionJob] = []
    for item in items:
        s = str(item)
        if s.lower().endswith(".csv") and Path(s).is_file():
            jobs += read_manifest(s)
        elif _has_glob(s) and not Path(s).exists():
            hits = sorted(glob.glob(os.path.expanduser(s)))
            if not hits:
                raise ConfigError(f"{s}: the pattern matches no file or folder")
            jobs += [SectionJob(_name_for(h, section), h, section) for h in hits]
        else:
            jobs.append(SectionJob(_name_for(s, section), s, section))
    if not jobs:
        raise ConfigError("no sections given")
    _check_names(jobs)
    return jobs


def _jobs(sections: Sequence[str | PathLike | SectionJob], section: str | None, bin_size: int | None) -> list[SectionJob]:
    """The jobs of ``sections``; ``bin_size`` for every job whose manifest row does not set one."""
    jobs = [s for s in sections if isinstance(s, SectionJob)]
    plain = [s for s in sections if not isinstance(s, SectionJob)]
    if plain or not jobs:
        jobs += collect_sections(plain, section)
    _check_names(jobs)
    if bin_size is not None:
        jobs = [j if j.bin_size is not None else dataclasses.replace(j, bin_size=int(bin_size)) for j in jobs]
    return jobs
