"""The training generator, its result and how a result is stored in the section."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData

from napari_senca import ConfigError, SencaConfig
from napari_senca.datasets import synthetic_section
from napari_senca.embedding import clusters_reconstruction
from napari_senca.generators import drain
from napari_senca.pipeline import (
    Progress,
    SencaResult,
    annotate,
    default_n_clusters,
    resolve_device,
    run_senca,
    run_senca_iter,
)

N_SIDE, N_GENES = 10, 80
N_SPOTS = N_SIDE * N_SIDE
STAGES = ("preprocess", "patches", "train", "cluster")


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tiny models: one thread is faster


def small_config(**kw: object) -> SencaConfig:
    base: dict[str, object] = dict(
        epochs=2,
        steps_per_epoch=2,
        embed_dim=16,
        hidden_dim=32,
        shared_dim=8,
        patch_size=32,
        image_weights="none",
        n_top_genes=50,
        n_clusters=3,
        device="cpu",
        cluster_method="agglomerative",  # keeps the tree these tests look at; k-means is tested below
    )
    base.update(kw)
    return SencaConfig(**base)


@dataclass
class Run:
    progress: list[Progress]
    result: SencaResult


def drive(adata: AnnData, cfg: SencaConfig) -> Run:
    """Run the generator by hand, collecting its reports and its return value."""
    seen: list[Progress] = []
    return Run(seen, drain(run_senca_iter(adata, cfg), seen.append))


@pytest.fixture(scope="module")
def section() -> AnnData:
    return synthetic_section(n_side=N_SIDE, n_genes=N_GENES, seed=0)


@pytest.fixture(scope="module")
def image_run(section: AnnData) -> Run:
    # random image weights counted, so the image stage encodes (by default random features are skipped)
    return drive(section, small_config(random_weights_gate=1.0))


@pytest.fixture(scope="module")
def rna_run(section: AnnData) -> Run:
    return drive(section, small_config(use_image=False))


def _collapse(stages: list[str]) -> list[str]:
    out: list[str] = []
    for s in stages:
        if not out or out[-1] != s:
            out.append(s)
    return out


def _check_result(result: SencaResult, cfg: SencaConfig, n: int = N_SPOTS) -> None:
    assert isinstance(result, SencaResult)
    if clusters_reconstruction(cfg, not result.rna_only and bool(result.image_gate)):  # the decoder's expression
        inputs = min(cfg.input_pcs, n, len(result.genes)) if cfg.input_pcs else len(result.genes)
        d = min(cfg.recon_pcs, inputs) if cfg.recon_pcs else inputs
        lib = bool(result.library_gate)  # [reconstruction PCs, library size column when it counted]
        assert result.library_gate is None or cfg.library_size_weight > 0
        assert result.embedding.shape == (n, d + lib)
        norm = np.sqrt((result.embedding[:, :d].astype(np.float64) ** 2).sum(1).mean())
        assert norm == pytest.approx(1.0, rel=1e-4)
    else:
        skip = min(cfg.skip_pcs, n, len(result.genes)) if cfg.skip_pcs else 0
        both = cfg.skip_pcs and cfg.skip_mode == "both" and result.image_gate  # image skip block (fusion)
        img = min(cfg.skip_pcs, n) if both else 0
        assert result.embedding.shape == (n, cfg.shared_dim + skip + img)  # [skip block(s), S]
    assert np.isfinite(result.embedding).all()
    assert result.labels.shape == (n,)
    assert np.issubdtype(result.labels.dtype, np.integer)
    k = result.n_clusters
    assert set(np.unique(result.labels).tolist()) == set(range(k))
    sizes = np.bincount(result.labels, minlength=k)
    assert sizes[0] == sizes.max()  # cluster 0 the largest
    assert len(result.genes) == min(cfg.n_top_genes, N_GENES)
    assert len(result.history) == cfg.epochs
    assert result.config == cfg
    assert result.device == "cpu"
    for key in ("preprocess", "train", "cluster", "total"):
        assert result.timings[key] >= 0.0


# --------------------------------------------------------------------------- progress


def test_progress_stages_in_order_with_image(image_run: Run) -> None:
    stages = [p.stage for p in image_run.progress]
    assert set(stages) <= set(STAGES)
    assert _collapse(stages) == ["preprocess", "patches", "train", "cluster"]
    assert all(isinstance(p, Progress) for p in image_run.progress)


def test_progress_stages_in_order_rna_only(rna_run: Run) -> None:
    assert _collapse([p.stage for p in rna_run.progress]) == ["preprocess", "train", "cluster"]


def test_one_train_report_per_epoch(image_run: Run) -> None:
    train = [p for p in image_run.progress if p.stage == "train"]
    assert [p.step for p in train] == [1, 2]
    assert all(p.total == 2 for p in train)
    assert train[-1].fraction == pytest.approx(1.0)
    for p, h in zip(train, image_run.result.history, strict=True):
        assert "total" in p.losses
        assert all(np.isfinite(v) for v in p.losses.values())
        assert p.losses == h
        assert p.message


def test_progress_steps_and_fractions(image_run: Run) -> None:
    for stage in STAGES:
        reps = [p for p in image_run.progress if p.stage == stage]
        assert reps, stage
        steps = [p.step for p in reps]
        assert steps == sorted(steps)
        assert reps[-1].step == reps[-1].total  # every stage ends complete
        assert all(0.0 <= p.fraction <= 1.0 for p in reps)
    patches = [p for p in image_run.progress if p.stage == "patches"]
    assert [p.step for p in patches] == list(range(1, patches[-1].total + 1))


def test_progress_fraction_with_zero_total() -> None:
    assert Progress("train", 0, 0, "").fraction == 0.0
    assert Progress("train", 1, 4, "").fraction == pytest.approx(0.25)


def test_run_senca_passes_every_report(section: AnnData) -> None:
    cfg = small_config(use_image=False, epochs=1, steps_per_epoch=1)
    seen: list[Progress] = []
    result = run_senca(section, cfg, progress=seen.append)
    assert isinstance(result, SencaResult)
    assert _collapse([p.stage for p in seen]) == ["preprocess", "train", "cluster"]
    assert run_senca(section, cfg).labels.shape == (N_SPOTS,)


# --------------------------------------------------------------------------- results


def test_result_with_image(image_run: Run) -> None:
    r = image_run.result
    _check_result(r, small_config(random_weights_gate=1.0))
    assert r.rna_only is False
    assert r.image_weights_used == "random (image weights 'none')"
    assert r.linkage is not None and r.linkage.shape == (N_SPOTS - 1, 4)
    assert r.timings["patches"] >= 0.0
    assert r.n_clusters == 3


def test_result_rna_only_with_use_image_false(rna_run: Run) -> None:
    _check_result(rna_run.result, small_config(use_image=False))
    assert rna_run.result.rna_only is True
    assert "patches" not in rna_run.result.timings


def test_result_rna_only_without_image() -> None:
    ad = synthetic_section(n_side=N_SIDE, n_genes=N_GENES, with_image=False)
    cfg = small_config(use_image=True)
    run = drive(ad, cfg)
    _check_result(run.result, cfg)
    assert run.result.rna_only is True
    assert "patches" not in [p.stage for p in run.progress]


def test_generator_does_not_modify_the_section(section: AnnData) -> None:
    ad = section.copy()
    obs, var = ad.obs.copy(), ad.var.copy()
    X = ad.X.copy()
    uns, obsm = set(ad.uns), set(ad.obsm)
    drive(ad, small_config(epochs=1, steps_per_epoch=1))
    assert ad.obs.equals(obs) and ad.var.equals(var)
    assert (ad.X != X).nnz == 0
    assert set(ad.uns) == uns and set(ad.obsm) == obsm


@pytest.mark.parametrize("use_image", [False, True], ids=["rna-only", "image"])
def test_same_seed_gives_identical_labels(section: AnnData, use_image: bool) -> None:
    cfg = small_config(use_image=use_image, seed=3)
    a = drive(section, cfg).result
    b = drive(section, cfg).result
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.embedding, b.embedding, rtol=1e-5, atol=1e-6)
    assert a.history == b.history


@pytest.mark.parametrize(
    "changes",
    [
        {"fusion": "sum"},
        {"cross_attention": False},
        {"hierarchical": False},
        {"cluster_method": "kmeans"},
        {"scale": False},
        {"n_heads": 2},
    ],
    ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()),
)
def test_variants_run(section: AnnData, changes: dict) -> None:
    cfg = small_config(epochs=1, **changes)
    result = drive(section, cfg).result
    _check_result(result, cfg)
    if changes.get("cluster_method") == "kmeans":
        assert result.linkage is None


def test_n_clusters_default_from_labels(section: AnnData) -> None:
    cfg = small_config(n_clusters=None, epochs=1, steps_per_epoch=1, use_image=False)
    result = drive(section, cfg).result
    assert result.n_clusters == section.obs["label"].nunique() == 3
    assert len(np.unique(result.labels)) == 3


def test_finetune_backbone_runs_one_epoch(section: AnnData) -> None:
    cfg = small_config(freeze_backbone=False, epochs=1, finetune_batch=8)
    run = drive(section, cfg)
    _check_result(run.result, cfg)
    assert run.result.rna_only is False
    assert [p.step for p in run.progress if p.stage == "train"] == [1]
    assert "patches" in [p.stage for p in run.progress]


# --------------------------------------------------------------------------- stopping


def test_close_mid_training_stops_cleanly(section: AnnData) -> None:
    gen = run_senca_iter(section, small_config(epochs=5))
    seen = []
    for p in gen:
        seen.append(p.stage)
        if p.stage == "train":
            break
    assert seen[-1] == "train"
    assert gen.close() is None
    with pytest.raises(StopIteration):
        next(gen)
    assert "cluster" not in seen


def test_abandoning_the_generator_before_the_first_step() -> None:
    gen = run_senca_iter(synthetic_section(n_side=4, n_genes=60), small_config(n_clusters=99))
    gen.close()  # never started: no error, nothing runs


# --------------------------------------------------------------------------- errors


def test_more_clusters_than_spots_is_raised_before_training() -> None:
    ad = synthetic_section(n_side=4, n_genes=60)
    gen = run_senca_iter(ad, small_config(n_clusters=17))
    with pytest.raises(ConfigError, match="17"):
        next(gen)  # nothing was yielded: the check runs before preprocessing
    with pytest.raises(ConfigError):
        run_senca(ad, small_config(n_clusters=17))


def test_too_many_neighbours_is_a_config_error() -> None:
    ad = synthetic_section(n_side=4, n_genes=60)
    for k in (16, 20):
        gen = run_senca_iter(ad, small_config(n_neighbors=k))
        with pytest.raises(ConfigError, match="n_neighbors"):
            next(gen)


def test_invalid_config_is_a_config_error(section: AnnData) -> None:
    cfg = small_config()
    cfg.epochs = 0  # changed after construction: validated again on run
    with pytest.raises(ConfigError, match="epochs"):
        next(run_senca_iter(section, cfg))


# --------------------------------------------------------------------------- annotate


def test_annotate_stores_the_result(section: AnnData, image_run: Run) -> None:
    r = image_run.result
    ad = section.copy()
    out = annotate(ad, r)
    assert out is ad
    col = ad.obs["senca_cluster"]
    assert isinstance(col.dtype, pd.CategoricalDtype)
    assert list(col.cat.categories) == [str(i) for i in range(r.n_clusters)]
    np.testing.assert_array_equal(col.astype(int).to_numpy(), r.labels)
    emb = ad.obsm["X_senca"]
    assert emb.shape == r.embedding.shape and emb.dtype == np.float32
    np.testing.assert_allclose(emb, r.embedding, rtol=1e-6)
    info = ad.uns["senca"]
    assert info["config"] == r.config.to_dict()
    assert SencaConfig.from_dict(info["config"]) == r.config
    assert info["n_clusters"] == r.n_clusters
    np.testing.assert_array_equal(info["linkage"], r.linkage)
    assert set(info["history"]) >= {"total"}
    for v in info["history"].values():
        assert len(v) == r.config.epochs
    np.testing.assert_allclose(info["history"]["total"], [h["total"] for h in r.history])
    assert set(info["timings"]) >= {"preprocess", "train", "cluster", "total"}
    assert all(isinstance(v, float) for v in info["timings"].values())
    assert info["rna_only"] is False
    assert list(info["genes"]) == r.genes
    assert info["device"] == "cpu"
    assert info["cpu_threads"] == r.cpu_threads >= 1
    assert isinstance(info["version"], str)


def test_annotate_kmeans_result_has_an_empty_linkage(section: AnnData) -> None:
    r = drive(section, small_config(use_image=False, epochs=1, cluster_method="kmeans")).result
    ad = annotate(section.copy(), r, key="my_regions")
    assert "my_regions" in ad.obs and "senca_cluster" not in ad.obs
    assert np.asarray(ad.uns["senca"]["linkage"]).shape == (0, 4)
    assert ad.uns["senca"]["rna_only"] is True


def test_default_kmeans_recluster_reruns_kmeans(section: AnnData) -> None:
    from napari_senca.cluster import recluster

    assert SencaConfig().cluster_method == "kmeans"
    r = drive(section, small_config(use_image=False, epochs=1, cluster_method="kmeans")).result
    ad = annotate(section.copy(), r)
    cats = recluster(ad, 4)
    assert list(cats.categories) == ["0", "1", "2", "3"]
    assert ad.uns["senca"]["n_clusters"] == 4
    again = recluster(ad, 4)  # seeded: the same count gives the same regions
    assert (np.asarray(again) == np.asarray(cats)).all()
    from napari_senca.cluster import recluster_labels, stored_clustering
    from napari_senca.errors import ConfigError

    tree, emb, seed = stored_clustering(ad)  # what a worker thread computes, then hands over
    assert tree is None and emb is ad.obsm["X_senca"]
    labels = recluster_labels(tree, emb, 3, seed)
    assert (np.asarray(recluster(ad, 3, labels=labels)).astype(int) == labels).all()
    with pytest.raises(ConfigError, match="region labels for a section of"):
        recluster(ad, 3, labels=labels[:-1])


def test_annotated_section_writes_to_h5ad(section: AnnData, image_run: Run, tmp_path) -> None:
    import anndata

    ad = annotate(section.copy(), image_run.result)
    path = tmp_path / "annotated.h5ad"
    ad.write_h5ad(path)
    back = anndata.read_h5ad(path)
    np.testing.assert_array_equal(back.obs["senca_cluster"].to_numpy(), ad.obs["senca_cluster"].to_numpy())
    assert SencaConfig.from_dict(dict(back.uns["senca"]["config"])) == image_run.result.config


# --------------------------------------------------------------------------- devices


def test_default_n_clusters(section: AnnData) -> None:
    assert default_n_clusters(section) == 3
    no_labels = section.copy()
    del no_labels.obs["label"]
    assert default_n_clusters(no_labels) == 7
    assert default_n_clusters(no_labels, fallback=5) == 5
    tiny = synthetic_section(n_side=2, n_genes=60, n_regions=1)
    del tiny.obs["label"]
    assert default_n_clusters(tiny) == 4  # never more than the spots


_NO_ACCEL = not torch.cuda.is_available() and not (
    getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
)


@pytest.mark.skipif(not _NO_ACCEL, reason="an accelerator is available")
def test_resolve_device_auto_is_cpu_here() -> None:
    assert resolve_device("auto") == torch.device("cpu")


def test_resolve_device_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_device_cuda_unavailable_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="cuda"):
        resolve_device(name)


@pytest.mark.skipif(not _NO_ACCEL, reason="an accelerator is available")
def test_resolve_device_mps_unavailable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mps"):
        resolve_device("mps")


def test_resolve_device_unknown_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tpu9"):
        resolve_device("tpu9")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_run_on_unavailable_cuda_is_a_config_error(section: AnnData) -> None:
    with pytest.raises(ConfigError, match="cuda"):
        next(run_senca_iter(section, small_config(device="cuda")))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_run_on_cuda(section: AnnData) -> None:
    r = drive(section, small_config(device="cuda", epochs=1)).result
    assert r.device.startswith("cuda")
    assert r.embedding.shape[0] == N_SPOTS


def test_skip_connection_off_clusters_s_alone(section: AnnData) -> None:
    cfg = small_config(skip_pcs=0, epochs=1, cluster_on="s")
    r = drive(section, cfg).result
    assert r.embedding.shape == (N_SPOTS, cfg.shared_dim)


def test_skip_block_and_s_are_unit_scaled(section: AnnData) -> None:
    cfg = small_config(skip_pcs=4, skip_weight=0.5, epochs=1, skip_mode="rna", cluster_on="s")  # RNA skip alone
    z = drive(section, cfg).result.embedding.astype(np.float64)
    skip, s = z[:, :4], z[:, 4:]
    assert np.sqrt((skip**2).sum(1).mean()) == pytest.approx(1.0, rel=1e-4)
    assert np.sqrt((s**2).sum(1).mean()) == pytest.approx(0.5, rel=1e-4)


def test_what_is_clustered_follows_cluster_on(section: AnnData) -> None:
    """Runs where the image does not count cluster the gene decoder's reconstruction by default (auto); "s" clusters
    [skip, S]."""
    from napari_senca.pipeline import annotate

    auto = drive(section, small_config(epochs=1, library_size_weight=0)).result
    assert auto.image_gate == 0.0  # random image weights do not count: the image-less path
    assert auto.embedding.shape == (N_SPOTS, small_config().recon_pcs)  # its first PCs (recon_pcs)
    every = drive(section, small_config(epochs=1, recon_pcs=0, library_size_weight=0)).result
    assert every.embedding.shape == (N_SPOTS, small_config().input_pcs)  # all its dimensions
    # the first PCs of the same reconstruction: the same points, fewer directions
    from napari_senca.embedding import pcs, unit

    np.testing.assert_allclose(auto.embedding, unit(pcs(every.embedding, 5, 0)), atol=1e-4)
    s = drive(section, small_config(epochs=1, cluster_on="s")).result
    assert s.embedding.shape == (N_SPOTS, small_config().shared_dim + small_config().skip_pcs)
    recon = drive(section, small_config(epochs=1, cluster_on="reconstruction", library_size_weight=0)).result
    np.testing.assert_array_equal(recon.embedding, auto.embedding)  # the same model, the same output
    assert annotate(section.copy(), auto).uns["senca"]["clustered"] == "reconstruction"
    assert annotate(section.copy(), s).uns["senca"]["clustered"] == "S"
    with pytest.raises(ConfigError, match="cluster_on"):
        SencaConfig(cluster_on="x").validate()


# --------------------------------------------------------------------------- library size


def test_library_size_column_is_appended_at_its_weight_as_far_as_the_expression_explains_it() -> None:
    from napari_senca.batches import sparse_tensor
    from napari_senca.embedding import library_column, library_gate, unit, with_library_size
    from napari_senca.graph import build_graph, normalized_adjacency

    rng = np.random.default_rng(0)
    xy = np.array([(i % 10, i // 10) for i in range(N_SPOTS)], dtype=float)
    adj = sparse_tensor(normalized_adjacency(build_graph(xy, 4)), torch.device("cpu"))
    library = rng.lognormal(7.0, 1.0, size=N_SPOTS)
    col = library_column(library, adj, 1)
    a = build_graph(xy, 4).adjacency.toarray() + np.eye(N_SPOTS)  # each spot and its neighbours
    mean = (a / a.sum(1, keepdims=True)) @ np.log1p(library)  # their mean log library size
    assert abs(col.mean()) < 1e-9 and np.corrcoef(col, mean)[0, 1] > 0.97  # GCN weights renormalised: alike, not equal
    # the expression explains the library size (one direction of z follows it): the column counts fully
    z = unit(np.column_stack([col + 0.1 * rng.normal(size=N_SPOTS), rng.normal(size=(N_SPOTS, 4))])).astype(np.float32)
    assert library_gate(z, col, adj, 1) == 1.0
    out, gate = with_library_size(z, library, adj, SencaConfig(library_size_weight=0.3))
    assert gate == 1.0 and out.shape == (N_SPOTS, 6) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :5], z)
    np.testing.assert_allclose(out[:, 5], 0.3 * unit(col[:, None])[:, 0], atol=1e-6)  # 0.3 x the embedding's RMS norm
    # an expression unrelated to the library size (technical depth): no column
    other = unit(rng.normal(size=(N_SPOTS, 5))).astype(np.float32)
    assert library_gate(other, col, adj, 1) < 0.5
    for cfg, lib, gate in ((SencaConfig(library_size_weight=0.0), library, None),
                           (SencaConfig(library_size_weight=0.3), None, None),
                           (SencaConfig(library_size_weight=0.3), np.full(N_SPOTS, 500.0), None)):
        kept, g = with_library_size(z, lib, adj, cfg)
        assert kept is z and g is gate  # off, unknown or constant: unchanged
    with pytest.raises(ConfigError, match="library_size_weight"):
        SencaConfig(library_size_weight=-0.1).validate()


def test_library_gate_stays_closed_by_chance_on_small_sections() -> None:
    """Smoothing makes chance R^2 large on small sections (a plain R^2 ramp opened the gate on 4 in 5 draws of
    100 spots); the gate measured against smoothed random columns stays shut on a library size unrelated to an
    equally smoothed expression, and opens where the expression does follow it."""
    from napari_senca.batches import sparse_tensor
    from napari_senca.embedding import library_column, library_gate, smooth
    from napari_senca.graph import build_graph, normalized_adjacency

    rng = np.random.default_rng(1)
    xy = np.array([(i % 10, i // 10) for i in range(100)], dtype=float)
    adj = sparse_tensor(normalized_adjacency(build_graph(xy, 4)), torch.device("cpu"))
    chance, plain, follows = [], [], []
    for seed in range(20):
        z = smooth(rng.normal(size=(100, 5)), adj, 2)  # the reconstruction's PCs, smoothed twice as in a run
        col = library_column(rng.lognormal(7.0, 0.5, size=100), adj, 1)
        x = np.column_stack([z, np.ones(100)])
        plain.append(1 - ((col - x @ np.linalg.lstsq(x, col, rcond=None)[0]) ** 2).sum() / (col**2).sum())
        chance.append(library_gate(z, col, adj, 1, seed))
        follows.append(library_gate(np.column_stack([z[:, :4], col + 0.2 * col.std() * rng.normal(size=100)]),
                                    col, adj, 1, seed))
    assert np.median(plain) > 0.12  # what the plain R^2 ramp (0.1 -> 0.2) would have counted
    assert sum(g > 0 for g in chance) <= 2 and np.mean(chance) < 0.05, chance
    assert min(follows) == 1.0, follows


def test_library_size_separates_regions_the_normalised_expression_cannot() -> None:
    """Two halves with the same expression profile, one with three times the counts (denser tissue): normalisation
    makes them alike (not quite: fewer zeros); the library size column tells them apart."""
    from sklearn.metrics import adjusted_rand_score

    from napari_senca.section import make_section

    rng = np.random.default_rng(0)
    side, genes = 12, 60
    xy = np.array([(10.0 * (i % side), 10.0 * (i // side)) for i in range(side * side)])
    dense = xy[:, 0] < 10.0 * side / 2
    profile = rng.dirichlet(np.ones(genes))
    depth = np.where(dense, 3000.0, 1000.0) * rng.lognormal(0.0, 0.2, size=len(xy))
    counts = rng.poisson(depth[:, None] * profile[None]).astype(np.float32)
    sec = make_section(counts, [f"s{i}" for i in range(len(xy))], [f"G{j}" for j in range(genes)], xy)
    scores = {}
    for w in (0.0, 1.0):
        cfg = small_config(use_image=False, n_clusters=2, cluster_method="kmeans", library_size_weight=w)
        result = run_senca(sec, cfg)
        scores[w] = adjusted_rand_score(dense, result.labels)
    assert result.library_gate == 1.0  # the denoised expression follows the depth too (fewer zeros), enough to count
    assert annotate(sec.copy(), result).uns["senca"]["library_gate"] == 1.0
    assert scores[1.0] > 0.9 and scores[1.0] > scores[0.0] + 0.2, scores
