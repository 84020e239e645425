"""Run SENCA-st widget: settings, a worker thread, progress, Stop."""

from __future__ import annotations

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
from napari.qt.threading import create_worker
from qtpy.QtWidgets import QVBoxLayout

from ..config import SencaConfig
from ..errors import ConfigError
from ..review import ReviewState
from ._common import (
    DockWidget,
    SectionPicker,
    guarded,
    import_torch,
    notify_error,
    notify_info,
    notify_warning,
    preimport,
    qt_callback,
)

__all__ = ["RunWidget", "train"]

WEIGHT_CHOICES = [
    ("ImageNet if available", "auto"),
    ("ImageNet", "imagenet"),
    ("none (random)", "none"),
    ("file…", "file"),
]


def train(adata: Any, config: SencaConfig) -> Any:
    """Generator run in the worker: yields progress, returns the annotated copy.

    ``adata`` is the worker's own copy; the layers are not touched here.
    """
    from ..pipeline import annotate, run_senca_iter

    t0 = time.perf_counter()
    result = yield from run_senca_iter(adata, config)
    annotate(adata, result)
    return adata, result, time.perf_counter() - t0


class RunWidget(DockWidget):
    """Train SENCA-st on the chosen section without freezing the viewer.

    Each control maps to one :class:`~napari_senca.config.SencaConfig` field.
    The run works on a copy of the section; on success the copy (annotated
    with clusters, embedding and, for Ward, its tree) replaces the layer's AnnData and the
    spots are re-coloured. Stop takes effect at the next progress report
    (at most one epoch). Errors leave the layers untouched.

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

        d = SencaConfig()
        self.layer = SectionPicker(napari_viewer)
        self.n_neighbors = SpinBox(label="neighbours", min=1, max=64, value=d.n_neighbors,
                                   tooltip="spatial neighbours per spot (k of the kNN graph)")
        self.n_clusters = SpinBox(label="regions", min=2, max=100, value=7,
                                  tooltip="number of clusters (default: labelled regions of the section)")
        self.epochs = SpinBox(label="epochs", min=1, max=1000, value=d.epochs)
        self.lr = FloatSpinBox(label="learning rate", min=1e-6, max=1.0, step=1e-5, value=d.lr)
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=d.seed)
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"], value="auto")
        self.use_image = CheckBox(text="use the H&&E image", value=True, tooltip="off: RNA-only")
        self.image_weights = ComboBox(label="image weights", choices=WEIGHT_CHOICES, value="auto")
        self.weights_file = FileEdit(label="weights file", mode="r", filter="*.pth *.pt", visible=False)
        self.patch_size = SpinBox(label="patch size", min=16, max=1024, value=d.patch_size,
                                  tooltip="side in pixels of the H&E patch around each spot")
        self.run_btn = PushButton(text="Run SENCA-st")
        self.stop_btn = PushButton(text="Stop", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self.status = Label(label="", value="")
        self.form = Container(
            widgets=[
                self.layer, self.n_clusters, self.n_neighbors, self.epochs, self.lr, self.seed,
                self.device, self.use_image, self.image_weights, self.weights_file, self.patch_size,
                Container(widgets=[self.run_btn, self.stop_btn], layout="horizontal", labels=False),
                self.progress, self.status,
            ]
        )  # fmt: skip
        lay = QVBoxLayout(self)
        lay.addWidget(self.form.native)
        lay.addStretch(1)

        self.run_btn.changed.connect(lambda: self.run())
        self.stop_btn.changed.connect(lambda: self.stop())
        self.image_weights.changed.connect(self._on_weights)
        self.use_image.changed.connect(self._on_weights)
        self.layer.changed.connect(self._on_layer)
        self._on_layer()

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        """True while a training worker is alive."""
        return self.worker is not None

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
            "n_neighbors": int(self.n_neighbors.value),
            "n_clusters": int(self.n_clusters.value),
            "epochs": int(self.epochs.value),
            "lr": float(self.lr.value),
            "seed": int(self.seed.value),
            "device": str(self.device.value),
            "use_image": bool(self.use_image.value),
            "image_weights": weights,
            "patch_size": int(self.patch_size.value),
        }
        values.update(self.overrides)
        return SencaConfig(**values)

    def _on_weights(self, *_: Any) -> None:
        self.image_weights.enabled = bool(self.use_image.value)
        self.patch_size.enabled = bool(self.use_image.value)
        self.weights_file.visible = self.image_weights.value == "file" and bool(self.use_image.value)

    @guarded
    def _on_layer(self, *_: Any) -> None:
        layer = self.layer.value
        if layer is None:
            return
        from ..pipeline import default_n_clusters

        state = ReviewState.from_layer(layer)
        self.n_clusters.max = max(2, min(100, state.n_spots))
        self.n_clusters.value = max(2, min(self.n_clusters.max, default_n_clusters(state.adata)))
        if state.has_result:
            self.n_clusters.value = max(2, min(self.n_clusters.max, state.n_clusters))

    # ------------------------------------------------------------------- run
    @guarded
    def run(self) -> Any:
        """Start training in a worker thread; returns the worker (None if not started).

        A second call while a run is going on does not start another one.
        """
        if self.worker is not None:
            notify_info("SENCA-st is already running: wait for it or press Stop")
            return None
        from ..pipeline import check_run_settings
        from ..section import get_image

        layer = self.layer.require()
        state = ReviewState.from_layer(layer)
        cfg = self.config()
        check_run_settings(cfg, state.n_spots, int(cfg.n_clusters or 2))
        if cfg.use_image and get_image(state.adata) is None:
            notify_warning("this section has no H&E image: running RNA-only")
        # torch/torchvision must be imported in the main thread, not in the worker
        import_torch()
        preimport("napari_senca.pipeline", "napari_senca.model.backbone", "napari_senca.model.senca")
        adata = state.adata.copy()
        self._target = layer
        self.stopped = False
        self.last_result = None
        self.progress.max = 1
        self.progress.value = 0
        self.status.value = "starting…"
        worker = create_worker(
            train,
            adata,
            cfg,
            _start_thread=False,
            _connect={
                "yielded": self._on_progress,
                "returned": self._on_returned,
                "errored": self._on_error,
                "aborted": self._on_aborted,
                "finished": self._on_finished,
            },
        )
        self.worker = self._box.add(worker)
        self.run_btn.enabled = False
        self.stop_btn.enabled = True
        worker.start()
        return worker

    def stop(self) -> None:
        """Ask the running worker to stop at its next progress report."""
        if self.worker is None:
            return
        self.status.value = "stopping…"
        self.stop_btn.enabled = False
        self.worker.quit()

    # --------------------------------------------------------------- signals
    @qt_callback
    def _on_progress(self, p: Any) -> None:
        self.last_progress = p
        self.progress.max = max(1, int(p.total))
        self.progress.value = min(int(p.step), self.progress.max)
        self.status.value = p.message

    @qt_callback
    def _on_returned(self, value: Any) -> None:
        adata, result, seconds = value
        layer = self._target
        try:
            if layer is None or layer not in self.viewer.layers:
                notify_warning("the section layer was removed during the run: result discarded")
                return
            state = ReviewState.fresh(adata)
            state.apply_to_layer(layer)
            self.last_result = result
            mode = "RNA-only" if result.rna_only else f"H&E weights {result.image_weights_used}"
            msg = f"SENCA-st: {result.n_clusters} regions in {seconds:.1f} s ({mode}, {result.device})"
            self.status.value = msg
            notify_info(msg)
        except Exception as exc:
            notify_error(exc)

    @qt_callback
    def _on_error(self, exc: BaseException) -> None:
        self.status.value = "failed"
        notify_error(exc)

    @qt_callback
    def _on_aborted(self) -> None:
        self.stopped = True
        self.status.value = "stopped: the layers are unchanged"

    @qt_callback
    def _on_finished(self) -> None:
        self.worker = None
        self._target = None
        self.run_btn.enabled = True
        self.stop_btn.enabled = False
