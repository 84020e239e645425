"""torchvision's ImageNet ResNets (18, 34, 50), built without importing torchvision.

``import torchvision`` imports ``torch._dynamo`` (through ``torchvision.ops``):
2-3 s of every run's start on a 2-core machine, more than a small section's
whole training. The networks here are torchvision's, layer for layer:

* the same module names, so torchvision's state dicts and checkpoint files
  load with ``strict=True``;
* the same construction and initialisation order, so a random initialisation
  under the same seed gives the same weights bit for bit (tested against
  torchvision in ``tests/test_resnet.py``);
* the same weights files: :data:`IMAGENET_URLS` are the URLs of torchvision's
  ``ResNet*_Weights.DEFAULT`` (tested against its weights API), loaded with
  :func:`torch.hub.load_state_dict_from_url` and ``check_hash=True``, which is
  what ``ResNet*_Weights.get_state_dict`` does. They are cached in the torch
  hub folder (``TORCH_HOME``) that torchvision uses, so either finds the other's
  download.

Architecture: K. He et al., "Deep residual learning for image recognition"
(2016), in torchvision's V1.5 form (the stride of a bottleneck on its 3x3
convolution). Adapted from torchvision/models/resnet.py (BSD-3-Clause).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet", "imagenet_state_dict", "imagenet_file", "IMAGENET_URLS",
           "ARCHITECTURES", "DOWNLOAD_TIMEOUT"]

#: torchvision's ``ResNet18/34/50_Weights.DEFAULT`` files (resnet50: IMAGENET1K_V2)
IMAGENET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a residual (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        # x: (b, cin, h, w) -> (b, planes, h/stride, w/stride)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1, 3x3 (strided), 1x1 convolutions and a residual (ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        # x: (b, cin, h, w) -> (b, 4 * planes, h/stride, w/stride)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Stem, four stages (strides 4, 8, 16, 32), global average pooling, ``fc``."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc: nn.Module = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():  # torchvision's initialisation, in its order
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        # x: (b, 3, h, w) normalised -> (b, num_classes), or (b, F) once fc is an Identity
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


#: name -> (block, blocks per stage)
ARCHITECTURES: dict[str, tuple[type[BasicBlock | Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}


def resnet(name: str) -> ResNet:
    """A randomly initialised ``resnet18``, ``resnet34`` or ``resnet50`` (torchvision's layout)."""
    block, layers = ARCHITECTURES[name]
    return ResNet(block, layers)


def imagenet_file(name: str) -> str:
    """Where torch keeps ``name``'s ImageNet weights once downloaded (``TORCH_HOME``/hub/checkpoints)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(IMAGENET_URLS[name]).path))


#: seconds a download of ImageNet weights may wait on the network (to connect, or for the next bytes)
DOWNLOAD_TIMEOUT = 20.0


def imagenet_state_dict(name: str, progress: bool = True, timeout: float | None = None) -> dict[str, Tensor]:
    """torchvision's ImageNet weights of ``name``: from the torch cache, else downloaded (hash checked).

    ``torch.hub`` downloads with no timeout: on a network that drops packets
    instead of refusing them (a hospital proxy or firewall), a run would wait
    minutes for the operating system to give up before falling back to random
    weights. The download here gives up after ``timeout`` seconds without
    progress (default :data:`DOWNLOAD_TIMEOUT`); a slow link that keeps sending
    is not cut. The timeout is the process's socket default while the download
    runs (restored after), which is how urllib, and so ``torch.hub``, reads it.
    """
    url = IMAGENET_URLS[name]
    if os.path.isfile(imagenet_file(name)):  # cached: no network involved
        return torch.hub.load_state_dict_from_url(url, progress=progress, check_hash=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT if timeout is None else timeout)
    try:
        return torch.hub.load_state_dict_from_url(url, progress=progress, check_hash=True)
    finally:
        socket.setdefaulttimeout(previous)
