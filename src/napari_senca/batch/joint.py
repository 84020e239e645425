"""``napari-senca batch --joint``: one model over all sections, in this process (:func:`run_joint_batch`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import SencaConfig
from ..errors import ConfigError, KeptOutputError, SencaError
from ..outputs import check_output_folder
from .folder import _check_root, _mark_cohort, _upgrade_sections
from .jobs import SectionJob
from .plan import overwrite_mode
from .sections import _jobs
from .table import (
    BatchResult,
    _kept_row,
    _report_fields,
    _row,
    _write_cohort_files,
    cohort_table_columns,
)

__all__ = ["run_joint_batch"]

Rows = dict[str, dict[str, Any]]


def _joint_inputs(jobs: list[SectionJob], cfg: SencaConfig, rows: Rows) -> dict[str, list[Path]]:
    """Every section's input files; a section whose inputs cannot be found is recorded failed."""
    from ..runner import section_inputs

    inputs: dict[str, list[Path]] = {}
    for j in jobs:
        try:
            inputs[j.name] = section_inputs(j.path, j.image, cfg.image_weights)
        except SencaError as exc:  # a bad row: recorded, the others train together
            inputs[j.name] = []
            rows[j.name] = {**_row(j, ""), "status": "failed", "error": str(exc)}
    return inputs


def _read_sections(
    jobs: list[SectionJob], root: Path, inputs: dict[str, list[Path]], rows: Rows, overwrite: bool = False
) -> list[tuple[SectionJob, Any, float]]:
    """The readable sections as ``(job, adata, seconds to read)``; the others are recorded failed or kept.

    A section whose output folder holds the user's work (see
    :func:`~napari_senca.batch.run_batch`'s ``overwrite``) is kept and not
    trained on (older markers without stamps got them first: ``_upgrade_sections``).
    """
    from ..runner import read_input

    read: list[tuple[SectionJob, Any, float]] = []
    for j in jobs:
        if j.name in rows:
            continue
        t0 = time.perf_counter()
        try:
            check_output_folder(root / j.name, inputs[j.name], overwrite=overwrite_mode(overwrite))
            read.append((j, read_input(j.path, j.section, j.image, j.label_column, bin_size=j.bin_size), time.perf_counter() - t0))
        except KeptOutputError as exc:
            rows[j.name] = _kept_row(j, root / j.name, str(exc))
        except SencaError as exc:
            rows[j.name] = {**_row(j, str(root / j.name)), "status": "failed", "error": str(exc)}
    return read


def _finish_one(
    j: SectionJob, a: Any, t_read: float, joint: Any, cfg: SencaConfig, batch: str, out: Path, inputs: list[Path],
    t_train: float, overwrite: bool = False,
) -> dict[str, Any]:
    """Write one section's output folder from the joint result; returns its row of the cohort table."""
    from ..runner import finish_section, request_of
    from ..vocabulary import COHORT_KEY

    res = joint.result
    cfg_k = res.config.replace(n_clusters=int(res.n_clusters))
    a.obs[COHORT_KEY] = pd.Categorical(
        [f"Region {c}" for c in a.obs["senca_cluster"].astype(str)],
        categories=[f"Region {i}" for i in range(int(res.n_clusters))],
    )
    request = {**request_of(cfg, j.section, j.image, j.label_column, j.bin_size), "joint": joint.names, "batch": batch}
    row = _row(j, str(out))
    try:
        rep = finish_section(a, res, cfg_k, out, inputs, overwrite=overwrite_mode(overwrite), request=request,
                             train_total=t_train)  # fmt: skip
        rep.timings = {"read": t_read, **rep.timings, "total": t_read + t_train + rep.timings.get("markers", 0.0)
                       + rep.timings.get("write", 0.0)}  # fmt: skip
        row.update(_report_fields(dataclasses.asdict(rep)), status="done")
    except KeptOutputError as exc:  # the user saved into the folder while the model trained
        row.update(status="kept", error=str(exc))
    except SencaError as exc:
        row.update(status="failed", error=str(exc))
    return row


