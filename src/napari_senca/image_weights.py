"""Where the image branch's ImageNet weights stand, without downloading anything.

:func:`imagenet_cached` looks for torchvision's weights file in the torch cache
(``TORCH_HOME``, as :func:`torch.hub.load_state_dict_from_url` stores it;
:mod:`napari_senca.model.resnet`), so
the Run widget can say *before* a run that ``auto`` will fall back to random
weights. When a download fails, :func:`remember_failure` keeps that for the rest
of the session: :func:`napari_senca.model.backbone.build_backbone` then goes
straight to random weights for ``auto`` instead of trying (and timing out)
again on every run.
"""

from __future__ import annotations

import os

__all__ = [
    "imagenet_cached",
    "remember_failure",
    "download_failed",
    "forget_failures",
    "weights_notice",
    "weights_are_random",
    "WEAK_FEATURES_NOTE",
    "weak_features_note",
    "KNOWN_ENCODERS",
    "BUILTIN_RESNETS",
]

_FAILED: set[str] = set()

#: the torchvision ResNets built in (:mod:`napari_senca.model.resnet`, no torchvision import); every
#: other encoder name is a timm model. Kept here, without torch, for the widget and the notices.
BUILTIN_RESNETS = ("resnet18", "resnet34", "resnet50")

#: names offered by the Run widget's editable encoder list (any timm model name can be typed);
#: pathology foundation models published for timm on the Hugging Face hub (gated ones need HF_TOKEN)
KNOWN_ENCODERS = (
    *BUILTIN_RESNETS,
    "hf-hub:MahmoodLab/UNI",
    "hf-hub:MahmoodLab/UNI2-h",
    "hf-hub:bioptimus/H-optimus-0",
    "hf-hub:paige-ai/Virchow2",
    "hf-hub:prov-gigapath/prov-gigapath",
    "hf-hub:1aurent/vit_base_patch16_224.owkin_pancancer",
)

#: what the CLI, the widget and ``uns["senca"]`` say when the image features come from random weights
WEAK_FEATURES_NOTE = (
    "image features come from random weights: they see colour and texture, not learned histology (on HER2ST A1 "
    "they alone reach ARI 0.05-0.2, the expression 0.45-0.76 over the seeds measured); use pretrained or pathology "
    "weights (--encoder / --image-weights) for an informative image branch"
)


#: what the Run widget's weights note adds where the weights would be random (they do not count by default)
NOT_COUNTED_TAIL = " (not counted unless 'count random image features' is ticked)"
#: the same under the gated fusion, whose measured gate decides for random weights too
GATED_TAIL = " (the gated fusion counts them as much as their structure agrees with the expression's)"


def weak_features_note(counted: bool, count_how: str | None = "--count-random-image") -> str:
    """:data:`WEAK_FEATURES_NOTE` with what happened to the features in this run.

    ``counted``: the image gate was above 0; ``count_how``: how the user makes
    random features count (the command-line flag, or the widget's checkbox);
    None when the gate was measured (the gated fusion), which no flag overrides.
    """
    if counted:
        return WEAK_FEATURES_NOTE + "; they counted in this run: treat regions only the image separates as unconfirmed"
    if count_how is None:
        return WEAK_FEATURES_NOTE + ("; they did not count: their structure does not agree with the expression's "
                                     "(the gated fusion's measured gate)")
    return WEAK_FEATURES_NOTE + f"; so they did not count: the regions come from the expression ({count_how} counts them)"


def weights_are_random(weights_used: str) -> bool:
    """True when ``weights_used`` (an encoder's record) says the weights were a random initialisation."""
    return str(weights_used).lower().startswith("random")


def imagenet_cached(backbone: str = "resnet18") -> bool | None:
    """True when the ImageNet weights of ``backbone`` are in the torch cache.

    None when ``backbone`` has no torchvision ImageNet weights (nothing to check).
    Imports torch (not torchvision): call it off the main thread or once torch is imported.
    """
    from .model.resnet import IMAGENET_URLS, imagenet_file

    if backbone not in IMAGENET_URLS:
        return None
    return os.path.isfile(imagenet_file(backbone))


def remember_failure(backbone: str) -> None:
    """Record that the ImageNet weights of ``backbone`` could not be downloaded."""
    _FAILED.add(str(backbone))


def download_failed(backbone: str) -> bool:
    """True when a download of ``backbone``'s ImageNet weights failed in this session."""
    return str(backbone) in _FAILED


def forget_failures() -> None:
    """Try downloads again (e.g. after the network came back)."""
    _FAILED.clear()


def weights_notice(backbone: str, weights: str, cached: bool | None, measured_gate: bool = False) -> str:
    """What a run with ``weights`` will use, in one line ("" when nothing to say).

    Parameters
    ----------
    backbone
        torchvision model name, e.g. ``"resnet18"``.
    weights
        The ``image_weights`` setting (``"auto"``, ``"imagenet"``, ``"none"`` or a path).
    cached
        :func:`imagenet_cached` of ``backbone`` (None: unknown).
    measured_gate
        The run measures its image gate (the gated fusion): random weights are then
        counted as far as the gate says, not switched off.
    """
    not_counted = GATED_TAIL if measured_gate else NOT_COUNTED_TAIL
    w = str(weights).lower()
    if w == "none":
        return "random image weights: weak image features (colour and texture only)" + not_counted
    if backbone not in BUILTIN_RESNETS and w in ("auto", "imagenet"):
        name = backbone.removeprefix("timm:")
        if download_failed(name):
            tail = "random image weights" + not_counted if w == "auto" else "the run will fail offline"
            return f"pretrained weights for {backbone} could not be loaded this session: {tail}"
        return (
            f"{backbone}: pretrained weights come from the timm / Hugging Face cache or the internet "
            "(gated models need HF_TOKEN)" + ("; offline: random image weights" + not_counted if w == "auto" else "")
        )
    if w not in ("auto", "imagenet") or cached is None or cached:
        return ""
    if download_failed(backbone):
        if w == "auto":
            return (
                f"ImageNet weights for {backbone} could not be downloaded this session: random image weights"
                + not_counted
            )
        return f"ImageNet weights for {backbone} could not be downloaded this session: the run will fail offline"
    if w == "auto":
        return (
            f"ImageNet weights for {backbone} are not in the torch cache: the run downloads them, "
            "or uses random image weights when offline" + not_counted
        )
    return f"ImageNet weights for {backbone} are not in the torch cache: the run downloads them (needs internet)"
