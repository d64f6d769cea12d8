#!/usr/bin/env python3
"""Exports small CNNs with the shapes torchvision's architectures do not have — odd and non-square
inputs, channel counts off 16, a ceil-mode max pool, dilations, groups, 5×5 kernels, no padding,
one input channel, TF "SAME" padding (asymmetric pads, as tf2onnx writes them) — to ONNX, with
their reference guided-backprop, gradient and Grad-CAM maps in PyTorch (float64), in the layout
check_torchvision.sh reads. The engine's own kernels (Winograd, the scatters, the max pool's
backward) meet there the edges and strides real models rarely give them.

Usage: /usr/bin/python3 unusual_architectures.py OUT_DIR   (needs Debian's python3-torch, python3-onnx;
then tools/reference/check_torchvision.sh OUT_DIR against a running service)
"""
import os
import sys

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import helper

import torchvision_guided_backprop as ref  # replaces F.relu and F.hardtanh with their guided versions

relu = F.relu


def relu6(x):
    return F.hardtanh(x, 0.0, 6.0)


class Block(nn.Module):
    """A residual block; strided (or changing channels) with a 1×1 shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.c2(relu(self.c1(x)))
        return relu(y + (x if self.shortcut is None else self.shortcut(x)))


class OddResNet(nn.Module):
    """A 5×5/2 stem, a ceil-mode max pool and blocks of 24 to 136 channels on a 97 × 131 input."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 5, 2, 2)
        self.pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
        self.blocks = nn.Sequential(Block(24, 24, 1), Block(24, 40, 2), Block(40, 40, 1), Block(40, 72, 2), Block(72, 136, 2))
        self.fc = nn.Linear(136, 10)

    def forward(self, x):
        return self.fc(self.blocks(self.pool(relu(self.stem(x)))).mean((2, 3)))


class Mixed(nn.Module):
    """No padding, a dilation, groups, a 5×5 kernel, 17 and 33 channels, a concatenation, a strided
    depthwise convolution after ReLU6, an average pool and a global max."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 1, 0)
        self.dilated = nn.Conv2d(32, 32, 3, 1, 2, dilation=2)
        self.grouped = nn.Conv2d(32, 64, 3, 1, 1, groups=4)
        self.five = nn.Conv2d(64, 32, 5, 1, 2)
        self.narrow = nn.Conv2d(32, 17, 3, 1, 1)
        self.depthwise = nn.Conv2d(49, 49, 3, 2, 1, groups=49)
        self.pointwise = nn.Conv2d(49, 96, 1)
        self.wide = nn.Conv2d(96, 33, 3, 1, 2)
        self.average = nn.AvgPool2d(3, 1, 1)
        self.fc = nn.Linear(33, 7)

    def forward(self, x):
        a = relu6(self.stem(x))
        b = relu(self.dilated(a))
        c = relu(self.grouped(b))
        d = relu(self.five(c))
        e = relu(self.narrow(d))
        f = relu6(torch.cat([d, e], 1))
        g = relu6(self.depthwise(f))
        h = relu(self.pointwise(g))
        i = relu(self.wide(self.average(h)))
        return self.fc(i.amax((2, 3)))


class Gray(nn.Module):
    """One input channel, 28 × 28, two 2×2 max pools: MNIST's shape."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 16, 3, 1, 1), nn.Conv2d(16, 32, 3, 1, 1), nn.Conv2d(32, 32, 3, 1, 1)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(relu(self.c1(x)), 2)
        x = F.max_pool2d(relu(self.c2(x)), 2)
        return self.fc(relu(self.c3(x)).flatten(1))


class TfSame(nn.Module):
    """TF's "SAME" padding at stride 2 (one more cell after than before), ReLU6 and a residual."""

    PADS = [(0, 1, 0, 1), (0, 1, 0, 1), (1, 1, 0, 1)]  # F.pad's (left, right, top, bottom), in order

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 32, 3, 2, 0), nn.Conv2d(32, 32, 3, 1, 1)
        self.c3, self.c4 = nn.Conv2d(32, 64, 3, 2, 0), nn.Conv2d(64, 64, 3, 1, 1)
        self.depthwise = nn.Conv2d(64, 64, 3, 2, 0, groups=64)
        self.fc = nn.Linear(64, 5)

    def forward(self, x):
        x = relu6(self.c1(F.pad(x, self.PADS[0])))
        x = relu6(self.c2(x)) + x
        x = relu(self.c3(F.pad(x, self.PADS[1])))
        x = relu(self.c4(x))
        x = relu6(self.depthwise(F.pad(x, self.PADS[2])))
        return self.fc(x.mean((2, 3)))


MODELS = {"odd_resnet": (OddResNet, (3, 97, 131)), "mixed": (Mixed, (3, 61, 45)), "gray": (Gray, (1, 28, 28)),
          "tf_same": (TfSame, (3, 96, 80))}


def fold_pads(path, pads):
    """Each Pad before a Conv folded into the Conv's pads, as tf2onnx writes TF's "SAME" (the Pad's
    own pads input is computed by nodes PyTorch's exporter leaves, so they are given in order)."""
    model = onnx.load(path)
    graph = model.graph
    for pad, (left, right, top, bottom) in zip([n for n in graph.node if n.op_type == "Pad"], pads):
        (conv,) = [n for n in graph.node if pad.output[0] in n.input]
        assert conv.op_type == "Conv"
        old = next((a for a in conv.attribute if a.name == "pads"), None)
        begin_end = list(old.ints) if old else [0, 0, 0, 0]
        if old:
            conv.attribute.remove(old)
        conv.attribute.append(helper.make_attribute("pads", [begin_end[0] + top, begin_end[1] + left, begin_end[2] + bottom, begin_end[3] + right]))
        conv.input[0] = pad.input[0]
        graph.node.remove(pad)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main(out):
    for name, (cls, shape) in MODELS.items():
        torch.manual_seed(0)
        model = cls().eval()
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.uniform_(module.bias, -0.1, 0.1)
        x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(1))
        rewrite = (lambda path: fold_pads(path, TfSame.PADS)) if cls is TfSame else None
        ref.write_reference(os.path.join(out, name), name, model, x, 13, rewrite)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    main(sys.argv[1])
