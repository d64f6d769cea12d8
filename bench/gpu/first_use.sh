#!/usr/bin/env bash
# What the service pays the first time a session meets a batch size, against a repeat: one request
# at a time (curl), each with its wall time and the service's CPU seconds, for guided backprop,
# integrated gradients at 1, 2, 16 and 50 steps and SmoothGrad at 16 samples, under a service
# whose CUDA sessions search cuDNN's algorithms exhaustively, one that uses its heuristics, and
# one on the host's CPU.
#
# Usage: bench/gpu/first_use.sh APP MODELS OUT   (as bench/gpu/service.sh; OUT gets one .txt per service)
set -uo pipefail
app=$1 models=$2 out=$3
source "$(dirname "$0")/serving.sh"
mkdir -p "$out"; work=$(mktemp -d)
trap 'stop; rm -rf "$work"' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
request() { # ARCH QUERY
  local before; before=$(cpu_ticks)
  local answer; answer=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -F "tensor=@$models/$1/input.npy" "$base/v1/models/$1/explain?$2&format=npy")
  echo "$1 $2 -> $answer s, cpu $(( $(cpu_ticks) - before )) ticks"
}
each_model() {
  for folder in "$models"/*/; do
    local arch; arch=$(basename "$folder")
    curl -s -o /dev/null -w "import $arch %{http_code} %{time_total} s\n" -F "file=@$folder/model.onnx" -F "name=$arch" \
      -F "manifest=<$folder/model.json" "$base/v1/models"
    for _ in 1 2 3; do request "$arch" method=guided-backprop; done
    for steps in 1 1 2 2 2 16 16 16 50 50; do request "$arch" "method=integrated-gradients&steps=$steps"; done
    for _ in 1 2; do request "$arch" "method=smoothgrad&samples=16&noise=0.15&seed=1"; done
  done
}
measure() { # NAME [VAR=VALUE ...]
  local name=$1; shift
  start "$name" "$out/log.$name" "$work/store.$name" "$@" && each_model > "$out/$name.txt"
  stop
}
measure cuda-exhaustive Saliency__OnnxRuntime__ExecutionProvider=cuda Saliency__OnnxRuntime__CudnnConvAlgoSearch=EXHAUSTIVE
measure cuda-heuristic Saliency__OnnxRuntime__ExecutionProvider=cuda Saliency__OnnxRuntime__CudnnConvAlgoSearch=HEURISTIC
measure cpu Saliency__OnnxRuntime__ExecutionProvider=cpu
cat "$out"/*.txt
