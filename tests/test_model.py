"""Shapes and basic behaviour of every SENCA-st module, the backbone and the model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from napari_senca import ConfigError, SencaConfig, image_weights
from napari_senca.errors import SencaError
from napari_senca.graph import build_graph, neighbour_index, normalized_adjacency
from napari_senca.model.backbone import IMAGENET_MEAN, IMAGENET_STD, ResNetTrunk, build_backbone
from napari_senca.model.modules import (
    GraphTransformer,
    ImageHead,
    NeighbourhoodCrossAttention,
    SharedAutoencoder,
    nt_xent,
    window_pool,
)
from napari_senca.model.senca import SencaModel, SencaOutput

N, G, E, HD, S, FEAT = 16, 20, 16, 32, 8, 24


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tiny models: one thread is faster


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _graph_inputs(n_side: int = 4, k: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gy, gx = np.mgrid[0:n_side, 0:n_side]
    xy = np.stack([gx.ravel(), gy.ravel()], 1).astype(float)
    g = build_graph(xy, k)
    a = normalized_adjacency(g).tocoo()
    adj = torch.sparse_coo_tensor(
        np.vstack([a.row, a.col]), a.data, a.shape, dtype=torch.float32
    ).coalesce()
    idx, mask = neighbour_index(g)
    return adj, torch.from_numpy(idx), torch.from_numpy(mask)


def _cfg(**kw: object) -> SencaConfig:
    base = dict(embed_dim=E, hidden_dim=HD, shared_dim=S, image_weights="none", patch_size=32)
    base.update(kw)
    return SencaConfig(**base)


# --------------------------------------------------------------------------- GraphTransformer


@pytest.mark.parametrize("n_heads", [1, 2])
def test_graph_transformer_shape(n_heads: int) -> None:
    adj, idx, mask = _graph_inputs()
    m = GraphTransformer(G, HD, E, n_heads=n_heads, dropout=0.2)
    out = m(torch.randn(N, G), adj, idx, mask)
    assert out.shape == (N, E)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_graph_transformer_sparse_and_dense_adjacency_agree() -> None:
    adj, idx, mask = _graph_inputs()
    m = GraphTransformer(G, HD, E).eval()
    x = torch.randn(N, G)
    torch.testing.assert_close(m(x, adj, idx, mask), m(x, adj.to_dense(), idx, mask), rtol=1e-5, atol=1e-5)


def test_graph_transformer_dropout_only_in_training() -> None:
    adj, idx, mask = _graph_inputs()
    m = GraphTransformer(G, HD, E, dropout=0.5)
    x = torch.randn(N, G)
    m.eval()
    torch.testing.assert_close(m(x, adj, idx, mask), m(x, adj, idx, mask))
    m.train()
    assert not torch.allclose(m(x, adj, idx, mask), m(x, adj, idx, mask))


# --------------------------------------------------------------------------- ImageHead


def test_image_head_shape() -> None:
    m = ImageHead(FEAT, E)
    out = m(torch.randn(N, FEAT))
    assert out.shape == (N, E)


# --------------------------------------------------------------------------- cross-attention


def test_cross_attention_shapes() -> None:
    _, index, mask = _graph_inputs()
    m = NeighbourhoodCrossAttention(E)
    r, h = torch.randn(N, E), torch.randn(N, E)
    ra, ha = m(r, h, index, mask)
    assert ra.shape == (N, E) and ha.shape == (N, E)
    assert torch.isfinite(ra).all() and torch.isfinite(ha).all()


def test_cross_attention_with_only_the_spot_is_residual_plus_value() -> None:
    _, index, mask = _graph_inputs()
    only_self = torch.zeros_like(mask)
    only_self[:, 0] = True
    m = NeighbourhoodCrossAttention(E)
    r, h = torch.randn(N, E), torch.randn(N, E)
    ra, ha = m(r, h, index, only_self)
    with torch.no_grad():
        torch.testing.assert_close(ra, r + m.v1(r))
        torch.testing.assert_close(ha, h + m.v2(h))


def test_cross_attention_ignores_masked_entries() -> None:
    _, index, mask = _graph_inputs()
    m = NeighbourhoodCrossAttention(E)
    r, h = torch.randn(N, E), torch.randn(N, E)
    ra, ha = m(r, h, index, mask)
    # point every padded (masked) slot at another spot: nothing may change
    other = index.clone()
    other[~mask] = (torch.arange(N)[:, None].expand_as(index)[~mask] + 1) % N
    assert (~mask).any()
    ra2, ha2 = m(r, h, other, mask)
    torch.testing.assert_close(ra, ra2)
    torch.testing.assert_close(ha, ha2)


# --------------------------------------------------------------------------- shared autoencoder


@pytest.mark.parametrize("d_in", [E, 2 * E])
def test_shared_autoencoder_shapes(d_in: int) -> None:
    m = SharedAutoencoder(d_in, HD, S)
    s, d = m(torch.randn(N, d_in))
    assert s.shape == (N, S)
    assert d.shape == (N, d_in)


# --------------------------------------------------------------------------- nt_xent


@pytest.mark.parametrize("n", [8, 32])
def test_nt_xent_random_inputs_is_about_log_2n_minus_1(n: int) -> None:
    a, b = torch.randn(n, 512), torch.randn(n, 512)
    loss = nt_xent(a, b, temperature=0.5)
    assert loss.shape == ()
    assert float(loss) == pytest.approx(math.log(2 * n - 1), abs=0.15)


def test_nt_xent_identical_pairs_is_lower() -> None:
    n = 16
    a, b = torch.randn(n, 64), torch.randn(n, 64)
    random_loss = float(nt_xent(a, b))
    same_loss = float(nt_xent(a, a.clone()))
    assert same_loss < random_loss - 0.5
    # positives at cosine 1 -> logit 1/T against near-zero negatives
    t = 0.5
    expected = math.log(math.exp(1 / t) + 2 * n - 2) - 1 / t
    assert same_loss == pytest.approx(expected, abs=0.2)


def test_nt_xent_is_symmetric_and_scale_invariant() -> None:
    a, b = torch.randn(10, 32), torch.randn(10, 32)
    torch.testing.assert_close(nt_xent(a, b), nt_xent(b, a))
    torch.testing.assert_close(nt_xent(a, b), nt_xent(3 * a, 0.5 * b))


def test_nt_xent_lower_temperature_sharpens() -> None:
    a = torch.randn(12, 32)
    b = a + 0.1 * torch.randn(12, 32)
    assert float(nt_xent(a, b, 0.1)) < float(nt_xent(a, b, 1.0))


def test_nt_xent_single_pair_is_zero() -> None:
    loss = nt_xent(torch.randn(1, 8), torch.randn(1, 8))
    assert loss.shape == () and float(loss) == 0.0


# --------------------------------------------------------------------------- window_pool


def test_window_pool_means() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 20.0], [5.0, 5.0], [7.0, 9.0]])
    window = torch.tensor([0, 0, 2, 0, 2])
    out = window_pool(x, window, 4)
    assert out.shape == (4, 2)
    torch.testing.assert_close(out[0], torch.tensor([3.0, 11.0 / 3.0]))
    torch.testing.assert_close(out[2], torch.tensor([8.5, 14.5]))
    # windows without spots are zero, not NaN
    torch.testing.assert_close(out[1], torch.zeros(2))
    torch.testing.assert_close(out[3], torch.zeros(2))


def test_window_pool_matches_a_loop_and_passes_gradients() -> None:
    x = torch.randn(30, 6, requires_grad=True)
    window = torch.randint(0, 5, (30,))
    out = window_pool(x, window, 5)
    for w in range(5):
        sel = window == w
        if sel.any():
            torch.testing.assert_close(out[w], x[sel].mean(0))
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_window_pool_single_window_is_the_mean() -> None:
    x = torch.randn(9, 4)
    torch.testing.assert_close(window_pool(x, torch.zeros(9, dtype=torch.long), 1)[0], x.mean(0))


# --------------------------------------------------------------------------- backbone


@pytest.fixture(scope="module")
def resnet18() -> ResNetTrunk:
    return build_backbone("resnet18", "none").eval()


def test_backbone_shape(resnet18: ResNetTrunk) -> None:
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    with torch.no_grad():
        out = resnet18(x)
    assert out.shape == (2, 512)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert isinstance(resnet18, nn.Module)
    assert resnet18.n_features == 512
    assert resnet18.weights_used == "random (image weights 'none')"


def test_backbone_normalises_with_imagenet_statistics(resnet18: ResNetTrunk) -> None:
    assert torch.allclose(resnet18.mean.ravel(), torch.tensor(IMAGENET_MEAN))
    assert torch.allclose(resnet18.std.ravel(), torch.tensor(IMAGENET_STD))
    # the normalisation buffers are not part of the state dict
    assert "mean" not in resnet18.state_dict() and "std" not in resnet18.state_dict()


def test_backbone_unknown_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no_such_net"):
        build_backbone("no_such_net", "none")


@pytest.fixture(scope="module")
def resnet18_state(resnet18: ResNetTrunk) -> dict[str, torch.Tensor]:
    import torchvision.models as tvm

    torch.manual_seed(1)
    return tvm.resnet18(weights=None).state_dict()


def test_backbone_loads_a_local_state_dict(tmp_path: Path, resnet18_state: dict) -> None:
    path = tmp_path / "weights.pth"
    torch.save(resnet18_state, path)
    trunk = build_backbone("resnet18", str(path))
    assert trunk.weights_used == str(path)
    assert trunk.n_features == 512
    got = trunk.net.state_dict()
    for k, v in resnet18_state.items():
        if not k.startswith("fc."):
            torch.testing.assert_close(got[k], v)
    x = torch.zeros(1, 32, 32, 3, dtype=torch.uint8)
    with torch.no_grad():
        assert trunk.eval()(x).shape == (1, 512)


def test_backbone_loads_a_wrapped_prefixed_checkpoint(tmp_path: Path, resnet18_state: dict) -> None:
    # {"state_dict": {"module.<key>": ...}} without the classifier (DataParallel style)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in resnet18_state.items() if not k.startswith("fc.")}}
    path = tmp_path / "ckpt.pt"
    torch.save(wrapped, path)
    trunk = build_backbone("resnet18", str(path))
    torch.testing.assert_close(trunk.net.conv1.weight, resnet18_state["conv1.weight"])


def test_backbone_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        build_backbone("resnet18", str(tmp_path / "nope.pth"))


def test_backbone_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    path.write_text("this is not a checkpoint")
    with pytest.raises(ConfigError, match="weights.pth"):
        build_backbone("resnet18", str(path))


def test_backbone_non_dict_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ConfigError, match="state dict"):
        build_backbone("resnet18", str(path))


def test_backbone_state_dict_with_missing_keys_is_a_config_error(tmp_path: Path, resnet18_state: dict) -> None:
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in resnet18_state.items() if not k.startswith("layer4.")}, path)
    with pytest.raises(ConfigError, match="does not fit"):
        build_backbone("resnet18", str(path))


def test_backbone_wrong_architecture_is_a_config_error(tmp_path: Path, resnet18_state: dict) -> None:
    # a resnet18 file loaded as resnet34 lacks the extra blocks (layer1.2, ...)
    path = tmp_path / "r18.pth"
    torch.save(resnet18_state, path)
    with pytest.raises(ConfigError, match="resnet34"):
        build_backbone("resnet34", str(path))


def test_backbone_shape_mismatch_is_a_config_error(tmp_path: Path, resnet18_state: dict) -> None:
    state = dict(resnet18_state)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)  # a Bottleneck (resnet50) shape
    path = tmp_path / "mismatch.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError):
        build_backbone("resnet18", str(path))


# --------------------------------------------------------------------------- SencaModel


def _check_output(out: SencaOutput, d: int) -> None:
    assert isinstance(out, SencaOutput)
    assert out.r.shape == (N, E)
    assert out.h.shape == (N, E)
    assert out.e.shape == (N, d)
    assert out.s.shape == (N, S)
    assert out.d.shape == (N, d)
    assert out.x_hat.shape == (N, G)
    for t in (out.r, out.h, out.e, out.s, out.d, out.x_hat):
        assert torch.isfinite(t).all()


@pytest.mark.parametrize(("fusion", "d"), [("concat", 2 * E), ("sum", E)])
@pytest.mark.parametrize("cross_attention", [True, False])
def test_senca_model_with_image(fusion: str, d: int, cross_attention: bool) -> None:
    adj, index, mask = _graph_inputs()
    model = SencaModel(G, FEAT, _cfg(fusion=fusion, cross_attention=cross_attention))
    assert not model.rna_only
    assert (model.xattn is not None) == cross_attention
    out = model(torch.randn(N, G), adj, index, mask, torch.randn(N, FEAT))
    _check_output(out, d)


def test_senca_model_fusion_changes_the_shared_input_size() -> None:
    concat = SencaModel(G, FEAT, _cfg(fusion="concat"))
    summed = SencaModel(G, FEAT, _cfg(fusion="sum"))
    n_concat = sum(p.numel() for p in concat.parameters())
    n_sum = sum(p.numel() for p in summed.parameters())
    assert n_concat > n_sum


def test_senca_model_without_cross_attention_has_fewer_parameters() -> None:
    with_x = SencaModel(G, FEAT, _cfg(cross_attention=True))
    without = SencaModel(G, FEAT, _cfg(cross_attention=False))
    assert sum(p.numel() for p in without.parameters()) < sum(p.numel() for p in with_x.parameters())


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_senca_model_rna_only(fusion: str) -> None:
    adj, index, mask = _graph_inputs()
    model = SencaModel(G, None, _cfg(fusion=fusion))
    assert model.rna_only
    out = model(torch.randn(N, G), adj, index, mask)
    _check_output(out, E)  # no image: the shared encoder sees R alone, whatever the fusion
    assert not any(p.numel() == 0 for p in model.parameters())


def test_senca_model_with_image_needs_features() -> None:
    adj, index, mask = _graph_inputs()
    model = SencaModel(G, FEAT, _cfg())
    with pytest.raises(ValueError, match="features"):
        model(torch.randn(N, G), adj, index, mask, None)


def test_senca_model_eval_is_deterministic() -> None:
    adj, index, mask = _graph_inputs()
    model = SencaModel(G, FEAT, _cfg()).eval()
    x, f = torch.randn(N, G), torch.randn(N, FEAT)
    with torch.no_grad():
        a, b = model(x, adj, index, mask, f), model(x, adj, index, mask, f)
    torch.testing.assert_close(a.s, b.s)


@pytest.mark.parametrize(
    "kind",
    ["image-concat", "image-sum", "image-no-xattn", "rna-only"],
)
def test_gradients_reach_every_parameter(kind: str) -> None:
    adj, index, mask = _graph_inputs()
    cfg = _cfg(
        fusion="sum" if kind == "image-sum" else "concat",
        cross_attention=kind != "image-no-xattn",
    )
    n_feat = None if kind == "rna-only" else FEAT
    model = SencaModel(G, n_feat, cfg).train()
    x = torch.randn(N, G)
    feats = None if n_feat is None else torch.randn(N, FEAT)
    out = model(x, adj, index, mask, feats)
    terms = [out.r, out.h, out.e, out.s, out.d, out.x_hat]
    terms += [] if out.f_hat is None else [out.f_hat]  # image decoder (default fusion)
    terms += [] if model.proj_r is None else list(model.project(out.r, out.h))  # projection heads
    loss = sum((t**2).mean() for t in terms)
    loss.backward()
    names = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert names == []
    for _, p in model.named_parameters():
        assert torch.isfinite(p.grad).all()


def test_gradients_reach_the_features() -> None:
    adj, index, mask = _graph_inputs()
    model = SencaModel(G, FEAT, _cfg())
    feats = torch.randn(N, FEAT, requires_grad=True)
    out = model(torch.randn(N, G), adj, index, mask, feats)
    out.s.sum().backward()
    assert feats.grad is not None and torch.any(feats.grad != 0)


# --------------------------------------------------------------------------- fusion options (issue 9)


def test_auto_weights_offline_say_so_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_senca.model import resnet

    def offline(name, progress=True):  # what torch.hub does without internet and without a cache
        raise OSError("no network")

    monkeypatch.setattr(resnet, "imagenet_state_dict", offline)
    image_weights.forget_failures()
    try:
        trunk = build_backbone("resnet18", "auto")
        assert trunk.weights_used == "random (ImageNet weights unavailable offline)"
        with pytest.raises(SencaError, match="could not load ImageNet weights"):
            build_backbone("resnet18", "imagenet")
    finally:
        image_weights.forget_failures()


def test_imagenet_weights_load_into_the_trunk(monkeypatch: pytest.MonkeyPatch, resnet18_state: dict) -> None:
    """'imagenet' loads torchvision's state dict strictly (fc included) and keeps the trunk."""
    from napari_senca.model import resnet

    monkeypatch.setattr(resnet, "imagenet_state_dict", lambda name, progress=True: dict(resnet18_state))
    trunk = build_backbone("resnet18", "imagenet")
    assert trunk.weights_used == "imagenet" and not trunk.random
    got = trunk.net.state_dict()
    for k, v in resnet18_state.items():
        if not k.startswith("fc."):
            assert torch.equal(got[k], v)


