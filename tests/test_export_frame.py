"""GeoJSON in the frame the user needs (issue 8, item 14): full resolution or a stored image."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_senca._napari import write_points_geojson
from napari_senca.datasets import synthetic_section
from napari_senca.errors import ConfigError
from napari_senca.export import (
    default_geojson_frame,
    geojson_features,
    geojson_frames,
    source_image_is_fullres,
    write_geojson,
)
from napari_senca.io import read_section
from napari_senca.review import section_layer_data
from napari_senca.section import spot_diameter


def _cluster(a):
    a.obs["senca_cluster"] = pd.Categorical([str(i % 2) for i in range(a.n_obs)], categories=["0", "1"])
    return a


def _centres_and_radius(fc):
    """Centre (mean of the ring without the closing vertex) and radius of every circle."""
    out = []
    for f in fc["features"]:
        ring = np.asarray(f["geometry"]["coordinates"][0])[:-1]
        c = ring.mean(0)
        out.append((c, float(np.hypot(*(ring[0] - c)))))
    return np.array([c for c, _ in out]), np.array([r for _, r in out])


def test_frames_of_a_visium_section(visium_folder, tmp_path):
    """hires (x0.5) and lowres (x0.1): coordinates = spot coordinates x the frame's scale factor."""
    a = _cluster(read_section(visium_folder()))
    frames = {f.name: f for f in geojson_frames(a)}
    assert list(frames) == ["fullres", "hires", "lowres"]
    assert frames["hires"].scale == 0.5 and frames["lowres"].scale == 0.1
    h, w = a.uns["spatial"][next(iter(a.uns["spatial"]))]["images"]["hires"].shape[:2]
    assert frames["hires"].image_size == (w, h)
    # only downscaled images are stored: QuPath needs the largest of them
    assert default_geojson_frame(a) == "hires"
    xy = np.asarray(a.obsm["spatial"], dtype=np.float64)
    for name, scale in (("fullres", 1.0), ("hires", 0.5), ("lowres", 0.1)):
        fc = geojson_features(a, frame=name)
        centres, radii = _centres_and_radius(fc)
        np.testing.assert_allclose(centres, xy * scale, atol=0.01)
        np.testing.assert_allclose(radii, spot_diameter(a) * scale / 2, atol=0.01)
        meta = fc["properties"]
        assert meta["frame"] == name and meta["scale"] == scale and meta["units"] == "pixels"
        assert meta["spot_diameter"] == pytest.approx(spot_diameter(a) * scale, abs=1e-3)
        assert meta["image_size"] == (None if name == "fullres" else list(frames[name].image_size))
        assert {f["properties"]["frame"] for f in fc["features"]} == {name}
    # the file written by default is in the default frame and says so
    p = write_geojson(a, tmp_path / "s.geojson")
    fc = json.loads(p.read_text())
    assert fc["properties"]["frame"] == "hires"
    np.testing.assert_allclose(_centres_and_radius(fc)[0], xy * 0.5, atol=0.01)
    with pytest.raises(ConfigError, match="no GeoJSON frame 'tiles'.*fullres, hires, lowres"):
        geojson_features(a, frame="tiles")


def test_default_is_full_resolution_when_that_image_is_known(visium_folder, st_folder, png_writer, tmp_path):
    a = _cluster(read_section(visium_folder()))
    meta = a.uns["spatial"][next(iter(a.uns["spatial"]))]["metadata"]
    hires = a.uns["spatial"][next(iter(a.uns["spatial"]))]["images"]["hires"]
    # the recorded source image is the hires PNG (what the reader saw): not the slide
    assert not source_image_is_fullres(a) and default_geojson_frame(a) == "hires"
    meta["source_image_path"] = str(tmp_path / "missing.tif")  # a slide that is not on this machine
    assert default_geojson_frame(a) == "hires"
    # a file of full-resolution size (2 x the x0.5 hires image): QuPath users open that slide
    slide = png_writer(tmp_path / "slide.png", 2 * hires.shape[0], 2 * hires.shape[1])
    meta["source_image_path"] = str(slide)
    assert source_image_is_fullres(a) and default_geojson_frame(a) == "fullres"
    # a stored image at scale 1 is the full-resolution image (her2st repository, synthetic)
    assert default_geojson_frame(synthetic_section(n_side=4)) == "fullres"
    st = read_section(st_folder(scale=None))
    assert default_geojson_frame(st) == "fullres"
    # legacy ST with a downscaled image (as the bundled A1, x0.144): that image's frame
    st_small = read_section(st_folder("S2", scale=0.5))
    assert default_geojson_frame(st_small) == "hires"
    # no image at all: full resolution
    assert default_geojson_frame(synthetic_section(n_side=4, with_image=False)) == "fullres"
    assert [f.name for f in geojson_frames(synthetic_section(n_side=4, with_image=False))] == ["fullres"]


def test_bundled_a1_default_frame_is_its_image():
    from napari_senca.datasets import her2st_a1

    a = _cluster(her2st_a1())
    fr = geojson_frames(a)[1]
    assert default_geojson_frame(a) == fr.name == "hires" and fr.scale == pytest.approx(0.1437795)
    centres, _ = _centres_and_radius(geojson_features(a))
    img = a.uns["spatial"][next(iter(a.uns["spatial"]))]["images"]["hires"]
    # every circle lies on the image QuPath opens
    assert (centres >= 0).all() and (centres[:, 0] < img.shape[1]).all() and (centres[:, 1] < img.shape[0]).all()


def test_napari_writer_uses_the_default_and_accepts_a_frame(visium_folder, tmp_path):
    a = _cluster(read_section(visium_folder()))
    data, meta, _ = section_layer_data(a)[-1]
    out = write_points_geojson(str(tmp_path / "d.geojson"), data, meta)
    fc = json.loads(open(out[0]).read())
    assert fc["properties"]["frame"] == "hires"
    out = write_points_geojson(str(tmp_path / "l.geojson"), data, meta, frame="lowres")
    fc = json.loads(open(out[0]).read())
    assert fc["properties"]["frame"] == "lowres"
    np.testing.assert_allclose(_centres_and_radius(fc)[0], np.asarray(a.obsm["spatial"]) * 0.1, atol=0.01)
