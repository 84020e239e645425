"""Image encoders for the image branch: torchvision ResNets, and timm models (:mod:`napari_senca.encoders`).

:func:`build_backbone` takes a torchvision ResNet name (``resnet18``,
``resnet34``, ``resnet50``) or any timm model name (``resnet10t``,
``vit_small_patch16_224``, ``hf-hub:MahmoodLab/UNI``, ``timm:NAME``); the
latter are built by :func:`napari_senca.encoders.build_timm_encoder`.
Every encoder has the same interface: ``forward`` (uint8 patches -> features),
``n_features``, ``weights_used``, ``input_size`` and ``mean``/``std`` (its own
normalisation), ``random`` (True for random weights) and, for convolutional
networks that end in global average pooling, ``stride`` and ``feature_map``
(the trunk without its pooling, for the fully convolutional encoding of
:mod:`napari_senca.fcn`; ``stride`` is None for ViTs).

``weights`` is one of

* ``"imagenet"``: torchvision's ``ResNet18_Weights.DEFAULT`` ... files,
  downloaded once and cached by torch as usual (``TORCH_HOME``); the ResNets
  are torchvision's, built without importing it (:mod:`.resnet`);
* ``"auto"``: ImageNet weights when they are cached or can be downloaded,
  random initialisation otherwise (the result records which);
* ``"none"``: random initialisation (what the tests use);
* a path to a local ``.pth``/``.pt`` file holding a ResNet state dict (a
  full torchvision checkpoint; ``fc.*`` keys are ignored).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ConfigError, SencaError
from ..image_weights import BUILTIN_RESNETS

__all__ = [
    "ResNetTrunk",
    "build_backbone",
    "is_torchvision",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RANDOM_OFFLINE",
    "RANDOM_REQUESTED",
    "TORCHVISION_NAMES",
]

# what ``weights_used`` says when the trunk has random weights: plainly, since
# random features see colour and texture statistics, not learned histology
RANDOM_OFFLINE = "random (ImageNet weights unavailable offline)"
RANDOM_REQUESTED = "random (image weights 'none')"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_FEATURES = dict(zip(BUILTIN_RESNETS, (512, 512, 2048), strict=True))
TORCHVISION_NAMES = BUILTIN_RESNETS


def is_torchvision(name: str) -> bool:
    """True for the torchvision ResNets built here; every other name goes to timm."""
    return str(name) in _FEATURES


class ResNetTrunk(nn.Module):
    """ResNet without its classifier: uint8-normalised patches -> features.

    Attributes
    ----------
    n_features
        F, the pooled feature size (512 for resnet18/34, 2048 for resnet50).
    weights_used
        ``"imagenet"``, :data:`RANDOM_OFFLINE`, :data:`RANDOM_REQUESTED` or
        the path of the state dict.
    """

    #: side of the encoder's own input (torchvision's ImageNet ResNets: 224)
    input_size = 224
    #: output stride of :meth:`feature_map`
    stride: int | None = 32

    def __init__(self, net: nn.Module, n_features: int, weights_used: str):
        super().__init__()
        net.fc = nn.Identity()
        self.net = net
        self.n_features = n_features
        self.weights_used = weights_used
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def random(self) -> bool:
        """True when the weights are a random initialisation (weak image features)."""
        return self.weights_used in (RANDOM_OFFLINE, RANDOM_REQUESTED)

    def normalise(self, x: Tensor) -> Tensor:
        """``(b, h, w, 3)`` uint8 -> ``(b, 3, h, w)`` float, normalised with the encoder's statistics."""
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        return (x - self.mean) / self.std

    def feature_map(self, x: Tensor) -> Tensor:
        """Normalised ``(b, 3, h, w)`` -> ``(b, F, h/32, w/32)``: the trunk before global pooling."""
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        # x: (b, size, size, 3) uint8 -> (b, F)
        return self.net(self.normalise(x))


def build_backbone(name: str = "resnet18", weights: str = "auto") -> ResNetTrunk:
    """Create the encoder ``name`` with the requested weights.

    ``name`` is a torchvision ResNet (built here) or a timm model name (see
    :func:`napari_senca.encoders.build_timm_encoder`).

    Raises
    ------
    ConfigError
        Unknown backbone, or a weights file that does not exist / does not fit.
    SencaError
        ``"imagenet"`` weights that cannot be downloaded (offline).
    """
    if not is_torchvision(name):
        from ..encoders import build_timm_encoder

        return build_timm_encoder(name, weights)  # type: ignore[return-value]
    from .resnet import imagenet_state_dict, resnet

    w = str(weights)
    if w.lower() in ("none", "random", ""):
        return ResNetTrunk(resnet(name), _FEATURES[name], RANDOM_REQUESTED)
    if w.lower() in ("imagenet", "auto"):
        from ..image_weights import download_failed, remember_failure

        if w.lower() == "auto" and download_failed(name):  # failed before in this session: do not retry
            return ResNetTrunk(resnet(name), _FEATURES[name], RANDOM_OFFLINE)
        net = resnet(name)
        try:
            net.load_state_dict(imagenet_state_dict(name))
        except Exception as exc:  # urllib/HTTP/SSL errors differ by platform
            remember_failure(name)
            if w.lower() == "auto":
                return ResNetTrunk(resnet(name), _FEATURES[name], RANDOM_OFFLINE)
            raise SencaError(
                f"could not load ImageNet weights for {name} ({type(exc).__name__}: {exc}); "
                "without internet, put the file in the torch cache, pass a local .pth file, "
                "or use image weights 'none'"
            ) from None
        return ResNetTrunk(net, _FEATURES[name], "imagenet")
    path = Path(w).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: image weights file not found (use 'imagenet', 'none' or a .pth file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable torch state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state dict, found {type(state).__name__}")
    state = {k.removeprefix("module.").removeprefix("net."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    net = resnet(name)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensor shapes that do not fit
        first = str(exc).strip().splitlines()[-1].strip()
        raise ConfigError(f"{path}: does not fit {name} ({first})") from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ConfigError(
            f"{path}: does not fit {name} ({len(missing)} missing, {len(unexpected)} unexpected keys, "
            f"e.g. {(missing or unexpected)[0]!r})"
        )
    return ResNetTrunk(net, _FEATURES[name], str(path))
