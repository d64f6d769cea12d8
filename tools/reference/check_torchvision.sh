#!/usr/bin/env bash
# Imports the torchvision exports made by torchvision_guided_backprop.py into a running service
# and compares its guided-backprop, gradient and Grad-CAM maps with PyTorch's float64 ones.
# A map is "ok" when its largest error, relative to the largest |value| of the float64 map, is
# within max(10 x PyTorch's own float32 error, 1e-3), or when its relative L2 error is within 1e-2
# (a float32 engine other than PyTorch's flips the gates of other near-zero units: whole regions
# differ a little, as PyTorch's own float32 does on other inputs). Exits non-zero if any
# architecture is not explainable, any map is off, or the service stops answering.
# With IG_STEPS=N, integrated gradients (N steps, zero baseline) must also be complete: their sum
# within 1% of the score's change from the zero input (both scores from the service's predict), or of
# 1% of the score where the input barely moves it.
# Usage: [IG_STEPS=N] tools/reference/check_torchvision.sh REF_DIR [BASE_URL]   (needs Debian's python3-numpy)
set -uo pipefail
ref=$1; base=${2:-http://localhost:5080}
failed=0
for dir in "$ref"/*/; do
  arch=$(basename "$dir"); name=tv-${arch//_/-}
  if ! curl -sf -o /dev/null -F "file=@$dir/model.onnx" -F "name=$name" "$base/v1/models?replace=true"; then
    echo "$arch: import failed"; failed=1; continue
  fi
  curl -sf "$base/v1/models/$name" > "$dir/descriptor.json"
  rm -f "$dir"/service.*.npy
  for method in guided-backprop gradient grad-cam; do
    curl -sf -o "$dir/service.$method.npy" -F "tensor=@$dir/input.npy" "$base/v1/models/$name/explain?method=$method&format=npy" || true
  done
  rm -f "$dir"/service.ig.npy "$dir"/service.predict*.json
  if [[ ${IG_STEPS:-0} -gt 0 ]]; then
    target=$(/usr/bin/python3 -c "import json; print(json.load(open('$dir/meta.json'))['target'])")
    /usr/bin/python3 -c "import numpy as np; x = np.load('$dir/input.npy'); np.save('$dir/zeros.npy', np.zeros_like(x))"
    curl -sf -o "$dir/service.ig.npy" -F "tensor=@$dir/input.npy" "$base/v1/models/$name/explain?method=integrated-gradients&steps=$IG_STEPS&target=$target&format=npy" || true
    curl -sf -o "$dir/service.predict.json" -F "tensor=@$dir/input.npy" "$base/v1/models/$name/predict?topK=1000" || true
    curl -sf -o "$dir/service.predict0.json" -F "tensor=@$dir/zeros.npy" "$base/v1/models/$name/predict?topK=1000" || true
  fi
  /usr/bin/python3 - "$dir" <<'PY' || failed=1
import json, sys, numpy as np
d = sys.argv[1]; desc = json.load(open(d + "/descriptor.json"))["explain"]; meta = json.load(open(d + "/meta.json"))
line = f"{d.rstrip('/').split('/')[-1]:20s} explainable={desc['supported']} engine={desc.get('gradientEngine')}"
ok = desc["supported"]
for method, ref in [("guided-backprop", "guided_backprop"), ("gradient", "gradient"), ("grad-cam", "grad_cam")]:
    try:
        r = np.load(f"{d}/{ref}.npy")
    except FileNotFoundError:
        line += f" {method}=no-reference"
        continue
    try:
        a = np.load(f"{d}/service.{method}.npy").reshape(r.shape)
    except Exception:
        line += f" {method}=MISSING"; ok = False
        continue
    if not np.abs(r).max() > 0:  # an empty reference (Grad-CAM whose weighted sum is negative everywhere): the map must be empty too
        good = bool(np.abs(a).max() <= 1e-6)
        ok &= good
        line += f" {method}=empty reference, service max {np.abs(a).max():.1e}{'' if good else '(OFF)'}"
        continue
    error = np.abs(a - r).max() / np.abs(r).max()
    l2 = np.linalg.norm(a - r) / np.linalg.norm(r)
    floor = meta.get(ref + "_f32_rel_max", 1e-4)
    good = error <= max(10 * floor, 1e-3) or l2 <= 1e-2
    ok &= bool(good)
    line += f" {method}={error:.1e}/L2 {l2:.1e}{'' if good else '(OFF)'} (torch f32 {floor:.1e})"
import os
if os.path.exists(f"{d}/service.predict.json"):
    def score(path):
        return next(c["score"] for c in json.load(open(path))["predictions"][0]["top"] if c["index"] == meta["target"])
    try:
        at_input = score(f"{d}/service.predict.json")
        change = at_input - score(f"{d}/service.predict0.json")
        total = float(np.load(f"{d}/service.ig.npy").astype(np.float64).sum())
        # Relative to the change, or to 1% of the score where the input barely moves it (a random
        # network whose output is nearly constant: there is then almost nothing to attribute).
        flat = abs(change) < 0.01 * abs(at_input)
        gap = abs(total - change) / max(abs(change), 0.01 * abs(at_input))
        ok &= bool(gap <= 0.01)
        line += f" ig-completeness={gap:.1e}{' (the input barely moves the score)' if flat else ''}{'' if gap <= 0.01 else '(OFF)'}"
    except Exception as e:
        line += f" ig=MISSING({type(e).__name__})"; ok = False
print(("ok   " if ok else "FAIL ") + line, "" if desc["supported"] else desc["reason"] or desc["unsupportedOperators"])
sys.exit(0 if ok else 1)
PY
  curl -sf -o /dev/null "$base/health/live" || { echo "the service stopped answering after $arch"; exit 2; }
  curl -sf -o /dev/null -X DELETE "$base/v1/models/$name"   # one big model at a time in the service's memory
done
exit $failed
