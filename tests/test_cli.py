"""The napari-senca command line."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from napari_senca import cli, export
from napari_senca.cli import main

HAS_PIPELINE = importlib.util.find_spec("napari_senca.pipeline") is not None
needs_pipeline = pytest.mark.skipif(not HAS_PIPELINE, reason="napari_senca.pipeline not available yet")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-senca: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_info_st(st_folder, capsys):
    folder = st_folder()
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "format:        st" in out
    assert "spots:         12" in out and "genes:         5" in out
    assert "scale factor 0.5" in out
    assert "2 regions (stroma 6, tumour 5); 1 unlabelled" in out
    assert "spot spacing:  100.0 full-res px" in out and "spot diameter: 50.0 full-res px" in out
    assert "library id:    S1" in out


def test_info_without_image_or_labels(st_folder, capsys):
    folder = st_folder(image=False, labels=False)
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "image:         none" in out and "labels:        none" in out


def test_info_visium_and_repo(visium_folder, her2st_repo, capsys):
    assert main(["info", str(visium_folder())]) == 0
    out = capsys.readouterr().out
    assert "format:        visium" in out and "hires" in out and "lowres" in out
    assert main(["info", str(her2st_repo), "--section", "A1"]) == 0
    assert "her2st_repo" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda f: (f / "spots.tsv").unlink(), "spot positions file not found"),
        (lambda f: (f / "he.json").write_text("{"), "malformed JSON"),
        (lambda f: (f / "he.png").write_bytes(b"xx"), "not a readable image"),
    ],
)
def test_info_errors_are_one_line(st_folder, capsys, make, match):
    folder = st_folder()
    make(folder)
    assert main(["info", str(folder)]) == 2
    assert match in _one_line_error(capsys)


def test_info_unrecognised_and_missing(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert "not a recognised section" in _one_line_error(capsys)
    assert main(["info", str(tmp_path / "nope")]) == 2
    assert "not found" in _one_line_error(capsys)


def test_usage(capsys):
    assert main([]) == 2
    assert main(["--version"]) == 0
    assert main(["info"]) == 2  # argparse usage error
    assert main(["run", "x"]) == 2  # --out is required


def test_refuses_non_empty_out(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["run", "sample:synthetic", "--out", str(out)]) == 2
    assert "not empty (use --overwrite" in _one_line_error(capsys)
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["run", "sample:synthetic", "--out", str(f)]) == 2
    assert "not a folder" in _one_line_error(capsys)


def test_bad_settings_are_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "sample:synthetic", "--out", str(out), "--epochs", "0"]) == 2
    assert "epochs" in _one_line_error(capsys)
    assert main(["run", "sample:synthetic", "--out", str(out), "--image-weights", str(tmp_path / "w.pth")]) == 2
    assert "--image-weights" in _one_line_error(capsys)
    assert not out.exists()


@pytest.fixture
def fast_layout(monkeypatch):
    """PCA instead of UMAP in the overview (UMAP's JIT costs seconds)."""
    monkeypatch.setattr(export, "embedding_2d", lambda e, seed=0: (np.asarray(e, float)[:, :2], "PCA"))


@pytest.fixture
def fake_pipeline(monkeypatch, fast_layout):
    """Replace training by a generator that 'clusters' spots by their grid column."""
    pipeline = pytest.importorskip("napari_senca.pipeline")

    def run_iter(adata, config):
        yield pipeline.Progress("train", 1, 1, "fake epoch", {"total": 0.0})
        k = config.n_clusters
        labels = (adata.obs["array_col"].to_numpy().astype(int) % k)
        emb = np.random.default_rng(0).normal(size=(adata.n_obs, 4)).astype(np.float32)
        return SimpleNamespace(labels=labels, embedding=emb, n_clusters=k, device="cpu", image_weights_used="none")

    def annotate(adata, result):
        adata.obs["senca_cluster"] = pd.Categorical([str(v) for v in result.labels])
        adata.obsm["X_senca"] = result.embedding
        adata.uns["senca"] = {"n_clusters": result.n_clusters}
        return adata

    monkeypatch.setattr(pipeline, "run_senca_iter", run_iter)
    monkeypatch.setattr(pipeline, "annotate", annotate)


def _no_temp_left(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if p.name.startswith(".")]


@pytest.fixture
def one_thread():
    """Tiny models train much faster on one thread (and CI machines are shared)."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@needs_pipeline
def test_run_real_pipeline(st_folder, tmp_path, capsys, monkeypatch, fast_layout, one_thread):
    # the real pipeline end to end, with a small model so the test stays fast
    small = {"steps_per_epoch": 3, "embed_dim": 16, "hidden_dim": 32, "shared_dim": 8}
    config = cli._config
    monkeypatch.setattr(cli, "_config", lambda args: config(args).replace(**small))
    folder = st_folder(nx=6, ny=5, n_genes=30, image=False, extra_spots=0)
    out = tmp_path / "res"
    assert main(["run", str(folder), "--out", str(out), "--epochs", "1", "--no-image", "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert "ARI:" in captured.out and "2 regions (the number of labelled regions)" in captured.err
    assert sorted(p.name for p in out.iterdir()) == sorted(cli.OUTPUT_FILES)
    from napari_senca.io import read_h5ad

    a = read_h5ad(out / "annotated.h5ad")
    assert "senca_cluster" in a.obs and "X_senca" in a.obsm and "senca" in a.uns
    assert a.obs["senca_cluster"].nunique() == 2
    df = pd.read_csv(out / "clusters.csv")
    assert list(df.columns[:6]) == ["spot_id", "x", "y", "pixel_x", "pixel_y", "cluster"]
    assert len(df) == a.n_obs == 30
    _no_temp_left(tmp_path)


def test_run_overwrite(st_folder, tmp_path, capsys, fake_pipeline):
    folder = st_folder(nx=6, ny=5, n_genes=30)
    out = tmp_path / "res"
    args = ["run", str(folder), "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "ARI:" in captured.out and "regions: 0: 15, 1: 15" in captured.out
    assert sorted(p.name for p in out.iterdir()) == sorted(cli.OUTPUT_FILES)
    assert len(pd.read_csv(out / "markers.csv")) > 0
    assert main(args) == 2
    assert "not empty" in _one_line_error(capsys)
    assert main([*args, "--overwrite", "--n-clusters", "3"]) == 0
    assert pd.read_csv(out / "clusters.csv")["cluster"].nunique() == 3
    _no_temp_left(tmp_path)
    # no labels: 7 regions by default (capped at the number of spots)
    nolab = st_folder("S2", nx=4, ny=3, n_genes=30, labels=False, image=False)
    assert main(["run", str(nolab), "--out", str(tmp_path / "r2")]) == 0
    assert "7 regions (default)" in capsys.readouterr().err


def test_ctrl_c_during_training(tmp_path, capsys, monkeypatch, fake_pipeline):
    import napari_senca.pipeline as pipeline

    def boom(adata, config):
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(pipeline, "run_senca_iter", boom)
    out = tmp_path / "res"
    assert main(["run", "sample:synthetic", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "napari-senca: interrupted; no output was written"
    assert not out.exists()
    _no_temp_left(tmp_path)


def test_ctrl_c_while_writing(tmp_path, monkeypatch, fake_pipeline):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "write_overview_png", boom)
    out = tmp_path / "res"
    assert main(["run", "sample:synthetic", "--out", str(out)]) == 130
    assert not out.exists()
    _no_temp_left(tmp_path)
    # an existing result survives an interrupted --overwrite
    out.mkdir()
    (out / "old.txt").write_text("keep")
    assert main(["run", "sample:synthetic", "--out", str(out), "--overwrite"]) == 130
    assert (out / "old.txt").read_text() == "keep"
    _no_temp_left(tmp_path)


def test_info_real_data(shared_data, capsys):
    assert main(["info", str(shared_data / "dlpfc_151510")]) == 0
    out = capsys.readouterr().out
    assert "spots:         4634" in out and "genes:         500" in out and "lowres 600 x 600 px" in out
    assert main(["info", str(shared_data / "her2st" / "C1")]) == 0
    out = capsys.readouterr().out
    assert "spots:         176" in out and "image:         none" in out


@needs_pipeline
@pytest.mark.parametrize("kind", ["visium", "h5ad"])
def test_run_on_space_ranger_and_h5ad(kind, visium_folder, tmp_path, capsys, monkeypatch, fast_layout, one_thread):
    # `run` on the other two inputs: a Space Ranger folder (with its image) and an h5ad we wrote
    small = {"steps_per_epoch": 2, "embed_dim": 16, "hidden_dim": 32, "shared_dim": 8, "patch_size": 32}
    config = cli._config
    monkeypatch.setattr(cli, "_config", lambda args: config(args).replace(**small))
    src = visium_folder()
    if kind == "h5ad":
        from napari_senca.io import read_section, write_h5ad

        src = write_h5ad(read_section(src), tmp_path / "section.h5ad")
    out = tmp_path / "res"
    rc = main(["run", str(src), "--out", str(out), "--epochs", "1", "--n-clusters", "2", "--image-weights", "none"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted(cli.OUTPUT_FILES)
    from napari_senca.io import read_h5ad

    a = read_h5ad(out / "annotated.h5ad")
    assert a.obs["senca_cluster"].nunique() == 2
    assert not a.uns["senca"]["rna_only"]  # the image branch ran
