"""The ResNets and window pooling built without torchvision are torchvision's (issue 10: start-up time)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_senca.fcn import window_means
from napari_senca.model.resnet import IMAGENET_URLS, imagenet_file, resnet


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_same_network_and_random_weights_as_torchvision(name: str) -> None:
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(3)
    theirs = getattr(tvm, name)(weights=None)
    torch.manual_seed(3)
    ours = resnet(name)
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)  # same names: torchvision checkpoints load with strict=True
    assert all(torch.equal(a[k], b[k]) for k in a)  # same initialisation, bit for bit
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(theirs.eval()(x), ours.eval()(x))


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_imagenet_weights_are_torchvisions_default(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tvm = pytest.importorskip("torchvision.models")
    assert IMAGENET_URLS[name] == tvm.get_model_weights(name).DEFAULT.url
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert imagenet_file(name) == str(tmp_path / "checkpoints" / IMAGENET_URLS[name].rsplit("/", 1)[-1])


def test_window_means_equal_roi_align_averaged() -> None:
    """The fcn pooling: roi_align(k x k, sampling_ratio=2, aligned=True) averaged, boxes inside, across and outside the map."""
    ops = pytest.importorskip("torchvision.ops")
    rng = np.random.default_rng(0)
    for c, h, w, k in [(8, 20, 30, 7), (16, 5, 4, 4), (4, 1, 1, 2), (6, 48, 48, 3)]:
        fmap = torch.randn(1, c, h, w)
        x1, y1 = rng.uniform(-60, w * 32, 40), rng.uniform(-60, h * 32, 40)
        side = rng.uniform(1, 300, 40)
        boxes = np.stack([np.zeros(40), x1, y1, x1 + side, y1 + side], 1)
        ref = ops.roi_align(fmap, torch.as_tensor(boxes, dtype=torch.float32), (k, k), spatial_scale=1 / 32,
                            sampling_ratio=2, aligned=True).mean((2, 3))
        got = window_means(fmap[0], boxes[:, 1:] / 32, k, chunk=7)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert window_means(torch.zeros(3, 4, 4), np.zeros((0, 4)), 2).shape == (0, 3)


def test_a_run_with_the_default_image_encoder_does_not_import_dynamo(tmp_path: Path) -> None:
    """torchvision imports torch._dynamo (2-3 s of a run's start): the default image path must not need it."""
    code = textwrap.dedent(
        """
        import sys
        from napari_senca import datasets, pipeline
        from napari_senca.config import SencaConfig
        sec = datasets.synthetic_section(n_side=10, n_genes=60, seed=0, with_image=True)
        res = pipeline.run_senca(sec, SencaConfig(epochs=1, steps_per_epoch=3, n_clusters=3, image_weights="none",
                                                  image_encoding="fcn"))
        assert not res.rna_only and res.embedding.shape[0] == sec.n_obs
        print(sorted(m for m in ("torch._dynamo", "torchvision") if m in sys.modules) or "clean")
        """
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    path = os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "NAPARI_SENCA_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "clean"


def test_a_silent_network_gives_up_after_the_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A server that accepts and never answers (a proxy dropping the request) must not hang the run."""
    import socket
    import threading
    import time

    from napari_senca.model import backbone as bb
    from napari_senca.model import resnet as rn

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_stay_silent() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept_and_stay_silent, daemon=True)
    t.start()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = f"http://127.0.0.1:{server.getsockname()[1]}/resnet18-f37072fd.pth"
    monkeypatch.setitem(rn.IMAGENET_URLS, "resnet18", url)
    monkeypatch.setattr(rn, "DOWNLOAD_TIMEOUT", 0.5)
    before = socket.getdefaulttimeout()
    try:
        outcome: list[BaseException | None] = []

        def download() -> None:
            try:
                rn.imagenet_state_dict("resnet18", progress=False)
                outcome.append(None)
            except BaseException as exc:  # reported below
                outcome.append(exc)

        worker = threading.Thread(target=download, daemon=True)  # a hang fails the test instead of stalling CI
        worker.start()
        worker.join(10)
        assert not worker.is_alive(), "the download hung on a silent server"
        assert isinstance(outcome[0], OSError), outcome  # socket.timeout / URLError, both OSError
        assert socket.getdefaulttimeout() == before  # the process's default is restored
        from napari_senca import image_weights

        monkeypatch.setattr(image_weights, "_FAILED", set())
        t0 = time.perf_counter()
        trunk = bb.build_backbone("resnet18", "auto")  # falls back to random weights, quickly
        assert trunk.weights_used.startswith("random") and time.perf_counter() - t0 < 10
        assert socket.getdefaulttimeout() == before
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        server.close()
