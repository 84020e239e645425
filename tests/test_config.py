"""SencaConfig: paper defaults, validation, dict round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from napari_senca import ConfigError, SencaConfig, SencaError

# --------------------------------------------------------------------------- defaults


def test_defaults_are_the_her2st_protocol() -> None:
    """Paper section 4.1.1 / 3.x values for HER2ST."""
    cfg = SencaConfig()
    assert cfg.epochs == 10
    assert cfg.lr == pytest.approx(5e-4)
    assert cfg.n_top_genes == 500
    assert cfg.n_neighbors == 4
    assert cfg.dropout == pytest.approx(0.2)
    assert cfg.embed_dim == 128
    assert cfg.hidden_dim == 256
    assert cfg.lambda_mse == pytest.approx(40.0)
    assert cfg.min_gene_counts == 10
    assert cfg.patch_radius_spacings == pytest.approx(3.0)  # "up to third degree neighbour"


def test_defaults_are_valid_and_independent() -> None:
    a, b = SencaConfig(), SencaConfig()
    assert a.validate() is a
    assert a == b


# --------------------------------------------------------------------------- validation

BAD_VALUES = [
    ("min_gene_counts", -1),
    ("n_top_genes", 1),
    ("n_neighbors", 0),
    ("n_neighbors", 65),
    ("patch_radius_spacings", 0.0),
    ("patch_radius_spacings", float("nan")),
    ("patch_radius_spacings", float("inf")),
    ("patch_radius_spacings", 10.5),
    ("patch_size", 8),
    ("patch_size", 2048),
    ("backbone", "resnet 18; rm"),
    ("image_weights", ""),
    ("n_heads", 3),  # 128 is not divisible by 3
    ("dropout", 1.0),
    ("dropout", -0.1),
    ("fusion", "mean"),
    ("recon_balance", "learned"),
    ("window_spacings", 0.0),
    ("pool_factor", 0),
    ("temperature", 0.0),
    ("lambda_mse", -1.0),
    ("epochs", 0),
    ("lr", 0.0),
    ("finetune_batch", 0),
    ("backbone_lr_scale", -0.5),
    ("steps_per_epoch", 0),
    ("n_clusters", 1),
    ("cluster_method", "dbscan"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES, ids=[f"{n}={v!r}" for n, v in BAD_VALUES])
def test_invalid_value_raises_config_error_naming_the_field(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name) as info:
        SencaConfig(**{name: value})
    assert isinstance(info.value, SencaError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("name", "value"), BAD_VALUES[:6], ids=[n for n, _ in BAD_VALUES[:6]])
def test_replace_validates(name: str, value: object) -> None:
    cfg = SencaConfig()
    with pytest.raises(ConfigError, match=name):
        cfg.replace(**{name: value})
    # the original is untouched
    assert cfg == SencaConfig()


def test_validate_catches_in_place_changes() -> None:
    cfg = SencaConfig()
    cfg.epochs = 0
    with pytest.raises(ConfigError, match="epochs"):
        cfg.validate()


@pytest.mark.parametrize("name", ["embed_dim", "hidden_dim", "shared_dim"])
def test_dimension_errors_name_the_field(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        SencaConfig(**{name: 1})


def test_zero_heads_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="n_heads"):
        SencaConfig(n_heads=0)


@pytest.mark.parametrize(("name", "value"), [("weight_decay", -1.0), ("target_sum", 0.0), ("target_sum", -5.0)])
def test_unvalidated_fields(name: str, value: float) -> None:
    with pytest.raises(ConfigError, match=name):
        SencaConfig(**{name: value})


@pytest.mark.parametrize(
    "changes",
    [
        {"n_neighbors": 1},
        {"n_neighbors": 64},
        {"patch_size": 16},
        {"patch_size": 1024},
        {"dropout": 0.0},
        {"n_clusters": 2},
        {"n_heads": 4},
        {"fusion": "sum"},
        {"cluster_method": "kmeans"},
        {"backbone": "resnet50"},
        {"image_weights": "/some/file.pth"},
        {"min_gene_counts": 0},
        {"lambda_mse": 0.0},
    ],
)
def test_boundary_values_are_accepted(changes: dict) -> None:
    cfg = SencaConfig(**changes)
    for k, v in changes.items():
        assert getattr(cfg, k) == v


# --------------------------------------------------------------------------- dict round trip


def test_to_dict_is_plain_and_json_serialisable() -> None:
    d = SencaConfig().to_dict()
    assert isinstance(d, dict)
    json.dumps(d)
    # None values are left out (h5ad cannot store them)
    assert "n_clusters" not in d
    assert "target_sum" not in d
    assert all(v is not None for v in d.values())


@pytest.mark.parametrize(
    "cfg",
    [
        SencaConfig(),
        SencaConfig(
            n_clusters=5,
            target_sum=1e4,
            fusion="sum",
            cross_attention=False,
            hierarchical=False,
            cluster_method="kmeans",
            epochs=3,
            lr=1e-3,
            seed=7,
            device="cpu",
            image_weights="none",
            scale=False,
        ),
    ],
    ids=["default", "custom"],
)
def test_to_dict_from_dict_round_trip(cfg: SencaConfig) -> None:
    d = cfg.to_dict()
    back = SencaConfig.from_dict(d)
    assert back == cfg
    assert back.to_dict() == d
    # through JSON too (what the CLI writes)
    assert SencaConfig.from_dict(json.loads(json.dumps(d))) == cfg


def test_from_dict_partial_uses_defaults() -> None:
    cfg = SencaConfig.from_dict({"epochs": 3, "n_clusters": None})
    assert cfg == SencaConfig(epochs=3)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="bogus_key"):
        SencaConfig.from_dict({"epochs": 3, "bogus_key": 1})


def test_from_dict_lists_every_unknown_key() -> None:
    with pytest.raises(ConfigError) as info:
        SencaConfig.from_dict({"zzz": 1, "aaa": 2})
    assert "aaa" in str(info.value) and "zzz" in str(info.value)


def test_from_dict_validates_values() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        SencaConfig.from_dict({"epochs": 0})


def test_every_field_is_in_to_dict() -> None:
    cfg = SencaConfig(n_clusters=3, target_sum=100.0, image_gate=0.5)  # every optional field set
    names = {f.name for f in dataclasses.fields(SencaConfig)}
    assert set(cfg.to_dict()) == names


def test_auto_attention_is_full_on_small_sections_and_local_on_large() -> None:
    cfg = SencaConfig()
    assert cfg.attention == "auto"
    assert cfg.resolved_attention(700) == "full"  # HER2ST-sized: the paper's all-pairs attention
    assert cfg.resolved_attention(cfg.full_attention_max_spots + 1) == "local"  # linear in spots
    assert cfg.replace(batch_spots=100, full_attention_max_spots=1000).resolved_attention(500) == "local"
    assert cfg.replace(attention="local").resolved_attention(10) == "local"
