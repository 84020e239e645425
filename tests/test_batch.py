"""``napari-senca batch``: many sections on a Dask LocalCluster, resumable, failures recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import build_st_folder
from napari_senca.batch import collect_sections, read_manifest, run_batch
from napari_senca.cli import main
from napari_senca.config import SencaConfig
from napari_senca.errors import ConfigError, DataError
from napari_senca.outputs import MARKER

pytest.importorskip("distributed")

FAST = ["--epochs", "1", "--no-image", "--n-clusters", "2", "--no-match"]


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster with two single-threaded worker processes for the module (workers import torch once)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def _cohort(tmp_path: Path) -> list[Path]:
    """Three tiny legacy ST sections (12 spots each); the third has a broken count file."""
    secs = [build_st_folder(tmp_path / "data" / f"S{i}", image=False, seed=i) for i in range(3)]
    (secs[2] / "counts.tsv.gz").write_bytes(b"not gzip at all")
    return secs


def _batch_of_three(tmp_path: Path, cluster) -> tuple[list[str], Path]:
    """Three tiny sections batched once (matching regions: batch rewrites its own files); the arguments, the cohort."""
    secs = [build_st_folder(tmp_path / "data" / f"S{i}", image=False, seed=i) for i in range(3)]
    out = tmp_path / "cohort"
    fast = ["--epochs", "1", "--no-image", "--n-clusters", "2"]
    args = ["batch", *map(str, secs), "--out", str(out), *fast, "--scheduler", cluster.scheduler_address]
    assert main(args) == 0
    return args, out


def _marker(folder: Path) -> dict:
    return json.loads((folder / MARKER).read_text())


def test_batch_local_cluster_failure_resume_and_config_change(tmp_path, capsys, cluster):
    secs = _cohort(tmp_path)
    out = tmp_path / "cohort"
    args = ["batch", *map(str, secs), "--out", str(out), *FAST, "--scheduler", cluster.scheduler_address]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 of 3 sections failed" in err
    table = pd.read_csv(out / "cohort.csv")
    assert list(table["section"]) == ["S0", "S1", "S2"]
    assert list(table["status"]) == ["done", "done", "failed"]
    assert table["worker"].notna().sum() == 3  # ran on the cluster
    assert "counts.tsv.gz" in table.loc[2, "error"] and "\n" not in table.loc[2, "error"]
    assert (table.loc[:1, "spots"] == 12).all() and (table.loc[:1, "regions"] == 2).all()
    assert table.loc[:1, "ari"].notna().all() and table.loc[:1, "time_train"].notna().all()
    assert set(table.loc[:1, "device"]) == {"cpu"}
    assert table.loc[:1, "cpu_threads"].ge(1).all()  # each section's share of the host's cores, as it trained
    assert (out / "cohort.png").stat().st_size > 1000
    for s in ("S0", "S1"):  # exactly what `run` writes
        assert sorted(p.name for p in (out / s).iterdir()) == sorted(
            ["annotated.h5ad", "clusters.csv", "markers.csv", "overview.png", MARKER]
        )
    assert not (out / "S2").exists()
    before = {s: _marker(out / s)["time"] for s in ("S0", "S1")}
    mtimes = {s: (out / s / "annotated.h5ad").stat().st_mtime_ns for s in ("S0", "S1")}

    # second run: the completed sections are skipped (not retrained), the failed one is retried
    build_st_folder(secs[2], image=False, seed=2)  # repaired
    assert main(args) == 0
    table = pd.read_csv(out / "cohort.csv")
    assert list(table["status"]) == ["skipped", "skipped", "done"]
    assert table.loc[:1, "spots"].eq(12).all()  # the skipped rows keep their numbers
    for s in ("S0", "S1"):
        assert _marker(out / s)["time"] == before[s]
        assert (out / s / "annotated.h5ad").stat().st_mtime_ns == mtimes[s]

    # a changed setting re-runs every section; a touched input re-runs its section only
    args[args.index("--epochs") + 1] = "2"
    assert main(args) == 0
    assert list(pd.read_csv(out / "cohort.csv")["status"]) == ["done", "done", "done"]
    assert _marker(out / "S0")["config"]["epochs"] == 2


def test_batch_keeps_sections_the_user_changed_unless_overwrite(tmp_path, capsys, cluster):
    import anndata

    args, out = _batch_of_three(tmp_path, cluster)
    a = anndata.read_h5ad(out / "S0" / "annotated.h5ad")  # a review saved into S0, as napari's export does
    a.uns["region_names"] = {"0": "tumour", "1": "stroma"}
    a.write_h5ad(out / "S0" / "annotated.h5ad")
    reviewed = (out / "S0" / "annotated.h5ad").read_bytes()
    (out / "S1" / "notes.txt").write_text("mine")
    capsys.readouterr()

    args[args.index("--epochs") + 1] = "2"  # a changed setting re-runs S2 only: S0 and S1 hold the user's work
    assert main(args) == 1
    printed = capsys.readouterr()
    table = pd.read_csv(out / "cohort.csv")
    assert list(table["status"]) == ["kept", "kept", "done"]
    assert "annotated.h5ad changed since napari-senca wrote it" in table.loc[0, "error"]
    assert "did not write (notes.txt)" in table.loc[1, "error"]
    assert table.loc[:1, "spots"].eq(12).all()  # the kept rows show the result they hold
    assert (out / "S0" / "annotated.h5ad").read_bytes() == reviewed
    assert (out / "S1" / "notes.txt").read_text() == "mine"
    assert "1 done, 0 up to date, 2 kept, 0 failed" in printed.out
    assert "S0: kept:" in printed.err and "2 of 3 sections kept as they were, not re-run (S0, S1)" in printed.err

    assert main([*args, "--overwrite"]) == 1  # asked for: the edited output is replaced, never a foreign file
    assert list(pd.read_csv(out / "cohort.csv")["status"]) == ["done", "kept", "skipped"]
    assert _marker(out / "S0")["config"]["epochs"] == 2
    assert (out / "S1" / "notes.txt").read_text() == "mine"


def test_batch_manifest_overrides_from_python(tmp_path, cluster):
    secs = [build_st_folder(tmp_path / f"S{i}", image=False, seed=i) for i in range(2)]
    man = tmp_path / "cohort.csv"
    pd.DataFrame(
        {"path": ["S0", str(secs[1]), "S0"], "name": ["first", "second", "bad"], "n_clusters": [3, "", 1]}
    ).to_csv(man, index=False)
    jobs = read_manifest(man)
    assert [j.name for j in jobs] == ["first", "second", "bad"]
    assert jobs[0].path == str(tmp_path / "S0") and jobs[0].overrides == {"n_clusters": 3}
    assert jobs[1].overrides == {}
    cfg = SencaConfig(epochs=1, use_image=False, n_clusters=2)
    res = run_batch([str(man)], tmp_path / "out", cfg, scheduler=cluster.scheduler_address)
    assert res.n_failed == 1  # the bad row is recorded, the others ran
    assert "n_clusters must be >= 2" in res.table.loc[2, "error"]
    assert list(res.table["regions"])[:2] == [3, 2]
    assert _marker(tmp_path / "out" / "first")["config"]["n_clusters"] == 3
    assert res.vocabulary is not None and set(res.vocabulary["section"]) == {"first", "second"}
    csv = pd.read_csv(tmp_path / "out" / "second" / "clusters.csv")
    assert csv["cohort_region"].notna().all()


def test_manifest_and_names_errors(tmp_path):
    man = tmp_path / "m.csv"
    man.write_text("path,epochz\nx,1\n")
    with pytest.raises(DataError, match="unknown column"):
        read_manifest(man)
    man.write_text("path,epochs\nx,many\n")
    with pytest.raises(DataError, match="row 2: setting epochs"):
        read_manifest(man)
    with pytest.raises(ConfigError, match="used twice"):
        collect_sections([str(tmp_path / "a" / "S1"), str(tmp_path / "b" / "S1")])
    with pytest.raises(ConfigError, match="matches no"):
        collect_sections([str(tmp_path / "nothing*")])
    (tmp_path / "g1").mkdir()
    (tmp_path / "g2").mkdir()
    assert [j.name for j in collect_sections([str(tmp_path / "g*")])] == ["g1", "g2"]
    jobs = collect_sections([str(tmp_path / "her2st")], section="A1, B1")
    assert [(j.name, j.section) for j in jobs] == [("A1", "A1"), ("B1", "B1")]


def test_batch_refuses_a_foreign_folder(tmp_path, capsys):
    sec = build_st_folder(tmp_path / "S0", image=False)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert main(["batch", str(sec), "--out", str(out), *FAST]) == 2
    assert "not a napari-senca cohort output" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep"
    assert main(["batch", str(sec), "--out", str(sec / "res"), *FAST]) == 2  # inside an input
    assert not (sec / "res").exists()


def test_local_cluster_is_sized_to_the_machine(monkeypatch):
    import distributed

    from napari_senca.batch import scheduler

    made = {}

    class FakeCluster:
        def __init__(self, **kw):
            made.update(kw)

    monkeypatch.setattr(distributed, "LocalCluster", FakeCluster)
    class FakeClient:
        def __init__(self, c, **kw):
            self.c = c

    monkeypatch.setattr(distributed, "Client", FakeClient)
    monkeypatch.setattr(scheduler.os, "cpu_count", lambda: 4)
    scheduler._client("local", 9, None)
    assert made["n_workers"] == 4 and made["threads_per_worker"] == 1 and made["processes"] is True
    scheduler._client("local", 3, None)
    assert made["n_workers"] == 3
    scheduler._client("local", 9, 2)
    assert made["n_workers"] == 2


def test_gpu_resources_requested_only_when_workers_have_them():
    from napari_senca.batch import scheduler

    class C:
        def __init__(self, res):
            self.res = res

        def scheduler_info(self):
            w = {"resources": self.res, "nthreads": 1, "metrics": {"cpu_count": 4}}
            return {"workers": {"tcp://h1:1": {**w, "host": "h1"}, "tcp://h1:2": {**w, "host": "h1"},
                                "tcp://h2:1": {**w, "host": "h2"}}}

    assert scheduler._workers_have_gpu(C({"GPU": 1}))
    assert not scheduler._workers_have_gpu(C({}))
    assert scheduler._threads_per_task(C({})) == 2  # two single-threaded workers share h1's 4 cores


def test_cohort_folder_keeps_sections_of_earlier_runs(tmp_path):
    from napari_senca.batch.folder import _check_root
    from napari_senca.errors import OutputError
    from napari_senca.outputs import write_marker

    root = tmp_path / "cohort"
    (root / "A").mkdir(parents=True)
    write_marker(root, ["cohort.csv"], extra={"cohort": True, "sections": ["A"]})
    (root / "cohort.csv").write_text("section\nA\n")
    assert _check_root(root, [], ["B"]) == root  # a later run with other sections is fine
    (root / "mine.txt").write_text("keep")
    with pytest.raises(OutputError, match="did not write"):
        _check_root(root, [], ["B"])
    assert (root / "mine.txt").exists()


def test_ctrl_c_says_the_cohort_resumes(tmp_path, capsys, monkeypatch):
    from napari_senca import batch

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "run_batch", interrupted)
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err.strip().endswith("run the same command to resume")


def test_batch_reads_visium_hd_at_the_asked_bin_size(tmp_path, cluster, visium_hd_folder):
    hd = [visium_hd_folder(f"HD{i}", slide=False, seed=i) for i in range(2)]
    man = tmp_path / "cohort.csv"
    pd.DataFrame({"path": [str(hd[0]), str(hd[1])], "name": ["coarse", "fine"], "bin_size": [16, ""]}).to_csv(
        man, index=False
    )
    assert [j.bin_size for j in read_manifest(man)] == [16, None]
    cfg = SencaConfig(epochs=1, use_image=False, n_clusters=2)
    res = run_batch([str(man)], tmp_path / "out", cfg, scheduler=cluster.scheduler_address, bin_size=8,
                    match_regions=False)  # fmt: skip
    assert res.n_failed == 0, res.table["error"].tolist()
    spots = dict(zip(res.table["section"], res.table["spots"], strict=True))
    assert spots == {"coarse": 12 * 10 - 1, "fine": 24 * 20 - 1}  # the row's 16 um; --bin-size 8 for the other
    assert _marker(tmp_path / "out" / "fine")["request"]["bin_size"] == 8
    man.write_text(f"path,bin_size\n{hd[0]},sixteen\n")
    with pytest.raises(DataError, match="row 2: bin_size must be a number"):
        read_manifest(man)


def test_batch_cli_bin_size_reaches_joint_training(tmp_path, visium_hd_folder, capsys):
    hd = [str(visium_hd_folder(f"HD{i}", slide=False, seed=i)) for i in range(2)]
    names = ["HD0", "HD1"]
    man = tmp_path / "m.csv"
    pd.DataFrame({"path": hd, "name": names}).to_csv(man, index=False)
    rc = main(["batch", str(man), "--out", str(tmp_path / "out"), "--joint", "--bin-size", "8", *FAST])
    assert rc == 0, capsys.readouterr().err
    t = pd.read_csv(tmp_path / "out" / "cohort.csv")
    assert list(t["spots"]) == [24 * 20 - 1] * 2  # 8 um bins, not the default 16 um


def test_joint_batch_keeps_a_section_the_user_changed(tmp_path, capsys):
    secs = [str(build_st_folder(tmp_path / "data" / f"S{i}", image=False, seed=i)) for i in range(3)]
    out = tmp_path / "cohort"
    args = ["batch", *secs, "--out", str(out), "--joint", *FAST]
    assert main(args) == 0, capsys.readouterr().err
    (out / "S1" / "clusters.csv").write_text("spot,cluster,name\nx,0,my tumour\n")  # the user's renaming
    assert main(args) == 1  # joint runs always retrain: S1 is left out, the others train together
    assert list(pd.read_csv(out / "cohort.csv")["status"]) == ["done", "kept", "done"]
    assert "my tumour" in (out / "S1" / "clusters.csv").read_text()
    assert main([*args, "--overwrite"]) == 0
    assert "my tumour" not in (out / "S1" / "clusters.csv").read_text()


def _section_output(folder: Path, seed: int) -> Path:
    """A finished section output as batch writes it (regions: the true ones), its marker recording every file."""
    from napari_senca.datasets import synthetic_section
    from napari_senca.outputs import file_stamps, write_marker
    from napari_senca.section import CLUSTER_KEY

    a = synthetic_section(n_side=12, n_regions=3, with_image=False, seed=seed)
    a.obs[CLUSTER_KEY] = pd.Categorical(a.obs["label"].astype(str).str[-1])
    folder.mkdir(parents=True)
    a.write_h5ad(folder / "annotated.h5ad")
    pd.DataFrame({"spot": a.obs_names, "cluster": a.obs[CLUSTER_KEY].astype(str)}).to_csv(folder / "clusters.csv")
    for name in ("markers.csv", "overview.png"):
        (folder / name).write_bytes(b"x" * 1000)
    files = ["annotated.h5ad", "clusters.csv", "markers.csv", "overview.png"]
    write_marker(folder, files, extra={"stamps": file_stamps(folder, files)})
    return folder


def test_matching_hashes_only_the_files_it_rewrote(tmp_path, monkeypatch):
    from napari_senca import output_marker
    from napari_senca.batch.run import _match_regions
    from napari_senca.outputs import changed_outputs

    outs = [_section_output(tmp_path / f"S{i}", seed=i) for i in range(3)]
    table = pd.DataFrame({"section": ["S0", "S1", "S2"], "status": "done", "out": list(map(str, outs))})
    hashed, sha = [], output_marker._sha256
    monkeypatch.setattr(output_marker, "_sha256", lambda p: hashed.append(p.name) or sha(p))
    assert _match_regions(table, None, 0.1) is not None
    assert sorted(hashed) == sorted(["annotated.h5ad", "clusters.csv"] * 3)  # only what matching rewrote
    assert [changed_outputs(o) for o in outs] == [[], [], []]


def test_matching_stopped_partway_records_what_it_rewrote(tmp_path, monkeypatch):
    from napari_senca import export
    from napari_senca.batch.run import _match_regions
    from napari_senca.outputs import changed_outputs

    outs = [_section_output(tmp_path / f"S{i}", seed=i) for i in range(3)]
    table = pd.DataFrame({"section": ["S0", "S1", "S2"], "status": "done", "out": list(map(str, outs))})

    write = export.atomic_write

    def disk_full(path, *a, **k):
        if path == outs[1] / "clusters.csv":  # matching stops in S1 (disk full, Ctrl-C...)
            raise OSError(28, "No space left on device")
        return write(path, *a, **k)

    monkeypatch.setattr(export, "atomic_write", disk_full)
    with pytest.raises(OSError, match="No space"):
        _match_regions(table, None, 0.1)
    assert [changed_outputs(o) for o in outs] == [[], [], []]  # what was rewritten before the stop is recorded


def _as_earlier_version_with_a_review(out: Path, sections: tuple[str, ...]) -> tuple[bytes, int]:
    """Make a cohort look as an earlier version left it (section markers without stamps, as old as before),
    then save a review into S0's clusters.csv a second after cohort.csv. Returns the review and cohort.csv's time."""
    import os

    for s in sections:
        m, t = _marker(out / s), (out / s / MARKER).stat().st_mtime_ns
        del m["stamps"]
        (out / s / MARKER).write_text(json.dumps(m))
        os.utime(out / s / MARKER, ns=(t, t))
    t = (out / "cohort.csv").stat().st_mtime_ns
    (out / "S0" / "clusters.csv").write_text("spot,cluster,name\nx,0,my tumour\n")  # the user's review
    os.utime(out / "S0" / "clusters.csv", ns=(t + 10**9, t + 10**9))
    return (out / "S0" / "clusters.csv").read_bytes(), t


def test_batch_resumes_a_cohort_of_an_earlier_version_and_keeps_current_edits(tmp_path, capsys, cluster):

    args, out = _batch_of_three(tmp_path, cluster)
    reviewed, _ = _as_earlier_version_with_a_review(out, ("S0", "S1", "S2"))
    capsys.readouterr()

    assert main(args) == 1  # S0 is up to date but holds the review: kept, not rewritten by matching
    table = pd.read_csv(out / "cohort.csv")
    assert list(table["status"]) == ["kept", "skipped", "skipped"]
    assert "clusters.csv changed since napari-senca wrote it" in table.loc[0, "error"]
    assert (out / "S0" / "clusters.csv").read_bytes() == reviewed

    args[args.index("--epochs") + 1] = "2"  # a changed setting re-runs the untouched sections of the old cohort
    assert main(args) == 1
    assert list(pd.read_csv(out / "cohort.csv")["status"]) == ["kept", "done", "done"]
    assert main(args) == 1  # still kept once cohort.csv is newer than the review
    assert list(pd.read_csv(out / "cohort.csv")["status"]) == ["kept", "skipped", "skipped"]
    assert (out / "S0" / "clusters.csv").read_bytes() == reviewed


def test_matching_leaves_a_file_the_user_saves_while_it_runs(tmp_path, monkeypatch):
    import os

    from napari_senca import vocabulary
    from napari_senca.batch.run import _match_regions
    from napari_senca.outputs import changed_outputs

    outs = [_section_output(tmp_path / f"S{i}", seed=i) for i in range(3)]
    table = pd.DataFrame({"section": ["S0", "S1", "S2"], "status": "done", "out": list(map(str, outs)), "error": None})
    read = vocabulary._read

    def read_then_user_saves(path):
        a = read(path)
        if path == outs[1] / "annotated.h5ad":  # the review of S1 is saved after matching read it
            (outs[1] / "clusters.csv").write_text("spot,cluster,name\nx,0,my tumour\n")
            os.utime(outs[1] / "clusters.csv", ns=(10**18, 10**18))
        return a

    monkeypatch.setattr(vocabulary, "_read", read_then_user_saves)
    assert _match_regions(table, None, 0.1) is not None
    assert (outs[1] / "clusters.csv").read_text() == "spot,cluster,name\nx,0,my tumour\n"
    assert changed_outputs(outs[1]) == ["clusters.csv"]  # not recorded as napari-senca's
    assert list(table["status"]) == ["done", "kept", "done"] and "while regions were matched" in table.loc[1, "error"]
    assert "cohort_region" in pd.read_csv(outs[2] / "clusters.csv").columns


def test_an_old_cohort_keeps_edits_in_sections_a_later_batch_left_out(tmp_path, capsys, cluster):
    import os

    secs = [build_st_folder(tmp_path / "data" / f"S{i}", image=False, seed=i) for i in range(2)]
    out = tmp_path / "cohort"
    fast = ["--epochs", "1", "--no-image", "--n-clusters", "2", "--scheduler", cluster.scheduler_address]
    assert main(["batch", *map(str, secs), "--out", str(out), *fast]) == 0
    reviewed, t = _as_earlier_version_with_a_review(out, ("S0", "S1"))

    assert main(["batch", str(secs[1]), "--out", str(out), *fast]) == 0  # S0 left out; cohort.csv moves on
    os.utime(out / "cohort.csv", ns=(t + 2 * 10**9,) * 2)  # written after the review (the batch ran later)
    assert main(["batch", *map(str, secs), "--out", str(out), *fast]) == 1
    assert list(pd.read_csv(out / "cohort.csv")["status"]) == ["kept", "skipped"]
    assert (out / "S0" / "clusters.csv").read_bytes() == reviewed
