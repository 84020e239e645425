"""One section as one Dask task: runs on a worker and returns the section's row of the cohort table."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import SencaConfig
from .jobs import SectionJob
from .table import _one_line, _report_fields, _row


def _run_job(job: SectionJob, config: SencaConfig, out: str, threads: int) -> dict[str, Any]:
    """One section on a worker: never raises for the section's own problems, returns the table row."""
    import socket

    row = _row(job, out)
    row["worker"] = socket.gethostname()
    try:
        import torch

        torch.set_num_threads(max(1, threads))
        from ..runner import run_section

        rep = run_section(
            job.path,
            out,
            config,
            section=job.section,
            image=job.image,
            label_column=job.label_column,
            bin_size=job.bin_size,
            overwrite=True,  # replaces only a previous napari-senca output (checked)
        )
        row.update(_report_fields(dataclasses.asdict(rep)))
        row["status"] = "done"
    except Exception as exc:  # the section's own problem: recorded, the cohort goes on
        row["status"] = "failed"
        row["error"] = _one_line(exc)
    return row
