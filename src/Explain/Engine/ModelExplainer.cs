using SaliencyService.Contracts;
using SaliencyService.Explain.Mirror;

namespace SaliencyService.Explain.Engine;

/// <summary>The explainable side of one served model: its mirror and what the import learnt about it.</summary>
public sealed class ModelExplainer(GraphMirror mirror, IReadOnlyList<LayerDescriptor> layers, string? defaultLayer,
    OrtBackprop? backprop = null) : IDisposable
{
    public GraphMirror Mirror { get; } = mirror;

    /// <summary>4-D tensors of the graph (Grad-CAM candidates), with their shapes on the probe input.</summary>
    public IReadOnlyList<LayerDescriptor> Layers { get; } = layers;

    public string? DefaultLayer { get; } = defaultLayer;

    /// <summary>Gradients computed by ONNX Runtime, where the import showed them right; else null (libtorch autograd).</summary>
    public OrtBackprop? Backprop { get; } = backprop;

    public void Dispose()
    {
        Backprop?.Dispose();
        Mirror.Dispose();
    }
}
