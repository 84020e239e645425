"""Sample sections: a synthetic one made in memory and the bundled HER2ST A1.

The synthetic section is what the tests, the "no files needed" napari sample
and the speed benchmark use: a square spot grid (like legacy ST) split into
spatial regions, each with its own expression programme and its own H&E-like
texture, so that both branches of the model have something to find.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
from anndata import AnnData

from .section import make_section

__all__ = ["synthetic_section", "sample_data_dir", "her2st_a1"]


def synthetic_section(
    n_side: int = 16,
    n_genes: int = 300,
    n_regions: int = 3,
    *,
    with_image: bool = True,
    spacing_px: float = 40.0,
    seed: int = 0,
    library_id: str = "synthetic",
) -> AnnData:
    """A synthetic section with known regions in ``obs["label"]``.

    Parameters
    ----------
    n_side
        Spots per side of the square grid (``n_side**2`` spots).
    n_genes
        Number of genes; the first ``10 * n_regions`` are region markers.
    n_regions
        Number of spatial regions (Voronoi cells around random seeds).
    with_image
        Paint an RGB image in which each region has its own colour and texture.
    spacing_px
        Spot spacing in full-resolution pixels (the image is at scale 1).
    seed
        Random seed; the same seed gives the same section.
    """
    rng = np.random.default_rng(seed)
    gy, gx = np.mgrid[0:n_side, 0:n_side]
    col = gx.ravel().astype(float)
    row = gy.ravel().astype(float)
    n = col.size
    margin = 4.0 * spacing_px
    xy = np.stack([margin + col * spacing_px, margin + row * spacing_px], axis=1)

    centres = rng.uniform(0, n_side - 1, size=(n_regions, 2))
    d = ((np.stack([col, row], 1)[:, None, :] - centres[None]) ** 2).sum(-1)
    region = d.argmin(1)
    # make sure every region has spots even on tiny grids
    for r in range(n_regions):
        if not (region == r).any():
            region[rng.integers(n)] = r

    base = rng.gamma(0.6, 1.0, size=n_genes) + 0.05
    programme = np.ones((n_regions, n_genes))
    n_markers = min(10, max(1, n_genes // (2 * n_regions)))
    for r in range(n_regions):
        idx = np.arange(r * n_markers, (r + 1) * n_markers) % n_genes
        programme[r, idx] = 6.0
    depth = rng.lognormal(np.log(8.0), 0.3, size=n)
    mu = depth[:, None] * base[None] * programme[region]
    # negative binomial through a gamma-Poisson mixture (dispersion 0.5)
    counts = rng.poisson(rng.gamma(2.0, mu / 2.0)).astype(np.float32)
    genes = [f"GENE{i:04d}" for i in range(n_genes)]
    for r in range(n_regions):
        genes[r * n_markers % n_genes] = f"MARKER{r}"
    ids = [f"{int(c)}x{int(r_)}" for c, r_ in zip(col, row, strict=True)]

    image = None
    if with_image:
        side = int(2 * margin + (n_side - 1) * spacing_px) + 1
        yy, xx = np.mgrid[0:side, 0:side]
        # region of every pixel from the nearest spot
        pc = np.clip(np.round((xx - margin) / spacing_px), 0, n_side - 1).astype(int)
        pr = np.clip(np.round((yy - margin) / spacing_px), 0, n_side - 1).astype(int)
        pix_region = region[(pr * n_side + pc).ravel()].reshape(side, side)
        palette = rng.uniform(90, 230, size=(n_regions, 3))
        freq = rng.uniform(0.05, 0.4, size=n_regions)
        img = palette[pix_region]
        texture = np.sin(xx * freq[pix_region]) * np.cos(yy * freq[pix_region]) * 25.0
        img = img + texture[..., None] + rng.normal(0, 8, size=img.shape)
        image = np.clip(img, 0, 255).astype(np.uint8)

    labels = np.array([f"region {r}" for r in region], dtype=object)
    adata = make_section(
        counts,
        ids,
        genes,
        xy,
        array_row=row,
        array_col=col,
        image=image,
        image_scalef=1.0,
        spot_diameter_fullres=0.5 * spacing_px,
        labels=labels,
        library_id=library_id,
        source=None,
        source_format="synthetic",
    )
    return adata


def sample_data_dir() -> Path:
    """Folder of the data bundled with the package."""
    return Path(str(resources.files("napari_senca") / "sample_data"))


def her2st_a1() -> AnnData:
    """HER2ST section A1 (Andersson et al. 2021) with a downscaled H&E, bundled."""
    from .io import read_section

    return read_section(sample_data_dir() / "her2st_A1")
