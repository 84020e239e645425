"""The Qt corner of napari-senca: the four dock widgets.

This is the only package that imports Qt, magicgui widgets or napari. Each
widget is thin: a control calls one function or method of the Qt-free core
(:mod:`napari_senca.review`, :mod:`napari_senca.pipeline`,
:mod:`napari_senca.io`, :mod:`napari_senca.export`).
"""

from __future__ import annotations

from ._cohort import CohortWidget
from ._embedding import EmbeddingWidget
from ._export import ExportWidget
from ._load import LoadWidget
from ._review import ReviewWidget
from ._run import RunWidget

__all__ = ["LoadWidget", "RunWidget", "ReviewWidget", "ExportWidget", "EmbeddingWidget", "CohortWidget"]