def test_image_decoder_and_projection_heads_only_when_asked() -> None:
    adj, index, mask = _graph_inputs()
    x, f = torch.randn(N, G), torch.randn(N, FEAT)
    plain = SencaModel(G, FEAT, _cfg(image_recon_weight=0.0, projection_heads=False))
    assert plain.image_decoder is None and plain.proj_r is None
    out = plain(x, adj, index, mask, f)
    assert out.f_hat is None
    fused = SencaModel(G, FEAT, _cfg(image_recon_weight=1.0, projection_heads=True), n_image_targets=5)
    out = fused(x, adj, index, mask, f)
    assert out.f_hat is not None and out.f_hat.shape == (N, 5)
    a, b = fused.project(out.r[:3], out.h[:3])
    assert a.shape == b.shape == (3, E // 2)
    # RNA-only models never get image parts, whatever the switches say
    rna = SencaModel(G, None, _cfg(image_recon_weight=1.0, projection_heads=True))
    assert rna.image_decoder is None and rna.proj_r is None
    assert rna(x, adj, index, mask).f_hat is None


def test_image_decoder_gets_gradient_from_the_image_loss() -> None:
    adj, index, mask = _graph_inputs()
    x, f = torch.randn(N, G), torch.randn(N, FEAT)
    model = SencaModel(G, FEAT, _cfg(image_recon_weight=1.0), n_image_targets=FEAT)
    out = model(x, adj, index, mask, f)
    torch.nn.functional.mse_loss(out.f_hat, f).backward()
    assert model.image.fc.weight.grad is not None and model.image.fc.weight.grad.abs().sum() > 0
