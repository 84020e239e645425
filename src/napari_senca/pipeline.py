"""Training and inference as a generator (stardist-napari style).

:func:`run_senca_iter` yields :class:`Progress` objects and *returns* a
:class:`SencaResult` (``StopIteration.value``): a GUI wraps it in a
``thread_worker`` and can stop at any yield, tests drive it synchronously, and
:func:`run_senca` is the plain-function wrapper for scripts. :func:`annotate`
stores a result in the section following the AnnData conventions.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from anndata import AnnData

from ._version import __version__
from .cluster import as_categorical, check_n_clusters, cluster_embedding
from .confidence import record_model_call
from .config import SencaConfig
from .errors import ConfigError
from .graph import build_graph, neighbour_index, normalized_adjacency
from .patches import iter_patches
from .preprocess import preprocess_expression
from .section import CLUSTER_KEY, EMBED_KEY, LABEL_KEY, UNS_KEY, get_image, spot_spacing

__all__ = [
    "Progress",
    "STAGE_WEIGHTS",
    "OverallProgress",
    "SencaResult",
    "run_senca_iter",
    "run_senca",
    "annotate",
    "resolve_device",
    "default_n_clusters",
    "check_run_settings",
]


@dataclass
class Progress:
    """One progress report.

    Attributes
    ----------
    stage
        ``"preprocess"``, ``"patches"``, ``"train"`` or ``"cluster"``.
    step, total
        Position within the stage (e.g. epoch 3 of 10).
    message
        Human-readable one-liner.
    losses
        Mean losses of the epoch (``total``, ``mse``, ``nt_window``, ``nt_pool``).
    overall
        Fraction of the whole run done, 0..1, over all stages (weighted by
        :data:`STAGE_WEIGHTS`) and never decreasing; set by :func:`run_senca_iter`.
    """

    stage: str
    step: int
    total: int
    message: str
    losses: dict[str, float] = field(default_factory=dict)
    overall: float = 0.0

    @property
    def fraction(self) -> float:
        """Fraction of the current stage done."""
        return self.step / self.total if self.total else 0.0


#: Share of a run's time per stage, from the measured time split (docs/benchmarks.md, CPU,
#: default settings: patches/train 4.7/4.3 s on A1, 64/130 s on DLPFC, 72/138 s on 5,000
#: spots; preprocess and cluster 1-5 % on RNA-only sections). The image stage counts only
#: when the H&E is used; the shares of the stages that run are normalised to 1.
STAGE_WEIGHTS: dict[str, float] = {"preprocess": 0.03, "patches": 0.35, "train": 0.60, "cluster": 0.02}


class OverallProgress:
    """Turns per-stage :class:`Progress` reports into one fraction of the run.

    Stages run in the order of :data:`STAGE_WEIGHTS`; ``use_image=False``
    drops the image stage. Unknown stages keep the fraction where it is, and
    the fraction never goes down.
    """

    def __init__(self, use_image: bool) -> None:
        stages = [s for s in STAGE_WEIGHTS if use_image or s != "patches"]
        total = sum(STAGE_WEIGHTS[s] for s in stages)
        self.start: dict[str, float] = {}
        self.weight: dict[str, float] = {}
        acc = 0.0
        for st in stages:
            self.start[st], self.weight[st] = acc, STAGE_WEIGHTS[st] / total
            acc += self.weight[st]
        self.value = 0.0

    def update(self, p: Progress) -> Progress:
        """Set ``p.overall`` and return ``p``."""
        if p.stage in self.start:
            frac = min(max(p.fraction, 0.0), 1.0)
            self.value = max(self.value, min(1.0, self.start[p.stage] + self.weight[p.stage] * frac))
        p.overall = self.value
        return p


def _with_overall(fn: Callable[..., Generator[Progress, None, SencaResult]]) -> Any:
    """Decorate :func:`run_senca_iter` so that every report carries ``overall``."""

    @functools.wraps(fn)
    def wrapper(
        adata: AnnData, config: SencaConfig | None = None, **kwargs: Any
    ) -> Generator[Progress, None, SencaResult]:
        cfg = config or SencaConfig()
        tracker = OverallProgress(bool(cfg.use_image) and get_image(adata) is not None)
        gen = fn(adata, config, **kwargs)
        try:
            while True:
                try:
                    p = next(gen)
                except StopIteration as stop:
                    return stop.value
                yield tracker.update(p)
        finally:
            gen.close()

    return wrapper


@dataclass
class SencaResult:
    """What one run produces (see :func:`annotate` for where it is stored)."""

    embedding: np.ndarray  # (n_spots, shared_dim [+ skip_pcs]) the clustered embedding
    labels: np.ndarray  # (n_spots,) int, cluster 0 the largest
    linkage: np.ndarray | None  # Ward tree, None for k-means
    n_clusters: int
    genes: list[str]
    history: list[dict[str, float]]
    config: SencaConfig
    device: str
    rna_only: bool
    image_weights_used: str
    timings: dict[str, float]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU.

    Raises
    ------
    ConfigError
        When an explicitly requested device is not available.
    """
    d = str(device).lower()
    if d == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available; use 'auto' or 'cpu'")
    if d == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was requested but Apple MPS is not available; use 'auto' or 'cpu'")
    try:
        return torch.device(d)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or mps") from None


