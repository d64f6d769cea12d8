#!/usr/bin/env bash
# The whole performance comparison in one run, on this machine:
#   SaliencyService over HTTP  vs  in-process ONNX Runtime (bench/InProcess ort, the service's session options)
#                              vs  in-process PyTorch (bench/torch_baseline.py, Captum-style hooks)
# on torchvision resnet18, mobilenet_v2 and resnet50 with random seeded weights, exported here.
# Every figure is measured REPEATS times; the report gives the median of the runs with min/max.
# The target ratios come from paired rounds (each round times both sides back to back), because
# this machine's speed drifts by tens of percent within a minute.
# The service runs as the container image runs it: tcmalloc preloaded, MALLOC_ARENA_MAX=2, the GC's
# young-generation budget at 32 MiB.
# Writes docs/performance.md (tables, ratios against the issue's targets) and bench/results/raw.json
# (every run's figure).
#
# Usage: bench/run.sh [REPEATS=3]
#   Installs Debian's python3-torch, python3-torchvision, python3-onnx, OpenBLAS, hey, tcmalloc and gcc when missing.
#   QUICK=1 shortens every measurement (for trying the script, not for numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}; port=${PORT:-5098}; base="http://127.0.0.1:$port"
quick=${QUICK:-0}; scale() { if ((quick)); then echo $(( $1 / 5 > 3 ? $1 / 5 : 3 )); else echo "$1"; fi; }
threads=$(nproc)
work=$(mktemp -d); raw=bench/results/last-run; rm -rf "$raw"; mkdir -p "$raw" # raw outputs, kept (git-ignored)

