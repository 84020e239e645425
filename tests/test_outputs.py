"""Output folders: never an input, never a folder the tool did not write, checked before any work."""

from __future__ import annotations

import os
import sys

import pytest

from napari_senca.errors import OutputError
from napari_senca.outputs import (
    MARKER,
    check_not_input,
    check_output_folder,
    check_writable,
    read_marker,
    replace_folder,
    write_marker,
)


@pytest.fixture
def section(tmp_path):
    d = tmp_path / "proj" / "A1"
    d.mkdir(parents=True)
    (d / "counts.tsv").write_text("x")
    return d


@pytest.mark.parametrize(
    ("rel", "why"),
    [(".", "is the input"), ("..", "contains the input"), ("res", "lies inside the input")],
)
def test_refuses_input_related_folders(section, rel, why):
    with pytest.raises(OutputError, match=why):
        check_output_folder(section / rel, [section], overwrite=True)
    with pytest.raises(OutputError, match=why):
        check_not_input(section / rel, [section])
    assert (section / "counts.tsv").read_text() == "x"


def test_refuses_folder_holding_an_input_file(tmp_path):
    img = tmp_path / "imgs" / "he.tif"
    img.parent.mkdir()
    img.write_bytes(b"x")
    with pytest.raises(OutputError, match="contains the input"):
        check_output_folder(tmp_path / "imgs", [img], overwrite=True)
    check_output_folder(tmp_path / "res", [img])  # a sibling is fine


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlinked_input_is_resolved(section, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(section)
    with pytest.raises(OutputError, match="is the input"):
        check_output_folder(link, [section], overwrite=True)


def test_new_and_empty_folders_are_fine(tmp_path):
    assert check_output_folder(tmp_path / "new" / "deeper") == (tmp_path / "new" / "deeper")
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty")
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # and leaves no probe


def test_foreign_folder_is_never_replaced(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="not a napari-senca output.*choose a new or empty folder"):
            check_output_folder(d, overwrite=overwrite)


def test_previous_output_needs_overwrite_and_nothing_extra(tmp_path):
    d = tmp_path / "res"
    d.mkdir()
    (d / "clusters.csv").write_text("x")
    write_marker(d, ["clusters.csv"], inputs=[tmp_path / "A1"], config={"epochs": 3})
    m = read_marker(d)
    assert m["files"] == ["clusters.csv"] and m["config"] == {"epochs": 3} and "version" in m and "time" in m
    with pytest.raises(OutputError, match="use --overwrite"):
        check_output_folder(d)
    check_output_folder(d, overwrite=True)
    (d / "my_notes.txt").write_text("keep")
    with pytest.raises(OutputError, match=r"1 file\(s\) napari-senca did not write \(my_notes.txt\)"):
        check_output_folder(d, overwrite=True)


def test_broken_marker_is_no_marker(tmp_path):
    d = tmp_path / "res"
    d.mkdir()
    (d / MARKER).write_text("{")
    assert read_marker(d) is None
    with pytest.raises(OutputError, match="not a napari-senca output"):
        check_output_folder(d, overwrite=True)


def test_not_a_folder_and_parent_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        check_output_folder(f)
    with pytest.raises(OutputError, match="is a file, not a folder") as e:
        check_output_folder(f / "res")
    assert str(e.value).startswith(str(f / "res"))


def test_unwritable_names_the_users_folder(tmp_path, monkeypatch):
    import napari_senca.outputs as outputs

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".napari-senca-probe-x"))

    monkeypatch.setattr(outputs.tempfile, "mkdtemp", refuse)
    with pytest.raises(OutputError) as e:
        check_writable(tmp_path / "res")
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / "res")) and "Permission denied" in msg and "probe" not in msg


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root ignores permissions")
def test_read_only_parent(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="cannot write"):
            check_output_folder(ro / "res")
    finally:
        ro.chmod(0o755)


