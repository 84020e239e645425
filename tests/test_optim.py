"""FusedAdam: the same updates as torch.optim.Adam(fused=True), without importing torch._dynamo."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from napari_senca.optim import FusedAdam, make_adam


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(7, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3))


def _train(model: nn.Module, opt, steps: int = 5) -> list[torch.Tensor]:
    torch.manual_seed(1)
    for _ in range(steps):
        x = torch.randn(32, 7)
        loss = (model(x) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_updates_are_bit_identical_to_torch_fused_adam(weight_decay):
    ref, ours = _model(0), _model(0)

    def groups(m):  # two groups with their own learning rates, as the pipeline's backbone group
        return [{"params": m[0].parameters(), "lr": 1e-3}, {"params": list(m[2:].parameters()), "lr": 3e-4}]

    want = _train(ref, torch.optim.Adam(groups(ref), lr=5e-4, weight_decay=weight_decay, fused=True))
    got = _train(ours, FusedAdam(groups(ours), lr=5e-4, weight_decay=weight_decay))
    for a, b in zip(want, got, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(got[0], _model(0)[0].weight)  # it did train


def test_parameters_without_gradients_are_left_alone():
    m = _model(0)
    frozen = m[3].weight.detach().clone()
    m[3].weight.requires_grad_(False)
    opt = FusedAdam([{"params": m.parameters()}], lr=1e-2)
    _train(m, opt, steps=2)
    assert torch.equal(m[3].weight, frozen)
    assert m[3].weight not in opt.state


def test_zero_grad_keeps_or_drops_the_gradient():
    m = _model(0)
    opt = FusedAdam([{"params": m.parameters()}], lr=1e-2)
    (m(torch.randn(4, 7)) ** 2).mean().backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in m.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_other_devices_get_torch_adam():
    m = _model(0)
    assert isinstance(make_adam([{"params": m.parameters()}], 1e-3, 0.0, torch.device("cpu")), FusedAdam)
    opt = make_adam([{"params": m.parameters()}], 1e-3, 0.0, torch.device("meta"))
    assert isinstance(opt, torch.optim.Adam)


def test_an_rna_only_run_does_not_import_dynamo(tmp_path):
    """torch._dynamo costs ~2 s of a run's start; an RNA-only run must not import it."""
    code = textwrap.dedent(
        """
        import sys
        from napari_senca import datasets, pipeline
        from napari_senca.config import SencaConfig
        sec = datasets.synthetic_section(n_side=10, n_genes=60, seed=0, with_image=False)
        pipeline.run_senca(sec, SencaConfig(epochs=1, steps_per_epoch=3, n_clusters=3))
        print("dynamo" if "torch._dynamo" in sys.modules else "clean")
        """
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": path})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "clean"
