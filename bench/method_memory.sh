#!/usr/bin/env bash
# What a model costs in memory, method by method: imports MODEL_DIR/model.onnx into a running
# service, asks one map of each method on MODEL_DIR/input.npy, and prints the service's resident
# memory after each (anonymous and file-backed pages apart: shared weights are the file's), then
# again after a minute idle (batches' working memory handed back) and deletes the model.
# Usage: bench/method_memory.sh MODEL_DIR [NAME=memory-probe]   (BASE_URL defaults to http://localhost:5080;
#   SERVICE_PID to the service's process, else the first SaliencyService.Api process found)
set -euo pipefail
dir=$1; name=${2:-memory-probe}; base=${BASE_URL:-http://localhost:5080}
pid=${SERVICE_PID:-$(pgrep -f 'SaliencyService.Api' | head -1)}
rss() { awk '/RssAnon/ {a = $2} /RssFile/ {f = $2} END {printf "anon %d MiB, file %d MiB", a / 1024, f / 1024}' "/proc/$pid/status"; }
echo "pid=$pid start: $(rss)"
echo "import $(curl -sf -o /dev/null -w '%{time_total}' -F "file=@$dir/model.onnx" -F "name=$name" "$base/v1/models?replace=true") s: $(rss)"
for method in guided-backprop gradient deconvnet grad-cam "integrated-gradients&steps=16" "smoothgrad&samples=16&base=guided-backprop"; do
  took=$(curl -sf -o /dev/null -w '%{time_total}' -F "tensor=@$dir/input.npy" "$base/v1/models/$name/explain?method=$method&format=npy")
  echo "${method%%&*} ${took} s: $(rss)"
done
sleep 70
echo "a minute idle: $(rss)"
curl -sf -o /dev/null -X DELETE "$base/v1/models/$name"
