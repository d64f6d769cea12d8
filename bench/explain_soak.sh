#!/usr/bin/env bash
# Memory soak: N explain requests against a running service, printing its RSS every STEP requests.
# Usage: bench/explain_soak.sh MODEL INPUT_FILE [N=2000] [STEP=250] [QUERY=format=npy]
#   INPUT_FILE is sent as 'image' (.png/.jpg) or 'tensor' (.npy). BASE_URL defaults to http://localhost:5080.
set -euo pipefail
model=$1; input=$2; n=${3:-2000}; step=${4:-250}; query=${5:-format=npy}; base=${BASE_URL:-http://localhost:5080}
part=image; [[ $input == *.npy ]] && part=tensor
pid=$(pgrep -f 'SaliencyService.Api' | head -1)
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status"; }
echo "model=$model input=$input pid=$pid start rss=$(rss)"
start=$(date +%s.%N)
for ((i = 1; i <= n; i++)); do
  curl -sf -o /dev/null -F "$part=@$input" "$base/v1/models/$model/explain?$query" || { echo "request $i failed"; exit 1; }
  if (( i % step == 0 )); then echo "after $i explains: rss=$(rss)"; fi
done
echo "done: $n explains in $(echo "$(date +%s.%N) - $start" | bc) s"
