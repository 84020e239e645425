"""The cohort table (``cohort.csv``): its rows, and the files written at the end of a batch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import SencaError, shorten
from ..output_marker import read_marker
from .jobs import SectionJob

__all__ = ["BatchResult", "cohort_table_columns"]

STAGES = ("read", "preprocess", "patches", "train", "cluster", "markers", "write", "total")


def cohort_table_columns() -> list[str]:
    """Columns of ``cohort.csv`` in order."""
    return [
        "section", "path", "status", "error", "spots", "genes", "regions", "image", "ari", "labelled_spots",
        "device", "cpu_threads", "image_weights", "worker", *[f"time_{s}" for s in STAGES], "out",
    ]  # fmt: skip


@dataclass
class BatchResult:
    """What :func:`~napari_senca.batch.run_batch` produced."""

    table: pd.DataFrame
    out: Path
    vocabulary: pd.DataFrame | None = None

    @property
    def n_failed(self) -> int:
        return int((self.table["status"] == "failed").sum())

    @property
    def n_kept(self) -> int:
        """Sections left as they were because their folder holds the user's work (see ``error``)."""
        return int((self.table["status"] == "kept").sum())


def _one_line(exc: BaseException) -> str:
    msg = str(exc) if isinstance(exc, SencaError) else f"{type(exc).__name__}: {exc}"
    return shorten(msg, 300)


def _row(job: SectionJob, out: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(cohort_table_columns())
    row.update(section=job.name, path=str(job.path), out=str(out), error="")
    return row


def _report_fields(rep: dict[str, Any]) -> dict[str, Any]:
    t = rep.get("timings", {}) or {}
    fields = {
        "spots": rep.get("spots"),
        "genes": rep.get("genes"),
        "regions": rep.get("regions"),
        "image": rep.get("image"),
        "ari": rep.get("ari"),
        "labelled_spots": rep.get("n_labelled"),
        "device": rep.get("device"),
        "cpu_threads": rep.get("cpu_threads"),
        "image_weights": rep.get("image_weights"),
    }
    fields.update({f"time_{s}": (round(float(t[s]), 3) if s in t else None) for s in STAGES})
    return fields


def _skipped_row(job: SectionJob, sec_out: Path, status: str = "skipped", why: str = "up to date") -> dict[str, Any]:
    """The row of a section not run: its previous result's numbers, ``status`` and ``why`` (the error column)."""
    row = _row(job, str(sec_out))
    marker = read_marker(sec_out) or {}
    row.update(_report_fields(marker.get("report", {}) or {}))
    row["status"] = status
    row["error"] = why
    return row


def _kept_row(job: SectionJob, sec_out: Path, why: str) -> dict[str, Any]:
    """The row of a section whose folder holds the user's work, left as it was (``why``: the reason)."""
    return _skipped_row(job, sec_out, "kept", shorten(why, 300))


def _write_table(df: pd.DataFrame, path: Path) -> None:
    from ..export import atomic_write

    with atomic_write(path, overwrite=True) as fh:
        df.to_csv(fh, index=False)


def _write_cohort_files(root: Path, table: pd.DataFrame, vocab: pd.DataFrame | None) -> None:
    """``cohort.csv``, ``region_vocabulary.csv`` (when there is a vocabulary) and ``cohort.png``."""
    _write_table(table, root / "cohort.csv")
    if vocab is not None:
        _write_table(vocab, root / "region_vocabulary.csv")
    from ..cohort_figure import write_cohort_png

    write_cohort_png(table, root / "cohort.png")
