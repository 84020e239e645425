"""Format detection and read_section dispatch."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_senca.errors import ConfigError, DataError
from napari_senca.io import detect_format, read_section, write_h5ad
from napari_senca.section import get_image, has_labels


def test_detect(st_folder, visium_folder, her2st_repo, tmp_path):
    st = st_folder()
    vis = visium_folder()
    assert detect_format(st) == "st"
    assert detect_format(str(st)) == "st"
    assert detect_format(st / "counts.tsv.gz") == "st"
    assert detect_format(vis) == "visium"
    assert detect_format(vis / "outs") == "visium"
    assert detect_format(vis / "outs" / "filtered_feature_bc_matrix.h5") == "visium"
    assert detect_format(her2st_repo) == "her2st_repo"
    assert detect_format("sample:her2st_A1") == "sample"
    a = read_section("sample:synthetic")
    write_h5ad(a, tmp_path / "x.h5ad")
    assert detect_format(tmp_path / "x.h5ad") == "h5ad"


@pytest.mark.parametrize("bad", [None, 3, ["a", "b"], "", "/definitely/not/here", b"\x00", "\x00bad"])
def test_detect_never_raises(bad, tmp_path):
    assert detect_format(bad) is None


def test_detect_unrelated(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert detect_format(tmp_path) is None
    assert detect_format(tmp_path / "notes.txt") is None


def test_read_section_errors(tmp_path, st_folder):
    with pytest.raises(DataError, match="not found"):
        read_section(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"not a recognised section \(expected a legacy ST folder"):
        read_section(tmp_path)
    with pytest.raises(DataError, match="unknown sample"):
        read_section("sample:nope")
    with pytest.raises(ConfigError, match="only applies to a her2st repository"):
        read_section(st_folder(), section="A1")


def test_samples():
    s = read_section("sample:synthetic")
    assert s.n_obs == 256 and has_labels(s)
    a1 = read_section("sample:her2st_A1")
    assert a1.n_obs == 346 and a1.n_vars == 15045 and has_labels(a1)
    img, scale = get_image(a1)
    assert img.shape[1] == 1000 and scale == pytest.approx(0.287559 / 2)
    assert next(iter(a1.uns["spatial"])) == "her2st_A1"
    assert get_image(read_section("sample:her2st_A1", image=False)) is None


def test_sample_files_present():
    from napari_senca.datasets import sample_data_dir

    d = sample_data_dir() / "her2st_A1"
    names = {p.name for p in Path(d).iterdir()}
    assert {"counts.tsv.gz", "spots.tsv", "labels.tsv", "he.jpg", "he.json", "README.md"} <= names
    assert "Nat Commun 12, 6012" in (d / "README.md").read_text() or "6012" in (d / "README.md").read_text()
