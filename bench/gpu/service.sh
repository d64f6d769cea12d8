#!/usr/bin/env bash
# The service itself on a CUDA host: the same requests to the same models, served once with
# ONNX Runtime's CUDA provider and once with its CPU provider on the host's cores, over HTTP with a
# keep-alive client (hey -c 1). Every map of the CUDA service is compared with the CPU service's.
#
# Usage: bench/gpu/service.sh APP MODELS OUT
#   APP     the published service (src/Api's build output), with the CUDA provider's library in
#           runtimes/linux-x64/native; `dotnet` on PATH, CUDA 13 and cuDNN 9 on LD_LIBRARY_PATH
#   MODELS  one folder per architecture with model.onnx, model.json (the manifest) and input.npy
#   OUT     timings (results.jsonl), map comparisons (maps.jsonl), service logs, descriptors
# GPU_EP=cpu tries the script on a host without a GPU (its "gpu" services then run on CPU). MAX_BATCH_GPU (default 50) is the
# third service's Saliency:Explain:MaxBatch, which times integrated gradients and SmoothGrad again.
# QUICK=1 sends a tenth of the requests (for trying the script, not for numbers).
set -uo pipefail
app=$1 models=$2 out=$3
gpu_ep=${GPU_EP:-cuda}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../multipart.sh"
source "$here/serving.sh"
work=$(mktemp -d); mkdir -p "$out"

trap 'stop; rm -rf "$work"' EXIT

timed() { # SERVICE ARCH CASE N QUERY: N keep-alive requests, p10/p50/p90 in ms to results.jsonl
  local csv="$work/$1.$2.$3.csv"
  local n=$4; ((${QUICK:-0})) && n=$((n / 10 > 2 ? n / 10 : 2))
  hey -n "$n" -c 1 -m POST -T "$multipart_type" -D "$work/$2.body" -o csv "$base/v1/models/$2/$5" > "$csv"
  python3 - "$csv" "$1" "$2" "$3" >> "$out/results.jsonl" << 'EOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ms = sorted(float(r["response-time"]) * 1000 for r in rows)
bad = sum(r["status-code"] != "200" for r in rows)
q = lambda p: round(ms[min(len(ms) - 1, int(p * len(ms)))], 3)
print(json.dumps({"service": sys.argv[2], "arch": sys.argv[3], "case": sys.argv[4], "n": len(ms),
                  "non_200": bad, "p10": q(0.1), "p50": q(0.5), "p90": q(0.9)}))
EOF
}

methods=("guided-backprop" "gradient" "deconvnet" "input-x-gradient" "grad-cam" "guided-grad-cam"
  "integrated-gradients&steps=50" "smoothgrad&base=guided-backprop&samples=25&noise=0.15&seed=1")

serve() { # NAME PROVIDER [VAR=VALUE ...]
  local name=$1 provider=$2; shift 2
  start "$name" "$out/service.$name.log" "$work/store.$name" Saliency__OnnxRuntime__ExecutionProvider="$provider" "$@" || return 1
  for folder in "$models"/*/; do
    local arch; arch=$(basename "$folder")
    body tensor "$folder/input.npy" "$work/$arch.body"
    curl -s -o "$out/descriptor.$name.$arch.json" -w "{\"service\": \"$name\", \"arch\": \"$arch\", \"case\": \"import\", \"status\": %{http_code}, \"seconds\": %{time_total}}\n" \
      -F "file=@$folder/model.onnx" -F "name=$arch" -F "manifest=<$folder/model.json" "$base/v1/models" >> "$out/results.jsonl"
    for m in "${methods[@]}"; do # one map of each method, kept for the comparison
      curl -s -o "$work/map.$name.$arch.${m%%&*}.npy" -F "tensor=@$folder/input.npy" "$base/v1/models/$arch/explain?method=$m&format=npy"
    done
    timed "$name" "$arch" warm 200 predict > /dev/null
    timed "$name" "$arch" warm_explain 30 "explain?format=npy" > /dev/null
    timed "$name" "$arch" predict 200 predict
    timed "$name" "$arch" guided-backprop 100 "explain?format=npy"
    timed "$name" "$arch" gradient 100 "explain?method=gradient&format=npy"
    timed "$name" "$arch" grad-cam 100 "explain?method=grad-cam&format=npy"
    timed "$name" "$arch" guided-backprop-png 50 "explain?format=png"
    timed "$name" "$arch" integrated-gradients-50 10 "explain?method=integrated-gradients&steps=50&format=npy"
    timed "$name" "$arch" smoothgrad-25 10 "explain?method=smoothgrad&base=guided-backprop&samples=25&noise=0.15&seed=1&format=npy"
  done
  curl -sf "$base/metrics" > "$out/metrics.$name.txt"
  stop
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/host.txt" 2>&1
grep -m1 'model name' /proc/cpuinfo >> "$out/host.txt"; nproc >> "$out/host.txt"
serve gpu "$gpu_ep"
serve cpu cpu
serve "gpu-batch${MAX_BATCH_GPU:-50}" "$gpu_ep" Saliency__Explain__MaxBatch="${MAX_BATCH_GPU:-50}"

python3 - "$work" >> "$out/maps.jsonl" << 'EOF'
import glob, json, os, sys
import numpy as np
work, gpu = sys.argv[1], "gpu"
for path in sorted(glob.glob(os.path.join(work, f"map.{gpu}.*.npy"))):
    arch, method = os.path.basename(path).split(".")[2:4]
    row = {"arch": arch, "method": method}
    try:
        a = np.load(path).astype(np.float64)
        b = np.load(path.replace(f"map.{gpu}.", "map.cpu.")).astype(np.float64)
        row.update(shape=list(a.shape), finite=bool(np.isfinite(a).all()),
                   max_diff_over_max=float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)))
    except Exception as e:  # an error body instead of a map
        row["error"] = open(path, "rb").read(300).decode("utf-8", "replace")
    print(json.dumps(row))
EOF
cat "$out/results.jsonl" "$out/maps.jsonl"
