"""Run feedback (issue 8, item 17): one progress bar over all stages, the image-weights
note before a run, the offline fallback remembered, a failed run not shown as done,
and no heavy work on the main thread when Run is clicked."""

from __future__ import annotations

import threading
import time

import pytest

# triton (probed by torch._dynamo) must load before any OpenGL context exists (see test_napari_widgets)
import torch._dynamo  # noqa: F401

from napari_senca import image_weights
from napari_senca._qt import RunWidget, _common, _run, _run_worker
from napari_senca.config import SencaConfig, fusion_of
from napari_senca.datasets import synthetic_section
from napari_senca.generators import drain
from napari_senca.pipeline import run_senca_iter
from napari_senca.progress import STAGE_WEIGHTS, OverallProgress, Progress


def _drive(gen):
    reports = []
    return reports, drain(gen, reports.append)


# --------------------------------------------------------------------------- core


@pytest.mark.parametrize("image", ["counted", "not counted", "off"])
def test_overall_progress_is_one_monotonic_bar(image, torch_one_thread):
    from napari_senca.features import clear_cache

    clear_cache()  # encoded in this run, not read from another test's cache
    adata = synthetic_section(n_side=6, n_genes=40)
    cfg = SencaConfig(epochs=3, steps_per_epoch=1, image_weights="none", patch_size=32, device="cpu",
                      n_clusters=3, use_image=image != "off", random_weights_gate=float(image == "counted"))
    reports, result = _drive(run_senca_iter(adata, cfg))
    assert result.n_clusters == 3
    overall = [p.overall for p in reports]
    assert all(b >= a for a, b in zip(overall, overall[1:], strict=False)), overall
    assert overall[0] == 0.0 and overall[-1] == pytest.approx(1.0)
    stages = [p.stage for p in reports]
    assert ("patches" in stages) == (image != "off")
    # the bar's share of each stage follows the weight table (normalised over the stages that run)
    used = [s for s in STAGE_WEIGHTS if image != "off" or s != "patches"]
    total = sum(STAGE_WEIGHTS[s] for s in used)
    pre = STAGE_WEIGHTS["preprocess"] / total
    after_pre = next(p.overall for p in reports if p.stage == "preprocess" and p.step == 1)
    assert after_pre == pytest.approx(pre)
    last_train = [p for p in reports if p.stage == "train"][-1]
    if image == "not counted":  # nothing encoded: the image's share goes to training and clustering
        skip = [p for p in reports if p.stage == "patches"]
        assert [(p.step, p.total) for p in skip] == [(0, 0)] and "not encoded" in skip[0].message
        tc = STAGE_WEIGHTS["train"] + STAGE_WEIGHTS["cluster"]
        assert last_train.overall == pytest.approx(pre + (1 - pre) * STAGE_WEIGHTS["train"] / tc)
        first_train = next(p for p in reports if p.stage == "train")
        assert first_train.overall < pre + (1 - pre) * STAGE_WEIGHTS["train"] / tc / 2  # no jump over the image's share
    else:
        assert last_train.overall == pytest.approx(1.0 - STAGE_WEIGHTS["cluster"] / total)


def test_overall_progress_cached_features(torch_one_thread):
    """Features from the cache: the image stage reports 0 of 0 and the bar does not jump over its share."""
    adata = synthetic_section(n_side=6, n_genes=40)
    cfg = SencaConfig(epochs=3, steps_per_epoch=1, image_weights="none", patch_size=32, device="cpu",
                      n_clusters=3, random_weights_gate=1.0)
    _drive(run_senca_iter(adata, cfg))
    reports, _ = _drive(run_senca_iter(adata, cfg))  # the second run reads the features from the cache
    patches = [p for p in reports if p.stage == "patches"]
    assert [(p.step, p.total) for p in patches] == [(0, 0)] and "cache" in patches[0].message
    first_train = next(p for p in reports if p.stage == "train")
    assert first_train.overall < 0.5