def test_replace_folder_keeps_nothing_else(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    (out / "old.csv").write_text("old")
    tmp = tmp_path / ".res.tmp"
    tmp.mkdir()
    (tmp / "new.csv").write_text("new")
    replace_folder(tmp, out)
    assert [p.name for p in out.iterdir()] == ["new.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def _previous_output(folder):
    """A previous output whose marker records its files as written (like ``run`` and ``batch`` do)."""
    from napari_senca.outputs import file_stamps

    folder.mkdir(parents=True)
    for name in ("annotated.h5ad", "clusters.csv"):
        (folder / name).write_text(f"{name} as written")
    write_marker(folder, ["annotated.h5ad", "clusters.csv"],
                 extra={"stamps": file_stamps(folder, ["annotated.h5ad", "clusters.csv"])})  # fmt: skip
    return folder


def test_unchanged_mode_replaces_only_outputs_as_written(tmp_path):
    from napari_senca.errors import KeptOutputError
    from napari_senca.outputs import UNCHANGED, changed_outputs

    out = _previous_output(tmp_path / "A1")
    assert check_output_folder(out, overwrite=UNCHANGED) == out
    os.utime(out / "clusters.csv", ns=(1, 1))  # touched (copied), same content: still as written
    assert changed_outputs(out) == []
    (out / "annotated.h5ad").write_text("annotated.h5ad with my region names")  # a review saved there
    assert changed_outputs(out) == ["annotated.h5ad"]
    with pytest.raises(KeptOutputError, match=r"A1: annotated.h5ad changed since napari-senca wrote it.*--overwrite"):
        check_output_folder(out, overwrite=UNCHANGED)
    assert check_output_folder(out, overwrite=True) == out  # what the user asks for explicitly
    (out / "annotated.h5ad").unlink()  # a deleted output holds nothing to lose
    assert check_output_folder(out, overwrite=UNCHANGED) == out


def _old_output(folder):
    """An output of an earlier version: its marker (written last) records no stamps."""
    folder.mkdir(parents=True)
    for i, name in enumerate(("annotated.h5ad", "clusters.csv", "markers.csv")):
        (folder / name).write_text(name)
        os.utime(folder / name, ns=(10**18 + i, 10**18 + i))
    write_marker(folder, ["annotated.h5ad", "clusters.csv", "markers.csv"])
    os.utime(folder / MARKER, ns=(10**18 + 10, 10**18 + 10))
    return folder


def test_old_marker_without_stamps_is_judged_by_time(tmp_path):
    from napari_senca.errors import KeptOutputError
    from napari_senca.outputs import UNCHANGED, changed_outputs

    out = _old_output(tmp_path / "A1")
    assert changed_outputs(out) == []  # nothing later than the marker: as written, replaced on resume
    assert check_output_folder(out, overwrite=UNCHANGED) == out
    os.utime(out / "annotated.h5ad", ns=(10**18 + 20,) * 2)  # rewritten by region matching, before cohort.csv
    os.utime(out / "clusters.csv", ns=(10**18 + 40,) * 2)  # a review saved after the last batch
    assert changed_outputs(out) == ["annotated.h5ad", "clusters.csv"]
    assert changed_outputs(out, written_before=10**18 + 30) == ["clusters.csv"]
    with pytest.raises(KeptOutputError, match=r"A1: clusters.csv changed .*judged by modification time"):
        check_output_folder(out, overwrite=UNCHANGED, written_before=10**18 + 30)
    assert check_output_folder(out, overwrite=True) == out


def test_old_marker_gets_stamps_once_and_edits_stay_kept(tmp_path):
    from napari_senca.outputs import changed_outputs, upgrade_marker

    out = _old_output(tmp_path / "A1")
    os.utime(out / "clusters.csv", ns=(10**18 + 40,) * 2)  # edited after the last batch
    assert upgrade_marker(out, written_before=10**18 + 30) == ["clusters.csv"]
    stamps = read_marker(out)["stamps"]
    assert sorted(stamps) == ["annotated.h5ad", "markers.csv"] and "sha256" in stamps["markers.csv"]
    assert upgrade_marker(out, written_before=10**18 + 50) is None  # once: a newer cohort.csv changes nothing
    assert changed_outputs(out, written_before=10**18 + 50) == ["clusters.csv"]
    os.utime(out / "markers.csv", ns=(10**18 + 60,) * 2)  # a copy of the cohort (new times, same content)
    assert changed_outputs(out) == ["clusters.csv"]
    (out / "markers.csv").write_text("markers.cs_")  # same size, another content
    assert changed_outputs(out) == ["clusters.csv", "markers.csv"]


def test_an_unreadable_output_counts_as_changed(tmp_path, monkeypatch):
    from napari_senca import output_marker
    from napari_senca.errors import KeptOutputError
    from napari_senca.outputs import UNCHANGED, changed_outputs, upgrade_marker

    out = _previous_output(tmp_path / "A1")
    os.utime(out / "clusters.csv", ns=(10**18,) * 2)  # same size, another time: it must be read

    def denied(p):
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setattr(output_marker, "_sha256", denied)
    assert changed_outputs(out) == ["clusters.csv"]
    with pytest.raises(KeptOutputError, match="clusters.csv changed"):
        check_output_folder(out, overwrite=UNCHANGED)
    old = _old_output(tmp_path / "B1")  # upgrading: a file it cannot hash gets no record (counts as changed)
    assert upgrade_marker(old, written_before=10**18 + 30) == []
    assert changed_outputs(old) == ["annotated.h5ad", "clusters.csv", "markers.csv"]


def test_a_marker_temp_file_left_by_a_killed_run_does_not_block_the_folder(tmp_path):
    from napari_senca.outputs import UNCHANGED

    out = _previous_output(tmp_path / "A1")
    (out / f".{MARKER}.k3j9x2.tmp").write_text("{")  # killed between writing and renaming the marker
    assert check_output_folder(out, overwrite=UNCHANGED) == out
    (out / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="1 file"):
        check_output_folder(out, overwrite=True)


def test_restamp_records_only_what_it_is_given(tmp_path):
    from napari_senca.outputs import changed_outputs, restamp

    out = _previous_output(tmp_path / "A1")
    mode = (out / MARKER).stat().st_mode
    (out / "annotated.h5ad").write_text("rewritten by napari-senca (cohort region)")
    (out / "clusters.csv").write_text("edited by the user")
    restamp(out, ["annotated.h5ad"])
    assert changed_outputs(out) == ["clusters.csv"]
    assert (out / MARKER).stat().st_mode == mode
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "annotated.h5ad", "clusters.csv"]


def _count_hashes(monkeypatch):
    from napari_senca import output_marker

    hashed, sha = [], output_marker._sha256
    monkeypatch.setattr(output_marker, "_sha256", lambda p: hashed.append(p.name) or sha(p))
    return hashed


def test_change_check_hashes_only_same_size_with_another_time(tmp_path, monkeypatch):
    from napari_senca.outputs import changed_outputs

    out = _previous_output(tmp_path / "A1")
    hashed = _count_hashes(monkeypatch)
    assert changed_outputs(out) == [] and hashed == []  # size and time as recorded: not read
    (out / "clusters.csv").write_text("a longer clusters.csv")
    assert changed_outputs(out) == ["clusters.csv"] and hashed == []  # another size: changed, not read
    os.utime(out / "annotated.h5ad", ns=(1, 1))
    assert changed_outputs(out) == ["clusters.csv"] and hashed == ["annotated.h5ad"]


def test_restamp_does_not_read_files_as_recorded(tmp_path, monkeypatch):
    from napari_senca.outputs import changed_outputs, restamp

    out = _previous_output(tmp_path / "A1")
    hashed = _count_hashes(monkeypatch)
    os.utime(out / MARKER, ns=(1, 1))
    restamp(out, ["annotated.h5ad", "clusters.csv"])
    assert hashed == [] and (out / MARKER).stat().st_mtime_ns == 1  # nothing new: not even rewritten
    (out / "clusters.csv").write_text("rewritten by napari-senca")
    restamp(out, ["annotated.h5ad", "clusters.csv"])
    assert hashed == ["clusters.csv"] and changed_outputs(out) == []


def test_a_folder_output_is_stamped_by_its_listing(tmp_path, monkeypatch):
    from napari_senca.outputs import UNCHANGED, changed_outputs, file_stamps

    out = tmp_path / "A1"
    store = out / "annotated.zarr" / "tables" / "table"
    store.mkdir(parents=True)
    (store / "zarr.json").write_text("{}")
    (out / "annotated.zarr" / "zarr.json").write_text("{}")
    files = ["annotated.zarr"]
    write_marker(out, files, extra={"stamps": file_stamps(out, files)})
    hashed = _count_hashes(monkeypatch)
    assert changed_outputs(out) == [] and hashed == []
    assert check_output_folder(out, overwrite=UNCHANGED) == out
    (store / "zarr.json").write_text('{"edited": 1}')
    assert changed_outputs(out) == ["annotated.zarr"]
    (store / "zarr.json").unlink()
    assert changed_outputs(out) == ["annotated.zarr"]
