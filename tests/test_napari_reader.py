"""The Qt-free npe2 contributions: reader, writers and sample data (no viewer)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_senca import _napari
from napari_senca.errors import DataError
from napari_senca.review import REGION_KEY, REVIEW_KEY, ReviewState, points_layer_data
from napari_senca.section import CLUSTER_KEY, spot_diameter
from test_review import annotated_section  # tests/ is on sys.path


def _check_layers(layers, n_spots, with_image=True):
    kinds = [t[2] for t in layers]
    assert kinds == (["image", "points"] if with_image else ["points"])
    data, kw, _ = layers[-1]
    assert data.shape == (n_spots, 2)
    feats = kw["features"]
    assert {"spot_id", "array_row", "array_col", "total_counts"} <= set(feats.columns)
    adata = kw["metadata"]["adata"]
    assert adata.n_obs == n_spots
    np.testing.assert_allclose(data[:, ::-1], adata.obsm["spatial"])
    assert kw["size"] == pytest.approx(spot_diameter(adata))
    if with_image:
        img, ikw, _ = layers[0]
        assert img.ndim == 3 and ikw["rgb"]
        scalef = ikw["metadata"]["senca_scalef"]
        assert ikw["scale"] == pytest.approx((1 / scalef, 1 / scalef))
    return adata


# --------------------------------------------------------------------------- reader


def test_reader_legacy_st(st_folder):
    folder = st_folder()
    reader = _napari.get_reader(str(folder))
    assert reader is _napari.read_layers
    adata = _check_layers(reader(str(folder)), 12)
    assert "label" in adata.obs
    # the counts file itself is accepted too
    assert _napari.get_reader(str(folder / "counts.tsv.gz")) is not None


def test_reader_space_ranger(visium_folder):
    root = visium_folder()
    reader = _napari.get_reader(str(root / "outs"))
    assert reader is not None
    _check_layers(reader(str(root / "outs")), 12)


def test_reader_h5ad(tmp_path):
    adata = annotated_section()
    st = ReviewState(adata)
    st.rename("0", "tumour")
    path = tmp_path / "s.h5ad"
    adata.write_h5ad(path)
    reader = _napari.get_reader(str(path))
    assert reader is not None
    layers = reader([str(path)])
    back = _check_layers(layers, adata.n_obs)
    kw = layers[1][1]
    assert kw["face_color"] == CLUSTER_KEY
    assert "tumour" in kw["features"][REGION_KEY].tolist()
    assert kw["metadata"][REVIEW_KEY].name_of("0") == "tumour"
    assert back.uns[REVIEW_KEY]["names"][0] == "tumour"


def test_reader_declines_unknown(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    assert _napari.get_reader(str(tmp_path / "notes.txt")) is None
    assert _napari.get_reader(str(tmp_path / "empty")) is None
    assert _napari.get_reader(str(tmp_path / "missing.h5ad")) is None
    assert _napari.get_reader([]) is None
    assert _napari.get_reader([str(tmp_path / "notes.txt")]) is None


def test_reader_broken_section_raises(st_folder):
    folder = st_folder()
    (folder / "spots.tsv").write_text("x\ty\n1\t1\n")  # recognised but broken
    reader = _napari.get_reader(str(folder))
    assert reader is not None
    with pytest.raises(DataError, match=str(folder.name)):
        reader(str(folder))


# --------------------------------------------------------------------------- sample data


def test_sample_synthetic():
    _check_layers(_napari.sample_synthetic(), 256)


def test_sample_her2st_a1():
    layers = _napari.sample_her2st_a1()
    adata = _check_layers(layers, 346)
    assert layers[0][1]["name"] == "HER2ST A1 H&E"
    # the spots lie on the tissue of the downscaled H&E
    img, kw, _ = layers[0]
    rc = layers[1][0] / np.asarray(kw["scale"])
    assert (rc.min(0) >= 0).all() and (rc[:, 0] < img.shape[0]).all() and (rc[:, 1] < img.shape[1]).all()
    assert adata.obs["label"].notna().sum() > 300


# --------------------------------------------------------------------------- writers


@pytest.fixture
def layer_tuple():
    adata = annotated_section()
    st = ReviewState(adata)
    st.rename("1", "stroma")
    data, kw, _ = points_layer_data(adata)
    return data, kw, adata


def test_write_csv(tmp_path, layer_tuple):
    data, kw, adata = layer_tuple
    out = _napari.write_points_csv(str(tmp_path / "c.csv"), data, kw)
    df = pd.read_csv(out[0])
    assert list(df.columns[:7]) == ["spot_id", "x", "y", "pixel_x", "pixel_y", "cluster", "cluster_name"]
    assert len(df) == adata.n_obs
    assert set(df.loc[df["cluster"] == 1, "cluster_name"]) == {"stroma"}
    np.testing.assert_allclose(df[["pixel_x", "pixel_y"]].to_numpy(), adata.obsm["spatial"])


def test_write_geojson(tmp_path, layer_tuple):
    data, kw, adata = layer_tuple
    out = _napari.write_points_geojson(str(tmp_path / "c.geojson"), data, kw)
    fc = json.loads((tmp_path / "c.geojson").read_text())
    assert out == [str(tmp_path / "c.geojson")]
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == adata.n_obs
    f0 = fc["features"][0]
    ring = np.asarray(f0["geometry"]["coordinates"][0])
    centre = adata.obsm["spatial"][0]
    radius = np.linalg.norm(ring[:-1] - centre, axis=1)
    np.testing.assert_allclose(radius, spot_diameter(adata) / 2, rtol=1e-3)
    names = {f["properties"]["cluster"]: f["properties"]["classification"]["name"] for f in fc["features"]}
    assert names["1"] == "stroma"


def test_write_h5ad_round_trip(tmp_path, layer_tuple):
    from napari_senca.io import read_section

    data, kw, adata = layer_tuple
    path = tmp_path / "s.h5ad"
    out = _napari.write_section_h5ad(str(path), [(np.zeros((4, 4, 3), np.uint8), {}, "image"), (data, kw, "points")])
    assert out == [str(path)]
    back = read_section(path)
    assert ReviewState(back).name_of("1") == "stroma"
    assert (back.obs[CLUSTER_KEY].astype(str) == adata.obs[CLUSTER_KEY].astype(str)).all()
    with pytest.raises(DataError, match="no section to save"):
        _napari.write_section_h5ad(str(tmp_path / "x.h5ad"), [(data, {"metadata": {}}, "points")])


def test_writers_refuse_edited_points(tmp_path, layer_tuple):
    data, kw, _ = layer_tuple
    with pytest.raises(DataError, match="added or deleted"):
        _napari.write_points_csv(str(tmp_path / "c.csv"), data[:-2], kw)
    assert not (tmp_path / "c.csv").exists()


def test_writers_accept_a_plain_points_layer(tmp_path):
    data = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    meta = {
        "features": pd.DataFrame({"cluster": ["a", "b", "a"], "label": ["t", None, "s"]}),
        "size": np.array([8.0, 8.0, 8.0]),
        "metadata": {},
    }
    _napari.write_points_csv(str(tmp_path / "p.csv"), data, meta)
    df = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(df[["pixel_x", "pixel_y"]].to_numpy(), data[:, ::-1])
    assert df["cluster"].tolist() == ["a", "b", "a"]
    _napari.write_points_geojson(str(tmp_path / "p.geojson"), data, meta)
    fc = json.loads((tmp_path / "p.geojson").read_text())
    ring = np.asarray(fc["features"][0]["geometry"]["coordinates"][0])
    np.testing.assert_allclose(np.linalg.norm(ring - [20.0, 10.0], axis=1), 4.0, rtol=1e-3)
    with pytest.raises(DataError, match="no cluster column"):
        _napari.write_points_csv(str(tmp_path / "q.csv"), data, {"metadata": {}})


# --------------------------------------------------------------------------- not sections, broken sections


def test_reader_declines_ordinary_folder_quickly(tmp_path):
    import time

    d = tmp_path / "photos"
    d.mkdir()
    for i in range(200):
        (d / f"img_{i}.tsv").write_text("a\tb\n")
    (d / "data.h5").write_bytes(b"\x89HDF not a 10x file")
    (d / "table.tsv.gz").write_bytes(b"")
    (d / "sub").mkdir()
    t0 = time.perf_counter()
    assert _napari.get_reader(str(d)) is None
    assert _napari.get_reader(str(d / "data.h5")) is None
    assert _napari.get_reader(str(d / "img_0.tsv")) is None
    assert _napari.get_reader([str(d), str(d / "sub")]) is None
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize(
    "break_it",
    [
        lambda f: (f / "counts.tsv.gz").unlink(),  # only spots.tsv left: looks like a section
        lambda f: (f / "spots.tsv").write_text("x\ty\n1\t1\n"),
        lambda f: (f / "counts.tsv.gz").write_bytes(b"\x1f\x8b garbage"),
    ],
)
def test_reader_broken_section_one_line(st_folder, break_it):
    import traceback

    from napari_senca.errors import SencaError

    folder = st_folder()
    break_it(folder)
    reader = _napari.get_reader(str(folder))
    assert reader is not None
    with pytest.raises(SencaError) as e:
        reader(str(folder))
    msg = str(e.value)
    assert "\n" not in msg and len(msg) <= 400 and folder.name in msg
    tb = traceback.format_exception(e.value)
    assert e.value.__cause__ is None and e.value.__context__ is None
    assert len("".join(tb).splitlines()) <= 8  # one frame of ours, then the message


def test_reader_mismatched_ids_short(st_folder):
    from napari_senca.errors import SencaError

    folder = st_folder(nx=20, ny=18, labels=False, image=False)
    spots = pd.read_csv(folder / "spots.tsv", sep="\t")
    spots["y"] += 50
    spots.to_csv(folder / "spots.tsv", sep="\t", index=False)
    with pytest.raises(SencaError) as e:
        _napari.read_layers(str(folder))
    msg = str(e.value)
    assert "360 ids, e.g." in msg and len(msg) <= 400


def test_reader_warnings_reach_napari(visium_folder):
    from napari_senca.notes import InputWarning

    root = visium_folder()  # 'GENE1' twice
    for _ in range(2):  # shown each time the section is opened, not once per session
        with pytest.warns(InputWarning, match="duplicated gene names"):
            layers = _napari.read_layers(str(root))
    adata = layers[-1][1]["metadata"]["adata"]
    assert any("GENE1" in w for w in adata.uns["senca_input"]["warnings"])
