"""The cyclic garbage collector's settings for a command-line process.

CPython frees almost everything (tensors, arrays, frames) by reference
counting the moment it is no longer used. The cyclic collector exists only
for objects that refer to each other in a loop, yet it runs every 700 new
container objects and then traverses whole generations. After importing
torch, scanpy, anndata and scikit-learn a process holds millions of objects
(3,700 modules), and a training run creates hundreds of thousands of small
ones (autograd nodes, progress records). Measured on HER2ST A1 with its H&E
(``napari-senca run``, idle 2-core CPU; docs/benchmarks.md, "Sixth session"):

* 1,042 young, 95 middle and 7 full collections took 0.9 s of a 10 s run;
* tearing the interpreter down at exit took another 1.0-1.2 s, most of it
  collections that traverse every imported object once more.

:func:`command_process` is for a process that ends when its command does (the
``napari-senca`` program). It raises the young generation's threshold to
:data:`YOUNG_THRESHOLD` allocations and the older generations' to
:data:`OLDER_THRESHOLD`, and at the end moves every object into the permanent
generation (:func:`gc.freeze`), so the interpreter's exit no longer traverses
them. Before freezing it collects once, so every cycle that is already garbage
is finalised as usual (its ``__del__`` runs: temporary files deleted, stores
closed); cycles are still collected during the run (less often), and
``atexit`` handlers run. What the freeze gives up is the collection of cycles
that become garbage during the interpreter's own teardown, whose finalisers
CPython does not promise to run anyway. The settings never change a result,
and the peak memory of the measured runs did not move.

The napari widgets and the Python API leave the collector alone: a viewer is
a long-lived process, and freezing its objects would keep their cycles alive.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["OLDER_THRESHOLD", "YOUNG_THRESHOLD", "command_process"]

#: Allocations between young-generation collections (CPython's default: 700).
YOUNG_THRESHOLD = 10_000
#: Collections of the younger generation between collections of the next (default: 10).
OLDER_THRESHOLD = 20


@contextmanager
def command_process() -> Iterator[None]:
    """Collect cycles less often while the block runs; freeze every object when it ends.

    Use it around the whole of a command in a process that exits right after
    (the console script). On leaving, the previous thresholds come back, one
    full collection finalises what is already garbage, and :func:`gc.freeze`
    moves the rest to the permanent generation, which makes the interpreter's
    teardown about 1 s faster (see the module).
    """
    previous = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.collect()  # garbage cycles are finalised now, not frozen
        gc.freeze()
