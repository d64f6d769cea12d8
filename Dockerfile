# SaliencyService container image.
#   docker build -t saliency .                              CPU image (default target)
#   docker build -t saliency:gpu --target gpu .             ONNX Runtime on CUDA (see deploy/README.md)
# The .NET 10 images are Ubuntu 24.04 based: their libstdc++ (GCC 14) has GLIBCXX_3.4.32, so
# TorchSharp loads as shipped and the compatibility shim never runs.
# Both targets preload tcmalloc: libtorch frees every activation after each pass, and glibc hands
# large blocks back to the kernel, so the next pass page-faults them in again; tcmalloc keeps them
# for reuse (integrated gradients and SmoothGrad 10-45% faster, docs/performance.md). The service
# detects it and trims its free memory once batched explanations pause.
# Both set the garbage collector's young-generation budget (DOTNET_GCgen0size, 32 MiB; the GC reads
# it only from the environment). Left to the runtime, it is sized from the last-level cache the
# host reports, and a VM that reports a 508 MiB one (Firecracker on Zen 5) got a budget whose
# memory the GC handed back and faulted in again: ~90 page faults a guided map at 11 us each, none
# with this (bench/analysis.md, forty-fourth pass).

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
# g++ builds the engine's own ONNX Runtime kernels (src/Explain/Native) into the publish output.
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props SaliencyService.sln ./
COPY src/ src/
RUN dotnet publish src/Api -c Release -r linux-x64 --self-contained false -o /app \
 && rm -f /app/*.pdb

# Shared runtime settings of both targets.
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl libtcmalloc-minimal4t64 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data/models && chown app:app /data/models
ENV ASPNETCORE_URLS=http://+:8080 \
    Saliency__ModelStore=/data/models \
    Logging__Console__FormatterName=json \
    MALLOC_ARENA_MAX=2 \
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD=17179869184 \
    DOTNET_GCgen0size=0x2000000 \
    TMPDIR=/tmp
WORKDIR /app
VOLUME /data/models
EXPOSE 8080 5081
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS http://localhost:8080/health/ready || exit 1

# CPU: drop the CUDA and TensorRT providers of the ONNX Runtime GPU package (300 MB).
FROM runtime-base AS cpu
COPY --from=build /app /app
RUN rm -f /app/libonnxruntime_providers_cuda.so /app/libonnxruntime_providers_tensorrt.so
USER app
ENTRYPOINT ["dotnet", "SaliencyService.Api.dll"]

# GPU: the same application on a CUDA 13 + cuDNN 9 base, what ONNX Runtime 1.31's CUDA provider
# links (libcudart.so.13; host driver 580 or newer); it picks the CUDA provider when a GPU is
# visible (docker run --gpus all). TorchSharp (the explain mirror) stays on CPU.
FROM nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04 AS gpu
COPY --from=mcr.microsoft.com/dotnet/aspnet:10.0 /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet \
 && apt-get update \
 && apt-get install -y --no-install-recommends curl libicu74 libtcmalloc-minimal4t64 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1654 --create-home app \
 && mkdir -p /data/models && chown app:app /data/models
ENV ASPNETCORE_URLS=http://+:8080 \
    Saliency__ModelStore=/data/models \
    Logging__Console__FormatterName=json \
    MALLOC_ARENA_MAX=2 \
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD=17179869184 \
    DOTNET_GCgen0size=0x2000000
COPY --from=build /app /app
WORKDIR /app
VOLUME /data/models
EXPOSE 8080 5081
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS http://localhost:8080/health/ready || exit 1
USER app
ENTRYPOINT ["dotnet", "SaliencyService.Api.dll"]

# The default target is the CPU image.
FROM cpu
