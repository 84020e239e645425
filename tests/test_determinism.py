"""Deterministic CUDA kernels for a run, the caller's settings restored (napari_senca.determinism)."""

from __future__ import annotations

import os

import pytest
import torch

from napari_senca.determinism import CUBLAS_WORKSPACE, deterministic_kernels


def _flags() -> tuple[bool, ...]:
    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
            torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled(),
            torch.backends.cuda.math_sdp_enabled(), torch.backends.cuda.cudnn_sdp_enabled())  # fmt: skip


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


def test_flags_come_back_when_the_run_fails(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
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


@pytest.fixture
def cuda_run(monkeypatch):
    """run_senca_iter as on a GPU for the settings (the arithmetic stays on the CPU): the flags seen while
    the run preprocesses, and a small section."""
    from napari_senca import pipeline
    from napari_senca.datasets import synthetic_section

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(pipeline, "_device_or_cpu", lambda device: torch.device("cuda"))
    seen: list[tuple[bool, ...]] = []
    real = pipeline.preprocess_expression

    def spy(*args, **kwargs):
        seen.append(_flags())
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "preprocess_expression", spy)
    return seen, synthetic_section(n_side=8, n_genes=40, with_image=False)


def test_a_run_computes_under_the_settings_and_hands_out_reports_under_the_callers(cuda_run):
    from napari_senca.config import SencaConfig
    from napari_senca.pipeline import run_senca_iter

    seen, section = cuda_run
    before = _flags()
    gen = run_senca_iter(section, SencaConfig(epochs=1, n_clusters=2))
    at_reports = []
    try:
        while True:
            next(gen)
            at_reports.append(_flags())
    except StopIteration as stop:
        assert stop.value.labels.shape == (section.n_obs,)
    assert seen and seen[0][:4] == (True, True, True, False)  # deterministic, warn-only, cuDNN, no benchmark
    assert seen[0][4:7] == (False, False, True)  # attention: the math kernel only
    assert at_reports and all(f == before for f in at_reports)
    assert _flags() == before


@pytest.mark.parametrize("close", [True, False])
def test_a_stopped_run_leaves_the_callers_settings(cuda_run, close):
    """Stop: the GUI's worker may close the generator or simply drop it (superqt does not close it)."""
    from napari_senca.config import SencaConfig
    from napari_senca.pipeline import run_senca_iter

    seen, section = cuda_run
    before = _flags()
    gen = run_senca_iter(section, SencaConfig(epochs=1, n_clusters=2))
    for _ in range(3):
        next(gen)
    assert seen  # it got as far as preprocessing
    assert _flags() == before
    if close:
        gen.close()
    assert _flags() == before


def test_deterministic_must_be_a_bool():
    import numpy as np

    from napari_senca.config import SencaConfig
    from napari_senca.errors import ConfigError

    assert SencaConfig(deterministic=np.bool_(False)).deterministic == np.False_  # read back from an .h5ad
    with pytest.raises(ConfigError, match="deterministic"):
        SencaConfig(deterministic="false")
