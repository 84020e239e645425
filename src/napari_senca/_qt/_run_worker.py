"""The Run widget's worker threads: the warm-up import and the training generator (no Qt here).

:func:`warm_up` imports torch and the pipeline off the main thread when the
widget opens; :func:`train` is the generator the widget wraps in a napari
``thread_worker`` (it yields the pipeline's progress, so Stop works at every
report). A ``RuntimeError`` leaving either is re-raised as :class:`RunFailed`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ..config import SencaConfig
from ..errors import SencaError
from ..image_weights import BUILTIN_RESNETS
from ._workers import import_torch, preimport

__all__ = ["HEAVY_MODULES", "RunFailed", "close_generator", "needs_torchvision", "pipeline_loaded", "train",
           "warm_up"]

#: modules a run needs, imported by :func:`warm_up` off the main thread when the widget opens
HEAVY_MODULES = (
    "napari_senca.pipeline",
    "napari_senca.model.backbone",
    "napari_senca.model.modules",
    "napari_senca.model.senca",
    "napari_senca.patches",
    "napari_senca.preprocess",
    "sklearn.decomposition",
    "sklearn.cluster",
    "scanpy",
)


def pipeline_loaded() -> bool:
    """True once :mod:`napari_senca.pipeline` (and so torch) is imported."""
    return "napari_senca.pipeline" in sys.modules


def needs_torchvision(backbone: str) -> bool:
    """True for encoders that import torchvision (timm models); the built-in ResNets do not."""
    return str(backbone) not in BUILTIN_RESNETS


def warm_up(backbone: str) -> bool | None:
    """Worker: import torch (torchvision for timm encoders) and the pipeline so that a click does not wait for them.

    Returns whether the ImageNet weights of ``backbone`` are in the torch cache
    (None: unknown), for the note shown before a run.
    """
    try:
        import_torch(with_torchvision=needs_torchvision(backbone))
        preimport(*HEAVY_MODULES)
        from ..image_weights import imagenet_cached

        return imagenet_cached(backbone)
    except RuntimeError as exc:
        raise RunFailed(exc) from exc


class RunFailed(SencaError):
    """A ``RuntimeError`` of a worker (torch raises them, e.g. out of memory), re-raised.

    superqt takes a ``RuntimeError`` leaving a worker for a deleted worker and
    then emits neither ``errored`` nor ``finished``: the widget would wait forever.
    """

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")


def train(adata: Any, config: SencaConfig) -> Any:
    """Generator run in the worker: yields progress, returns the annotated copy.

    ``adata`` is the worker's own copy; the layers are not touched here. The
    heavy imports happen here, off the main thread (a no-op once
    :func:`warm_up` has run).
    """
    try:
        import_torch(with_torchvision=needs_torchvision(config.backbone))
        from ..pipeline import annotate, run_senca_iter

        t0 = time.perf_counter()
        result = yield from run_senca_iter(adata, config)
        annotate(adata, result)
    except RuntimeError as exc:
        raise RunFailed(exc) from exc
    return adata, result, time.perf_counter() - t0


def close_generator(worker: Any) -> None:
    """Close the generator of a finished, stopped worker.

    superqt's generator worker only stops asking for reports on Stop; the
    suspended run (its model, its tensors: GPU memory on CUDA) would then live
    until a garbage collection frees the worker. Closing it frees them now and
    runs the run's own clean-up. Nothing happens for a worker without one.
    """
    gen = getattr(worker, "_gen", None)  # superqt's GeneratorWorker keeps it there
    close = getattr(gen, "close", None)
    if close is not None:
        try:
            close()
        except ValueError:  # still executing in its thread (not after `finished`): leave it to the GC
            pass
