"""Image features: the cache, the image block's scale, and the symmetric skip block."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_senca import SencaConfig
from napari_senca.embedding import clustered_embedding
from napari_senca.features import clear_cache, encode_iter, feature_key, image_block
from napari_senca.generators import drain

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _encode(ad, cfg):
    return drain(encode_iter(ad, cfg, torch.device("cpu")))


def test_second_encoding_comes_from_the_cache(section) -> None:
    clear_cache()
    cfg = SencaConfig(image_weights="none", patch_size=32)
    torch.manual_seed(0)
    first = _encode(section, cfg)
    second = _encode(section, cfg)
    assert not first.cached and second.cached
    np.testing.assert_array_equal(first.feats, second.feats)
    assert first.weights_used.startswith("random")


def test_cache_key_changes_with_patch_settings_spots_and_random_seed(section) -> None:
    cfg = SencaConfig(image_weights="none", patch_size=32)
    key = feature_key(section, cfg)
    assert feature_key(section, cfg.replace(patch_size=48)) != key
    assert feature_key(section, cfg.replace(patch_radius_spacings=2.0)) != key
    assert feature_key(section, cfg.replace(seed=1)) != key  # random weights depend on the seed
    moved = section.copy()
    moved.obsm["spatial"] = moved.obsm["spatial"] + 1.0
    assert feature_key(moved, cfg) != key


def test_image_block_has_the_requested_scale() -> None:
    f = np.random.default_rng(0).normal(5, 3, size=(50, 20)).astype(np.float32)
    b = image_block(f, 4, mean_square=2.5, seed=0)
    assert b.shape == (50, 4)
    assert np.isclose((b.astype(np.float64) ** 2).mean(), 2.5, rtol=1e-4)


def test_symmetric_skip_gives_each_modality_half(section) -> None:
    from napari_senca.pipeline import _graph_tensors

    cfg = SencaConfig(skip_pcs=3, skip_mode="both", skip_weight=0.5, smooth_hops=1)
    adj, _, _ = _graph_tensors(np.asarray(section.obsm["spatial"]), cfg, torch.device("cpu"))
    rng = np.random.default_rng(0)
    s, expr, img = rng.normal(size=(36, 4)), rng.normal(size=(36, 10)), rng.normal(size=(36, 12))
    z = clustered_embedding(s.astype(np.float32), expr, img, adj, cfg)
    assert z.shape == (36, 3 + 3 + 4)
    ms = lambda blk: float((blk.astype(np.float64) ** 2).sum(1).mean())  # noqa: E731
    assert np.isclose(ms(z[:, :3]), 0.5, rtol=1e-4) and np.isclose(ms(z[:, 3:6]), 0.5, rtol=1e-4)
    assert np.isclose(ms(z[:, 6:]), 0.25, rtol=1e-4)
    # RNA-only: "both" falls back to the RNA block alone
    assert clustered_embedding(s.astype(np.float32), expr, None, adj, cfg).shape == (36, 3 + 4)
