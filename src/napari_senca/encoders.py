"""Histology encoders from timm and the Hugging Face hub (issue 9, item 4).

Any timm model name is an encoder: ``resnet10t`` or ``vit_small_patch16_224``
(timm's own weights), ``hf-hub:MahmoodLab/UNI``, ``hf-hub:bioptimus/H-optimus-0``,
``hf-hub:owkin/phikon`` style names (pathology foundation models published for
timm on the hub; gated models need ``huggingface-cli login`` or ``HF_TOKEN``),
or ``timm:NAME`` to force timm for a name torchvision also has. Each encoder
takes its input size and normalisation from the model's own pretrained
configuration (:func:`timm.data.resolve_data_config`).

Weights (``image_weights``) are read as for the torchvision ResNets:
``"auto"`` (pretrained when they can be loaded, random otherwise, recorded),
``"imagenet"``/``"pretrained"`` (pretrained or a one-line error), ``"none"``
(random) or a local checkpoint file holding a state dict for the architecture
(``.pth``/``.pt``/``.bin``/``.safetensors``). A failed download is remembered
for the session (:mod:`napari_senca.image_weights`), so ``auto`` does not wait
for the hub's retries on every run.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import ConfigError, SencaError
from .image_weights import KNOWN_ENCODERS

__all__ = [
    "TimmEncoder",
    "build_timm_encoder",
    "timm_name",
    "KNOWN_ENCODERS",
    "load_state_dict_file",
    "checkpoint_arch",
]

#: keyword arguments the model cards of these hub models give to timm.create_model
_MODEL_KWARGS: dict[str, dict[str, object]] = {
    "hf-hub:mahmoodlab/uni": {"init_values": 1e-5, "dynamic_img_size": True},
    "hf-hub:bioptimus/h-optimus-0": {"init_values": 1e-5, "dynamic_img_size": False},
    "hf-hub:paige-ai/virchow2": {"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU"},
    "hf-hub:paige-ai/virchow": {"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU"},
}

_PRETRAINED = ("auto", "imagenet", "pretrained")
_RANDOM = ("none", "random", "")


def timm_name(name: str) -> str:
    """The name timm understands (``timm:`` prefix removed)."""
    return str(name).removeprefix("timm:")


class TimmEncoder(nn.Module):
    """A timm model without its classifier: uint8 patches -> pooled features.

    Attributes
    ----------
    n_features
        Pooled feature size.
    input_size
        Side of the model's own input (from its pretrained configuration).
    stride
        Output stride of :meth:`feature_map` for a CNN ending in average
        pooling; None for other models (ViTs), which are fed patches.
    weights_used
        ``"pretrained"``, a ``random (...)`` phrase, or the checkpoint path.
    """

    def __init__(self, net: nn.Module, weights_used: str, random: bool):
        super().__init__()
        from timm.data import resolve_data_config

        self.net = net
        self.weights_used = weights_used
        self._random = random
        self.n_features = int(getattr(net, "num_features", 0) or 0)
        cfg = resolve_data_config({}, model=net)
        self.input_size = int(cfg["input_size"][-1])
        self.register_buffer("mean", torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.stride = _cnn_stride(net)

    @property
    def random(self) -> bool:
        """True when the weights are a random initialisation (weak image features)."""
        return self._random

    def normalise(self, x: Tensor) -> Tensor:
        """``(b, h, w, 3)`` uint8 -> ``(b, 3, h, w)`` float, normalised with the model's statistics."""
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self.mean) / self.std

    def feature_map(self, x: Tensor) -> Tensor:
        """Normalised ``(b, 3, h, w)`` -> ``(b, F, h/stride, w/stride)`` (CNNs only)."""
        if self.stride is None:
            raise ConfigError(f"{self.weights_used}: not a convolutional encoder (no feature map)")
        return self.net.forward_features(x)

    def forward(self, x: Tensor) -> Tensor:
        # x: (b, size, size, 3) uint8 -> (b, F)
        return self.net(self.normalise(x))


def _cnn_stride(net: nn.Module) -> int | None:
    """The feature map's stride when the model is a CNN pooled by a plain average, else None."""
    pool = getattr(net, "global_pool", None)
    if getattr(pool, "pool_type", None) != "avg":
        return None
    info = getattr(net, "feature_info", None)
    try:
        return int(info[-1]["reduction"])
    except (TypeError, KeyError, IndexError):
        return None


