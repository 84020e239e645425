"""napari-senca: SENCA-st region segmentation of spatial transcriptomics + H&E.

The core (this package minus ``_qt``) imports neither Qt nor napari, so the
same API serves notebooks, the ``napari-senca`` command line and the plugin.
Heavy modules (torch) are imported lazily.
"""

from __future__ import annotations

from ._version import __version__
from .config import SencaConfig
from .errors import ConfigError, DataError, SencaError, StopTraining

__all__ = [
    "__version__",
    "SencaConfig",
    "SencaError",
    "DataError",
    "ConfigError",
    "StopTraining",
]
