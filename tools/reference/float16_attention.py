#!/usr/bin/env python3
"""Exports a small vision transformer in float16 (a patchifying Conv, LayerNorm, multi-head
attention with a residual, GELU, mean pooling, Linear) with its reference maps in PyTorch
(float64, of the same float16 weights), in the layout check_torchvision.sh reads. ONNX Runtime
1.31 crashes creating a session of it with all its graph optimizations (those of its fourth level,
for float16 graphs), as it does on torchvision's vit_b_16 in float16: the service's import check
falls back to the layout level for such a model (tests/SaliencyService.Tests/Models/float16_attention).

Usage: /usr/bin/python3 float16_attention.py OUT_DIR   (needs Debian's python3-torch, python3-onnx)
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import torchvision_guided_backprop as ref


class TinyViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.patches = nn.Conv2d(3, 8, 4, 4)
        self.norm = nn.LayerNorm(8)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        tokens = self.norm(self.patches(x).flatten(2).transpose(1, 2))
        tokens = tokens + self.attention(tokens, tokens, tokens, need_weights=False)[0]
        return self.head(F.gelu(tokens).mean(1))


if __name__ == "__main__":
    torch.manual_seed(0)
    model = ref.half_weights(TinyViT().eval())
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ref.write_reference(sys.argv[1], "float16_attention", model, x, 13, ref.to_float16, fold=False)
