namespace SaliencyService.Explain.Engine;

/// <summary>Explain engine settings (configuration section <c>Saliency:Explain</c>).</summary>
public sealed class ExplainOptions
{
    /// <summary>Explanations computed at once; the rest wait in line.</summary>
    public int MaxConcurrent { get; set; } = 2;

    /// <summary>Explanations that may wait for a slot; beyond that, 503 + Retry-After at once.</summary>
    public int MaxQueued { get; set; } = 16;

    /// <summary>How long a request may wait for a slot before it gets 503 + Retry-After.</summary>
    public int QueueTimeoutSeconds { get; set; } = 30;

    /// <summary>Most samples per pass (ONNX Runtime or mirror) for integrated gradients and SmoothGrad.</summary>
    public int MaxBatch { get; set; } = 16;

    /// <summary>Memory for recently computed maps (LRU); 0 turns the cache off.</summary>
    public int CacheMegabytes { get; set; } = 256;

    /// <summary>libtorch intra-op threads; 0 = one per core.</summary>
    public int TorchThreads { get; set; }

    /// <summary>
    /// Input gradients computed by ONNX Runtime (the served forward, then the mirror's backward
    /// written as an ONNX graph) for models where the import probe shows them equal to libtorch
    /// autograd's; off, or for other models, libtorch autograd computes them.
    /// </summary>
    public bool OrtBackward { get; set; } = true;

    /// <summary>Largest mirror-vs-runtime difference, relative to the output's scale, that is still explainable.</summary>
    public double ParityTolerance { get; set; } = 1e-3;
}
