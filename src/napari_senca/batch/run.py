"""``napari-senca batch``: every section of a cohort as one Dask task (:func:`run_batch`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import SencaConfig
from ..output_marker import changed_outputs, read_marker, restamp
from .folder import _check_root, _mark_cohort, _upgrade_sections
from .jobs import SectionJob
from .plan import _plan, _triage
from .scheduler import _run_on_dask
from .sections import _jobs
from .table import BatchResult, _write_cohort_files, cohort_table_columns

__all__ = ["run_batch"]


def _unchanged_files(sec_out: Path) -> list[str]:
    """The files of a section output that are as napari-senca wrote them (none when it kept no record)."""
    marker = read_marker(sec_out) or {}
    changed = changed_outputs(sec_out, marker)
    if changed is None:
        return []
    return [str(f) for f in marker.get("files", []) or [] if str(f) not in changed]


def _match_regions(table: pd.DataFrame, reference: str | PathLike | None, min_corr: float) -> pd.DataFrame | None:
    """Match the regions of the sections that ran or are current (kept ones are not touched).

    Adding the cohort region rewrites ``annotated.h5ad`` and ``clusters.csv``;
    right after each rewrite the marker records that file again where it was
    unchanged, so that a later batch still knows it as its own (and an edited
    file as edited), even when matching stops partway.
    """
    from ..vocabulary import match_cohort_outputs

    ok = [(r["section"], Path(r["out"])) for r in table.to_dict("records") if r["status"] in ("done", "skipped")]
    unchanged = {out: set(_unchanged_files(out)) for _, out in ok}
    seen = {(out, n): _size_mtime(out / n) for _, out in ok for n in ("annotated.h5ad", "clusters.csv")}
    edited: set[Path] = set()

    def may_write(out: Path, name: str) -> bool:
        if out not in edited and _size_mtime(out / name) == seen[(out, name)]:
            return True
        edited.add(out)  # saved into while matching ran: the section is left as it is from here on
        return False

    def stamp(out: Path, name: str) -> None:
        if name in unchanged[out]:
            restamp(out, [name])

    vocab = match_cohort_outputs(ok, reference=reference, min_corr=min_corr, on_written=stamp, may_write=may_write)
    for i in table.index[table["out"].map(lambda o: Path(o) in edited if isinstance(o, str) and o else False)]:
        table.loc[i, ["status", "error"]] = ["kept", "an output changed while regions were matched; cohort_region "
                                             "not added to it (run batch again)"]  # fmt: skip
    return vocab


def _size_mtime(p: Path) -> tuple[int, int] | None:
    """Size and modification time of ``p`` (None when it cannot be read)."""
    try:
        st = p.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def run_batch(
    sections: Sequence[str | PathLike | SectionJob],
    out: str | PathLike,
    config: SencaConfig | None = None,
    *,
    scheduler: Any = "local",
    n_workers: int | None = None,
    section: str | None = None,
    match_regions: bool = True,
    reference: str | PathLike | None = None,
    min_corr: float = 0.1,
    on_update: Callable[[dict[str, Any], int, int], None] | None = None,
    bin_size: int | None = None,
    overwrite: bool = False,
) -> BatchResult:
    """Run SENCA-st on every section of a cohort on Dask.

    Parameters
    ----------
    sections
        Paths, glob patterns, CSV manifests (see :func:`~napari_senca.batch.read_manifest`)
        or :class:`~napari_senca.batch.SectionJob`.
    out
        Cohort folder: one folder per section plus ``cohort.csv``,
        ``region_vocabulary.csv`` and ``cohort.png``.
    config
        Settings for every section (a manifest row overrides them for its section).
    scheduler
        ``"local"`` (default), a scheduler address, a ``distributed.Client`` or a cluster object.
    n_workers
        Worker processes of the local cluster (default: min(sections, cores)).
    section
        Section of a her2st repository, for paths without a manifest.
    match_regions, reference
        Match every section's regions to one vocabulary (reference: a previous
        ``annotated.h5ad``, default the first section that ran).
    min_corr
        Lowest centroid correlation for a region to join a vocabulary entry (else it opens a new one).
    on_update
        Called with each finished row, the number finished and the total.
    bin_size
        Visium HD sections: the bins to read (2, 8 or 16 um; a manifest's
        ``bin_size`` column overrides it per section). None: 16 um.
    overwrite
        Also replace section outputs whose files changed since batch wrote them
        (e.g. review edits saved into ``annotated.h5ad``; outputs of an older
        version without a record of their files are judged by time, see
        :func:`~napari_senca.outputs.changed_outputs`), up to date or not. By
        default such a section is ``kept``: left as it is (region matching
        included), with the reason in the table. Folders holding files
        napari-senca did not write are never replaced.

    Returns
    -------
    BatchResult
        The cohort table (``status`` done / skipped / kept / failed) and the vocabulary.
    """
    base = config or SencaConfig()
    jobs = _jobs(sections, section, bin_size)
    rows: dict[str, dict[str, Any]] = {}
    plans, all_inputs = _plan(jobs, base, rows)
    names = [j.name for j in jobs]
    root = _check_root(Path(out), all_inputs, names)
    _upgrade_sections(root, names)  # before cohort.csv moves on (its time judges old markers)
    _mark_cohort(root, base.to_dict(), names)

    todo, done = _triage(plans, root, rows, on_update, overwrite)
    if todo:
        _run_on_dask(todo, root, rows, scheduler=scheduler, n_workers=n_workers, on_update=on_update,
                     done=done, total=len(plans), overwrite=overwrite)  # fmt: skip

    table = pd.DataFrame([rows[j.name] for j in jobs], columns=cohort_table_columns())
    vocab = _match_regions(table, reference, min_corr) if match_regions else None
    _write_cohort_files(root, table, vocab)
    return BatchResult(table=table, out=root, vocabulary=vocab)