def test_overall_progress_skipped_stage():
    """A stage reported as 0 of 0 is skipped: its share goes to the stages after it."""
    tr = OverallProgress(use_image=True)
    seq = [("preprocess", 1, 1), ("patches", 0, 0), ("train", 5, 10), ("train", 10, 10), ("cluster", 1, 1)]
    vals = [tr.update(Progress(st, a, b, "")).overall for st, a, b in seq]
    pre = STAGE_WEIGHTS["preprocess"]
    train = (1 - pre) * STAGE_WEIGHTS["train"] / (STAGE_WEIGHTS["train"] + STAGE_WEIGHTS["cluster"])
    assert vals == pytest.approx([pre, pre, pre + train / 2, pre + train, 1.0])


def test_overall_progress_never_goes_back():
    tr = OverallProgress(use_image=True)
    seq = [("preprocess", 1, 1), ("patches", 3, 4), ("patches", 1, 4), ("unknown", 5, 5), ("train", 0, 10)]
    vals = [tr.update(Progress(st, a, b, "")).overall for st, a, b in seq]
    assert vals == sorted(vals) and vals[2] == vals[1] and vals[3] == vals[1]


def test_offline_fallback_remembered(monkeypatch):
    """'auto' without ImageNet weights tries the download once per session, not on every run."""
    from napari_senca.model import resnet
    from napari_senca.model.backbone import RANDOM_OFFLINE, build_backbone

    tries = []

    def offline(name, progress=True):  # what torch.hub does without internet and without a cache
        tries.append(name)
        raise OSError("no network")

    monkeypatch.setattr(resnet, "imagenet_state_dict", offline)
    image_weights.forget_failures()
    try:
        assert build_backbone("resnet18", "auto").weights_used == RANDOM_OFFLINE
        assert build_backbone("resnet18", "auto").weights_used == RANDOM_OFFLINE
        assert len(tries) == 1 and image_weights.download_failed("resnet18")
        note = image_weights.weights_notice("resnet18", "auto", False)
        assert "could not be downloaded this session" in note and "random" in note
    finally:
        image_weights.forget_failures()


def test_imagenet_cache_lookup(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert image_weights.imagenet_cached("resnet18") is False
    import torchvision.models as tvm

    url = tvm.get_model_weights("resnet18").DEFAULT.url
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / url.rsplit("/", 1)[-1]).write_bytes(b"x")
    assert image_weights.imagenet_cached("resnet18") is True
    assert image_weights.imagenet_cached("no_such_net") is None
    assert image_weights.weights_notice("resnet18", "auto", True) == ""
    for note in (image_weights.weights_notice("resnet18", "none", False),
                 image_weights.weights_notice("resnet18", "auto", False)):
        assert "random image weights" in note and "not counted unless 'count random image features'" in note


def test_mmss():
    assert _run.mmss(0) == "00:00" and _run.mmss(83.7) == "01:23" and _run.mmss(3725) == "62:05"


# --------------------------------------------------------------------------- widget

def _settings(w: RunWidget, epochs: int = 3) -> None:
    w.epochs.value = epochs
    w.n_clusters.value = 3
    w.image_weights.value = "none"
    w.patch_size.value = 32
    w.device.value = "cpu"
    w.overrides = {"steps_per_epoch": 1}


def _wait_warm(qtbot, w):
    qtbot.waitUntil(lambda: w.warm_worker is None, timeout=60_000)


@pytest.mark.qt
def test_widget_one_bar_with_stage_and_time(qtbot, make_napari_viewer, notes):
    viewer = make_napari_viewer()
    _common.add_section(viewer, synthetic_section(n_side=6, n_genes=40), "s")
    run = RunWidget(viewer)
    _wait_warm(qtbot, run)
    _settings(run)
    seen: list[tuple[int, str]] = []
    worker = run.run()
    worker.yielded.connect(lambda p: seen.append((run.progress.value, run.progress.native.format())))
    qtbot.waitUntil(lambda: run.worker is None, timeout=120_000)
    assert not notes["error"], notes["error"]
    values = [v for v, _ in seen]
    assert run.progress.max == _run.BAR_MAX
    assert values == sorted(values), values  # one bar that never jumps back
    assert max(values) < run.progress.max  # 100 % only once the result is in the layer
    texts = " ".join(t for _, t in seen)
    for name in ("preprocessing", "encoding H&E", "training", "clustering"):
        assert name in texts
    assert all(t.endswith(":" + t[-2:]) and t[-5:-3].isdigit() for _, t in seen)  # ... · mm:ss
    assert run.progress.value == run.progress.max and "done" in run.progress.native.format()
    # random image weights: the status says the image features are weak, and a notification explains it
    assert run.status.value.endswith("weak image features (random weights)")
    assert any("random weights" in w for w in notes["warning"])
    # the reconstruction was clustered: the status says how much the library size counted
    gate = run.last_result.library_gate
    assert gate is not None and f"library size counted {gate:.2f}" in run.status.value, run.status.value


