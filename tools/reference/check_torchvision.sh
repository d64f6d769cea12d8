#!/usr/bin/env bash
# Imports the torchvision exports made by torchvision_guided_backprop.py into a running service
# and compares its guided-backprop and gradient maps with PyTorch's.
# Usage: tools/reference/check_torchvision.sh REF_DIR [BASE_URL]
set -euo pipefail
ref=$1; base=${2:-http://localhost:5080}
for dir in "$ref"/*/; do
  arch=$(basename "$dir"); name=tv-${arch//_/-}
  curl -sf -o /dev/null -F "file=@$dir/model.onnx" -F "name=$name" "$base/v1/models?replace=true" || { echo "$arch: import failed"; continue; }
  curl -sf "$base/v1/models/$name" > "$dir/descriptor.json"
  for method in guided-backprop gradient; do
    curl -sf -o "$dir/service.$method.npy" -F "tensor=@$dir/input.npy" "$base/v1/models/$name/explain?method=$method&format=npy" || true
  done
  /usr/bin/python3 - "$dir" <<'PY'
import json, sys, numpy as np
d = sys.argv[1]; desc = json.load(open(d + "/descriptor.json"))["explain"]; meta = json.load(open(d + "/meta.json"))
line = f"{d.rstrip('/').split('/')[-1]:20s} explainable={desc['supported']} parity={desc['parityMaxAbsDiff']}"
for method, ref in [("guided-backprop", "guided_backprop"), ("gradient", "gradient")]:
    try:
        a = np.load(f"{d}/service.{method}.npy"); r = np.load(f"{d}/{ref}.npy")
        line += f" {method}={np.abs(a - r).max() / np.abs(r).max():.2e} (torch f32: {meta.get(ref + '_f32_rel_max', float('nan')):.2e})"
    except Exception as e:
        line += f" {method}=n/a"
print(line, "" if desc["supported"] else desc["reason"] or desc["unsupportedOperators"])
PY
done
