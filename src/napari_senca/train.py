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

from .batches import HaloSampler, tile_cores
from .config import SencaConfig
from .generators import drain
from .model.modules import nt_xent, window_pool
from .model.senca import SencaModel
from .optim import FusedAdam, make_adam

__all__ = ["TrainData", "Batch", "tiles", "windows", "make_optimizer", "train_iter", "embed_iter", "shared_embedding",
           "LOSS_KEYS"]

LOSS_KEYS = ("total", "mse", "nt_window", "nt_pool", "image_recon")


@dataclass
class TrainData:
    """Everything one section contributes to training (n spots).

    Without ``halo`` every step is one pass over the whole section (all tensors
    on the model's device). With ``halo`` (sections above ``batch_spots``)
    each step is one spatial tile of about ``batch_spots`` core spots plus
    its graph halo (:mod:`napari_senca.batches`); the section's tensors may
    then stay on the CPU and each batch is moved to the model's device.
    """

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
    image_gate: float = 1.0  # how much the image counts (scales the image decoder's loss and the contrastive terms)
    halo: HaloSampler | None = None  # mini-batches of tiles (None: whole-section steps)
    batch_side: float = 0.0  # side of a mini-batch tile, in the units of xy


@dataclass
class Batch:
    """One step's inputs: ``n_core`` core rows first (all rows for a whole-section step)."""

    x: Tensor  # (b, P)
    adj: Tensor  # (b, b)
    index: Tensor  # (b, m)
    mask: Tensor  # (b, m)
    feats: Tensor | None  # (b, F)
    x_target: Tensor  # (c, P) core rows
    f_target: Tensor | None  # (c, Fi) core rows
    xy: np.ndarray  # (c, 2) core rows
    nodes: np.ndarray | None  # (b,) section rows; None: the whole section in order
    n_core: int


def tiles(xy: np.ndarray, side: float, rng: np.random.Generator) -> tuple[Tensor, int]:
    """Window id of every spot for square tiles of ``side`` at a random offset."""
    off = rng.uniform(0, side, size=2)
    cells = np.floor((xy - xy.min(0) + off) / side).astype(np.int64)
    _, ids = np.unique(cells, axis=0, return_inverse=True)
    ids = ids.ravel()
    return torch.from_numpy(ids), int(ids.max()) + 1


def windows(
    xy: np.ndarray, side: float, rng: np.random.Generator, max_windows: int
) -> tuple[Tensor | None, Tensor, int]:
    """Windows of :func:`tiles`, at most ``max_windows`` of them sampled at random.

    Returns ``(rows, window id of each row, windows)``; ``rows`` is None when
    every spot is kept (no more than ``max_windows`` windows). Bounding the
    windows bounds NT-Xent's (2W, 2W) similarity matrix.
    """
    wid, nw = tiles(xy, side, rng)
    if nw <= max_windows:
        return None, wid, nw
    keep = rng.choice(nw, size=max_windows, replace=False)
    remap = np.full(nw, -1, dtype=np.int64)
    remap[keep] = np.arange(max_windows)
    w = remap[wid.numpy()]
    rows = np.flatnonzero(w >= 0)
    return torch.from_numpy(rows), torch.from_numpy(w[rows]), max_windows


def _contrastive(model: SencaModel, r: Tensor, h: Tensor, xy: np.ndarray, side: float, cfg: SencaConfig, rng) -> tuple[Tensor, Tensor]:
    """Windowed and pooled NT-Xent between the RNA and image window means (core rows)."""
    dev = r.device
    terms = []
    for s in (side, side * cfg.pool_factor):
        rows, wid, nw = windows(xy, s, rng, cfg.max_windows)
        rr, hh = (r, h) if rows is None else (r[rows.to(dev)], h[rows.to(dev)])
        wid = wid.to(dev)
        a, b = model.project(window_pool(rr, wid, nw), window_pool(hh, wid, nw))
        terms.append(nt_xent(a, b, cfg.temperature))
    return terms[0], terms[1]


def _device(model: SencaModel) -> torch.device:
    return next(model.parameters()).device


