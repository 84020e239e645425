"""Linear in spots (issue 10): local attention, exact tiled batches, bounded windows and memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_senca import ConfigError, SencaConfig
from napari_senca.batches import HaloSampler, tile_cores
from napari_senca.cluster import WARD_MAX_SPOTS, cluster_embedding
from napari_senca.generators import drain
from napari_senca.model.modules import GraphTransformer
from napari_senca.model.senca import SencaModel
from napari_senca.pipeline import _graph_arrays, _graph_tensors, check_run_settings, run_senca_iter
from napari_senca.train import TrainData, embed_iter, windows

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def synthetic_small():
    from napari_senca.datasets import synthetic_section

    return synthetic_section(12, 60, 3, with_image=False, seed=0)  # 144 spots


def _grid(side: int) -> np.ndarray:
    gy, gx = np.mgrid[0:side, 0:side]
    return np.stack([gx.ravel(), gy.ravel()], 1).astype(float)


def _cfg(**kw: object) -> SencaConfig:
    base = dict(embed_dim=16, hidden_dim=32, shared_dim=8, image_weights="none", patch_size=32)
    base.update(kw)
    return SencaConfig(**base)


def test_rna_branch_output_of_a_spot_ignores_far_away_spots() -> None:
    torch.manual_seed(0)
    side = 12
    adj, idx, mask = _graph_tensors(_grid(side), _cfg(), torch.device("cpu"))
    m = GraphTransformer(6, 32, 16).eval()
    x = torch.randn(side * side, 6)
    y = x.clone()
    y[-1] += 5.0  # the far corner
    with torch.no_grad():
        a, b = m(x, adj, idx, mask), m(y, adj, idx, mask)
    assert torch.equal(a[0], b[0])  # spot 0 is 22 hops away: bit-for-bit unchanged
    assert not torch.allclose(a[-1], b[-1])  # the changed spot itself does change


def test_two_hop_attention_sees_exactly_the_two_hop_neighbourhood() -> None:
    from napari_senca.model.modules import wider

    _, idx, mask = _graph_tensors(_grid(9), _cfg(), torch.device("cpu"))
    i2, m2 = wider(idx, mask)
    centre = 40  # (4, 4) on the 9 x 9 grid, away from the border's extra kNN edges
    got = i2[centre][m2[centre]].tolist()
    assert got[0] == centre and len(got) == len(set(got)) == 13  # the diamond of radius 2
    gy, gx = np.divmod(np.array(got), 9)
    assert (np.abs(gy - 4) + np.abs(gx - 4)).max() == 2


def _section_data(side: int, feats: bool, seed: int = 0) -> tuple[TrainData, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = _grid(side)
    adj_sp, idx, mask = _graph_arrays(xy, _cfg())
    adj, index, msk = _graph_tensors(xy, _cfg(), torch.device("cpu"))
    x = torch.from_numpy(rng.normal(size=(side * side, 6)).astype(np.float32))
    f = torch.from_numpy(rng.normal(size=(side * side, 5)).astype(np.float32)) if feats else None
    data = TrainData(x=x, x_target=x, adj=adj, index=index, mask=msk, xy=xy, side=3.0, feats=f)
    return data, adj_sp, idx, mask


@pytest.mark.parametrize(("with_image", "hops"), [(False, 1), (True, 1), (True, 2)])
def test_tiled_embedding_equals_the_whole_section_pass(with_image: bool, hops: int) -> None:
    torch.manual_seed(0)
    data, adj_sp, idx, mask = _section_data(20, with_image)
    model = SencaModel(6, 5 if with_image else None, _cfg(attention_hops=hops))
    whole = _run(embed_iter(model, data))
    data.halo = HaloSampler(adj_sp, idx, mask, model.receptive_hops)
    data.batch_side = 7.0  # tiles of 7 x 7 spots: 9 tiles, every core far smaller than the section
    steps = []
    tiled = _run(embed_iter(model, data), steps)
    assert steps[-1] == (9, 9)
    np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-5)


def test_a_halo_one_hop_too_shallow_is_not_exact() -> None:
    torch.manual_seed(0)
    data, adj_sp, idx, mask = _section_data(20, True)
    model = SencaModel(6, 5, _cfg())
    whole = _run(embed_iter(model, data))
    data.halo = HaloSampler(adj_sp, idx, mask, model.receptive_hops - 1)
    data.batch_side = 7.0
    assert not np.allclose(_run(embed_iter(model, data)), whole, rtol=1e-4, atol=1e-5)


def _run(gen, seen: list | None = None):
    return drain(gen, None if seen is None else seen.append)


def test_a_20k_spot_section_embeds_in_bounded_batches() -> None:
    torch.manual_seed(0)
    side = 142  # 20,164 spots
    xy = _grid(side)
    adj_sp, idx, mask = _graph_arrays(xy, _cfg())
    halo = HaloSampler(adj_sp, idx, mask, 3)
    cores = tile_cores(xy, np.sqrt(2000))
    sizes = [halo.nodes(c).size for c in cores]
    assert sum(len(c) for c in cores) == side * side
    assert max(sizes) <= 1.6 * 2000  # a batch holds its core (<= 2,025 spots) and a 3-hop rim only
    x = torch.randn(side * side, 6)
    data = TrainData(  # the whole-section tensors are never used when tiling
        x=x, x_target=x, adj=torch.zeros(1), index=torch.zeros(1), mask=torch.zeros(1), xy=xy, side=3.0,
        halo=halo, batch_side=np.sqrt(2000),
    )
    s = _run(embed_iter(SencaModel(6, None, _cfg()), data))
    assert s.shape == (side * side, 8) and np.isfinite(s).all()


def test_windows_are_capped() -> None:
    rng = np.random.default_rng(0)
    xy = _grid(60)
    rows, wid, nw = windows(xy, 3.0, rng, max_windows=50)
    assert nw == 50 and rows is not None
    assert int(wid.max()) == 49 and len(rows) == len(wid) <= 50 * 16
    rows, wid, nw = windows(xy, 3.0, rng, max_windows=10_000)
    assert rows is None and len(wid) == 3600 and nw >= 400


def test_minibatch_run_gives_a_result_of_the_same_shape(synthetic_small) -> None:
    cfg = _cfg(n_clusters=3, epochs=2, steps_per_epoch=3, batch_spots=64, use_image=False)
    gen = run_senca_iter(synthetic_small, cfg)
    seen = []
    res = _run(gen, seen)
    n = synthetic_small.n_obs
    assert n > 64
    assert res.embedding.shape[0] == n and res.labels.shape == (n,)
    assert len(res.history) == 2 and all(np.isfinite(h["total"]) for h in res.history)
    assert any("tile" in p.message for p in seen)  # the tiled embedding reports its progress


def test_minibatch_run_stops_at_a_yield(synthetic_small) -> None:
    cfg = _cfg(n_clusters=3, epochs=5, steps_per_epoch=2, batch_spots=64, use_image=False)
    gen = run_senca_iter(synthetic_small, cfg)
    for p in gen:
        if p.stage == "train":
            break
    gen.close()  # Stop: no error, nothing left running


def test_ward_refuses_huge_sections_before_training() -> None:
    with pytest.raises(ConfigError, match="kmeans"):
        check_run_settings(SencaConfig(cluster_method="agglomerative"), WARD_MAX_SPOTS + 1, 7)
    with pytest.raises(ConfigError, match="distance matrix"):
        cluster_embedding(np.zeros((WARD_MAX_SPOTS + 1, 2)), 3, "agglomerative")
    check_run_settings(SencaConfig(cluster_method="kmeans"), 10 * WARD_MAX_SPOTS, 7)


def test_full_attention_is_global_and_refused_on_large_sections() -> None:
    torch.manual_seed(0)
    side = 12
    adj, idx, mask = _graph_tensors(_grid(side), _cfg(), torch.device("cpu"))
    m = GraphTransformer(6, 32, 16, full=True).eval()
    x = torch.randn(side * side, 6)
    y = x.clone()
    y[-1] += 5.0
    with torch.no_grad():
        assert not torch.equal(m(x, adj, idx, mask)[0], m(y, adj, idx, mask)[0])  # all pairs: spot 0 sees it
    with pytest.raises(ConfigError, match="attention='local'"):
        check_run_settings(SencaConfig(attention="full", batch_spots=100), 101, 3)
    check_run_settings(SencaConfig(attention="full", batch_spots=100), 100, 3)
