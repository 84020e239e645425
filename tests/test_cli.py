"""The napari-senca command line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_senca import cli, export
from napari_senca.cli import main
from napari_senca.cli import run as cli_run
from napari_senca.outputs import MARKER, write_marker

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
    for extra in ([], ["--overwrite"]):  # a folder the tool did not write is never replaced
        assert main(["run", "sample:synthetic", "--out", str(out), *extra]) == 2
        assert "not a napari-senca output" in _one_line_error(capsys)
        assert (out / "keep.txt").read_text() == "x"
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
    config = cli_run._config  # looked up by the run command in napari_senca.cli.run
    monkeypatch.setattr(cli_run, "_config", lambda args: config(args).replace(**small))
    folder = st_folder(nx=6, ny=5, n_genes=30, image=False, extra_spots=0)
    out = tmp_path / "res"
    assert main(["run", str(folder), "--out", str(out), "--epochs", "1", "--no-image", "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert "ARI:" in captured.out and "2 regions (the number of labelled regions)" in captured.err
    assert sorted(p.name for p in out.iterdir()) == sorted([*cli.OUTPUT_FILES, MARKER])
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
    assert sorted(p.name for p in out.iterdir()) == sorted([*cli.OUTPUT_FILES, MARKER])
    assert len(pd.read_csv(out / "markers.csv")) > 0
    assert main(args) == 2
    assert "holds a previous result (use --overwrite" in _one_line_error(capsys)
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
    write_marker(out, ["old.txt"])
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
@pytest.mark.parametrize(("kind", "fusion"), [("visium", "rna-led"), ("h5ad", "rna-led"), ("visium", "gated")])
def test_run_on_space_ranger_and_h5ad(kind, fusion, visium_folder, tmp_path, capsys, monkeypatch, fast_layout,
                                      one_thread):
    # `run` on the other two inputs: a Space Ranger folder (with its image) and an h5ad we wrote
    small = {"steps_per_epoch": 2, "embed_dim": 16, "hidden_dim": 32, "shared_dim": 8, "patch_size": 32}
    config = cli_run._config  # looked up by the run command in napari_senca.cli.run
    monkeypatch.setattr(cli_run, "_config", lambda args: config(args).replace(**small))
    src = visium_folder()
    if kind == "h5ad":
        from napari_senca.io import read_section, write_h5ad

        src = write_h5ad(read_section(src), tmp_path / "section.h5ad")
    out = tmp_path / "res"
    rc = main(["run", str(src), "--out", str(out), "--epochs", "1", "--n-clusters", "2", "--image-weights", "none",
               *(["--fusion", fusion] if fusion != "rna-led" else [])])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    # which fusion, and how much the H&E counted (docs/method.md, "Fusion")
    assert f"; {fusion} fusion, image counted " in captured.out
    assert sorted(p.name for p in out.iterdir()) == sorted([*cli.OUTPUT_FILES, MARKER])
    from napari_senca.io import read_h5ad

    a = read_h5ad(out / "annotated.h5ad")
    assert a.obs["senca_cluster"].nunique() == 2
    assert not a.uns["senca"]["rna_only"]  # the image branch ran
    assert a.uns["senca"]["fusion"] == fusion
    if fusion == "gated":  # the gate is measured (random weights are not switched off for a measured gate)
        assert "modality_agreement" in a.uns["senca"] and a.uns["senca"]["config"]["skip_mode"] == "both"
    else:  # random weights do not count in the default fusion
        assert a.uns["senca"]["image_gate"] == 0.0
        # the reconstruction is clustered, with the library size as far as the expression explains it
        gate = a.uns["senca"]["library_gate"]
        assert 0.0 <= gate <= 1.0 and f"; library size counted {gate:.2f} (0-1); " in captured.out
        assert a.obsm["X_senca"].shape[1] == a.uns["senca"]["config"]["recon_pcs"] + (gate > 0)
    # random image weights are said plainly, on one line, and recorded
    err = captured.err
    assert "napari-senca: warning: image features come from random weights" in err
    # no flag overrides a measured gate: the warning does not offer one
    assert ("--count-random-image" in err) == (fusion == "rna-led")
    assert not a.uns["senca"]["image_features_informative"]


def test_encoder_option(tmp_path):
    torch = pytest.importorskip("torch")

    def cfg(*extra):
        return cli._config(cli.build_parser().parse_args(["run", "sample:synthetic", "--out", "o", *extra]))

    assert cfg().backbone == "resnet18" and cfg().cache_features
    assert cfg("--encoder", "hf-hub:MahmoodLab/UNI").backbone == "hf-hub:MahmoodLab/UNI"
    assert not cfg("--no-feature-cache").cache_features
    ckpt = tmp_path / "uni_like.pth"
    torch.save({"arch": "vit_tiny_patch16_224", "state_dict": {}}, ckpt)
    c = cfg("--encoder", str(ckpt))
    assert c.backbone == "vit_tiny_patch16_224" and c.image_weights == str(ckpt)
    with pytest.raises(cli.CliError, match="not found"):
        cfg("--encoder", str(tmp_path / "missing.pth"))


def test_random_image_features_count_only_when_asked():
    def cfg(*extra):
        return cli._config(cli.build_parser().parse_args(["run", "sample:synthetic", "--out", "o", *extra]))

    assert cfg().random_weights_gate == 0.0
    assert cfg("--count-random-image").random_weights_gate == 1.0


def test_fusion_option():
    from napari_senca.config import GATED_FUSION, SencaConfig, fusion_of

    def cfg(*extra):
        return cli._config(cli.build_parser().parse_args(["run", "sample:synthetic", "--out", "o", *extra]))

    assert cfg() == SencaConfig() and fusion_of(cfg()) == "rna-led"
    gated = cfg("--fusion", "gated", "--patch-radius", "1")
    assert fusion_of(gated) == "gated" and gated.patch_radius_spacings == 1.0
    assert all(getattr(gated, k) == v for k, v in GATED_FUSION.items())
    assert fusion_of(cfg("--fusion", "rna-led")) == "rna-led"
    assert fusion_of(SencaConfig(skip_mode="both")) == "custom"
    with pytest.raises(SystemExit):  # argparse names the choices
        cfg("--fusion", "naive")
    batch = cli._config(cli.build_parser().parse_args(["batch", "a", "--out", "o", "--fusion", "gated"]))
    assert fusion_of(batch) == "gated"


def test_patch_radius_option():
    from napari_senca.errors import ConfigError

    def cfg(*extra):
        return cli._config(cli.build_parser().parse_args(["run", "sample:synthetic", "--out", "o", *extra]))

    assert cfg().patch_radius_spacings == 3.0  # the paper's
    assert cfg("--patch-radius", "0.75").patch_radius_spacings == 0.75
    # one line naming the value, never a traceback from the patch reader
    for bad, shown in (("0", "0.0"), ("-1", "-1.0"), ("nan", "nan"), ("inf", "inf"), ("1e9", "1000000000.0")):
        with pytest.raises(ConfigError, match=f"patch_radius_spacings must be above 0 and at most 10 .*got {shown}$"):
            cfg("--patch-radius", bad)


# --------------------------------------------------------------------------- issue 8: never lose the user's data


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def no_training(monkeypatch, fake_pipeline):
    """Fail the test if training starts (checks must come before any work)."""
    import napari_senca.pipeline as pipeline

    def run_iter(adata, config):
        raise AssertionError("training started")
        yield  # pragma: no cover

    monkeypatch.setattr(pipeline, "run_senca_iter", run_iter)


@pytest.mark.parametrize("where", ["section", "parent", "inside", "counts file's folder"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_out_never_touches_the_input(st_folder, tmp_path, capsys, no_training, where, overwrite):
    folder = st_folder()
    (tmp_path / "other.txt").write_text("the user's")
    before = _snapshot(tmp_path)
    path = folder / "counts.tsv.gz" if where == "counts file's folder" else folder
    out = {"section": folder, "parent": tmp_path, "inside": folder / "res"}.get(where, folder)
    args = ["run", str(path), "--out", str(out)] + (["--overwrite"] if overwrite else [])
    assert main(args) == 2
    err = _one_line_error(capsys)
    assert "input" in err and "choose a new folder outside the input" in err
    assert _snapshot(tmp_path) == before
    assert not (folder / "res").exists()


def test_out_never_touches_repo_image_or_weights(her2st_repo, tmp_path, capsys, no_training):
    img = tmp_path / "imgs" / "he.png"
    img.parent.mkdir()
    img.write_bytes((her2st_repo / "data" / "ST-imgs" / "A" / "A1" / "HE_BT0000_C1.jpg").read_bytes())
    weights = tmp_path / "w" / "resnet.pth"
    weights.parent.mkdir()
    weights.write_bytes(b"weights")
    before = _snapshot(tmp_path)
    base = ["run", str(her2st_repo), "--section", "A1", "--overwrite"]
    for out, extra in [
        (her2st_repo / "data", []),
        (her2st_repo / "res", []),
        (img.parent, ["--image", str(img)]),
        (weights.parent, ["--image-weights", str(weights)]),
    ]:
        assert main([*base, *extra, "--out", str(out)]) == 2
        assert "input" in _one_line_error(capsys)
    assert _snapshot(tmp_path) == before


def test_overwrite_replaces_only_our_own_output(st_folder, tmp_path, capsys, fake_pipeline):
    folder = st_folder(nx=6, ny=5, n_genes=30)
    out = tmp_path / "res"
    out.mkdir()  # an empty folder is fine without --overwrite
    assert main(["run", str(folder), "--out", str(out)]) == 0
    capsys.readouterr()
    marker = json.loads((out / MARKER).read_text())
    assert sorted(marker["files"]) == sorted(cli.OUTPUT_FILES) and marker["version"]
    assert marker["inputs"] == [str(folder.resolve())] and marker["config"]["n_clusters"] == 2
    (out / "my_notes.txt").write_text("mine")  # the user adds a file to the result folder
    assert main(["run", str(folder), "--out", str(out), "--overwrite"]) == 2
    assert "did not write (my_notes.txt)" in _one_line_error(capsys)
    assert (out / "my_notes.txt").read_text() == "mine"
    (out / "my_notes.txt").unlink()
    assert main(["run", str(folder), "--out", str(out), "--overwrite", "--n-clusters", "3"]) == 0
    assert pd.read_csv(out / "clusters.csv")["cluster"].nunique() == 3


def test_unwritable_out_fails_before_training(tmp_path, capsys, no_training):
    f = tmp_path / "a_file"
    f.write_text("x")
    out = f / "res"
    assert main(["run", "sample:synthetic", "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"napari-senca: error: {out}:") and "is a file" in err
    assert f.read_text() == "x"


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs (unwritable even for root)")
def test_unwritable_out_even_as_root(capsys, no_training):
    out = Path("/sys/napari-senca-test/res")
    assert main(["run", "sample:synthetic", "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"napari-senca: error: {out}: cannot write") and ".tmp" not in err


def test_write_error_names_the_users_folder(tmp_path, capsys, monkeypatch, fake_pipeline):
    def full(adata, path, *a, **k):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(export, "write_overview_png", full)
    out = tmp_path / "new" / "res"
    assert main(["run", "sample:synthetic", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    assert err == f"napari-senca: error: {out}: cannot write the output (No space left on device)"
    assert list(tmp_path.iterdir()) == []  # no hidden folder, and no empty 'new' folder


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be caught on Windows")
def test_sigterm_while_writing_leaves_nothing(tmp_path, capsys, monkeypatch, fake_pipeline):
    import os
    import signal
    import time

    def terminate(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("SIGTERM was not handled")

    class NotHandled(Exception):
        pass

    def outer(signum, frame):  # what SIGTERM does outside main() in this test (the default would kill pytest)
        raise NotHandled

    monkeypatch.setattr(export, "write_overview_png", terminate)
    previous = signal.signal(signal.SIGTERM, outer)
    try:
        out = tmp_path / "res"
        assert main(["run", "sample:synthetic", "--out", str(out)]) == 143
        assert signal.getsignal(signal.SIGTERM) is outer  # main() puts the old handler back
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err.strip().splitlines()[-1] == "napari-senca: terminated; no output was written"
    assert list(tmp_path.iterdir()) == []


def test_long_error_is_capped(st_folder, capsys):
    import gzip

    folder = st_folder(n_genes=3000)
    df = pd.read_csv(folder / "counts.tsv.gz", sep="\t", index_col=0)
    with gzip.open(folder / "counts.tsv.gz", "wt") as fh:
        fh.write(df.to_csv())  # comma-separated: one huge column name / id
    assert main(["info", str(folder)]) == 2
    err = _one_line_error(capsys)
    assert len(err) <= 450 and str(folder) in err


def test_one_spot_section_says_so(tmp_path, capsys, no_training):
    from napari_senca.io import write_h5ad
    from napari_senca.section import make_section

    a = make_section(np.array([[3.0, 1.0]]), ["s1"], ["G1", "G2"], np.array([[10.0, 10.0]]))
    src = write_h5ad(a, tmp_path / "one.h5ad")
    assert main(["run", str(src), "--out", str(tmp_path / "res")]) == 2
    err = _one_line_error(capsys)
    assert "the section has 1 spot; at least 5 are needed" in err and "cluster count" not in err


def _huge_png(path: Path, w: int = 200_000, h: int = 200_000) -> Path:
    """A tiny PNG whose header claims ``w`` x ``h`` pixels (valid IHDR CRC)."""
    import struct
    import zlib

    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    b = bytearray(path.read_bytes())
    b[16:24] = struct.pack(">II", w, h)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(b))
    return path


def test_huge_image_is_one_line_everywhere(st_folder, tmp_path, capsys, no_training):
    from napari_senca import _napari
    from napari_senca.errors import DataError

    folder = st_folder()
    _huge_png(folder / "he.png")
    assert main(["info", str(folder)]) == 2
    err = _one_line_error(capsys)
    assert str(folder / "he.png") in err and "200,000 x 200,000 px" in err and "limit" in err
    assert main(["run", str(folder), "--out", str(tmp_path / "res")]) == 2
    assert "200,000 x 200,000 px" in _one_line_error(capsys)
    assert not (tmp_path / "res").exists()
    reader = _napari.get_reader(str(folder))
    with pytest.raises(DataError) as e:
        reader(str(folder))
    assert "200,000 x 200,000 px" in str(e.value) and "\n" not in str(e.value)


def test_the_random_weights_warning_is_printed_whole_and_says_what_happened():
    from napari_senca.errors import shorten
    from napari_senca.image_weights import weak_features_note

    skipped, counted = weak_features_note(counted=False), weak_features_note(counted=True)
    measured = weak_features_note(False, None)  # the gated fusion's gate: no flag to offer
    for note in (skipped, counted, measured, weak_features_note(False, "'count random image features'")):
        assert shorten(note) == note  # the advice at its end is not cut off
    assert "did not count" in measured and "measured gate" in measured and "--count" not in measured
    assert "did not count" in skipped and "--count-random-image" in skipped
    assert "counted in this run" in counted and "did not count" not in counted


@needs_pipeline
def test_run_names_the_regions_after_annotated_sections(tmp_path, capsys):
    """--name-from: the regions get the annotated sections' names (clusters.csv's cluster_name); a file without
    names fails before any training, naming the file, and writes nothing."""
    from napari_senca.datasets import synthetic_section

    sec = tmp_path / "section.h5ad"
    synthetic_section(n_side=10, n_genes=60, n_regions=3, with_image=False, seed=0).write_h5ad(sec)
    refs = []
    for s in (1, 2):
        refs.append(str(tmp_path / f"ref{s}.h5ad"))
        synthetic_section(n_side=10, n_genes=60, n_regions=3, with_image=False, seed=s).write_h5ad(refs[-1])
    bare = synthetic_section(n_side=6, n_genes=60, with_image=False, seed=3)
    del bare.obs["label"]
    bare.write_h5ad(tmp_path / "bare.h5ad")
    out = tmp_path / "out"
    assert main(["run", str(sec), "--out", str(out), "--epochs", "1", "--name-from", refs[0],
                 str(tmp_path / "bare.h5ad")]) == 2
    assert "bare.h5ad: no region names" in _one_line_error(capsys) and not out.exists()
    assert main(["run", str(sec), "--out", str(out), "--epochs", "2", "--name-from", *refs]) == 0
    printed = capsys.readouterr().out
    assert "named 6 clusters from the reference" in printed
    df = pd.read_csv(out / "clusters.csv")
    assert set(df["cluster_name"]) <= {"region 0", "region 1", "region 2"} and df["cluster_name"].nunique() >= 2
    report = json.loads((out / MARKER).read_text())["report"]
    assert report["named"].startswith("named 6 clusters") and report["regions"] == df["cluster"].nunique()
    assert (df["cluster_name"] == df["label"]).mean() > 0.8
    assert main(["run", str(sec), "--out", str(tmp_path / "o2"), "--name-from", refs[0], "--name-key", "nope"]) == 2
    assert "no obs column 'nope'" in _one_line_error(capsys)
    assert main(["run", str(sec), "--out", str(tmp_path / "o3"), "--name-key", "label"]) == 2
    assert "--name-key needs --name-from" in _one_line_error(capsys)


@needs_pipeline
def test_a_new_run_forgets_the_review_of_its_input(tmp_path, capsys, monkeypatch):
    """A reviewed annotated.h5ad run again: its names and hand flags belong to the old clustering, so neither the
    naming nor the output takes them over; a naming that fails leaves the model's regions, with a warning."""
    from napari_senca.datasets import synthetic_section
    from napari_senca.review import ReviewState, naming
    from test_review import annotated_section

    adata = annotated_section(n_side=10)
    st = ReviewState(adata)
    st.rename("0", "tumour")
    st.assign([0, 1, 2, 3, 4], "2")
    sec = tmp_path / "reviewed.h5ad"
    adata.write_h5ad(sec)
    out = tmp_path / "plain"
    assert main(["run", str(sec), "--out", str(out), "--epochs", "1"]) == 0
    df = pd.read_csv(out / "clusters.csv")
    assert "cluster_name" not in df.columns
    import anndata as ad

    again = ad.read_h5ad(out / "annotated.h5ad")
    assert "senca_review" not in again.uns and "senca_manual" not in again.obs
    ref = tmp_path / "ref.h5ad"
    synthetic_section(n_side=10, n_genes=60, n_regions=3, with_image=False, seed=1).write_h5ad(ref)
    monkeypatch.setattr(naming, "reference_naming",
                        lambda adata, refs, k, key=None: (np.full(adata.n_obs, "tumour"), np.arange(adata.n_obs) % k))
    capsys.readouterr()
    assert main(["run", str(sec), "--out", str(tmp_path / "named"), "--epochs", "1", "--name-from", str(ref)]) == 0
    err = capsys.readouterr().err
    assert "warning: regions not named after the annotated sections" in err and "'tumour'" in err
    assert (tmp_path / "named" / "clusters.csv").is_file()
    report = json.loads((tmp_path / "named" / MARKER).read_text())["report"]
    assert report["named"] is None and any("not named" in w for w in report["warnings"])
