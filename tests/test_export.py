"""Atomic writers, cluster tables, GeoJSON, overview figure."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from napari_senca import export
from napari_senca.datasets import synthetic_section
from napari_senca.errors import ConfigError
from napari_senca.export import (
    atomic_write,
    clusters_table,
    geojson_features,
    write_clusters_csv,
    write_geojson,
    write_markers_csv,
    write_overview_png,
)
from napari_senca.section import spot_diameter


def _clustered(n_side: int = 5, with_image: bool = True):
    a = synthetic_section(n_side=n_side, n_genes=20, n_regions=2, with_image=with_image)
    a.obs["senca_cluster"] = pd.Categorical(
        [str(i % 3) for i in range(a.n_obs)], categories=["0", "1", "2"]
    )
    a.obsm["X_senca"] = np.random.default_rng(0).normal(size=(a.n_obs, 6)).astype(np.float32)
    return a


def test_atomic_write_success_and_refusal(tmp_path):
    p = tmp_path / "out.txt"
    with atomic_write(p) as fh:
        fh.write("hello")
        assert not p.exists()  # only visible once the block ends
    assert p.read_text() == "hello"
    with pytest.raises(FileExistsError, match="out.txt"):
        with atomic_write(p):
            pass
    with atomic_write(p, overwrite=True, mode="wb") as fh:
        fh.write(b"bye")
    assert p.read_bytes() == b"bye"
    assert [f.name for f in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_failure_leaves_nothing(tmp_path):
    p = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_write(p) as fh:
            fh.write("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p, overwrite=True) as fh:
            fh.write("partial")
            raise RuntimeError("boom")
    assert p.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", mode="a"):
            pass


def test_clusters_table_and_csv(tmp_path):
    a = _clustered()
    df = clusters_table(a)
    assert list(df.columns) == ["spot_id", "x", "y", "pixel_x", "pixel_y", "cluster", "label"]
    assert df["x"].dtype.kind == "i"
    np.testing.assert_allclose(df[["pixel_x", "pixel_y"]].to_numpy(), a.obsm["spatial"])
    assert (df["x"].to_numpy() == a.obs["array_col"].to_numpy()).all()
    p = write_clusters_csv(a, tmp_path / "c.csv")
    back = pd.read_csv(p, dtype={"cluster": str})
    assert back["spot_id"].tolist() == list(a.obs_names) and back["cluster"].tolist() == df["cluster"].tolist()
    with pytest.raises(FileExistsError):
        write_clusters_csv(a, p)
    with pytest.raises(ConfigError, match="no clustering 'nope'"):
        clusters_table(a, key="nope")


def test_geojson(tmp_path):
    a = _clustered()
    a.uns["senca"] = {"cluster_names": {"0": "tumour", "2": "stroma"}}
    a.uns["senca_cluster_colors"] = ["#ff0000", "#00ff00", "#0000ff"]
    p = write_geojson(a, tmp_path / "s.geojson")
    fc = json.loads(p.read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == a.n_obs
    f0 = fc["features"][0]
    ring = f0["geometry"]["coordinates"][0]
    assert f0["geometry"]["type"] == "Polygon" and len(ring) == 33 and ring[0] == ring[-1]
    cx, cy = a.obsm["spatial"][0]
    r = np.hypot(np.array(ring)[:, 0] - cx, np.array(ring)[:, 1] - cy)
    np.testing.assert_allclose(r, spot_diameter(a) / 2, atol=0.01)
    props = f0["properties"]
    assert props["spot_id"] == a.obs_names[0] and props["cluster"] == "0"
    assert props["cluster_name"] == "tumour" and props["objectType"] == "annotation"
    assert props["classification"] == {"name": "tumour", "color": [255, 0, 0]}
    assert props["label"] == a.obs["label"].iloc[0]
    assert fc["features"][1]["properties"]["cluster_name"] == "Region 1"
    # names= wins over uns
    fc2 = geojson_features(a, names=["a", "b", "c"])
    assert fc2["features"][2]["properties"]["classification"]["name"] == "c"


def test_overview_png_small_uses_pca(tmp_path):
    a = _clustered(n_side=3)  # 9 spots < 15: PCA
    p = write_overview_png(a, tmp_path / "o.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(p) as im:
        assert im.size[0] > 500
    plt = sys.modules.get("matplotlib.pyplot")  # no global pyplot figures are created
    assert plt is None or plt.get_fignums() == []
    with pytest.raises(FileExistsError):
        write_overview_png(a, p)


def test_overview_png_without_image_or_embedding(tmp_path, monkeypatch):
    a = _clustered(n_side=5, with_image=False)
    calls = []
    monkeypatch.setattr(export.layout, "embedding_2d", lambda e, seed=0: (calls.append(1), (np.asarray(e)[:, :2], "UMAP"))[1])
    write_overview_png(a, tmp_path / "o.png", layout="umap")
    assert calls == [1]
    del a.obsm["X_senca"]
    write_overview_png(a, tmp_path / "o2.png")
    assert (tmp_path / "o2.png").stat().st_size > 1000


def test_overview_is_pca_by_default_and_umap_reuses_a_stored_layout(tmp_path, monkeypatch):
    """UMAP (its numba compile took 20 s of a 34 s CLI run) only on request, and not twice."""

    def no_umap(*a, **kw):
        raise AssertionError("UMAP computed")

    monkeypatch.setattr(export.layout, "embedding_2d", no_umap)
    a = _clustered(n_side=5)
    lay, method = export.overview_layout(a, "X_senca")
    assert method == "PCA" and lay.shape == (a.n_obs, 2)
    write_overview_png(a, tmp_path / "o.png")
    from napari_senca.embedding_view import store_layout

    store_layout(a, "umap", np.zeros((a.n_obs, 2)))
    assert export.overview_layout(a, "X_senca", "umap")[1] == "UMAP"
    write_overview_png(a, tmp_path / "u.png", layout="umap")


def test_embedding_2d_pca_shapes():
    lay, method = export.embedding_2d(np.random.default_rng(0).normal(size=(10, 1)))
    assert method == "PCA" and lay.shape == (10, 2)


def test_markers_csv(tmp_path):
    df = pd.DataFrame({"cluster": ["0", "1"], "rank": [1, 1], "gene": ["A", "B"]})
    p = write_markers_csv(df, tmp_path / "m.csv")
    pd.testing.assert_frame_equal(pd.read_csv(p, dtype={"cluster": str}), df)
    with pytest.raises(FileExistsError):
        write_markers_csv(df, p)


def test_fallback_colours_are_the_review_palette():
    """overview.png / GeoJSON without stored colours use the palette the viewer shows (readable on H&E)."""
    from anndata import AnnData

    from napari_senca.review.colours import PALETTE

    a = AnnData(X=np.zeros((4, 1), dtype=np.float32))
    a.obs["senca_cluster"] = pd.Categorical(["0", "1", "2", "3"])
    rgb = export.cluster_colors(a, "senca_cluster")
    assert [rgb[c] for c in "0123"] == [export.clusters._hex_to_rgb(h) for h in PALETTE[:4]]


def test_atomic_write_errors_name_the_target_and_leave_nothing(tmp_path):
    """A failed write (full disk) names the target, not the hidden temporary file; folders made for it go."""
    import errno

    p = tmp_path / "new" / "deeper" / "c.csv"
    with pytest.raises(OSError, match=r"No space left on device: '.*new/deeper/c\.csv'") as info:
        with atomic_write(p) as fh:
            fh.write("a")
            raise OSError(errno.ENOSPC, "No space left on device", fh.name)
    assert info.value.errno == errno.ENOSPC and ".tmp" not in str(info.value)
    assert not (tmp_path / "new").exists()  # nothing left behind, not even the folders
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile is a file, not a folder"):
        with atomic_write(tmp_path / "afile" / "c.csv"):
            pass


def test_atomic_write_long_name(tmp_path):
    """A legal 240-character name is written (its temporary file's name stays short)."""
    p = tmp_path / ("x" * 236 + ".csv")
    with atomic_write(p) as fh:
        fh.write("a")
    assert p.read_text() == "a" and [q.name for q in tmp_path.iterdir()] == [p.name]


def test_h5ad_refused_before_a_full_disk(tmp_path, monkeypatch):
    """HDF5 can crash the process on a full disk: the space is checked first (ENOSPC naming the file)."""
    import errno
    import shutil
    from collections import namedtuple

    from napari_senca.io import write_h5ad

    ad = synthetic_section(n_side=4, n_genes=20)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 10**5, 10**5))
    with pytest.raises(OSError, match=r"not enough free space .*: '.*a\.h5ad'") as info:
        write_h5ad(ad, tmp_path / "a.h5ad")
    assert info.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**12, 0, 10**12))
    write_h5ad(ad, tmp_path / "a.h5ad")
    assert (tmp_path / "a.h5ad").is_file()


