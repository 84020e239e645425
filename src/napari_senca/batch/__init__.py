"""Many sections on a Dask cluster: ``napari-senca batch`` and :func:`run_batch`.

Every section is one Dask task running :func:`napari_senca.runner.run_section`
into ``OUT/<name>/`` (the folder ``run`` writes). A failing section does not
stop the others: its one-line error goes into the cohort table. A section whose
output is complete and current (same input files by size and modification
time, same settings; see :func:`napari_senca.runner.is_current`) is skipped, so
re-running an interrupted cohort resumes it. Afterwards the regions of all
sections are matched to one vocabulary (:mod:`napari_senca.vocabulary`) and
``OUT/cohort.csv``, ``OUT/region_vocabulary.csv`` and ``OUT/cohort.png`` are
written.

The scheduler is ``"local"`` (a :class:`distributed.LocalCluster` of
single-threaded worker processes, one per section up to the number of cores),
the address of a running scheduler (``tcp://host:8786``) or its scheduler
file (``scheduler.json``), or, from Python, a
``distributed.Client`` or any cluster object (``SLURMCluster``...).

One concern per module, every public name re-exported here:

* :mod:`.jobs`: :class:`SectionJob` and the rules for section names;
* :mod:`.manifest`: CSV manifests (:func:`read_manifest`, :func:`apply_overrides`);
* :mod:`.sections`: :func:`collect_sections` from paths, globs and manifests;
* :mod:`.folder`: the cohort folder (:data:`COHORT_FILES`);
* :mod:`.table`: the cohort table (:func:`cohort_table_columns`, :class:`BatchResult`) and its files;
* :mod:`.plan`: which sections run (settings, inputs, resuming);
* :mod:`.task`: one section as one Dask task;
* :mod:`.scheduler`: the Dask client and the task loop;
* :mod:`.run`: :func:`run_batch`;
* :mod:`.joint`: :func:`run_joint_batch` (one model over all sections).
"""

from __future__ import annotations

from .folder import COHORT_FILES
from .jobs import SectionJob
from .joint import run_joint_batch
from .manifest import MANIFEST_COLUMNS, apply_overrides, read_manifest  # noqa: F401 - public, not in __all__
from .run import run_batch
from .sections import collect_sections
from .table import STAGES, BatchResult, cohort_table_columns  # noqa: F401 - public, not in __all__

__all__ = [
    "SectionJob",
    "BatchResult",
    "COHORT_FILES",
    "collect_sections",
    "read_manifest",
    "apply_overrides",
    "run_batch",
    "run_joint_batch",
    "cohort_table_columns",
]
