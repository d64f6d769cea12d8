#!/usr/bin/env python3
"""Turns the raw files of bench/run.sh into docs/performance.md (stdout) and one JSON of every
run's figures. A figure is the median of its runs, shown with the runs' min and max.

Usage: summarize.py RAW_DIR REPEATS RAW_JSON_OUT
"""
import functools
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

import service_races

raw, repeats, raw_out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = range(1, repeats + 1)


@functools.cache
def read_json(name):
    """A raw .json file, or the list of a .jsonl file's lines; each file is read once."""
    with open(os.path.join(raw, name)) as f:
        return json.load(f) if name.endswith(".json") else [json.loads(line) for line in f]


@functools.cache
def hey(name):
    """p50 latency (ms) of a request-count run (hey's CSV), or requests/s of a duration run (its summary)."""
    csv = os.path.join(raw, name + ".csv")
    if os.path.exists(csv):
        with open(csv) as f:
            times = [float(line.split(",")[0]) * 1000 for line in f.read().splitlines()[1:] if line]
        return {"p50_ms": statistics.median(times)}
    with open(os.path.join(raw, name + ".txt")) as f:
        return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", f.read()).group(1))}


def torch_ms(arch, r, key):
    return statistics.median(read_json(f"torch.{arch}.{r}.json")["ms"][key])


def ort(arch, r):
    return {row["concurrency"]: row for row in read_json(f"ort.{arch}.{r}.jsonl")}


def mirror(arch, r):
    """The in-process explain engine's lines, by method, phase, or "engines METHOD"."""
    return {row.get("method") or row.get("phase") or "engines " + row["engines"]: row for row in read_json(f"mirror.{arch}.{r}.jsonl")}


def paired_ort(arch, r):
    """Paired rounds of in-process ORT, HTTP predict and HTTP explain: p50s by name, per-round ratio medians."""
    rows = read_json(f"paired_ort.{arch}.{r}.jsonl")
    return ({row["paired"]: row["p50_ms"] for row in rows if "paired" in row},
            {row["ratio"]: row["median"] for row in rows if "ratio" in row})


def blocks(arch, r):
    """The paired blocks (hey -c 1 sequences, the bare loop and PyTorch's loop, back to back): each block's p50s (ms)."""
    found = []
    b = 1
    while exists(f"block_bare.{arch}.{r}.{b}.jsonl"):
        found.append({"predict": hey(f"block_predict.{arch}.{r}.{b}")["p50_ms"],
                      "guided_backprop": hey(f"block_guided_backprop.{arch}.{r}.{b}")["p50_ms"],
                      "bare": read_json(f"block_bare.{arch}.{r}.{b}.jsonl")[0]["p50_ms"]})
        if exists(f"block_torch.{arch}.{r}.{b}.json"):
            found[-1]["torch"] = statistics.median(read_json(f"block_torch.{arch}.{r}.{b}.json")["guided_backprop_ms"])
        if exists(f"block_http_floor.{arch}.{r}.{b}.csv"):
            found[-1]["http_floor"] = hey(f"block_http_floor.{arch}.{r}.{b}")["p50_ms"]
        b += 1
    return found


def paired_torch(arch, r, key):
    """PyTorch vs HTTP rounds of one method: (torch p50, HTTP p50, median of the per-round ratios)."""
    rounds = read_json(f"paired_torch.{arch}.{r}.json")["rounds"].get(key)
    if rounds is None:
        return None
    ratios = [h / t for h, t in zip(rounds["http_ms"], rounds["torch_ms"])]
    return statistics.median(rounds["torch_ms"]), statistics.median(rounds["http_ms"]), statistics.median(ratios)


def exists(name):
    return os.path.exists(os.path.join(raw, name))


def import_stage(arch, r, stage):
    """One stage of an import from its answer's Server-Timing header (ms), or None without one."""
    name = f"import.{arch}.{r}.headers"
    if not exists(name):
        return None
    header = re.search(r"^server-timing:(.*)$", open(os.path.join(raw, name)).read(), re.I | re.M)
    found = header and re.search(rf"(?:^|,)\s*{stage}(?:;[^,]*)?;dur=([0-9.]+)", header.group(1))
    return float(found.group(1)) if found else None


figures = {}  # key -> list of per-run values


def add(key, values):
    figures[key] = [v for v in values if v is not None]


