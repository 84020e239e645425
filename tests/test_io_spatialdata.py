"""SpatialData ``.zarr`` stores (``napari-senca[spatialdata]``): reader, writer, npe2 hooks and the CLI."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_senca.errors import ConfigError, DataError
from napari_senca.io import detect_format, read_section
from napari_senca.io import spatialdata_store as sds
from napari_senca.io.spatialdata_store import image as sds_image
from napari_senca.section import get_image, spot_diameter

if sys.version_info < (3, 11):  # spatialdata >= 0.7 needs Python 3.11; the testing extra installs it there
    pytest.skip("spatialdata needs Python 3.11", allow_module_level=True)
import anndata as ad
import spatialdata as sd  # a failed install fails here, it does not skip
from spatialdata.models import Image2DModel, Labels2DModel, ShapesModel, TableModel
from spatialdata.transformations import Identity, Scale, Sequence, Translation


def _annotated(section):
    a = section.copy()
    a.obs["senca_cluster"] = pd.Categorical([str(i % 3) for i in range(a.n_obs)])
    a.obsm["X_senca"] = np.random.default_rng(0).normal(size=(a.n_obs, 4)).astype(np.float32)
    a.uns["senca"] = {"n_clusters": 3, "method": "kmeans"}
    return a


# --------------------------------------------------------------------------- round trip


def test_round_trip(section, tmp_path):
    a = _annotated(section)
    store = sds.write_spatialdata(a, tmp_path / "s.zarr")
    assert detect_format(store) == "spatialdata"
    b = read_section(store)
    assert list(b.obs_names) == list(a.obs_names) and list(b.var_names) == list(a.var_names)
    assert abs(b.X - sp.csr_matrix(a.X)).sum() == 0
    np.testing.assert_allclose(b.obsm["spatial"], a.obsm["spatial"])
    np.testing.assert_allclose(b.obsm["X_senca"], a.obsm["X_senca"])
    assert b.obs["senca_cluster"].dtype == "category"
    assert b.obs["senca_cluster"].astype(str).tolist() == a.obs["senca_cluster"].astype(str).tolist()
    assert b.obs["label"].astype(str).tolist() == a.obs["label"].astype(str).tolist()
    img_a, sf_a = get_image(a)
    img_b, sf_b = get_image(b)
    np.testing.assert_array_equal(img_b, img_a)
    assert sf_b == pytest.approx(sf_a)
    assert spot_diameter(b) == pytest.approx(spot_diameter(a))
    assert b.uns["senca"]["n_clusters"] == 3
    assert b.uns["senca_input"]["format"] == "spatialdata"
    assert b.uns["senca_input"]["spatialdata"]["image"].endswith("_hires_image")
    # what a napari-spatialdata user sees: circles of the spot radius, the table linked to them
    s = sd.read_zarr(store)
    (shapes_name,) = s.shapes.keys()
    assert s.tables["table"].uns["spatialdata_attrs"]["region"] == shapes_name
    assert s.shapes[shapes_name]["radius"].iloc[0] == pytest.approx(spot_diameter(a) / 2)


@pytest.mark.skipif(not hasattr(__import__("anndata").settings, "allow_write_nullable_strings"),
                    reason="anndata < 0.11 writes no pandas string arrays")
def test_text_as_pandas_string_arrays_is_written(section, tmp_path):
    """pandas >= 3 keeps text as string arrays, which anndata writes only when allowed."""
    a = _annotated(section)
    a.obs["note"] = pd.array([f"spot {i}" for i in range(a.n_obs)], dtype="string")
    b = read_section(sds.write_spatialdata(a, tmp_path / "s.zarr"))
    assert b.obs["note"].astype(str).tolist() == [f"spot {i}" for i in range(a.n_obs)]


def test_write_refuses_to_overwrite(section, tmp_path):
    store = sds.write_spatialdata(section, tmp_path / "s.zarr")
    with pytest.raises(FileExistsError, match="already exists"):
        sds.write_spatialdata(section, store)
    sds.write_spatialdata(_annotated(section), store, overwrite=True)  # a store: replaced when asked
    assert "senca_cluster" in read_section(store).obs
    mine = tmp_path / "mine.zarr"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not written by napari-senca"):
        sds.write_spatialdata(section, mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.zarr", "s.zarr"]  # no temporary folder left


def test_never_replaces_another_programs_store_or_the_input(section, tmp_path):
    theirs = tmp_path / "theirs.zarr"  # e.g. spatialdata-io's store with several tables and images
    rng = np.random.default_rng(0)
    sd.SpatialData(tables={"a": _table(4, "cells", rng), "b": _table(4, "cells", rng)},
                   shapes={"cells": _circles()}).write(theirs)  # fmt: skip
    before = sorted(str(q.relative_to(theirs)) for q in theirs.rglob("*"))
    with pytest.raises(FileExistsError, match="theirs.zarr exists and was not written by napari-senca"):
        sds.write_spatialdata(section, theirs, overwrite=True)
    assert sorted(str(q.relative_to(theirs)) for q in theirs.rglob("*")) == before
    ours = sds.write_spatialdata(section, tmp_path / "ours.zarr")
    back = read_section(ours)  # a section read from our own store: saving onto its input is refused
    with pytest.raises(FileExistsError, match="the section's own input"):
        sds.write_spatialdata(_annotated(back), ours, overwrite=True)
    sds.write_spatialdata(_annotated(back), tmp_path / "copy.zarr")
    assert "senca_cluster" in read_section(tmp_path / "copy.zarr").obs


# --------------------------------------------------------------------------- stores made with the spatialdata API


def _table(n: int, region: str, rng: np.random.Generator) -> ad.AnnData:
    t = ad.AnnData(X=sp.csr_matrix(rng.poisson(3.0, size=(n, 6)).astype(np.float32)))
    t.obs_names = [f"cell{i}" for i in range(n)]
    t.var_names = [f"g{j}" for j in range(6)]
    t.obs["region"] = pd.Categorical([region] * n)
    t.obs["cell_id"] = np.arange(n) + 100
    t.obs["label"] = pd.Categorical(["a", "b"] * (n // 2))
    return TableModel.parse(t, region=region, region_key="region", instance_key="cell_id")


def _marked_image(centres_px: np.ndarray, h: int, w: int, dtype=np.uint8) -> np.ndarray:
    """A dark (c, y, x) image with a white 32 x 32 px square on each centre (image pixels; uint16: 12-bit)."""
    top = 255 if dtype == np.uint8 else 4095
    img = np.full((3, h, w), 20 * top // 255, dtype=dtype)
    for x, y in np.round(centres_px).astype(int):
        img[:, y - 16 : y + 16, x - 16 : x + 16] = top
    return img


def _api_store(tmp_path, image_to_global, px_per_unit, offset=(0.0, 0.0), dtype=np.uint8):
    """Circles in 2-unit shapes coordinates, a 3-level image placed by ``image_to_global``."""
    rng = np.random.default_rng(1)
    xy = np.stack([rng.uniform(30, 250, 20), rng.uniform(30, 190, 20)], axis=1)  # shapes units
    glob = 2.0 * xy  # shapes -> global: Scale(2)
    centres_px = (glob - np.asarray(offset)) * px_per_unit  # global -> image pixels
    image = Image2DModel.parse(
        _marked_image(centres_px, 1600, 2400, dtype), dims=("c", "y", "x"), scale_factors=[2, 2],
        transformations={"global": image_to_global}, chunks=(3, 512, 512),
    )  # fmt: skip
    circles = ShapesModel.parse(xy, geometry=0, radius=np.full(20, 5.0), index=np.arange(20) + 100,
                                transformations={"global": Scale([2.0, 2.0], axes=("x", "y"))})  # fmt: skip
    sdata = sd.SpatialData(images={"he": image}, shapes={"cells": circles}, tables={"table": _table(20, "cells", rng)})
    sdata.write(tmp_path / "api.zarr")
    return tmp_path / "api.zarr", glob


def _assert_on_marks(a) -> None:
    img, sf = get_image(a)
    px = np.round(np.asarray(a.obsm["spatial"]) * sf).astype(int)
    assert (img[px[:, 1], px[:, 0]].min(axis=1) > 200).all()  # every spot centre on its white square
    assert img[2, 2].max() < 60  # and the background is dark


def test_store_from_the_api_lands_on_the_image(tmp_path, monkeypatch):
    # patched in spatialdata_store.image, where the image reader looks it up
    monkeypatch.setattr(sds_image, "HIRES_SIDE", 500)  # levels of 2400, 1200, 600 px: 600 is the nearest
    store, glob = _api_store(tmp_path, Scale([0.5, 0.5], axes=("y", "x")), px_per_unit=2.0)
    a = read_section(store)
    assert a.n_obs == 20 and a.n_vars == 6
    np.testing.assert_allclose(a.obsm["spatial"], glob)  # the global frame (a plain scale from the image)
    img, sf = get_image(a)
    assert img.shape[:2] == (333, 500)  # level 2 (400 x 600), downscaled to 500 px
    assert sf == pytest.approx(2.0 * 600 / 2400 * 500 / 600)
    assert spot_diameter(a) == pytest.approx(2 * 5.0 * 2.0)  # radius 5 shapes units x Scale(2)
    assert a.obs["label"].tolist() == ["a", "b"] * 10
    assert "cell_id" not in a.obs and "region" not in a.obs
    _assert_on_marks(a)


def test_the_finest_level_is_referenced_and_read_lazily(tmp_path, monkeypatch):
    """A store finer than hires: patches come from its own pyramid, never copied into the section."""
    from napari_senca.io.h5ad import read_h5ad, write_h5ad
    from napari_senca.io.slide import reference_problem
    from napari_senca.section import fullres_reference, get_image_levels

    monkeypatch.setattr(sds_image, "HIRES_SIDE", 500)
    store, glob = _api_store(tmp_path, Scale([0.5, 0.5], axes=("y", "x")), px_per_unit=2.0)
    a = read_section(store)
    ref = fullres_reference(a)
    assert ref is not None and ref["kind"] == "spatialdata" and ref["element"] == "he"
    assert (ref["width"], ref["height"], ref["scalef"]) == (2400, 1600, 2.0)
    levels = get_image_levels(a)
    assert hasattr(levels[0][0], "dask") and levels[0][0].shape == (1600, 2400, 3) and levels[0][1] == 2.0
    px = np.round(np.asarray(a.obsm["spatial"]) * levels[0][1]).astype(int)  # spot centres at full resolution
    assert (np.asarray(levels[0][0].vindex[px[:, 1], px[:, 0]]).min(axis=1) > 200).all()
    write_h5ad(a, tmp_path / "s.h5ad")  # the .h5ad keeps the reference, not the pixels
    b = read_h5ad(tmp_path / "s.h5ad")
    assert fullres_reference(b) == ref and get_image_levels(b)[0][0].shape == (1600, 2400, 3)
    store.rename(tmp_path / "moved.zarr")
    assert "not there" in reference_problem(ref)
    assert get_image_levels(b)[0][0].shape[:2] == (333, 500)  # moved: the stored hires image


def test_images_other_than_uint8_are_not_referenced(tmp_path, monkeypatch):
    """hires scales a uint16 image by its own range; a lazily read level would not: no reference, hires only."""
    from napari_senca.section import fullres_reference, get_image_levels

    monkeypatch.setattr(sds_image, "HIRES_SIDE", 500)
    store, _ = _api_store(tmp_path, Scale([0.5, 0.5], axes=("y", "x")), px_per_unit=2.0, dtype=np.uint16)
    a = read_section(store)
    assert fullres_reference(a) is None and len(get_image_levels(a)) == 1
    _assert_on_marks(a)


def test_no_reference_when_hires_is_the_finest_level(tmp_path):
    from napari_senca.section import fullres_reference

    store, _ = _api_store(tmp_path, Scale([0.5, 0.5], axes=("y", "x")), px_per_unit=2.0)
    a = read_section(store)  # 2,400 px shown as 2,000 px hires: nothing finer worth a reference
    assert fullres_reference(a) is None and get_image(a)[0].shape[:2] == (1333, 2000)


def test_translated_image_puts_spots_in_its_pixels(tmp_path):
    to_global = Sequence([Scale([0.5, 0.5], axes=("y", "x")), Translation([40.0, 10.0], axes=("x", "y"))])
    store, glob = _api_store(tmp_path, to_global, px_per_unit=2.0, offset=(40.0, 10.0))
    with pytest.warns(UserWarning, match="not a plain scale"):
        a = read_section(store)
    np.testing.assert_allclose(a.obsm["spatial"], (glob - [40.0, 10.0]) * 2.0)  # image pixels
    assert spot_diameter(a) == pytest.approx(2 * 5.0 * 2.0 * 2.0)
    _assert_on_marks(a)


def test_coordinate_system_shared_with_the_image_and_non_rgb_images(tmp_path):
    rng = np.random.default_rng(4)
    xy = np.stack([rng.uniform(40, 200, 8), rng.uniform(40, 150, 8)], axis=1)
    circles = ShapesModel.parse(xy, geometry=0, radius=np.full(8, 3.0), index=np.arange(8) + 100,
                                transformations={"global": Identity(), "aligned": Scale([0.5, 0.5], axes=("x", "y"))})
    he = Image2DModel.parse(_marked_image(xy * 0.5 * 4.0, 400, 600), dims=("c", "y", "x"),
                            transformations={"aligned": Scale([0.25, 0.25], axes=("y", "x"))})
    fluo = Image2DModel.parse(np.zeros((5, 900, 900), dtype=np.uint16), dims=("c", "y", "x"),
                              transformations={"global": Identity()})  # fmt: skip
    sdata = sd.SpatialData(images={"he": he, "if": fluo}, shapes={"cells": circles},
                           tables={"table": _table(8, "cells", rng)})  # fmt: skip
    sdata.write(tmp_path / "x.zarr")
    a = read_section(tmp_path / "x.zarr")  # only the H&E shares a system ('aligned') with the spots
    assert a.uns["senca_input"]["spatialdata"] == {"table": "table", "region": "cells", "image": "he",
                                                   "coordinate_system": "aligned"}  # fmt: skip
    np.testing.assert_allclose(a.obsm["spatial"], xy * 0.5)
    _assert_on_marks(a)
    with pytest.warns(UserWarning, match="image 'if' has 5 channels, not an RGB H&E"):
        b = read_section(tmp_path / "x.zarr", image="if")
    assert get_image(b) is None and b.uns["senca_input"]["spatialdata"]["coordinate_system"] == "global"
    with pytest.raises(DataError, match=r"no image 'dapi' \(images: he, if\)"):
        read_section(tmp_path / "x.zarr", image="dapi")


def test_squares_and_points(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box
    from spatialdata.models import PointsModel

    rng = np.random.default_rng(3)
    squares = gpd.GeoDataFrame(geometry=[box(10 * i, 0, 10 * i + 8, 8) for i in range(4)], index=np.arange(4) + 100)
    shapes = ShapesModel.parse(squares, transformations={"global": Identity()})
    sd.SpatialData(shapes={"bins": shapes}, tables={"table": _table(4, "bins", rng)}).write(tmp_path / "sq.zarr")
    a = read_section(tmp_path / "sq.zarr")
    np.testing.assert_allclose(a.obsm["spatial"], [[10 * i + 4, 4] for i in range(4)])  # centroids
    assert spot_diameter(a) == pytest.approx(2 * np.sqrt(64 / np.pi))  # a circle of the same area
    assert get_image(a) is None  # no image in the store: none in the section
    pts = PointsModel.parse(pd.DataFrame({"x": [1.0, 5.0, 9.0, 13.0], "y": [2.0, 2.0, 6.0, 6.0]}, index=np.arange(4) + 100))
    sd.SpatialData(points={"cells": pts}, tables={"table": _table(4, "cells", rng)}).write(tmp_path / "pt.zarr")
    b = read_section(tmp_path / "pt.zarr")
    np.testing.assert_allclose(b.obsm["spatial"], [[1, 2], [5, 2], [9, 6], [13, 6]])


# --------------------------------------------------------------------------- errors


def _circles(n: int = 4):
    return ShapesModel.parse(np.arange(2 * n, dtype=float).reshape(n, 2) + 10, geometry=0, radius=np.ones(n),
                             index=np.arange(n) + 100, transformations={"global": Identity()})  # fmt: skip


def test_no_table(tmp_path):
    sd.SpatialData(shapes={"cells": _circles()}).write(tmp_path / "x.zarr")
    with pytest.raises(DataError, match=r"x\.zarr: the store has no table"):
        sds.read_spatialdata(tmp_path / "x.zarr")


def test_several_tables_need_a_choice(tmp_path):
    rng = np.random.default_rng(0)
    tables = {"rna": _table(4, "cells", rng), "protein": _table(4, "cells", rng)}
    sd.SpatialData(shapes={"cells": _circles()}, tables=tables).write(tmp_path / "x.zarr")
    with pytest.raises(DataError, match=r"2 tables \((rna, protein|protein, rna)\): choose one"):
        read_section(tmp_path / "x.zarr")
    assert read_section(tmp_path / "x.zarr", section="rna").n_obs == 4  # --section / table= picks one
    with pytest.raises(DataError, match="no table 'dna'"):
        sds.read_spatialdata(tmp_path / "x.zarr", table="dna")


def test_table_annotating_labels(tmp_path):
    labels = Labels2DModel.parse(np.zeros((20, 20), dtype=np.int32), dims=("y", "x"))
    tab = _table(4, "nuclei", np.random.default_rng(0))
    sd.SpatialData(labels={"nuclei": labels}, tables={"table": tab}).write(tmp_path / "x.zarr")
    with pytest.raises(DataError, match=r"tables/table: the table annotates labels 'nuclei'.*shapes or points"):
        read_section(tmp_path / "x.zarr")


def test_instances_without_spots(tmp_path):
    tab = _table(6, "cells", np.random.default_rng(0))  # ids 100..105, circles 100..103
    sd.SpatialData(shapes={"cells": _circles()}, tables={"table": tab}).write(tmp_path / "x.zarr")
    with pytest.raises(DataError, match=r"no instance in 'cells' for 2 table rows: '104', '105' \(of 6\)"):
        read_section(tmp_path / "x.zarr")


def test_missing_spatialdata_is_one_line(section, tmp_path, monkeypatch):
    store = sds.write_spatialdata(section, tmp_path / "s.zarr")
    monkeypatch.setitem(sys.modules, "spatialdata", None)  # import spatialdata -> ImportError
    with pytest.raises(ConfigError, match=r'pip install "napari-senca\[spatialdata\]"') as exc:
        read_section(store)
    assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------- npe2 reader and the CLI


def test_npe2_reader(section, tmp_path, monkeypatch):
    import zarr

    from napari_senca._napari import get_reader, read_layers

    plain = zarr.open_group(tmp_path / "plain.zarr", mode="w")
    plain.create_array("a", shape=(4, 4), dtype="f4")
    assert detect_format(tmp_path / "plain.zarr") is None
    assert get_reader(str(tmp_path / "plain.zarr")) is None  # not a SpatialData store
    ome = tmp_path / "image.ome.zarr"  # an OME-Zarr image with labels: napari-ome-zarr's, not ours
    for sub in ("0", "labels"):
        (ome / sub).mkdir(parents=True)
    (ome / ".zgroup").write_text('{"zarr_format": 2}')
    assert detect_format(ome) is None and get_reader(str(ome)) is None
    store = sds.write_spatialdata(_annotated(section), tmp_path / "s.zarr")
    assert get_reader(str(store)) is read_layers
    kinds = [layer_type for _, _, layer_type in read_layers(str(store))]
    assert kinds == ["image", "points"]
    monkeypatch.setattr(sds, "spatialdata_available", lambda: False)
    assert get_reader(str(store)) is None  # another plugin (napari-spatialdata) may open it


def test_manifest_reads_and_writes_zarr():
    from pathlib import Path

    from npe2 import PluginManifest

    mf = PluginManifest.from_file(Path(__file__).resolve().parents[1] / "src" / "napari_senca" / "napari.yaml")
    ids = [c.id for c in mf.contributions.commands]
    assert len(ids) == len(set(ids))  # napari refuses a command registered twice
    assert "*.zarr" in mf.contributions.readers[0].filename_patterns
    (writer,) = [w for w in mf.contributions.writers if ".zarr" in w.filename_extensions]
    assert writer.command == "napari-senca.write_section_spatialdata"


def test_cli_run_writes_annotated_zarr(tmp_path, capsys, monkeypatch, fake_pipeline):
    from napari_senca import cli
    from napari_senca.cli import main
    from napari_senca.datasets import synthetic_section
    from napari_senca.outputs import MARKER, read_marker

    store = sds.write_spatialdata(synthetic_section(n_side=6, n_genes=40, seed=2), tmp_path / "in.zarr")
    out = tmp_path / "res"
    args = ["run", str(store), "--out", str(out), "--spatialdata"]
    assert main(args) == 0
    assert "annotated.zarr" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted([*cli.OUTPUT_FILES, "annotated.zarr", MARKER])
    assert "annotated.zarr" in read_marker(out)["files"]
    b = read_section(out / "annotated.zarr")
    assert b.n_obs == 36 and b.obs["senca_cluster"].nunique() == 3
    assert get_image(b) is not None and "X_senca" in b.obsm
    # the store is part of the output it may replace; --section / --image name its table and image
    assert main([*args, "--overwrite", "--section", "table", "--image", "synthetic_hires_image"]) == 0
    assert "source_image_path" not in read_section(out / "annotated.zarr").uns["spatial"]["synthetic"]["metadata"]
    monkeypatch.setattr(sds, "spatialdata_available", lambda: False)
    assert main([*args[:3], str(tmp_path / "r2"), *args[4:]]) == 2
    assert 'pip install "napari-senca[spatialdata]"' in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_manifest_image_of_a_store_is_an_element_name(section, tmp_path):
    from napari_senca.batch import read_manifest
    from napari_senca.config import SencaConfig
    from napari_senca.runner import request_of

    sds.write_spatialdata(section, tmp_path / "s.zarr")
    (tmp_path / "he.png").write_bytes(b"")
    (tmp_path / "m.csv").write_text("path,image\ns.zarr,synthetic_hires_image\n")
    (job,) = read_manifest(tmp_path / "m.csv")
    assert job.image == "synthetic_hires_image"  # not turned into a path beside the manifest
    assert request_of(SencaConfig(), image=job.image)["image"] == "synthetic_hires_image"
    assert request_of(SencaConfig(), image=tmp_path / "he.png")["image"] == str((tmp_path / "he.png").resolve())
