"""Run SENCA-st widget: settings, a worker thread, progress, Stop."""

from __future__ import annotations

import sys
import time
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QVBoxLayout

from ..config import FUSIONS, SencaConfig, fusion_of
from ..errors import ConfigError
from ..image_weights import KNOWN_ENCODERS, weak_features_note, weights_are_random
from ..review import ReviewState
from . import _common
from ._common import (
    DockWidget,
    SectionPicker,
    error_message,
    fit_width,
    guarded,
    is_alive,
    notify_error,
    notify_info,
    notify_warning,
    qt_callback,
)
from ._run_worker import RunFailed, close_generator, pipeline_loaded, train, warm_up

__all__ = ["RunWidget", "train", "warm_up", "mmss", "STAGE_NAMES"]

WEIGHT_CHOICES = [
    ("ImageNet if available", "auto"),
    ("ImageNet", "imagenet"),
    ("none (random)", "none"),
    ("file…", "file"),
]


#: what the progress bar calls each stage of :func:`napari_senca.pipeline.run_senca_iter`
STAGE_NAMES = {"preprocess": "preprocessing", "patches": "encoding H&E", "train": "training", "cluster": "clustering"}
BAR_MAX = 1000


def mmss(seconds: float) -> str:
    """``83.2`` -> ``"01:23"`` (hours are added to the minutes)."""
    s = max(0, int(seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


class RunWidget(DockWidget):
    """Train SENCA-st on the chosen section without freezing the viewer.

    Each control maps to one :class:`~napari_senca.config.SencaConfig` field.
    When the widget opens, torch and the pipeline are imported in a worker
    thread (:func:`warm_up`), so that a click only snapshots the section
    (:func:`~napari_senca.export.section_snapshot`: its own ``obs`` and
    ``uns``, the arrays shared) and starts the run; the note under *image weights* says before a run when
    ``auto`` will fall back to random weights. One progress bar covers all
    stages (:attr:`~napari_senca.progress.Progress.overall`) with the stage
    name and the elapsed time.
    The run works on that snapshot; on success the snapshot (annotated
    with clusters, embedding and, for Ward, its tree) replaces the layer's AnnData and the
    spots are re-coloured. Stop takes effect at the next progress report
    (at most one epoch). Errors leave the layers untouched.
    A run asks before it replaces a review (:meth:`ReviewState.edits_summary`:
    renamed regions, hand assignments, merges, anything in the edit log):
    when Run is clicked, and again when the result comes in if the review
    was edited during the run; No keeps the review.

    Parameters
    ----------
    napari_viewer
        The viewer.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.worker: Any = None
        self.last_progress: Any = None
        self.last_result: Any = None
        self.stopped = False
        #: extra SencaConfig fields (for scripts and tests, e.g. steps_per_epoch)
        self.overrides: dict[str, Any] = {}
        self._target: Any = None
        #: the target's review when the run started: (state, version, log)
        self._review0: tuple[Any, int, list[str]] | None = None

        self._build_controls(SencaConfig())
        lay = QVBoxLayout(self)
        lay.addWidget(self.form.native)
        lay.addStretch(1)
        self._regions_pending = False
        self._setting_regions = False
        self._t0 = 0.0
        self._stage = ""
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._show_bar)
        #: ImageNet weights in the torch cache (None: not known yet)
        self.imagenet_cached: bool | None = None
        self.warm_worker: Any = None
        self._connect_controls()
        self._on_layer()
        self._start_warm_up()

    def _build_controls(self, d: SencaConfig) -> None:
        """The controls (each one :class:`SencaConfig` field, defaults from ``d``) in ``self.form``."""
        self.layer = SectionPicker(self.viewer)
        self.n_neighbors = SpinBox(label="neighbours", min=1, max=64, value=d.n_neighbors,
                                   tooltip="spatial neighbours per spot (k of the kNN graph)")
        self.n_clusters = SpinBox(label="regions", min=2, max=100, value=7,
                                  tooltip="number of clusters (default: labelled regions of the section)")
        self.epochs = SpinBox(label="epochs", min=1, max=1000, value=d.epochs)
        self.lr = FloatSpinBox(label="learning rate", min=1e-6, max=1.0, step=1e-5, value=d.lr)
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=d.seed)
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self.use_image = CheckBox(text="use the H&&E image", value=True, tooltip="off: RNA-only")
        self.encoder = ComboBox(label="encoder", choices=list(KNOWN_ENCODERS), value=d.backbone,
                                tooltip="image encoder: a torchvision ResNet or any timm model name "
                                        "(type it; hf-hub:... models download once, gated ones need HF_TOKEN)")
        self.encoder.native.setEditable(True)
        self.image_weights = ComboBox(label="image weights", choices=WEIGHT_CHOICES, value="auto")
        self.weights_file = FileEdit(label="weights file", mode="r", filter="*.pth *.pt *.bin *.safetensors",
                                     visible=False)
        self.weights_note = Label(value="", visible=False)
        self.fusion = ComboBox(label="fusion", choices=list(FUSIONS), value="rna-led",
                               tooltip="rna-led (default): the image refines the regions the expression suggests; "
                                       "gated (for pathology or ImageNet weights): the image also finds regions the "
                                       "expression cannot see, counted as much as it agrees with the expression")
        self.count_random = CheckBox(text="count random image features", value=False,
                                     tooltip="random weights (offline 'auto', or 'none') see colour and texture, not "
                                             "histology; by default they do not count and are not encoded")
        self.patch_size = SpinBox(label="patch size", min=0, max=1024, value=d.patch_size,
                                  tooltip="side in pixels each H&E patch is resampled to (0: the encoder's own "
                                          "input size)")
        # superqt's spin box (magicgui's SpinBox) shows no special text for 0: a note says what 0 means
        self.patch_size_note = Label(value="0: the encoder's own input size (224 px for the ResNets)")
        self.patch_radius = FloatSpinBox(label="patch radius", min=0.25, max=10.0, step=0.25,
                                         value=d.patch_radius_spacings,
                                         tooltip="half-width of each H&E patch, in spot spacings (the paper: 3); "
                                                 "a smaller field shows an encoder trained at high magnification "
                                                 "more of each cell")
        self.run_btn = PushButton(text="Run SENCA-st")
        self.stop_btn = PushButton(text="Stop", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=BAR_MAX, value=0)
        self.progress.native.setFormat("")
        self.status = Label(label="", value="")
        self.form = Container(
            widgets=[
                self.layer, self.n_clusters, self.n_neighbors, self.epochs, self.lr, self.seed,
                self.device, self.use_image, self.encoder, self.image_weights, self.weights_note, self.weights_file,
                self.fusion, self.count_random, self.patch_size, self.patch_size_note, self.patch_radius,
                Container(widgets=[self.run_btn, self.stop_btn], layout="horizontal", labels=False),
                self.progress, self.status,
            ]
        )  # fmt: skip
        fit_width(self.status, self.weights_note, self.patch_size_note)

    def _connect_controls(self) -> None:
        self.run_btn.changed.connect(lambda: self.run())
        self.stop_btn.changed.connect(lambda: self.stop())
        self.image_weights.changed.connect(self._on_weights)
        self.use_image.changed.connect(self._on_weights)
        self.patch_size.changed.connect(self._on_weights)
        self.n_clusters.changed.connect(self._on_regions_edited)
        self.layer.changed.connect(self._on_layer)
        self.image_weights.changed.connect(self._refresh_note)
        self.use_image.changed.connect(self._refresh_note)
        self.fusion.changed.connect(self._on_weights)
        self.fusion.changed.connect(self._refresh_note)
        self.encoder.native.currentTextChanged.connect(self._on_encoder)

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        """True while a training worker is alive."""
        return self.worker is not None

    @property
    def regions_pending(self) -> bool:
        """True while the default number of regions is not known yet (warm-up running):
        a run then uses the section's default (``n_clusters=None``)."""
        return self._regions_pending

    def config(self) -> SencaConfig:
        """The settings of the controls as a validated config.

        Raises
        ------
        ConfigError
            For inconsistent settings (e.g. a missing weights file).
        """
        weights = self.image_weights.value
        if weights == "file":
            path = str(self.weights_file.value or "").strip()
            if not path or path == ".":
                raise ConfigError("choose an image weights file (.pth) or another image weights option")
            weights = path
        values: dict[str, Any] = {
            **FUSIONS[str(self.fusion.value)],
            "n_neighbors": int(self.n_neighbors.value),
            "n_clusters": None if self._regions_pending else int(self.n_clusters.value),
            "epochs": int(self.epochs.value),
            "lr": float(self.lr.value),
            "seed": int(self.seed.value),
            "device": str(self.device.value),
            "use_image": bool(self.use_image.value),
            "image_weights": weights,
            "backbone": self.encoder_name(),
            "patch_size": int(self.patch_size.value),
            "patch_radius_spacings": float(self.patch_radius.value),
            "random_weights_gate": 1.0 if self.count_random.value else 0.0,
        }
        values.update(self.overrides)
        return SencaConfig(**values)

    def encoder_name(self) -> str:
        """The encoder typed or chosen in the editable list (overrides' ``backbone`` wins)."""
        if "backbone" in self.overrides:
            return str(self.overrides["backbone"])
        return self.encoder.native.currentText().strip() or SencaConfig().backbone

    def _on_weights(self, *_: Any) -> None:
        self.image_weights.enabled = bool(self.use_image.value)
        self.encoder.enabled = bool(self.use_image.value)
        self.patch_size.enabled = bool(self.use_image.value)
        self.patch_radius.enabled = bool(self.use_image.value)
        self.patch_size_note.visible = bool(self.use_image.value) and int(self.patch_size.value) == 0
        # the gated fusion measures how much the image counts, random weights included: the box does not apply
        self.count_random.enabled = bool(self.use_image.value) and self.fusion.value != "gated"
        self.fusion.enabled = bool(self.use_image.value)
        self.weights_file.visible = self.image_weights.value == "file" and bool(self.use_image.value)

    # ---------------------------------------------------------- warm-up
    def _start_warm_up(self) -> None:
        """Import the heavy modules in a worker thread (once per widget)."""
        backbone = self.encoder_name()
        self.warm_worker = self.start_worker(warm_up, backbone, returned=self._on_warm, errored=self._on_warm_error,
                                             finished=self._on_warm_finished)  # fmt: skip

    @qt_callback
    def _on_warm(self, cached: bool | None) -> None:
        self.imagenet_cached = cached
        self._refresh_note()
        if self._regions_pending:  # the default number of regions needs the pipeline
            self._on_layer()

    @qt_callback
    def _on_warm_error(self, exc: BaseException) -> None:
        # nothing is lost: the run imports what it needs in its own worker
        import logging

        logging.getLogger("napari_senca").warning("napari-senca: warm-up failed: %s", exc)

    @qt_callback
    def _on_warm_finished(self) -> None:
        self.warm_worker = None

    def _refresh_note(self, *_: Any) -> None:
        """Say before a run what the image weights will be when ImageNet is not at hand."""
        from ..image_weights import weights_notice

        backbone = self.encoder_name()
        weights = self.image_weights.value
        gated = self.fusion.value == "gated"
        note = weights_notice(backbone, str(weights), self.imagenet_cached, gated) if self.use_image.value else ""
        self.weights_note.value = note
        self.weights_note.visible = bool(note)
        self.weights_note.tooltip = note

    def _on_encoder(self, *_: Any) -> None:
        """A new encoder: look its ImageNet weights up again (only once torch is imported)."""
        if not is_alive(self):
            return
        self.imagenet_cached = None
        if "torch" in sys.modules:
            from ..image_weights import imagenet_cached

            self.imagenet_cached = imagenet_cached(self.encoder_name())
        self._refresh_note()

    def _on_regions_edited(self, *_: Any) -> None:
        if not self._setting_regions:
            self._regions_pending = False  # the user's number wins

    @guarded
    def _on_layer(self, *_: Any) -> None:
        layer = self.layer.value
        if layer is None:
            return
        if not pipeline_loaded():
            self._regions_pending = True  # called again by the warm-up once the pipeline is imported
            return
        from ..pipeline import default_n_clusters

        state = ReviewState.from_layer(layer)
        k = state.n_clusters if state.has_result else default_n_clusters(state.adata)
        self._setting_regions = True
        try:
            self.n_clusters.max = max(2, min(100, state.n_spots))
            self.n_clusters.value = max(2, min(self.n_clusters.max, k))
        finally:
            self._setting_regions = False
        self._regions_pending = False

    # ------------------------------------------------------------------- run
    @guarded
    def run(self) -> Any:
        """Start training in a worker thread; returns the worker (None if not started).

        A second call while a run is going on does not start another one.
        """
        if self.worker is not None:
            notify_info("SENCA-st is already running: wait for it or press Stop")
            return None
        from ..section import get_image

        layer = self.layer.require()
        state = ReviewState.from_layer(layer)
        cfg = self.config()
        if pipeline_loaded():  # else the worker checks (importing it here would block)
            from ..pipeline import check_run_settings

            check_run_settings(cfg, state.n_spots, int(cfg.n_clusters or 2))
        if not self._may_replace(layer, state):
            self.status.value = f"not started: the review of {layer.name!r} is kept"
            return None
        if cfg.use_image and get_image(state.adata) is None:
            notify_warning("this section has no H&E image: running RNA-only")
        # heavy imports (torch, torchvision) happen in the warm-up and the run's worker, never here
        from ..export import section_snapshot

        adata = section_snapshot(state.adata)  # the worker's own obs/uns; arrays shared (a copy: 1 s at 160k x 18k)
        self._target = layer
        self._review0 = (state, state.version, list(state.log))
        self.stopped = False
        self.last_result = None
        self.last_progress = None
        self._t0 = time.perf_counter()
        self._stage = "starting"
        self.progress.value = 0
        self._show_bar()
        self._timer.start()
        self.status.value = "starting…"
        self.run_btn.enabled = False
        self.stop_btn.enabled = True
        self.worker = self.start_worker(train, adata, cfg, yielded=self._on_progress, returned=self._on_returned,
                                        errored=self._on_error, aborted=self._on_aborted,
                                        finished=self._on_finished)  # fmt: skip
        return self.worker

    def _may_replace(self, layer: Any, state: ReviewState, when: str = "") -> bool:
        """True when the layer has no review edits or the user agreed to replace them."""
        edits = state.edits_summary()
        return not edits or bool(_common.ask_replace_review(self, layer.name, edits, when))

    def _edited_during_run(self, state: ReviewState) -> bool:
        """True when the target's review changed after the run started (or the start is not known)."""
        if self._review0 is None:
            return True
        state0, version, log = self._review0
        return state is not state0 or state.version != version or state.log != log

    def stop(self) -> None:
        """Ask the running worker to stop at its next progress report."""
        if self.worker is None:
            return
        self.status.value = "stopping…"
        self.stop_btn.enabled = False
        self.worker.quit()

    # --------------------------------------------------------------- signals
    def _show_bar(self, state: str | None = None) -> None:
        """The bar's text: percent, stage (or end state) and elapsed time."""
        if not is_alive(self):
            return
        what = state or STAGE_NAMES.get(self._stage, self._stage)
        pct = "" if state in ("failed", "stopped", "not applied") else "%p% · "
        self.progress.native.setFormat(f"{pct}{what} · {mmss(time.perf_counter() - self._t0)}")

    def _end_bar(self, state: str, value: int | None = None) -> None:
        self._timer.stop()
        if value is not None:
            self.progress.value = value
        self._show_bar(state)

    @qt_callback
    def _on_progress(self, p: Any) -> None:
        self.last_progress = p
        self._stage = p.stage
        overall = float(getattr(p, "overall", 0.0))
        # never 100 % before the result is in the layer
        self.progress.value = max(self.progress.value, min(int(round(overall * BAR_MAX)), BAR_MAX - 1))
        self._show_bar()
        self.status.value = p.message

    @qt_callback
    def _on_returned(self, value: Any) -> None:
        adata, result, seconds = value
        layer = self._target
        try:
            if layer is None or layer not in self.viewer.layers:
                notify_warning("the section layer was removed during the run: result discarded")
                return
            current = ReviewState.from_layer(layer)
            if self._edited_during_run(current) and not self._may_replace(layer, current, ", some made during the run"):
                self._end_bar("not applied", 0)
                self.status.value = f"result not applied: the review of {layer.name!r} is kept"
                notify_info(f"SENCA-st: the new regions were not applied; the review of {layer.name!r} is kept")
                return
            state = ReviewState.fresh(adata)
            state.apply_to_layer(layer)
            self.last_result = result
            mode = "RNA-only" if result.rna_only else f"H&E weights {result.image_weights_used}"
            if not result.rna_only and result.image_gate == 0.0:
                mode += ", image not counted"
            elif not result.rna_only and result.image_gate is not None and fusion_of(result.config) == "gated":
                mode += f", gated fusion: image counted {result.image_gate:.2f}"
            if result.library_gate is not None:  # docs/method.md, "The clustered embedding"
                mode += f", library size counted {result.library_gate:.2f}"
            msg = f"SENCA-st: {result.n_clusters} regions in {seconds:.1f} s ({mode}, {result.device})"
            self._end_bar("done", BAR_MAX)
            weak = not result.rna_only and weights_are_random(result.image_weights_used)
            self.status.value = msg + ("; weak image features (random weights)" if weak else "")
            self.status.tooltip = ""
            notify_info(msg)
            if weak:
                how = None if result.config.image_gate is None else "'count random image features'"  # measured: no box
                note = weak_features_note(counted=bool(result.image_gate), count_how=how)
                self.status.tooltip = note
                notify_warning(note)
        except Exception as exc:
            self._end_bar("failed", 0)
            self.status.value = "failed: " + error_message(exc)[:120]
            notify_error(exc)

    @qt_callback
    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, RunFailed) and exc.__cause__ is not None:
            notify_error(exc.__cause__)  # logs the traceback of the bug
            exc = exc.__cause__
        else:
            notify_error(exc)
        self._end_bar("failed", 0)
        self.status.value = "failed: " + error_message(exc)[:120]

    @qt_callback
    def _on_aborted(self) -> None:
        self.stopped = True
        self._end_bar("stopped", 0)
        self.status.value = "stopped: the layers are unchanged"

    @qt_callback
    def _on_finished(self) -> None:
        if self.stopped:
            close_generator(self.worker)
        self.worker = None
        self._target = None
        self._review0 = None
        self._timer.stop()
        self.run_btn.enabled = True
        self.stop_btn.enabled = False
        if "torch" in sys.modules:  # a failed download is remembered: say so now
            from ..image_weights import imagenet_cached

            self.imagenet_cached = imagenet_cached(self.encoder_name())
        self._refresh_note()
