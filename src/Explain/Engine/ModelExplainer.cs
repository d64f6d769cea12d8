using SaliencyService.Contracts;
using SaliencyService.Explain.Mirror;

namespace SaliencyService.Explain.Engine;

/// <summary>The explainable side of one served model: its mirror, its gradient engine, and what the import learnt about it.</summary>
/// <param name="maxBatch">Most samples per engine pass: the configured batch, or the model's fixed batch size.</param>
/// <param name="powerOfTwoBatches">Whether batches below <paramref name="maxBatch"/> hold a power of two samples (<see cref="PowerOfTwoBatches"/>).</param>
public sealed class ModelExplainer(GraphMirror mirror, IReadOnlyList<LayerDescriptor> layers, string? defaultLayer, IGradientEngine engine,
    int maxBatch, bool powerOfTwoBatches = false) : IDisposable
{
    public GraphMirror Mirror { get; } = mirror;

    /// <summary>4-D tensors of the graph (Grad-CAM candidates), with their shapes on the probe input.</summary>
    public IReadOnlyList<LayerDescriptor> Layers { get; } = layers;

    public string? DefaultLayer { get; } = defaultLayer;

    /// <summary>What computes this model's gradients (chosen at import against float64).</summary>
    public IGradientEngine Engine { get; } = engine;

    /// <summary>Most samples per engine pass (integrated gradients, SmoothGrad).</summary>
    public int MaxBatch { get; } = maxBatch;

    /// <summary>
    /// Whether a batch smaller than <see cref="MaxBatch"/> holds a power of two samples (50 steps:
    /// 16, 16, 16, 2; 25 samples: 16, 8, 1): where the engine keeps a session per batch size (CUDA,
    /// <see cref="PassSessions"/>), so that few are opened.
    /// </summary>
    public bool PowerOfTwoBatches { get; } = powerOfTwoBatches;

    public void Dispose()
    {
        Engine.Dispose();
        Mirror.Dispose();
    }
}
