"""Image encoders (timm, checkpoints), the fully convolutional encoding, the disk cache, weak-feature notes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_senca import ConfigError, SencaConfig, SencaError
from napari_senca import features as features_mod
from napari_senca.features import clear_cache, encode_iter
from napari_senca.generators import drain
from napari_senca.model.backbone import RANDOM_OFFLINE, build_backbone

pytestmark = pytest.mark.usefixtures("torch_one_thread")
timm = pytest.importorskip("timm")


def _encode(ad, cfg):
    torch.manual_seed(cfg.seed)
    return drain(encode_iter(ad, cfg, torch.device("cpu")))


# --------------------------------------------------------------------------- timm encoders


def test_timm_cnn_takes_its_own_input_size_and_normalisation() -> None:
    enc = build_backbone("resnet10t", "none").eval()
    assert enc.input_size == 176 and enc.stride == 32 and enc.random  # resnet10t's pretrained_cfg
    assert torch.allclose(enc.mean.ravel(), torch.tensor((0.485, 0.456, 0.406)))
    x = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    with torch.no_grad():
        assert enc(x).shape == (2, enc.n_features)
        fmap = enc.feature_map(enc.normalise(x))
    assert fmap.shape == (2, enc.n_features, 2, 2)


def test_low_resolution_patches_are_not_blown_up_past_three_times(section) -> None:
    from napari_senca.features import MAX_UPSAMPLE, encoder_size
    from napari_senca.patches import image_levels
    from napari_senca.section import spot_spacing

    cnn, vit = build_backbone("resnet18", "none"), build_backbone("vit_tiny_patch16_224", "none")
    cfg = SencaConfig(image_weights="none")
    native = 2 * cfg.patch_radius_spacings * spot_spacing(section) * max(f for _, f in image_levels(section))
    small = cfg.replace(patch_radius_spacings=cfg.patch_radius_spacings * 0.1)  # a 10x coarser image, in effect
    assert native > 224  # this section's image has the pixels: the encoder's own size
    assert encoder_size(section, cfg, cnn) == 224
    got = encoder_size(section, small, cnn)  # ~0.1 * native px per patch: at most 3x that, on a 16 px step
    assert 32 <= got < 224 and got <= MAX_UPSAMPLE * 0.1 * native + 16 and got % 16 == 0
    assert encoder_size(section, small.replace(patch_size=96), cnn) == 96  # an explicit size is kept
    assert encoder_size(section, small, vit) == 224  # ViTs read their own input size


def test_timm_vit_reads_patches_of_its_own_size(section) -> None:
    enc = build_backbone("vit_tiny_patch16_224", "none")
    assert enc.stride is None and enc.input_size == 224
    assert torch.allclose(enc.mean.ravel(), torch.full((3,), 0.5))  # the ViT's own statistics
    f = _encode(section, SencaConfig(backbone="vit_tiny_patch16_224", image_weights="none", patch_size=32,
                                     cache_features=False))  # fmt: skip
    assert f.method == "patches" and f.feats.shape == (section.n_obs, 192)
    assert not f.informative


def test_timm_checkpoint_file_is_loaded(tmp_path: Path) -> None:
    torch.manual_seed(3)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    path = tmp_path / "vit.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, path)
    enc = build_backbone("vit_tiny_patch16_224", str(path))
    assert enc.weights_used == str(path) and not enc.random
    torch.testing.assert_close(enc.net.patch_embed.proj.weight, ref.patch_embed.proj.weight)
    from safetensors.torch import save_file

    st = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(st))
    torch.testing.assert_close(build_backbone("vit_tiny_patch16_224", str(st)).net.cls_token, ref.cls_token)
    torch.save({k: v for k, v in ref.state_dict().items() if not k.startswith("blocks.11")}, path)
    with pytest.raises(ConfigError, match="does not fit"):
        build_backbone("vit_tiny_patch16_224", str(path))


def test_hub_weights_offline_fall_back_or_say_how(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_senca import image_weights

    real = timm.create_model
    tries = []

    def offline(name, pretrained=False, **kw):
        if pretrained:
            tries.append(name)
            raise OSError("Name or service not known")
        return real("vit_tiny_patch16_224", pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    image_weights.forget_failures()
    try:
        enc = build_backbone("hf-hub:MahmoodLab/UNI", "auto")
        assert enc.weights_used == RANDOM_OFFLINE and enc.random
        build_backbone("hf-hub:MahmoodLab/UNI", "auto")
        assert len(tries) == 1  # the failure is remembered: no second wait for the hub
        image_weights.forget_failures()
        with pytest.raises(SencaError, match="HF_TOKEN") as info:
            build_backbone("hf-hub:MahmoodLab/UNI", "pretrained")
        assert "\n" not in str(info.value) and "local checkpoint" in str(info.value)
        assert tries[-1] == "hf-hub:MahmoodLab/UNI"
    finally:
        image_weights.forget_failures()


def test_unknown_encoder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no_such_net"):
        build_backbone("no_such_net", "none")
    with pytest.raises(ConfigError, match="backbone"):
        SencaConfig(backbone="resnet 18")
    assert SencaConfig(backbone="hf-hub:bioptimus/H-optimus-0").backbone.startswith("hf-hub:")


# --------------------------------------------------------------------------- fully convolutional encoding


class MeanColour(torch.nn.Module):
    """A linear 'CNN' without padding: a patch's feature is its mean colour, the map a 4 x 4 average."""

    stride = 4
    input_size = 64

    def normalise(self, x):
        return x.permute(0, 3, 1, 2).float()

    def feature_map(self, x):
        return torch.nn.functional.avg_pool2d(x, 4)

    def forward(self, x):
        return self.normalise(x).mean((2, 3))


