"""The Cohort widget: sections tiled side by side, one legend renames a region in every section, export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

# load torch._dynamo before any OpenGL context exists (see test_napari_widgets.py)
import torch._dynamo  # noqa: F401

from napari_senca._qt import CohortWidget, _common
from napari_senca._qt._legend import NAME
from napari_senca.review import REGION_KEY
from test_review import annotated_section  # tests/ is on sys.path

pytestmark = pytest.mark.qt


def _open_two(viewer):
    layers = []
    for i, n in enumerate(("a", "b")):
        ad = annotated_section(seed=i)
        ad.uns["senca"]["joint"] = np.asarray(["a", "b"], dtype=object)
        layers.append(_common.add_section(viewer, ad, name=n))
    return layers


def test_tile_link_rename_everywhere_and_export(qtbot, viewer, tmp_path, monkeypatch):
    w = CohortWidget(viewer)
    viewer.window.add_dock_widget(w)
    a, b = _open_two(viewer)
    assert w.tile() == 2
    ea, eb = (np.asarray(ly.extent.world)[:, -2:] for ly in (a, b))
    assert eb[0, 1] > ea[1, 1]  # side by side, no overlap
    w.columns.value = 1
    w.tile()
    ea, eb = (np.asarray(ly.extent.world)[:, -2:] for ly in (a, b))
    assert eb[0, 0] > ea[1, 0] and abs(eb[0, 1] - ea[0, 1]) < 1e-6  # one column: b below a

    w.link()
    assert w.legend.rowCount() == 3
    row = [w.legend.key(r) for r in range(3)].index("1")
    w.legend.item(row, NAME).setText("invasive cancer")  # what a double-click edit does
    for ly in (a, b):
        feats = ly.features
        assert "invasive cancer" in list(feats[REGION_KEY].cat.categories)
        assert set(feats.loc[feats["senca_cluster"] == "1", REGION_KEY]) == {"invasive cancer"}

    assert w.export(tmp_path / "cohort") is not None  # written in a worker, from a snapshot of now
    assert not w.export_btn.enabled
    w.legend.item(row, NAME).setText("renamed during the write")
    qtbot.waitUntil(lambda: w.worker is None, timeout=60_000)
    assert {p.parent.name for p in w.last_paths if p.name == "clusters.csv"} == {"a", "b"} and w.export_btn.enabled
    table = pd.read_csv(tmp_path / "cohort" / "cohort_regions.csv", dtype={"cluster": str})
    assert set(table.loc[table["cluster"] == "1", "region"]) == {"invasive cancer"}
    # exporting again asks before overwriting; "no" writes nothing
    monkeypatch.setattr(_common, "ask_overwrite", lambda *a: False)
    assert w.export(tmp_path / "cohort") is None and w.worker is None


def test_open_cohort_folder_adds_sections_one_per_turn_and_links_with_the_workers_matching(
        qtbot, viewer, tmp_path, monkeypatch, notes):  # fmt: skip
    from napari_senca import vocabulary
    from napari_senca.shared_legend import SharedLegend

    root = tmp_path / "batch"
    for i, s in enumerate(("S1", "S2", "S3")):
        (root / s).mkdir(parents=True)
        annotated_section(seed=i).write_h5ad(root / s / "annotated.h5ad")
    (root / "cohort.csv").write_text("section,status\nS1,done\nS2,done\nS3,failed\n")
    calls = []
    real = vocabulary.match_sections
    monkeypatch.setattr(vocabulary, "match_sections", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    w = CohortWidget(viewer)
    viewer.window.add_dock_widget(w)
    assert w.open_cohort(str(root)) is not None and w.busy
    w.open_cohort(str(root))  # a second click while reading: refused, nothing read twice
    assert "still reading" in notes["error"][-1]
    seen = []  # sections open at each step of the queue (each step is its own turn of the event loop)
    monkeypatch.setattr(w, "_add_next", lambda real=w._add_next: (seen.append(
        len(_common.section_layers(viewer))), real())[1])  # fmt: skip
    qtbot.waitUntil(lambda: not w.busy and w.shared is not None, timeout=60_000)
    assert seen == [0, 1, 2]  # one section per step, then tile and link
    assert [ly.name for ly in _common.section_layers(viewer)] == ["S1 spots", "S2 spots"]  # S3 failed: not opened
    assert "2 sections linked (regions matched now" in w.status.value
    assert len(calls) == 1  # matched once, in the read worker; link() used it
    again = SharedLegend.link(list(w.shared.sections))  # matching now gives the same legend
    assert again.entry_ids() == w.shared.entry_ids() and len(calls) == 2


def test_a_section_that_cannot_be_added_stops_the_open_and_frees_the_widget(qtbot, viewer, tmp_path, monkeypatch,
                                                                         notes):  # fmt: skip
    from napari_senca._qt import _cohort

    root = tmp_path / "batch"
    for i, s in enumerate(("S1", "S2", "S3")):
        (root / s).mkdir(parents=True)
        annotated_section(seed=i).write_h5ad(root / s / "annotated.h5ad")
    (root / "cohort.csv").write_text("section,status\nS1,done\nS2,done\nS3,done\n")
    real = _cohort.add_section

    def add(viewer, adata, name):
        if name == "S2":
            raise _cohort.ConfigError("S2 is broken")
        return real(viewer, adata, name=name)

    monkeypatch.setattr(_cohort, "add_section", add)
    w = CohortWidget(viewer)
    w.open_cohort(str(root))
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)
    assert "S2 is broken" in notes["error"][-1] and "stopped at S2" in w.status.value
    assert [ly.name for ly in _common.section_layers(viewer)] == ["S1 spots"] and w._matched is None
    monkeypatch.setattr(_cohort, "add_section", real)
    assert w.open_cohort(str(root)) is not None  # free again
    qtbot.waitUntil(lambda: not w.busy and w.shared is not None, timeout=60_000)