@pytest.mark.qt
def test_widget_runs_the_gated_fusion_and_says_so(qtbot, make_napari_viewer, notes):
    viewer = make_napari_viewer()
    layer = _common.add_section(viewer, synthetic_section(n_side=6, n_genes=40), "s")
    run = RunWidget(viewer)
    _wait_warm(qtbot, run)
    _settings(run)
    run.fusion.value = "gated"
    run.run()
    qtbot.waitUntil(lambda: run.worker is None, timeout=120_000)
    assert not notes["error"], notes["error"]
    uns = layer.metadata["adata"].uns["senca"]
    assert uns["fusion"] == "gated" and "modality_agreement" in uns
    gate = uns["image_gate"]
    said = "image not counted" if gate == 0 else f"gated fusion: image counted {gate:.2f}"
    assert said in run.status.value, run.status.value
    # random weights under a measured gate: the note offers no box to tick
    assert "count random image features" not in run.status.tooltip


@pytest.mark.qt
def test_failed_run_is_not_shown_done(qtbot, make_napari_viewer, notes, monkeypatch):
    """A run that fails after a stage completed must not leave a full bar, and a
    ``RuntimeError`` (torch's error type, e.g. out of memory) must end the run too."""
    from napari_senca import features
    from napari_senca.model import backbone

    def broken(*a, **kw):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(backbone, "build_backbone", broken)
    features.clear_cache()  # an earlier test's patch features would skip the encoder
    viewer = make_napari_viewer()
    _common.add_section(viewer, synthetic_section(n_side=6, n_genes=40), "s")
    run = RunWidget(viewer)
    _wait_warm(qtbot, run)
    _settings(run)
    run.run()
    qtbot.waitUntil(lambda: run.worker is None, timeout=60_000)
    assert "encoder exploded" in notes["error"][-1]
    assert run.progress.value < run.progress.max
    assert "failed" in run.progress.native.format() and "100%" not in run.progress.native.format()
    assert run.status.value.startswith("failed") and run.run_btn.enabled and not run.running


@pytest.mark.qt
def test_weights_note_before_the_run(qtbot, make_napari_viewer, monkeypatch):
    monkeypatch.setattr(image_weights, "imagenet_cached", lambda backbone="resnet18": False)
    viewer = make_napari_viewer()
    run = RunWidget(viewer)
    _wait_warm(qtbot, run)
    assert run.imagenet_cached is False
    assert run.image_weights.value == "auto"
    assert not run.weights_note.native.isHidden() and "random image weights" in run.weights_note.value
    run.image_weights.value = "none"
    assert "weak image features" in run.weights_note.value and not run.weights_note.native.isHidden()
    run.image_weights.value = "auto"
    run.use_image.value = False
    assert run.weights_note.value == "" and run.weights_note.native.isHidden()
    run.use_image.value = True
    run.encoder.native.setEditText("hf-hub:MahmoodLab/UNI")  # any timm name can be typed
    assert run.config().backbone == "hf-hub:MahmoodLab/UNI"
    assert "HF_TOKEN" in run.weights_note.value
    assert run.config().random_weights_gate == 0.0  # random features do not count unless ticked
    run.count_random.value = True
    assert run.config().random_weights_gate == 1.0
    assert run.config().patch_radius_spacings == 3.0  # the paper's
    run.patch_radius.value = 1.0
    assert run.config().patch_radius_spacings == 1.0
    assert run.config().patch_size == 0 and not run.patch_size_note.native.isHidden()  # says what 0 means
    run.patch_size.value = 96
    assert run.config().patch_size == 96 and run.patch_size_note.native.isHidden()
    run.patch_size.value = 0
    assert not run.patch_size_note.native.isHidden()
    assert fusion_of(run.config()) == "rna-led"  # the default fusion
    run.image_weights.value = "none"
    run.fusion.value = "gated"
    assert fusion_of(run.config()) == "gated" and run.config().image_gate is None  # measured
    # the measured gate decides for random weights too: the box does not apply, and the note says so
    assert not run.count_random.enabled and "gated fusion counts them" in run.weights_note.value
    run.fusion.value = "rna-led"
    assert run.count_random.enabled and "count random image features" in run.weights_note.value
    run.fusion.value = "gated"
    run.use_image.value = False
    assert not run.count_random.enabled and not run.patch_radius.enabled and run.patch_size_note.native.isHidden()
    assert not run.fusion.enabled