@pytest.mark.parametrize("tile_px", [1536, 96])  # one tile; many tiles
def test_fcn_pools_the_same_window_as_the_patch(section, tile_px) -> None:
    from napari_senca.fcn import encode_fcn
    from napari_senca.patches import image_levels, iter_patches
    from napari_senca.section import spot_spacing

    enc = MeanColour()
    want = np.concatenate([enc(torch.from_numpy(b)).numpy() for b in iter_patches(section, 1.0, 64)])
    xy = np.asarray(section.obsm["spatial"])[:, :2]
    got = drain(encode_fcn(image_levels(section), xy, spot_spacing(section), enc, 64, torch.device("cpu"), tile_px))
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 6.0  # grey levels: resampling differences only
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99


def test_auto_encoding_is_fcn_except_per_patch_for_a_measured_gate_on_standard_sections(section, monkeypatch) -> None:
    cfg = SencaConfig(image_weights="none", patch_size=32, cache_features=False)
    gated = cfg.replace(image_gate=None)  # the measured gate is calibrated on per-patch features
    clear_cache()  # features of this section from another test would be reused and report no method
    assert _encode(section, cfg).method == "fcn"  # auto with the default fixed gate
    assert _encode(section, gated).method == "patches"  # auto, measured gate, a standard section
    monkeypatch.setattr(features_mod, "FCN_AUTO_MIN_SPOTS", section.n_obs - 1)  # auto, a 'large' section
    clear_cache()  # the fcn features above would be reused (same key): encode again to see the method
    assert _encode(section, gated).method == "fcn"
    assert _encode(section, cfg.replace(image_encoding="patches")).method == "patches"


