"""Legacy ST folders and the her2st repository layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_senca.errors import ConfigError, DataError
from napari_senca.io import read_her2st_repo, read_section, read_st_folder
from napari_senca.section import get_image, has_labels, spot_diameter, spot_spacing


def _rewrite_counts(folder: Path, edit) -> None:
    p = folder / "counts.tsv.gz"
    with gzip.open(p, "rt") as fh:
        df = pd.read_csv(fh, sep="\t", index_col=0)
    df = edit(df)
    with gzip.open(p, "wt") as fh:
        fh.write(df.to_csv(sep="\t"))


def test_reads_tiny_folder(st_folder):
    folder = st_folder()
    a = read_st_folder(folder)
    assert a.shape == (12, 5)
    assert list(a.obs_names[:3]) == ["1x1", "2x1", "3x1"]
    # pixel positions, array coordinates
    np.testing.assert_allclose(a.obsm["spatial"][1], [160.0, 60.0])
    assert a.obs.loc["3x2", "array_col"] == 3 and a.obs.loc["3x2", "array_row"] == 2
    # image + sidecar scale
    img, scale = get_image(a)
    assert scale == 0.5 and img.dtype == np.uint8 and img.shape[2] == 3
    # legacy ST: diameter = half the spacing
    assert spot_spacing(a) == pytest.approx(100.0)
    assert spot_diameter(a) == pytest.approx(50.0)
    # labels joined on rounded coordinates, 'undetermined' -> NaN
    assert has_labels(a)
    assert pd.isna(a.obs.loc["1x1", "label"])
    assert a.obs.loc["1x2", "label"] == "tumour" and a.obs.loc["4x3", "label"] == "stroma"
    assert a.uns["senca_input"]["format"] == "st"
    assert next(iter(a.uns["spatial"])) == "S1"
    # counts are raw, float32 sparse
    assert a.X.dtype == np.float32


def test_plain_tsv_no_image_no_labels(st_folder):
    a = read_st_folder(st_folder(gz=False, image=False, labels=False))
    assert a.n_obs == 12 and get_image(a) is None and "label" not in a.obs


def test_image_without_sidecar_has_scale_one(st_folder):
    folder = st_folder(scale=None)
    a = read_st_folder(folder)
    assert get_image(a)[1] == 1.0


def test_image_false_and_explicit_image(st_folder, tmp_path):
    folder = st_folder()
    assert get_image(read_st_folder(folder, image=False)) is None
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "x.png").write_bytes((folder / "he.png").read_bytes())
    (other / "x.json").write_text(json.dumps({"spot_to_image_scale": 0.5}))
    assert get_image(read_st_folder(folder, image=other / "x.png"))[1] == 0.5


def test_unselected_spots_are_dropped(st_folder):
    folder = st_folder()
    spots = pd.read_csv(folder / "spots.tsv", sep="\t")
    spots.loc[(spots.x == 2) & (spots.y == 2), "selected"] = 0
    spots.to_csv(folder / "spots.tsv", sep="\t", index=False)
    a = read_st_folder(folder)
    assert a.n_obs == 11 and "2x2" not in a.obs_names


def test_several_images_need_a_choice(st_folder):
    folder = st_folder()
    (folder / "other.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="several images"):
        read_st_folder(folder)


# --------------------------------------------------------------------------- bad input


def test_missing_counts(st_folder):
    folder = st_folder()
    (folder / "counts.tsv.gz").unlink()
    with pytest.raises(DataError, match="no counts.tsv.gz or counts.tsv"):
        read_st_folder(folder)


def test_missing_spots(st_folder):
    folder = st_folder()
    (folder / "spots.tsv").unlink()
    with pytest.raises(DataError, match=r"spots\.tsv: spot positions file not found"):
        read_st_folder(folder)


def test_not_a_folder(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        read_st_folder(tmp_path / "nope")


def test_counts_not_numeric(st_folder):
    folder = st_folder()
    _rewrite_counts(folder, lambda df: df.astype(object).assign(G2=lambda d: d.G2.where(d.index != "2x1", "lots")))
    with pytest.raises(DataError, match=r"counts\.tsv\.gz: counts are not numeric: 1 gene: 'G2' \(e\.g\. 'lots'"):
        read_st_folder(folder)


def test_negative_counts(st_folder):
    folder = st_folder()
    _rewrite_counts(folder, lambda df: df.assign(G1=-df.G1 - 1))
    with pytest.raises(DataError, match=r"counts\.tsv\.gz: counts contain negative values"):
        read_st_folder(folder)


def test_nan_counts(st_folder):
    folder = st_folder()
    _rewrite_counts(folder, lambda df: df.astype(float).assign(G0=lambda d: d.G0.where(d.index != "1x1")))
    with pytest.raises(DataError, match=r"counts\.tsv\.gz: counts contain NaN"):
        read_st_folder(folder)


def test_mismatched_spot_ids(st_folder):
    folder = st_folder()
    _rewrite_counts(folder, lambda df: df.rename(index={"3x3": "30x30"}))
    with pytest.raises(DataError) as e:
        read_st_folder(folder)
    msg = str(e.value)
    assert "counts.tsv.gz" in msg and "spots.tsv" in msg and "'30x30'" in msg and "mismatched spot ids" in msg
    assert "\n" not in msg


def test_bad_spot_id(st_folder):
    folder = st_folder()
    _rewrite_counts(folder, lambda df: df.rename(index={"3x3": "spot7"}))
    with pytest.raises(DataError, match="'spot7' is not of the form"):
        read_st_folder(folder)


def test_spots_missing_columns(st_folder):
    folder = st_folder()
    spots = pd.read_csv(folder / "spots.tsv", sep="\t").drop(columns=["pixel_y"])
    spots.to_csv(folder / "spots.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match=r"spots\.tsv: missing column\(s\) pixel_y"):
        read_st_folder(folder)


def test_spots_nan_position(st_folder):
    folder = st_folder()
    spots = pd.read_csv(folder / "spots.tsv", sep="\t")
    spots.loc[0, "pixel_x"] = np.nan
    spots.to_csv(folder / "spots.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match=r"spots\.tsv: spot '1x1' has a missing pixel_x / pixel_y"):
        read_st_folder(folder)


def test_duplicated_spot_rows(st_folder):
    folder = st_folder()
    spots = pd.read_csv(folder / "spots.tsv", sep="\t")
    pd.concat([spots, spots.iloc[[0]]]).to_csv(folder / "spots.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match="listed twice"):
        read_st_folder(folder)


def test_spots_outside_image(st_folder):
    folder = st_folder()
    (folder / "he.json").write_text(json.dumps({"spot_to_image_scale": 5.0}))
    with pytest.raises(DataError) as e:
        read_st_folder(folder)
    msg = str(e.value)
    assert msg.startswith(str(folder / "he.png")) and "outside" in msg and "he.json" in msg


def test_empty_section(st_folder):
    folder = st_folder()
    _rewrite_counts(folder, lambda df: df.iloc[:0])
    with pytest.raises(DataError, match="no spots"):
        read_st_folder(folder)


def test_empty_counts_file(st_folder):
    folder = st_folder(gz=False)
    (folder / "counts.tsv").write_text("")
    with pytest.raises(DataError, match=r"counts\.tsv: the counts file is empty"):
        read_st_folder(folder)


def test_corrupt_gzip(st_folder):
    folder = st_folder()
    (folder / "counts.tsv.gz").write_bytes(b"\x1f\x8b\x08garbage-garbage")
    with pytest.raises(DataError, match=r"counts\.tsv\.gz: cannot read the counts file"):
        read_st_folder(folder)


def test_corrupt_image(st_folder):
    folder = st_folder()
    (folder / "he.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"he\.png: (not a readable image|cannot read the image)"):
        read_st_folder(folder)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"scale": 1}', "missing 'spot_to_image_scale'"),
        ('{"spot_to_image_scale": -1}', "must be a positive number"),
        ('{"spot_to_image_scale": "big"}', "must be a positive number"),
    ],
)
def test_malformed_sidecar(st_folder, text, match):
    folder = st_folder()
    (folder / "he.json").write_text(text)
    with pytest.raises(DataError, match=match) as e:
        read_st_folder(folder)
    assert str(e.value).startswith(str(folder / "he.json"))


def test_labels_conflict(st_folder):
    folder = st_folder()
    lab = pd.read_csv(folder / "labels.tsv", sep="\t")
    extra = lab.iloc[[3]].assign(label="other")
    pd.concat([lab, extra]).to_csv(folder / "labels.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match="two labels"):
        read_st_folder(folder)


def _id_labels(folder, extra: str) -> None:
    """labels.tsv joined on spot ids (no x / y columns), with ``extra`` rows appended."""
    rows = "".join(f"{x}x{y}\t{'tumour' if x <= 2 else 'stroma'}\n" for x in range(1, 5) for y in range(1, 4))
    (folder / "labels.tsv").write_text("spot\tlabel\n" + rows + extra)


@pytest.mark.parametrize("extra, ids", [("1x1\tstroma\n", "'1x1' and '1x1'"), ("1.02x0.97\tfat\n", "'1x1' and '1.02x0.97'")])
def test_labels_conflict_by_id(st_folder, extra, ids):
    folder = st_folder()
    _id_labels(folder, extra)
    with pytest.raises(DataError, match=rf"labels\.tsv: spot '1x1' has two labels \('tumour' and '[a-z]+'; label ids {ids}\)"):
        read_st_folder(folder)


def test_repeated_identical_label_rows_are_accepted(st_folder):
    folder = st_folder()
    _id_labels(folder, "1x1\ttumour\n")
    a = read_st_folder(folder)
    assert a.obs.loc["1x1", "label"] == "tumour" and a.obs.loc["4x3", "label"] == "stroma"


def test_labels_bad_columns(st_folder):
    folder = st_folder()
    (folder / "labels.tsv").write_text("a\tb\tc\n1\t2\t3\n")
    with pytest.raises(DataError, match=r"labels\.tsv: expected columns x, y, label"):
        read_st_folder(folder)


# --------------------------------------------------------------------------- her2st repository


def test_her2st_repo(her2st_repo):
    a = read_her2st_repo(her2st_repo, "A1")
    assert a.n_obs == 12 and has_labels(a)
    img, scale = get_image(a)
    assert scale == 1.0 and img.ndim == 3
    assert a.uns["senca_input"]["format"] == "her2st_repo"
    assert next(iter(a.uns["spatial"])) == "A1"
    b = read_section(her2st_repo, section="B1")  # labels under res/, no image
    assert get_image(b) is None and has_labels(b)


def test_her2st_repo_needs_section(her2st_repo):
    with pytest.raises(ConfigError, match="available: A1, B1"):
        read_section(her2st_repo)
    with pytest.raises(DataError, match="no counts for section 'Z9'"):
        read_her2st_repo(her2st_repo, "Z9")


def test_her2st_repo_missing_spotfile(her2st_repo):
    (her2st_repo / "data" / "ST-spotfiles" / "A1_selection.tsv").unlink()
    with pytest.raises(DataError, match="A1_selection.tsv: spot positions file not found"):
        read_her2st_repo(her2st_repo, "A1")


def test_labels_the_section_reads_as_equal_are_not_two_labels():
    from napari_senca.io.labels import labels_by_id

    for a, b in (("tumour", "tumour "), ("", "undetermined"), (float("nan"), ""), (None, "NA")):
        out, unmatched = labels_by_id(["1x1", "1x1"], [a, b], ["1x1", "2x2"])
        assert unmatched == []
    with pytest.raises(DataError, match="two labels"):
        labels_by_id(["1x1", "1x1"], ["tumour", "stroma"], ["1x1"])


def test_another_librarys_barcode_is_not_this_spot():
    from napari_senca.io.labels import labels_by_id

    # a Space Ranger aggr labels file: AAAC-2 is a spot of library 2, not AAAC-1
    out, unmatched = labels_by_id(["AAAC-1", "AAAC-2"], ["tumour", "stroma"], ["AAAC-1", "GGGT-1"])
    assert out == ["tumour", None] and unmatched == ["AAAC-2"]
    out, _ = labels_by_id(["AAAC", "GGGT-1"], ["tumour", "stroma"], ["AAAC-1", "GGGT"])  # suffix on one side only
    assert out == ["tumour", "stroma"]
