"""The Qt corner of napari-senca: the four dock widgets.

This is the only package that imports Qt, magicgui widgets or napari. Each
widget is thin: a control calls one function or method of the Qt-free core
(:mod:`napari_senca.review`, :mod:`napari_senca.pipeline`,
:mod:`napari_senca.io`, :mod:`napari_senca.export`).
"""

from __future__ import annotations

from ..threads import prefer_passive_waiting

prefer_passive_waiting(only_if_busy=True)  # before torch loads (napari_senca.threads)

from ._cohort import CohortWidget  # noqa: E402 (after the thread policy)
from ._embedding import EmbeddingWidget  # noqa: E402 (after the thread policy)
from ._export import ExportWidget  # noqa: E402 (after the thread policy)
from ._load import LoadWidget  # noqa: E402 (after the thread policy)
from ._review import ReviewWidget  # noqa: E402 (after the thread policy)
from ._run import RunWidget  # noqa: E402 (after the thread policy)

__all__ = ["LoadWidget", "RunWidget", "ReviewWidget", "ExportWidget", "EmbeddingWidget", "CohortWidget"]
