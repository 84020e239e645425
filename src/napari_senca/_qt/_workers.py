"""Worker threads of the dock widgets: imports done in the main thread first, and stopping workers.

:func:`preimport` and :func:`import_torch` import what a worker will need
before it starts (some extension modules crash when first imported from a
thread); :func:`is_alive` tells whether a widget's C++ side still exists;
:class:`WorkerBox` asks a widget's workers to quit when it goes away.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["preimport", "import_torch", "is_alive", "WorkerBox", "warm_labels_colormap", "start_labels_warm_up"]

#: the daemon thread compiling napari's labels colouring, started once per process (:func:`start_labels_warm_up`)
_labels_warm_up: threading.Thread | None = None


def preimport(*modules: str) -> None:
    """Import modules in the main thread before a worker needs them.

    Some extension modules (torch's triton hooks, pulled in by torchvision)
    crash when they are first imported from a worker thread.
    """
    import importlib

    for m in modules:
        importlib.import_module(m)


def import_torch(with_torchvision: bool = True) -> None:
    """Import torch and, with ``with_torchvision``, ``torch._dynamo`` and torchvision, safely in any thread.

    ``torch._dynamo`` (imported by torchvision, which timm encoders use, and
    by ``torch.optim``'s first step) probes for the optional ``triton``
    package. Importing triton's statically linked LLVM after an OpenGL
    context exists crashes the process on Mesa drivers (llvmpipe under Xvfb,
    radeonsi, ...). The GUI never needs triton (nothing is compiled), so the
    probe is answered "not installed" when triton is not loaded yet. The
    built-in ResNets need neither (:mod:`napari_senca.model.resnet`): without
    ``with_torchvision`` only torch is imported (2-3 s less on two cores).
    """
    import sys

    if "torch" in sys.modules and (not with_torchvision or (
            "torch._dynamo" in sys.modules and "torchvision.models" in sys.modules)):  # fmt: skip
        return
    blocked = "triton" not in sys.modules
    if blocked:
        sys.modules["triton"] = None  # type: ignore[assignment]  # makes `import triton` raise ImportError
    try:
        import torch

        if with_torchvision:
            import torch._dynamo  # noqa: F401
            import torchvision.models  # noqa: F401
    finally:
        if blocked and sys.modules.get("triton", 0) is None:
            del sys.modules["triton"]


def is_alive(obj: Any) -> bool:
    """False once the C++ side of a Qt object has been deleted (viewer closed)."""
    try:
        from qtpy import API_NAME

        if API_NAME.lower().startswith("pyqt"):
            from qtpy import sip

            return not sip.isdeleted(obj)
        import shiboken6  # PySide6

        return bool(shiboken6.isValid(obj))
    except Exception:  # pragma: no cover - unknown binding: assume alive
        return True


class WorkerBox:
    """Holds a widget's running workers so they can be stopped when it is destroyed.

    Connected to the widget's ``destroyed`` signal; it is a plain Python object
    so the connection still works once the widget's C++ side is gone.
    """

    def __init__(self) -> None:
        self.workers: list[Any] = []

    def add(self, worker: Any) -> Any:
        self.workers.append(worker)
        worker.finished.connect(lambda w=worker: self.discard(w))
        return worker

    def discard(self, worker: Any) -> None:
        if worker in self.workers:
            self.workers.remove(worker)

    def quit_all(self, *_: Any) -> None:
        for w in list(self.workers):
            try:
                w.quit()
            except RuntimeError:  # pragma: no cover
                pass


def warm_labels_colormap() -> None:
    """Compile napari's labels colouring for the data types a section raster uses.

    napari colours a labels layer through numba functions and typed dicts
    compiled on first use for each data type (the typed dicts are not cached
    on disk): 1.7-2.3 s of a frozen viewer when the first square-grid section
    (Visium HD) of a session opens. Mapping a tiny array through a
    ``DirectLabelColormap`` compiles the same code; no layer is made (layers
    touch napari's unit registry, which is not thread-safe).
    """
    import numpy as np
    from napari.utils.colormaps import DirectLabelColormap

    colours = {None: "#00000000", 0: "#00000000", 1: "#ff0000", 2: "#0000ff"}
    for dtype in (np.uint8, np.uint16):  # review.raster._dtype: up to 65,535 regions
        DirectLabelColormap(color_dict=colours).map(np.ones((2, 2), dtype=dtype))


def _warm_quietly() -> None:
    try:
        warm_labels_colormap()
    except Exception:  # only a warm-up: the first layer compiles it instead
        pass


def start_labels_warm_up() -> threading.Thread:
    """Start :func:`warm_labels_colormap` in a daemon thread, once per process; returns the thread.

    A plain thread, no Qt signals: nothing is emitted to a widget that may be
    gone, and the process never waits for it at exit.
    """
    global _labels_warm_up
    if _labels_warm_up is None:
        _labels_warm_up = threading.Thread(target=_warm_quietly, name="napari-senca labels warm-up", daemon=True)
        _labels_warm_up.start()
    return _labels_warm_up
