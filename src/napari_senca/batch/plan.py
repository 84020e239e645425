"""Which sections of a cohort run: settings and inputs per section, and resuming (skip what is current)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import SencaConfig
from ..errors import KeptOutputError, SencaError
from ..outputs import UNCHANGED, Overwrite, check_output_folder, check_unchanged
from .jobs import SectionJob
from .manifest import apply_overrides
from .table import _kept_row, _row, _skipped_row

Plan = tuple[SectionJob, SencaConfig, list[Path]]


def _plan(
    jobs: list[SectionJob], base: SencaConfig, rows: dict[str, dict[str, Any]]
) -> tuple[list[Plan], list[Path]]:
    """Every job's settings and input files, and all inputs; a bad row is recorded failed in ``rows``."""
    from ..runner import section_inputs

    all_inputs: list[Path] = []
    plans: list[Plan] = []
    for j in jobs:
        cfg, inputs = base, []
        try:
            cfg = apply_overrides(base, j.overrides)
            inputs = section_inputs(j.path, j.image, cfg.image_weights)
        except SencaError as exc:  # a bad row: recorded, the others run
            rows[j.name] = {**_row(j, ""), "status": "failed", "error": str(exc)}
        all_inputs += inputs
        plans.append((j, cfg, inputs))
    return plans, all_inputs


def overwrite_mode(overwrite: bool) -> Overwrite:
    """What a batch may replace: any previous output (``--overwrite``), else only unchanged ones."""
    return True if overwrite else UNCHANGED


def _check_section(j: SectionJob, sec_out: Path, inputs: list[Path], overwrite: bool) -> dict[str, Any] | None:
    """None when ``sec_out`` may be (re)written; else the finished row (kept: the user's work; or failed)."""
    try:
        check_output_folder(sec_out, inputs, overwrite=overwrite_mode(overwrite))
    except KeptOutputError as exc:
        return _kept_row(j, sec_out, str(exc))
    except SencaError as exc:
        return {**_row(j, str(sec_out)), "status": "failed", "error": str(exc)}
    return None


def _current_row(j: SectionJob, sec_out: Path, overwrite: bool) -> dict[str, Any] | None:
    """The row of an up-to-date section: skipped; kept when its outputs changed; None: re-run it (``overwrite``).

    A kept section is left out of region matching, so review edits saved into
    an up-to-date section are not rewritten either.
    """
    try:
        check_unchanged(sec_out)
    except KeptOutputError as exc:
        return None if overwrite else _kept_row(j, sec_out, str(exc))
    return _skipped_row(j, sec_out)


def _finished_row(
    j: SectionJob, cfg: SencaConfig, inputs: list[Path], sec_out: Path, overwrite: bool
) -> dict[str, Any] | None:
    """The row of a section that does not run (skipped, kept or failed); None when it runs."""
    from ..runner import is_current, request_of

    if is_current(sec_out, inputs, request_of(cfg, j.section, j.image, j.label_column, j.bin_size)):
        row = _current_row(j, sec_out, overwrite)
        if row is not None:
            return row
    return _check_section(j, sec_out, inputs, overwrite)


def _triage(
    plans: list[Plan],
    root: Path,
    rows: dict[str, dict[str, Any]],
    on_update: Callable[[dict[str, Any], int, int], None] | None,
    overwrite: bool = False,
) -> tuple[list[tuple[SectionJob, SencaConfig, Path]], int]:
    """The sections to run; the others (failed plans, current outputs, kept or bad folders) are finished rows.

    A previous output is re-run only when its files are as batch wrote them,
    unless ``overwrite`` (then any previous napari-senca output is replaced);
    an up-to-date one whose files changed is kept too (see :func:`_current_row`).
    Markers an older version wrote without stamps already got them
    (``folder._upgrade_sections``, before the cohort marker was rewritten).
    Returns the sections to run and the number finished (each reported to
    ``on_update``).
    """
    todo: list[tuple[SectionJob, SencaConfig, Path]] = []
    total, done = len(plans), 0
    for j, cfg, inputs in plans:
        sec_out = root / j.name
        if j.name in rows:
            rows[j.name]["out"] = str(sec_out)
        else:
            row = _finished_row(j, cfg, inputs, sec_out, overwrite)
            if row is None:
                todo.append((j, cfg, sec_out))
                continue
            rows[j.name] = row
        done += 1
        if on_update is not None:
            on_update(rows[j.name], done, total)
    return todo, done