measured = {os.path.basename(p).split(".")[1] for p in glob.glob(os.path.join(raw, "torch.*.1.json"))}
archs = [a for a in ["resnet18", "mobilenet_v2", "resnet50"] if a in measured]
modern = [a for a in ["vit_b_16", "convnext_tiny"] if a in measured]  # issue 18's transformer and ConvNeXt rows
for a in modern:
    add(f"{a}.import_s", [float(open(os.path.join(raw, f"import.{a}.{r}.txt")).read()) for r in runs])
    for name in ["predict_tensor", "explain_guided_backprop", "explain_gradient", "explain_grad_cam"]:
        add(f"{a}.{name}_ms", [hey(f"{name}.{a}.{r}")["p50_ms"] for r in runs])
    for key in ["predict", "gradient", "guided_backprop"]:
        add(f"{a}.torch_{key}_ms", [torch_ms(a, r, key) for r in runs])
for a in archs:
    if exists(f"stages.{a}.1.jsonl"):
        for row in (x for x in read_json(f"stages.{a}.1.jsonl") if "stage" in x):
            key = row["stage"].split(" (")[0].replace(", ", "_").replace(" ", "_").lower()
            # (a stage a run may leave out: Winograd predictions where the kernel won no convolution)
            add(f"{a}.stage_{key}_ms", [next((x["p50_ms"] for x in read_json(f"stages.{a}.{r}.jsonl") if x.get("stage") == row["stage"]), None) for r in runs])
    add(f"{a}.import_s", [float(open(os.path.join(raw, f"import.{a}.{r}.txt")).read()) for r in runs])
    for stage in ["upload", "check", "build"]:
        add(f"{a}.import_{stage}_ms", [import_stage(a, r, stage) for r in runs])
    for name in ["predict_tensor", "predict_jpeg", "explain_guided_backprop", "explain_gradient", "explain_guided_backprop_png",
                 "explain_ig50", "explain_smoothgrad25"]:
        if exists(f"{name}.{a}.1.csv"):
            add(f"{a}.{name}_ms", [hey(f"{name}.{a}.{r}")["p50_ms"] for r in runs])
    for key in ["predict", "gradient", "guided_backprop", "ig50_b16", "ig50_b50", "smoothgrad25_b16"]:
        if key in read_json(f"torch.{a}.1.json")["ms"]:
            add(f"{a}.torch_{key}_ms", [torch_ms(a, r, key) for r in runs])
    if exists(f"mirror.{a}.1.jsonl"):
        add(f"{a}.engine_guided_backprop_ms", [mirror(a, r)["guided-backprop"]["p50_ms"] for r in runs])
        add(f"{a}.engine_gradient_ms", [mirror(a, r)["gradient"]["p50_ms"] for r in runs])
        add(f"{a}.mirror_forward_ms", [mirror(a, r)["forward"]["p50_ms"] for r in runs])
        add(f"{a}.mirror_forward_backward_ms", [mirror(a, r)["forward and backward, Gradient"]["p50_ms"] for r in runs])
        add(f"{a}.import_analysis_ms", [mirror(a, r)["import-analysis"]["ms"] for r in runs])
        for method, key in [("guided-backprop", "guided_backprop"), ("integrated-gradients", "ig50")]:
            if f"engines {method}" in mirror(a, 1):
                add(f"{a}.engine_ort_{key}_ms", [mirror(a, r)[f"engines {method}"]["ort_p50_ms"] for r in runs])
                add(f"{a}.engine_autograd_{key}_ms", [mirror(a, r)[f"engines {method}"]["autograd_p50_ms"] for r in runs])
                add(f"{a}.engine_ort_over_autograd_{key}", [mirror(a, r)[f"engines {method}"]["ratio"] for r in runs])
    if exists(f"ort.{a}.1.jsonl"):
        for c in [1, 4, 16]:
            add(f"{a}.http_rps_c{c}", [hey(f"throughput_tensor_c{c}.{a}.{r}")["rps"] for r in runs])
            add(f"{a}.ort_rps_c{c}", [ort(a, r)[c]["rps"] for r in runs])
        add(f"{a}.ort_p50_ms", [ort(a, r)[1]["p50_ms"] for r in runs])
        add(f"{a}.ort_best_rps", [max(ort(a, r)[c]["rps"] for c in [1, 4, 16]) for r in runs])
        add(f"{a}.http_best_rps", [max(hey(f"throughput_tensor_c{c}.{a}.{r}")["rps"] for c in [1, 4, 16]) for r in runs])

    if exists(f"paired_ort.{a}.1.jsonl"):
        add(f"{a}.paired_ort_ms", [paired_ort(a, r)[0]["ort"] for r in runs])
        add(f"{a}.paired_predict_ms", [paired_ort(a, r)[0]["http_predict"] for r in runs])
        add(f"{a}.paired_guided_backprop_ms", [paired_ort(a, r)[0]["http_guided_backprop"] for r in runs])
        add(f"{a}.paired_predict_over_ort", [paired_ort(a, r)[1]["predict_over_ort"] for r in runs])
        add(f"{a}.paired_guided_backprop_over_predict", [paired_ort(a, r)[1]["guided_backprop_over_predict"] for r in runs])
        for row in read_json(f"paired_ort.{a}.1.jsonl"):
            if "server_timing" in row:
                kind = "predict" if row["server_timing"].startswith("/predict") else \
                    "grad_cam" if "grad-cam" in row["server_timing"] else "guided_backprop"
                for stage in [k for k in row if k.endswith("_p50_ms")]:
                    add(f"{a}.server_{kind}_{stage}", [next((x.get(stage) for x in read_json(f"paired_ort.{a}.{r}.jsonl")
                                                            if x.get("server_timing") == row["server_timing"]), None) for r in runs])
        if "bare_ort" in paired_ort(a, 1)[0]:
            add(f"{a}.paired_bare_ort_ms", [paired_ort(a, r)[0]["bare_ort"] for r in runs])
            add(f"{a}.paired_grad_cam_ms", [paired_ort(a, r)[0]["http_grad_cam"] for r in runs])
            for key in ["predict_over_bare_ort", "guided_backprop_over_bare_ort", "grad_cam_over_predict"]:
                add(f"{a}.paired_{key}", [paired_ort(a, r)[1][key] for r in runs])
    if exists(f"block_bare.{a}.1.1.jsonl"):
        by_run = [blocks(a, r) for r in runs]
        for key, of in [("predict_ms", lambda x: x["predict"]), ("guided_backprop_ms", lambda x: x["guided_backprop"]),
                        ("bare_ms", lambda x: x["bare"]), ("predict_over_bare", lambda x: x["predict"] / x["bare"]),
                        ("guided_backprop_over_predict", lambda x: x["guided_backprop"] / x["predict"]),
                        ("guided_backprop_over_bare", lambda x: x["guided_backprop"] / x["bare"])]:
            add(f"{a}.block_{key}", [statistics.median(of(x) for x in run) for run in by_run])
        if all("http_floor" in x for run in by_run for x in run):
            for key, of in [("http_floor_ms", lambda x: x["http_floor"]), ("http_floor_over_bare", lambda x: x["http_floor"] / x["bare"])]:
                add(f"{a}.block_{key}", [statistics.median(of(x) for x in run) for run in by_run])
        if all("torch" in x for run in by_run for x in run):
            for key, of in [("torch_guided_backprop_ms", lambda x: x["torch"]),
                            ("guided_backprop_over_torch", lambda x: x["guided_backprop"] / x["torch"])]:
                add(f"{a}.block_{key}", [statistics.median(of(x) for x in run) for run in by_run])
    if exists(f"paired_torch.{a}.1.json"):
        for key in ["guided_backprop", "gradient", "ig50", "smoothgrad25"]:
            if paired_torch(a, 1, key) is None:
                continue
            add(f"{a}.paired_torch_{key}_ms", [paired_torch(a, r, key)[0] for r in runs])
            add(f"{a}.paired_http_{key}_ms", [paired_torch(a, r, key)[1] for r in runs])
            add(f"{a}.paired_{key}_over_torch", [paired_torch(a, r, key)[2] for r in runs])
    if exists(f"ort.{a}.1.jsonl"):
        add(f"{a}.c16_over_ort_best", [hey(f"throughput_tensor_c16.{a}.{r}")["rps"] / max(ort(a, r)[c]["rps"] for c in [1, 4, 16])
                                       for r in runs])

