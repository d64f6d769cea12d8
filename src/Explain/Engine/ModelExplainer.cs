using SaliencyService.Contracts;
using SaliencyService.Explain.Mirror;

namespace SaliencyService.Explain.Engine;

/// <summary>The explainable side of one served model: its mirror and what the import learnt about it.</summary>
public sealed class ModelExplainer(GraphMirror mirror, IReadOnlyList<LayerDescriptor> layers, string? defaultLayer,
    OrtBackprop? backprop = null, string backwardPath = "libtorch autograd") : IDisposable
{
    public GraphMirror Mirror { get; } = mirror;

    /// <summary>4-D tensors of the graph (Grad-CAM candidates), with their shapes on the probe input.</summary>
    public IReadOnlyList<LayerDescriptor> Layers { get; } = layers;

    public string? DefaultLayer { get; } = defaultLayer;

    /// <summary>Input gradients computed by ONNX Runtime, where the import showed them equal to libtorch autograd's; else null.</summary>
    public OrtBackprop? Backprop { get; } = backprop;

    /// <summary>How input gradients are computed, and why (for the log).</summary>
    public string BackwardPath { get; } = backwardPath;

    public void Dispose()
    {
        Backprop?.Dispose();
        Mirror.Dispose();
    }
}