def run_joint_batch(
    sections: Sequence[str | PathLike | SectionJob],
    out: str | PathLike,
    config: SencaConfig | None = None,
    *,
    section: str | None = None,
    batch: str = "scale",
    progress: Callable[[Any], None] | None = None,
    on_update: Callable[[dict[str, Any], int, int], None] | None = None,
    bin_size: int | None = None,
    overwrite: bool = False,
) -> BatchResult:
    """One model over all sections (:mod:`napari_senca.joint`), in this process.

    Writes the same cohort folder as :func:`~napari_senca.batch.run_batch`: one
    output folder per section (``senca_cluster`` is the joint region, the same
    tissue in every section; ``obs["cohort_region"]`` is ``Region k``),
    ``cohort.csv``, ``region_vocabulary.csv`` (one row per section and region)
    and ``cohort.png``. A section that cannot be read is recorded as failed and
    the others train together (at least two are needed). Joint runs always
    retrain (no resume: the model depends on every section). Training is
    RNA-only. ``bin_size`` and ``overwrite`` are as in :func:`~napari_senca.batch.run_batch`: a
    section whose folder holds the user's work is kept and left out of training.

    Raises
    ------
    ConfigError
        Per-section settings in a manifest (one model has one config), fewer
        than two readable sections, or an unknown ``batch``.
    """
    from ..generators import drain
    from ..joint import BATCH_MODES, run_joint_iter, split

    if batch not in BATCH_MODES:
        raise ConfigError(f"unknown batch handling {batch!r}; use one of {', '.join(BATCH_MODES)}")
    cfg = (config or SencaConfig()).replace(use_image=False)
    jobs = _jobs(sections, section, bin_size)
    with_settings = [j.name for j in jobs if j.overrides]
    if with_settings:
        raise ConfigError(f"--joint trains one model with one config; {len(with_settings)} manifest row(s) set their "
                          f"own settings ({', '.join(with_settings[:3])})")  # fmt: skip
    rows: Rows = {}
    inputs = _joint_inputs(jobs, cfg, rows)
    root = _check_root(Path(out), [p for v in inputs.values() for p in v], [j.name for j in jobs])
    _upgrade_sections(root, [j.name for j in jobs])  # before cohort.csv moves on (its time judges old markers)
    _mark_cohort(root, cfg.to_dict(), [j.name for j in jobs], joint=True)
    read = _read_sections(jobs, root, inputs, rows, overwrite)
    if len(read) < 2:
        raise ConfigError(f"joint training needs at least 2 readable sections, got {len(read)}"
                          + (f" ({next(iter(rows.values()))['error']})" if rows else ""))  # fmt: skip
    pairs = [(j.name, a) for j, a, _ in read]
    t0 = time.perf_counter()
    joint = drain(run_joint_iter(pairs, cfg, batch), progress)
    t_train = time.perf_counter() - t0
    done = len(rows)
    for (j, _, t_read), (name, a) in zip(read, split(joint, pairs), strict=True):
        rows[name] = _finish_one(j, a, t_read, joint, cfg, batch, root / name, inputs[name], t_train, overwrite)
        done += 1
        if on_update is not None:
            on_update(rows[name], done, len(jobs))
    table = pd.DataFrame([rows[j.name] for j in jobs], columns=cohort_table_columns())
    vocab = _joint_vocabulary(table, dict(pairs))
    _write_cohort_files(root, table, vocab)
    return BatchResult(table=table, out=root, vocabulary=vocab)


def _joint_vocabulary(table: pd.DataFrame, adatas: dict[str, Any]) -> pd.DataFrame:
    """One row per (section, joint region): the region is its own cohort region."""
    from ..vocabulary import COHORT_KEY

    recs = []
    for name in table.loc[table["status"] == "done", "section"]:
        a = adatas[name]
        sizes = a.obs["senca_cluster"].value_counts()
        for r in a.obs["senca_cluster"].cat.categories:
            if int(sizes.get(r, 0)):
                recs.append({"section": name, "region": str(r), COHORT_KEY: f"Region {r}", "correlation": None,
                             "new_entry": False, "spots": int(sizes.get(r, 0))})  # fmt: skip
    return pd.DataFrame(recs, columns=["section", "region", COHORT_KEY, "correlation", "new_entry", "spots"])