@pytest.mark.qt
def test_click_does_no_heavy_work_on_the_main_thread(qtbot, make_napari_viewer, notes, monkeypatch):
    """The imports a run needs (torch, torchvision, the pipeline) happen off the main thread.

    The heavy-import helpers are replaced by slow stand-ins that record their
    thread; the time ``run()`` keeps the main thread is measured.
    """
    calls: list[tuple[str, bool]] = []

    def slow(name):
        def f(*a, **kw):
            calls.append((name, threading.current_thread() is threading.main_thread()))
            time.sleep(0.5)

        return f

    monkeypatch.setattr(_run_worker, "import_torch", slow("import_torch"))
    monkeypatch.setattr(_run_worker, "preimport", slow("preimport"))
    viewer = make_napari_viewer()
    _common.add_section(viewer, synthetic_section(n_side=6, n_genes=40), "s")
    t0 = time.perf_counter()
    run = RunWidget(viewer)
    opened = time.perf_counter() - t0
    _settings(run, epochs=1)
    t0 = time.perf_counter()
    worker = run.run()
    on_main = time.perf_counter() - t0
    assert worker is not None
    qtbot.waitUntil(lambda: run.worker is None and run.warm_worker is None, timeout=120_000)
    assert not notes["error"], notes["error"]
    assert calls and not any(main for _, main in calls), calls
    assert on_main < 0.3, f"run() kept the main thread {on_main:.2f} s"
    assert opened < 0.5, f"opening the widget kept the main thread {opened:.2f} s"
    assert {name for name, _ in calls} == {"import_torch", "preimport"}


@pytest.mark.qt
def test_regions_default_waits_for_warm_up(qtbot, make_napari_viewer, monkeypatch):
    """Before the pipeline is imported the number of regions is 'the section's default';
    the warm-up fills it in unless the user has set it meanwhile."""
    viewer = make_napari_viewer()
    _common.add_section(viewer, synthetic_section(n_side=6, n_genes=40, n_regions=3), "s")
    loaded = [False]
    monkeypatch.setattr(_run, "pipeline_loaded", lambda: loaded[0])
    run = RunWidget(viewer)
    user = RunWidget(viewer)
    _wait_warm(qtbot, run)
    _wait_warm(qtbot, user)
    assert run.regions_pending and run.config().n_clusters is None
    user.n_clusters.value = 5
    assert not user.regions_pending
    loaded[0] = True
    for w in (run, user):
        w._on_warm(None)  # what the warm-up's "returned" signal does once the pipeline is in
    assert not run.regions_pending and run.n_clusters.value == 3 and run.config().n_clusters == 3
    assert user.n_clusters.value == 5 and user.config().n_clusters == 5


def _quick_train(release=None):
    """A stand-in for :func:`_run_worker.train`: the same clusters back at once (after ``release`` is set)."""
    from types import SimpleNamespace

    def fake(adata, config):
        if release is not None:
            release.wait(30)
        yield from ()
        result = SimpleNamespace(rna_only=True, image_weights_used="none", image_gate=None, library_gate=None, n_clusters=3, device="cpu")
        return adata, result, 0.1

    return fake


