#!/usr/bin/env python3
"""The PyTorch side of bench/run.sh: exports torchvision architectures with random (seeded)
weights to ONNX for the service, and times in-process PyTorch doing what a user would do instead:

  predict          model(x) under no_grad
  gradient         forward + backward of the top logit, gradient w.r.t. the input
  guided_backprop  the same with Captum's method: backward hooks on every rectifier module that
                   clamp the incoming gradient at zero (ReLU and ReLU6 modules; Captum itself hooks
                   only nn.ReLU, which would leave mobilenet_v2 unguided)
  ig50_b16         integrated gradients, 50 steps, zero baseline, 16 steps per batch (the service's
                   Saliency:Explain:MaxBatch)
  ig50_b50         the same with all 50 steps in one batch (Captum's default internal_batch_size)
  smoothgrad25_b16 25 noisy guided-backprop samples (sigma 0.15 of the input range), 16 per batch

Every timing is a list of milliseconds per call after warm-up, one call at a time, with
torch.set_num_threads(THREADS): the same intra-op threads the service's libtorch gets.

Usage: torch_baseline.py OUT_DIR REPEATS THREADS [--latency-only] ARCH [ARCH ...]
  (--latency-only: predict, gradient and guided backprop only)
Writes OUT_DIR/ARCH/{model.onnx,model.json,input.npy} and OUT_DIR/ARCH/torch.json.

Paired mode: torch_baseline.py --paired SERVICE_URL OUT_DIR ROUNDS THREADS [--latency-only] ARCH [ARCH ...]
  Each round times PyTorch and the running service (model ARCH, the exported input as a tensor
  upload) side by side: guided backprop and gradient, and unless --latency-only integrated
  gradients and SmoothGrad (25 guided samples; each a tenth as many rounds, at least 3), each
  timed call 50 ms after the last one ended, so that neither side's threads are still spinning. This
  machine's speed drifts within a minute, so only figures taken back to back compare fairly.
  Reads the upload from OUT_DIR/ARCH/tensor.body (bench/run.sh writes it with bench/multipart.sh);
  writes OUT_DIR/ARCH/paired.json.

GPU mode: torch_baseline.py --cuda REPEATS ARCH [ARCH ...]
  predict, guided backprop, ig50_b16, ig50_b50 and smoothgrad25_b16 on the GPU, each result copied
  back to the host (as a service answers), cudnn.benchmark on (as ONNX Runtime's exhaustive search),
  once with cuDNN's TF32 off (float32, as the service's CUDA sessions) and once on (PyTorch's
  default): one JSON line per architecture and setting.

Block mode: torch_baseline.py --block OUT_DIR REPEATS THREADS ARCH
  Guided backprop alone on the exported input, REPEATS calls after 10 warm-up ones, as one JSON
  line on stdout: the PyTorch side of bench/run.sh's blocks (a hey -c 1 sequence of the service's
  maps, then this loop in its own process, each side warm within its block: the issue's method).
"""
import http.client
import json
import os
import sys
import time
import urllib.parse

import numpy as np
import torch
import torchvision.models as models

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SETTLE_S = 0.05  # paired rounds: the pause before each timed call (see paired's once)


def build(arch):
    torch.manual_seed(0)
    model = getattr(models, arch)(weights=None).eval()
    # torchvision zero-initialises ViT's head: every logit would be 0 and every gradient empty.
    for name, m in model.named_modules():
        if name.startswith("heads") and isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.02)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
        # Full backward hooks cannot sit on in-place modules; out of place costs PyTorch nothing here.
        if hasattr(m, "inplace"):
            m.inplace = False
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def multiply_adds(model, x):
    """The multiply-adds of one forward's convolutions and linear layers (a CNN's all; not a
    transformer's attention products). An input gradient repeats each convolution's once."""
    total = [0]

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            total[0] += output.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        else:
            total[0] += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return total[0]