def _batch(data: TrainData, core: np.ndarray | None, dev: torch.device) -> Batch:
    """The whole section (``core=None``) or one core tile with its halo, on ``dev``."""
    if core is None or data.halo is None:
        return Batch(x=data.x, adj=data.adj, index=data.index, mask=data.mask, feats=data.feats,
                     x_target=data.x_target, f_target=data.f_target, xy=data.xy, nodes=None, n_core=data.x.shape[0])
    sg = data.halo.subgraph(core, dev)
    nodes, c = torch.from_numpy(sg.nodes), torch.from_numpy(np.asarray(core, dtype=np.int64))

    def rows(t: Tensor | None, i: Tensor) -> Tensor | None:
        return None if t is None else t[i.to(t.device)].to(dev)

    return Batch(x=rows(data.x, nodes), adj=sg.adj, index=sg.index, mask=sg.mask, feats=rows(data.feats, nodes),
                 x_target=rows(data.x_target, c), f_target=rows(data.f_target, c), xy=data.xy[core],
                 nodes=sg.nodes, n_core=sg.n_core)


def _epoch_cores(data: TrainData, cfg: SencaConfig, rng: np.random.Generator) -> list[np.ndarray | None]:
    """One epoch's steps: whole-section steps, or random tiles (new offset every epoch)."""
    if data.halo is None:
        return [None] * cfg.steps_per_epoch
    cores = tile_cores(data.xy, data.batch_side, rng, min_spots=max(2, cfg.batch_spots // 10))
    if not cores:
        cores = tile_cores(data.xy, data.batch_side, rng)
    order = rng.permutation(len(cores))
    return [cores[order[i % len(cores)]] for i in range(cfg.steps_per_epoch)]


def _step(model: SencaModel, data: TrainData, cfg: SencaConfig, opt: FusedAdam | torch.optim.Optimizer,
          rng: np.random.Generator, core: np.ndarray | None) -> tuple[Tensor, ...]:
    """One optimiser step on a batch; returns the loss terms (LOSS_KEYS order)."""
    dev = _device(model)
    bt = _batch(data, core, dev)
    c = bt.n_core
    f_step, sel, f_sel = bt.feats, None, None
    if data.backbone is not None and data.patches is not None and bt.feats is not None:
        nb = bt.x.shape[0]
        sel = torch.from_numpy(rng.choice(nb, size=min(nb, cfg.finetune_batch), replace=False))
        src = sel if bt.nodes is None else torch.from_numpy(bt.nodes[sel.numpy()])
        f_sel = data.backbone(data.patches[src].to(dev)).float()
        f_step = bt.feats.clone()
        f_step[sel.to(dev)] = f_sel
    out = model(bt.x, bt.adj, bt.index, bt.mask, f_step)
    mse = F.mse_loss(out.d[:c], out.e[:c].detach())
    rna = F.mse_loss(out.x_hat[:c], bt.x_target) if cfg.recon_weight else torch.zeros((), device=dev)
    img = torch.zeros((), device=dev)
    rna_w, img_w = cfg.recon_weight, cfg.image_recon_weight
    if out.f_hat is not None and bt.f_target is not None:
        img = F.mse_loss(out.f_hat[:c], bt.f_target)
        rna_w, img_w = _recon_weights(cfg, rna, img)
    mse = mse + rna_w * rna + img_w * data.image_gate * img
    loss = cfg.lambda_mse * mse
    ntw = ntp = torch.zeros((), device=dev)
    if cfg.hierarchical and not model.rna_only:
        ntw, ntp = _contrastive(model, out.r[:c], out.h[:c], bt.xy, data.side, cfg, rng)
        loss = loss + data.image_gate * (ntw + ntp)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if sel is not None and data.feats is not None and f_sel is not None:
        src = sel if bt.nodes is None else torch.from_numpy(bt.nodes[sel.numpy()])
        data.feats[src.to(data.feats.device)] = f_sel.detach().to(data.feats.device)
    return loss, mse, ntw, ntp, img


def _recon_weights(cfg: SencaConfig, rna: Tensor, img: Tensor) -> tuple[Tensor | float, Tensor | float]:
    """Weights of the RNA and image decoders' losses (``cfg.recon_balance``).

    ``"scale"``: ``recon_weight`` and ``image_recon_weight``. ``"loss"``: each
    loss divided by its detached value and multiplied by the mean of the two,
    so both decoders get the same relative push; only where both weights are above 0.
    """
    if cfg.recon_balance == "scale" or not (cfg.recon_weight and cfg.image_recon_weight):
        return cfg.recon_weight, cfg.image_recon_weight
    r0, i0 = rna.detach().clamp_min(1e-8), img.detach().clamp_min(1e-8)
    mean = 0.5 * (r0 + i0)
    return cfg.recon_weight * mean / r0, cfg.image_recon_weight * mean / i0


def make_optimizer(groups: list[dict], cfg: SencaConfig, device: torch.device) -> FusedAdam | torch.optim.Optimizer:
    """Adam over the parameter ``groups``; the fused kernel on CPU and CUDA.

    The fused update is one kernel per step instead of about ten small ops per
    parameter tensor: 4x faster on the CPU (1.2 vs 4.8 ms a step for the model's
    60 tensors), a tenth of a small section's training step. It is driven by
    :class:`~napari_senca.optim.FusedAdam`, not ``torch.optim``, whose first
    step imports ``torch._dynamo`` (about 2 s of a run's start).
    """
    return make_adam(groups, cfg.lr, cfg.weight_decay, device)


def train_iter(
    model: SencaModel, data: TrainData, cfg: SencaConfig, opt: FusedAdam | torch.optim.Optimizer
) -> Generator[dict[str, float], None, None]:
    """Train for ``cfg.epochs``; yields the mean losses of each epoch."""
    rng = np.random.default_rng(cfg.seed)
    for _ in range(cfg.epochs):
        model.train()
        sums = dict.fromkeys(LOSS_KEYS, 0.0)
        cores = _epoch_cores(data, cfg, rng)
        for core in cores:
            terms = _step(model, data, cfg, opt, rng, core)
            for key, v in zip(LOSS_KEYS, terms, strict=True):
                sums[key] += float(v.detach())
        yield {key: v / len(cores) for key, v in sums.items()}


def _all_features(data: TrainData, dev: torch.device) -> Tensor | None:
    """The image head's input for every spot (re-encoded by a fine-tuned backbone)."""
    if data.backbone is None or data.patches is None:
        return data.feats
    data.backbone.eval()
    out = [data.backbone(data.patches[i : i + 64].to(dev)).float().to(data.feats.device if data.feats is not None else dev)
           for i in range(0, len(data.patches), 64)]
    return torch.cat(out)


def embed_iter(model: SencaModel, data: TrainData, output: str = "s") -> Generator[tuple[int, int], None, np.ndarray]:
    """S (n, shared_dim) of the trained model in eval mode, tile by tile for large sections.

    ``output="x_hat"`` returns the gene decoder's reconstruction from S
    instead, (n, n_inputs). Yields ``(tiles done, tiles)`` after each tile;
    returns the array.
    """
    model.eval()
    dev = _device(model)
    with torch.no_grad():
        feats = _all_features(data, dev)
        full = TrainData(**{**data.__dict__, "feats": feats})
        if data.halo is None:
            z = getattr(model(full.x, full.adj, full.index, full.mask, feats), output).float().cpu().numpy()
            yield (1, 1)
            return z
        cores = tile_cores(data.xy, data.batch_side)
        z = np.empty((data.x.shape[0], model.cfg.shared_dim if output == "s" else data.x.shape[1]), dtype=np.float32)
        for i, core in enumerate(cores, 1):
            bt = _batch(full, core, dev)
            out = getattr(model(bt.x, bt.adj, bt.index, bt.mask, bt.feats), output)
            z[core] = out[: bt.n_core].float().cpu().numpy()
            yield (i, len(cores))
        return z


def shared_embedding(model: SencaModel, data: TrainData) -> np.ndarray:
    """S (n, shared_dim) of the trained model, in eval mode (:func:`embed_iter` to the end)."""
    return drain(embed_iter(model, data))
