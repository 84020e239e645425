"""Training and inference as a generator (stardist-napari style).

This module orchestrates: preprocessing (``preprocess``), image features
(``features``), the training loop (``train``), the clustered embedding
(``embedding``) and clustering (``cluster``) each live in their own module.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from anndata import AnnData

from ._version import __version__
from .batches import HaloSampler, sparse_tensor
from .cluster import as_categorical, check_method_size, check_n_clusters, cluster_embedding
from .confidence import record_model_call
from .config import SencaConfig, fusion_of
from .determinism import deterministic_steps
from .embedding import (
    clustered_embedding,
    clusters_reconstruction,
    image_gate,
    modality_agreement,
    pcs,
    smooth,
    unit,
    with_library_size,
)
from .errors import ConfigError
from .features import encode_iter, image_block, standardise, weights_are_random
from .generators import drain, relay
from .graph import build_graph, neighbour_index, normalized_adjacency
from .preprocess import preprocess_expression
from .progress import STAGE_WEIGHTS, OverallProgress, Progress
from .section import CLUSTER_KEY, EMBED_KEY, LABEL_KEY, UNS_KEY, get_image, spot_spacing
from .threads import restore_torch_threads
from .train import TrainData, embed_iter, make_optimizer, train_iter

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
    "uses_minibatches",
]


def _device_or_cpu(device: str) -> torch.device:
    """The device a run will use; the CPU for a bad name (the run itself then says what is wrong)."""
    try:
        return resolve_device(device)
    except ConfigError:
        return torch.device("cpu")


def _with_overall(fn: Callable[..., Generator[Progress, None, SencaResult]]) -> Any:
    """Decorate :func:`run_senca_iter` so that every report carries ``overall``."""

    @functools.wraps(fn)
    def wrapper(
        adata: AnnData, config: SencaConfig | None = None, **kwargs: Any
    ) -> Generator[Progress, None, SencaResult]:
        cfg = config or SencaConfig()
        tracker = OverallProgress(bool(cfg.use_image) and get_image(adata) is not None)
        steps = deterministic_steps(fn(adata, config, **kwargs), _device_or_cpu(cfg.device), cfg.deterministic)
        return (yield from relay(steps, tracker.update))

    return wrapper


@dataclass
class SencaResult:
    """What one run produces (see :func:`annotate` for where it is stored)."""

    embedding: np.ndarray  # (n_spots, input_pcs) reconstruction, or (n_spots, shared_dim [+ skip_pcs]) S: the clustered embedding
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
    image_gate: float | None = None  # how much the image counted (None: RNA-only)
    modality_agreement: float | None = None  # the label-free measure the gate came from
    clustered: str = "S"  # what `embedding` is: "reconstruction" (gene decoder's output) or "S" (config.cluster_on)
    library_gate: float | None = None  # how much the library size column counted (None: no column; config.library_size_weight)
    cpu_threads: int | None = None  # torch's CPU threads while it trained (a thread count can move the last digits)


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
    check_method_size(config.cluster_method, n_spots)
    if config.attention == "full" and uses_minibatches(config, n_spots):
        raise ConfigError(
            f"attention='full' is all pairs of spots: at most batch_spots={config.batch_spots:,} spots, "
            f"the section has {n_spots:,}; use attention='local'"
        )


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def _graph_arrays(xy: np.ndarray, cfg: SencaConfig) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Normalised adjacency (n, n) CSR, neighbourhood index and mask (n, m) of the spot graph."""
    graph = build_graph(xy, cfg.n_neighbors)
    idx_np, mask_np = neighbour_index(graph)
    return normalized_adjacency(graph), idx_np, mask_np


