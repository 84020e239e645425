"""A Visium HD folder (real layout) opens in napari with its lazily read slide, runs, reviews and
exports, in the viewer and with ``napari-senca run`` (issue 10, "Done when")."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

# triton (probed by torch._dynamo) must load before any OpenGL context exists (see test_napari_widgets)
import torch._dynamo  # noqa: F401

from napari_senca import _napari, cli, export
from napari_senca.cli import run as cli_run
from napari_senca.io import read_h5ad
from napari_senca.notes import InputWarning
from napari_senca.review import ReviewState
from napari_senca.section import CLUSTER_KEY, fullres_reference, get_image_levels

SMALL = {"steps_per_epoch": 2, "embed_dim": 16, "hidden_dim": 32, "shared_dim": 8, "patch_size": 32}


@pytest.fixture
def small_cli(monkeypatch):
    """A small model, one thread, PCA instead of UMAP in the overview (fast, as in test_cli)."""
    import torch

    config = cli_run._config  # looked up by the run command in napari_senca.cli.run
    monkeypatch.setattr(cli_run, "_config", lambda args: config(args).replace(**SMALL))
    monkeypatch.setattr(export.layout, "embedding_2d", lambda e, seed=0: (np.asarray(e, float)[:, :2], "PCA"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_reader_layers(visium_hd_folder):
    root = visium_hd_folder()
    assert _napari.get_reader(str(root)) is _napari.read_layers
    with pytest.warns(InputWarning, match="slide.btf: full-resolution H&E found beside the data"):
        layers = _napari.read_layers(str(root))
    (img, ikw, itype), (pts, pkw, ptype) = layers
    assert (itype, ptype) == ("image", "points")
    assert ikw["name"] == "lib1 (16 um bins) H&E" and pkw["name"] == "lib1 (16 um bins) spots"
    # the slide as a multiscale image of lazy levels, in full-resolution pixels like the spots
    assert ikw["multiscale"] and ikw["rgb"] and ikw["scale"] == (1.0, 1.0)
    assert [lv.shape for lv in img] == [(480, 512, 3), (240, 256, 3)]
    assert all(not isinstance(lv, np.ndarray) for lv in img)
    assert pts.shape == (119, 2)
    sq8 = root / "outs" / "binned_outputs" / "square_008um"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        assert _napari.read_layers(str(sq8))[1][1]["name"] == "lib1 (8 um bins) spots"


@pytest.mark.qt
def test_viewer_opens_runs_reviews_and_exports(qtbot, make_napari_viewer, visium_hd_folder, tmp_path, notes):
    from napari_senca._qt import ReviewWidget, RunWidget

    root = visium_hd_folder()
    viewer = make_napari_viewer()
    image, points = viewer.open(str(root), plugin="napari-senca")
    assert image.multiscale and len(image.data) == 2 and points.data.shape == (119, 2)
    run = RunWidget(viewer)
    qtbot.waitUntil(lambda: run.warm_worker is None, timeout=60_000)
    run.epochs.value = 1
    run.n_clusters.value = 2
    run.image_weights.value = "none"
    run.patch_size.value = 32
    run.device.value = "cpu"
    run.overrides = {"steps_per_epoch": 1}
    run.run()
    qtbot.waitUntil(lambda: run.worker is None, timeout=120_000)
    assert not notes["error"], notes["error"]
    adata = points.metadata["adata"]
    assert CLUSTER_KEY in adata.obs and adata.obs[CLUSTER_KEY].nunique() == 2
    ReviewWidget(viewer)
    state = points.metadata["senca_review"]
    state.rename(state.clusters[0], "tumour")  # a review edit, as the widget's rename does
    state.apply_to_layer(points)
    out = tmp_path / "hd.h5ad"
    _napari.write_section_h5ad(str(out), [points.as_layer_data_tuple()])
    _napari.write_points_geojson(str(tmp_path / "hd.geojson"), points.data, points.as_layer_data_tuple()[1])
    back = read_h5ad(out)
    assert ReviewState(back).name_of(state.clusters[0]) == "tumour"
    assert fullres_reference(back) == fullres_reference(adata)
    # the Load widget's path names the bins too, and shows the slide as a multiscale layer
    from napari_senca._qt._common import add_section

    again = add_section(viewer, back)
    assert again.name.startswith("lib1 (16 um bins) spots")
    assert viewer.layers[viewer.layers.index(again) - 1].multiscale
    assert set(back.uns["spatial"][next(iter(back.uns["spatial"]))]["images"]) == {"hires", "lowres"}


def test_cli_info_names_bins_and_slide(visium_hd_folder, capsys):
    root = visium_hd_folder()
    assert cli.main(["info", str(root), "--bin-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "format:        visium_hd" in out and "spots:         479" in out
    assert "bins:          Visium HD 8 um bins (available: 8, 16 um)" in out
    assert "slide.btf: 512 x 480 px, 2 level(s), read lazily" in out


@pytest.mark.parametrize("with_image", [False, True], ids=["rna_only", "with_slide"])
def test_cli_run_end_to_end(visium_hd_folder, tmp_path, capsys, small_cli, with_image):
    root = visium_hd_folder()
    out = tmp_path / "res"
    args = ["run", str(root), "--out", str(out), "--epochs", "1", "--seed", "0", "--image-weights", "none"]
    assert cli.main(args + ([] if with_image else ["--no-image"])) == 0
    err = capsys.readouterr().err
    assert "119 spots, 30 genes, image " + ("yes" if with_image else "no (RNA-only)") in err
    assert "bins: Visium HD 16 um bins (available: 8, 16 um)" in err
    assert "excluded: 1 spot" in err
    a = read_h5ad(out / "annotated.h5ad")
    assert a.n_obs == 119 and a.obs[CLUSTER_KEY].nunique() == 2  # two labelled regions
    assert a.uns["senca_input"]["bin_size_um"] == 16
    (lv, f), *_ = get_image_levels(a)  # the slide re-opened lazily from the reference
    assert lv.shape == (480, 512, 3) and f == 1.0
    df = pd.read_csv(out / "clusters.csv")
    assert len(df) == 119 and df["spot_id"].str.startswith("s_016um_").all()
    assert (out / "overview.png").stat().st_size > 0
    # a second run with other bins is a different request (not "up to date")
    out8 = tmp_path / "res8"
    assert cli.main(["run", str(root), "--out", str(out8), "--bin-size", "8", "--epochs", "1", "--no-image"]) == 0
    assert read_h5ad(out8 / "annotated.h5ad").n_obs == 479
