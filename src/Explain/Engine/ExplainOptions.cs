namespace SaliencyService.Explain.Engine;

/// <summary>
/// Explain engine settings (configuration section <c>Saliency:Explain</c>, which the service's
/// queue and cache settings share).
/// </summary>
public class ExplainOptions
{
    /// <summary>Most samples per pass (ONNX Runtime or mirror) for integrated gradients and SmoothGrad.</summary>
    public int MaxBatch { get; set; } = 16;

    /// <summary>libtorch intra-op threads; 0 = <see cref="Environment.ProcessorCount"/> (which honours a container's CPU limit).</summary>
    public int TorchThreads { get; set; }

    /// <summary>
    /// How far libtorch's oneDNN may go (<c>ONEDNN_MAX_CPU_ISA</c>, set before libtorch loads):
    /// <c>auto</c> runs a known-answer self-test in child processes and takes the widest instruction
    /// set that passes (oneDNN off if none does); <c>none</c> turns oneDNN off; <c>default</c>
    /// leaves it uncapped; or a cap such as <c>AVX2</c> or <c>SSE41</c>.
    /// </summary>
    public string OneDnnMaxIsa { get; set; } = "auto";

    /// <summary>
    /// Input gradients computed by ONNX Runtime (the served forward, then the mirror's backward
    /// written as an ONNX graph) for models where the import probe shows them equal to libtorch
    /// autograd's; off, or for other models, libtorch autograd computes them.
    /// </summary>
    public bool OrtBackward { get; set; } = true;

    /// <summary>
    /// Run an import's checks (session, mirror, probes) in a child process, so that a model that
    /// crashes a native library is refused (422) instead of taking the service down.
    /// </summary>
    public bool IsolateImports { get; set; } = true;

    /// <summary>
    /// Native heap a spare import child faults in while it waits (<see cref="Torch.NativeHeap.Reserve"/>),
    /// so that the next check's allocations find resident pages: ~0.2 s off a resnet18 import on two
    /// cores, for as much resident memory in the waiting child. The service faults as much in at
    /// start-up for its own share of the first import (<see cref="Torch.NativeHeap.ReserveInBackground"/>),
    /// handed back a minute later if no import came. 0: none.
    /// </summary>
    public int SpareHeapMegabytes { get; set; } = 512;

    /// <summary>
    /// Serve (and so report ready) only once the spare import child has warmed up (libraries loaded,
    /// a demo model checked, its heap faulted in) and, where no import ran at this start, the
    /// service's own side of an import has run once on a demo model that is not stored. As Triton
    /// warms a model up before it reports it ready: an import straight after readiness then pays for
    /// its own work alone. resnet18 on 2 vCPUs: 1.9–2.2 s straight after readiness, against 3.8–4.1 s
    /// without the child's warm-up, start-up 3–4 s longer; 0.97–1.07 s against 1.13–1.46 s without
    /// the service's, start-up ~2.5 s longer.
    /// </summary>
    public bool WarmSpareBeforeReady { get; set; } = true;

    /// <summary>Longest an isolated import check may take before the model is refused.</summary>
    public int ImportCheckTimeoutSeconds { get; set; } = 600;

    /// <summary>Largest mirror-vs-runtime difference, relative to the output's scale, that is still explainable.</summary>
    public double ParityTolerance { get; set; } = 1e-3;

    /// <summary>
    /// As <see cref="ParityTolerance"/>, for a model served in float16 or bfloat16 (its explainer's
    /// graph is float32: <see cref="Onnx.Float32Graph"/>). torchvision's resnet18 and densenet121
    /// in float16 land at 3.4e-4 with random weights; trained weights' larger activations round
    /// more, and a mirror that computes another function is off by the scale itself.
    /// </summary>
    public double HalfPrecisionParityTolerance { get; set; } = 1e-2;
}
