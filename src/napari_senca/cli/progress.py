"""The progress bar the commands print on stderr."""

from __future__ import annotations

import sys
from typing import Any, TextIO


class ProgressPrinter:
    """Plain-text progress bar on a stream (``\\r`` updates on a terminal, lines otherwise)."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stage: str | None = None
        self._len = 0

    def __call__(self, p: Any) -> None:
        """Show one :class:`~napari_senca.progress.Progress`."""
        total = max(int(p.total), 1)
        frac = min(max(int(p.step) / total, 0.0), 1.0)
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{p.stage:<10} [{bar}] {int(p.step)}/{int(p.total)} {p.message}"
        if int(p.total) == 0:  # a stage that was skipped: no bar, just why
            line = f"{p.stage:<10} {p.message}"
        if self.tty:
            if self._stage is not None and p.stage != self._stage:
                self.stream.write("\n")
                self._len = 0
            pad = max(0, self._len - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._len = len(line)
        elif p.stage == "train" or int(p.step) >= int(p.total):
            self.stream.write(line + "\n")
        self._stage = p.stage
        self.stream.flush()

    def close(self) -> None:
        """End the current line."""
        if self.tty and self._stage is not None:
            self.stream.write("\n")
            self.stream.flush()
        self._stage = None