memory = read_json("memory.json")
metrics = open(os.path.join(raw, "metrics.txt")).read()
batches = int(re.search(r"^saliency_predict_batches_total (\d+)", metrics, re.M).group(1))
samples = int(re.search(r"^saliency_predict_batched_samples_total (\d+)", metrics, re.M).group(1))


def med(key):
    return statistics.median(figures[key])


def show(key, digits=1):
    values = figures[key]
    m = statistics.median(values)
    return f"{m:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})" if len(values) > 1 else f"{m:.{digits}f}"


def check(ratio, target, at_most=True):
    ok = ratio <= target if at_most else ratio >= target
    return f"{'≤' if at_most else '≥'} {target}: {'met' if ok else 'MISSED'}"


def verdict(ratio, target, at_most=True):
    ok = ratio <= target if at_most else ratio >= target
    return f"{ratio:.2f}× ({'≤' if at_most else '≥'} {target}: {'met' if ok else 'MISSED'})"


def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return "?"


lscpu = dict(l.split(":", 1) for l in cmd(["lscpu"]).splitlines() if ":" in l)
cpu = lscpu.get("Model name", platform.processor()).strip()
cpu += f" (family {lscpu.get('CPU family', '?').strip()}, model {lscpu.get('Model', '?').strip()}; " \
       f"{'AVX-512' if 'avx512f' in lscpu.get('Flags', '') else 'AVX2' if 'avx2' in lscpu.get('Flags', '') else 'no AVX2'})"
mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
# bench/fma_peak.c on every core, with the widest vectors the CPU has
peak = max((row for row in read_json("fma_peak.jsonl") if row["threads"] == os.cpu_count()), key=lambda row: row["gflops"], default=None) \
    if exists("fma_peak.jsonl") else None


def rate(arch, passes, ms):
    """GFLOPS of `passes` times the model's convolution multiply-adds (a forward: 1; a forward and
    an input gradient: 2) in `ms`, and its share of the peak; "–" where either is unknown."""
    multiply_adds = read_json(f"torch.{arch}.1.json").get("multiply_adds") if exists(f"torch.{arch}.1.json") else None
    if not multiply_adds or not ms:
        return "–"
    gflops = 2 * passes * multiply_adds / ms / 1e6
    return f"{gflops:.0f}" + (f" ({gflops / peak['gflops']:.0%})" if peak else "")
torch_info = read_json("torch.resnet18.1.json")

out = []
w = out.append
w("# Performance")
w("")
w("Produced by `bench/run.sh " + str(repeats) + "` (the whole comparison in one run; raw figures of every run in "
  "`bench/results/raw.json`). Each figure: the median over " + str(repeats) + " runs, with (min–max) of the runs; "
  "latencies are p50 of sequential requests (hey, concurrency 1) or of in-process calls.")
w("")
w(f"Machine: {cpu}, {os.cpu_count()} cores, {mem_gib} GiB, {platform.platform()}"
  + (f"; float32 peak {peak['gflops']:.0f} GFLOPS on {peak['threads']} cores ({peak['isa'].upper()} fused multiply-adds alone, `bench/fma_peak.c`)" if peak else "") + ". "
  f"SaliencyService Release build (ONNX Runtime 1.31.0 CPU provider, TorchSharp 0.107.0 on libtorch 2.10.0), "
  f"service defaults except the explanation cache (off, so every explain is computed) and the rate limit (off), "
  f"run as the container image runs it (tcmalloc preloaded, `MALLOC_ARENA_MAX=2`). "
  f"PyTorch {torch_info['torch']} (Debian), {torch_info['threads']} threads, with tcmalloc preloaded as the service and its BLAS (OpenBLAS) on the calling thread: PyTorch's best here (`bench/run.sh` says why). "
  "Models: torchvision architectures with random seeded weights, exported to ONNX (opset 13, dynamic batch) by "
  "`bench/torch_baseline.py`; inputs 1×3×224×224 float32.")
w("")
w("Baselines, all in-process on the same machine in the same run:")
w("- **ONNX Runtime**: `bench/InProcess` (`in-process ort`) — one `InferenceSession` with the service's own session options "
  "(intra-op threads = cores, threads spinning within a run, not after it), a ready `OrtValue`, `Run` called by 1, 4 or 16 threads.")
w("- **PyTorch**: the same weights in eager PyTorch; guided backprop as Captum does it (backward hooks on the "
  "rectifier modules clamping the gradient), gradients w.r.t. the input only, IG and SmoothGrad batched.")
w("- **Paired rounds** (the target ratios): `bench/InProcess` (`in-process paired`) and `bench/torch_baseline.py --paired` "
  "time the baseline and the service back to back, round after round, on the same input.")
w("- **The service's own engine without HTTP**: `bench/InProcess` (`in-process mirror`) — the explain engine "
  "called in-process as the service calls it; its input gradients on ONNX Runtime (the default) and on libtorch "
  "autograd (the fallback) side by side; the libtorch mirror's forward and forward + backward alone.")
w("")
w("The service's figures are whole HTTP requests: multipart upload, `.npy` or JPEG decoding, the work, "
  "JSON or `.npy` encoding.")
w("")
w("## Targets (resnet18; issue 19, performance round 2)")
w("")
w("Each ratio is measured side by side: every round times both sides back to back (the order turns "
  "each round), the ratio is the median of the rounds' ratios, and the figure shown is the median over "
  f"the {repeats} runs with their (min–max). This machine's speed drifts by tens of percent within a minute, so "
  "figures measured minutes apart (the tables further down) can differ more than the two sides do. "
  "The bare ONNX Runtime baseline is a default session (spinning on) with intra-op threads = cores; in the paired rounds its threads stop spinning when its run ends, so they take no core from the service measured next. "
  "Two kinds of rounds: *blocks*, the issue's own method (a sequence of keep-alive requests, `hey -c 1`, 100 predictions "
  "and 40 guided maps, then the bare session's loop for 2 s and PyTorch's guided backprop 40 times, each in its own process; five blocks a run), where each side is warm within its block; "
  "and *single requests in turn* (one bare run, one prediction, one map, ... each round), where each request follows "
  "another kind of work that has taken the caches: harsher, and what the bench measured first. "
  "Against PyTorch each call in turn starts 50 ms after the last one ended: PyTorch's OpenMP threads spin for a few "
  "milliseconds after its call, and a map sent at once shared the two cores with them (15% slower).")
