"""The ``napari-senca`` command line.

``napari-senca info PATH`` summarises a section; ``napari-senca run PATH --out
DIR`` trains SENCA-st on it and writes ``annotated.h5ad``, ``clusters.csv``,
``markers.csv`` and ``overview.png`` into ``DIR``. Errors in the data or the
settings are reported as one line (``napari-senca: error: ...``, exit code 2);
Ctrl-C exits with 130 and SIGTERM with 143, both leaving no partial output.
The console script is :func:`entry` (:func:`main` with the garbage collector
set for a short-lived process, :mod:`napari_senca.gc_policy`).

The output folder is checked before any work (see :mod:`napari_senca.outputs`):
it must not be, contain or lie inside an input, must be writable, and an
existing folder is replaced (``--overwrite``) only when it is empty or a
previous napari-senca output (it holds the marker file ``.napari-senca-output.json``).

The parser lives in :mod:`.parser`, the commands in :mod:`.info` and
:mod:`.run` (``run`` and ``batch``), the progress bar in :mod:`.progress` and
what they share in :mod:`.common`; everything that was importable from
``napari_senca.cli`` still is.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import SencaError
from ..gc_policy import command_process
from ..threads import prefer_passive_waiting
from .common import PROG as PROG
from .common import CliError as CliError
from .common import Terminated as Terminated
from .common import _error_line
from .common import _read as _read
from .info import summarize
from .parser import build_parser
from .progress import ProgressPrinter
from .run import _config as _config
from .run import _inputs as _inputs

__all__ = ["main", "entry", "build_parser", "summarize", "ProgressPrinter"]


def __getattr__(name: str) -> Any:
    """``OUTPUT_FILES`` from :mod:`napari_senca.runner`, imported on first use (it imports anndata)."""
    if name == "OUTPUT_FILES":
        from ..runner import OUTPUT_FILES

        return OUTPUT_FILES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad data / settings / usage, 130 on Ctrl-C, 143 on SIGTERM.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code) if isinstance(exc.code, int) else 2
    # before torch loads: `run` spins on free cores, waits passively beside other programs (napari_senca.threads)
    prefer_passive_waiting(only_if_busy=args.command == "run")
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    previous = _on_sigterm(_raise_terminated)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        _error_line("interrupted; no output was written", prefix="")
        return 130
    except Terminated:
        _error_line("terminated; no output was written", prefix="")
        return 143
    except SencaError as exc:
        _error_line(str(exc))
        return 2
    except OSError as exc:  # permissions, full disk, file exists...
        _error_line(str(exc))
        return 2
    except MemoryError:
        _error_line("out of memory (the section or its image is too large for this machine)")
        return 2
    finally:
        _on_sigterm(previous)


def entry() -> int:
    """The ``napari-senca`` program: :func:`main` on ``sys.argv``, in a process that ends with it.

    The garbage collector runs less often and the exit skips a second pass
    over every imported object (:func:`napari_senca.gc_policy.command_process`):
    about 2 s of a 10 s run on HER2ST A1. Call :func:`main` to run the
    command line inside a longer-lived process (tests, notebooks).
    """
    with command_process():
        return main()


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def _on_sigterm(handler: Any) -> Any:
    """Install ``handler`` for SIGTERM; returns the previous one (None where signals cannot be set)."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        return None