def default_n_clusters(adata: AnnData, fallback: int = 7) -> int:
    """Number of labelled regions when the section has labels, else ``fallback``."""
    if LABEL_KEY in adata.obs:
        k = int(adata.obs[LABEL_KEY].dropna().nunique())
        if k >= 2:
            return k
    return min(fallback, adata.n_obs)


def _tiles(xy: np.ndarray, side: float, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
    """Window id of every spot for square tiles of ``side`` at a random offset."""
    off = rng.uniform(0, side, size=2)
    cells = np.floor((xy - xy.min(0) + off) / side).astype(np.int64)
    _, ids = np.unique(cells, axis=0, return_inverse=True)
    ids = ids.ravel()
    return torch.from_numpy(ids), int(ids.max()) + 1


def _pcs(x: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    """Principal-component scores of ``x`` (n, G) -> (n, min(n_components, n, G))."""
    from sklearn.decomposition import PCA

    k = min(n_components, *x.shape)
    return np.ascontiguousarray(PCA(k, random_state=seed).fit_transform(x), dtype=np.float32)


def _unit(z: np.ndarray) -> np.ndarray:
    """``z`` scaled to a mean squared row norm of 1."""
    return z / max(float(np.sqrt((z.astype(np.float64) ** 2).sum(1).mean())), 1e-12)


def _with_skip(s: np.ndarray, x: np.ndarray, adj: torch.Tensor, cfg: SencaConfig) -> np.ndarray:
    """The clustered embedding: S, or [skip block, skip_weight * S] (both unit-scaled).

    The skip block is the first ``skip_pcs`` principal components of the
    expression averaged over ``smooth_hops`` (at least one) hops of the graph.
    """
    if not cfg.skip_pcs:
        return s
    p = torch.from_numpy(_pcs(x, cfg.skip_pcs, cfg.seed)).to(adj.device)  # (n, P)
    for _ in range(max(1, cfg.smooth_hops)):
        p = torch.sparse.mm(adj, p)
    return np.hstack([_unit(p.cpu().numpy()), cfg.skip_weight * _unit(s)]).astype(np.float32)


def check_run_settings(config: SencaConfig, n_spots: int, n_clusters: int) -> None:
    """Raise :class:`ConfigError` when the settings cannot work on ``n_spots`` spots.

    Called by :func:`run_senca_iter` and, before a worker starts, by the GUI
    and the CLI. A section too small for any setting is reported as such
    (not as a bad cluster count the user never chose).
    """
    need = max(2, config.n_neighbors + 1)
    if n_spots < need:
        raise ConfigError(
            f"the section has {n_spots} spot{'' if n_spots == 1 else 's'}; at least {need} are needed "
            f"(2 regions, and more spots than n_neighbors={config.n_neighbors})"
        )
    check_n_clusters(n_clusters, n_spots)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


@_with_overall
def run_senca_iter(
    adata: AnnData, config: SencaConfig | None = None
) -> Generator[Progress, None, SencaResult]:
    """Train SENCA-st on one section and cluster its shared embedding.

    Parameters
    ----------
    adata
        A section (raw counts, ``obsm["spatial"]``, optional H&E). Not modified.
    config
        All settings; ``n_clusters=None`` uses :func:`default_n_clusters`.

    Yields
    ------
    Progress
        After preprocessing, every batch of patches, every epoch and clustering.

    Returns
    -------
    SencaResult
        As the generator's return value (``StopIteration.value``).

    Raises
    ------
    DataError, ConfigError
        Bad input or settings that cannot work with this section.
    """
    from .model.backbone import build_backbone
    from .model.modules import nt_xent, window_pool
    from .model.senca import SencaModel

    cfg = (config or SencaConfig()).validate()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    n = adata.n_obs
    k = cfg.n_clusters if cfg.n_clusters is not None else default_n_clusters(adata)
    check_run_settings(cfg, n, k)
    device = resolve_device(cfg.device)
    _seed_everything(cfg.seed)

    yield Progress("preprocess", 0, 1, "normalising counts and selecting genes")
    expr = preprocess_expression(adata, cfg)
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    graph = build_graph(xy, cfg.n_neighbors)
    adj_sp = normalized_adjacency(graph).tocoo()
    adj = torch.sparse_coo_tensor(
        np.vstack([adj_sp.row, adj_sp.col]), adj_sp.data, adj_sp.shape, dtype=torch.float32, check_invariants=True
    ).coalesce().to(device)
    idx_np, mask_np = neighbour_index(graph)
    index = torch.from_numpy(idx_np).to(device)
    mask = torch.from_numpy(mask_np).to(device)
    x_np = expr.X
    if cfg.input_pcs:
        x_np = _pcs(x_np, cfg.input_pcs, cfg.seed)  # (n, input_pcs)
    x = torch.from_numpy(x_np).to(device)  # (n, G) or (n, input_pcs)
    x_target = x
    for _ in range(cfg.recon_smooth_hops):
        x_target = torch.sparse.mm(adj, x_target)  # denoising target: neighbourhood mean
    timings["preprocess"] = time.perf_counter() - t0
    yield Progress("preprocess", 1, 1, f"{n} spots, {len(expr.genes)} genes, graph k={cfg.n_neighbors}")

    # image branch: frozen backbone features are computed once and cached
    use_image = bool(cfg.use_image) and get_image(adata) is not None
    feats: torch.Tensor | None = None
    patches: torch.Tensor | None = None
    backbone = None
    weights_used = "none (RNA-only)"
    if use_image:
        t1 = time.perf_counter()
        backbone = build_backbone(cfg.backbone, cfg.image_weights).to(device)
        weights_used = backbone.weights_used
        backbone.eval()
        chunks: list[torch.Tensor] = []
        kept: list[np.ndarray] = []
        batch = 64
        n_batches = (n + batch - 1) // batch
        with torch.no_grad():
            for i, b in enumerate(iter_patches(adata, cfg.patch_radius_spacings, cfg.patch_size, batch)):
                tb = torch.from_numpy(b).to(device)
                chunks.append(backbone(tb).float())
                if not cfg.freeze_backbone:
                    kept.append(b)
                yield Progress("patches", i + 1, n_batches, f"encoding H&E patches {min(n, (i + 1) * batch)}/{n}")
        feats = torch.cat(chunks, 0)  # (n, F)
        if not cfg.freeze_backbone:
            patches = torch.from_numpy(np.concatenate(kept, 0))  # (n, s, s, 3) uint8, on CPU
            backbone.train()
        else:
            backbone = None
        timings["patches"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    _seed_everything(cfg.seed)
    model = SencaModel(x.shape[1], None if feats is None else feats.shape[1], cfg).to(device)
    groups: list[dict[str, Any]] = [{"params": model.parameters(), "lr": cfg.lr}]
    if backbone is not None:
        groups.append({"params": backbone.parameters(), "lr": cfg.lr * cfg.backbone_lr_scale})
    opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    side = cfg.window_spacings * max(spot_spacing(adata), 1e-9)
    history: list[dict[str, float]] = []
    for epoch in range(cfg.epochs):
        model.train()
        sums = {"total": 0.0, "mse": 0.0, "nt_window": 0.0, "nt_pool": 0.0}
        for _ in range(cfg.steps_per_epoch):
            f_step = feats
            if backbone is not None and patches is not None:
                sel = torch.from_numpy(rng.choice(n, size=min(n, cfg.finetune_batch), replace=False))
                f_sel = backbone(patches[sel].to(device)).float()
                f_step = feats.clone()
                f_step[sel.to(device)] = f_sel
            out = model(x, adj, index, mask, f_step)
            mse = F.mse_loss(out.d, out.e.detach())
            if cfg.recon_weight:
                mse = mse + cfg.recon_weight * F.mse_loss(out.x_hat, x_target)
            loss = cfg.lambda_mse * mse
            ntw = ntp = torch.zeros((), device=device)
            if cfg.hierarchical and not model.rna_only:
                wid, nw = _tiles(xy, side, rng)
                pid, npool = _tiles(xy, side * cfg.pool_factor, rng)
                wid, pid = wid.to(device), pid.to(device)
                ntw = nt_xent(window_pool(out.r, wid, nw), window_pool(out.h, wid, nw), cfg.temperature)
                ntp = nt_xent(window_pool(out.r, pid, npool), window_pool(out.h, pid, npool), cfg.temperature)
                loss = loss + ntw + ntp
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if backbone is not None and feats is not None:
                feats[sel.to(device)] = f_sel.detach()
            sums["total"] += float(loss.detach())
            sums["mse"] += float(mse.detach())
            sums["nt_window"] += float(ntw.detach())
            sums["nt_pool"] += float(ntp.detach())
        losses = {key: v / cfg.steps_per_epoch for key, v in sums.items()}
        history.append(losses)
        yield Progress(
            "train", epoch + 1, cfg.epochs, f"epoch {epoch + 1}/{cfg.epochs} loss {losses['total']:.4f}", losses
        )
    timings["train"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    model.eval()
    with torch.no_grad():
        if backbone is not None and patches is not None:
            backbone.eval()
            feats = torch.cat([backbone(patches[i : i + 64].to(device)).float() for i in range(0, n, 64)])
        s_t = model(x, adj, index, mask, feats).s.float()  # (n, S)
        for _ in range(cfg.smooth_hops):
            s_t = torch.sparse.mm(adj, s_t)
        s = s_t.cpu().numpy()
    z = _with_skip(s, expr.X, adj, cfg)  # (n, S [+ skip_pcs])
    yield Progress("cluster", 0, 1, f"clustering into {k} regions ({cfg.cluster_method})")
    labels, tree = cluster_embedding(z, k, cfg.cluster_method, cfg.seed)
    timings["cluster"] = time.perf_counter() - t3
    timings["total"] = time.perf_counter() - t0
    yield Progress("cluster", 1, 1, f"{k} regions")
    return SencaResult(
        embedding=z,
        labels=labels,
        linkage=tree,
        n_clusters=k,
        genes=expr.genes,
        history=history,
        config=cfg,
        device=str(device),
        rna_only=not use_image,
        image_weights_used=weights_used,
        timings=timings,
    )


def run_senca(
    adata: AnnData,
    config: SencaConfig | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> SencaResult:
    """Run :func:`run_senca_iter` to the end, passing each report to ``progress``."""
    gen = run_senca_iter(adata, config)
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(p)


def annotate(adata: AnnData, result: SencaResult, key: str = CLUSTER_KEY) -> AnnData:
    """Store a result: ``obs[key]`` (categorical), ``obsm["X_senca"]``, ``uns["senca"]``."""
    adata.obs[key] = as_categorical(result.labels)
    adata.obsm[EMBED_KEY] = result.embedding.astype(np.float32)
    adata.uns[UNS_KEY] = {
        "config": result.config.to_dict(),
        "n_clusters": int(result.n_clusters),
        "linkage": np.zeros((0, 4)) if result.linkage is None else result.linkage,
        "genes": np.asarray(result.genes, dtype=object),
        "history": {k: np.asarray([h[k] for h in result.history]) for k in (result.history[0] if result.history else {})},
        "version": __version__,
        "device": result.device,
        "rna_only": bool(result.rna_only),
        "image_weights": result.image_weights_used,
        "timings": {k: float(v) for k, v in result.timings.items()},
    }
    record_model_call(adata, key)  # obs["senca_confidence"] (napari_senca.confidence)
    return adata
