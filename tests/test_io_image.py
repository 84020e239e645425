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


def _claim_size(png, w, h):
    """Patch a PNG's IHDR to claim ``w`` x ``h`` pixels (with a valid CRC)."""
    import struct
    import zlib

    b = bytearray(png.read_bytes())
    b[16:24] = struct.pack(">II", w, h)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    png.write_bytes(bytes(b))
    return png


def test_huge_header_refused_before_decoding(tmp_path, monkeypatch):
    from napari_senca.io import image

    png = tmp_path / "huge.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(png)
    _claim_size(png, 200_000, 200_000)
    assert image.image_size(png) == (200_000, 200_000)

    def no_decode(p):
        raise AssertionError("decoded")

    monkeypatch.setattr(image, "_read_pillow", no_decode)
    with pytest.raises(DataError) as e:
        load_image(png)
    msg = str(e.value)
    assert msg.startswith(str(png)) and "200,000 x 200,000 px (40 gigapixels" in msg and "limit of 1 gigapixels" in msg
    assert "\n" not in msg


def test_limit_applies_to_tiff_and_can_be_raised(tmp_path, monkeypatch):
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((30, 40, 3), np.uint8))
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "a.jpg")
    monkeypatch.setenv("NAPARI_SENCA_MAX_IMAGE_PIXELS", "1000")
    for name in ("a.tif", "a.jpg"):
        with pytest.raises(DataError, match="40 x 30 px"):
            load_image(tmp_path / name)
    monkeypatch.setenv("NAPARI_SENCA_MAX_IMAGE_PIXELS", "1200")
    assert load_image(tmp_path / "a.tif").shape == (30, 40, 3)


def test_memory_error_while_decoding_is_one_line(tmp_path, monkeypatch):
    from napari_senca.io import image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")

    def oom(p):
        raise MemoryError

    monkeypatch.setattr(image, "_read_pillow", oom)
    with pytest.raises(DataError, match="not enough memory to decode the 8 x 8 px image"):
        load_image(tmp_path / "a.png")
