using SaliencyService.Contracts;
using SaliencyService.Explain.Mirror;

namespace SaliencyService.Explain.Engine;

/// <summary>The explainable side of one served model: its mirror and what the import learnt about it.</summary>
public sealed class ModelExplainer(GraphMirror mirror, IReadOnlyList<LayerDescriptor> layers, string? defaultLayer) : IDisposable
{
    public GraphMirror Mirror { get; } = mirror;

    /// <summary>4-D tensors of the graph (Grad-CAM candidates), with their shapes on the probe input.</summary>
    public IReadOnlyList<LayerDescriptor> Layers { get; } = layers;

    public string? DefaultLayer { get; } = defaultLayer;

    public void Dispose() => Mirror.Dispose();
}
