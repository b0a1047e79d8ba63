"""The papers' networks: Keskar's F1, F2, C1-C4, CIFAR ResNets, VGG, WRN-16-4, AlexNet, ResNet-50.

Every batch-norm layer is a ghost batch norm (plain batch norm when `ghost_batch` is None), and a
`width` multiplier shrinks hidden units and channels for the smaller scales.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from lbgap.config.networks import NO_BATCH_NORM  # noqa: F401 (re-exported)
from lbgap.training.ghost_bn import GhostBatchNorm1d, GhostBatchNorm2d


def _w(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _bn1(ghost: int | None) -> Callable[[int], nn.Module]:
    return lambda c: GhostBatchNorm1d(c, ghost_size=ghost)


def _bn2(ghost: int | None) -> Callable[[int], nn.Module]:
    return lambda c: GhostBatchNorm2d(c, ghost_size=ghost)


# ---------------------------------------------------------------- Keskar et al. 2017, appendix B
def fully_connected(
    inputs: int, hidden: int, depth: int, classes: int, width: float, ghost: int | None
) -> nn.Sequential:
    """F1 (784-5x512-10, MNIST) and F2 (360-7x512-1973, TIMIT): batch-normalized ReLU layers."""
    bn, h = _bn1(ghost), _w(hidden, width)
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(inputs if i == 0 else h, h), bn(h), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(h, classes))
    return nn.Sequential(*layers)


def shallow_conv(classes: int, width: float, ghost: int | None, in_ch: int = 3) -> nn.Sequential:
    """C1/C3: 2 x [conv 5x5 64, max-pool 3 stride 2], dense 384, 192, dropout 0.5.

    The layout of the TensorFlow CIFAR-10 tutorial network that Keskar's C1 follows, with batch
    norm after each layer as in the authors' code.
    """
    bn2, bn1, c, d1, d2 = _bn2(ghost), _bn1(ghost), _w(64, width), _w(384, width), _w(192, width)
    return nn.Sequential(
        nn.Conv2d(in_ch, c, 5, padding=2),
        bn2(c),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(c, c, 5, padding=2),
        bn2(c),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(c * 8 * 8, d1),
        bn1(d1),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(d1, d2),
        bn1(d2),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(d2, classes),
    )


def vgg_features(
    stacks: list[list[int]], width: float, ghost: int | None
) -> tuple[nn.Sequential, int]:
    """Conv 3x3 stacks with batch norm and ReLU, max-pool after each stack."""
    bn, layers, ch = _bn2(ghost), [], 3
    for stack in stacks:
        for out in stack:
            out = _w(out, width)
            layers += [nn.Conv2d(ch, out, 3, padding=1, bias=False), bn(out), nn.ReLU(inplace=True)]
            ch = out
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers), ch


def deep_conv(classes: int, width: float, ghost: int | None) -> nn.Sequential:
    """C2/C4: VGG-like stacks 2x64, 2x128, 3x256, 3x512, 3x512; dense 512, dropout 0.5."""
    features, ch = vgg_features(
        [[64] * 2, [128] * 2, [256] * 3, [512] * 3, [512] * 3], width, ghost
    )
    hidden = _w(512, width)
    return nn.Sequential(
        features,
        nn.Flatten(),
        nn.Linear(ch, hidden),
        _bn1(ghost)(hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, classes),
    )


def vgg16(classes: int, width: float, ghost: int | None) -> nn.Sequential:
    """VGG-16 with batch norm for 32x32 inputs (Hoffer's VGG CIFAR-10 row)."""
    features, ch = vgg_features(
        [[64] * 2, [128] * 2, [256] * 3, [512] * 3, [512] * 3], width, ghost
    )
    return nn.Sequential(features, nn.Flatten(), nn.Linear(ch, classes))


# ---------------------------------------------------------------- CIFAR ResNets (He et al. 2016)
class BasicBlock(nn.Module):
    """Post-activation residual block with the parameter-free option-A shortcut of the paper."""

    def __init__(self, cin: int, cout: int, stride: int, bn: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = bn(cout)
        self.stride, self.pad = stride, cout - cin

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, classes: int, width: float, ghost: int | None) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n, bn = (depth - 2) // 6, _bn2(ghost)
        chans = [_w(c, width) for c in (16, 32, 64)]
        self.stem = nn.Sequential(nn.Conv2d(3, chans[0], 3, 1, 1, bias=False), bn(chans[0]))
        blocks, cin = [], chans[0]
        for stage, cout in enumerate(chans):
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage and i == 0 else 1, bn))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# ---------------------------------------------------------------- Wide ResNet (Zagoruyko 2016)
class WideBlock(nn.Module):
    """Pre-activation wide residual block."""

    def __init__(self, cin: int, cout: int, stride: int, bn: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.bn1, self.conv1 = bn(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = bn(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + (x if self.short is None else self.short(o))


class WideResNet(nn.Module):
    def __init__(
        self, depth: int, widen: int, classes: int, width: float, ghost: int | None
    ) -> None:
        super().__init__()
        n, bn = (depth - 4) // 6, _bn2(ghost)
        chans = [_w(c, width) for c in (16, 16 * widen, 32 * widen, 64 * widen)]
        self.stem = nn.Conv2d(3, chans[0], 3, 1, 1, bias=False)
        blocks, cin = [], chans[0]
        for stage, cout in enumerate(chans[1:]):
            for i in range(n):
                blocks.append(WideBlock(cin, cout, 2 if stage and i == 0 else 1, bn))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn, self.fc = bn(cin), nn.Linear(cin, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# ---------------------------------------------------------------- registry
def _resnet50(classes: int, width: float, ghost: int | None) -> nn.Module:
    """torchvision's ResNet-50; below width 1 every stage's planes shrink (the stem stays)."""
    import torchvision  # imported here: it costs every job about 1.5 s of CPU at start
    from torchvision.models.resnet import Bottleneck, ResNet

    if width == 1.0:
        return torchvision.models.resnet50(num_classes=classes, norm_layer=_bn2(ghost))

    class NarrowResNet(ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # noqa: ANN001
            return super()._make_layer(block, _w(planes, width), blocks, stride, dilate)

    model = NarrowResNet(Bottleneck, [3, 4, 6, 3], num_classes=classes, norm_layer=_bn2(ghost))
    model.fc = nn.Linear(model.inplanes, classes)
    return model


def _alexnet(classes: int, width: float, ghost: int | None) -> nn.Module:
    """torchvision's AlexNet; below width 1 its channels and hidden units shrink alike."""
    import torchvision

    if width == 1.0:
        return torchvision.models.alexnet(num_classes=classes)
    c1, c2, c3, c4, c5 = (_w(c, width) for c in (64, 192, 384, 256, 256))
    hidden = _w(4096, width)
    model = torchvision.models.AlexNet(num_classes=classes)
    model.features = nn.Sequential(
        nn.Conv2d(3, c1, 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c1, c2, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c2, c3, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c3, c4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c4, c5, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )
    model.classifier = nn.Sequential(
        nn.Dropout(0.5),
        nn.Linear(c5 * 6 * 6, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, classes),
    )
    return model


NETWORKS: dict[str, Callable[[int, float, int | None], nn.Module]] = {
    "F1": lambda k, w, g: fully_connected(784, 512, 5, k, w, g),
    "F2": lambda k, w, g: fully_connected(360, 512, 7, k, w, g),
    "C1": lambda k, w, g: shallow_conv(k, w, g),
    "C3": lambda k, w, g: shallow_conv(k, w, g),
    "C2": deep_conv,
    "C4": deep_conv,
    "resnet20": lambda k, w, g: CifarResNet(20, k, w, g),
    "resnet32": lambda k, w, g: CifarResNet(32, k, w, g),
    "resnet44": lambda k, w, g: CifarResNet(44, k, w, g),
    "resnet56": lambda k, w, g: CifarResNet(56, k, w, g),
    "vgg16": vgg16,
    "wrn16_4": lambda k, w, g: WideResNet(16, 4, k, w, g),
    "alexnet": _alexnet,
    "resnet50": _resnet50,
}


def build_model(
    network: str, classes: int, width: float = 1.0, ghost_batch: int | None = None
) -> nn.Module:
    """Build a network by its config name; an unknown name fails with the list of known ones."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[network](classes, width, ghost_batch)


def zero_init_last_bn(model: nn.Module) -> None:
    """Goyal et al.: gamma = 0 in the last batch norm of each residual block."""
    from torchvision.models.resnet import Bottleneck

    for m in model.modules():
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)
        elif isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