def test_the_input_is_never_an_export_target(tmp_path):
    """A section remembers the file it was read from; writing an export over it is refused."""
    from napari_senca.errors import OutputError
    from napari_senca.export import input_files, refuse_input
    from napari_senca.io import read_section, write_h5ad

    src = tmp_path / "in.h5ad"
    write_h5ad(synthetic_section(n_side=4, n_genes=20), src)
    ad = read_section(src)
    assert ad.uns["senca_input"]["opened"] == str(src.resolve()) and src.resolve() in input_files(ad)
    before = src.read_bytes()
    for target in (src, tmp_path / "." / "in.h5ad"):
        with pytest.raises(OutputError, match="the section was read from this file"):
            refuse_input(ad, target)
    refuse_input(ad, tmp_path / "other.h5ad")  # anything else is fine
    assert src.read_bytes() == before


def test_section_snapshot_is_not_reached_by_later_edits_and_shares_arrays():
    from napari_senca.export import section_snapshot
    from test_review import annotated_section

    a = annotated_section()
    a.uns["senca"]["cluster_names"] = {"0": "tumour"}
    s = section_snapshot(a)
    labels = a.obs["label"].copy()
    cats = list(labels.cat.categories)
    a.obs["senca_cluster"] = a.obs["senca_cluster"].cat.rename_categories(lambda c: f"x{c}")
    a.obs.loc[a.obs_names[0], "label"] = cats[1] if labels.iloc[0] == cats[0] else cats[0]  # in place
    a.uns["senca"]["cluster_names"]["0"] = "stroma"
    a.uns["new"] = 1
    assert s.obs["senca_cluster"].cat.categories[0] == "0" and "new" not in s.uns
    assert s.uns["senca"]["cluster_names"] == {"0": "tumour"}
    assert s.X is a.X and np.shares_memory(s.obsm["spatial"], a.obsm["spatial"])
    pd.testing.assert_series_equal(s.obs["label"], labels)