class LazyImage:
    """An image that only hands out windows (as a lazy zarr level would), recording their sizes."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr, self.shape, self.dtype, self.reads = arr, arr.shape, arr.dtype, []

    def __getitem__(self, key):
        out = self.arr[key]
        self.reads.append(out.size)
        return out

    def __array__(self, *a, **kw):
        raise AssertionError("the whole level was read")


@pytest.mark.parametrize("method", ["fcn", "patches"])
def test_lazy_levels_are_only_sliced(section, monkeypatch, method) -> None:
    from napari_senca import section as section_mod
    from napari_senca.section import get_image

    img, f = get_image(section)
    lazy = LazyImage(np.ascontiguousarray(img))
    monkeypatch.setattr(section_mod, "get_image_levels", lambda ad: [(lazy, f)], raising=False)
    monkeypatch.setattr(features_mod, "_HASH_PX_LAZY", 10_000)  # the cache key samples a lazy level
    out = _encode(section, SencaConfig(image_weights="none", patch_size=32, image_encoding=method,
                                       patch_radius_spacings=0.5, cache_features=False))  # fmt: skip
    assert out.feats.shape[0] == section.n_obs and lazy.reads  # windows only (no __array__)
    if method == "patches":
        assert max(lazy.reads) < lazy.arr.size / 10


def test_read_scaled_block_mean_in_strips(monkeypatch) -> None:
    from napari_senca import fcn

    monkeypatch.setattr(fcn, "_STRIP_PX", 64 * 8)  # many strips
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = fcn.read_scaled(img, 0, 0, 64, 64, 0.25, np.zeros(3, np.uint8))
    want = img.astype(float).reshape(16, 4, 16, 4, 3).mean((1, 3))
    assert out.shape == (16, 16, 3) and np.abs(out - want).max() <= 0.5 + 1e-9


# --------------------------------------------------------------------------- disk cache


def test_second_run_reads_the_disk_cache_without_the_backbone(section, monkeypatch, tmp_path) -> None:
    from napari_senca.model import backbone

    monkeypatch.setenv("NAPARI_SENCA_CACHE", str(tmp_path / "cache"))
    cfg = SencaConfig(image_weights="none", patch_size=32)
    clear_cache()
    first = _encode(section, cfg)
    assert not first.cached and len(list((tmp_path / "cache").glob("*.npz"))) == 1
    features_mod._CACHE.clear()  # a new process: only the disk remains

    def no_backbone(*a, **kw):
        raise AssertionError("the backbone was called")

    monkeypatch.setattr(backbone, "build_backbone", no_backbone)
    second = _encode(section, cfg)
    assert second.cached and second.weights_used == first.weights_used
    np.testing.assert_array_equal(second.feats, first.feats)
    features_mod._CACHE.clear()
    with pytest.raises(AssertionError, match="backbone"):  # disabled: encodes again
        _encode(section, cfg.replace(cache_features=False))
    monkeypatch.setenv("NAPARI_SENCA_CACHE", "off")
    with pytest.raises(AssertionError, match="backbone"):
        _encode(section, cfg)


def test_cache_key_follows_encoder_weights_file_and_method(section, tmp_path) -> None:
    from napari_senca.features import feature_key

    cfg = SencaConfig(image_weights="none", patch_size=32)
    key = feature_key(section, cfg)
    assert feature_key(section, cfg.replace(backbone="resnet10t")) != key
    assert feature_key(section, cfg.replace(image_encoding="patches")) != key  # auto is fcn here
    w = tmp_path / "w.pth"
    w.write_bytes(b"1")
    k1 = feature_key(section, cfg.replace(image_weights=str(w)))
    w.write_bytes(b"22")  # a new file under the same name
    assert feature_key(section, cfg.replace(image_weights=str(w))) != k1


def test_offline_fallback_on_disk_is_not_reused_once_imagenet_is_cached(section, monkeypatch, tmp_path) -> None:
    from napari_senca import feature_cache, image_weights

    monkeypatch.setenv("NAPARI_SENCA_CACHE", str(tmp_path))
    cfg = SencaConfig(patch_size=32)  # image_weights "auto"
    key = features_mod.feature_key(section, cfg)
    feature_cache.save(key, np.zeros((section.n_obs, 4), np.float32), RANDOM_OFFLINE)
    features_mod._CACHE.clear()
    monkeypatch.setattr(image_weights, "imagenet_cached", lambda b="resnet18": False)
    assert features_mod._lookup(key, cfg) is not None  # still offline: the fallback stands
    features_mod._CACHE.clear()
    monkeypatch.setattr(image_weights, "imagenet_cached", lambda b="resnet18": True)
    assert features_mod._lookup(key, cfg) is None  # the weights are here now: encode with them


# --------------------------------------------------------------------------- weak features


def test_random_weights_are_recorded_as_uninformative(section) -> None:
    from napari_senca.pipeline import annotate, run_senca

    ad = section.copy()
    cfg = SencaConfig(image_weights="none", patch_size=32, epochs=1, steps_per_epoch=1, embed_dim=16,
                      hidden_dim=32, shared_dim=4, n_clusters=3, cache_features=False)  # fmt: skip
    annotate(ad, run_senca(ad, cfg))
    assert ad.uns["senca"]["image_weights"].startswith("random")
    assert ad.uns["senca"]["image_features_informative"] is False