def _graph_tensors(xy: np.ndarray, cfg: SencaConfig, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Sparse normalised adjacency (n, n), neighbourhood index and mask (n, m) of the spot graph."""
    adj_sp, idx_np, mask_np = _graph_arrays(xy, cfg)
    return sparse_tensor(adj_sp, device), torch.from_numpy(idx_np).to(device), torch.from_numpy(mask_np).to(device)


def uses_minibatches(cfg: SencaConfig, n_spots: int) -> bool:
    """True when a section of ``n_spots`` trains on tiles (more than ``batch_spots`` spots)."""
    return bool(cfg.batch_spots) and n_spots > cfg.batch_spots


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
    cfg = (config or SencaConfig()).validate()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    n = adata.n_obs
    k = cfg.n_clusters if cfg.n_clusters is not None else default_n_clusters(adata)
    check_run_settings(cfg, n, k)
    device = resolve_device(cfg.device)
    _seed_everything(cfg.seed)
    restore_torch_threads()  # a notebook that ran scanpy before torch lost OMP_NUM_THREADS to numba

    yield Progress("preprocess", 0, 1, "normalising counts and selecting genes")
    expr = preprocess_expression(adata, cfg)
    x_np = pcs(expr.X, cfg.input_pcs, cfg.seed) if cfg.input_pcs else expr.X  # (n, input_pcs) or (n, G)
    timings["preprocess"] = time.perf_counter() - t0
    tg = time.perf_counter()
    sec = _section_data(adata, x_np, cfg, device)
    timings["graph"] = time.perf_counter() - tg
    yield Progress("preprocess", 1, 1, f"{n} spots, {len(expr.genes)} genes, graph k={cfg.n_neighbors}")

    use_image = bool(cfg.use_image) and get_image(adata) is not None
    img = _ImageUse()
    if use_image:
        t1 = time.perf_counter()
        img = yield from _image_stage(adata, cfg, device, expr.X, x_np, sec)
        timings["patches"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    cpu_threads = torch.get_num_threads()
    model, history = yield from _train_stage(cfg, device, sec)
    timings["train"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    recon = clusters_reconstruction(cfg, use_image and sec.data.image_gate > 0)
    s_raw = yield from relay(  # a tile report only when the section is embedded in tiles
        embed_iter(model, sec.data, "x_hat" if recon else "s"),
        lambda t: Progress("cluster", 0, 1, f"embedding spots: tile {t[0]}/{t[1]}") if t[1] > 1 else None,
    )
    s = smooth(s_raw, sec.data.adj, cfg.smooth_hops)  # (n, S) or (n, input PCs)
    timings["embed"] = time.perf_counter() - t3
    t4 = time.perf_counter()
    library_gate = None
    if recon:  # the model's denoised expression, no skip block (cluster_on), optionally its first PCs
        z = unit(pcs(s, cfg.recon_pcs, cfg.seed) if cfg.recon_pcs else s).astype(np.float32)
        z, library_gate = with_library_size(z, expr.library_size, sec.data.adj, cfg)  # (n, d [+ 1])
    else:
        z = clustered_embedding(s, expr.X, img.std, sec.data.adj, cfg, sec.data.image_gate)  # (n, S [+ skip blocks])
    yield Progress("cluster", 0, 1, f"clustering into {k} regions ({cfg.cluster_method})")
    labels, tree = cluster_embedding(z, k, cfg.cluster_method, cfg.seed)
    timings["cluster"] = time.perf_counter() - t4
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
        image_weights_used=img.weights_used,
        timings=timings,
        image_gate=sec.data.image_gate if use_image else None,
        modality_agreement=img.agreement,
        clustered="reconstruction" if recon else "S",
        library_gate=library_gate,
        cpu_threads=cpu_threads,
    )


@dataclass
class _SectionData:
    """The section as the model trains on it (built once per run)."""

    data: TrainData
    graph: tuple[sp.csr_matrix, np.ndarray, np.ndarray]  # normalised adjacency, neighbourhood index, mask
    spacing: float  # median spot spacing, in the units of obsm["spatial"]
    store: torch.device  # where the section's tensors live (the CPU when training in mini-batches)
    minibatch: bool


@dataclass
class _ImageUse:
    """What the image stage decided (defaults: the image is not used)."""

    weights_used: str = "none (RNA-only)"
    std: np.ndarray | None = None  # (n, F) standardised features for the skip block (None: not counted)
    agreement: float | None = None  # the measured cross-modal agreement (None: gate fixed or no image)


def _section_data(adata: AnnData, x_np: np.ndarray, cfg: SencaConfig, device: torch.device) -> _SectionData:
    """Spot graph, RNA input and its smoothed decoder target, on the device (or the CPU for mini-batches)."""
    n = adata.n_obs
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    minibatch = uses_minibatches(cfg, n)
    store = torch.device("cpu") if minibatch else device  # mini-batches: each tile goes to the device
    adj_sp, idx_np, mask_np = _graph_arrays(xy, cfg)
    adj = sparse_tensor(adj_sp, store)
    index, mask = torch.from_numpy(idx_np).to(store), torch.from_numpy(mask_np).to(store)
    x = torch.from_numpy(x_np).to(store)
    x_target = x
    for _ in range(cfg.recon_smooth_hops):
        x_target = torch.sparse.mm(adj, x_target)  # denoising target: neighbourhood mean
    spacing = max(spot_spacing(adata), 1e-9)
    data = TrainData(x=x, x_target=x_target, adj=adj, index=index, mask=mask, xy=xy,
                     side=cfg.window_spacings * spacing)  # fmt: skip
    return _SectionData(data=data, graph=(adj_sp, idx_np, mask_np), spacing=spacing, store=store, minibatch=minibatch)


_NOT_ENCODED = "H&E not encoded: random image weights do not count (see image weights)"
_CACHED = "H&E features read from the cache"


def _image_stage(
    adata: AnnData, cfg: SencaConfig, device: torch.device, expr_x: np.ndarray, x_np: np.ndarray, sec: _SectionData
) -> Generator[Progress, None, _ImageUse]:
    """Frozen backbone features (computed once, cached: features.py) into ``sec.data``; the image gate.

    Nothing is encoded when random weights would count for nothing (a fixed
    gate and ``random_weights_gate=0``, the default): the encoder is built, to
    learn whether its weights are random, and the patches are not read.
    """
    data, n = sec.data, adata.n_obs
    img = yield from relay(
        encode_iter(adata, cfg, device, skip_random=_skip_random(cfg)),
        lambda b: Progress("patches", b[0], b[1], f"encoding H&E ({n} spots) {b[0]}/{b[1]}") if b[1] else None,
    )
    if img.cached or img.feats is None:  # nothing was encoded: the bar gives this stage's share to the next ones
        yield Progress("patches", 0, 0, _CACHED if img.cached else _NOT_ENCODED)
    use = _ImageUse(weights_used=img.weights_used)
    data.image_gate = _fixed_gate(cfg, img.weights_used)
    if img.feats is None or data.image_gate == 0.0:  # the image counts for nothing: exactly the RNA-only model
        data.image_gate = 0.0
        return use
    use.std = standardise(img.feats)
    mean_square = float((x_np.astype(np.float64) ** 2).mean())
    block = torch.from_numpy(image_block(img.feats, cfg.image_pcs, mean_square, cfg.seed)).to(sec.store)
    data.f_target = block
    if img.backbone is not None:  # fine-tuning: the head reads raw, changing features
        data.feats, data.backbone, data.patches = torch.from_numpy(img.feats).to(sec.store), img.backbone, img.patches
    else:
        data.feats = block if cfg.image_pcs else torch.from_numpy(img.feats).to(sec.store)
    if cfg.image_gate is None:
        use.agreement = modality_agreement(expr_x, use.std, data.adj, cfg.seed)
        data.image_gate = image_gate(use.agreement)
        if data.image_gate == 0.0:
            data.feats = data.f_target = data.backbone = data.patches = None
            use.std = None
    return use


def _fixed_gate(cfg: SencaConfig, weights_used: str) -> float | None:
    """The image gate known before measuring (None for a measured gate, ``image_gate=None``)."""
    gate = _random_gate(cfg) if weights_are_random(weights_used) else cfg.image_gate
    return None if gate is None else float(gate)


def _random_gate(cfg: SencaConfig) -> float | None:
    """The fixed gate for random weights: ``image_gate`` scaled by ``random_weights_gate``.

    None for a measured gate. An encoder that is fine-tuned
    (``freeze_backbone=False``) learns, so its starting weights do not count
    as random.
    """
    if cfg.image_gate is None or not cfg.freeze_backbone:
        return cfg.image_gate
    return float(cfg.image_gate) * float(cfg.random_weights_gate)  # random features vote only if asked


def _skip_random(cfg: SencaConfig) -> bool:
    """True when features from random weights would count for nothing (so need not be encoded)."""
    return _random_gate(cfg) == 0.0


def _train_stage(
    cfg: SencaConfig, device: torch.device, sec: _SectionData
) -> Generator[Progress, None, tuple[Any, list[dict[str, float]]]]:
    """Build the model for this section and train it; yields one report per epoch, returns (model, history)."""
    from .model.senca import SencaModel

    data = sec.data
    n = data.x.shape[0]
    _seed_everything(cfg.seed)
    n_feats = None if data.feats is None else data.feats.shape[1]
    n_targets = None if data.f_target is None else data.f_target.shape[1]
    model_cfg = cfg.replace(attention=cfg.resolved_attention(n))  # 'auto' -> 'full' or 'local' for this section
    model = SencaModel(data.x.shape[1], n_feats, model_cfg, n_targets).to(device)
    if sec.minibatch:
        data.halo = HaloSampler(*sec.graph, model.receptive_hops)
        data.batch_side = sec.spacing * float(np.sqrt(cfg.batch_spots))
    model.image_gate = data.image_gate
    groups: list[dict[str, Any]] = [{"params": model.parameters(), "lr": cfg.lr}]
    if data.backbone is not None:
        groups.append({"params": data.backbone.parameters(), "lr": cfg.lr * cfg.backbone_lr_scale})
    opt = make_optimizer(groups, cfg, device)
    history: list[dict[str, float]] = []
    for epoch, losses in enumerate(train_iter(model, data, cfg, opt), 1):
        history.append(losses)
        yield Progress("train", epoch, cfg.epochs, f"epoch {epoch}/{cfg.epochs} loss {losses['total']:.4f}", losses)
    return model, history


def run_senca(
    adata: AnnData,
    config: SencaConfig | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> SencaResult:
    """Run :func:`run_senca_iter` to the end, passing each report to ``progress``.

    The generator is closed however the loop ends (an exception in ``progress``,
    Ctrl-C), so its clean-up runs at once.
    """
    return drain(run_senca_iter(adata, config), progress)


def annotate(adata: AnnData, result: SencaResult, key: str = CLUSTER_KEY) -> AnnData:
    """Store a result: ``obs[key]`` (categorical), ``obsm["X_senca"]``, ``uns["senca"]``.

    A review stored for an earlier clustering (names, colours, hand flags, edit log: a reviewed ``.h5ad``
    run again) is dropped: it belonged to the old regions (:func:`napari_senca.review.persist.clear_review`).
    """
    from .review.persist import clear_review

    clear_review(adata, key)
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
        # True only when the image branch ran on trained weights (random ones: features.WEAK_FEATURES_NOTE)
        "image_features_informative": bool(not result.rna_only and not weights_are_random(result.image_weights_used)),
        "timings": {k: float(v) for k, v in result.timings.items()},
        "clustered": result.clustered,  # what X_senca is (config.cluster_on)
    }
    if not result.rna_only:  # which fusion (config.FUSIONS: "rna-led", "gated", or "custom")
        adata.uns[UNS_KEY]["fusion"] = fusion_of(result.config)
    if result.cpu_threads is not None:  # torch's CPU threads in training (napari_senca.threads)
        adata.uns[UNS_KEY]["cpu_threads"] = int(result.cpu_threads)
    if result.image_gate is not None:  # how much the image counted (docs/method.md, "Fusion")
        adata.uns[UNS_KEY]["image_gate"] = float(result.image_gate)
    if result.library_gate is not None:  # how much the library size counted (docs/method.md, "The clustered embedding")
        adata.uns[UNS_KEY]["library_gate"] = float(result.library_gate)
    if result.modality_agreement is not None:
        adata.uns[UNS_KEY]["modality_agreement"] = float(result.modality_agreement)
    record_model_call(adata, key)  # obs["senca_confidence"] (napari_senca.confidence)
    return adata
