"""Adam on the fused kernel, without ``torch.optim``'s import of ``torch._dynamo``.

``torch.optim.Optimizer.step`` imports ``torch._dynamo`` on its first call (a
graph-break marker for ``torch.compile``), about 2 s of a run's start on the
2-core CPU: more than a small section's whole training. :class:`FusedAdam`
calls the same fused kernel that ``torch.optim.Adam(fused=True)`` calls, with
the same state, so its updates are bit-identical (tested in
``tests/test_optim.py``); devices without the fused kernel (MPS) use
``torch.optim.Adam``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["FusedAdam", "make_adam"]

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
EPS = 1e-8


class FusedAdam:
    """Adam (Kingma & Ba; L2 weight decay as in ``torch.optim.Adam``) over parameter groups.

    Parameters
    ----------
    groups
        Parameter groups as for ``torch.optim``: dicts with ``"params"`` and
        optionally ``"lr"``.
    lr
        Learning rate of groups that do not set their own.
    weight_decay
        L2 penalty added to the gradients (not decoupled).
    """

    def __init__(self, groups: Iterable[dict[str, Any]], lr: float, weight_decay: float = 0.0) -> None:
        self.param_groups = [{**g, "params": list(g["params"]), "lr": g.get("lr", lr)} for g in groups]
        self.weight_decay = weight_decay
        self.state: dict[Tensor, dict[str, Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) every parameter's gradient."""
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        for group in self.param_groups:
            by_device: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_device.setdefault((p.device, p.dtype), []).append(p)
            for params in by_device.values():
                self._update(params, group["lr"])

    def _update(self, params: list[Tensor], lr: float) -> None:
        states = [self._state(p) for p in params]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
            [], steps, amsgrad=False, lr=lr, beta1=BETAS[0], beta2=BETAS[1], weight_decay=self.weight_decay,
            eps=EPS, maximize=False, grad_scale=None, found_inf=None,
        )  # fmt: skip

    def _state(self, p: Tensor) -> dict[str, Tensor]:
        if p not in self.state:
            self.state[p] = {
                "step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        return self.state[p]

    def _params(self) -> Iterable[Tensor]:
        for group in self.param_groups:
            yield from group["params"]


def make_adam(groups: list[dict[str, Any]], lr: float, weight_decay: float, device: torch.device) -> Any:
    """:class:`FusedAdam` on CPU and CUDA, ``torch.optim.Adam`` elsewhere (MPS)."""
    if device.type in ("cpu", "cuda") and hasattr(torch, "_fused_adam_"):
        return FusedAdam(groups, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
