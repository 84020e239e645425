"""Image loading."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_senca.errors import DataError
from napari_senca.io import load_image


def test_png_jpeg_grey_rgba(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, size=(20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgb)
    Image.fromarray(rgb).save(tmp_path / "a.JPG", quality=95)
    assert load_image(tmp_path / "a.JPG").shape == (20, 30, 3)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == (20, 30, 3) and (g[..., 0] == g[..., 2]).all()
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba).save(tmp_path / "a4.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a4.png"), rgb)


def test_tiff_variants(tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, size=(16, 12, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", rgb)
    np.testing.assert_array_equal(load_image(tmp_path / "a.tif"), rgb)
    tifffile.imwrite(tmp_path / "cf.tiff", np.moveaxis(rgb, -1, 0))
    np.testing.assert_array_equal(load_image(tmp_path / "cf.tiff"), rgb)
    tifffile.imwrite(tmp_path / "u16.tif", rgb.astype(np.uint16) * 256)
    out = load_image(tmp_path / "u16.tif")
    assert out.dtype == np.uint8 and out.shape == (16, 12, 3)


def test_pixel_limit_lifted_and_restored(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # would refuse a 64x64 image
    assert load_image(tmp_path / "big.png").shape == (64, 64, 3)
    assert Image.MAX_IMAGE_PIXELS == 100


@pytest.mark.parametrize("name", ["bad.png", "bad.jpg", "bad.tif"])
def test_corrupt(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00\x01 definitely not an image")
    with pytest.raises(DataError) as e:
        load_image(tmp_path / name)
    assert str(e.value).startswith(str(tmp_path / name))


def test_missing_and_bad_shape(tmp_path):
    with pytest.raises(DataError, match="image file not found"):
        load_image(tmp_path / "none.png")
    import tifffile

    tifffile.imwrite(tmp_path / "five.tif", np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(DataError, match="expected \\(H, W, 3\\) RGB"):
        load_image(tmp_path / "five.tif")
