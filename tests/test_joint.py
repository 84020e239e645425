"""Joint training of one model over several sections (napari_senca.joint, ``batch --joint``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from napari_senca import joint, pipeline
from napari_senca.config import SencaConfig
from napari_senca.datasets import synthetic_section
from napari_senca.errors import ConfigError

FAST = SencaConfig(epochs=3, steps_per_epoch=5, n_top_genes=100)


def _two_sections() -> list[tuple[str, object]]:
    """Two synthetic sections with the same three tissues, the second with a strong per-gene batch shift."""
    a = synthetic_section(12, 200, 3, with_image=False, seed=0)
    b = synthetic_section(12, 200, 3, with_image=False, seed=1, spacing_px=100.0)  # another coordinate scale too
    x = b.X.toarray() if hasattr(b.X, "toarray") else np.asarray(b.X)
    b.X = np.round(x * np.random.default_rng(5).lognormal(0, 0.7, size=b.n_vars)[None]).astype(np.float32)
    return [("a", a), ("b", b)]


def _pooled_ari(parts: list[tuple[str, object]], key: str) -> float:
    lab = np.concatenate([a.obs["label"].astype(str).to_numpy() for _, a in parts])
    got = np.concatenate([a.obs[key].astype(str).to_numpy() for _, a in parts])
    return adjusted_rand_score(lab, got)


def test_union_has_no_edge_or_window_across_sections():
    secs = _two_sections()
    union = joint.build_union(secs, FAST)
    assert union.n_obs == sum(a.n_obs for _, a in secs)
    assert joint.cross_section_edges(union, 4) == 0
    assert joint.cross_section_edges(union, 12) == 0
    # the pooled contrastive windows (window_spacings * pool_factor spot spacings) never span two sections
    from napari_senca.train import tiles

    sec = union.obs[joint.SECTION_KEY].cat.codes.to_numpy()
    side = FAST.window_spacings * FAST.pool_factor  # the union's spot spacing is 1
    wid, _ = tiles(np.asarray(union.obsm["spatial"]), side, np.random.default_rng(0))
    per_window = pd.Series(sec).groupby(wid.numpy()).nunique()
    assert per_window.max() == 1
    # every section is scaled per gene on its own (batch="scale")
    x = np.asarray(union.X) - 10.0
    for code in (0, 1):
        assert np.abs(x[sec == code].mean(0)).max() < 1e-4


def test_joint_regions_are_consistent_across_sections():
    secs = _two_sections()
    jr = joint.run_joint([(n, a.copy()) for n, a in secs], FAST)
    parts = joint.split(jr, [(n, a.copy()) for n, a in secs])
    joint_ari = _pooled_ari(parts, "senca_cluster")
    sep = []  # today's per-section runs, ids taken as they are
    for n, a in secs:
        b = a.copy()
        pipeline.annotate(b, pipeline.run_senca(b, FAST))
        sep.append((n, b))
    separate_ari = _pooled_ari(sep, "senca_cluster")
    assert joint_ari > 0.7 and joint_ari > separate_ari + 0.3, (joint_ari, separate_ari)
    for _, a in parts:  # every section knows all joint regions, each its own share
        assert list(a.obs["senca_cluster"].cat.categories) == ["0", "1", "2"]
        assert a.obsm["X_senca"].shape[0] == a.n_obs
        assert list(a.uns["senca"]["joint"]) == ["a", "b"]
    # no library size column: the union is pre-normalised, and sections differ in depth by batch
    assert jr.union.obsm["X_senca"].shape[1] == FAST.recon_pcs


def test_without_batch_handling_the_sections_split_apart():
    """The measured reason for per-section scaling: pooled scaling clusters by section."""
    secs = _two_sections()
    jr = joint.run_joint([(n, a.copy()) for n, a in secs], FAST, batch="none")
    union = jr.union
    sec = union.obs[joint.SECTION_KEY].astype(str)
    assert adjusted_rand_score(sec, union.obs["senca_cluster"].astype(str)) > 0.3


def test_joint_needs_two_sections_and_a_known_batch_mode():
    secs = _two_sections()
    with pytest.raises(ConfigError, match="at least 2 sections"):
        joint.build_union(secs[:1], FAST)
    with pytest.raises(ConfigError, match="unknown batch handling 'harmony'"):
        joint.build_union(secs, FAST, batch="harmony")


def test_batch_joint_cli_writes_every_section_and_the_cohort(tmp_path, capsys):
    from napari_senca.cli import main
    from napari_senca.io import write_h5ad

    paths = []
    for n, a in _two_sections():
        p = tmp_path / f"{n}.h5ad"
        write_h5ad(a, p)
        paths.append(str(p))
    broken = tmp_path / "c.h5ad"
    broken.write_bytes(b"not an h5ad file")
    out = tmp_path / "cohort"
    args = ["batch", *paths, str(broken), "--out", str(out), "--joint", "--epochs", "2", "--n-clusters", "3"]
    assert main(args) == 1  # the broken section is recorded, the other two trained together
    assert "1 of 3 sections failed" in capsys.readouterr().err
    table = pd.read_csv(out / "cohort.csv")
    assert list(table["section"]) == ["a", "b", "c"] and list(table["status"]) == ["done", "done", "failed"]
    assert "c.h5ad" in table.loc[2, "error"]
    table = table.iloc[:2]
    assert (table["regions"] == 3).all() and table["ari"].notna().all()
    import anndata

    for n in ("a", "b"):
        ad = anndata.read_h5ad(out / n / "annotated.h5ad")
        assert set(ad.obs["cohort_region"].astype(str)) <= {"Region 0", "Region 1", "Region 2"}
        assert (out / n / "clusters.csv").is_file() and (out / n / "overview.png").is_file()
    vocab = pd.read_csv(out / "region_vocabulary.csv")
    assert set(vocab["section"]) == {"a", "b"}
    assert not (out / "c").exists()
    assert (out / "cohort.png").is_file()
