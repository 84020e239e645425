"""Precise errors raised by the core.

The core never prints and never opens a dialog: it raises one of these, and the
CLI or the napari widgets turn the message into a one-line error or a
notification. Every message names the file (when there is one) and the problem.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "SencaError", "DataError", "ConfigError", "OutputError", "KeptOutputError", "StopTraining", "shorten",
    "MAX_MESSAGE",
]  # fmt: skip

#: Longest error message (characters) shown to the user; longer ones are cut by :func:`shorten`.
MAX_MESSAGE = 400


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis and a count.

    Parameters
    ----------
    text
        Any message (e.g. one quoting a whole header line of a broken file).
    limit
        Maximum length of the result.

    Returns
    -------
    str
        Whitespace runs (newlines included) become single spaces; when still
        longer than ``limit``, the start is kept and ``"... (N more characters)"``
        is appended.

    Examples
    --------
    >>> shorten("a  b\\nc")
    'a b c'
    >>> shorten("x" * 1000, 40)
    'xxxxxxxxxxxxxxx... (985 more characters)'
    """
    one = " ".join(str(text).split())
    if len(one) <= limit:
        return one
    keep = limit
    for _ in range(2):  # the count's own length depends on how much is kept
        keep = max(limit - len(f"... ({len(one) - keep} more characters)"), 1)
    return one[:keep] + f"... ({len(one) - keep} more characters)"


class SencaError(Exception):
    """Base class of every error napari-senca raises on purpose.

    ``str(error)`` is one line of at most :data:`MAX_MESSAGE` characters (see
    :func:`shorten`), whatever the message was built from; the full text stays
    in ``error.args[0]``.
    """

    def __str__(self) -> str:
        return shorten(super().__str__())


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


class OutputError(SencaError):
    """An output folder that cannot be used (an input, not writable, not ours to replace)."""


class KeptOutputError(OutputError):
    """An output folder that holds the user's work, so it is left as it is.

    It holds files napari-senca did not write, or (when only unchanged outputs
    may be replaced) napari-senca's own files changed since they were written,
    e.g. review edits saved into ``annotated.h5ad``.
    """


class StopTraining(SencaError):
    """Raised inside a training generator when the caller asked it to stop."""
