#!/usr/bin/env bash
# Mixed load on a local instance: predicts, explains and model replaces at once, for DURATION
# seconds (default 300), with the explanation cache off so every explain is computed. Reports status codes, latency percentiles (hey), failed replaces, and the
# service's RSS over time. Traffic goes to 127.0.0.1 only.
# Usage: bench/load_test.sh [DURATION_SECONDS]    (installs Debian's hey if missing; builds the API)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-300}; port=${PORT:-5099}; base="http://127.0.0.1:$port"
work=$(mktemp -d); store="$work/store"
command -v hey >/dev/null || { apt-get update -qq && apt-get install -y -qq hey >/dev/null; }

dotnet build src/Api -c Release -v quiet -nologo >/dev/null
DOTNET_DbgEnableMiniDump=1 DOTNET_DbgMiniDumpName="${TMPDIR:-/tmp}/saliency-crash-%p.dmp" \
MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2} ASPNETCORE_URLS=$base Saliency__ModelStore=$store Saliency__RateLimit__PermitsPerSecond=0 \
  Saliency__Explain__CacheMegabytes=0 \
  Logging__LogLevel__Default=Warning dotnet src/Api/bin/Release/net10.0/SaliencyService.Api.dll > "$work/service.log" 2>&1 &
service=$!
trap 'kill $service 2>/dev/null; wait $service 2>/dev/null; cp "$work/service.log" "${TMPDIR:-/tmp}/load_test.service.log"; rm -rf "$work"' EXIT
until curl -sf "$base/health/ready" >/dev/null; do sleep 1; done

fixtures=tests/SaliencyService.Tests/Fixtures
curl -sf -o /dev/null -F file=@$fixtures/mini_resnet/model.onnx -F name=churn -F "manifest=<$fixtures/mini_resnet/model.json" "$base/v1/models"

source bench/multipart.sh
body image samples/chelsea.png "$work/photo.body"
body image samples/circle.png "$work/circle.body"
body tensor $fixtures/mini_resnet/input0.tensor.npy "$work/tensor.body"
type=$multipart_type

pid=$(pgrep -f "SaliencyService.Api.dll" | head -1)
( while kill -0 "$service" 2>/dev/null; do echo "$(date +%s) $(awk '/VmRSS/ {print $2}' /proc/$pid/status)"; sleep 5; done ) > "$work/rss.log" &

( ok=0; failed=0; end=$((SECONDS + duration))
  while ((SECONDS < end)); do
    for dir in mini_mobilenet mini_resnet; do
      code=$(curl -s -o /dev/null -w '%{http_code}' -F file=@$fixtures/$dir/model.onnx -F name=churn "$base/v1/models?replace=true")
      [[ $code == 201 ]] && ok=$((ok + 1)) || failed=$((failed + 1))
      sleep 1
    done
  done; echo "replaces: $ok ok, $failed failed" ) > "$work/replace.log" &

hey -z "${duration}s" -c 4 -m POST -T "$type" -D "$work/photo.body" "$base/v1/models/resnet18/predict" > "$work/predict-resnet18.txt" &
hey -z "${duration}s" -c 4 -m POST -T "$type" -D "$work/tensor.body" "$base/v1/models/churn/predict" > "$work/predict-churn.txt" &
hey -z "${duration}s" -c 2 -m POST -T "$type" -D "$work/circle.body" "$base/v1/models/seed-cnn/explain?format=npy" > "$work/explain-seed.txt" &
hey -z "${duration}s" -c 1 -m POST -T "$type" -D "$work/photo.body" "$base/v1/models/resnet18/explain" > "$work/explain-resnet18.txt" &
wait $(jobs -p | tail -4)
sleep 3

echo "== mixed load for ${duration}s on $(nproc) cores =="
for report in predict-resnet18 predict-churn explain-seed explain-resnet18; do
  echo "-- $report"
  grep -E "Requests/sec|Total:" "$work/$report.txt" | sed 's/^ */   /'
  grep -E "(50|90|99)% in" "$work/$report.txt" | sed 's/^ */   p/'
  sed -n '/Status code distribution/,/^$/p' "$work/$report.txt" | sed 's/^ */   /'
  grep -A5 "Error distribution" "$work/$report.txt" | sed 's/^ */   /' || true
done
cat "$work/replace.log"
awk '{ if ($2 > peak) peak = $2; rss[NR] = $2 } END {
  printf "RSS per minute (MiB):"; for (i = 1; i <= NR; i += 12) printf " %.0f", rss[i] / 1024; printf " | end %.0f, peak %.0f\n", rss[NR] / 1024, peak / 1024 }' "$work/rss.log"
echo "service log lines mentioning failures/exceptions: $(grep -ciE "fail|exception" "$work/service.log" || true)"
if ! kill -0 "$service" 2>/dev/null; then
  wait "$service" && code=0 || code=$?
  echo "THE SERVICE DIED (exit $code); its log is kept in ${TMPDIR:-/tmp}/load_test.service.log, a dump in ${TMPDIR:-/tmp}/saliency-crash-*.dmp"
  tail -30 "$work/service.log"
  exit 1
fi
