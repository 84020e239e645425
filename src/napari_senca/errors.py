"""Precise errors raised by the core.

The core never prints and never opens a dialog: it raises one of these, and the
CLI or the napari widgets turn the message into a one-line error or a
notification. Every message names the file (when there is one) and the problem.
"""

from __future__ import annotations

from os import PathLike

__all__ = ["SencaError", "DataError", "ConfigError", "StopTraining"]


class SencaError(Exception):
    """Base class of every error napari-senca raises on purpose."""


class DataError(SencaError, ValueError):
    """A file or section that was recognised but is broken.

    Parameters
    ----------
    path
        The offending file or folder (``None`` for in-memory data).
    problem
        What is wrong, as one sentence without a trailing period.
    """

    def __init__(self, path: str | PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        msg = problem if self.path is None else f"{self.path}: {problem}"
        super().__init__(msg)


class ConfigError(SencaError, ValueError):
    """A setting that cannot work with the data (e.g. more clusters than spots)."""


class StopTraining(SencaError):
    """Raised inside a training generator when the caller asked it to stop."""