def build_timm_encoder(name: str, weights: str = "auto") -> TimmEncoder:
    """Create the timm model ``name`` (no classifier) with the requested weights.

    Raises
    ------
    ConfigError
        timm missing, a name timm does not know, or a checkpoint that does not fit.
    SencaError
        Pretrained weights asked for (``"imagenet"``/``"pretrained"``) that
        cannot be downloaded (offline, or a gated model without a token).
    """
    from .image_weights import download_failed, remember_failure
    from .model.backbone import RANDOM_OFFLINE, RANDOM_REQUESTED

    try:
        import timm
    except ImportError:
        raise ConfigError(f"encoder {name!r} needs timm (pip install timm)") from None
    tname = timm_name(name)
    w = str(weights)
    if w.lower() in _RANDOM:
        return TimmEncoder(_create(timm, tname, False, name), RANDOM_REQUESTED, True)
    if w.lower() in _PRETRAINED:
        if w.lower() == "auto" and download_failed(tname):
            return TimmEncoder(_create(timm, tname, False, name), RANDOM_OFFLINE, True)
        try:
            net = timm.create_model(tname, pretrained=True, num_classes=0, **_model_kwargs(tname))
        except Exception as exc:  # offline, gated (401/403), missing file
            if isinstance(exc, RuntimeError) and "Unknown model" in str(exc):
                raise ConfigError(f"unknown encoder {name!r} (not a torchvision ResNet nor a timm model)") from None
            remember_failure(tname)
            if w.lower() == "auto":
                return TimmEncoder(_create(timm, tname, False, name), RANDOM_OFFLINE, True)
            raise SencaError(
                f"could not load pretrained weights for {name} ({type(exc).__name__}); without internet or for "
                "a gated model, log in (HF_TOKEN / huggingface-cli login) once, pass a local checkpoint file, "
                "or use image weights 'none'"
            ) from None
        return TimmEncoder(net, "pretrained", False)
    path = Path(w).expanduser()
    net = _create(timm, tname, False, name)
    state = load_state_dict_file(path)
    state = {k.removeprefix("module.").removeprefix("net."): v for k, v in state.items()}
    heads = ("head.", "fc.", "classifier.", "head_dist.")
    state = {k: v for k, v in state.items() if not k.startswith(heads)}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise ConfigError(f"{path}: does not fit {name} ({first})") from None
    missing = [k for k in missing if not k.startswith(heads)]
    if missing or unexpected:
        raise ConfigError(
            f"{path}: does not fit {name} ({len(missing)} missing, {len(unexpected)} unexpected keys, "
            f"e.g. {(missing or unexpected)[0]!r})"
        )
    return TimmEncoder(net, str(path), False)


def _model_kwargs(tname: str) -> dict[str, object]:
    kw = dict(_MODEL_KWARGS.get(tname.lower(), {}))
    if kw.get("mlp_layer") == "SwiGLUPacked":
        from timm.layers import SwiGLUPacked

        kw["mlp_layer"], kw["act_layer"] = SwiGLUPacked, nn.SiLU
    return kw


def _create(timm: object, tname: str, pretrained: bool, shown: str) -> nn.Module:
    try:
        return timm.create_model(tname, pretrained=pretrained, num_classes=0, **_model_kwargs(tname))  # type: ignore[attr-defined]
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ConfigError(f"unknown encoder {shown!r} (not a torchvision ResNet nor a timm model)") from None
        raise
    except Exception as exc:  # hf-hub names fetch their config even without weights
        raise SencaError(
            f"could not build {shown} ({type(exc).__name__}): hub models need their config from the internet once "
            "(HF_TOKEN for gated models); offline, use a local checkpoint file with a timm architecture name"
        ) from None


def load_state_dict_file(path: Path) -> dict[str, Tensor]:
    """A state dict from a ``.pth``/``.pt``/``.bin`` (torch) or ``.safetensors`` file.

    ``{"state_dict": {...}}`` and ``{"model": {...}}`` wrappers are unwrapped.

    Raises
    ------
    ConfigError
        Missing, unreadable, or not a state dict.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: image weights file not found (use 'auto', 'none' or a checkpoint file)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def checkpoint_arch(path: Path) -> str | None:
    """The architecture a checkpoint names (``"arch"``, ``"model_name"`` or ``"architecture"`` entry), or None."""
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:
        return None
    if isinstance(obj, dict):
        for k in ("arch", "model_name", "architecture"):
            if isinstance(obj.get(k), str) and obj[k]:
                return str(obj[k])
    return None
