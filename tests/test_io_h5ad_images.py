"""An .h5ad keeps Space Ranger-sized images (never a gigapixel copy), and spots stay on the same tissue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_senca.io import read_h5ad, read_section, write_h5ad
from napari_senca.io.h5ad import STORED_IMAGE_SIDE, compact_spatial
from napari_senca.section import get_image, make_section


def _section_with_big_image(h: int = 3000, w: int = 4500, key: str = "hires", scalef: float = 0.75):
    """Spots on a grid, each painted on the image as a 40 px square of its own colour."""
    rng = np.random.default_rng(0)
    xs, ys = np.meshgrid(np.arange(400, 5600, 800.0), np.arange(400, 3700, 800.0))
    xy = np.c_[xs.ravel(), ys.ravel()]
    img = np.zeros((h, w, 3), np.uint8)
    colours = rng.integers(30, 255, size=(len(xy), 3), dtype=np.uint8)
    for (x, y), c in zip(xy * scalef, colours, strict=True):
        img[int(y) - 20 : int(y) + 20, int(x) - 20 : int(x) + 20] = c
    a = make_section(
        rng.poisson(2, size=(len(xy), 5)), [f"s{i}" for i in range(len(xy))], [f"G{i}" for i in range(5)], xy,
        image=img, image_scalef=scalef, image_key=key, library_id="lib",
    )
    return a, colours


def _colour_under_spots(adata) -> np.ndarray:
    img, s = get_image(adata)
    xy = np.asarray(adata.obsm["spatial"]) * s
    return img[np.round(xy[:, 1]).astype(int), np.round(xy[:, 0]).astype(int)].astype(int)


@pytest.mark.parametrize("key", ["hires", "fullres"])
def test_big_image_is_stored_small_and_spots_stay_put(tmp_path, key):
    a, colours = _section_with_big_image(key=key)
    a.uns["spatial"]["lib"]["metadata"]["source_image_path"] = "/data/he_fullres.tif"
    before = a.uns["spatial"]["lib"]["images"][key]
    p = write_h5ad(a, tmp_path / "s.h5ad")
    assert p.stat().st_size < 1e7  # 2000 x 1333 x 3 bytes; the 4500 x 3000 px image alone is 40 MB
    assert a.uns["spatial"]["lib"]["images"][key] is before  # the section in memory is untouched
    b = read_h5ad(p)
    entry = b.uns["spatial"]["lib"]
    assert list(entry["images"]) == ["hires"] and max(entry["images"]["hires"].shape[:2]) == 2000
    assert entry["scalefactors"]["tissue_hires_scalef"] == pytest.approx(0.75 * 2000 / 4500)
    assert "tissue_fullres_scalef" not in entry["scalefactors"]
    assert entry["metadata"]["source_image_path"] == "/data/he_fullres.tif"
    got = _colour_under_spots(b)
    assert np.abs(got - colours.astype(int)).max() <= 3  # every spot still sits on its own square
    assert read_section(p).n_obs == a.n_obs


def test_lowres_capped_and_fullres_dropped_beside_a_hires():
    img = np.zeros((1500, 1200, 3), np.uint8)
    spatial = {
        "lib": {
            "images": {"fullres": np.zeros((8000, 6000, 3), np.uint8), "hires": img[:1000], "lowres": img},
            "scalefactors": {"tissue_fullres_scalef": 1.0, "tissue_hires_scalef": 0.2, "tissue_lowres_scalef": 0.3},
            "metadata": {},
        }
    }
    out = compact_spatial(spatial)["lib"]
    assert sorted(out["images"]) == ["hires", "lowres"]
    assert out["images"]["hires"] is spatial["lib"]["images"]["hires"]  # small enough: shared, not copied
    assert out["images"]["lowres"].shape == (600, 480, 3)
    assert out["scalefactors"] == {"tissue_hires_scalef": 0.2, "tissue_lowres_scalef": pytest.approx(0.3 * 0.4)}
    assert sorted(spatial["lib"]["images"]) == ["fullres", "hires", "lowres"]  # input untouched
    assert STORED_IMAGE_SIDE == {"hires": 2000, "lowres": 600}


def test_cli_records_the_full_resolution_image(st_folder, tmp_path):
    from napari_senca.cli import _read, build_parser

    folder = st_folder()
    args = build_parser().parse_args(["info", str(folder), "--image", str(folder / "he.png")])
    meta = _read(args).uns["spatial"]["S1"]["metadata"]
    assert meta["source_image_path"] == str((folder / "he.png").absolute())


def test_readers_record_the_image_they_read(st_folder, visium_folder):
    """Every reader names the H&E file it read, so a compact .h5ad still leads back to it."""
    from napari_senca.io import read_section

    st = st_folder("S1")
    a = read_section(st)
    meta = next(iter(a.uns["spatial"].values()))["metadata"]
    assert Path(meta["source_image_path"]).is_file()
    assert Path(meta["source_image_path"]).parent == st.absolute()

    v = visium_folder("V1")
    b = read_section(v)
    meta = next(iter(b.uns["spatial"].values()))["metadata"]
    assert Path(meta["source_image_path"]).name == "tissue_hires_image.png"
