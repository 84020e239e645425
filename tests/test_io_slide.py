"""Whole-slide H&E read lazily (io/slide.py), the reference kept in sections and .h5ad files."""

from __future__ import annotations

import shutil
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_senca.errors import ConfigError, DataError
from napari_senca.io import read_h5ad, read_section, write_h5ad
from napari_senca.io.image import load_image
from napari_senca.io.slide import (
    image_reference,
    open_levels,
    read_overview,
    reference_problem,
    write_pyramid,
)
from napari_senca.notes import InputWarning
from napari_senca.patches import choose_level, iter_patches
from napari_senca.section import fullres_reference, get_image, get_image_levels

SIDE = 8192
TILE = 512


def _tile_value(ty: int, tx: int) -> int:
    return (7 * ty + 13 * tx) % 251


def write_big_pyramid(path, side: int = SIDE, levels: int = 3, width: int | None = None):
    """An ``side`` x ``width`` (default square) RGB tiled pyramidal BigTIFF written tile by tile.

    Never whole in memory. Every 512 px tile of level 0 is one colour, ``_tile_value(ty, tx)``.
    """
    width = width or side

    def tiles(s: int, factor: int):
        for ty in range(s // TILE):
            for tx in range(width // factor // TILE):
                # a level-k tile covers 2^k x 2^k level-0 tiles: take the top-left one's colour
                yield np.full((TILE, TILE, 3), _tile_value(ty * factor, tx * factor), dtype=np.uint8)

    kw = {"tile": (TILE, TILE), "photometric": "rgb", "compression": "zlib", "dtype": np.uint8}
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(tiles(side, 1), shape=(side, width, 3), subifds=levels - 1, **kw)
        for k in range(1, levels):
            tw.write(tiles(side >> k, 1 << k), shape=(side >> k, width >> k, 3), subfiletype=1, **kw)
    return path


@pytest.fixture(scope="module")
def big_slide(tmp_path_factory):
    return write_big_pyramid(tmp_path_factory.mktemp("slide") / "big.ome.tif")


def test_open_levels_does_not_materialise(big_slide):
    tracemalloc.start()
    try:
        ref = image_reference(big_slide)
        levels = open_levels(big_slide)
        window = np.asarray(levels[0][1000:1100, 5000:5300])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (ref["width"], ref["height"], ref["levels"]) == (SIDE, SIDE, 3)
    assert [lv.shape for lv in levels[:3]] == [(SIDE, SIDE, 3), (SIDE // 2, SIDE // 2, 3), (SIDE // 4, SIDE // 4, 3)]
    assert all(lv.dtype == np.uint8 for lv in levels)
    # tile-sized chunks: a window reads a few tiles, never the level
    assert max(levels[0].chunks[0]) <= TILE and max(levels[0].chunks[1]) <= TILE
    assert window.shape == (100, 300, 3)
    assert window[0, 0, 0] == _tile_value(1000 // TILE, 5000 // TILE)
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB while the level-0 image is {3 * SIDE * SIDE / 1e6:.0f} MB"


def test_overview_from_a_coarse_level(big_slide):
    levels = open_levels(big_slide)
    tracemalloc.start()
    try:
        img, factor = read_overview(levels, max_side=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert img.shape == (1000, 1000, 3) and factor == pytest.approx(1000 / SIDE)
    assert peak < 60e6  # read from the 2048 px level, not from the 8192 px one


def test_single_level_tiff_gets_lazy_coarse_levels(tmp_path):
    p = tmp_path / "flat.tif"
    arr = np.random.default_rng(0).integers(0, 255, size=(4300, 2100, 3), dtype=np.uint8)
    tifffile.imwrite(p, arr, tile=(256, 256), photometric="rgb")
    levels = open_levels(p)
    assert [lv.shape[:2] for lv in levels] == [(4300, 2100), (2150, 1050), (1075, 525)]
    assert np.array_equal(np.asarray(levels[0][:5, :5]), arr[:5, :5])
    expect = arr[:2, :2].astype(np.float32).mean(axis=(0, 1)).astype(np.uint8)
    assert np.array_equal(np.asarray(levels[1][0, 0]), expect)


def test_channel_first_and_grey_ome_tiff(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, size=(3, 64, 80), dtype=np.uint8)
    p = tmp_path / "planar.ome.tif"
    tifffile.imwrite(p, rgb, ome=True, metadata={"axes": "CYX"})
    (lv,) = open_levels(p)
    assert lv.shape == (64, 80, 3) and np.array_equal(np.asarray(lv), np.moveaxis(rgb, 0, -1))
    g = tmp_path / "grey16.tif"
    tifffile.imwrite(g, np.full((32, 40), 65535, dtype=np.uint16))
    (lv,) = open_levels(g)
    assert lv.shape == (32, 40, 3) and lv.dtype == np.uint8 and int(np.asarray(lv).min()) == 255


_BASE = np.random.default_rng(2).integers(40, 220, size=(96, 128, 3)).astype(np.uint16)


@pytest.mark.parametrize(
    "name, arr",
    [
        ("float_0_255", _BASE.astype(np.float32)),
        ("float_0_1", (_BASE / 255.0).astype(np.float32)),
        ("uint16_12bit", _BASE * 16),
        ("uint16_full", _BASE * 257),
    ],
)
def test_lazy_and_in_memory_give_the_same_picture(tmp_path, name, arr):
    p = tmp_path / f"{name}.tif"
    tifffile.imwrite(p, arr, photometric="rgb")
    eager = load_image(p)
    lazy = open_levels(p)
    assert lazy[0].dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(lazy[0]), eager)
    assert abs(float(eager.mean()) - float(_BASE.mean())) < 30  # neither white nor black


def test_lazy_scale_is_shared_by_all_levels(tmp_path, monkeypatch):
    import napari_senca.io.slide as slide

    arr = np.random.default_rng(3).integers(0, 4096, size=(3000, 200, 3)).astype(np.uint16)  # 12-bit data
    arr[0, 0] = 4095
    p = tmp_path / "tall12.tif"
    tifffile.imwrite(p, arr, tile=(256, 256), photometric="rgb")
    monkeypatch.setattr(slide, "_SCALE_SAMPLE_PIXELS", 200 * 200, raising=False)  # a bounded sample
    levels = open_levels(p)
    assert len(levels) == 2
    fine = np.asarray(levels[0]).astype(np.float64)
    assert 110 < fine.mean() < 145 and fine.max() >= 250  # scaled by a maximum near 4095, not 65535
    np.testing.assert_allclose(np.asarray(levels[1][0, 0]), fine[:2, :2].mean(axis=(0, 1)), atol=1)


def test_lazy_scale_sees_full_resolution_pixels_a_coarse_level_lost(tmp_path, monkeypatch):
    import napari_senca.io.slide as slide

    img = np.full((512, 512, 3), 1000, np.uint16)
    img[1::2, 1::2] = 4000  # bright odd pixels: gone from the subsampled levels
    p = tmp_path / "pyr16.tif"
    with tifffile.TiffWriter(p) as tw:
        tw.write(img, tile=(128, 128), photometric="rgb", subifds=1)
        tw.write(img[::2, ::2], tile=(128, 128), photometric="rgb", subfiletype=1)
    monkeypatch.setattr(slide, "_SCALE_SAMPLE_PIXELS", 256 * 256, raising=False)  # level 1 is the small one
    fine = np.asarray(open_levels(p)[0][:2, :2, 0])
    np.testing.assert_array_equal(fine, load_image(p)[:2, :2, 0])  # 63 / 255 like the in-memory reader
    assert fine.min() < 100


def test_a_damaged_tile_is_a_data_error(tmp_path):
    img = np.random.default_rng(0).integers(0, 60000, (512, 512, 3)).astype(np.uint16)
    p = tmp_path / "c16.tif"
    tifffile.imwrite(p, img, tile=(256, 256), photometric="rgb", compression="zlib")
    with tifffile.TiffFile(p) as t:
        off = t.pages[0].dataoffsets[1]
    raw = bytearray(p.read_bytes())
    raw[off : off + 64] = b"\x00" * 64
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="c16.tif: cannot read the TIFF image"):
        open_levels(p)


def test_not_a_tiff(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(DataError, match="bad.tif: cannot read the TIFF image"):
        image_reference(bad)
    with pytest.raises(DataError, match="not found"):
        image_reference(tmp_path / "none.tif")


def test_reference_problem(tmp_path):
    p = write_pyramid(np.zeros((300, 200, 3), np.uint8), tmp_path / "s.tif", tile=64, min_side=64)
    ref = image_reference(p)
    assert reference_problem(ref) is None
    write_pyramid(np.full((300, 200, 3), 9, np.uint8), p, tile=64, min_side=64)
    assert "has changed" in reference_problem(ref)
    p.unlink()
    assert "not there (moved or deleted)" in reference_problem(ref)


def test_lazy_slides_are_exempt_from_the_pixel_limit(visium_hd_folder, monkeypatch, tmp_path):
    """The 1-gigapixel refusal is about decoding whole images; a lazily read slide is never decoded."""
    root = visium_hd_folder()
    # the limit is below the slide's 480 x 512 px, above the PNGs' 120 x 128 px
    monkeypatch.setenv("NAPARI_SENCA_MAX_IMAGE_PIXELS", "100000")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        a = read_section(root)
    assert fullres_reference(a)["width"] == 512
    png = tmp_path / "big.png"
    from PIL import Image

    Image.fromarray(np.zeros((400, 400, 3), np.uint8)).save(png)
    with pytest.raises(DataError, match="more than the limit"):
        load_image(png)  # images that must be decoded whole keep the refusal


def test_h5ad_keeps_a_reference_not_the_pixels(visium_hd_folder, tmp_path):
    root = visium_hd_folder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        a = read_section(root)
    out = write_h5ad(a, tmp_path / "s.h5ad")
    back = read_h5ad(out)
    entry = back.uns["spatial"][next(iter(back.uns["spatial"]))]
    assert set(entry["images"]) == {"hires", "lowres"}  # Space Ranger-sized images only
    assert fullres_reference(back) == fullres_reference(a)
    (lv, f), *_ = get_image_levels(back)
    assert lv.shape == (480, 512, 3) and f == 1.0 and not isinstance(lv, np.ndarray)
    # the slide moves: reading says so, and the section falls back to its stored images
    shutil.move(root / "microscope_image", tmp_path / "elsewhere")
    with pytest.warns(InputWarning, match="slide.btf is not there .moved or deleted.; using the stored"):
        moved = read_h5ad(out)
    levels = get_image_levels(moved)
    assert len(levels) == 1 and levels[0][1] == get_image(moved)[1]
    # given again (CLI: --image), the slide is re-linked and read lazily
    new_place = tmp_path / "elsewhere" / "slide.btf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        relinked = read_section(out, image=new_place)
    assert fullres_reference(relinked)["path"] == str(new_place)
    assert get_image_levels(relinked)[0][0].shape == (480, 512, 3)
    assert not [w for w in relinked.uns["senca_input"]["warnings"] if "not there" in w]
    with pytest.raises(ConfigError, match="only its full-resolution slide .a TIFF. can be given again"):
        read_section(out, image=root / "outs" / "spatial" / "tissue_hires_image.png")


def test_slide_given_to_an_h5ad_without_images_is_attached(tmp_path):
    import anndata as ad
    import scipy.sparse as sp

    rng = np.random.default_rng(4)
    a = ad.AnnData(X=sp.csr_matrix(rng.poisson(2, (30, 8)).astype(np.float32)))
    a.obs_names = [f"s{i}" for i in range(30)]
    a.var_names = [f"g{i}" for i in range(8)]
    a.obsm["spatial"] = rng.uniform(10, 500, (30, 2))
    a.write_h5ad(tmp_path / "bare.h5ad")  # no uns["spatial"]
    slide = rng.integers(0, 255, (600, 640, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "slide.tif", slide, photometric="rgb")
    s = read_section(tmp_path / "bare.h5ad", image=tmp_path / "slide.tif")
    img, scalef = get_image(s)  # used by the run: the section has an image now
    assert list(s.uns["spatial"]) == ["bare"] and img.shape == (600, 640, 3) and scalef == 1.0
    assert fullres_reference(s)["path"] == str(tmp_path / "slide.tif")
    (lv, f), *_ = get_image_levels(s)
    assert f == 1.0 and np.array_equal(np.asarray(lv[100:110, 200:210]), slide[100:110, 200:210])
    back = read_h5ad(write_h5ad(s, tmp_path / "out.h5ad"))  # the reference survives a round trip
    assert fullres_reference(back) == fullres_reference(s) and get_image(back) is not None


def test_patches_read_from_the_right_level(visium_hd_folder):
    root = visium_hd_folder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        a = read_section(root)
    levels = get_image_levels(a)
    assert len(levels) == 2
    # 16 um bins are 32 px apart: a 3-spacing radius is a 192 px window at level 0, 96 px at level 1
    assert choose_level(levels, 96.0, 96)[1] == 0.5 and choose_level(levels, 96.0, 150)[1] == 1.0
    (batch,) = list(iter_patches(a, radius_spacings=3.0, size=64, batch=1000))
    assert batch.shape == (a.n_obs, 64, 64, 3)
    left = a.obs["array_col"].to_numpy() == 0
    right = a.obs["array_col"].to_numpy() == a.obs["array_col"].max()
    # the centre of a stroma-side patch is pink, of a tumour-side one purple (the painted slide)
    assert batch[left][:, 32, 40, 0].mean() > 200 and batch[right][:, 32, 24, 0].mean() < 170


def test_write_pyramid_streams_a_tiff(tmp_path):
    """A TIFF is converted band by band: memory follows the width, not the height; a flat one gains a pyramid."""

    def convert(height: int) -> tuple[float, Path]:
        src = write_big_pyramid(tmp_path / f"flat{height}.tif", side=height, levels=1, width=1024)
        out = tmp_path / f"pyr{height}.tif"
        tracemalloc.start()
        try:
            write_pyramid(src, out, tile=512, min_side=256)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return peak, out

    short, _ = convert(2048)
    tall, out = convert(16384)  # 50 MB as RGB
    assert tall < 1.5 * short and tall < 25e6, f"peaks {short / 1e6:.0f} MB (2k rows), {tall / 1e6:.0f} MB (16k rows)"
    assert image_reference(out)["levels"] == 3  # 1024, 512 and 256 px wide, pooled lazily from the flat file
    levels = open_levels(out)
    assert levels[0][9000, 700, 0].compute() == _tile_value(9000 // TILE, 1)
    assert levels[2][9000 // 4, 700 // 4, 0].compute() == _tile_value(9000 // TILE, 1)  # uniform tiles survive pooling
    flat = tmp_path / "flat.tif"
    arr = np.random.default_rng(0).integers(0, 255, size=(2100, 2300, 3), dtype=np.uint8)
    tifffile.imwrite(flat, arr, tile=(256, 256), photometric="rgb")
    pyr = write_pyramid(flat, tmp_path / "pyr.tif", tile=256, min_side=1000)
    levels = open_levels(pyr)
    assert image_reference(pyr)["levels"] == 2 and levels[1].shape == (1050, 1150, 3)
    assert np.array_equal(np.asarray(levels[0]), arr)
    expect = arr[:2, :2].astype(np.float32).mean(axis=(0, 1)).astype(np.uint8)
    assert np.array_equal(np.asarray(levels[1][0, 0]), expect)


def test_legacy_st_folder_reads_a_large_tiff_lazily(tmp_path, monkeypatch):
    from conftest import build_st_folder, he_like
    from napari_senca.io import legacy_st
    from napari_senca.io.slide import write_pyramid

    folder = build_st_folder(tmp_path / "ST", image=False, scale=None)
    full = he_like(400, 700, split=350, seed=0)  # spots at 60..560 px (x), 60..260 px (y), scale 1
    write_pyramid(full, folder / "he.tif", tile=128, min_side=64)
    small = read_section(folder)  # under the threshold: decoded whole, as before
    assert fullres_reference(small) is None and get_image(small)[0].shape == (400, 700, 3)
    monkeypatch.setattr(legacy_st, "LAZY_TIFF_MIN_PIXELS", 1000)  # make this TIFF 'large'
    a = read_section(folder)
    ref = fullres_reference(a)
    assert ref is not None and ref["path"] == str((folder / "he.tif").absolute()) and ref["scalef"] == 1.0
    (lv, f), *_ = get_image_levels(a)
    assert lv.shape == (400, 700, 3) and f == 1.0 and not isinstance(lv, np.ndarray)  # read lazily
    img, sf = get_image(a)  # the in-memory overview: 700 px fit under 2,000, so at full size here
    assert img.shape == (400, 700, 3) and sf == pytest.approx(1.0)
    np.testing.assert_array_equal(np.asarray(lv[100:110, 200:210]), full[100:110, 200:210])
