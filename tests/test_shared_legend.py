"""One legend over several sections (napari_senca.shared_legend): rename once, renamed everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_senca.errors import ConfigError, OutputError
from napari_senca.review import ReviewState
from napari_senca.shared_legend import SharedLegend, read_cohort
from test_review import annotated_section  # tests/ is on sys.path


def joint_pair(names=("a", "b")) -> list[tuple[str, ReviewState]]:
    """Two annotated sections from 'one joint run' (uns["senca"]["joint"]), ids in different orders of size."""
    out = []
    for i, n in enumerate(names):
        a = annotated_section(seed=i)
        a.uns["senca"]["joint"] = np.asarray(list(names), dtype=object)
        out.append((n, ReviewState(a)))
    return out


def test_rename_in_one_legend_renames_every_section():
    secs = joint_pair()
    shared = SharedLegend.link(secs)
    assert "joint" in shared.how
    assert shared.entry_ids() == ["0", "1", "2"]
    assert [shared.colour_of(e) for e in "012"] == [secs[1][1].colour_of(e) for e in "012"]  # one colour per entry
    assert shared.rename("1", "invasive cancer") == ["a", "b"]
    for _, st in secs:
        assert st.name_of("1") == "invasive cancer"
        assert "invasive cancer" in st.legend()["name"].tolist()
    assert shared.resolve("Invasive Cancer") == "1"
    leg = shared.legend()
    assert leg.loc[leg["entry"] == "1", "n_sections"].item() == 2
    assert leg["n_spots"].sum() == sum(st.n_spots for _, st in secs)


def test_rename_is_checked_in_every_section_before_any_changes():
    secs = joint_pair()
    shared = SharedLegend.link(secs)
    secs[1][1].rename("2", "stroma")  # only in b
    with pytest.raises(ConfigError, match="already used by another region of section 'b'"):
        shared.rename("0", "stroma")
    assert secs[0][1].name_of("0") == "cluster 0"  # a was not changed either
    with pytest.raises(ConfigError, match="cannot be empty"):
        shared.rename("0", "  ")


def test_cohort_regions_and_matching_group_regions():
    secs = joint_pair()
    for _, st in secs:  # as written by `napari-senca batch` (vocabulary matching): 0 and 1 are one entry
        cl = st.adata.obs["senca_cluster"].astype(str)
        st.adata.obs["cohort_region"] = pd.Categorical(np.where(cl == "2", "Region B", "Region A"))
        del st.adata.uns["senca"]["joint"]
    shared = SharedLegend.link(secs)
    assert "cohort" in shared.how and shared.entry_ids() == ["Region A", "Region B"]
    leg = shared.legend()  # unnamed shared regions show the entry, not one section's "cluster 0"
    assert leg["name"].tolist() == ["Region A", "Region B"] and leg["colour"].nunique() == 2
    shared.rename("Region A", "tumour")
    for _, st in secs:  # two regions of a section in one entry keep distinct names
        assert {st.name_of("0"), st.name_of("1")} == {"tumour", "tumour (2)"}
    for _, st in secs:  # no vocabulary stored: the regions are matched now
        del st.adata.obs["cohort_region"]
    assert "matched now" in SharedLegend.link(secs).how


def test_export_per_section_and_cohort(tmp_path):
    secs = joint_pair()
    shared = SharedLegend.link(secs)
    shared.rename("0", "necrosis")
    paths = shared.export(tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in paths) == [
        "a/annotated.h5ad", "a/clusters.csv", "b/annotated.h5ad", "b/clusters.csv", "cohort_regions.csv"]
    table = pd.read_csv(tmp_path / "out" / "cohort_regions.csv", dtype={"cluster": str})
    assert set(table["section"]) == {"a", "b"}
    assert set(table.loc[table["cluster"] == "0", "shared_region"]) == {"necrosis"}
    with pytest.raises(OutputError, match="exists"):
        shared.export(tmp_path / "out")
    assert len(shared.export(tmp_path / "one", sections=["b"])) == 2


def test_a_cohort_is_never_exported_over_the_files_it_was_read_from(tmp_path):
    from napari_senca.io import write_h5ad

    root = tmp_path / "batch"
    for name, st in joint_pair():
        write_h5ad(st.adata, root / name / "annotated.h5ad")
    (root / "cohort.csv").write_text("section,status\na,done\nb,done\n")
    before = (root / "a" / "annotated.h5ad").read_bytes()
    secs = [(n, ReviewState(ad)) for n, ad in read_cohort(root)]
    shared = SharedLegend.link(secs)
    shared.rename(shared.legend()["entry"].iloc[0], "necrosis")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="read from this file"):
            shared.export(root, overwrite=overwrite)
    assert (root / "a" / "annotated.h5ad").read_bytes() == before and not (root / "a" / "clusters.csv").exists()
    assert len(shared.export(tmp_path / "elsewhere")) == 5


def test_read_cohort_needs_a_cohort_table(tmp_path):
    from napari_senca.errors import DataError

    with pytest.raises(DataError, match="no cohort.csv"):
        read_cohort(tmp_path)


def test_link_needs_two_sections_with_regions():
    secs = joint_pair()
    with pytest.raises(ConfigError, match="at least 2 sections"):
        SharedLegend.link(secs[:1])