def export(model, folder, x):
    os.makedirs(folder, exist_ok=True)
    # With frozen parameters, eval-mode attention takes PyTorch's fused fast path, which has no
    # ONNX export: parameters require gradients while exporting.
    for p in model.parameters():
        p.requires_grad_(True)
    torch.onnx.export(model, x, os.path.join(folder, "model.onnx"), opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    for p in model.parameters():
        p.requires_grad_(False)
    np.save(os.path.join(folder, "input.npy"), x.numpy())
    manifest = {"input": "input", "layout": "NCHW", "height": 224, "width": 224, "channels": "RGB",
                "scale": 1 / 255, "mean": MEAN, "std": STD}
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(manifest, f)


def guide(model):
    """Captum's GuidedBackprop: clamp the gradient flowing back into each rectifier at zero."""
    def hook(module, grad_input, grad_output):
        return tuple(None if g is None else g.clamp(min=0) for g in grad_input)
    return [m.register_full_backward_hook(hook) for m in model.modules()
            if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6))]


def input_gradient(model, x, target=None):
    x = x.clone().requires_grad_(True)
    logits = model(x)
    if target is None:
        target = logits.argmax(1)
    logits.gather(1, target.view(-1, 1)).sum().backward()
    return x.grad


def integrated_gradients(model, x, steps, batch):
    target = model(x).argmax(1)
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    total = torch.zeros_like(x)
    for start in range(0, steps, batch):
        a = alphas[start:start + batch].view(-1, 1, 1, 1)
        grads = input_gradient(model, a * x, target.expand(len(a)))
        total += grads.sum(0, keepdim=True)
    return x * total / steps


def smoothgrad(model, x, samples, batch, sigma):
    hooks = guide(model)
    try:
        target = model(x).argmax(1)
        total = torch.zeros_like(x)
        generator = torch.Generator().manual_seed(0)
        for start in range(0, samples, batch):
            n = min(batch, samples - start)
            noisy = x + sigma * torch.randn((n, *x.shape[1:]), generator=generator).to(x.device)
            total += input_gradient(model, noisy, target.expand(n)).sum(0, keepdim=True)
        return total / samples
    finally:
        for h in hooks:
            h.remove()


def guided_backprop(model, x):
    hooks = guide(model)
    try:
        return input_gradient(model, x)
    finally:
        for h in hooks:
            h.remove()


def timed(fn, repeats, warmup=3):
    for _ in range(warmup):
        fn()
    result = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        result.append((time.perf_counter() - start) * 1000)
    return result


def main(out, repeats, threads, archs, latency_only):
    torch.set_num_threads(threads)
    for arch in archs:
        folder = os.path.join(out, arch)
        model = build(arch)
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        export(model, folder, x)
        sigma = 0.15 * float(x.max() - x.min())

        def predict():
            with torch.no_grad():
                model(x)

        timings = {
            "predict": timed(predict, repeats),
            "gradient": timed(lambda: input_gradient(model, x), repeats),
            "guided_backprop": timed(lambda: guided_backprop(model, x), repeats),
        }
        if not latency_only:
            timings["ig50_b16"] = timed(lambda: integrated_gradients(model, x, 50, 16), 3, warmup=1)
            timings["ig50_b50"] = timed(lambda: integrated_gradients(model, x, 50, 50), 3, warmup=1)
            timings["smoothgrad25_b16"] = timed(lambda: smoothgrad(model, x, 25, 16, sigma), 3, warmup=1)
        info = {"arch": arch, "torch": torch.__version__, "threads": torch.get_num_threads(), "ms": timings,
                "multiply_adds": multiply_adds(model, x)}
        with open(os.path.join(folder, "torch.json"), "w") as f:
            json.dump(info, f)
        print(arch, {k: round(float(np.median(v)), 1) for k, v in timings.items()}, flush=True)