w("")
w("| target | side by side, p50 | ratio |")
w("|---|---|---|")
a = "resnet18"


def target(label, ours, theirs, ratio, limit, unit="ms", digits=1, at_most=True):
    if ratio not in figures:
        return
    w(f"| {label} | {show(ours, digits)} {unit} vs {show(theirs, digits)} {unit} | {show(ratio, 2)}× ({check(med(ratio), limit, at_most)}) |")


# Targets measured both ways: by the method (blocks) and in single requests in turn. Each row:
# the goal, how its blocks were run, then the names of resnet18's figures: (ours, theirs, ratio) by
# blocks, and the same in single requests.
BOTH_WAYS = [
    ("HTTP predict (tensor) p50 ≤ 1.10× bare ONNX Runtime `Run`", "blocks: hey -c 1, then the bare loop", 1.10,
     "block_predict_ms block_bare_ms block_predict_over_bare", "paired_predict_ms paired_bare_ort_ms paired_predict_over_bare_ort"),
    ("guided backprop p50 ≤ 2.0× our predict", "blocks: hey -c 1", 2.0,
     "block_guided_backprop_ms block_predict_ms block_guided_backprop_over_predict",
     "paired_guided_backprop_ms paired_predict_ms paired_guided_backprop_over_predict"),
    ("guided backprop p50 ≤ 2.2× a bare ONNX Runtime forward", "blocks: hey -c 1, then the bare loop", 2.2,
     "block_guided_backprop_ms block_bare_ms block_guided_backprop_over_bare",
     "paired_guided_backprop_ms paired_bare_ort_ms paired_guided_backprop_over_bare_ort"),
    ("guided backprop p50 ≤ 0.5× PyTorch hooks", "blocks: hey -c 1, then PyTorch's loop in its own process", 0.5,
     "block_guided_backprop_ms block_torch_guided_backprop_ms block_guided_backprop_over_torch",
     "paired_http_guided_backprop_ms paired_torch_guided_backprop_ms paired_guided_backprop_over_torch"),
]
for goal, method, limit, blocks, singles in BOTH_WAYS:
    target(f"{goal}, the issue's method ({method})", *(f"{a}.{key}" for key in blocks.split()), limit)
    target(f"{goal}, single requests in turn", *(f"{a}.{key}" for key in singles.split()), limit)
target("integrated gradients (50 steps) ≤ 0.7× PyTorch batched (its faster of 16 and 50 per batch, each round)",
       a + ".paired_http_ig50_ms", a + ".paired_torch_ig50_ms", a + ".paired_ig50_over_torch", 0.7, digits=0)
target("integrated gradients (50 steps) on mobilenet_v2 ≤ 1.0× PyTorch batched", "mobilenet_v2.paired_http_ig50_ms",
       "mobilenet_v2.paired_torch_ig50_ms", "mobilenet_v2.paired_ig50_over_torch", 1.0, digits=0)
target("SmoothGrad (25 guided samples) ≤ 0.71× PyTorch batched, i.e. 1.4× faster (its faster of 16 and 25 per batch, each round)",
       a + ".paired_http_smoothgrad25_ms", a + ".paired_torch_smoothgrad25_ms", a + ".paired_smoothgrad25_over_torch", 0.714, digits=0)
target("SmoothGrad (25 guided samples) on mobilenet_v2 ≤ 1.0× PyTorch batched", "mobilenet_v2.paired_http_smoothgrad25_ms",
       "mobilenet_v2.paired_torch_smoothgrad25_ms", "mobilenet_v2.paired_smoothgrad25_over_torch", 1.0, digits=0)
target("Grad-CAM p50 ≤ 2.5× our predict", a + ".paired_grad_cam_ms", a + ".paired_predict_ms", a + ".paired_grad_cam_over_predict", 2.5)
target("throughput at concurrency 16 ≥ 0.9× ORT's best (same run, back to back)", a + ".http_rps_c16", a + ".ort_best_rps",
       a + ".c16_over_ort_best", 0.9, unit="req/s", at_most=False)
stages = ", ".join(f"{stage} {show(f'{a}.import_{stage}_ms', 0)} ms" for stage in ["upload", "check", "build"] if figures.get(f"{a}.import_{stage}_ms"))
# Run 1 imports straight after the service's start (its spare child still warming up); later runs after a delete.
each = ", ".join(f"{v:.2f}" for v in figures[a + ".import_s"])
w(f"| import of resnet18 over HTTP ≤ 1.0 s | {show(a + '.import_s', 2)} s{f' ({stages})' if stages else ''}; "
  f"each run: {each} s, the first straight after the service's start, the others after a delete | {check(med(a + '.import_s'), 1.0)} |")
