"""What the commands share: the program name, the command line's own errors, one-line messages, reading the input."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import SencaError, shorten

if TYPE_CHECKING:  # anndata is imported by the commands, not by --help
    from anndata import AnnData

PROG = "napari-senca"


class CliError(SencaError):
    """A problem with the command line itself (e.g. the output folder exists)."""


class Terminated(BaseException):
    """Raised by the SIGTERM handler, so that a terminated run cleans up like Ctrl-C."""


def _error_line(msg: str, prefix: str = "error: ") -> None:
    print(f"{PROG}: {prefix}{shorten(str(msg))}", file=sys.stderr)


def _read(args: argparse.Namespace) -> AnnData:
    import warnings

    from ..notes import InputWarning
    from ..runner import read_input

    with warnings.catch_warnings():  # printed from uns["senca_input"] by info / run
        warnings.simplefilter("ignore", InputWarning)
        return read_input(
            args.path,
            args.section,
            args.image,
            normalized=getattr(args, "normalized", False),
            bin_size=getattr(args, "bin_size", None),
        )
