"""The SENCA-st network: RNA branch, image head, cross-attention, shared AE."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import SencaConfig
from .modules import (
    GraphTransformer,
    ImageHead,
    NeighbourhoodCrossAttention,
    ProjectionHead,
    SharedAutoencoder,
)

__all__ = ["SencaModel", "SencaOutput"]


@dataclass
class SencaOutput:
    """Tensors of one forward pass (n spots)."""

    r: Tensor  # (n, E) RNA embedding
    h: Tensor  # (n, E) image embedding (R itself when RNA-only)
    e: Tensor  # (n, D) shared-encoder input (fused attention outputs)
    s: Tensor  # (n, S) shared embedding
    d: Tensor  # (n, D) decoder output
    x_hat: Tensor  # (n, G) RNA input reconstructed from S
    f_hat: Tensor | None  # (n, Fi) image features reconstructed from S (None: no image decoder)


class SencaModel(nn.Module):
    """SENCA-st (Fig. 1). ``n_image_features=None`` builds the RNA-only model.

    In RNA-only mode the image branch, the cross-attention and the
    hierarchical contrastive loss are off, and the shared encoder sees R alone.
    ``gene_decoder`` rebuilds the RNA input from S (see ``recon_weight``);
    ``image_decoder`` (when ``image_recon_weight > 0``) rebuilds the image
    target of ``n_image_targets`` features; ``proj_r``/``proj_h`` are the
    SimCLR projection heads of the contrastive terms (``projection_heads``).
    ``image_gate`` (0..1, set per section by the pipeline) scales the image's
    share of the shared encoder's input E (1: the paper's fusion).
    """

    def __init__(
        self, n_genes: int, n_image_features: int | None, cfg: SencaConfig, n_image_targets: int | None = None
    ):
        super().__init__()
        e = cfg.embed_dim
        self.cfg = cfg
        self.rna = GraphTransformer(
            n_genes, cfg.hidden_dim, e, cfg.n_heads, cfg.dropout, cfg.attention_hops, full=cfg.attention == "full"
        )
        self.image = ImageHead(n_image_features, e) if n_image_features else None
        use_x = self.image is not None and cfg.cross_attention
        self.xattn = NeighbourhoodCrossAttention(e) if use_x else None
        if self.image is None:
            d_in = e
        else:
            d_in = 2 * e if cfg.fusion == "concat" else e
        self.shared = SharedAutoencoder(d_in, cfg.hidden_dim, cfg.shared_dim)
        self.gene_decoder = nn.Sequential(
            nn.Linear(cfg.shared_dim, cfg.hidden_dim), nn.GELU(), nn.Linear(cfg.hidden_dim, n_genes)
        )
        n_targets = n_image_targets or n_image_features
        self.image_decoder = (
            nn.Sequential(nn.Linear(cfg.shared_dim, cfg.hidden_dim), nn.GELU(), nn.Linear(cfg.hidden_dim, n_targets))
            if self.image is not None and cfg.image_recon_weight > 0 and n_targets
            else None
        )
        heads = self.image is not None and cfg.projection_heads
        self.proj_r = ProjectionHead(e) if heads else None
        self.proj_h = ProjectionHead(e) if heads else None
        self.image_gate = 1.0  # how much the image counts (embedding.image_gate)

    @property
    def rna_only(self) -> bool:
        return self.image is None

    @property
    def receptive_hops(self) -> int:
        """Graph hops that one spot's output depends on: propagation + attention (+ cross-attention)."""
        return 1 + self.rna.attention_hops + (self.xattn is not None)

    def forward(
        self,
        x: Tensor,
        adj: Tensor,
        index: Tensor,
        mask: Tensor,
        feats: Tensor | None = None,
    ) -> SencaOutput:
        # x: (n, G) expression, adj: (n, n), index/mask: (n, m), feats: (n, F) or None
        r = self.rna(x, adj, index, mask)  # (n, E)
        if self.image is None:
            h = r  # (n, E) no second modality
            e = F.layer_norm(r, r.shape[-1:])  # (n, E)
        else:
            if feats is None:
                raise ValueError("this model has an image branch: pass the patch features")
            h = self.image(feats)  # (n, E)
            ra, ha = (r, h) if self.xattn is None else self.xattn(r, h, index, mask)  # (n, E) each
            ra = F.layer_norm(ra, ra.shape[-1:])
            ha = F.layer_norm(ha, ha.shape[-1:])
            if self.image_gate != 1.0:
                ha = self.image_gate * ha
            e = torch.cat([ra, ha], 1) if self.cfg.fusion == "concat" else ra + ha  # (n, D)
        s, d = self.shared(e)  # (n, S), (n, D)
        f_hat = None if self.image_decoder is None else self.image_decoder(s)  # (n, Fi)
        return SencaOutput(r=r, h=h, e=e, s=s, d=d, x_hat=self.gene_decoder(s), f_hat=f_hat)

    def project(self, r_pooled: Tensor, h_pooled: Tensor) -> tuple[Tensor, Tensor]:
        """What NT-Xent compares: the projection heads' outputs, or R and H themselves."""
        if self.proj_r is None or self.proj_h is None:
            return r_pooled, h_pooled
        return self.proj_r(r_pooled), self.proj_h(h_pooled)
