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

__all__ = ["synthetic_section", "crossmodal_section", "visium_hd_section", "sample_data_dir", "her2st_a1"]


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

    counts, genes = _counts(rng, region, n_regions, n_genes, fold=6.0)
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


def _counts(
    rng: np.random.Generator, programme_of_spot: np.ndarray, n_programmes: int, n_genes: int, fold: float
) -> tuple[np.ndarray, list[str]]:
    """Negative-binomial counts: programme p raises its own block of marker genes ``fold`` times."""
    n = programme_of_spot.size
    base = rng.gamma(0.6, 1.0, size=n_genes) + 0.05
    programme = np.ones((n_programmes, n_genes))
    n_markers = min(10, max(1, n_genes // (2 * n_programmes)))
    for r in range(n_programmes):
        idx = np.arange(r * n_markers, (r + 1) * n_markers) % n_genes
        programme[r, idx] = fold
    depth = rng.lognormal(np.log(8.0), 0.3, size=n)
    mu = depth[:, None] * base[None] * programme[programme_of_spot]
    # negative binomial through a gamma-Poisson mixture (dispersion 0.5)
    counts = rng.poisson(rng.gamma(2.0, mu / 2.0)).astype(np.float32)
    genes = [f"GENE{i:04d}" for i in range(n_genes)]
    for r in range(n_programmes):
        genes[r * n_markers % n_genes] = f"MARKER{r}"
    return counts, genes


# The cross-modal design (6 regions): regions 0-3 are a 2 x 2 factorial of two
# expression programmes and two textures, so that RNA alone merges 0+1 / 2+3,
# the image alone merges 0+2 / 1+3 and only both modalities tell all four apart;
# regions 4 and 5 differ from everything in both modalities.
CROSSMODAL_EXPRESSION = (0, 0, 1, 1, 2, 3)
CROSSMODAL_TEXTURE = (0, 1, 0, 1, 2, 3)


def crossmodal_section(
    n_spots: int = 600,
    grid: str = "square",
    *,
    n_genes: int = 300,
    fold: float = 3.0,
    expression_of: tuple[int, ...] = CROSSMODAL_EXPRESSION,
    texture_of: tuple[int, ...] = CROSSMODAL_TEXTURE,
    spacing_px: float = 40.0,
    seed: int = 0,
) -> AnnData:
    """A section where some regions differ only in expression and others only in histology.

    Regions are Voronoi cells around random centres; region ``r`` has expression
    programme ``expression_of[r]`` and H&E-like texture ``texture_of[r]``
    (pink eosin background with purple nuclei whose density, size and stain
    differ by texture). With the default design only a fusion of both
    modalities can find all six regions (see ``benchmarks/crossmodal.py``).

    Parameters
    ----------
    n_spots
        Approximate number of spots (the grid is the nearest square / hexagon).
    grid
        ``"square"`` (legacy ST, spacing 1) or ``"hex"`` (Visium: rows offset by
        half a spacing, row pitch sqrt(3)/2).
    n_genes
        Number of genes; each programme raises its own 10 markers ``fold`` times.
    fold
        Marker fold change (3: separable but noisy at ~8 counts per gene).
    expression_of, texture_of
        Programme and texture of each region (same length: the region count).
    spacing_px
        Nearest-spot distance in full-resolution pixels (the image is at scale 1).
    seed
        Random seed; the same seed gives the same section.
    """
    from scipy import ndimage

    if grid not in ("square", "hex"):
        raise ValueError(f"grid must be 'square' or 'hex', got {grid!r}")
    if len(expression_of) != len(texture_of):
        raise ValueError("expression_of and texture_of need one entry per region")
    rng = np.random.default_rng(seed)
    n_regions = len(expression_of)
    pitch = np.sqrt(3) / 2 if grid == "hex" else 1.0
    n_cols = max(2, int(round(np.sqrt(n_spots / pitch))))
    n_rows = max(2, int(round(n_spots / n_cols)))
    gy, gx = np.mgrid[0:n_rows, 0:n_cols]
    row, col = gy.ravel().astype(float), gx.ravel().astype(float)
    pos = np.stack([col + (0.5 * (row % 2) if grid == "hex" else 0.0), row * pitch], 1)  # grid units
    extent = pos.max(0)
    centres = rng.uniform(0.1, 0.9, size=(n_regions, 2)) * extent

    def region_of(p: np.ndarray) -> np.ndarray:
        return ((p[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)

    region = region_of(pos)
    for r in range(n_regions):  # every region gets spots
        if not (region == r).any():
            region[rng.integers(region.size)] = r
    expr = np.asarray(expression_of)[region]
    counts, genes = _counts(rng, expr, int(max(expression_of)) + 1, n_genes, fold)

    margin = 4.0 * spacing_px
    xy = margin + pos * spacing_px
    w, h = (int(2 * margin + e * spacing_px) + 1 for e in extent)
    yy, xx = np.mgrid[0:h, 0:w]
    pix = np.stack([(xx.ravel() - margin) / spacing_px, (yy.ravel() - margin) / spacing_px], 1)
    tex = np.asarray(texture_of)[region_of(pix)].reshape(h, w)
    image = _paint_he(rng, tex, int(max(texture_of)) + 1, spacing_px, ndimage)

    labels = np.array([f"region {r}" for r in region], dtype=object)
    ids = [f"{int(c)}x{int(r_)}" for c, r_ in zip(col, row, strict=True)]
    array_col = 2 * col + (row % 2) if grid == "hex" else col
    return make_section(
        counts, ids, genes, xy, array_row=row, array_col=array_col, image=image, image_scalef=1.0,
        spot_diameter_fullres=0.5 * spacing_px, labels=labels, library_id=f"crossmodal_{grid}",
        source=None, source_format="synthetic",
    )


def _paint_he(rng: np.random.Generator, tex: np.ndarray, n_textures: int, spacing_px: float, ndimage) -> np.ndarray:
    """H&E-like RGB image: eosin background, haematoxylin nuclei; texture t sets density/size/stain."""
    h, w = tex.shape
    eosin = np.array([236.0, 170.0, 200.0])
    haem = np.array([95.0, 60.0, 150.0])
    img = np.empty((h, w, 3))
    img[:] = eosin
    # per texture: nuclei per spot-area, nucleus radius (px), stain shift of the background
    density = np.linspace(1.5, 7.0, n_textures)[rng.permutation(n_textures)]
    radius = np.linspace(0.06, 0.13, n_textures)[rng.permutation(n_textures)] * spacing_px
    shift = rng.normal(0, 12, size=(n_textures, 3))
    for t in range(n_textures):
        where = tex == t
        img[where] += shift[t]
        n_nuc = rng.poisson(density[t] * h * w / spacing_px**2)
        seeds = np.zeros((h, w), dtype=bool)
        seeds[rng.integers(0, h, n_nuc), rng.integers(0, w, n_nuc)] = True
        r = max(1, int(round(radius[t])))
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        nuclei = ndimage.binary_dilation(seeds, structure=xx**2 + yy**2 <= r * r) & where
        img[nuclei] = haem + rng.normal(0, 10, size=3)
    img += rng.normal(0, 10, size=img.shape)
    img = ndimage.gaussian_filter(img, sigma=(0.8, 0.8, 0))
    return np.clip(img, 0, 255).astype(np.uint8)


def visium_hd_section(
    n_bins: int = 10_000,
    n_genes: int = 2000,
    n_regions: int = 6,
    *,
    with_image: bool = False,
    counts_per_bin: float = 60.0,
    fold: float = 4.0,
    bin_px: float = 8.0,
    seed: int = 0,
) -> AnnData:
    """A Visium-HD-like section: square bins, sparse counts, optional H&E-like image.

    Built in memory proportional to the counts (never a dense bins x genes
    matrix), so 500,000 bins fit in a few GB. Regions are Voronoi cells around
    random centres; region ``r`` raises its own 10 marker genes ``fold`` times
    and, with an image, has its own nucleus density, size and stain
    (the painter of :func:`crossmodal_section`).

    Parameters
    ----------
    n_bins
        Approximate number of bins (the nearest square grid).
    n_genes
        Genes; most are sparse background (gamma-distributed means).
    n_regions
        Spatial regions, also ``obs["label"]``.
    with_image
        Paint an H&E-like image at ``bin_px`` pixels per bin (scale 1).
    counts_per_bin
        Mean UMIs per bin (16 um Visium HD bins have tens to hundreds).
    fold
        Marker fold change.
    bin_px
        Bin pitch in full-resolution pixels.
    seed
        Random seed.
    """
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    side = max(2, int(round(np.sqrt(n_bins))))
    gy, gx = np.mgrid[0:side, 0:side]
    row, col = gy.ravel().astype(float), gx.ravel().astype(float)
    n = row.size
    centres = rng.uniform(0.05, 0.95, size=(n_regions, 2)) * (side - 1)
    region = np.empty(n, dtype=np.int64)
    for i in range(0, n, 200_000):  # chunks keep the (n, regions) distances small
        p = np.stack([col[i : i + 200_000], row[i : i + 200_000]], 1)
        region[i : i + 200_000] = ((p[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    base = rng.gamma(0.4, 1.0, size=n_genes) + 0.01
    prog = np.tile(base, (n_regions, 1))
    n_markers = min(10, max(1, n_genes // (2 * n_regions)))
    for r in range(n_regions):
        prog[r, (np.arange(r * n_markers, (r + 1) * n_markers)) % n_genes] *= fold
    prog /= prog.sum(1, keepdims=True)
    cdf = np.cumsum(prog, 1)
    depth = rng.poisson(counts_per_bin * rng.lognormal(0.0, 0.3, size=n)).astype(np.int64) + 1
    blocks = []
    for i in range(0, n, 50_000):  # multinomial sampling in chunks: memory ~ the chunk's counts
        d = depth[i : i + 50_000]
        b = np.repeat(np.arange(d.size), d)
        u = rng.random(b.size)
        g = np.empty(b.size, dtype=np.int64)
        reg = region[i : i + 50_000][b]
        for r in range(n_regions):
            w = reg == r
            g[w] = np.minimum(np.searchsorted(cdf[r], u[w]), n_genes - 1)
        blocks.append(sp.csr_matrix((np.ones(b.size, np.float32), (b, g)), shape=(d.size, n_genes)))
    counts = sp.vstack(blocks).tocsr()
    counts.sum_duplicates()
    genes = [f"GENE{i:05d}" for i in range(n_genes)]
    for r in range(n_regions):
        genes[r * n_markers % n_genes] = f"MARKER{r}"
    margin = 4.0 * bin_px
    xy = margin + np.stack([col, row], 1) * bin_px
    image = None
    if with_image:
        from scipy import ndimage

        w = h = int(2 * margin + (side - 1) * bin_px) + 1
        yy, xx = np.mgrid[0:h, 0:w]
        pc = np.clip(np.round((xx - margin) / bin_px), 0, side - 1).astype(np.int64)
        pr = np.clip(np.round((yy - margin) / bin_px), 0, side - 1).astype(np.int64)
        tex = region[pr * side + pc]
        del yy, xx, pc, pr
        image = _paint_he(rng, tex, n_regions, 4.0 * bin_px, ndimage)
    labels = np.array([f"region {r}" for r in region], dtype=object)
    ids = [f"s_016um_{int(r_):05d}_{int(c):05d}-1" for r_, c in zip(row, col, strict=True)]
    return make_section(
        counts, ids, genes, xy, array_row=row, array_col=col, image=image, image_scalef=1.0,
        spot_diameter_fullres=bin_px, labels=labels, library_id="visium_hd_synthetic",
        source=None, source_format="synthetic",
    )


def sample_data_dir() -> Path:
    """Folder of the data bundled with the package."""
    return Path(str(resources.files("napari_senca") / "sample_data"))


def her2st_a1() -> AnnData:
    """HER2ST section A1 (Andersson et al. 2021) with a downscaled H&E, bundled."""
    from .io import read_section

    return read_section(sample_data_dir() / "her2st_A1")
