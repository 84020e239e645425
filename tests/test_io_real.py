"""The readers on the shared real data (skipped when it is absent)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from napari_senca.io import detect_format, read_section
from napari_senca.section import get_image, has_labels, validate_section

HER2ST = ("A1", "B1", "C1", "D1", "E1", "F1", "G2", "H1")


def _n_count_rows(path) -> int:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    return data.count(b"\n") - 1 + (0 if data.endswith(b"\n") else 1)


@pytest.mark.parametrize("section", HER2ST)
def test_her2st_sections(shared_data, section):
    folder = shared_data / "her2st" / section
    assert detect_format(folder) == "st"
    a = read_section(folder)
    assert a.n_obs == _n_count_rows(folder / "counts.tsv.gz")
    assert a.n_vars > 14000
    assert has_labels(a)
    assert a.obs["label"].notna().mean() > 0.8
    assert next(iter(a.uns["spatial"])) == section
    validate_section(a)
    lab = a.uns["senca_input"]["labels"]
    assert lab["matched"] == a.n_obs and lab["unmatched"] <= 8
    if section == "A1":
        assert a.uns["senca_input"]["n_excluded"] == {"in spots.tsv without counts": 2}
        assert a.uns["senca_input"]["labels"]["unmatched"] == 2
        img, scale = get_image(a)
        assert img.shape == (2138, 2000, 3) and scale == pytest.approx(0.287559)
        xy = a.obsm["spatial"] * scale
        assert (xy >= 0).all() and (xy[:, 0] < img.shape[1]).all() and (xy[:, 1] < img.shape[0]).all()
    else:
        assert get_image(a) is None


def test_dlpfc(shared_data):
    folder = shared_data / "dlpfc_151510"
    assert detect_format(folder) == "visium"
    a = read_section(folder)
    assert a.shape == (4634, 500)
    img, scale = get_image(a)
    assert img.shape == (600, 600, 3) and scale == pytest.approx(0.045004502)
    assert set(a.uns["spatial"][next(iter(a.uns["spatial"]))]["images"]) == {"lowres"}
    assert has_labels(a) and int(a.obs["label"].isna().sum()) == 39
    info = a.uns["senca_input"]
    assert info["n_excluded"] == {} and (info["labels"]["matched"], info["labels"]["unmatched"]) == (4634, 0)
    assert "warnings" not in info
    assert sorted(a.obs["label"].dropna().unique()) == ["L1", "L2", "L3", "L4", "L5", "L6", "WM"]
    assert a.var["gene_ids"].str.startswith("ENSG").all()
    assert np.isclose(a.uns["spatial"][next(iter(a.uns["spatial"]))]["scalefactors"]["spot_diameter_fullres"], 96.89, atol=0.01)