def _reviewed_section(viewer):
    """A section with a result, a renamed region and two spots assigned by hand."""
    from napari_senca.review import ReviewState
    from test_review import annotated_section  # tests/ is on sys.path

    layer = _common.add_section(viewer, annotated_section(n_side=8), "reviewed")
    state = ReviewState.from_layer(layer)
    state.rename("0", "tumour")
    state.assign([0, 1], None, new_name="DCIS")
    return layer, state


@pytest.mark.qt
def test_rerun_asks_before_replacing_the_review(qtbot, make_napari_viewer, notes, monkeypatch):
    """Running again on a reviewed layer asks first (naming the layer and the edits); No keeps everything."""
    from napari_senca.review import ReviewState

    monkeypatch.setattr(_run, "warm_up", lambda *a, **k: None)
    monkeypatch.setattr(_run, "train", _quick_train())
    viewer = make_napari_viewer()
    layer, state = _reviewed_section(viewer)
    run = RunWidget(viewer)
    _wait_warm(qtbot, run)
    asked: list[tuple] = []
    monkeypatch.setattr(_common, "ask_replace_review", lambda parent, *a: asked.append(a) or False)
    assert run.run() is None and not run.running
    assert asked == [(layer.name, "2 edits: 2 renamed regions, 2 spots assigned by hand", "")]
    assert ReviewState.from_layer(layer) is state and "tumour" in state.display_names() and "DCIS" in state.display_names()
    assert state.n_manual == 2 and state.can_undo and len(state.log) == 2 and "kept" in run.status.value
    # Yes: the run replaces the review
    monkeypatch.setattr(_common, "ask_replace_review", lambda parent, *a: asked.append(a) or True)
    assert run.run() is not None
    qtbot.waitUntil(lambda: run.worker is None, timeout=30_000)
    new = ReviewState.from_layer(layer)
    assert len(asked) == 2 and new is not state and not new.edits_summary()
    assert not notes["error"], notes["error"]


@pytest.mark.qt
def test_edits_during_the_run_are_not_replaced_without_asking(qtbot, make_napari_viewer, notes, monkeypatch):
    """A review edited while the run trains is asked about again when the result comes in; No keeps it."""
    import threading

    from napari_senca.review import ReviewState

    release = threading.Event()
    monkeypatch.setattr(_run, "warm_up", lambda *a, **k: None)
    monkeypatch.setattr(_run, "train", _quick_train(release))
    viewer = make_napari_viewer()
    layer, state = _reviewed_section(viewer)
    run = RunWidget(viewer)
    _wait_warm(qtbot, run)
    asked: list[tuple] = []
    answers = iter([True, False])  # replace the review of before the run, not the edits made during it
    monkeypatch.setattr(_common, "ask_replace_review", lambda parent, *a: asked.append(a) or next(answers))
    assert run.run() is not None
    state.rename("tumour", "invasive tumour")  # the user goes on reviewing while it trains
    release.set()
    qtbot.waitUntil(lambda: run.worker is None, timeout=30_000)
    assert len(asked) == 2 and asked[1][0] == layer.name and "during the run" in asked[1][2]
    assert ReviewState.from_layer(layer) is state and "invasive tumour" in state.display_names()
    assert state.n_manual == 2 and len(state.log) == 3
    assert run.status.value.startswith("result not applied") and "not applied" in run.progress.native.format()
    assert not notes["error"], notes["error"]


def test_warm_up_imports_torchvision_only_for_timm_encoders(tmp_path):
    """The built-in ResNets need neither torchvision nor torch._dynamo: the widget's warm-up skips them (2-3 s)."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    from napari_senca.model.backbone import TORCHVISION_NAMES

    assert not any(_run_worker.needs_torchvision(n) for n in TORCHVISION_NAMES)
    assert _run_worker.needs_torchvision("hf-hub:MahmoodLab/UNI") and _run_worker.needs_torchvision("resnet10t")
    code = textwrap.dedent(
        """
        import sys
        from napari_senca._qt._run_worker import warm_up
        warm_up("resnet18")
        print(sorted(m for m in ("torch._dynamo", "torchvision") if m in sys.modules) or "clean")
        """
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": src})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "clean"