ratio = memory["after_1000"] / memory["after_100"]
w(f"| RSS after 1,000 explains within 10% of after 100 | {memory['after_1000']:.0f} MiB vs {memory['after_100']:.0f} MiB | "
  f"{verdict(ratio, 1.10)} |")
w("")
if figures.get(f"{a}.block_http_floor_ms"):
    w(f"What HTTP alone costs here: the same upload to a model that does next to nothing (GlobalAveragePool, "
      f"`bench/http_floor_model.py`), in the same blocks, answers in {show(a + '.block_http_floor_ms', 2)} ms p50, "
      f"{show(a + '.block_http_floor_over_bare', 3)} of the bare forward: predict ÷ bare cannot read under "
      f"{1 + med(a + '.block_http_floor_over_bare'):.2f}× on this host.")
    w("")
if f"{a}.server_predict_predict_p50_ms" in figures:
    w("Inside the service, from its `Server-Timing` header over the same paired rounds (medians, ms): `read` is the "
      "multipart body received and the `.npy` decoded, `queue` the wait for the batch or slot, `predict`/`explain` the "
      "engine; the client's figure minus their sum is HTTP, routing and writing the answer.")
    w("")
    w("| model | request | client p50 | read | queue | engine | HTTP and writing |")
    w("|---|---|---|---|---|---|---|")
    for m in archs:
        for kind, client, engine in [("predict", "paired_predict_ms", "predict"), ("guided_backprop", "paired_guided_backprop_ms", "explain"),
                                     ("grad_cam", "paired_grad_cam_ms", "explain")]:
            keys = [f"{m}.server_{kind}_{st}_p50_ms" for st in ["read", "queue", engine]]
            if all(k in figures for k in keys) and f"{m}.{client}" in figures:
                rest = med(f"{m}.{client}") - sum(med(k) for k in keys)
                w(f"| {m} | {kind.replace('_', ' ')} | {med(m + '.' + client):.1f} | " + " | ".join(f"{med(k):.2f}" for k in keys) + f" | {rest:.2f} |")
    w("")
if f"{a}.stage_forward_and_backward_guidedbackprop_ms" in figures:
    w("Where a gradient map's time goes on ONNX Runtime (`in-process stages`, no HTTP): the served forward alone, and one pass "
      "(forward, target chosen, backward: one session per rule where the model's opset allows, else the recording forward and the backward graph) per rule.")
    w("")
    w("The rates are floating-point operations per second: a forward's are its convolutions' and linear layers' multiply-adds "
      "(counted by `bench/torch_baseline.py`) times 2, a pass's twice a forward's (an input gradient repeats each convolution's "
      "multiply-adds), against the float32 peak above.")
    w("")
    # The served forward with Winograd predictions (off by default): a column where the run measured it.
    winograd = any(figures.get(f"{m}.stage_served_forward_winograd_predictions_ms") for m in archs)
    if winograd:
        w("With `Saliency:OnnxRuntime:WinogradPredictions` (off by default) the served forward runs the stride-1 3×3 convolutions "
          "that the Winograd kernel wins here as the kernel (\"–\": it won none).")
        w("")
    w("| model | served forward (ms) | " + ("with Winograd predictions (ms) | " if winograd else "")
      + "pass, gradient (ms) | pass, guided (ms) | guided pass ÷ served | served forward, GFLOPS | guided pass, GFLOPS |")
    w("|---|---|---|---|---|---|---|" + ("---|" if winograd else ""))
    for m in archs:
        if f"{m}.stage_served_forward_ms" in figures:
            served, guided = med(f"{m}.stage_served_forward_ms"), med(f"{m}.stage_forward_and_backward_guidedbackprop_ms")
            kernel = f"{m}.stage_served_forward_winograd_predictions_ms"
            w(f"| {m} | {show(m + '.stage_served_forward_ms')} | "
              + (f"{show(kernel) if figures.get(kernel) else '–'} | " if winograd else "")
              + f"{show(m + '.stage_forward_and_backward_gradient_ms')} | "
              f"{show(m + '.stage_forward_and_backward_guidedbackprop_ms')} | {guided / served:.2f}× | {rate(m, 1, served)} | {rate(m, 2, guided)} |")
    w("")
    # The one-sample pass's 3×3 convolutions run as the engine's Winograd kernel only where it won its race against ONNX Runtime's Conv here.
    races = [(m, x) for m in archs if exists(f"stages.{m}.1.jsonl") for x in read_json(f"stages.{m}.1.jsonl") if "winograd_race" in x]
    if races:
        def race_ratio(value):
            return f"{value:.2f}" if isinstance(value, (int, float)) else "not raced"
        w("The Winograd kernel's races on this host (`WinogradRace`, the first run's `stages` process; the kernel's time ÷ ONNX Runtime's Conv, "
          f"taken at ≤ 0.9: F(2×2) for a forward; F(4×4) for an input gradient up to 256×256 channels, F(2×2) past them), outputs×inputs×height×width: "
          + "; ".join(f"{m} {x['winograd_race']} forward F(2×2) {race_ratio(x['forward_tile2_ratio'])}, backward F(2×2) {race_ratio(x['backward_tile2_ratio'])}, "
                      f"F(4×4) {race_ratio(x['backward_tile4_ratio'])}" for m, x in races) + ".")
        w("")
    strided = [(m, x) for m in archs if exists(f"stages.{m}.1.jsonl") for x in read_json(f"stages.{m}.1.jsonl") if "strided_race" in x]
    if strided:
        w("The stride-2 forms' races (`WinogradRace.RaceStrided`, the same process; outputs×inputs×height×width of the convolution's input): "
          "the forward's time ÷ ONNX Runtime's strided Conv, taken at ≤ 0.9, and the transposed input gradient's ÷ the product and Col2Im it replaces, "
          "taken at ≤ 1: " + "; ".join(f"{m} {x['strided_race']} forward {x['forward_ratio']:.2f}, backward {x['backward_ratio']:.2f}" for m, x in strided) + ".")
        w("")
    # The service's own races: its /metrics at the end of the run (the races of its imports, after each answer).
    served = service_races.decisions(metrics)
    if served:
        w("The service's own races (its `/metrics`, `saliency_winograd_race_milliseconds`, at the end of the run; the kernel's time ÷ ONNX Runtime's "
          "as the race decides, the forward's charged the reorders): " + "; ".join(served) + ".")
        w("")
