"""Worker threads of the dock widgets: imports done in the main thread first, and stopping workers.

:func:`preimport` and :func:`import_torch` import what a worker will need
before it starts (some extension modules crash when first imported from a
thread); :func:`is_alive` tells whether a widget's C++ side still exists;
:class:`WorkerBox` asks a widget's workers to quit when it goes away.
"""

from __future__ import annotations

from typing import Any

__all__ = ["preimport", "import_torch", "is_alive", "WorkerBox"]


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