def paired(service, out, rounds, threads, archs, latency_only):
    torch.set_num_threads(threads)
    url = urllib.parse.urlparse(service)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    for arch in archs:
        folder = os.path.join(out, arch)
        model = build(arch)
        x = torch.from_numpy(np.load(os.path.join(folder, "input.npy")))
        # The upload bench/run.sh wrote with bench/multipart.sh; its first line names the boundary.
        with open(os.path.join(folder, "tensor.body"), "rb") as f:
            body = f.read()
        content_type = "multipart/form-data; boundary=" + body.split(b"\r\n", 1)[0][2:].decode()

        def once(fn):
            def settled():
                # PyTorch's OpenMP threads (libgomp) spin for a few milliseconds after each parallel
                # region, on this process's own cores: a request sent right away shares them (the
                # service's guided map of resnet18 34.7 → 39.0 ms sent at once, 29.4 → 34.7 in a
                # second run; 5 ms later as 50 ms later). Each side starts from idle threads.
                time.sleep(SETTLE_S)
                return timed(fn, 1, warmup=0)[0]
            return settled

        def post(query):
            def request():
                connection.request("POST", f"/v1/models/{arch}/explain?{query}", body, {"Content-Type": content_type})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"{arch} {query}: HTTP {response.status}")
            return once(request)

        # name -> (PyTorch's milliseconds, the service's milliseconds, rounds)
        pairs = {
            "guided_backprop": (once(lambda: guided_backprop(model, x)), post("format=npy"), rounds),
            "gradient": (once(lambda: input_gradient(model, x)), post("method=gradient&format=npy"), rounds),
        }
        if not latency_only:
            # PyTorch's faster batching each round: 16 or all 50 steps per batch.
            pairs["ig50"] = (lambda: min(once(lambda: integrated_gradients(model, x, 50, 16))(),
                                         once(lambda: integrated_gradients(model, x, 50, 50))()),
                             post("method=integrated-gradients&steps=50&format=npy"), max(3, rounds // 10))
            # SmoothGrad over guided backprop, 25 samples: PyTorch's faster of 16 per batch and all 25
            # in one (Captum's NoiseTunnel default) each round.
            sigma = 0.15 * float(x.max() - x.min())
            pairs["smoothgrad25"] = (lambda: min(once(lambda: smoothgrad(model, x, 25, 16, sigma))(),
                                                 once(lambda: smoothgrad(model, x, 25, 25, sigma))()),
                                     post("method=smoothgrad&base=guided-backprop&samples=25&noise=0.15&seed=1&format=npy"),
                                     max(3, rounds // 10))
        result = {}
        for name, (theirs, ours, count) in pairs.items():
            torch_ms, http_ms = [], []
            for r in range(count + 1):  # the first round warms up
                # Turn the order each round, so neither side always runs first.
                for measure, times in [(theirs, torch_ms), (ours, http_ms)][:: 1 if r % 2 else -1]:
                    ms = measure()
                    if r:
                        times.append(ms)
            result[name] = {"torch_ms": torch_ms, "http_ms": http_ms}
        with open(os.path.join(folder, "paired.json"), "w") as f:
            json.dump({"arch": arch, "torch": torch.__version__, "threads": torch.get_num_threads(), "rounds": result}, f)
        print(arch, "paired", {k: round(float(np.median(np.array(v["http_ms"]) / np.array(v["torch_ms"]))), 2)
                               for k, v in result.items()}, flush=True)


def block(out, repeats, threads, arch):
    torch.set_num_threads(threads)
    model = build(arch)
    x = torch.from_numpy(np.load(os.path.join(out, arch, "input.npy")))
    ms = timed(lambda: guided_backprop(model, x), repeats, warmup=10)
    print(json.dumps({"arch": arch, "threads": torch.get_num_threads(), "guided_backprop_ms": ms}), flush=True)


def on_gpu(repeats, archs):
    torch.backends.cudnn.benchmark = True
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        for arch in archs:
            model = build(arch).cuda()
            x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1)).cuda()
            sigma = 0.15 * float(x.max() - x.min())

            def predict():
                with torch.no_grad():
                    return model(x)

            calls = {
                "predict": predict,
                "guided_backprop": lambda: guided_backprop(model, x),
                "ig50_b16": lambda: integrated_gradients(model, x, 50, 16),
                "ig50_b50": lambda: integrated_gradients(model, x, 50, 50),
                "smoothgrad25_b16": lambda: smoothgrad(model, x, 25, 16, sigma),
            }
            ms = {name: timed(lambda: call().cpu(), repeats, warmup=10) for name, call in calls.items()}
            print(json.dumps({"arch": arch, "torch": torch.__version__, "device": torch.cuda.get_device_name(), "tf32": tf32,
                              "p50_ms": {k: round(float(np.median(v)), 3) for k, v in ms.items()}}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--cuda":
        on_gpu(int(sys.argv[2]), sys.argv[3:])
    elif sys.argv[1] == "--block":
        block(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "--paired":
        latency_only = sys.argv[6] == "--latency-only"
        paired(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6 + latency_only:], latency_only)
    else:
        latency_only = sys.argv[4] == "--latency-only"
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4 + latency_only:], latency_only)
