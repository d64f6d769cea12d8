#!/usr/bin/env bash
# The service's own Winograd races beside its first predictions, as a client sends them: imports a
# model into a running service, sends N predictions straight after the answer (the races run
# then, as the model's backward is built), then a map, and prints each race's decision and how
# many of its rounds held the service's own runs off (bench/service_races.py). Races are kept per
# process and shape: start a fresh service for each check.
# Usage: bench/race_check.sh MODEL_DIR [N=200]
#   MODEL_DIR holds model.onnx, model.json and input.npy (bench/torch_baseline.py writes them);
#   the model is imported under MODEL_DIR's name. BASE_URL defaults to http://localhost:5080.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/multipart.sh"
dir=$1; n=${2:-200}; base=${BASE_URL:-http://localhost:5080}; name=$(basename "$dir")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
body tensor "$dir/input.npy" "$work/tensor.body"
curl -sf -o /dev/null -w "import %{http_code} in %{time_total} s\n" \
  -F "file=@$dir/model.onnx" -F "name=$name" -F "manifest=<$dir/model.json" "$base/v1/models"
hey -n "$n" -c 1 -m POST -T "$multipart_type" -D "$work/tensor.body" "$base/v1/models/$name/predict" | grep -E "Requests/sec|50% in"
curl -sf -o /dev/null -w "a map: %{http_code} in %{time_total} s\n" -F "tensor=@$dir/input.npy" "$base/v1/models/$name/explain?format=npy"
curl -sf "$base/metrics" | python3 "$here/service_races.py"
