#!/usr/bin/env python3
"""PyTorch's SmoothGrad noise for a seed, the reference for the service's (NoiseTunnel.NoisyCopies).

Writes OUT_DIR/x.npy (a sample, [1, 3, 4, 5]) and OUT_DIR/noisy.seed{SEED}.npy: SAMPLES copies of it
plus N(0, sigma^2) drawn as a PyTorch user seeds it, torch.Generator().manual_seed(SEED), into one
float32 batch (normal_), with sigma = NOISE x the sample's value range.

Usage: /usr/bin/python3 smoothgrad_noise.py OUT_DIR   (needs Debian's python3-torch)
"""
import os
import sys

import numpy as np
import torch

SEED, SAMPLES, NOISE = 11, 25, 0.15


def main(out):
    os.makedirs(out, exist_ok=True)
    x = (torch.arange(60, dtype=torch.float32).reshape(1, 3, 4, 5) - 30) / 7
    sigma = NOISE * float(x.max() - x.min())
    generator = torch.Generator().manual_seed(SEED)
    noisy = torch.empty((SAMPLES, *x.shape[1:])).normal_(0, sigma, generator=generator) + x
    np.save(os.path.join(out, "x.npy"), x.numpy())
    np.save(os.path.join(out, f"noisy.seed{SEED}.npy"), noisy.numpy())
    print(f"sigma {sigma:.9g}; torch {torch.__version__}")


if __name__ == "__main__":
    main(sys.argv[1])
