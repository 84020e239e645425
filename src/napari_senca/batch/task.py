"""One section as one Dask task: runs on a worker and returns the section's row of the cohort table."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import SencaConfig
from ..errors import KeptOutputError
from .jobs import SectionJob
from .table import _one_line, _report_fields, _row


def _run_job(job: SectionJob, config: SencaConfig, out: str, threads: int, overwrite: bool = False) -> dict[str, Any]:
    """One section on a worker: never raises for the section's own problems, returns the table row.

    ``overwrite``: replace any previous output; else only one whose files are
    as batch wrote them (checked again before the result is moved into place,
    so edits saved while the section ran are kept too).
    """
    import socket

    from .plan import overwrite_mode

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
            overwrite=overwrite_mode(overwrite),
        )
        row.update(_report_fields(dataclasses.asdict(rep)))
        row["status"] = "done"
    except KeptOutputError as exc:  # the user saved into the folder meanwhile: nothing was replaced
        row["status"] = "kept"
        row["error"] = _one_line(exc)
    except Exception as exc:  # the section's own problem: recorded, the cohort goes on
        row["status"] = "failed"
        row["error"] = _one_line(exc)
    return row
