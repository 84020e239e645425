"""The training loop of SENCA-st (paper eq. 1 and section 3.5), as a generator.

Loss = lambda * [MSE(D, E) + recon_weight * MSE(x_hat, RNA target)
                 + image_recon_weight * gate * MSE(f_hat, image target)]
       + gate * [NT-Xent(pooled windows) + NT-Xent(windows)]

The image target has the RNA input's scale (``features.image_block``), so the
two reconstruction terms weigh the modalities equally at weight 1; the
image gate (``embedding.image_gate``, 0..1) lowers the image's share where
the image does not agree with the expression anywhere: it scales the image
decoder's loss and the contrastive terms here, and the image's share of E in
the model (``SencaModel.image_gate``); at 1 this is fusion v2. The NT-Xent
terms compare window means of R and H, through the projection heads when
``projection_heads`` is on.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import SencaConfig
from .model.modules import nt_xent, window_pool
from .model.senca import SencaModel

__all__ = ["TrainData", "tiles", "train_iter", "shared_embedding", "LOSS_KEYS"]

LOSS_KEYS = ("total", "mse", "nt_window", "nt_pool", "image_recon")


@dataclass
class TrainData:
    """Everything one section contributes to training (n spots, on one device)."""

    x: Tensor  # (n, P) RNA input
    x_target: Tensor  # (n, P) RNA decoder target
    adj: Tensor  # (n, n) sparse normalised adjacency
    index: Tensor  # (n, m) neighbourhood, spot first
    mask: Tensor  # (n, m)
    xy: np.ndarray  # (n, 2) spot centres
    side: float  # window side, in the units of xy
    feats: Tensor | None = None  # (n, F) image head input (None: RNA-only)
    f_target: Tensor | None = None  # (n, Fi) image decoder target
    backbone: torch.nn.Module | None = None  # when fine-tuning
    patches: Tensor | None = None  # (n, s, s, 3) uint8 on CPU, when fine-tuning
    image_gate: float = 1.0  # how much the image counts (scales the image decoder's loss)


def tiles(xy: np.ndarray, side: float, rng: np.random.Generator) -> tuple[Tensor, int]:
    """Window id of every spot for square tiles of ``side`` at a random offset."""
    off = rng.uniform(0, side, size=2)
    cells = np.floor((xy - xy.min(0) + off) / side).astype(np.int64)
    _, ids = np.unique(cells, axis=0, return_inverse=True)
    ids = ids.ravel()
    return torch.from_numpy(ids), int(ids.max()) + 1


def _contrastive(model: SencaModel, out, data: TrainData, cfg: SencaConfig, rng) -> tuple[Tensor, Tensor]:
    """Windowed and pooled NT-Xent between the RNA and image window means."""
    dev = out.r.device
    terms = []
    for side in (data.side, data.side * cfg.pool_factor):
        wid, nw = tiles(data.xy, side, rng)
        wid = wid.to(dev)
        a, b = model.project(window_pool(out.r, wid, nw), window_pool(out.h, wid, nw))
        terms.append(nt_xent(a, b, cfg.temperature))
    return terms[0], terms[1]


def train_iter(
    model: SencaModel, data: TrainData, cfg: SencaConfig, opt: torch.optim.Optimizer
) -> Generator[dict[str, float], None, None]:
    """Train for ``cfg.epochs``; yields the mean losses of each epoch."""
    rng = np.random.default_rng(cfg.seed)
    n = data.x.shape[0]
    feats = data.feats
    for _ in range(cfg.epochs):
        model.train()
        sums = dict.fromkeys(LOSS_KEYS, 0.0)
        for _ in range(cfg.steps_per_epoch):
            f_step, sel, f_sel = feats, None, None
            if data.backbone is not None and data.patches is not None and feats is not None:
                sel = torch.from_numpy(rng.choice(n, size=min(n, cfg.finetune_batch), replace=False))
                f_sel = data.backbone(data.patches[sel].to(feats.device)).float()
                f_step = feats.clone()
                f_step[sel.to(feats.device)] = f_sel
            out = model(data.x, data.adj, data.index, data.mask, f_step)
            mse = F.mse_loss(out.d, out.e.detach())
            if cfg.recon_weight:
                mse = mse + cfg.recon_weight * F.mse_loss(out.x_hat, data.x_target)
            img = torch.zeros((), device=data.x.device)
            if out.f_hat is not None and data.f_target is not None:
                img = F.mse_loss(out.f_hat, data.f_target)
                mse = mse + cfg.image_recon_weight * data.image_gate * img
            loss = cfg.lambda_mse * mse
            ntw = ntp = torch.zeros((), device=data.x.device)
            if cfg.hierarchical and not model.rna_only:
                ntw, ntp = _contrastive(model, out, data, cfg, rng)
                loss = loss + data.image_gate * (ntw + ntp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sel is not None and feats is not None and f_sel is not None:
                feats[sel.to(feats.device)] = f_sel.detach()
            for key, v in zip(LOSS_KEYS, (loss, mse, ntw, ntp, img), strict=True):
                sums[key] += float(v.detach())
        yield {key: v / cfg.steps_per_epoch for key, v in sums.items()}


def shared_embedding(model: SencaModel, data: TrainData) -> np.ndarray:
    """S (n, shared_dim) of the trained model, in eval mode."""
    model.eval()
    feats = data.feats
    with torch.no_grad():
        if data.backbone is not None and data.patches is not None:
            data.backbone.eval()
            dev = data.x.device
            feats = torch.cat([data.backbone(data.patches[i : i + 64].to(dev)).float() for i in range(0, len(data.patches), 64)])
        return model(data.x, data.adj, data.index, data.mask, feats).s.float().cpu().numpy()