w("Side by side on the other models (same method):")
w("")
w("| model | predict ÷ bare ORT | predict ÷ ORT (service options) | guided backprop ÷ PyTorch | gradient ÷ PyTorch | IG(50) ÷ PyTorch | SmoothGrad(25) ÷ PyTorch | guided backprop ÷ predict | Grad-CAM ÷ predict |")
w("|---|---|---|---|---|---|---|---|---|")
for m in archs:
    cells = [show(f"{m}.{k}", 2) + "×" if f"{m}.{k}" in figures else "–" for k in
             ["paired_predict_over_bare_ort", "paired_predict_over_ort", "paired_guided_backprop_over_torch", "paired_gradient_over_torch",
              "paired_ig50_over_torch", "paired_smoothgrad25_over_torch", "paired_guided_backprop_over_predict", "paired_grad_cam_over_predict"]]
    w(f"| {m} | " + " | ".join(cells) + " |")
w("")
if modern:
    w("## Transformers and ConvNeXt (issue 18)")
    w("")
    w("torchvision ViT-B/16 and ConvNeXt-T with random seeded weights, exported at opset 13 (ViT with PyTorch's attention "
      "fast path off while exporting). Over HTTP (hey, concurrency 1, `.npy` answers) against eager PyTorch in-process; "
      "PyTorch's guided backprop hooks its rectifier modules, and these models have none, so it is its gradient.")
    w("")
    w("| model | predict p50 (ms) | guided backprop p50 (ms) | gradient p50 (ms) | Grad-CAM p50 (ms) | PyTorch predict (ms) | PyTorch gradient (ms) | guided backprop ÷ PyTorch | import (s) |")
    w("|---|---|---|---|---|---|---|---|---|")
    for m in modern:
        w(f"| {m} | {show(m + '.predict_tensor_ms')} | {show(m + '.explain_guided_backprop_ms')} | {show(m + '.explain_gradient_ms')} | "
          f"{show(m + '.explain_grad_cam_ms')} | {show(m + '.torch_predict_ms')} | {show(m + '.torch_gradient_ms')} | "
          f"{med(m + '.explain_guided_backprop_ms') / med(m + '.torch_guided_backprop_ms'):.2f}× | {show(m + '.import_s', 2)} |")
    w("")

