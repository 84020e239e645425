"""H&E patches around the spots."""

from __future__ import annotations

import numpy as np
import pytest
from anndata import AnnData

from napari_senca import DataError
from napari_senca.datasets import synthetic_section
from napari_senca.patches import extract_patches, iter_patches, patch_radius_px
from napari_senca.section import make_section


def _section(
    xy: np.ndarray,
    image: np.ndarray | None,
    scalef: float = 1.0,
    source: str | None = None,
) -> AnnData:
    n = len(xy)
    rng = np.random.default_rng(0)
    return make_section(
        rng.poisson(5.0, size=(n, 4)),
        [f"s{i}" for i in range(n)],
        [f"G{j}" for j in range(4)],
        np.asarray(xy, dtype=float),
        image=image,
        image_scalef=scalef,
        source=source,
    )


def _grid_xy(n_side: int, spacing: float, origin: float) -> np.ndarray:
    gy, gx = np.mgrid[0:n_side, 0:n_side]
    return origin + np.stack([gx.ravel(), gy.ravel()], 1).astype(float) * spacing


def _random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- radius


def test_radius_is_three_spacings_on_the_synthetic_section() -> None:
    ad = synthetic_section(n_side=8, n_genes=60, spacing_px=40.0)
    assert patch_radius_px(ad) == pytest.approx(3 * 40.0)
    assert patch_radius_px(ad, 1.5) == pytest.approx(1.5 * 40.0)


@pytest.mark.parametrize("scalef", [1.0, 0.5, 0.25])
def test_radius_is_spacings_times_spacing_times_scalef(scalef: float) -> None:
    xy = _grid_xy(4, 100.0, 200.0)  # full-res pixels, spacing 100
    side = int(800 * scalef)
    ad = _section(xy, _random_image(side, side), scalef=scalef)
    assert patch_radius_px(ad) == pytest.approx(3.0 * 100.0 * scalef)
    assert patch_radius_px(ad, 2.0) == pytest.approx(2.0 * 100.0 * scalef)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("size", [16, 32, 57])
def test_patch_shape_and_dtype(size: int) -> None:
    ad = synthetic_section(n_side=8, n_genes=60)
    p = extract_patches(ad, 3.0, size)
    assert p.shape == (ad.n_obs, size, size, 3)
    assert p.dtype == np.uint8


def test_iter_patches_batches_in_spot_order() -> None:
    ad = synthetic_section(n_side=8, n_genes=60)
    batches = list(iter_patches(ad, 1.0, 16, batch=10))
    assert [len(b) for b in batches] == [10] * 6 + [4]
    assert all(b.shape[1:] == (16, 16, 3) and b.dtype == np.uint8 for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), extract_patches(ad, 1.0, 16))


# --------------------------------------------------------------------------- content


def test_unresized_patch_is_the_image_around_the_spot() -> None:
    # spacing 40, radius 0.4 spacings = 16 px: a 32 px patch is a plain crop
    xy = _grid_xy(3, 40.0, 60.0)
    img = _random_image(200, 200)
    ad = _section(xy, img)
    p = extract_patches(ad, 0.4, 32)
    for i, (x, y) in enumerate(xy.astype(int)):
        np.testing.assert_array_equal(p[i], img[y - 16 : y + 16, x - 16 : x + 16])
        np.testing.assert_array_equal(p[i, 16, 16], img[y, x])


def test_patch_centre_colour_matches_the_image_at_the_spot() -> None:
    # every spot sits in a uniformly coloured 40 x 40 block; patches are resized
    xy = _grid_xy(3, 40.0, 20.0)
    img = np.zeros((120, 120, 3), dtype=np.uint8)
    rng = np.random.default_rng(3)
    colours = rng.integers(0, 256, size=(9, 3), dtype=np.uint8)
    for i, (x, y) in enumerate(xy.astype(int)):
        img[y - 20 : y + 20, x - 20 : x + 20] = colours[i]
    ad = _section(xy, img)
    p = extract_patches(ad, 0.3, 64)  # 12 px radius -> 24 px crop resized to 64
    for i, (x, y) in enumerate(xy.astype(int)):
        np.testing.assert_array_equal(p[i, 32, 32], img[y, x])
        np.testing.assert_array_equal(p[i, 32, 32], colours[i])


