"""One configuration dataclass for the whole pipeline.

Defaults are the paper's HER2ST protocol (SENCA-st, section 4.1.1) where the
paper gives a value, and the choices written down in ``docs/method.md`` where it
does not. Nothing here is specific to HER2ST: every value can be changed from
Python, the CLI or the napari widget.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["SencaConfig", "GATED_FUSION", "FUSIONS", "FUSION_KEYS", "fusion_of"]

#: The gated fusion (docs/method.md, "Fusion"): image PCs on the RNA scale, a skip of both modalities
#: each averaged under the other's guidance, all scaled by the measured image gate. Since the fifteenth
#: session without SimCLR projection heads and with ``cross_guided_tau=1``; since the eighteenth
#: with the image decoder at half weight, the two decoders' losses balanced by their values (the
#: seventeenth session's preset had no image decoder, and one section collapsed): each by a
#: pre-registered test on held-out synthetic sections (docs/benchmarks.md, "Fifteenth",
#: "Seventeenth" and "Eighteenth session"). Not the default: on DLPFC with random image weights the
#: gate opens and ARI falls from 0.50 (RNA-led default) to 0.33. Use it with informative
#: (pretrained / pathology) image weights: ``--fusion gated``, or ``SencaConfig(**GATED_FUSION)``.
GATED_FUSION = {"image_pcs": 30, "image_recon_weight": 0.5, "recon_balance": "loss", "projection_heads": False,
                "skip_mode": "both", "cross_guided_tau": 1.0, "image_gate": None}

#: The fusions a user picks by name (CLI ``--fusion``, the Run widget's "fusion"), as the settings each one
#: applies over the defaults. ``"rna-led"`` (the default): the image refines the regions the expression
#: suggests and cannot out-vote it (fusion v1). ``"gated"``: :data:`GATED_FUSION`, for informative image
#: weights; the image counts as much as its structure agrees with the expression's.
FUSIONS: dict[str, dict[str, Any]] = {"rna-led": {}, "gated": GATED_FUSION}

#: The settings that tell the fusions of :data:`FUSIONS` apart.
FUSION_KEYS = ("image_pcs", "image_recon_weight", "projection_heads", "skip_mode", "image_gate", "recon_balance",
               "cross_guided_tau")

Device = Literal["auto", "cpu", "cuda", "mps"] | str


@dataclass
class SencaConfig:
    """Every setting of preprocessing, model, training and clustering.

    Attributes
    ----------
    min_gene_counts
        Genes whose total count over all spots is below this are dropped (paper: 10).
    target_sum
        Library size each spot is normalised to before log1p; ``None`` uses the
        median library size (scanpy's default).
    n_top_genes
        Number of highly variable genes, ranked by normalised dispersion (paper: 500).
    scale
        Scale every HVG to zero mean and unit variance (clipped at 10), as
        scanpy's ``pp.scale``, before the model sees it.
    input_pcs
        The RNA branch reads this many principal components of the scaled
        HVGs instead of the 500 genes themselves (0: the genes, as in the
        paper). Faster and, on HER2ST, more accurate (docs/benchmarks.md).
    n_neighbors
        Spatial neighbours per spot in the ball-tree kNN graph (paper: 4).
    patch_radius_spacings
        Patch radius around each spot in units of the median nearest-spot
        distance (paper: 3, "up to third degree neighbour"); above 0, at most 10.
    patch_size
        Side in pixels every patch is resized to before the encoder; 0 (the
        default) uses the encoder's own input size (224 for the torchvision
        ResNets; timm models give theirs; ViTs always read their own), but a
        CNN's patch is never blown up more than 3x its pixels on the image
        (``features.encoder_size``: low-resolution images).
    use_image
        Use the H&E branch when the section has an image. ``False`` (or a
        section without an image) runs RNA-only.
    backbone
        The image encoder: a torchvision ResNet (``resnet18``, ``resnet34``,
        ``resnet50``) or any timm model name (``resnet10t``,
        ``vit_small_patch16_224``, ``hf-hub:MahmoodLab/UNI``,
        ``hf-hub:bioptimus/H-optimus-0``, ``timm:NAME``); see
        :mod:`napari_senca.encoders`.
    image_weights
        ``"auto"`` (pretrained weights when they can be loaded, from the
        torch / Hugging Face cache or the internet, else random initialisation,
        recorded in the result), ``"imagenet"`` (pretrained or an error when
        offline and not cached), ``"none"`` (random initialisation) or a local
        checkpoint file (a state dict for the ``backbone`` architecture).
    image_encoding
        ``"fcn"``: CNN encoders run once, fully convolutionally, over the
        image and each spot's window is pooled from the feature map (5-11x
        faster: patches of neighbouring spots overlap about 36-fold;
        docs/benchmarks.md); ``"patches"``: every patch is encoded on its
        own; ``"auto"``: ``"fcn"``, except with a measured ``image_gate``
        (``None``, the gated fusion) on sections of at most 20,000 spots,
        which are encoded per patch (the gate misreads the pooled features'
        smooth spatial field as agreement, docs/method.md). ViTs and
        fine-tuning always use patches.
    cache_features
        Keep the frozen encoder's features on disk (user cache folder, or
        ``NAPARI_SENCA_CACHE``; ``off`` there disables it too), so that a new
        run on the same section and settings does not re-encode.
    image_pcs
        The image branch reads this many principal components of the
        standardised patch features, scaled to the RNA input's mean square, and
        the image decoder rebuilds them (0: the raw backbone features, no
        image decoder target scaling). Puts both modalities on one scale.
    freeze_backbone
        Keep the ResNet frozen and cache its features once (fast on a CPU).
        ``False`` fine-tunes it with the rest of the model.
    finetune_batch
        When fine-tuning, patches re-encoded with gradients per step; the
        other spots use their latest cached features.
    backbone_lr_scale
        The backbone's learning rate is ``lr`` times this when fine-tuning.
    embed_dim
        Dimension of the RNA and image embeddings R and H (paper: 128).
    hidden_dim
        Hidden dimension of the graph transformer (paper: 256).
    shared_dim
        Dimension of the shared embedding S that is clustered.
    n_heads
        Attention heads in the graph transformer's self-attention block.
    attention
        ``"auto"`` (default): ``"full"`` on sections of at most
        ``full_attention_max_spots`` spots, ``"local"`` above, so that the
        paper's global attention is kept where it is cheap and measured
        better (HER2ST) and large sections stay linear. ``"local"``: the graph
        transformer's self-attention runs over graph neighbourhoods (linear in
        spots). ``"full"``: over all pairs of spots (the paper's design, O(n^2)
        time and memory), only for sections of at most ``batch_spots`` spots
        (docs/method.md, "Linear in spots").
    full_attention_max_spots
        Largest section on which ``attention="auto"`` uses all-pairs attention.
    attention_hops
        The graph transformer's self-attention runs over each spot's
        neighbourhood of this many graph hops (1 or 2); linear in spots either
        way (docs/method.md, "Linear in spots").
    dropout
        Input-masking dropout of the graph transformer (paper: 0.2).
    fusion
        How eq. 2 combines the two cross-attention outputs: ``"sum"`` (as
        written in eq. 2) or ``"concat"`` (as written in section 3.4).
    cross_attention
        ``False`` is the paper's "without cross-attention" ablation: the shared
        encoder sees the spot's own R and H without attention over neighbours.
    hierarchical
        ``False`` is the paper's "without hierarchical learning" ablation: the
        two NT-Xent terms are dropped and only the MSE term trains the model.
    window_spacings
        Side of the square spatial windows of the hierarchical loss, in spot
        spacings. Spots in one window are averaged into a windowed embedding.
    pool_factor
        The pooled (global) scale uses windows ``pool_factor`` times larger.
    temperature
        NT-Xent temperature.
    lambda_mse
        Weight of the reconstruction term (paper: 40).
    recon_weight
        Weight, inside the reconstruction term, of a second decoder that
        rebuilds the RNA input from S (0: only the paper's MSE(E, D), which
        on its own lets E collapse; see docs/method.md).
    image_recon_weight
        Weight of a third decoder that rebuilds the image features (the
        ``image_pcs`` block) from S, relative to the RNA decoder (both targets
        have the same scale). 0 (the default): S is not asked to rebuild the
        image; the image still reaches S through the cross-attention and the
        contrastive terms, and the clustered embedding through the skip.
        :data:`GATED_FUSION` uses 0.5 since the eighteenth session (1 to the
        sixteenth, 0 in the seventeenth, which let one held-out section
        collapse; docs/method.md, "Fusion").
    recon_balance
        How the two decoders' losses are weighed when both train. ``"scale"``
        (default): as they are, each times its weight (the targets share one
        mean square). ``"loss"``: each divided by its own current value (no
        gradient through the divisor) and multiplied by their mean, so each
        modality's reconstruction improves at the same relative rate whatever
        its error (a fixed-point form of learned per-modality weights). On the
        twelve cross-modal sections: +0.004 paired, level with the naive
        concatenation; not the default, part of :data:`GATED_FUSION` (docs/method.md,
        "Fusion").
    projection_heads
        Compute the NT-Xent terms on small projection MLPs of the pooled R and
        H (SimCLR) instead of on R and H themselves, so that aligning the two
        modalities does not erase what only one of them sees. Never measured
        above their absence here; :data:`GATED_FUSION` sets them off since the
        fifteenth session (docs/method.md, "Fusion").
    recon_smooth_hops
        The second decoder's target is the RNA input averaged over this many
        hops of the spatial graph (a denoising target; 0: the input itself).
    epochs
        Training epochs (paper: 10 for HER2ST).
    lr
        Adam learning rate (paper: 5e-4).
    weight_decay
        Adam weight decay.
    steps_per_epoch
        Optimiser steps per epoch (the whole section is one graph, so one
        epoch is a fixed number of full-graph steps; with mini-batches, a
        fixed number of tile steps).
    batch_spots
        Sections with more spots than this train and embed in mini-batches:
        square spatial tiles of about this many spots, each with the halo of
        graph neighbours the model's receptive field needs, so every core
        spot's output is exact (docs/method.md, "Linear in spots"). Memory is
        then bounded by the tile, and training time does not grow with the
        section. 0: always the whole section in one step. 2,000 (default):
        on DLPFC 151510 (4,634 spots) tiles of 2,000 spots train 3.5x faster
        than whole-section steps at no loss of ARI (docs/benchmarks.md).
    max_windows
        At most this many windows (sampled at random per step and scale) enter
        each NT-Xent term, which is quadratic in windows.
    n_clusters
        Number of regions. ``None`` means "set later" (e.g. from the labels).
    cluster_on
        What is clustered. ``"s"``: the shared embedding S, smoothed, beside the
        skip block(s) below (the paper clusters S). ``"reconstruction"``: the
        gene decoder's output from S, i.e. the model's denoised expression in
        the input's principal components, smoothed, with no skip block (the
        metric is the expression's, not the arbitrary one of S's 10 latent
        dimensions). ``"auto"`` (default): the reconstruction when the image
        does not count (an RNA-only section, or an image gate of 0: random
        weights), else S with its skip blocks. Over nine seeds on the eight
        HER2ST sections the reconstruction scored 0.283 against 0.274 for S
        and skip (better on 8 of 9 seeds, A1's seed spread halved; DLPFC level,
        0.481 / 0.482); what the image adds with trained weights was designed
        and measured on S (docs/method.md, "The clustered embedding").
    recon_pcs
        Where the reconstruction is clustered: its first ``recon_pcs``
        principal components are clustered (0: all its dimensions, the
        default until the fifteenth session). 5: HER2ST +0.005 per seed on
        nine held-out seeds (better on 7 of 9), DLPFC -0.007, by a rule set
        before the run (docs/method.md, "The clustered embedding").
    library_size_weight
        Where the reconstruction is clustered: each spot's library size (total
        counts, log1p, averaged over its graph neighbours, centred) is appended
        as one more column at this fraction of the clustered embedding's RMS
        norm (0: off). Normalisation removes the library size, yet on tissue it
        carries cell density and RNA content: on HER2ST B1 invasive cancer spots
        hold a median 10,665 counts against 871-1,389 for stroma, glands and fat.
        0.3: HER2ST +0.013 per seed on nine held-out seeds (0.292 against 0.279,
        better on 8 of 9), DLPFC +0.008, by a rule set before the run. The
        column counts as far as the expression explains it beyond chance
        (``embedding.library_gate``: 0 where the library size is noise, as on
        the cross-modal synthetic sections, which it cost 0.03 ungated, or
        where smoothed random columns explain as much, as on most sections
        under 100 spots). Skipped
        for pre-normalised input without ``layers["counts"]``, hence in joint
        training, where library sizes differ by section (docs/method.md, "The
        clustered embedding").
    smooth_hops
        Hops of neighbour averaging applied to S (or the reconstruction) before clustering (0: none).
    skip_pcs
        Principal components of the neighbour-averaged expression appended to
        S before clustering, a skip connection around the network (0: cluster
        S alone, as in the paper).
    skip_mode
        What the skip block holds: ``"rna"`` (neighbour-averaged expression PCs
        only) or ``"both"`` (the same number of neighbour-averaged image-feature
        PCs beside them, each block scaled to half the skip's mean square so
        neither modality dominates; RNA-only runs fall back to ``"rna"``).
    cross_guided_tau
        In ``"both"`` mode with the image counting: average each modality's
        skip block over the spot graph with neighbour weights from the *other*
        modality, ``exp(-d^2 / (tau * median d^2))`` (renormalised so that a
        spot's neighbours keep their total weight), so that a border one
        modality sees is not blurred in the other. 0 (default): plain
        neighbour averaging; :data:`GATED_FUSION` sets 1 (docs/method.md,
        "Fusion", fourteenth and fifteenth sessions).
    image_gate
        How much the image counts, 0..1: it scales the image's share of the
        shared encoder's input, the contrastive terms, the image decoder's
        loss (``image_recon_weight``) and the image block of the ``"both"``
        skip; 0 is exactly the RNA-only model. 1 (default) is the paper's
        fusion. ``None`` measures it per section without labels, from the
        agreement between the two modalities' spatial partitions
        (``embedding.image_gate``; ``GATED_FUSION``; docs/method.md,
        "Fusion"). The value used is recorded in ``uns["senca"]["image_gate"]``.
    random_weights_gate
        What a fixed ``image_gate`` is multiplied by when the encoder's weights
        are random (``image_weights="auto"`` without the ImageNet file
        offline, or ``"none"``). 0 (default): random features do not vote
        (and are not encoded), the regions come from the expression and the
        H&E is still shown; random weights lost up to 0.30 ARI on HER2ST A1
        and gained nothing beyond seed noise anywhere measured
        (docs/benchmarks.md, "Sixth session"). 1: count them like pretrained
        ones (the earlier default). Not applied to a measured gate
        (``image_gate=None``) nor to an encoder that is fine-tuned
        (``freeze_backbone=False``: its weights learn).
    skip_weight
        Weight of S against the skip block (each block is first scaled to a
        unit mean squared norm).
    cluster_method
        ``"kmeans"`` (10 restarts; the default, more accurate on HER2ST, see
        docs/benchmarks.md; a new cluster count re-runs it on the stored
        embedding, tens of milliseconds) or ``"agglomerative"`` (Ward, the
        paper's choice; keeps the tree, so a new count is a re-cut).
    seed
        Random seed: the same seed on the same device gives the same clusters
        (on CUDA through ``deterministic``).
    device
        ``"auto"`` picks CUDA, then Apple MPS, then the CPU.
    deterministic
        On CUDA, use PyTorch's deterministic kernels for the run
        (:mod:`napari_senca.determinism`), so that the same seed on the same GPU
        gives the same regions; ``False`` lets CUDA sum in any order (faster,
        results vary in the last bits and sometimes in the regions; measured in
        docs/benchmarks.md, "Thirteenth session" and "Fourteenth session").
        CPU runs are deterministic either way.
    """

    # preprocessing (paper section 3.1)
    min_gene_counts: int = 10
    target_sum: float | None = None
    n_top_genes: int = 500
    scale: bool = True
    input_pcs: int = 30
    n_neighbors: int = 4
    # image patches (section 3.3)
    patch_radius_spacings: float = 3.0
    patch_size: int = 0
    use_image: bool = True
    backbone: str = "resnet18"
    image_weights: str = "auto"
    image_encoding: str = "auto"
    cache_features: bool = True
    image_pcs: int = 0
    freeze_backbone: bool = True
    finetune_batch: int = 32
    backbone_lr_scale: float = 0.1
    # model (sections 3.2-3.4)
    embed_dim: int = 128
    hidden_dim: int = 256
    shared_dim: int = 10
    n_heads: int = 1
    attention: str = "auto"
    full_attention_max_spots: int = 2000
    attention_hops: int = 1
    dropout: float = 0.2
    fusion: str = "sum"
    cross_attention: bool = True
    # hierarchical learning (section 3.5)
    hierarchical: bool = True
    window_spacings: float = 3.0
    pool_factor: int = 3
    temperature: float = 0.5
    lambda_mse: float = 40.0
    recon_weight: float = 1.0
    recon_smooth_hops: int = 2
    image_recon_weight: float = 0.0
    recon_balance: str = "scale"
    projection_heads: bool = False
    # training (section 4.1.1)
    epochs: int = 10
    lr: float = 5e-4
    weight_decay: float = 0.0
    steps_per_epoch: int = 20
    batch_spots: int = 2000
    max_windows: int = 2048
    # clustering (section 3.5)
    n_clusters: int | None = None
    cluster_on: str = "auto"
    recon_pcs: int = 5
    library_size_weight: float = 0.3
    smooth_hops: int = 1
    skip_pcs: int = 20
    skip_mode: str = "rna"
    skip_weight: float = 0.7
    cross_guided_tau: float = 0.0
    image_gate: float | None = 1.0
    random_weights_gate: float = 0.0
    cluster_method: str = "kmeans"
    seed: int = 0
    device: Device = "auto"
    deterministic: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> SencaConfig:
        """Check every value; raise :class:`ConfigError` naming the bad one."""

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"invalid setting: {what}")

        need(self.min_gene_counts >= 0, f"min_gene_counts must be >= 0, got {self.min_gene_counts}")
        need(self.n_top_genes >= 2, f"n_top_genes must be >= 2, got {self.n_top_genes}")
        need(1 <= self.n_neighbors <= 64, f"n_neighbors must be 1-64, got {self.n_neighbors}")
        r = self.patch_radius_spacings
        need(0 < r <= 10, f"patch_radius_spacings must be above 0 and at most 10 spot spacings, got {r}")  # NaN, inf
        need(
            self.patch_size == 0 or 16 <= self.patch_size <= 1024,
            f"patch_size must be 0 (the encoder's) or 16-1024, got {self.patch_size}",
        )
        need(
            bool(re.fullmatch(r"[A-Za-z0-9_.\-:/]+", str(self.backbone))),
            f"backbone must be a torchvision ResNet or a timm model name, got {self.backbone!r}",
        )
        need(
            self.image_encoding in ("auto", "fcn", "patches"),
            f"image_encoding must be 'auto', 'fcn' or 'patches', got {self.image_encoding!r}",
        )
        need(bool(self.image_weights), "image_weights must be 'imagenet', 'none' or a file path")
        for dim in ("embed_dim", "hidden_dim", "shared_dim"):
            need(getattr(self, dim) >= 2, f"{dim} must be >= 2, got {getattr(self, dim)}")
        need(self.n_heads >= 1, f"n_heads must be >= 1, got {self.n_heads}")
        need(self.embed_dim % self.n_heads == 0, "embed_dim must be divisible by n_heads")
        need(self.target_sum is None or self.target_sum > 0, f"target_sum must be None or > 0, got {self.target_sum}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.fusion in ("sum", "concat"), f"fusion must be 'sum' or 'concat', got {self.fusion!r}")
        need(self.window_spacings > 0 and self.pool_factor >= 1, "window_spacings > 0 and pool_factor >= 1")
        need(self.temperature > 0, "temperature must be > 0")
        need(self.lambda_mse >= 0, "lambda_mse must be >= 0")
        need(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.finetune_batch >= 1, "finetune_batch must be >= 1")
        need(self.backbone_lr_scale >= 0, "backbone_lr_scale must be >= 0")
        need(self.steps_per_epoch >= 1, "steps_per_epoch must be >= 1")
        need(self.batch_spots == 0 or self.batch_spots >= 16, f"batch_spots must be 0 or >= 16, got {self.batch_spots}")
        need(
            self.attention in ("auto", "local", "full"),
            f"attention must be 'auto', 'local' or 'full', got {self.attention!r}",
        )
        need(self.full_attention_max_spots >= 0, "full_attention_max_spots must be >= 0")
        need(self.attention_hops in (1, 2), f"attention_hops must be 1 or 2, got {self.attention_hops}")
        need(self.max_windows >= 2, f"max_windows must be >= 2, got {self.max_windows}")
        need(self.hidden_dim % self.n_heads == 0, "hidden_dim must be divisible by n_heads")
        need(self.input_pcs >= 0, f"input_pcs must be >= 0 (0: the genes themselves), got {self.input_pcs}")
        need(self.recon_weight >= 0, f"recon_weight must be >= 0, got {self.recon_weight}")
        for hops in ("recon_smooth_hops", "smooth_hops"):
            need(0 <= getattr(self, hops) <= 10, f"{hops} must be 0-10, got {getattr(self, hops)}")
        need(self.image_pcs >= 0, f"image_pcs must be >= 0 (0: the raw features), got {self.image_pcs}")
        need(self.image_recon_weight >= 0, f"image_recon_weight must be >= 0, got {self.image_recon_weight}")
        need(self.recon_balance in ("scale", "loss"),
             f"recon_balance must be 'scale' or 'loss', got {self.recon_balance!r}")  # fmt: skip
        need(self.skip_mode in ("rna", "both"), f"skip_mode must be 'rna' or 'both', got {self.skip_mode!r}")
        need(self.cross_guided_tau >= 0, f"cross_guided_tau must be >= 0 (0: plain averaging), got {self.cross_guided_tau}")
        need(self.skip_pcs >= 0, f"skip_pcs must be >= 0, got {self.skip_pcs}")
        need(self.library_size_weight >= 0, f"library_size_weight must be >= 0 (0: off), got {self.library_size_weight}")
        need(self.recon_pcs >= 0, f"recon_pcs must be >= 0 (0: every dimension), got {self.recon_pcs}")
        need(self.cluster_on in ("auto", "s", "reconstruction"),
             f"cluster_on must be 'auto', 's' or 'reconstruction', got {self.cluster_on!r}")  # fmt: skip
        need(self.skip_weight > 0, f"skip_weight must be > 0, got {self.skip_weight}")
        need(
            self.image_gate is None or 0.0 <= self.image_gate <= 1.0,
            f"image_gate must be None (measured) or in [0, 1], got {self.image_gate}",
        )
        need(
            0.0 <= self.random_weights_gate <= 1.0,
            f"random_weights_gate must be in [0, 1], got {self.random_weights_gate}",
        )
        need(
            self.n_clusters is None or self.n_clusters >= 2,
            f"n_clusters must be >= 2, got {self.n_clusters}",
        )
        # np.bool_ too: a config read back from an .h5ad (uns["senca"]["config"]) holds numpy booleans
        need(type(self.deterministic).__name__ in ("bool", "bool_"),
             f"deterministic must be True or False, got {self.deterministic!r}")
        need(
            self.cluster_method in ("agglomerative", "kmeans"),
            f"cluster_method must be 'agglomerative' or 'kmeans', got {self.cluster_method!r}",
        )
        return self

    def resolved_attention(self, n_spots: int) -> str:
        """``"full"`` or ``"local"``: what ``attention`` means on a section of ``n_spots``."""
        if self.attention != "auto":
            return self.attention
        small = n_spots <= self.full_attention_max_spots and not (self.batch_spots and n_spots > self.batch_spots)
        return "full" if small else "local"

    def replace(self, **changes: Any) -> SencaConfig:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (stored in ``adata.uns["senca"]["config"]``)."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SencaConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**d)


def fusion_of(cfg: SencaConfig) -> str:
    """The name in :data:`FUSIONS` whose settings ``cfg`` has (on :data:`FUSION_KEYS`), else ``"custom"``."""
    for name, preset in FUSIONS.items():
        ref = SencaConfig(**preset)
        if all(getattr(cfg, k) == getattr(ref, k) for k in FUSION_KEYS):
            return name
    return "custom"