need=()
/usr/bin/python3 -c "import torch, torchvision, onnx" 2>/dev/null || need+=(python3-torch python3-torchvision python3-onnx)
command -v hey >/dev/null || need+=(hey)
# Debian's PyTorch calls the system BLAS for its linear layers; the reference BLAS would make every
# transformer baseline 50x slower than it need be, so OpenBLAS is the one installed (and chosen).
[[ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ]] || need+=(libopenblas0-pthread)
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[[ -e $tcmalloc ]] || need+=(libtcmalloc-minimal4)
command -v gcc >/dev/null || need+=(gcc)
if ((${#need[@]})); then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
# PyTorch at its best here, given what the service gets: tcmalloc, as the service runs (glibc's
# malloc gave PyTorch runs of page faults: resnet18's guided backprop 42-98 ms by turns within one
# process, 44-48 ms steady with tcmalloc), and its BLAS on the calling thread (OpenBLAS's own pool
# keeps spinning after a call, taking a core from PyTorch's OpenMP threads: ViT-B/16's forward
# 708 ms against 380 ms with both).
python="env OPENBLAS_NUM_THREADS=1 LD_PRELOAD=$tcmalloc /usr/bin/python3"

echo "== building (Release)"
dotnet build src/Api -c Release -v quiet -nologo >/dev/null
dotnet build bench/InProcess -c Release -v quiet -nologo >/dev/null
in_process="dotnet bench/InProcess/bin/Release/net10.0/in-process.dll"

# The host's float32 peak, on a quiet machine before anything else runs: the report gives each
# pass's rate against it (a pass's floating-point operations from the model's multiply-adds).
echo "== float32 peak"
gcc -O3 -pthread bench/fma_peak.c -o "$work/fma_peak"
"$work/fma_peak" > "$raw/fma_peak.jsonl"
engine_env=(env LD_PRELOAD=$tcmalloc MALLOC_ARENA_MAX=2 DOTNET_GCgen0size=0x2000000) # the explain engine, in-process or served, as the image runs it

archs=(resnet18 mobilenet_v2 resnet50)
echo "== PyTorch $($python -c 'import torch; print(torch.__version__)'): export and time (${threads} threads)"
for ((r = 1; r <= repeats; r++)); do
  $python bench/torch_baseline.py "$work/models" "$(scale 30)" "$threads" resnet18 mobilenet_v2 2>/dev/null
  $python bench/torch_baseline.py "$work/models" "$(scale 30)" "$threads" --latency-only resnet50 2>/dev/null
  for arch in "${archs[@]}"; do cp "$work/models/$arch/torch.json" "$raw/torch.$arch.$r.json"; done
done

echo "== service"
"${engine_env[@]}" ASPNETCORE_URLS=$base Saliency__ModelStore="$work/store" Saliency__SeedDemoModels=false \
  Saliency__RateLimit__PermitsPerSecond=0 Saliency__Explain__CacheMegabytes=0 Logging__LogLevel__Default=Warning \
  dotnet src/Api/bin/Release/net10.0/SaliencyService.Api.dll > "$work/service.log" 2>&1 &
service=$!
trap 'kill $service 2>/dev/null; wait $service 2>/dev/null; rm -rf "$work"' EXIT
until curl -sf "$base/health/ready" >/dev/null; do sleep 1; done
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$service/status"; }

source bench/multipart.sh
type=$multipart_type
body image samples/rocket.jpg "$work/jpeg.body"
# hey: NAME REQUESTS|DURATION CONCURRENCY BODY PATH -> raw/NAME.csv (every request, for a count)
# or raw/NAME.txt (hey's summary, for a duration); any non-200 answer stops the run
hey_run() {
  if [[ $2 == *s ]]; then
    hey -z "$2" -c "$3" -m POST -T "$type" -D "$4" "$base$5" > "$raw/$1.txt"
    grep -q '\[200\]' "$raw/$1.txt" && ! grep -qE '^\s+\[[^2][0-9][0-9]\]' "$raw/$1.txt" || { echo "non-200 responses in $1:"; cat "$raw/$1.txt"; exit 1; }
  else
    hey -n "$2" -c "$3" -m POST -T "$type" -D "$4" -o csv "$base$5" > "$raw/$1.csv"
    awk -F, 'NR > 1 && $7 != 200 { bad++ } END { exit bad > 0 }' "$raw/$1.csv" || { echo "non-200 responses in $1"; exit 1; }
  fi
}

for arch in "${archs[@]}"; do
  models="$work/models/$arch"
  tensor=$models/tensor.body
  body tensor "$models/input.npy" "$tensor"
  echo "== $arch"
  for ((r = 1; r <= repeats; r++)); do
    # import, measured by the client; its Server-Timing splits upload, isolated check and build
    [[ $r -gt 1 ]] && curl -sf -o /dev/null -X DELETE "$base/v1/models/$arch"
    curl -sf -D "$raw/import.$arch.$r.headers" -o "$raw/descriptor.$arch.json" -w '%{time_total}\n' -F "file=@$models/model.onnx" -F "name=$arch" \
      -F "manifest=<$models/model.json" "$base/v1/models" > "$raw/import.$arch.$r.txt"
    if [[ $arch == "${archs[0]}" && $r -eq 1 ]]; then
      # The floor under predict ÷ bare: the same upload to a model that does next to nothing, timed
      # in the blocks below (HTTP, the multipart body and the answer, without an engine). Imported
      # after the first import, which the import row times straight after the service's start.
      /usr/bin/python3 bench/http_floor_model.py "$work/http_floor.onnx"
      curl -sf -o /dev/null -F "file=@$work/http_floor.onnx" -F name=http-floor -F "manifest=<$models/model.json" "$base/v1/models"
    fi
    # warm-up: tiered JIT settles after a few hundred requests (measured: ~20 ms of JIT per request before)
    hey_run warm.$arch.$r "$(scale 200)" 1 "$tensor" "/v1/models/$arch/predict"
    hey_run warm_jpeg.$arch.$r "$(scale 50)" 1 "$work/jpeg.body" "/v1/models/$arch/predict"
    hey_run warm_explain.$arch.$r "$(scale 20)" 1 "$tensor" "/v1/models/$arch/explain?format=npy"
    hey_run predict_tensor.$arch.$r "$(scale 60)" 1 "$tensor" "/v1/models/$arch/predict"
    hey_run predict_jpeg.$arch.$r "$(scale 60)" 1 "$work/jpeg.body" "/v1/models/$arch/predict"
    hey_run explain_guided_backprop.$arch.$r "$(scale 30)" 1 "$tensor" "/v1/models/$arch/explain?format=npy"
    hey_run explain_gradient.$arch.$r "$(scale 30)" 1 "$tensor" "/v1/models/$arch/explain?method=gradient&format=npy"
    hey_run explain_guided_backprop_png.$arch.$r "$(scale 30)" 1 "$tensor" "/v1/models/$arch/explain?format=png"
    "${engine_env[@]}" $in_process mirror "$models/model.onnx" "$models/input.npy" "$(scale 20)" guided-backprop,gradient > "$raw/mirror.$arch.$r.jsonl"
    "${engine_env[@]}" $in_process stages "$models/model.onnx" "$models/input.npy" "$(scale 20)" > "$raw/stages.$arch.$r.jsonl"
    # paired rounds: in-process ORT / HTTP predict / HTTP explain, and PyTorch / HTTP explain, back to back
    $in_process paired "$models/model.onnx" "$models/input.npy" "$base/v1/models/$arch" "$(scale 40)" > "$raw/paired_ort.$arch.$r.jsonl"
    # The issue's own method, paired by blocks: sequences of keep-alive requests (hey -c 1), the bare
    # session's loop (a default session, all cores) and PyTorch's guided backprop loop, back to back,
    # each side warm within its block
    if [[ $arch != resnet50 ]]; then
      for ((b = 1; b <= $(scale 5); b++)); do
        hey_run block_predict.$arch.$r.$b "$(scale 100)" 1 "$tensor" "/v1/models/$arch/predict"
        hey_run block_guided_backprop.$arch.$r.$b "$(scale 40)" 1 "$tensor" "/v1/models/$arch/explain?format=npy"
        hey_run block_http_floor.$arch.$r.$b "$(scale 100)" 1 "$tensor" "/v1/models/http-floor/predict"
        $in_process bare "$models/model.onnx" "$models/input.npy" 2 1 > "$raw/block_bare.$arch.$r.$b.jsonl"
        $python bench/torch_baseline.py --block "$work/models" "$(scale 40)" "$threads" "$arch" > "$raw/block_torch.$arch.$r.$b.json" 2>/dev/null
      done
    fi
    latency_only=(); [[ $arch == resnet50 ]] && latency_only=(--latency-only)
    $python bench/torch_baseline.py --paired "$base" "$work/models" "$(scale 30)" "$threads" "${latency_only[@]}" "$arch" 2>/dev/null
    cp "$models/paired.json" "$raw/paired_torch.$arch.$r.json"
    [[ $arch == resnet50 ]] && continue # the large model: latency and import only
    hey_run explain_ig50.$arch.$r "$(scale 5)" 1 "$tensor" "/v1/models/$arch/explain?method=integrated-gradients&steps=50&format=npy"
    hey_run explain_smoothgrad25.$arch.$r "$(scale 5)" 1 "$tensor" "/v1/models/$arch/explain?method=smoothgrad&base=guided-backprop&samples=25&noise=0.15&seed=1&format=npy"
    for c in 1 4 16; do
      hey_run throughput_tensor_c$c.$arch.$r "$(scale 10)s" "$c" "$tensor" "/v1/models/$arch/predict"
    done
    $in_process ort "$models/model.onnx" "$models/input.npy" "$(scale 10)" 1,4,16 > "$raw/ort.$arch.$r.jsonl"
  done
done

echo "== memory (resnet18 guided backprop)"
tensor=$work/models/resnet18/tensor.body
hey_run memory_warmup 100 1 "$tensor" "/v1/models/resnet18/explain?format=npy"
echo "{\"after_100\": $(rss_mib)," > "$raw/memory.json"
hey_run memory_rest 900 2 "$tensor" "/v1/models/resnet18/explain?format=npy"
echo "\"after_1000\": $(rss_mib)}" >> "$raw/memory.json"

# Issue 18's architectures: a vision transformer and ConvNeXt, explained over HTTP against PyTorch
# (latency only: PyTorch 1.13 takes seconds per ViT backward here).
modern=(vit_b_16 convnext_tiny)
echo "== ${modern[*]}"
for ((r = 1; r <= repeats; r++)); do
  $python bench/torch_baseline.py "$work/models" "$(scale 5)" "$threads" --latency-only "${modern[@]}" 2>/dev/null
  for arch in "${modern[@]}"; do
    models="$work/models/$arch"; cp "$models/torch.json" "$raw/torch.$arch.$r.json"
    body tensor "$models/input.npy" "$models/tensor.body"
    [[ $r -gt 1 ]] && curl -sf -o /dev/null -X DELETE "$base/v1/models/$arch"
    curl -sf -D "$raw/import.$arch.$r.headers" -o "$raw/descriptor.$arch.json" -w '%{time_total}\n' -F "file=@$models/model.onnx" -F "name=$arch" \
      -F "manifest=<$models/model.json" "$base/v1/models" > "$raw/import.$arch.$r.txt"
    hey_run warm.$arch.$r "$(scale 20)" 1 "$models/tensor.body" "/v1/models/$arch/explain?format=npy"
    hey_run predict_tensor.$arch.$r "$(scale 20)" 1 "$models/tensor.body" "/v1/models/$arch/predict"
    for method in guided-backprop gradient grad-cam; do
      hey_run "explain_${method//-/_}.$arch.$r" "$(scale 10)" 1 "$models/tensor.body" "/v1/models/$arch/explain?method=$method&format=npy"
    done
    [[ $r -lt $repeats ]] && continue
    curl -sf -o /dev/null -X DELETE "$base/v1/models/$arch" # the store keeps the last run's models only while measured
  done
done

curl -sf "$base/metrics" > "$raw/metrics.txt"
mkdir -p bench/results
$python bench/summarize.py "$raw" "$repeats" bench/results/raw.json > docs/performance.md
echo "== wrote docs/performance.md and bench/results/"
