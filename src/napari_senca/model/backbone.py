"""torchvision ResNet trunk for the image branch.

``weights`` is one of

* ``"imagenet"``: torchvision's weights API (``ResNet18_Weights.DEFAULT`` ...),
  downloaded once and cached by torch as usual (``TORCH_HOME``);
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

__all__ = ["ResNetTrunk", "build_backbone", "IMAGENET_MEAN", "IMAGENET_STD", "RANDOM_OFFLINE", "RANDOM_REQUESTED"]

# what ``weights_used`` says when the trunk has random weights: plainly, since
# random features see colour and texture statistics, not learned histology
RANDOM_OFFLINE = "random (ImageNet weights unavailable offline)"
RANDOM_REQUESTED = "random (image weights 'none')"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_FEATURES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}


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

    def __init__(self, net: nn.Module, n_features: int, weights_used: str):
        super().__init__()
        net.fc = nn.Identity()
        self.net = net
        self.n_features = n_features
        self.weights_used = weights_used
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        # x: (b, size, size, 3) uint8 -> (b, F)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        return self.net((x - self.mean) / self.std)


def build_backbone(name: str = "resnet18", weights: str = "auto") -> ResNetTrunk:
    """Create the ResNet trunk with the requested weights.

    Raises
    ------
    ConfigError
        Unknown backbone, or a weights file that does not exist / does not fit.
    SencaError
        ``"imagenet"`` weights that cannot be downloaded (offline).
    """
    import torchvision.models as tvm

    if name not in _FEATURES:
        raise ConfigError(f"unknown backbone {name!r}; use resnet18, resnet34 or resnet50")
    builder = getattr(tvm, name)
    w = str(weights)
    if w.lower() in ("none", "random", ""):
        return ResNetTrunk(builder(weights=None), _FEATURES[name], RANDOM_REQUESTED)
    if w.lower() in ("imagenet", "auto"):
        from ..image_weights import download_failed, remember_failure

        if w.lower() == "auto" and download_failed(name):  # failed before in this session: do not retry
            return ResNetTrunk(builder(weights=None), _FEATURES[name], RANDOM_OFFLINE)
        enum = tvm.get_model_weights(name).DEFAULT
        try:
            net = builder(weights=enum)
        except Exception as exc:  # urllib/HTTP/SSL errors differ by platform
            remember_failure(name)
            if w.lower() == "auto":
                return ResNetTrunk(builder(weights=None), _FEATURES[name], RANDOM_OFFLINE)
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
    net = builder(weights=None)
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