def test_geojson_written_in_chunks_is_the_compact_dump(tmp_path, monkeypatch):
    import json

    from napari_senca.export import geojson, geojson_features, write_geojson
    from test_review import annotated_section

    a = annotated_section()  # 64 spots
    a.obs_names = [f"spot \u00e9{i}" for i in range(a.n_obs)]  # escaped as json.dumps does
    a.obsm["spatial"] = a.obsm["spatial"] * 1.37 + 0.5  # three decimals
    expected = json.dumps(geojson_features(a), separators=(",", ":"))
    for chunk in (1, 7, 64, 1000):
        monkeypatch.setattr(geojson, "CHUNK", chunk)
        p = write_geojson(a, tmp_path / f"c{chunk}.geojson")
        assert p.read_text() == expected, chunk
    a.obsm["spatial"][3] = np.nan  # not finite: written as json.dumps writes it
    expected = json.dumps(geojson_features(a), separators=(",", ":"))
    assert "NaN" in expected and write_geojson(a, tmp_path / "nan.geojson").read_text() == expected


def test_clusters_csv_with_names(tmp_path):
    from napari_senca.export import write_clusters_csv
    from test_review import annotated_section

    a = annotated_section()
    df = pd.read_csv(write_clusters_csv(a, tmp_path / "c.csv", names={"0": "tumour", "1": "stroma", "2": "fat"}))
    assert list(df.columns[5:7]) == ["cluster", "cluster_name"]
    assert dict(zip(df["cluster"].astype(str), df["cluster_name"], strict=True)) == {"0": "tumour", "1": "stroma", "2": "fat"}
