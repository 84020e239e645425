"""Deterministic GPU kernels for one run: the same seed on the same GPU gives the same regions.

On a CPU PyTorch's kernels are already deterministic. On CUDA some are not by default
(sums through atomic additions: the backward of a gather or ``index_select``, cuBLAS' split
reductions, the fused attention kernels of ``scaled_dot_product_attention``), so two runs
with one seed differ in the last bits, training amplifies that, and the regions can differ
(measured on an H200: docs/benchmarks.md, "GPU"). :func:`deterministic_kernels` turns
PyTorch's deterministic algorithms on for the duration of a CUDA computation, keeps the all-pairs
attention of small sections (``nn.MultiheadAttention``) on the plain "math" kernel, and
restores the caller's settings afterwards; :func:`deterministic_steps` does so for each step of
a run's generator, so the settings are never left on while the run waits at a report (another
thread's torch code then runs with its own settings) or after a Stop that drops the generator
without closing it.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TypeVar

import torch

__all__ = ["deterministic_kernels", "deterministic_steps"]

Y = TypeVar("Y")
R = TypeVar("R")

#: cuBLAS needs a fixed workspace to reduce in a fixed order (PyTorch, "Reproducibility")
CUBLAS_WORKSPACE = ":4096:8"


@contextmanager
def deterministic_kernels(device: torch.device, on: bool = True) -> Iterator[None]:
    """Run the body with PyTorch's deterministic algorithms when ``device`` is CUDA and ``on``.

    Sets ``CUBLAS_WORKSPACE_CONFIG`` when the environment has none, turns on
    ``torch.use_deterministic_algorithms`` (warn-only: an operation without a
    deterministic kernel still runs) and cuDNN's deterministic mode, allows only
    the math kernel of ``scaled_dot_product_attention`` (whose fused kernels stay
    non-deterministic in warn-only mode; attention over all pairs runs only on
    sections of at most ``full_attention_max_spots`` spots, where it costs
    little), and puts the torch settings back as they were on exit (the
    environment variable stays: cuBLAS reads it when it creates a handle).
    Elsewhere it does nothing.
    """
    if not on or device.type != "cuda":
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)  # fmt: skip
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        with _math_attention():
            yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]


def deterministic_steps(gen: Generator[Y, None, R], device: torch.device, on: bool = True) -> Generator[Y, None, R]:
    """Drive ``gen`` with each of its steps (the code between two reports) under :func:`deterministic_kernels`.

    Use as ``result = yield from deterministic_steps(gen, device)``. The settings
    are on only while ``gen`` computes and are the caller's whenever a report is
    handed out; closing this generator closes ``gen``.
    """
    try:
        while True:
            with deterministic_kernels(device, on):
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return stop.value
            yield item
    finally:
        gen.close()


def _math_attention() -> AbstractContextManager[None]:
    """Only the math kernel of ``scaled_dot_product_attention``."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # torch >= 2.3
    except ImportError:
        if hasattr(torch.backends.cuda, "sdp_kernel"):  # torch 2.0-2.2
            return torch.backends.cuda.sdp_kernel(enable_flash=False, enable_math=True, enable_mem_efficient=False)
        return nullcontext()
    return sdpa_kernel(SDPBackend.MATH)