for a in archs:
    w(f"## {a}")
    w("")
    w("Measured one after the other (each figure a median of its own runs, minutes apart from its baseline):")
    w("")
    w("| measure | SaliencyService (HTTP) | baseline | ratio |")
    w("|---|---|---|---|")

    def row(label, ours, theirs, name, digits=1):
        if ours not in figures or theirs not in figures:
            return
        w(f"| {label} | {show(ours, digits)} | {name} {show(theirs, digits)} | {med(ours) / med(theirs):.2f}× |")

    row("predict p50, tensor (ms)", f"{a}.predict_tensor_ms", f"{a}.ort_p50_ms", "ORT")
    row("predict p50, JPEG upload (ms)", f"{a}.predict_jpeg_ms", f"{a}.ort_p50_ms", "ORT (tensor)")
    row("predict p50, tensor (ms)", f"{a}.predict_tensor_ms", f"{a}.torch_predict_ms", "PyTorch")
    for c in [1, 4, 16]:
        row(f"throughput, concurrency {c} (req/s)", f"{a}.http_rps_c{c}", f"{a}.ort_rps_c{c}", "ORT")
    row("best throughput over 1/4/16 (req/s)", f"{a}.http_best_rps", f"{a}.ort_best_rps", "ORT")
    row("guided backprop p50, .npy (ms)", f"{a}.explain_guided_backprop_ms", f"{a}.torch_guided_backprop_ms", "PyTorch")
    row("gradient p50, .npy (ms)", f"{a}.explain_gradient_ms", f"{a}.torch_gradient_ms", "PyTorch")
    row("guided backprop, engine in-process (ms)", f"{a}.engine_guided_backprop_ms", f"{a}.torch_guided_backprop_ms", "PyTorch")
    row("gradient, engine in-process (ms)", f"{a}.engine_gradient_ms", f"{a}.torch_gradient_ms", "PyTorch")
    for key, name in [("guided_backprop", "guided backprop"), ("ig50", "integrated gradients, 50 steps")]:
        if f"{a}.engine_ort_{key}_ms" in figures:
            w(f"| {name}, in-process, input gradients on ONNX Runtime vs libtorch autograd, paired (ms) | "
              f"{show(f'{a}.engine_ort_{key}_ms', 0 if key == 'ig50' else 1)} | autograd {show(f'{a}.engine_autograd_{key}_ms', 0 if key == 'ig50' else 1)} "
              f"| {show(f'{a}.engine_ort_over_autograd_{key}', 2)}× |")
    row("mirror forward alone, in-process (ms)", f"{a}.mirror_forward_ms", f"{a}.torch_predict_ms", "PyTorch forward")
    row("mirror forward alone ÷ ORT forward", f"{a}.mirror_forward_ms", f"{a}.ort_p50_ms", "ORT")
    row("mirror forward + backward, in-process (ms)", f"{a}.mirror_forward_backward_ms", f"{a}.mirror_forward_ms", "its forward")
    row("guided backprop p50, PNG (ms)", f"{a}.explain_guided_backprop_png_ms", f"{a}.torch_guided_backprop_ms", "PyTorch (no picture)")
    row("guided backprop ÷ our predict", f"{a}.explain_guided_backprop_ms", f"{a}.predict_tensor_ms", "predict")
    row("integrated gradients, 50 steps (ms)", f"{a}.explain_ig50_ms", f"{a}.torch_ig50_b16_ms", "PyTorch, 16/batch", 0)
    row("integrated gradients, 50 steps (ms)", f"{a}.explain_ig50_ms", f"{a}.torch_ig50_b50_ms", "PyTorch, 50/batch", 0)
    row("SmoothGrad, 25 guided samples (ms)", f"{a}.explain_smoothgrad25_ms", f"{a}.torch_smoothgrad25_b16_ms", "PyTorch, 16/batch", 0)
    if f"{a}.explain_ig50_ms" in figures:
        w(f"| integrated gradients ÷ guided backprop (50 passes, batched) | {med(a + '.explain_ig50_ms') / med(a + '.explain_guided_backprop_ms'):.1f}× | | |")
    w(f"| import over HTTP: upload, isolated check, build (s) | {show(a + '.import_s', 2)} | | |")
    if f"{a}.import_analysis_ms" in figures:
        w(f"| the same checks in-process, no child (mirror, parity, float64 truth, ONNX Runtime backward; ms) | {show(a + '.import_analysis_ms', 0)} | | |")
    w("")

w("## Memory and batching")
w("")
w(f"- RSS of the service after 100 resnet18 guided-backprop explains: {memory['after_100']:.0f} MiB; after 1,000: "
  f"{memory['after_1000']:.0f} MiB ({(ratio - 1) * 100:+.1f}%). Every model of this page stays loaded meanwhile.")
if batches:
    w(f"- Dynamic batching over the whole run: {samples} predicted samples in {batches} ONNX Runtime runs "
      f"(mean batch {samples / batches:.2f}); sequential requests run alone, concurrent ones share runs.")
w("")

analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
if os.path.exists(analysis):
    w(open(analysis).read().rstrip())
    w("")

print("\n".join(out))
with open(raw_out, "w") as f:
    json.dump({"repeats": repeats, "figures": figures, "memory": memory,
               "batching": {"runs": batches, "samples": samples}}, f, indent=1)