def test_patch_centre_on_a_scaled_image() -> None:
    # full-res positions, image at half resolution
    xy = _grid_xy(3, 80.0, 40.0)
    scalef = 0.5
    img = np.zeros((120, 120, 3), dtype=np.uint8)
    colours = np.random.default_rng(4).integers(0, 256, size=(9, 3), dtype=np.uint8)
    for i, (x, y) in enumerate((xy * scalef).astype(int)):
        img[y - 20 : y + 20, x - 20 : x + 20] = colours[i]
    ad = _section(xy, img, scalef=scalef)
    assert patch_radius_px(ad, 0.25) == pytest.approx(10.0)
    p = extract_patches(ad, 0.25, 20)  # radius 10 image px: plain 20 px crops
    for i in range(len(xy)):
        assert (p[i] == colours[i]).all()


def test_synthetic_patch_centres_match_the_image() -> None:
    ad = synthetic_section(n_side=8, n_genes=60)
    img = ad.uns["spatial"]["synthetic"]["images"]["hires"]
    # radius 0.2 spacings = 8 px -> 16 px crops, no resizing
    p = extract_patches(ad, 0.2, 16)
    xy = np.rint(ad.obsm["spatial"]).astype(int)
    for i in range(0, ad.n_obs, 7):
        x, y = xy[i]
        np.testing.assert_array_equal(p[i, 8, 8], img[y, x])


def test_spot_near_the_border_is_padded() -> None:
    xy = np.array([[2.0, 2.0], [50.0, 50.0], [97.0, 97.0], [2.0, 97.0], [50.0, 2.0]])
    img = _random_image(100, 100, seed=1)
    ad = _section(xy, img)
    r = 16
    spacing = 48.0  # median nearest-spot distance of these five spots
    p = extract_patches(ad, r / spacing, 2 * r)
    assert p.shape == (5, 32, 32, 3)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    fill = np.median(border, axis=0).astype(np.uint8)
    # top-left spot at (2, 2): crop rows/cols -14..17, the first 14 are padding
    assert (p[0, :14, :] == fill).all()
    assert (p[0, :, :14] == fill).all()
    np.testing.assert_array_equal(p[0, 14:, 14:], img[0:18, 0:18])
    np.testing.assert_array_equal(p[0, r, r], img[2, 2])
    # bottom-right spot at (97, 97): the last 13 rows/cols are padding
    assert (p[2, -13:, :] == fill).all()
    assert (p[2, :, -13:] == fill).all()
    np.testing.assert_array_equal(p[2, :19, :19], img[81:100, 81:100])


def test_patch_larger_than_the_image_does_not_crash() -> None:
    xy = _grid_xy(2, 10.0, 10.0)
    ad = _section(xy, _random_image(30, 30))
    p = extract_patches(ad, 10.0, 32)  # radius 100 px on a 30 px image
    assert p.shape == (4, 32, 32, 3)
    assert p.dtype == np.uint8


# --------------------------------------------------------------------------- errors


def test_no_image_is_a_data_error() -> None:
    ad = synthetic_section(n_side=8, n_genes=60, with_image=False)
    with pytest.raises(DataError, match="image"):
        extract_patches(ad, 3.0, 32)
    with pytest.raises(DataError, match="image"):
        patch_radius_px(ad)
    with pytest.raises(DataError, match="image"):
        next(iter_patches(ad))


def test_no_image_error_names_the_source() -> None:
    ad = _section(_grid_xy(3, 40.0, 60.0), None, source="/data/S1")
    with pytest.raises(DataError) as info:
        extract_patches(ad, 3.0, 32)
    assert info.value.path == "/data/S1"
