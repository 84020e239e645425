"""Deterministic CUDA kernels for a run, the caller's settings restored (napari_senca.determinism)."""

from __future__ import annotations

import os

import pytest
import torch

from napari_senca.determinism import CUBLAS_WORKSPACE, deterministic_kernels


def _flags() -> tuple[bool, ...]:
    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
            torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled())  # fmt: skip


def test_a_cuda_run_is_deterministic_and_the_callers_flags_come_back(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.benchmark = True  # a caller's setting
    before = _flags()
    try:
        with deterministic_kernels(torch.device("cuda")):  # sets flags only: no GPU needed
            assert torch.are_deterministic_algorithms_enabled()
            assert torch.is_deterministic_algorithms_warn_only_enabled()
            assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
            assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
            assert torch.backends.cuda.math_sdp_enabled()
            assert not torch.backends.cuda.flash_sdp_enabled() and not torch.backends.cuda.mem_efficient_sdp_enabled()
        assert _flags() == before
    finally:
        torch.backends.cudnn.benchmark = False


def test_flags_come_back_when_the_run_fails():
    before = _flags()
    with pytest.raises(RuntimeError, match="boom"), deterministic_kernels(torch.device("cuda")):
        raise RuntimeError("boom")
    assert _flags() == before


def test_a_users_workspace_setting_is_kept(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    with deterministic_kernels(torch.device("cuda")):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.parametrize(("device", "on"), [("cpu", True), ("cuda", False)])
def test_nothing_changes_on_the_cpu_or_when_off(device, on):
    before = _flags()
    with deterministic_kernels(torch.device(device), on):
        assert _flags() == before


def test_a_run_leaves_the_flags_as_they_were():
    from napari_senca.config import SencaConfig
    from napari_senca.datasets import synthetic_section
    from napari_senca.pipeline import run_senca

    before = _flags()
    run_senca(synthetic_section(n_side=8, n_genes=40, with_image=False), SencaConfig(epochs=1, n_clusters=2))
    assert _flags() == before
